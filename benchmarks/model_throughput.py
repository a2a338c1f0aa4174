"""Whole-model encode and decode throughput of the per-tensor SINR policy, against Zstd-19 and 8-bit quantization.

This measures the SINR coding of whole models (``sinr compress --lossy sinr``), not the default of
``sinr compress`` (``--lossy global``: one quantizer step for the model, :mod:`sinr_codecs.allocation`),
whose speed against Zstd-19 ``benchmarks/weights_speed.py`` measures. A seeded synthetic model (matrices
of several widths, convolutions, biases and norm weights; 21.1M parameters, or 0.96M with ``--small``) is
coded tensor by tensor four ways, in the same run, on the same tensors:

- ``sinr``: the per-tensor policy :func:`sinr_codecs.policy.choose_policy` (what ``--lossy sinr`` applies):
  each tensor the policy gives to SINR is coded by the ``sinr`` numcodecs codec with the codec's defaults
  plus the policy's per-tensor options (layout, block length); every other tensor (biases, norms)
  losslessly with Blosc-Zstd. One stream per tensor, held in memory (no Zarr store, no chunking, no
  report; the work per weight is the codec's). The codec's default is error-bounded (every vector within
  2%) and its entropy back end is its default (recorded in the output).
- ``sinr_fixed_sparsity``: the same with ``sparsity=0.25`` (fixed-sparsity mode: a known rate, no bound).
- ``zstd19``: numcodecs ``Zstd(level=19)`` on every tensor's float32 bytes (lossless).
- ``uniform8_zstd19``: per-tensor uniform quantization to 8 bits (``min .. max`` in 255 steps) then
  ``Zstd(level=19)`` on the tensors SINR codes; the rest as for ``sinr``.

Each repeat runs every coder once (interleaved, so a busy machine slows all of them alike); reported
figures are medians over the repeats, and the ratios against Zstd-19 are the medians of the per-repeat
ratios. Weights/s count every parameter of the model. The relative error is
``sqrt(sum ||w - w_hat||^2 / sum ||w||^2)`` over the lossy-coded tensors.

    python benchmarks/model_throughput.py                 # 21.1M parameters, 3 repeats
    python benchmarks/model_throughput.py --small --repeats 1
    python benchmarks/model_throughput.py --device cuda --out result.json
    python benchmarks/model_throughput.py --compare-layouts --threads 1   # the policy's layouts

Prints one JSON object (also written to ``--out``, with the machine from :func:`machine` and the 1-minute
load average at the start and after every repeat); progress goes to standard error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: (name, shape) of the full synthetic model: 21.1M parameters.
FULL_MODEL: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("stem.conv.weight", (64, 3, 7, 7)),
    ("stem.conv.bias", (64,)),
    ("stage1.conv.weight", (128, 64, 3, 3)),
    ("stage1.norm.weight", (128,)),
    ("stage2.conv.weight", (256, 128, 3, 3)),
    ("stage2.proj.weight", (256, 64, 1, 1)),
    ("stage3.conv.weight", (512, 256, 3, 3)),
    ("stage3.conv.bias", (512,)),
    ("mlp.up.weight", (4096, 1024)),
    ("mlp.up.bias", (4096,)),
    ("mlp.down.weight", (1024, 4096)),
    ("mlp.down.bias", (1024,)),
    ("attn.qkv.weight", (3072, 768)),
    ("attn.out.weight", (768, 3072)),
    ("square.weight", (2048, 2048)),
    ("square.bias", (2048,)),
    ("fc1.weight", (1024, 1024)),
    ("fc2.weight", (1024, 1024)),
    ("head.weight", (512, 256)),
    ("head.bias", (512,)),
    ("tiny.weight", (16, 32)),
)

#: (name, shape) of the ``--small`` model: 0.96M parameters, the same kinds of tensors.
SMALL_MODEL: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("stem.conv.weight", (32, 3, 7, 7)),
    ("stem.conv.bias", (32,)),
    ("stage1.conv.weight", (64, 32, 3, 3)),
    ("stage2.conv.weight", (128, 64, 3, 3)),
    ("stage2.proj.weight", (128, 32, 1, 1)),
    ("mlp.up.weight", (1024, 256)),
    ("mlp.up.bias", (1024,)),
    ("mlp.down.weight", (256, 1024)),
    ("square.weight", (512, 512)),
    ("fc1.weight", (256, 256)),
    ("head.weight", (128, 64)),
    ("head.bias", (128,)),
)


def synthetic_model(spec: Sequence[tuple[str, tuple[int, ...]]], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded float32 tensors shaped like a trained network's.

    Weights (``ndim >= 2``) are Gaussian with standard deviation ``1/sqrt(fan_in)`` times a per-output
    log-normal scale (sigma 0.3), as neurons of trained layers differ in norm; 1-D tensors are small
    Gaussian values (biases) or values near 1 (names containing ``norm``).
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in spec:
        if len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            scale = rng.lognormal(0.0, 0.3, size=(shape[0],) + (1,) * (len(shape) - 1)) / math.sqrt(fan_in)
            v = rng.standard_normal(shape) * scale
        elif "norm" in name:
            v = 1.0 + 0.05 * rng.standard_normal(shape)
        else:
            v = 0.01 * rng.standard_normal(shape)
        out[name] = v.astype(np.float32)
    return out


def machine(load: Sequence[float | None] | None = None) -> dict[str, Any]:
    """Where the figures were measured (platform, CPU model, cores, Python, torch, numpy, numcodecs, torch
    threads; the GPU's name where CUDA is available), with the 1-minute load averages ``load`` when given."""
    import numcodecs

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "numcodecs": numcodecs.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    if load is not None:
        info["load_average_1min"] = list(load)
    return info


def write_json(doc: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write a result document to ``path`` (its folder made as needed), one JSON document and a newline."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - platform without getloadavg
        return None


# --------------------------------------------------------------------------------------------------
# coders: each returns encode(name, array) -> payload and decode(name, payload) -> array
# --------------------------------------------------------------------------------------------------

class Coder:
    """One way of coding a model tensor by tensor."""

    name = ""

    def encode(self, name: str, a: np.ndarray) -> Any:
        raise NotImplementedError

    def decode(self, name: str, payload: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def size(payload: Any) -> int:
        return len(payload)

    def describe(self, payload: Any) -> dict[str, Any]:
        """What the per-tensor record says about how a tensor was coded (nothing by default)."""
        return {}


def _lossless():
    from numcodecs import Blosc

    return Blosc(cname="zstd", clevel=5, shuffle=Blosc.SHUFFLE)


class SINRPolicy(Coder):
    """The per-tensor SINR policy (``--lossy sinr``): SINR for the tensors it chooses, Blosc-Zstd for the rest.
    ``options`` are added to every SINR codec (e.g. ``{"sparsity": 0.25}``: fixed-sparsity mode instead of
    the error-bounded default)."""

    def __init__(self, device: str, options: dict[str, Any] | None = None, name: str = "sinr"):
        from sinr_codecs.codec import SINR
        from sinr_codecs.policy import choose_policy

        self._sinr, self._choose, self.device = SINR, choose_policy, device
        self.options, self.name = dict(options or {}), name
        self.entropy: str = SINR(**self.options).entropy  # the back end every stream is written with
        self._lossless = _lossless()
        self.decisions: dict[str, Any] = {}

    def codec_for(self, name: str, a: np.ndarray):
        decision = self._choose(name, dtype=str(a.dtype), shape=a.shape, finite=bool(np.isfinite(a).all()))
        self.decisions[name] = decision
        if decision.policy != "sinr":
            return None
        config = {"device": self.device, **decision.options, **self.options}
        if config.get("layout", "auto") == "auto":
            config["layout"] = decision.layout
        if config["layout"] == "blocks" and config.get("block_size") is None:
            from sinr_codecs.weights import _block_size  # the store's choice for short-row layers

            config["block_size"] = _block_size(tuple(a.shape))
        return self._sinr(**config)

    def encode(self, name: str, a: np.ndarray) -> Any:
        codec = self.codec_for(name, a)
        if codec is None:
            return ("lossless", self._lossless.encode(a), a.shape)
        return ("sinr", codec.encode(a.reshape(a.shape[0], -1)), a.shape)

    def decode(self, name: str, payload: Any) -> np.ndarray:
        kind, data, shape = payload
        if kind == "lossless":
            return np.frombuffer(self._lossless.decode(data), dtype=np.float32).reshape(shape)
        return self._sinr().decode(data).reshape(shape)

    @staticmethod
    def size(payload: Any) -> int:
        return len(payload[1])

    def describe(self, payload: Any) -> dict[str, Any]:
        """The stream's mode (``"sparse"``: a dictionary code; ``"dense"``: each vector's values quantized,
        no dictionary) and vector length, read from its header."""
        kind, data, _ = payload
        if kind != "sinr":
            return {"coding": kind}
        from sinr_codecs import bitstream

        head = bitstream.read(data)
        return {"coding": "sinr", "mode": head.mode, "vector_length": head.layout.k1}

    def lossy(self, name: str) -> bool:
        return self.decisions[name].policy == "sinr"


class Zstd19(Coder):
    """numcodecs ``Zstd(level=19)`` on the float32 bytes."""

    name = "zstd19"

    def __init__(self):
        from numcodecs import Zstd

        self._zstd = Zstd(level=19)

    def encode(self, name: str, a: np.ndarray) -> Any:
        return (self._zstd.encode(a), a.shape)

    def decode(self, name: str, payload: Any) -> np.ndarray:
        data, shape = payload
        return np.frombuffer(self._zstd.decode(data), dtype=np.float32).reshape(shape)

    @staticmethod
    def size(payload: Any) -> int:
        return len(payload[0])


class Uniform8(Coder):
    """8-bit per-tensor uniform quantization + Zstd-19 on the tensors the policy gives to SINR."""

    name = "uniform8_zstd19"

    def __init__(self, policy: SINRPolicy):
        from numcodecs import Zstd

        self._zstd, self._policy, self._lossless = Zstd(level=19), policy, _lossless()

    def encode(self, name: str, a: np.ndarray) -> Any:
        if not self._policy.lossy(name):
            return (None, self._lossless.encode(a), a.shape)
        lo, hi = float(a.min()), float(a.max())
        step = (hi - lo) / 255.0 or 1.0
        q = np.rint((a - lo) / step).astype(np.uint8)
        return ((lo, step), self._zstd.encode(q), a.shape)

    def decode(self, name: str, payload: Any) -> np.ndarray:
        quant, data, shape = payload
        if quant is None:
            return np.frombuffer(self._lossless.decode(data), dtype=np.float32).reshape(shape)
        lo, step = quant
        q = np.frombuffer(self._zstd.decode(data), dtype=np.uint8).reshape(shape)
        return (q.astype(np.float32) * np.float32(step) + np.float32(lo)).astype(np.float32)

    @staticmethod
    def size(payload: Any) -> int:
        return len(payload[1])


# --------------------------------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------------------------------

def _timed(fn: Callable[[], Any], device: str) -> tuple[Any, float]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def run_coder(coder: Coder, model: dict[str, np.ndarray], device: str, lossy: Callable[[str], bool]
              ) -> dict[str, Any]:
    """Encode then decode every tensor once; sizes, errors and per-tensor seconds."""
    enc_s, dec_s, size, err2, ref2 = 0.0, 0.0, 0, 0.0, 0.0
    per_tensor = []
    for name, a in model.items():
        payload, te = _timed(lambda name=name, a=a: coder.encode(name, a), device)
        back, td = _timed(lambda name=name, payload=payload: coder.decode(name, payload), "cpu")
        if back.shape != a.shape:
            raise RuntimeError(f"{coder.name}: {name} decoded to shape {back.shape}, expected {a.shape}")
        nbytes = coder.size(payload)
        e2 = float(np.sum((back.astype(np.float64) - a) ** 2))
        r2 = float(np.sum(a.astype(np.float64) ** 2))
        if lossy(name):
            err2, ref2 = err2 + e2, ref2 + r2
        elif e2 != 0.0:
            raise RuntimeError(f"{coder.name}: lossless tensor {name} did not round-trip")
        enc_s, dec_s, size = enc_s + te, dec_s + td, size + nbytes
        per_tensor.append({"name": name, "shape": list(a.shape), **coder.describe(payload),
                           "encode_s": round(te, 4), "decode_s": round(td, 4),
                           "bits_per_weight": round(nbytes * 8 / a.size, 4),
                           "rel_error": round(math.sqrt(e2 / r2), 5) if r2 else 0.0})
    return {"encode_s": enc_s, "decode_s": dec_s, "bytes": size,
            "rel_error": math.sqrt(err2 / ref2) if ref2 else 0.0, "tensors": per_tensor}


#: (block length, dictionary size k2) pairs of ``--compare-layouts``; block 1024 = rows of the matrix.
LAYOUTS = ((32, 1024), (64, 1024), (128, 1024), (16, 1024), (64, 512), (32, 2048), (256, 2048), (1024, 8192))


def compare_layouts(sparsities: Sequence[float] = (0.2, 0.25, 0.3), device: str = "cpu", seed: int = 1
                    ) -> list[dict[str, Any]]:
    """Bits/weight, relative error and encode weights/s of SINR vector layouts on one 256 x 1024 matrix.

    The matrix is Gaussian with a per-row log-normal scale (as :func:`synthetic_model`); each layout is
    coded as the ``sinr`` codec codes it in fixed-sparsity mode (8-bit values, one step per tensor,
    sorted-gap indices, the codec's default entropy back end) at each fractional sparsity; OMP
    (``omp_weights_per_s``) and stream writing (``write_weights_per_s``) are timed apart.
    """
    from sinr_codecs import bitstream
    from sinr_codecs.codec import SINR
    from sinr_codecs.sparse import SparseCode

    entropy = SINR().entropy

    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((256, 1024)) * rng.lognormal(0, 0.3, (256, 1)) * 0.03).astype(np.float32)
    rows = []
    for block, k2 in LAYOUTS:
        for sp in sparsities:
            layout = dict(layout="rows") if block == w.shape[1] else dict(layout="blocks", block_size=block)
            # what SINR(sparsity=sp, dictionary_size=k2, value_bits=8, ...).encode does, timed in two parts
            code, t_fit = _timed(lambda sp=sp, k2=k2, layout=layout: SparseCode.fit(w, sparsity=sp, dictionary_size=k2,
                                                                                     device=device, **layout), device)
            data, t_write = _timed(lambda code=code: code.to_bytes(value_bits=8, entropy=entropy), "cpu")
            back = SparseCode.from_bytes(data).decode()
            err = float(np.linalg.norm(back - w) / np.linalg.norm(w))
            row = {"block": block, "k2": k2, "sparsity": sp, "entropy": bitstream.read(data).backend,
                   "bits_per_weight": round(len(data) * 8 / w.size, 4),
                   "rel_error": round(err, 4), "omp_weights_per_s": round(w.size / t_fit),
                   "write_weights_per_s": round(w.size / t_write)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def layout_summary(rows: Sequence[dict[str, Any]], bits: float = 3.3, sparsity: float = 0.25
                   ) -> list[dict[str, Any]]:
    """Per layout: the relative error at ``bits`` bits/weight, interpolated log-linearly (``log`` of the
    error linear in bits/weight) between the two measured sparsities around it (``None`` outside them),
    and the OMP and writing speeds at ``sparsity``."""
    out = []
    for block, k2 in dict.fromkeys((r["block"], r["k2"]) for r in rows):
        pts = sorted((r["bits_per_weight"], r["rel_error"]) for r in rows if (r["block"], r["k2"]) == (block, k2))
        err = None
        for (b0, e0), (b1, e1) in zip(pts, pts[1:], strict=False):
            if b0 <= bits <= b1 and b1 > b0:
                t = (bits - b0) / (b1 - b0)
                err = round(math.exp(math.log(e0) + t * (math.log(e1) - math.log(e0))), 4)
                break
        at = next((r for r in rows if (r["block"], r["k2"]) == (block, k2) and r["sparsity"] == sparsity), {})
        out.append({"block": block, "k2": k2, f"rel_error_at_{bits:g}_bits": err,
                    f"omp_weights_per_s_at_{sparsity:g}": at.get("omp_weights_per_s"),
                    f"write_weights_per_s_at_{sparsity:g}": at.get("write_weights_per_s")})
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", action="store_true", help="the 0.96M-parameter model (a quick run)")
    p.add_argument("--repeats", type=int, default=3, help="runs of every coder (default 3)")
    p.add_argument("--device", default="cpu", help="where SINR's OMP runs: cpu, cuda, auto (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all CPUs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic weights")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--per-tensor", action="store_true", help="include per-tensor figures (first repeat)")
    p.add_argument("--compare-layouts", action="store_true",
                   help="instead: bits/weight, error and speed of vector layouts on one matrix (JSON lines)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    if args.compare_layouts:
        load = [_load()]
        rows = compare_layouts(device=args.device)
        load.append(_load())
        doc = {"name": "model_throughput_layouts",
               "description": "SINR vector layouts (block length, atoms k2) on one 256 x 1024 Gaussian matrix "
                              "with per-row log-normal scales, fixed sparsity, 8-bit values: bits/weight, "
                              "relative error, OMP and stream-writing weights/s",
               "machine": machine(), "device": args.device, "load_average_1min": load,
               "summary": layout_summary(rows), "results": rows}
        for line in doc["summary"]:
            print(json.dumps({"summary": line}), flush=True)
        _write(doc, args.out, echo=False)
        return doc

    model = synthetic_model(SMALL_MODEL if args.small else FULL_MODEL, args.seed)
    n = sum(a.size for a in model.values())
    sinr = SINRPolicy(args.device)
    for name, a in model.items():  # decide once, so the quantizer baseline codes the same tensors
        sinr.codec_for(name, a)
    fixed = SINRPolicy(args.device, {"sparsity": 0.25}, name="sinr_fixed_sparsity")
    coders: list[Coder] = [Zstd19(), sinr, fixed, Uniform8(sinr)]
    runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in coders}
    load = [_load()]
    for rep in range(args.repeats):
        for coder in coders:
            lossy = sinr.lossy if coder.name != "zstd19" else (lambda _name: False)
            r = run_coder(coder, model, args.device, lossy)
            runs[coder.name].append(r)
            print(f"repeat {rep + 1}/{args.repeats} {coder.name}: encode {n / r['encode_s']:,.0f} weights/s, "
                  f"decode {n / r['decode_s']:,.0f} weights/s", file=sys.stderr, flush=True)
        load.append(_load())

    def med(xs: list[float]) -> float:
        return float(statistics.median(xs))

    results: dict[str, Any] = {}
    for c in coders:
        rs = runs[c.name]
        entry = {
            "encode_weights_per_s": round(med([n / r["encode_s"] for r in rs])),
            "decode_weights_per_s": round(med([n / r["decode_s"] for r in rs])),
            "bits_per_weight": round(rs[0]["bytes"] * 8 / n, 4),
            "rel_error": round(rs[0]["rel_error"], 5),
        }
        if c.name != "zstd19":
            z = runs["zstd19"]
            entry["encode_ratio_vs_zstd19"] = round(
                med([z[i]["encode_s"] / rs[i]["encode_s"] for i in range(len(rs))]), 4)
            entry["decode_ratio_vs_zstd19"] = round(
                med([z[i]["decode_s"] / rs[i]["decode_s"] for i in range(len(rs))]), 4)
        modes = [t["mode"] for t in rs[0]["tensors"] if "mode" in t]
        if modes:  # how many SINR-coded tensors were stored as a sparse code and how many densely
            entry["sinr_tensors_sparse"] = modes.count("sparse")
            entry["sinr_tensors_dense"] = modes.count("dense")
        if args.per_tensor:
            entry["tensors"] = rs[0]["tensors"]
        results[c.name] = entry
    policy = {name: {"policy": d.policy, "layout": d.layout, "reason": d.reason}
              for name, d in sinr.decisions.items()}
    out = {
        "name": "model_throughput",
        "description": "whole-model encode/decode weights/s of the per-tensor SINR policy (sinr compress "
                       "--lossy sinr, one stream per tensor in memory) vs Zstd-19 and 8-bit uniform + Zstd-19",
        "machine": machine(),
        "device": args.device,
        "sinr_entropy": sinr.entropy,
        "model": {"parameters": n, "tensors": len(model), "small": args.small, "seed": args.seed,
                  "sinr_parameters": int(sum(model[k].size for k in model if sinr.lossy(k)))},
        "repeats": args.repeats,
        "load_average_1min": load,
        "results": results,
        "policy": policy,
    }
    _write(out, args.out)
    return out


def _write(doc: dict[str, Any], path: str | None, echo: bool = True) -> None:
    if echo:
        print(json.dumps(doc, indent=1))
    if path:
        write_json(doc, path)


if __name__ == "__main__":
    main()
