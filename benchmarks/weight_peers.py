"""Weight coders on one fitted COIN SIREN: float16, uniform + Brotli, SINR, and NNCodec (optional).

A COIN SIREN is fitted to one bundled image; its state_dict is then coded by each coder over a sweep of
the coder's rate knob. Per operating point we measure the bits per weight (every compressed byte x 8 /
every parameter of the state_dict, biases included) and the PSNR of the image rendered with the decoded
weights (8-bit PSNR, as the adapters measure it). No coder fine-tunes: the weights are coded as fitted.

Coders (one rate knob each):

- ``float16``: every tensor stored as IEEE half (the reference; COIN's own storage; 16 bits/weight).
- ``uniform``: per-tensor symmetric uniform quantization at B bits (``step = max|w| / (2**(B-1) - 1)``),
  all integers of all tensors Brotli-coded together (quality 11; byte-planed above 8 bits); knob B.
- ``sinr``: the ``sinr`` numcodecs codec (:class:`sinr_codecs.codec.SINR`) on the hidden-to-hidden
  weight matrices (COIN's SINR tensors); the first layer, the output layer and every bias stay float16;
  knobs: sparsity and value bits (dictionary 8 x k1, delta index coding, the codec's default entropy back
  end). No fine-tuning of the sparse values (the adapters' ``compress(..., finetune_steps=n)`` does that;
  this benchmark does not).
- ``nncodec``: Fraunhofer's NNCodec (MPEG NNC, ISO/IEC 15938-17: DeepCABAC with dependent quantization)
  on the whole state_dict, ``nncodec.nnc.compress`` / ``decompress``; knob: its quantization parameter
  ``qp`` (step 2**(qp/4)); 1-D tensors (biases) at its ``nonweight_qp`` (default -75, NNCodec's).
  Optional: NNCodec is never a dependency of sinr-codecs; install it in a separate venv (docs/peers.md).
- ``rate-aware``: :func:`sinr_adapters.rate_coding.rate_aware.compress` (learned per-tensor steps, Laplace rate term,
  rANS; ``--rate-aware-steps`` Adam steps on the image, so unlike the coders above it fine-tunes the
  weights); knob: the rate weight ``lam`` (``--rate-aware-lams``). Every byte of its stream counts,
  the adapter header included.
- ``rate-aware+seed``: the same on a second SIREN fitted from the seeded initialisation
  (:func:`sinr_adapters.rate_coding.rate_aware.seeded_init`, seed ``--seed``), coding ``theta - theta0``. It is another
  network, with its own float32 PSNR: the summary also gives its bits/weight within ``--tolerance`` of
  that (``rate-aware+seed (own float32)``); its ``rel_error`` is against its own float32 weights.

    python benchmarks/weight_peers.py                          # 128-px astronaut, width 64, 3 layers
    python benchmarks/weight_peers.py --out peers-out          # + results.json and rd.png
    python benchmarks/weight_peers.py --image coffee --width 96 --steps 3000 --seed 1
    python benchmarks/weight_peers.py --json benchmarks/results/weight_peers.json   # the committed result

One JSON line per operating point goes to standard output, then the summary: per coder, the smallest
bits/weight whose PSNR stays within ``--tolerance`` dB (0.5) of the unquantized (float32) PSNR, read off
the coder's Pareto front (points no other point of the coder beats in both rate and PSNR) by linear
interpolation between the two sweep points that straddle the target. Progress goes to standard error.
``--json FILE`` writes the run as one JSON document (``{"name", "description", "machine", "config",
"summary", "results"}``, every operating point in ``results``) with the machine measured by
``model_throughput.machine()``, NNCodec's version and import, and the 1-minute load average at the start
and the end.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import struct
import sys
import time
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's other scripts, as modules
import model_throughput  # noqa: E402

Template = Mapping[str, tuple[int, ...]]

DEFAULT_UNIFORM_BITS = "3,4,5,6,7,8,9,10,11,12,13,14,16"
DEFAULT_SPARSITY = "0.25,0.375,0.5,0.625,0.6875,0.75,0.8125,0.875"
DEFAULT_VALUE_BITS = "6,8,9,10,11,12"
DEFAULT_QP = ",".join(str(q) for q in range(-64, -22, 2))

NNCODEC_HINT = ("nncodec is not importable: NNCodec is skipped. To include it, set up the benchmark-only venv "
                "of docs/peers.md (pip install nncodec --no-deps into a venv of its own; never into the "
                "project's environment)")


# --------------------------------------------------------------------------------------------------
# state_dict helpers
# --------------------------------------------------------------------------------------------------

def template_of(sd: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` in the state_dict's order (what a decoder knows: the architecture)."""
    return {k: tuple(int(d) for d in np.shape(v)) for k, v in sd.items()}


