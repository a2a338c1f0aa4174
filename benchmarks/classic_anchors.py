"""COIN's paths against JPEG, WebP, JPEG 2000 and AVIF as the image grows (prints the figures, writes JSON).

At each size (48, 96 and 192 px by default), on two images the project does not tune on (coffee and
chelsea: learning rates were chosen on rocket, meta-learning uses the held-out images, the demo shows
astronaut), the harness (``sinr evaluate``, in process) measures on the same 8-bit pixels, with the same
PSNR, whole files counted:

- COIN, 3 sine layers, four widths per size, 1000 fitting and 200 fine-tuning steps, one torch thread:
  as published (float16, ``coin (bits=16)``), the fair baseline with its hidden matrices as 8-bit integers
  (``coin (bits=8)``), with SINR (sparsity 0.4, 8-bit values, ``coin+sinr``), rate-aware at the rate weights
  1e-3 and 3e-3 (``coin rate-aware``) and rate-aware with SINR (``coin rate-aware+SINR``);
- JPEG, WebP, JPEG 2000 and AVIF at their default qualities (``sinr_adapters.methods.classic``).

It prints, per size, every COIN path's BD-rate against the best classic codec (at each PSNR the cheapest
measured: :mod:`sinr_adapters.harness.anchors`) on the mean curve over the two images and per image, and
against each codec alone; and how many bytes of each classic file are header rather than coded image
(:mod:`sinr_adapters.methods.classic.headers`), the rate a codec pays before it codes a pixel. Each (size,
image) is one ``sinr evaluate`` folder under ``--runs``: a rerun resumes it, ``--jobs 2`` runs two at once::

    python benchmarks/classic_anchors.py --out benchmarks/results/classic_anchors.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from sinr_codecs.options import PRESETS

CLASSIC = ("jpeg", "webp", "jpeg2000", "avif")
WIDTHS = {48: (12, 16, 24, 32), 96: (16, 24, 32, 48), 192: (24, 32, 48, 64)}
"""COIN's widths per image size: from about the classic codecs' lowest PSNR to well inside their range."""
PATHS = ("coin (bits=16)", "coin (bits=8)", "coin+sinr", "coin rate-aware", "coin rate-aware+SINR")
"""The COIN curves the tables show (results.json of each run holds every curve)."""


def evaluate_argv(size: int, image: str, folder: Path, args: argparse.Namespace) -> list[str]:
    """The ``sinr evaluate`` command line of one size and image."""
    widths = args.widths or WIDTHS.get(size) or WIDTHS[min(WIDTHS, key=lambda s: abs(s - size))]
    return ["--method", ",".join(["coin", *CLASSIC]), "--images", image, "--size", str(size),
            "--widths", ",".join(str(w) for w in widths), "--layers", "3", "--steps", str(args.steps),
            "--finetune-steps", str(args.finetune_steps), "--baseline-bits", "8,16", "--rate-aware", "1e-3,3e-3",
            "--sparsity", "0.4", "--value-bits", "8", "--threads", "1", "--seed", "0", "--quiet", "--no-progress",
            "--out", str(folder)]


def measure(argv: list[str]) -> str:
    """Run ``sinr evaluate`` in this process (the table it prints is dropped); the results.json it wrote."""
    from sinr_adapters.harness import commands

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        status = commands.main_evaluate(argv)
    out = Path(argv[argv.index("--out") + 1])
    if status != 0:
        raise RuntimeError(f"sinr evaluate {' '.join(argv)} failed with status {status}")
    print(f"{out.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return str(out / "results.json")


def load(path: str | Path) -> list[Any]:
    """The results a ``sinr evaluate`` folder holds."""
    from sinr_adapters.framework.results import Result

    cols = json.loads(Path(path).read_text())["results"]
    return [Result.from_dict(dict(zip(cols, vals, strict=True))) for vals in zip(*cols.values(), strict=True)]


def _pct(v: float | None) -> float | None:
    return None if v is None else round(100 * v, 1)


def headers(results: Sequence[Any]) -> dict[str, dict[str, float]]:
    """Per classic codec: its header bytes (mean over files), the rate they cost alone (bits per pixel) and
    their share of the smallest and of the median file."""
    import numpy as np

    out: dict[str, dict[str, float]] = {}
    for codec in CLASSIC:
        rs = sorted((r for r in results if r.method == codec and r.extra.get("header_bytes") is not None),
                    key=lambda r: r.bytes)
        if not rs:
            continue
        head = [r.extra["header_bytes"] for r in rs]
        share = [h / r.bytes for h, r in zip(head, rs, strict=True)]
        rate = [8 * h / r.elements for h, r in zip(head, rs, strict=True)]
        out[codec] = {"header_bytes": round(float(np.mean(head)), 1), "header_bpp": round(float(np.mean(rate)), 3),
                      "share_of_smallest_file": round(share[0], 3),
                      "share_of_median_file": round(share[len(rs) // 2], 3)}
    return out


def report(by_size: dict[int, list[Any]], images: Sequence[str]) -> dict[str, Any]:
    """BD-rates per size on the mean curve and per image, header costs and the mean points."""
    from sinr_adapters.harness.anchors import against_anchors
    from sinr_adapters.harness.reporting import summary

    out: dict[str, Any] = {"mean": {}, "per_image": {}, "headers": {}, "points": {}}
    for size, rs in sorted(by_size.items()):
        rows = summary(rs)
        out["mean"][size] = against_anchors(rows)
        out["per_image"][size] = {im: against_anchors(summary([r for r in rs if r.signal == im])) for im in images}
        out["headers"][size] = headers(rs)
        out["points"][size] = [{k: d[k] for k in ("label", "point", "sparsity", "bpp", "psnr")} for d in rows]
    return out


def table_rows(rep: dict[str, Any], images: Sequence[str]) -> dict[str, dict[str, Any]]:
    """One row per size and COIN path: BD-rates (percent) against the best classic codec (mean curve and per
    image) and against each codec (mean curve), the PSNR range compared, and where each codec is the best
    (share of that range)."""
    rows: dict[str, dict[str, Any]] = {}
    for size, mean in rep["mean"].items():
        paths = {c["path"]: c for c in mean["paths"]}
        for name in PATHS:
            c = paths.get(name)
            if c is None:
                continue
            per = {im: {p["path"]: p for p in rep["per_image"][size][im]["paths"]}.get(name) for im in images}
            rows[f"{size} px, {name}"] = {
                "vs best classic %": _pct(c["bd_rate_best"]),
                **{f"{im} %": None if per[im] is None else _pct(per[im]["bd_rate_best"]) for im in images},
                **{f"vs {a} %": _pct(c["bd_rate"].get(a)) for a in CLASSIC},
                "PSNR range dB": None if c["quality_range"] is None
                else f"{c['quality_range'][0]:.1f}-{c['quality_range'][1]:.1f}",
                "best classic there": ", ".join(f"{a} {100 * v:.0f}%" for a, v in c["best_share"].items()) or None}
    return rows


def markdown(rows: dict[str, dict[str, Any]], rep: dict[str, Any]) -> str:
    """The tables the script prints (and docs/classic-anchors.md quotes)."""
    def cell(v: Any) -> str:
        return "–" if v is None else (f"{v:+.1f}%" if isinstance(v, float) else str(v))

    cols = list(next(iter(rows.values()))) if rows else []
    lines = ["| size, COIN path | " + " | ".join(c.replace(" %", "") for c in cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(cell(v.get(c)) for c in cols) + " |" for k, v in rows.items()]
    lines += ["", "| size | codec | header bytes | header alone (bpp) | share of the smallest file | "
              "share of the median file |", "|---|---|---|---|---|---|"]
    for size, per in rep["headers"].items():
        lines += [f"| {size} px | {codec} | {h['header_bytes']:.0f} | {h['header_bpp']:.3f} | "
                  f"{100 * h['share_of_smallest_file']:.0f}% | {100 * h['share_of_median_file']:.0f}% |"
                  for codec, h in per.items()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="48,96,192", help="image sides in pixels (default 48,96,192)")
    p.add_argument("--images", default="coffee,chelsea", help="bundled images (default coffee,chelsea)")
    p.add_argument("--widths", type=lambda t: [int(x) for x in t.split(",")],
                   help="COIN widths at every size (default: four per size, WIDTHS)")
    p.add_argument("--steps", type=int, default=1000, help="fitting steps (default 1000)")
    p.add_argument("--finetune-steps", type=int, default=200, help="fine-tuning steps of every path (default 200)")
    p.add_argument("--runs", default="classic-anchors-runs", help="folder of the sinr evaluate runs (resumable)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once, one torch thread each (default 2)")
    p.add_argument("--out", help="also write the JSON document to this file")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    images = [s.strip() for s in args.images.split(",")]
    jobs = sorted(((s, im) for s in sizes for im in images), key=lambda j: -j[0])   # the longest first
    argvs = {job: evaluate_argv(job[0], job[1], Path(args.runs) / f"{job[0]}px-{job[1]}", args) for job in jobs}
    if args.jobs <= 1:
        files = {j: measure(argvs[j]) for j in jobs}
    else:
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
            files = dict(zip(jobs, pool.map(measure, [argvs[j] for j in jobs]), strict=True))
    by_size = {s: [r for im in images for r in load(files[(s, im)])] for s in sizes}
    rep = report(by_size, images)
    rows = table_rows(rep, images)
    from sinr_adapters.harness.reporting import environment

    env = environment("cpu", 1)
    doc = {"name": "classic_anchors",
           "description": ("COIN's paths against JPEG, WebP, JPEG 2000 and AVIF (Pillow) on the same 8-bit pixels, "
                           f"{' and '.join(images)} at {', '.join(f'{s}' for s in sizes)} px: BD-rate in percent "
                           "(> 0: COIN needs more bits at equal PSNR) against the best classic codec (at each PSNR "
                           "the cheapest measured) on the mean curve and per image, and against each codec on the "
                           "mean curve; whole files counted, headers included"),
           "machine": {"cpu": env.get("cpu"), "cpu_count": env["cpu_count"], "gpu": "none", "torch": env["torch"],
                       "threads": 1, "jobs": args.jobs, "platform": env["platform"], "python": env["python"],
                       "pillow": _version("pillow")},
           "config": {"sizes": sizes, "images": images, "widths": {s: argvs[(s, images[0])][
               argvs[(s, images[0])].index("--widths") + 1] for s in sizes}, "steps": args.steps,
               "finetune_steps": args.finetune_steps, "baseline_bits": [8, 16], "rate_aware": [1e-3, 3e-3],
               "sparsity": 0.4, "value_bits": 8, "sinr_entropy": PRESETS["default"]["entropy"], "layers": 3},
           "results": rows, **rep}
    text = json.dumps(doc, indent=1) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    sys.stdout.write(markdown(rows, rep))
    return 0


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
