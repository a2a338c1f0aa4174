"""COIN++'s fitting: the inner loop (SGD on the latents), MAML meta-learning of the base network, and
the quantizer's calibration on training images.

- :func:`inner_fit`: SGD on one latent per patch from zero, loss = per-patch MSE summed over patches
  (COIN++'s inner loop; :meth:`COINppAdapter.fit <sinr_adapters.methods.coinpp.adapter.COINppAdapter.fit>` calls it).
- :func:`meta_learn`: outer loop = Adam on the base network, loss = mean per-patch MSE after the inner
  loop (second order through the inner loop by default, ``first_order=True`` drops it).
- :func:`calibrate_quantizer`: the mean and standard deviation of latents fitted to training images,
  which the quantizer clips to (``+-std_range`` standard deviations).

The adapter's :meth:`~sinr_adapters.methods.coinpp.adapter.COINppAdapter.meta_learn` and
:meth:`~sinr_adapters.methods.coinpp.adapter.COINppAdapter.calibrate` are these functions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from sinr_codecs.sparse import resolve_device

from ...framework import metrics, training
from ...framework.signals import image_array
from .model import ModulatedSiren, patch_coordinates, patchify

if TYPE_CHECKING:
    from .adapter import COINppAdapter

__all__ = ["calibrate_quantizer", "inner_fit", "meta_learn"]


def inner_fit(base: ModulatedSiren, latents: torch.Tensor, local: torch.Tensor, patches: torch.Tensor, *,
               steps: int, lr: float, chunk: int | None = None, progress: bool | None = None,
               desc: str = "coinpp fit") -> training.FitLog:
    """SGD on ``latents`` ``(P, D)`` in place (per-patch MSE summed over patches, as COIN++)."""
    log = training.FitLog()
    p = patches.shape[0]
    chunk = p if not chunk or chunk >= p else int(chunk)
    t0 = time.perf_counter()
    bar = training.progress_bar(steps, desc, progress)
    for step in range(steps + 1):
        total = 0.0
        for i in range(0, p, chunk):
            lat = latents[i:i + chunk].detach().requires_grad_(steps > step)
            n = lat.shape[0]
            with torch.set_grad_enabled(step < steps):
                err = base.modulated_forward(local.expand(n, -1, -1), lat) - patches[i:i + chunk]
                per = (err ** 2).mean(dim=(1, 2))
                total += float(per.detach().sum())
                if step < steps:
                    (grad,) = torch.autograd.grad(per.sum(), lat)
                    latents[i:i + chunk] = lat.detach() - lr * grad
        mse = total / p
        if step < steps:
            log.loss.append(mse)
            log.psnr.append(metrics.mse_to_psnr(mse))
            log.steps += 1
            bar.update(1)
        if mse < log.best_loss:
            log.best_loss, log.best_step = mse, step
    bar.close()
    training.synchronize(latents.device)
    log.seconds = time.perf_counter() - t0
    return log


def meta_learn(adapter: COINppAdapter, images: Sequence[np.ndarray], *, outer_steps: int = 500,
               batch_size: int = 16, outer_lr: float = 1e-4, inner_steps: int | None = None,
               inner_lr: float | None = None, first_order: bool = False, device: str = "auto", seed: int = 0,
               calibrate: bool = True, progress: bool | None = None) -> COINppAdapter:
    """Meta-learn ``adapter``'s base network over random ``patch``-sized crops of ``images`` (MAML, as
    COIN++ does).

    Each outer step draws ``batch_size`` crops, fits one latent per crop by ``inner_steps`` SGD steps
    from zero (loss = per-crop MSE summed over crops), and takes one Adam step (``outer_lr``) on the
    base network for the mean per-crop MSE after the inner loop, differentiating through the inner
    loop (``first_order=True``: not). Starts from the adapter's base network, or a fresh SIREN
    initialisation (seeded by ``seed``) if it has none. Then :func:`calibrate_quantizer` on ``images``
    unless ``calibrate=False``. Returns a new adapter; ``adapter`` is not modified.
    """
    if not images:
        raise ValueError("meta_learn needs at least one image")
    inner_steps = adapter.inner_steps if inner_steps is None else int(inner_steps)
    inner_lr = adapter.inner_lr if inner_lr is None else float(inner_lr)
    dev = resolve_device(device)
    imgs = [torch.from_numpy(image_array(im, adapter.dim_out)) for im in images]
    ph, pw = adapter.patch
    if any(im.shape[0] < ph or im.shape[1] < pw for im in imgs):
        raise ValueError(f"every training image must be at least {ph} x {pw} (the patch size)")
    torch.manual_seed(seed)
    net = (adapter.build_model() if adapter._base is not None else adapter._fresh_base()).to(dev)
    for p in net.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(net.parameters(), lr=outer_lr)
    gen = torch.Generator().manual_seed(seed)
    local = patch_coordinates(adapter.patch).to(dev)
    bar = training.progress_bar(outer_steps, f"{adapter.name} meta-learn", progress)
    psnrs: list[float] = []
    t0 = time.perf_counter()
    for step in range(outer_steps):
        which = torch.randint(len(imgs), (batch_size,), generator=gen).tolist()
        crops = []
        for i in which:
            im = imgs[i]
            top = int(torch.randint(im.shape[0] - ph + 1, (1,), generator=gen))
            left = int(torch.randint(im.shape[1] - pw + 1, (1,), generator=gen))
            crops.append(im[top:top + ph, left:left + pw].reshape(ph * pw, -1))
        target = torch.stack(crops).to(dev)                       # (B, n, C)
        coords = local.expand(batch_size, -1, -1)
        latents = torch.zeros(batch_size, adapter.latent_dim, device=dev, requires_grad=True)
        for _ in range(inner_steps):
            loss = ((net.modulated_forward(coords, latents) - target) ** 2).mean(dim=(1, 2)).sum()
            (grad,) = torch.autograd.grad(loss, latents, create_graph=not first_order)
            latents = latents - inner_lr * grad
        per = ((net.modulated_forward(coords, latents) - target) ** 2).mean(dim=(1, 2))
        outer = per.mean()
        opt.zero_grad(set_to_none=True)
        outer.backward()
        opt.step()
        psnrs.append(float(torch.mean(-10 * torch.log10(per.detach().clamp_min(1e-12)))))
        bar.update(1)
        if step % 25 == 0 or step == outer_steps - 1:
            bar.set_postfix(psnr=f"{psnrs[-1]:.2f}", refresh=False)
    bar.close()
    training.synchronize(dev)
    out = type(adapter)(**adapter.config(), base={k: v.detach().cpu() for k, v in net.state_dict().items()},
                        inner_steps=inner_steps, inner_lr=inner_lr)
    tail = psnrs[-max(1, len(psnrs) // 10):] if psnrs else [math.nan]
    out.meta_info = {"outer_steps": int(outer_steps), "batch_size": int(batch_size), "outer_lr": float(outer_lr),
                     "first_order": bool(first_order), "images": len(imgs), "seed": int(seed),
                     "seconds": time.perf_counter() - t0, "first_psnr": psnrs[0] if psnrs else math.nan,
                     "final_psnr": float(np.mean(tail))}
    if calibrate:
        out = calibrate_quantizer(out, images, device=device)
    return out


def calibrate_quantizer(adapter: COINppAdapter, images: Sequence[np.ndarray], *,
                        device: str = "auto") -> COINppAdapter:
    """Set the quantizer's mean and std from latents fitted (``inner_steps``) to every patch of ``images``.

    Returns a new adapter (same base network); ``adapter`` is not modified.
    """
    if adapter._base is None:
        raise ValueError(adapter._no_base())
    dev = resolve_device(device)
    base = adapter.build_model().to(dev)
    local = patch_coordinates(adapter.patch).to(dev)
    fitted = []
    for im in images:
        img = torch.from_numpy(image_array(im, adapter.dim_out)).to(dev)
        patches = patchify(img, adapter.patch)
        lat = torch.zeros(patches.shape[0], adapter.latent_dim, device=dev)
        inner_fit(base, lat, local, patches, steps=adapter.inner_steps, lr=adapter.inner_lr, progress=False)
        fitted.append(lat.cpu())
    if not fitted:
        raise ValueError("calibrate needs at least one image")
    allv = torch.cat(fitted).double()
    mean, std = float(allv.mean()), float(allv.std()) if allv.numel() > 1 else 1.0
    out = type(adapter)(**adapter.config(), base=adapter._base, inner_steps=adapter.inner_steps,
                        inner_lr=adapter.inner_lr, quantizer=(mean, std if std > 0 else 1.0))
    out.meta_info = {**adapter.meta_info, "calibration_patches": int(allv.shape[0])}
    return out