def count_weights(sd: Mapping[str, np.ndarray]) -> int:
    """Number of parameters in a state_dict (weights and biases)."""
    return int(sum(np.size(v) for v in sd.values()))


def bits_per_weight(data: bytes, sd: Mapping[str, np.ndarray]) -> float:
    """Compressed bytes x 8 / number of parameters coded."""
    return len(data) * 8.0 / count_weights(sd)


def _numel(shape: Sequence[int]) -> int:
    return int(math.prod(shape)) if len(shape) else 1


def _write_varint(buf: io.BytesIO, n: int) -> None:
    while True:
        byte, n = n & 0x7F, n >> 7
        buf.write(bytes([byte | (0x80 if n else 0)]))
        if not n:
            return


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


# --------------------------------------------------------------------------------------------------
# coders: encode(sd, ...) -> bytes, decode(bytes, template, ...) -> sd (float32 numpy arrays)
# --------------------------------------------------------------------------------------------------

def encode_float16(sd: Mapping[str, np.ndarray]) -> bytes:
    """Every tensor as little-endian float16, concatenated in state_dict order."""
    return b"".join(np.asarray(v, dtype="<f2").tobytes() for v in sd.values())


def decode_float16(data: bytes, template: Template) -> dict[str, np.ndarray]:
    out, pos = {}, 0
    for k, shape in template.items():
        n = _numel(shape)
        out[k] = np.frombuffer(data, dtype="<f2", count=n, offset=pos).astype(np.float32).reshape(shape)
        pos += 2 * n
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} trailing bytes in a float16 stream")
    return out


def encode_uniform(sd: Mapping[str, np.ndarray], bits: int) -> bytes:
    """Per-tensor symmetric uniform quantization at ``bits`` bits, then Brotli (quality 11).

    Layout: ``u8 bits | f32 step per tensor | brotli(integers offset to unsigned)``; above 8 bits the
    16-bit integers are split into a low-byte plane and a high-byte plane before Brotli.
    """
    import brotli

    bits = int(bits)
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be in 2..16, got {bits}")
    qmax = 2 ** (bits - 1) - 1
    head = io.BytesIO()
    head.write(struct.pack("<B", bits))
    ints = []
    for v in sd.values():
        v = np.asarray(v, dtype=np.float32).reshape(-1)
        amax = float(np.abs(v).max()) if v.size else 0.0
        step = float(np.float32(amax / qmax)) if amax > 0 else 1.0
        head.write(struct.pack("<f", step))
        q = np.clip(np.rint(v / np.float32(step)), -qmax, qmax).astype(np.int64)
        ints.append(q + qmax)
    allq = np.concatenate(ints) if ints else np.zeros(0, np.int64)
    if bits <= 8:
        raw = allq.astype(np.uint8).tobytes()
    else:
        u = allq.astype("<u2").view(np.uint8).reshape(-1, 2)
        raw = u[:, 0].tobytes() + u[:, 1].tobytes()
    return head.getvalue() + brotli.compress(raw, quality=11)


def decode_uniform(data: bytes, template: Template) -> dict[str, np.ndarray]:
    import brotli

    (bits,) = struct.unpack_from("<B", data, 0)
    qmax = 2 ** (bits - 1) - 1
    steps = struct.unpack_from(f"<{len(template)}f", data, 1)
    raw = brotli.decompress(data[1 + 4 * len(template):])
    total = sum(_numel(s) for s in template.values())
    if bits <= 8:
        allq = np.frombuffer(raw, dtype=np.uint8, count=total).astype(np.int64)
    else:
        planes = np.frombuffer(raw, dtype=np.uint8, count=2 * total).reshape(2, total)
        allq = planes[0].astype(np.int64) | (planes[1].astype(np.int64) << 8)
    out, pos = {}, 0
    for (k, shape), step in zip(template.items(), steps, strict=True):
        n = _numel(shape)
        out[k] = ((allq[pos:pos + n] - qmax).astype(np.float32) * np.float32(step)).reshape(shape)
        pos += n
    return out


