"""Accuracy and compression ratio of the `sinr` codec on Gaussian 128-wide weight matrices.

Prints one JSON line per setting: relative error ||W - W_hat|| / ||W||, compression ratio against
float32, bits per weight, encode and decode seconds; plus, as a peer measured in the same run, plain
per-tensor uniform quantization of the weights followed by Brotli (quality 11, on byte planes) at 3 to
12 bits. The `sinr` codec runs in fixed-sparsity mode (``sparsity=``) with its other defaults, among
them its default entropy back end (``"auto"``; the back end each stream records is in its line as
``entropy``).

Gaussian i.i.d. weights are the hardest case for any sparse code (no structure to find); trained
networks' weights are not much easier. A last line gives the range of what sorted-gap index coding
saves against raw indices over the settings measured both ways. ``--out FILE`` also writes every line
as one JSON document (``{"name", "description", "machine", "config", "summary", "results"}``) with the
machine measured by ``model_throughput.machine()`` and the 1-minute load average at the start and the
end::

    python benchmarks/accuracy.py [--rows 512 --width 128]
    python benchmarks/accuracy.py --out benchmarks/results/accuracy.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import brotli
import numpy as np
import torch

from sinr_codecs import SINR, bitstream, relative_error

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's other scripts, as modules
import model_throughput  # noqa: E402

#: Brotli quality of the peer (the strongest setting; not the core's writer, which uses its own).
PEER_BROTLI_QUALITY = 11


def plain_quantization(w: np.ndarray, bits: int) -> tuple[int, float]:
    """Bytes and relative error of uniform symmetric quantization + byte-planed Brotli (the peer)."""
    qmax = 2 ** (bits - 1) - 1
    step = np.abs(w).max() / qmax
    q = np.rint(w / step).astype(np.int16 if bits > 8 else np.int8)
    planes = q.view(np.uint8).reshape(-1, q.itemsize).T.tobytes()
    nbytes = len(brotli.compress(planes, quality=PEER_BROTLI_QUALITY)) + 8
    return nbytes, relative_error(w, q * step)


def delta_savings(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How much smaller sorted-gap ("delta") index coding makes the whole stream than raw indices, over the
    settings measured both ways (``1 - delta bytes / raw bytes``; the error is the same)."""
    key = ("sparsity", "value_bits", "dictionary_ratio")
    def setting(r: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(r[k] for k in key)

    sinr = [r for r in rows if r["codec"] == "sinr"]
    raw = {setting(r): r["bits_per_weight"] for r in sinr if r["index_coding"] == "raw"}
    savings = [1 - r["bits_per_weight"] / raw[setting(r)] for r in sinr
               if r["index_coding"] == "delta" and setting(r) in raw]
    if not savings:
        return {}
    return {"delta_vs_raw_saving_min": round(min(savings), 4), "delta_vs_raw_saving_max": round(max(savings), 4),
            "settings": len(savings)}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=512, help="rows (neurons) of the matrix (default 512)")
    p.add_argument("--width", type=int, default=128, help="row length k1 (default 128)")
    p.add_argument("--device", default="cpu", help="OMP device (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="a few settings only (for tests)")
    p.add_argument("--out", default=None, help="also write every result as one JSON document here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = [model_throughput._load()]
    w = np.random.default_rng(0).standard_normal((args.rows, args.width)).astype(np.float32)
    settings = [dict(sparsity=s, value_bits=b, dictionary_ratio=r, index_coding=ic)
                for s in (0.125, 0.25, 0.5) for b in (8, 12, 16) for r in (4, 8) for ic in ("delta", "raw")]
    if args.quick:
        settings = settings[:2]
    rows: list[dict[str, Any]] = []
    for cfg in settings:
        codec = SINR(device=args.device, **cfg)
        t0 = time.perf_counter()
        enc = codec.encode(w)
        t1 = time.perf_counter()
        dec = codec.decode(enc)
        t2 = time.perf_counter()
        rows.append({"codec": "sinr", **cfg, "entropy": bitstream.read(enc).backend, "shape": list(w.shape),
                     "rel_error": round(relative_error(w, dec), 5),
                     "ratio_vs_float32": round(w.nbytes / len(enc), 3),
                     "bits_per_weight": round(8 * len(enc) / w.size, 3),
                     "encode_s": round(t1 - t0, 3), "decode_s": round(t2 - t1, 3)})
        print(json.dumps(rows[-1]), flush=True)
    for bits in (4, 6, 8) if args.quick else (3, 4, 5, 6, 8, 10, 12):
        nbytes, err = plain_quantization(w, bits)
        rows.append({"codec": "uniform+brotli", "value_bits": bits, "entropy": f"brotli q{PEER_BROTLI_QUALITY}",
                     "shape": list(w.shape), "rel_error": round(err, 5),
                     "ratio_vs_float32": round(w.nbytes / nbytes, 3),
                     "bits_per_weight": round(8 * nbytes / w.size, 3)})
        print(json.dumps(rows[-1]), flush=True)
    summary = delta_savings(rows)
    print(json.dumps({"summary": summary}), flush=True)
    if args.out:
        load.append(model_throughput._load())
        doc = {"name": "accuracy",
               "description": "the sinr codec (fixed sparsity, its default entropy back end) on a seeded i.i.d. "
                              "Gaussian matrix against per-tensor uniform quantization + Brotli q11 on byte "
                              "planes: relative error, bits/weight, ratio against float32",
               "machine": model_throughput.machine(load),
               "config": {"rows": args.rows, "width": args.width, "device": args.device, "seed": 0,
                          "quick": args.quick},
               "summary": summary, "results": rows}
        model_throughput.write_json(doc, args.out)
    return rows


if __name__ == "__main__":
    main()
