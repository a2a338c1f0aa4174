"""A tiny SIREN-like MLP (2 -> 64 -> 64 -> 3) to try ``sinr compress`` on.

It maps pixel coordinates in [-1, 1]^2 to RGB and is fitted, for a few hundred Adam steps on the CPU, to
a synthetic 32 x 32 image (a few seconds), so its weights look like those of a trained INR. Everything
is seeded: the same command writes the same model.

Usage::

    python examples/tiny_model.py tiny.pt                 # build, fit, save the state_dict
    sinr compress tiny.pt -o tiny.zarr                    # compress it
    sinr decompress tiny.zarr -o restored.pt              # restore it
    python examples/tiny_model.py --evaluate restored.pt  # PSNR of a (restored) model on the image

The state_dict keys are ``net.0.weight`` (64 x 2), ``net.0.bias``, ``net.2.weight`` (64 x 64),
``net.2.bias``, ``net.4.weight`` (3 x 64), ``net.4.bias``.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch
from torch import nn

SIZE = 32  # image side (pixels)
W0 = 30.0  # SIREN frequency


class Sine(nn.Module):
    """``sin(w0 * x)``."""

    def __init__(self, w0: float = W0) -> None:
        super().__init__()
        self.w0 = w0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * x)


class TinySiren(nn.Module):
    """``2 -> hidden -> ... -> 3`` with sine activations and SIREN initialisation."""

    def __init__(self, hidden: int = 64, layers: int = 2) -> None:
        super().__init__()
        dims = [2] + [hidden] * layers + [3]
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            lin = nn.Linear(a, b)
            bound = 1 / a if i == 0 else math.sqrt(6 / a) / W0
            nn.init.uniform_(lin.weight, -bound, bound)
            mods.append(lin)
            if i < len(dims) - 2:
                mods.append(Sine())
        self.net = nn.Sequential(*mods)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return self.net(xy)


def coordinates(size: int = SIZE) -> torch.Tensor:
    """Pixel centres in [-1, 1]^2, shape ``(size * size, 2)``."""
    t = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx, yy], dim=-1).reshape(-1, 2)


def target_image(size: int = SIZE) -> torch.Tensor:
    """A smooth synthetic RGB image in [0, 1], shape ``(size * size, 3)``."""
    xy = coordinates(size)
    x, y = xy[:, 0], xy[:, 1]
    r = 0.5 + 0.5 * torch.sin(3 * x + 2 * y)
    g = 0.5 + 0.5 * torch.cos(4 * x * y)
    b = torch.exp(-4 * (x**2 + y**2))
    return torch.stack([r, g, b], dim=-1)


def psnr(model: nn.Module) -> float:
    """PSNR (dB) of the model's rendering against :func:`target_image` (peak 1)."""
    with torch.no_grad():
        mse = torch.mean((model(coordinates()).clamp(0, 1) - target_image()) ** 2).item()
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def build(*, seed: int = 0, steps: int = 300, hidden: int = 64, layers: int = 2) -> TinySiren:
    """A seeded :class:`TinySiren`, fitted for ``steps`` Adam steps (lr 1e-3).

    Runs on one CPU thread: for a model this small, more threads only add synchronisation (and on a
    busy machine they make it many times slower).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = TinySiren(hidden, layers)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xy, rgb = coordinates(), target_image()
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.mean((model(xy) - rgb) ** 2)
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("output", nargs="?", help="where to save the state_dict (.pt)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--steps", type=int, default=300, help="Adam steps fitting the image")
    p.add_argument("--hidden", type=int, default=64, help="hidden width")
    p.add_argument("--layers", type=int, default=2, help="hidden layers")
    p.add_argument("--evaluate", metavar="PT", help="print the PSNR of a saved state_dict instead")
    args = p.parse_args(argv)
    if args.evaluate:
        model = TinySiren(args.hidden, args.layers)
        model.load_state_dict(torch.load(args.evaluate, weights_only=True, map_location="cpu"))
        print(f"{args.evaluate}: PSNR {psnr(model):.2f} dB")
        return 0
    if not args.output:
        p.error("give an output path, or --evaluate PT")
    model = build(seed=args.seed, steps=args.steps, hidden=args.hidden, layers=args.layers)
    torch.save(model.state_dict(), args.output)
    n = sum(t.numel() for t in model.state_dict().values())
    print(f"saved {args.output}: {n} parameters, PSNR {psnr(model):.2f} dB on the {SIZE}x{SIZE} image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