def encode_sinr(sd: Mapping[str, np.ndarray], names: Sequence[str], *, sparsity: float, value_bits: int,
                dictionary_ratio: float = 8.0, seed: int = 0) -> bytes:
    """The ``sinr`` codec on the tensors ``names``; every other tensor as float16.

    Layout, in state_dict order: a tensor in ``names`` is ``varint length | SINR stream`` (self-describing,
    docs/format.md; the ``i``-th such tensor uses dictionary seed ``seed + i``), any other tensor is raw
    little-endian float16.
    """
    from sinr_codecs.codec import SINR

    missing = [n for n in names if n not in sd]
    if missing:
        raise KeyError(f"tensors {missing} are not in the state_dict")
    chosen = set(names)
    buf = io.BytesIO()
    i = 0
    for k, v in sd.items():
        if k in chosen:
            codec = SINR(sparsity=sparsity, value_bits=int(value_bits), dictionary_ratio=dictionary_ratio,
                         seed=seed + i, device="cpu")
            blob = codec.encode(np.ascontiguousarray(v, dtype=np.float32))
            _write_varint(buf, len(blob))
            buf.write(blob)
            i += 1
        else:
            buf.write(np.asarray(v, dtype="<f2").tobytes())
    return buf.getvalue()


def decode_sinr(data: bytes, template: Template, names: Sequence[str]) -> dict[str, np.ndarray]:
    from sinr_codecs.codec import SINR

    chosen = set(names)
    codec = SINR(device="cpu")
    out, pos = {}, 0
    for k, shape in template.items():
        if k in chosen:
            n, pos = _read_varint(data, pos)
            arr = np.asarray(codec.decode(data[pos:pos + n]), dtype=np.float32)
            pos += n
            if arr.shape != tuple(shape):
                raise ValueError(f"SINR section for {k!r} has shape {arr.shape}, expected {tuple(shape)}")
            out[k] = arr
        else:
            n = _numel(shape)
            out[k] = np.frombuffer(data, dtype="<f2", count=n, offset=pos).astype(np.float32).reshape(shape)
            pos += 2 * n
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} trailing bytes in a SINR state_dict stream")
    return out


_NNCODEC: dict[str, Any] = {}


def nncodec_api() -> tuple[Callable, Callable, str]:
    """``(compress, decompress, how)`` from ``nncodec.nnc``, or ImportError.

    ``nncodec.nnc`` imports NNCodec's model framework (torchvision, OpenCV, pandas, h5py, scikit-learn,
    its ImageNet/CIFAR loaders) at import time, although ``compress``/``decompress`` of a dict of numpy
    arrays use none of it. When that import fails (e.g. no torchvision build for the installed torch),
    the framework package is replaced by an empty placeholder in ``sys.modules`` and only the codec core
    (``nncodec.nnc_core`` and the compiled DeepCABAC extension) is imported: ``how`` is then ``"core"``.
    """
    if _NNCODEC:
        return _NNCODEC["compress"], _NNCODEC["decompress"], _NNCODEC["how"]
    try:
        import nncodec  # noqa: F401
    except ImportError as exc:
        raise ImportError(NNCODEC_HINT) from exc
    how = "full"
    try:
        from nncodec.nnc import compress, decompress
    except Exception as exc:  # torchvision / cv2 / pandas missing or broken: fall back to the core
        full_error = f"{type(exc).__name__}: {exc}"
        for name in [m for m in sys.modules if m == "nncodec" or m.startswith("nncodec.")]:
            del sys.modules[name]
        framework = types.ModuleType("nncodec.framework")
        framework.__path__ = []  # a package with no files: nothing below it can be imported by accident
        for sub in ("tensorflow_model", "pytorch_model", "use_case_init"):
            mod = types.ModuleType(f"nncodec.framework.{sub}")
            setattr(framework, sub, mod)
            sys.modules[mod.__name__] = mod
        sys.modules["nncodec.framework"] = framework
        try:
            from nncodec.nnc import compress, decompress
        except Exception as exc2:
            raise ImportError(f"{NNCODEC_HINT} (import failed: {full_error}; core-only: "
                              f"{type(exc2).__name__}: {exc2})") from exc2
        how = "core"
        _NNCODEC["full_error"] = full_error
    _NNCODEC.update(compress=compress, decompress=decompress, how=how)
    return compress, decompress, how


