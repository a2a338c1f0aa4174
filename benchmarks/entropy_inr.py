"""SINR's entropy back ends on INR-sized streams: auto, pcodec, rANS and Brotli, same COIN SIREN, same SINR code.

Entropy coding is lossless, so every back end's stream decodes to the same image; only their sizes differ.
For each bundled image and width it fits a 3-layer COIN SIREN (64 px, ``--steps`` Adam steps),
compresses it with SINR (no fine-tuning) at each sparsity × value bits, once per back end
(:data:`BACKENDS`), and prints one JSON line with the SINR sections' bytes and the whole stream's bytes
for each, and the size of each back end's SINR sections relative to the default's (``"auto"``, the smallest
of the others on streams this short; > 1: larger).
``--out FILE`` also writes every line as one JSON document (``{"name", "description", "machine",
"config", "summary", "results"}``) with the machine measured by ``model_throughput.machine()`` and the
1-minute load average at the start and the end::

    python benchmarks/entropy_inr.py
    python benchmarks/entropy_inr.py --out benchmarks/results/entropy_inr.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's other scripts, as modules
import model_throughput  # noqa: E402

#: The back ends compared; the first is the codec's default, the others are measured against it.
BACKENDS = ("auto", "pcodec", "rans", "brotli")


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per width and back end: the range of its SINR sections' size relative to the default's, and in
    how many cases it is larger."""
    out = []
    for width in sorted({r["width"] for r in rows}):
        sub = [r for r in rows if r["width"] == width]
        for backend in BACKENDS[1:]:
            rel = [r[f"{backend}_vs_{BACKENDS[0]}_sinr"] for r in sub]
            out.append({"width": width, "backend": backend, "cases": len(rel),
                        f"min_vs_{BACKENDS[0]}": min(rel), f"max_vs_{BACKENDS[0]}": max(rel),
                        "cases_larger": sum(v > 1 for v in rel),
                        "sinr_bytes_min": min(r[f"{BACKENDS[0]}_sinr_bytes"] for r in sub),
                        "sinr_bytes_max": max(r[f"{BACKENDS[0]}_sinr_bytes"] for r in sub)})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from sinr_adapters.framework.images import load_image
    from sinr_adapters.framework.sinr_options import SINROptions
    from sinr_adapters.methods.coin import COINAdapter

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default="astronaut,coffee,chelsea")
    p.add_argument("--widths", default="16,32")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--sparsity", default="0.25,0.5", help="comma-separated fractions (default 0.25,0.5)")
    p.add_argument("--value-bits", default="6,8", help="comma-separated value bits (default 6,8)")
    p.add_argument("--out", default=None, help="also write every line as one JSON document here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    load = [model_throughput._load()]
    rows: list[dict[str, Any]] = []
    for name in args.images.split(","):
        for width in (int(w) for w in args.widths.split(",")):
            adapter = COINAdapter(width=width, layers=3)
            signal = adapter.signal_from_image(load_image(name, args.size), name=name)
            model, _ = adapter.fit(signal, steps=args.steps, progress=False)
            for s in (float(v) for v in args.sparsity.split(",")):
                for bits in (int(v) for v in args.value_bits.split(",")):
                    row: dict[str, Any] = {"image": name, "width": width, "sparsity": s, "value_bits": bits}
                    for backend in BACKENDS:
                        opts = SINROptions(sparsity=s, value_bits=bits, entropy=backend, device="cpu")
                        data, info = adapter.compress_with_info(copy.deepcopy(model), signal, sinr=opts,
                                                                progress=False)
                        row[f"{backend}_sinr_bytes"] = info["sinr_bytes"]
                        row[f"{backend}_stream_bytes"] = len(data)
                    for backend in BACKENDS[1:]:
                        row[f"{backend}_vs_{BACKENDS[0]}_sinr"] = round(
                            row[f"{backend}_sinr_bytes"] / row[f"{BACKENDS[0]}_sinr_bytes"], 4)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    summary = summarize(rows)
    for line in summary:
        print(json.dumps({"summary": line}), flush=True)
    if args.out:
        load.append(model_throughput._load())
        doc = {"name": "entropy_inr",
               "description": "bytes of the SINR sections and whole streams of COIN SIRENs (64 px, 3 layers, no "
                              "fine-tuning) under each entropy back end, same SINR code; ratios against auto "
                              "(the default)",
               "machine": model_throughput.machine(load),
               "config": {k: v for k, v in vars(args).items() if k != "out"},
               "summary": summary, "results": rows}
        model_throughput.write_json(doc, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
