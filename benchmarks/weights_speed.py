"""Whole-model speed, size and memory: ``compress_weights`` / ``sinr compress`` against Zstandard level 19 in the
same run.

Part 1, a 4.3M-parameter model (seeded: four 1024 x 1024 matrices, biases, an embedding, a norm weight; a
``.pt`` file). Interleaved repeats (medians), one thread:

- ``compress_weights`` (model file -> ``.zip`` store, report included) against numcodecs ``Zstd(level=19)``
  encoding every tensor's bytes in memory: weights per second of each, and the ratio;
- decoding: ``sinr_codecs.load_file`` (store -> tensors in memory) and ``decompress_weights`` (store -> ``.pt``
  file) against ``Zstd.decode`` of every tensor;
- the report's share: with ``lossy="sinr"``, the time the uniform column's estimate takes as a share of the
  encode.

Part 2, a large bfloat16 ``.safetensors`` checkpoint: by default a seeded transformer-shaped model of about
60M parameters (embedding 32000 x 512, 14 blocks of attention and MLP matrices, norm weights; weights with
per-row scales); ``--file`` takes any other. ``sinr compress`` and ``sinr decompress`` run as commands, each
in its own process (its peak resident memory is read from the kernel), against ``zstd -19 -T1`` and
``zstd -d`` on the same file: seconds, bytes, peak memory, and the ratios.

    OMP_NUM_THREADS=1 python benchmarks/weights_speed.py --out benchmarks/results/weights_speed.json
    OMP_NUM_THREADS=1 python benchmarks/weights_speed.py --part 2 --file model.safetensors

Prints the figures; ``--out`` writes JSON with the machine named. Part 2 needs the ``zstd`` command.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's other scripts, as modules
import model_throughput  # noqa: E402

_PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")


def small_model(seed: int) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(seed)
    sd: dict[str, Any] = {}
    for i in range(4):
        scale = torch.exp(torch.randn(1024, 1, generator=g) * 0.3) * 0.02
        sd[f"layers.{i}.weight"] = torch.randn(1024, 1024, generator=g) * scale
        sd[f"layers.{i}.bias"] = torch.randn(1024, generator=g) * 0.01
    sd["embed.weight"] = torch.randn(1000, 96, generator=g)
    sd["norm.weight"] = 1 + 0.1 * torch.randn(1024, generator=g)
    return sd


def large_model(path: Path, seed: int, blocks: int = 14, width: int = 512, vocab: int = 32000) -> int:
    """Write a seeded transformer-shaped bfloat16 safetensors file; its number of parameters."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)

    def matrix(rows: int, cols: int, std: float) -> Any:
        scale = torch.exp(torch.randn(rows, 1, generator=g) * 0.3) * std
        return (torch.randn(rows, cols, generator=g) * scale).to(torch.bfloat16)

    sd = {"embed_tokens.weight": matrix(vocab, width, 1.0)}
    for b in range(blocks):
        p = f"layers.{b}."
        sd[p + "attn.qkv.weight"] = matrix(3 * width, width, width ** -0.5)
        sd[p + "attn.out.weight"] = matrix(width, width, width ** -0.5)
        sd[p + "mlp.up.weight"] = matrix(4 * width, width, width ** -0.5)
        sd[p + "mlp.down.weight"] = matrix(width, 4 * width, (4 * width) ** -0.5)
        sd[p + "norm1.weight"] = (1 + 0.05 * torch.randn(width, generator=g)).to(torch.bfloat16)
        sd[p + "norm2.weight"] = (1 + 0.05 * torch.randn(width, generator=g)).to(torch.bfloat16)
    sd["norm.weight"] = torch.ones(width, dtype=torch.bfloat16)
    save_file(sd, str(path), metadata={"format": "pt"})
    return sum(t.numel() for t in sd.values())


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def part1(repeats: int, seed: int, tmp: Path) -> dict[str, Any]:
    import numcodecs
    import torch

    from sinr_codecs import load_file, uniform
    from sinr_codecs.weights import compress_weights, decompress_weights

    sd = small_model(seed)
    n = sum(t.numel() for t in sd.values())
    src = tmp / "model.pt"
    torch.save(sd, src)
    arrays = [t.numpy() for t in sd.values()]
    zstd = numcodecs.Zstd(level=19)
    runs: dict[str, list[float]] = {k: [] for k in ("zstd19_encode", "zstd19_decode", "compress", "load_file",
                                                    "decompress_to_pt")}
    for r in range(repeats):
        encoded: list[bytes] = []
        runs["zstd19_encode"].append(_timed(lambda out=encoded: out.extend(zstd.encode(a) for a in arrays)))
        runs["zstd19_decode"].append(_timed(lambda blobs=encoded: [zstd.decode(e) for e in blobs]))
        store = tmp / f"m{r}.zip"
        report = compress_weights(src, store, progress=False)  # a first run warms caches and imports
        store.unlink()
        runs["compress"].append(_timed(lambda store=store: compress_weights(src, store, progress=False)))
        runs["load_file"].append(_timed(lambda store=store: load_file(store)))
        runs["decompress_to_pt"].append(_timed(lambda store=store, out=tmp / f"r{r}.pt": decompress_weights(
            store, out, progress=False, overwrite=True)))
        print(f"  repeat {r + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in runs.items()),
              file=sys.stderr)
    med = {k: statistics.median(v) for k, v in runs.items()}
    # the report's uniform column under lossy="sinr": time its estimate takes
    spent = [0.0]
    real_fit, real_est = uniform.fit, uniform.estimate_bytes

    def fit(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real_fit(*a, **k)
        finally:
            if k.get("sample"):
                spent[0] += time.perf_counter() - t0

    def est(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real_est(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t0

    uniform.fit, uniform.estimate_bytes = fit, est
    try:
        t_sinr = _timed(lambda: compress_weights(src, tmp / "sinr.zip", lossy="sinr", device="cpu", progress=False))
    finally:
        uniform.fit, uniform.estimate_bytes = real_fit, real_est
    zbytes = sum(len(zstd.encode(a)) for a in arrays)
    return {
        "parameters": n, "repeats": repeats, "seconds": med,
        "encode_weights_per_s": {"zstd19": n / med["zstd19_encode"], "compress_weights": n / med["compress"]},
        "decode_weights_per_s": {"zstd19": n / med["zstd19_decode"], "load_file": n / med["load_file"],
                                 "decompress_to_pt": n / med["decompress_to_pt"]},
        "encode_ratio_vs_zstd19": med["zstd19_encode"] / med["compress"],
        "decode_ratio_vs_zstd19": {"load_file": med["zstd19_decode"] / med["load_file"],
                                   "decompress_to_pt": med["zstd19_decode"] / med["decompress_to_pt"]},
        "bytes": {"zstd19": zbytes, "store": report.store_bytes, "coded": report.bytes_after,
                  "raw": report.bytes_before},
        "report_share_sinr": {"estimate_seconds": spent[0], "encode_seconds": t_sinr,
                              "share": spent[0] / t_sinr},
    }


def _command(argv: list[str]) -> tuple[float, int]:
    """Run ``argv`` in its own process: (seconds, peak resident memory in bytes)."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _PEAK, *argv], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed: {out.stderr.strip()[-2000:]}")
    return seconds, int(out.stdout.strip().splitlines()[-1]) * 1024


def part2(file: Path | None, seed: int, tmp: Path) -> dict[str, Any]:
    zstd = shutil.which("zstd")
    if zstd is None:
        raise RuntimeError("part 2 needs the zstd command (apt-get install zstd)")
    sinr = shutil.which("sinr") or str(Path(sys.executable).with_name("sinr"))
    if file is None:
        file = tmp / "model.safetensors"
        params = large_model(file, seed)
    else:
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as f:
            params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 (safe_open is not a dict)
    size = file.stat().st_size
    print(f"  {file.name}: {params / 1e6:.1f}M parameters, {size / 2**20:.1f} MiB", file=sys.stderr)
    store, restored, zst = tmp / "model.zip", tmp / "restored.safetensors", tmp / "model.zst"
    t_sinr, peak_sinr = _command([sinr, "compress", str(file), "-o", str(store), "-q", "--force"])
    print(f"  sinr compress {t_sinr:.1f} s, peak {peak_sinr / 2**20:.0f} MiB", file=sys.stderr)
    t_unsinr, peak_unsinr = _command([sinr, "decompress", str(store), "-o", str(restored), "-q", "--force"])
    t_zstd, _ = _command([zstd, "-19", "-T1", "-q", "-f", str(file), "-o", str(zst)])
    print(f"  zstd -19 -T1 {t_zstd:.1f} s", file=sys.stderr)
    t_unzstd, _ = _command([zstd, "-d", "-q", "-f", str(zst), "-o", str(tmp / "unzstd.safetensors")])
    store_bytes, zst_bytes = store.stat().st_size, zst.stat().st_size
    budget = 1.5 * (size + 400 * 2**20)
    return {
        "file": file.name if file.parent != tmp else "seeded transformer-shaped bfloat16 model",
        "parameters": params, "file_bytes": size,
        "sinr_compress": {"seconds": t_sinr, "peak_bytes": peak_sinr, "store_bytes": store_bytes},
        "sinr_decompress": {"seconds": t_unsinr, "peak_bytes": peak_unsinr},
        "zstd19": {"seconds": t_zstd, "bytes": zst_bytes, "decompress_seconds": t_unzstd},
        "speed_ratio_vs_zstd19": t_zstd / t_sinr, "size_ratio_vs_zstd19": store_bytes / zst_bytes,
        "peak_budget_bytes": budget, "peak_within_budget": peak_sinr <= budget,
    }


def machine() -> dict[str, Any]:

    zstd = shutil.which("zstd")
    version = subprocess.run([zstd, "--version"], capture_output=True, text=True).stdout.strip() if zstd else None
    return {**model_throughput.machine(), "zstd": version}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("1", "2", "both"), default="both")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--file", type=Path, help="part 2: a bfloat16 (or any) .safetensors checkpoint to use")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("1", "both"):
            print("part 1: compress_weights on a 4.3M-parameter model against Zstd-19", file=sys.stderr)
            results["model_4m"] = r = part1(args.repeats, args.seed, Path(tmp))
            print(f"4.3M parameters: encode {r['encode_ratio_vs_zstd19']:.2f}x Zstd-19's throughput "
                  f"({r['encode_weights_per_s']['compress_weights'] / 1e6:.2f} vs "
                  f"{r['encode_weights_per_s']['zstd19'] / 1e6:.2f} M weights/s); decode "
                  f"{r['decode_ratio_vs_zstd19']['load_file']:.2f}x (load_file, in memory), "
                  f"{r['decode_ratio_vs_zstd19']['decompress_to_pt']:.2f}x (decompress_weights to a .pt file); "
                  f"bytes: store {r['bytes']['store']}, Zstd-19 {r['bytes']['zstd19']}; report estimate "
                  f"{100 * r['report_share_sinr']['share']:.1f}% of a lossy='sinr' encode")
        if args.part in ("2", "both"):
            print("part 2: sinr compress on a large bfloat16 checkpoint against zstd -19 -T1", file=sys.stderr)
            results["large_bf16"] = r = part2(args.file, args.seed, Path(tmp))
            print(f"{r['parameters'] / 1e6:.1f}M bfloat16 parameters ({r['file_bytes'] / 2**20:.0f} MiB): sinr "
                  f"compress {r['sinr_compress']['seconds']:.1f} s, zstd -19 -T1 {r['zstd19']['seconds']:.1f} s "
                  f"({r['speed_ratio_vs_zstd19']:.1f}x faster); store {r['sinr_compress']['store_bytes'] / 2**20:.1f} "
                  f"MiB = {r['size_ratio_vs_zstd19']:.2f}x zstd's {r['zstd19']['bytes'] / 2**20:.1f} MiB; peak "
                  f"{r['sinr_compress']['peak_bytes'] / 2**20:.0f} MiB (budget 1.5 x (file + 400 MiB) = "
                  f"{r['peak_budget_bytes'] / 2**20:.0f} MiB); decompress {r['sinr_decompress']['seconds']:.1f} s "
                  f"vs zstd -d {r['zstd19']['decompress_seconds']:.1f} s")
    if args.out:
        doc = {"name": "weights_speed", "description": "Whole-model compression speed, size and memory against "
               "Zstandard level 19 in the same run.", "machine": machine(), "results": results}
        args.out.write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