def nncodec_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("nncodec")
    except Exception:
        return None


def encode_nncodec(sd: Mapping[str, np.ndarray], qp: int, *, nonweight_qp: int = -75, use_dq: bool = True) -> bytes:
    """NNCodec bitstream of the whole state_dict (``nncodec.nnc.compress`` with the defaults of
    ``nncodec.nn.encode``: uniform quantizer, qp_density 2, dependent quantization, parameter
    optimisation, row skipping; nothing written to disk)."""
    compress, _, _ = nncodec_api()
    params = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}
    bs = compress(params, bitstream_path=None, qp=int(qp), qp_density=2, nonweight_qp=int(nonweight_qp),
                  use_dq=bool(use_dq), codebook_mode=0, param_opt=True, row_skipping=True,
                  return_bitstream=True, verbose=False)
    return bytes(bs)


def decode_nncodec(data: bytes, template: Template | None = None) -> dict[str, np.ndarray]:
    _, decompress, _ = nncodec_api()
    rec = decompress(bytearray(data), verbose=False)  # bytes would be taken for a file path
    out = {k: np.asarray(v, dtype=np.float32) for k, v in rec.items()}
    if template is not None:
        out = {k: out[k].reshape(shape) for k, shape in template.items()}
    return out


# --------------------------------------------------------------------------------------------------
# sweeps and the summary
# --------------------------------------------------------------------------------------------------

def relative_error(sd: Mapping[str, np.ndarray], dec: Mapping[str, np.ndarray]) -> float:
    a = np.concatenate([np.asarray(sd[k], np.float64).reshape(-1) for k in sd])
    b = np.concatenate([np.asarray(dec[k], np.float64).reshape(-1) for k in sd])
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


def pareto_front(points: Sequence[Mapping[str, float]]) -> list[Mapping[str, float]]:
    """The points no other point beats in both bits/weight (lower) and PSNR (higher), by rate."""
    front: list[Mapping[str, float]] = []
    for p in sorted(points, key=lambda p: (p["bits_per_weight"], -p["psnr"])):
        if not front or p["psnr"] > front[-1]["psnr"]:
            front.append(p)
    return front


def bits_within(points: Sequence[Mapping[str, float]], target_psnr: float) -> float | None:
    """Smallest bits/weight at which the Pareto front reaches ``target_psnr``, interpolated linearly
    between the two front points that straddle it (the first point itself if it already reaches it);
    ``None`` if no point reaches it."""
    front = pareto_front(points)
    for i, p in enumerate(front):
        if p["psnr"] >= target_psnr:
            if i == 0:
                return float(p["bits_per_weight"])
            q = front[i - 1]
            t = (target_psnr - q["psnr"]) / (p["psnr"] - q["psnr"])
            return float(q["bits_per_weight"] + t * (p["bits_per_weight"] - q["bits_per_weight"]))
    return None


def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="weight_peers", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--image", default="astronaut", help="bundled image (sinr_adapters.framework.images)")
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--width", type=int, default=64, help="SIREN width")
    p.add_argument("--layers", type=int, default=3, help="sine layers (COIN's num_layers)")
    p.add_argument("--steps", type=int, default=1500, help="fitting steps (Adam, full batch)")
    p.add_argument("--lr", type=float, default=1e-3, help="fitting learning rate (COIN's)")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--coders", default="float16,uniform,sinr,nncodec",
                   help="comma-separated subset of float16,uniform,sinr,nncodec")
    p.add_argument("--uniform-bits", default=DEFAULT_UNIFORM_BITS, help="uniform: bits B to sweep")
    p.add_argument("--sparsity", default=DEFAULT_SPARSITY, help="SINR: atoms per vector (fractions of k1)")
    p.add_argument("--value-bits", default=DEFAULT_VALUE_BITS, help="SINR: bits per sparse value")
    p.add_argument("--dictionary-ratio", type=float, default=8.0, help="SINR: k2 / k1")
    p.add_argument("--qp", default=DEFAULT_QP,
                   help="NNCodec: quantization parameters to sweep (write --qp=-40,-32: they are negative)")
    p.add_argument("--nnc-nonweight-qp", type=int, default=-75, help="NNCodec: qp of 1-D tensors (biases)")
    p.add_argument("--rate-aware-lams", default="3e-6,1e-5,3e-5,1e-4,3e-4,1e-3",
                   help="rate-aware: rate weights to sweep (bits per pixel against MSE)")
    p.add_argument("--rate-aware-steps", type=int, default=300, help="rate-aware: fine-tuning steps")
    p.add_argument("--tolerance", type=float, default=0.5, help="summary: allowed PSNR loss in dB")
    p.add_argument("--out", metavar="DIR", help="write DIR/results.json and DIR/rd.png")
    p.add_argument("--json", metavar="FILE", help="write the run, with the machine, as one JSON document")
    return p


