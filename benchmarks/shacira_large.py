"""SHACIRA with and without SINR on one large image (prints the table).

The SINR paper's largest experiment compresses a gigapixel image with SHACIRA. The largest image we can
make from bundled data is a mosaic of the scikit-image images (each centre-cropped and resized to one
tile), several megapixels at the default ``--size 2048`` (4.2 MP). SHACIRA is fitted once; then it is
stored as published (integer latents, entropy-coded; decoder and MLP at 32 bits), with SINR on the MLP's
weight matrices, and with SINR on the MLP and the latent tables; every path gets the same fine-tuning
steps. Bytes are the streams written; PSNR is measured on the decoded 8-bit mosaic.

    python benchmarks/shacira_large.py --device cuda                 # ~4 MP, one GPU
    python benchmarks/shacira_large.py --device cuda --size 4096     # ~17 MP
    python benchmarks/shacira_large.py --quick                       # tiny, on a CPU (a smoke test)

The table goes to standard output, progress to standard error, and with ``--out FILE`` a CompressAI-style
JSON (``{"name", "description", "machine", "results": {column: [per rate point]}, "config", "environment"}``;
``machine``: ``model_throughput.machine()`` with the 1-minute load average at the start and the end).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's other scripts, as modules
import model_throughput  # noqa: E402

QUICK = {"size": 64, "tile": 32, "levels": 8, "base_resolution": 4, "log2_table_size": 10, "hidden": 16,
         "steps": 150, "finetune_steps": 20, "batch_size": None}



def machine(load: Sequence[float | None]) -> dict[str, Any]:
    """Where the figures were measured: ``model_throughput.machine()`` (platform, CPU model, cores, Python,
    torch, numpy, torch threads; the GPU's name where CUDA is available) and the 1-minute load averages."""
    return model_throughput.machine(load)


def mosaic(size: int, *, tile: int = 512) -> np.ndarray:
    """A ``size x size`` RGB mosaic of the bundled images, each a ``tile``-pixel square, row-major, cycling
    through :data:`sinr_adapters.framework.images.IMAGES` (float32 in [0, 1], 8-bit levels)."""
    from sinr_adapters.framework.images import IMAGES, load_image

    names = list(IMAGES)
    out = np.zeros((size, size, 3), dtype=np.float32)
    k = 0
    for top in range(0, size, tile):
        for left in range(0, size, tile):
            img = load_image(names[k % len(names)], tile)
            k += 1
            h, w = min(tile, size - top), min(tile, size - left)
            out[top:top + h, left:left + w] = img[:h, :w]
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shacira_large", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny settings for a CPU smoke test (explicit options win)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--size", type=int, help="side of the square mosaic in pixels (default 2048)")
    p.add_argument("--tile", type=int, help="side of each bundled image in the mosaic (default 512)")
    p.add_argument("--levels", type=int, help="hash-grid levels (default 16)")
    p.add_argument("--base-resolution", type=int, help="coarsest grid resolution (default 16)")
    p.add_argument("--log2-table-size", type=int, help="latents per level, log2 (default 18)")
    p.add_argument("--hidden", type=int, help="MLP width (default 32)")
    p.add_argument("--rate-weight", type=float, default=2e-4, help="entropy-penalty weight lambda")
    p.add_argument("--steps", type=int, help="fitting steps (default 3000)")
    p.add_argument("--batch-size", type=int, help="pixels per step (default 2**18; 0 = full batch)")
    p.add_argument("--finetune-steps", type=int, help="fine-tuning steps, the same for every path (default 300)")
    p.add_argument("--sparsity", default="0.25,0.5", help="SINR atoms per vector (comma-separated)")
    p.add_argument("--value-bits", type=int, default=8, help="SINR value bits")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="FILE", help="also write the results as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    full = {"size": 2048, "tile": 512, "levels": 16, "base_resolution": 16, "log2_table_size": 18, "hidden": 32,
            "steps": 3000, "finetune_steps": 300, "batch_size": 1 << 18}
    defaults = QUICK if args.quick else full
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.batch_size is not None and args.batch_size <= 0:
        args.batch_size = None
    import torch

    from sinr_adapters.framework import metrics, training
    from sinr_adapters.framework.sinr_options import SINROptions
    from sinr_adapters.harness.reporting import environment
    from sinr_adapters.methods.shacira.adapter import SHACIRAAdapter
    from sinr_codecs.sparse import resolve_device

    if args.threads or args.quick:
        torch.set_num_threads(args.threads or 1)
    dev = resolve_device(args.device)
    load = [model_throughput._load()]

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    image = mosaic(args.size, tile=args.tile)
    pixels = args.size * args.size
    adapter = SHACIRAAdapter(levels=args.levels, base_resolution=args.base_resolution, finest_resolution=args.size,
                             log2_table_size=args.log2_table_size, hidden=args.hidden, rate_weight=args.rate_weight)
    signal = adapter.signal_from_image(image, name=f"mosaic{args.size}")
    log(f"mosaic {args.size}x{args.size} ({pixels / 1e6:.3g} MP) on {dev}; {adapter!r}")

    def timed(fn):
        training.synchronize(dev)
        t0 = time.perf_counter()
        out = fn()
        training.synchronize(dev)
        return out, time.perf_counter() - t0

    (model, _), fit_s = timed(lambda: adapter.fit(signal, steps=args.steps, batch_size=args.batch_size,
                                                         device=str(dev), seed=args.seed))
    psnr_fitted = adapter.psnr(model, signal)
    log(f"fitted in {fit_s:.1f}s: {psnr_fitted:.2f} dB")
    sparsities = [float(s) if "." in s else int(s) for s in args.sparsity.split(",") if s.strip()]
    paths = [("shacira", adapter, None)]
    for latents in (False, True):
        a = SHACIRAAdapter(**{**adapter.config(), "sinr_latents": latents})
        for s in sparsities:
            paths.append(("shacira+sinr" + ("(mlp+latents)" if latents else "(mlp)"), a,
                          SINROptions(sparsity=s, value_bits=args.value_bits, seed=args.seed, device=str(dev))))
    rows = []
    for label, a, opts in paths:
        (data, info), enc_s = timed(lambda a=a, opts=opts: a.compress_with_info(
            copy.deepcopy(model), signal, sinr=opts, finetune_steps=args.finetune_steps, batch_size=args.batch_size))
        decoded, dec_s = timed(lambda a=a, data=data: a.decode(data, device=str(dev)))
        psnr = metrics.psnr_8bit(torch.from_numpy(decoded), signal.unit_values().cpu())
        rows.append({"label": label, "sparsity": None if opts is None else opts.sparsity, "bytes": len(data),
                     "bpp": 8 * len(data) / pixels, "psnr": psnr, "psnr_fitted": psnr_fitted,
                     "latent_bytes": info["latent_bytes"], "sinr_bytes": info["sinr_bytes"],
                     "float_bytes": info["float_bytes"], "latent_coder": info.get("latent_coder"),
                     "encode_seconds": enc_s, "decode_seconds": dec_s,
                     "fit_seconds": fit_s})
        log(f"{label} s={rows[-1]['sparsity']}: {len(data)} B, {rows[-1]['bpp']:.4f} bpp, {psnr:.2f} dB "
            f"(latent coder {info.get('latent_coder', '-')}; encode {enc_s:.1f}s, decode {dec_s:.1f}s)")
    ref = rows[0]
    print(f"SHACIRA on a {args.size}x{args.size} mosaic ({pixels / 1e6:.3g} MP), {args.steps} fitting + "
          f"{args.finetune_steps} fine-tuning steps, device {dev}\n")
    print("| method | sparsity | bytes | bpp | PSNR (dB) | size vs shacira | ΔPSNR (dB) | latents B | SINR B | "
          "floats B | encode s | decode s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {'–' if r['sparsity'] is None else r['sparsity']} | {r['bytes']} | {r['bpp']:.4f} | "
              f"{r['psnr']:.2f} | {r['bytes'] / ref['bytes']:.1%} | {r['psnr'] - ref['psnr']:+.2f} | "
              f"{r['latent_bytes']} | {r['sinr_bytes']} | {r['float_bytes']} | {r['encode_seconds']:.1f} | "
              f"{r['decode_seconds']:.1f} |")
    if args.out:
        columns: dict[str, list] = {}
        for r in rows:
            for k, v in r.items():
                columns.setdefault(k, []).append(v)
        load.append(model_throughput._load())
        doc = {"name": "shacira-large", "description": "SHACIRA with and without SINR on a mosaic of the bundled "
               "scikit-image images; bytes are the streams written, PSNR on the decoded 8-bit mosaic",
               "machine": machine(load), "results": columns, "config": {**vars(args), **adapter.config()},
               "environment": environment(str(dev))}
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
