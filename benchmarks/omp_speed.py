"""Speed of :func:`sinr_codecs.omp.batch_omp` against scikit-learn's ``orthogonal_mp_gram``.

For each case ``(k1, k2, s)``: seeded Gaussian signals, the dictionary from ``sensing_matrix``,
``batch_omp`` timed as the median of ``--repeats`` runs after a warm-up, and in the same run
scikit-learn's ``orthogonal_mp_gram`` (float64, Gram matrix and ``A^T W`` precomputed and not timed)
on a subset large enough to time. One JSON line per case on stdout; ``--out FILE`` also writes every
case as one JSON document (``{"name", "description", "machine", "config", "results"}``) with the machine
measured by ``model_throughput.machine()`` and the 1-minute load average at the start and the end.

Usage::

    python benchmarks/omp_speed.py                       # the three default cases on CPU
    python benchmarks/omp_speed.py --threads 1 --out benchmarks/results/omp_speed.json
    python benchmarks/omp_speed.py --device cuda --case 128,1024,32 --n 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sinr_codecs.dictionary import sensing_matrix
from sinr_codecs.omp import batch_omp

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's other scripts, as modules
import model_throughput  # noqa: E402

DEFAULT_CASES = [(128, 1024, 32), (64, 512, 16), (1024, 4096, 256)]



def machine(load: Sequence[float | None]) -> dict[str, Any]:
    """Where the figures were measured: ``model_throughput.machine()`` (platform, CPU model, cores, Python,
    torch, numpy, torch threads), scikit-learn's version and the 1-minute load averages ``load``."""
    from importlib import metadata

    try:
        sklearn = metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:
        sklearn = None
    return {**model_throughput.machine(), "scikit_learn": sklearn, "load_average_1min": list(load)}


def _case(text: str) -> tuple[int, int, int]:
    try:
        k1, k2, s = (int(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--case wants K1,K2,S, got {text!r}") from exc
    return k1, k2, s


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch threads"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _default_n(k1: int, k2: int, s: int, device: torch.device) -> int:
    """About 5e11 flops of selection matmuls per timed run on CPU (some seconds), 100x on CUDA."""
    flops = 2.0 * k1 * k2 * s
    if device.type == "cuda":
        return int(min(max(5e13 / flops, 4096), 1_000_000))
    return int(min(max(5e11 / flops, 512), 200_000))


def _sklearn_supports(w64: np.ndarray, a64: np.ndarray, s: int, target_s: float, cap: int):
    """Time orthogonal_mp_gram on the first rows of w64; returns (n used, vectors/s, supports)."""
    from sklearn.linear_model import orthogonal_mp_gram

    gram = a64.T @ a64
    n, used, elapsed, coefs = len(w64), 0, 0.0, []
    step = 8
    while used < min(n, cap) and (elapsed < target_s or used < 8):
        m = min(step, min(n, cap) - used)
        xy = a64.T @ w64[used : used + m].T  # precomputed, not timed
        t0 = time.perf_counter()
        c = orthogonal_mp_gram(gram, xy, n_nonzero_coefs=s)
        elapsed += time.perf_counter() - t0
        coefs.append(np.asarray(c).reshape(a64.shape[1], m).T)
        used += m
        step = min(step * 2, 1024)
    coef = np.concatenate(coefs, axis=0)
    supports = [frozenset(np.flatnonzero(row).tolist()) for row in coef]
    return used, used / elapsed, supports


def run_case(
    k1: int, k2: int, s: int, *, device: torch.device, dtype: torch.dtype, n: int | None,
    repeats: int, seed: int, sklearn_seconds: float, sklearn_max: int,
    chunk_size: int | None = None,
) -> dict:
    n = n if n is not None else _default_n(k1, k2, s, device)
    a = sensing_matrix(k1, k2, seed, device=device, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k1, generator=gen, dtype=torch.float64)
    w_dev = w.to(device=device, dtype=dtype)

    # warm-up on one chunk's worth (first-call costs: Gram matrix, allocator, kernels)
    batch_omp(w_dev[: min(n, 2048)], a, sparsity=s, chunk_size=chunk_size)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    res = None
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        res = batch_omp(w_dev, a, sparsity=s, chunk_size=chunk_size)
        _sync(device)
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak, peak_kind = torch.cuda.max_memory_allocated(device), "torch.cuda.max_memory_allocated"
    else:
        scale = 1 if sys.platform == "darwin" else 1024
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        peak_kind = "ru_maxrss: peak resident set of the whole benchmark process so far"
    med = statistics.median(times)

    a64 = sensing_matrix(k1, k2, seed, dtype=torch.float64).numpy()
    sk_n, sk_rate, sk_supports = _sklearn_supports(
        w.numpy(), a64, s, sklearn_seconds, min(sklearn_max, n)
    )
    idx = res.indices[:sk_n].cpu().numpy()
    ours = [frozenset(int(v) for v in row if v >= 0) for row in idx]
    agree = sum(o == r for o, r in zip(ours, sk_supports, strict=True)) / sk_n
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "case": [k1, k2, s],
        "device": device.type,
        "device_name": _device_name(device),
        "n": n,
        "dtype": str(dtype).removeprefix("torch."),
        "repeats": repeats,
        "seconds_median": round(med, 4),
        "vectors_per_s": round(n / med, 1),
        "sklearn_n": sk_n,
        "sklearn_vectors_per_s": round(sk_rate, 2),
        "ratio": round(n / med / sk_rate, 2),
        "support_agreement": round(agree, 5),
        "peak_memory_bytes": int(peak),
        "peak_memory_kind": peak_kind,
        "load_average_1min": None if load is None else round(load, 2),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--case", action="append", type=_case, metavar="K1,K2,S",
                   help="repeatable; default: 128,1024,32 64,512,16 1024,4096,256")
    p.add_argument("--n", type=int, default=None,
                   help="signals per case (default: sized to a few seconds per timed run)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--sklearn-seconds", type=float, default=3.0,
                   help="time budget for the scikit-learn reference per case")
    p.add_argument("--sklearn-max", type=int, default=20000,
                   help="at most this many signals for the scikit-learn reference")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--out", metavar="FILE", help="also write every case, with the machine, as one JSON document")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    dtype = getattr(torch, args.dtype)
    load = [model_throughput._load()]
    out = []
    for k1, k2, s in args.case or DEFAULT_CASES:
        row = run_case(
            k1, k2, s, device=device, dtype=dtype, n=args.n, repeats=max(1, args.repeats),
            seed=args.seed, sklearn_seconds=args.sklearn_seconds, sklearn_max=args.sklearn_max,
            chunk_size=args.chunk_size,
        )
        print(json.dumps(row), flush=True)
        out.append(row)
    if args.out:
        load.append(model_throughput._load())
        doc = {"name": "omp_speed",
               "description": "batch_omp against scikit-learn's orthogonal_mp_gram (float64, Gram and A^T W "
                              "precomputed): vectors/s, support agreement, peak memory, per (k1, k2, s)",
               "machine": machine(load),
               "config": {k: v for k, v in vars(args).items() if k != "out"},
               "results": out}
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