def _environment(threads: int) -> dict[str, Any]:
    import torch

    env = {"python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(),
           "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": threads,
           "numpy": np.__version__, "cuda": False}
    try:
        from importlib.metadata import version

        env["sinr_codecs"] = version("sinr-codecs")
    except Exception:
        pass
    return env



def machine(load: Sequence[float | None], nncodec_import: str | None) -> dict[str, Any]:
    """Where the figures were measured: ``model_throughput.machine()`` (platform, CPU model, cores, Python,
    torch, numpy, torch threads), brotli's, pcodec's and NNCodec's versions (NNCodec's import: ``full``,
    ``core`` or ``None`` when it was not run) and the 1-minute load averages ``load``."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for dist in ("brotli", "pcodec", "sinr-codecs"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    versions["nncodec"] = nncodec_version() if nncodec_import else None
    return {**model_throughput.machine(), "versions": versions, "nncodec_import": nncodec_import,
            "load_average_1min": list(load)}


def plot(results: Mapping[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = {"float16": "s", "uniform": "o", "sinr": "^", "nncodec": "D"}
    for coder in results["coders"]:
        pts = [p for p in results["points"] if p["coder"] == coder]
        if not pts:
            continue
        front = pareto_front(pts)
        line, = ax.plot([p["bits_per_weight"] for p in front], [p["psnr"] for p in front],
                        marker=markers.get(coder, "o"), label=coder)
        rest = [p for p in pts if p not in front]
        if rest:
            ax.scatter([p["bits_per_weight"] for p in rest], [p["psnr"] for p in rest], s=12,
                       color=line.get_color(), alpha=0.35)
    ref = results["psnr_float32"]
    ax.axhline(ref, color="k", lw=0.8, ls="--", label=f"float32 ({ref:.2f} dB)")
    ax.axhline(ref - results["tolerance_db"], color="gray", lw=0.8, ls=":",
               label=f"float32 - {results['tolerance_db']:g} dB")
    lo = min(p["psnr"] for p in results["points"])
    ax.set_ylim(max(lo, ref - 15) - 0.5, ref + 1)
    ax.set_xlabel("bits per weight (all parameters)")
    ax.set_ylabel("PSNR (dB, 8-bit)")
    cfg = results["config"]
    ax.set_title(f"COIN SIREN {cfg['image']} {cfg['size']} px, width {cfg['width']}, {cfg['layers']} layers "
                 f"({results['num_weights']} weights)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    coders = [c.strip() for c in args.coders.split(",") if c.strip()]
    unknown = set(coders) - {"float16", "uniform", "sinr", "nncodec", "rate-aware", "rate-aware+seed"}
    if unknown:
        print(f"unknown coders {sorted(unknown)}", file=sys.stderr)
        return 2
    import torch

    from sinr_adapters.framework.images import load_image
    from sinr_adapters.methods.coin import COINAdapter

    torch.set_num_threads(max(1, args.threads))
    load = [model_throughput._load()]
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    nnc_how = None
    if "nncodec" in coders:
        try:
            _, _, nnc_how = nncodec_api()
            note = (f": codec core only, the full import failed ({_NNCODEC['full_error']})"
                    if nnc_how == "core" else "")
            log(f"nncodec {nncodec_version()} imported{note}")
        except ImportError:
            print(NNCODEC_HINT, flush=True)
            coders.remove("nncodec")

    adapter = COINAdapter(width=args.width, layers=args.layers)
    signal = adapter.signal_from_image(load_image(args.image, args.size), name=args.image)
    log(f"fitting {adapter!r} to {args.image} {args.size} px, {args.steps} steps, seed {args.seed} ...")
    t0 = time.perf_counter()
    model, fit_log = adapter.fit(signal, steps=args.steps, lr=args.lr, seed=args.seed, device="cpu")
    fit_s = time.perf_counter() - t0
    model.eval()
    psnr32 = adapter.psnr(model, signal)
    sd = {k: v.detach().cpu().float().numpy().copy() for k, v in model.state_dict().items()}
    template = template_of(sd)
    n_weights = count_weights(sd)
    sinr_names = adapter.sinr_tensor_names(model)
    n_sinr = sum(sd[k].size for k in sinr_names)
    log(f"fitted in {fit_s:.1f} s: float32 PSNR {psnr32:.3f} dB, {n_weights} weights "
        f"({n_sinr} in the SINR-coded matrices {', '.join(sinr_names)})")

    def evaluate(dec: Mapping[str, np.ndarray]) -> float:
        m = adapter.build_model()
        m.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in dec.items()}, strict=True)
        m.eval()
        return adapter.psnr(m, signal)

    points: list[dict[str, Any]] = []
    own_psnr: dict[str, float] = {}  # float32 PSNR of a coder's own network (rate-aware+seed)

    def record(coder: str, knob: dict[str, Any], encode: Callable[[], bytes],
               decode: Callable[[bytes], dict[str, np.ndarray]],
               extra: Callable[[bytes], dict[str, Any]] | None = None,
               reference: Mapping[str, np.ndarray] | None = None) -> None:
        t = time.perf_counter()
        data = encode()
        enc_s = time.perf_counter() - t
        t = time.perf_counter()
        dec = decode(data)
        dec_s = time.perf_counter() - t
        psnr = evaluate(dec)
        point = {"coder": coder, **knob, "bytes": len(data), "weights": n_weights,
                 "bits_per_weight": round(len(data) * 8.0 / n_weights, 4), "psnr": round(psnr, 4),
                 "delta_psnr": round(psnr - psnr32, 4),
                 "rel_error": round(relative_error(sd if reference is None else reference, dec), 6),
                 "encode_s": round(enc_s, 4), "decode_s": round(dec_s, 4), **(extra(data) if extra else {})}
        points.append(point)
        print(json.dumps(point), flush=True)

    for coder in coders:
        if coder == "float16":
            record("float16", {}, lambda: encode_float16(sd), lambda d: decode_float16(d, template))
        elif coder == "uniform":
            for b in _ints(args.uniform_bits):
                record("uniform", {"bits": b}, lambda b=b: encode_uniform(sd, b),
                       lambda d: decode_uniform(d, template))
        elif coder == "sinr":
            if not n_sinr:
                log("sinr skipped: the network has no hidden-to-hidden matrix (--layers 1)")
                continue
            fp16_bytes = 2 * (n_weights - n_sinr)

            def sinr_part(data: bytes, fp16_bytes: int = fp16_bytes) -> dict[str, Any]:  # the SINR streams alone
                return {"sinr_part_bits_per_weight": round((len(data) - fp16_bytes) * 8.0 / n_sinr, 4)}
            for vb in _ints(args.value_bits):
                for s in _floats(args.sparsity):
                    record("sinr", {"sparsity": s, "value_bits": vb},
                           lambda s=s, vb=vb: encode_sinr(sd, sinr_names, sparsity=s, value_bits=vb,
                                                          dictionary_ratio=args.dictionary_ratio, seed=args.seed),
                           lambda d: decode_sinr(d, template, sinr_names), sinr_part)
        elif coder == "nncodec":
            for qp in _ints(args.qp):
                record("nncodec", {"qp": qp, "nonweight_qp": args.nnc_nonweight_qp},
                       lambda qp=qp: encode_nncodec(sd, qp, nonweight_qp=args.nnc_nonweight_qp),
                       lambda d: decode_nncodec(d, template))

        elif coder in ("rate-aware", "rate-aware+seed"):
            from sinr_adapters.rate_coding import rate_aware as ra
            from sinr_adapters.rate_coding import stream as rate_stream

            net, seed, stds, own_sd = model, None, None, None
            if coder == "rate-aware+seed":
                init, stds = ra.seeded_init(adapter, args.seed)
                seed = args.seed
                net, _ = adapter.fit(signal, steps=args.steps, lr=args.lr, device="cpu", model=init)
                net.eval()
                own_psnr[coder] = adapter.psnr(net, signal)
                own_sd = {k: v.detach().cpu().float().numpy().copy() for k, v in net.state_dict().items()}
                log(f"seeded SIREN fitted: float32 PSNR {own_psnr[coder]:.3f} dB")

            def ra_decode(d: bytes) -> dict[str, np.ndarray]:
                state = rate_stream.decompress(adapter, d).model.state_dict()
                return {k: v.detach().cpu().float().numpy() for k, v in state.items()}
            for lam in _floats(args.rate_aware_lams):
                opts = ra.RateAwareOptions(lam=lam, steps=args.rate_aware_steps)
                record(coder, {"lam": lam}, lambda o=opts, n=net, sd_=seed, st=stds:
                       ra.compress(adapter, n, signal, o, seed=sd_, stds=st, progress=False)[0], ra_decode,
                       reference=own_sd)

    target = psnr32 - args.tolerance
    summary = {}
    coders = [c for c in coders if any(p["coder"] == c for p in points)]
    for coder in coders:
        summary[coder] = bits_within([p for p in points if p["coder"] == coder], target)
    for coder, own in own_psnr.items():
        summary[f"{coder} (own float32)"] = bits_within([p for p in points if p["coder"] == coder],
                                                        own - args.tolerance)
    print(f"# float32 PSNR {psnr32:.3f} dB; target {target:.3f} dB (within {args.tolerance:g} dB); "
          f"{n_weights} weights; smallest bits/weight reaching the target, linearly interpolated on each "
          f"coder's Pareto front:")
    for coder, bpw in summary.items():
        print(f"#   {coder:8s} {'not reached in the sweep' if bpw is None else f'{bpw:.2f} bits/weight'}")
    print(json.dumps({"summary": {"psnr_float32": round(psnr32, 4), "target_psnr": round(target, 4),
                                  "bits_per_weight_within_tolerance": summary}}), flush=True)

    if args.json:
        load.append(model_throughput._load())
        doc = {"name": "weight_peers",
               "description": "weight coders on one fitted COIN SIREN (float16, uniform + Brotli, SINR without "
                              "fine-tuning, NNCodec, rate-aware): bits/weight over all parameters, 8-bit PSNR",
               "machine": machine(load, nnc_how),
               "config": {k: v for k, v in vars(args).items() if k not in ("out", "json")},
               "summary": {"fit_seconds": round(fit_s, 2), "num_weights": n_weights, "sinr_tensors": sinr_names,
                           "sinr_weights": n_sinr, "psnr_float32": round(psnr32, 4),
                           "psnr_float32_own": {k: round(v, 4) for k, v in own_psnr.items()},
                           "tolerance_db": args.tolerance, "target_psnr": round(target, 4),
                           "bits_per_weight_within_tolerance": {
                               k: None if v is None else round(v, 4) for k, v in summary.items()}},
               "results": points}
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1) + "\n")
        log(f"wrote {args.json}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        results = {
            "name": "weight-peers",
            "description": "weight coders on one fitted COIN SIREN; bits/weight over all parameters, 8-bit PSNR",
            "config": {k: v for k, v in vars(args).items() if k != "out"},
            "environment": {**_environment(args.threads), "nncodec": nncodec_version() if nnc_how else None,
                            "nncodec_import": nnc_how},
            "fit": {"seconds": round(fit_s, 2), **fit_log.to_dict()},
            "num_weights": n_weights, "sinr_tensors": sinr_names, "sinr_weights": n_sinr,
            "psnr_float32": psnr32, "psnr_float32_own": own_psnr, "tolerance_db": args.tolerance,
            "target_psnr": target,
            "coders": coders, "points": points, "summary_bits_per_weight": summary,
        }
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
        plot(results, os.path.join(args.out, "rd.png"))
        log(f"wrote {args.out}/results.json and {args.out}/rd.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
