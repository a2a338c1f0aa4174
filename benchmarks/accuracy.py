"""Accuracy and compression ratio of the `sinr` codec on Gaussian 128-wide weight matrices.

Prints one JSON line per setting: relative error ||W - W_hat|| / ||W||, compression ratio against
float32, bits per weight, encode and decode seconds; plus, as a peer measured in the same run, plain
per-tensor uniform quantization of the weights followed by Brotli at the same bit widths.

Gaussian i.i.d. weights are the hardest case for any sparse code (no structure to find); trained
networks' weights are not much easier. Run: ``python benchmarks/accuracy.py [--rows 512 --width 128]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import brotli
import numpy as np
import torch

from sinr_codecs import SINR, relative_error


def plain_quantization(w: np.ndarray, bits: int) -> tuple[int, float]:
    """Bytes and relative error of uniform symmetric quantization + byte-planed Brotli (the peer)."""
    qmax = 2 ** (bits - 1) - 1
    step = np.abs(w).max() / qmax
    q = np.rint(w / step).astype(np.int16 if bits > 8 else np.int8)
    planes = q.view(np.uint8).reshape(-1, q.itemsize).T.tobytes()
    nbytes = len(brotli.compress(planes, quality=11)) + 8
    return nbytes, relative_error(w, q * step)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=512, help="rows (neurons) of the matrix (default 512)")
    p.add_argument("--width", type=int, default=128, help="row length k1 (default 128)")
    p.add_argument("--device", default="cpu", help="OMP device (default cpu)")
    p.add_argument("--quick", action="store_true", help="a few settings only (for tests)")
    args = p.parse_args(argv)
    w = np.random.default_rng(0).standard_normal((args.rows, args.width)).astype(np.float32)
    machine = f"{platform.machine()} {torch.get_num_threads()} threads" + (
        f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else "")
    settings = [dict(sparsity=s, value_bits=b, dictionary_ratio=r, index_coding=ic)
                for s in (0.125, 0.25, 0.5) for b in (8, 12, 16) for r in (4, 8) for ic in ("delta", "raw")]
    if args.quick:
        settings = settings[:2]
    for cfg in settings:
        codec = SINR(device=args.device, **cfg)
        t0 = time.perf_counter()
        enc = codec.encode(w)
        t1 = time.perf_counter()
        dec = codec.decode(enc)
        t2 = time.perf_counter()
        print(json.dumps({"codec": "sinr", **cfg, "shape": list(w.shape), "rel_error": round(relative_error(w, dec), 5),
                          "ratio_vs_float32": round(w.nbytes / len(enc), 3),
                          "bits_per_weight": round(8 * len(enc) / w.size, 3),
                          "encode_s": round(t1 - t0, 3), "decode_s": round(t2 - t1, 3), "machine": machine}))
        sys.stdout.flush()
    for bits in (4, 6, 8) if args.quick else (3, 4, 5, 6, 8, 10, 12):
        nbytes, err = plain_quantization(w, bits)
        print(json.dumps({"codec": "uniform+brotli", "value_bits": bits, "shape": list(w.shape),
                          "rel_error": round(err, 5), "ratio_vs_float32": round(w.nbytes / nbytes, 3),
                          "bits_per_weight": round(8 * nbytes / w.size, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
