"""Whole models: a model file  ->  a Zarr group with one array per tensor.

The compressed form is a Zarr format 3 group, a directory or a ``.zip`` file. Each tensor is one array
under a filesystem-safe name; the original name, dtype and shape are kept in the array's attributes and
in the group's ``"sinr_codecs"`` attribute, which also records, per tensor, the coding, its configuration,
the bytes before and after and the relative error measured when compressing (so ``sinr info`` shows them
without decoding anything). :mod:`sinr_codecs.store` reads stores back.

How tensors are coded (``lossy=``, ``sinr compress --lossy``):

- ``"global"`` (the default): every floating-point tensor of 16 values or more is quantized with one step
  for the whole model (:mod:`sinr_codecs.allocation`: the step that meets ``max_rel_error`` over all
  those weights together, or ``step`` itself; finer for 1-D tensors; weighted by ``sensitivities`` when
  given). Each is stored with numcodecs' ``FixedScaleOffset`` and ``PCodec``: any Zarr reader with
  numcodecs and pcodec installed reads these tensors without sinr-codecs.
- ``"sinr"``: the ``sinr`` codec on the weight matrices (:func:`sinr_codecs.policy.choose_policy`): each
  row within ``max_rel_error``, as a sparse code where the dictionary pays, else densely with each row's
  largest step; or fixed-rate with ``sparsity``.
- ``"uniform"``: one step per tensor, each tensor within ``max_rel_error`` (:mod:`sinr_codecs.uniform`).
- ``"best"``: ``"sinr"``, or ``"uniform"`` at the error SINR reached where that is smaller.

Everything else (integer tensors, scalars, tensors with NaN/inf, and whatever the policy keeps exact) is
stored losslessly with Blosc-Zstandard (or raw when Blosc does not help), bit-exact and SHA-256-checked.

Tensors are read from the model file one at a time (:mod:`sinr_codecs.model_files`), and a tensor's values
are held only while it is coded. Outputs never cost the user what was there before
(:mod:`sinr_codecs.outputs`): a store is built in a hidden temporary folder next to its destination and
appears there only when complete, by a rename; ``overwrite=True`` replaces only a store that sinr compress
wrote; an error or an interrupt leaves the previous output as it was. Each chunk is encoded in a worker
thread that the caller waits for in short steps, so that ``KeyboardInterrupt`` stops the work at once.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sinr_codecs import allocation, uniform
from sinr_codecs.errors import WeightsError
from sinr_codecs.lossy import decide_mode, split_overrides
from sinr_codecs.model_files import (
    MODEL_SUFFIXES,
    ModelSource,
    _is_float,
    _Tensor,
    _to_numpy,
    _to_torch,
    _write_error,
    open_model,
)
from sinr_codecs.outputs import _check_destination, _discard, _in_worker, _is_zip, _publish
from sinr_codecs.policy import (
    FLAT_K1,
    FLAT_MAX_ELEMENTS,
    MAX_K1,
    MIN_SINR_ELEMENTS,
    Decision,
    _parse_overrides,
    choose_policy,
)
from sinr_codecs.progress import bar
from sinr_codecs.report import ATTR_KEY, FORMAT_NAME, FORMAT_VERSION, Report, TensorRecord, format_bytes
from sinr_codecs.store import (
    INLINE_KINDS,
    INLINE_MAX_BYTES,
    _dir_size,
    _inline_data,
    _sha256,
    decompress_weights,
    inspect_store,
)
from sinr_codecs.uniform import quiet_numcodecs

__all__ = [
    "WeightsError",
    "TensorRecord",
    "Report",
    "Decision",
    "choose_policy",
    "compress_weights",
    "decompress_weights",
    "inspect_store",
    "MIN_SINR_ELEMENTS",
    "MIN_GLOBAL_ELEMENTS",
    "INLINE_MAX_BYTES",
    "FLAT_K1",
    "FLAT_MAX_ELEMENTS",
    "MAX_K1",
    "MODEL_SUFFIXES",
    "format_bytes",
]

CHUNK_BYTES = 4 << 20
"""Largest Zarr chunk before compression (bytes, as float32)."""
CHUNK_WORK = 1 << 28
"""Bound on ``rows * k1**2`` per chunk, so that one chunk's OMP (and one progress step) stays short."""
MIN_GLOBAL_ELEMENTS = 16
"""Smallest floating-point tensor (values) the ``"global"`` coding quantizes; smaller ones stay exact."""
_LOSSLESS: dict[str, Any] = {"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": "shuffle"}


# ----------------------------------------------------------------------------------------------------
# the store
# ----------------------------------------------------------------------------------------------------
def _safe_names(names: list[str]) -> list[str]:
    """Filesystem- and Zarr-safe, unique (also case-insensitively) array names, one per tensor; never the
    group's own ``zarr.json``."""
    out, seen = [], {"zarr.json"}
    for name in names:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._")[:180] or "tensor"
        safe, i = base, 1
        while safe.lower() in seen:
            safe = f"{base}-{i}"
            i += 1
        seen.add(safe.lower())
        out.append(safe)
    return out


def _chunks_for(shape: tuple[int, ...], layout: str | None, itemsize: int) -> tuple[int, ...]:
    """Chunk shape: whole rows, at most :data:`CHUNK_BYTES` (and for SINR :data:`CHUNK_WORK`) each; one
    chunk for a flat layer."""
    if not shape:
        return ()
    if layout == "flat":
        return tuple(max(1, s) for s in shape)
    k1 = max(1, math.prod(shape[1:]))
    rows = CHUNK_BYTES // (k1 * (max(itemsize, 4) if layout else itemsize))
    if layout is not None:
        rows = min(rows, max(16, CHUNK_WORK // (k1 * min(k1, 64))))
    rows = max(1, min(shape[0], rows))
    return (rows, *(max(1, s) for s in shape[1:]))


# ----------------------------------------------------------------------------------------------------
# options
# ----------------------------------------------------------------------------------------------------
_GLOBAL_OPTIONS = ("max_rel_error", "device")


def _base_config(codec_config: Mapping[str, Any] | None, device: str, lossy: str) -> dict[str, Any]:
    from sinr_codecs.codec import SINR

    config = dict(codec_config or {})
    config.pop("id", None)
    if "dtype" in config:
        raise ValueError("codec_config must not set 'dtype' (each tensor's dtype is its own)")
    if lossy == "global":
        extra = sorted(set(config) - set(_GLOBAL_OPTIONS))
        if extra:
            raise ValueError(f"codec options {extra} apply to the SINR codec: use lossy='sinr' or 'best' "
                             "(sinr compress --lossy sinr); the global coding takes max_rel_error or a step")
    if device != "auto" or "device" not in config:
        config["device"] = device
    SINR(**config)  # validate now, before any work: raises ValueError/TypeError on a bad option
    return config


def _policy_options(decision: Decision, base: Mapping[str, Any]) -> dict[str, Any]:
    """The policy's options for one tensor, less those the caller's explicit options decide.

    The policy's own vector length (``block_size``) and dictionary (``dictionary_size``) give way to an
    explicit ``layout``/``block_size`` and ``dictionary_ratio``/``dictionary_size`` in ``codec_config``;
    options of a matching ``--policy`` pattern (``decision.reason`` "override ...") always apply.
    """
    options = dict(decision.options)
    if decision.reason.startswith("override"):
        return options
    explicit_layout = base.get("layout", "auto") != "auto" or base.get("block_size") is not None
    if explicit_layout:
        options.pop("block_size", None)
    if explicit_layout or "dictionary_ratio" in base or base.get("dictionary_size") is not None:
        options.pop("dictionary_size", None)
    return options


def _check_step(step: float | None) -> float | None:
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, (int, float, np.floating)) or not (
            math.isfinite(float(step)) and float(step) > 0):
        raise ValueError(f"step must be a positive finite number, got {step!r}")
    return float(step)


def _check_sensitivities(sensitivities: Mapping[str, float] | None) -> dict[str, float]:
    out = {}
    for name, v in (sensitivities or {}).items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not (
                math.isfinite(float(v)) and float(v) > 0):
            raise ValueError(f"the sensitivity of {name!r} must be a positive finite number, got {v!r}")
        out[str(name)] = float(v)
    return out


# ----------------------------------------------------------------------------------------------------
# compressing
# ----------------------------------------------------------------------------------------------------
def compress_weights(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    codec_config: Mapping[str, Any] | None = None,
    policy_overrides: Mapping[str, Any] | None = None,
    device: str = "auto",
    progress: bool = True,
    overwrite: bool = False,
    lossy: str = "global",
    step: float | None = None,
    sensitivities: Mapping[str, float] | None = None,
    scheduler: Any = None,
) -> Report:
    """Compress every tensor of a model file into a Zarr group.

    Parameters
    ----------
    src : path
        ``.pt``/``.pth``/``.bin``/``.ckpt`` (PyTorch state_dict), ``.safetensors``, ``.npz``, or a sharded
        checkpoint's index (``model.safetensors.index.json``, shards beside it).
    dst : path
        The store to create: a directory, or a ``.zip`` file.
    codec_config : mapping, optional
        ``max_rel_error``: the relative error allowed (default 0.02): of all lossily coded weights together
        (``lossy="global"``), of every row (``"sinr"``) or of every tensor (``"uniform"``). With ``"sinr"``
        and ``"best"`` also any other option of :class:`sinr_codecs.codec.SINR` (e.g. ``{"sparsity":
        0.25}`` for fixed-rate coding); ``layout`` left at ``"auto"`` lets the policy choose.
    policy_overrides : mapping, optional
        ``{fnmatch pattern: POLICY | {"policy": POLICY, **options}}`` with POLICY one of ``"global"``,
        ``"sinr"`` (options: SINR's), ``"lossless"``, ``"uniform"`` (options: ``max_rel_error`` or ``bits``)
        or ``"best"`` (options: SINR's); all matching patterns apply in order (later ones win). See
        :mod:`sinr_codecs.lossy`.
    device : str, default "auto"
        Where OMP runs (``"sinr"``/``"best"``): "auto", "cpu", "cuda", "cuda:N".
    progress : bool, default True
        Show progress bars (on standard error, and only on a terminal).
    overwrite : bool, default False
        Replace an existing store at ``dst``: only a store written by this function (its group attributes
        say so, and it holds no file of its own) or an empty folder; anything else is refused. The old
        store is replaced by a rename once the new one is complete, never removed before.
    lossy : {"global", "sinr", "uniform", "best"}, default "global"
        How the tensors that are coded lossily are coded, where no override names one (module docstring).
    step : float, optional
        ``"global"``: the quantizer step of the whole model (in the weights' units) instead of a
        ``max_rel_error`` target.
    sensitivities : mapping, optional
        ``"global"``: ``{tensor name: sensitivity}`` (:func:`sinr_codecs.sensitivity.estimate`): steps are
        then finer where the outputs are more sensitive, and ``max_rel_error`` is the sensitivity-weighted
        relative error. Tensors without one get the geometric mean of the others.
    scheduler : str or distributed.Client, optional
        Encode the SINR chunks on a Dask cluster: a scheduler address (``"tcp://host:8786"``) or a client.
        The workers need sinr-codecs installed; the store is written here. Default: in this process.

    Returns
    -------
    Report
        One record per tensor: coding, configuration, bytes before/after and measured relative error, and
        for SINR tensors an estimate of what a per-tensor uniform quantizer needs for the same error.

    Raises
    ------
    FileNotFoundError
        ``src`` does not exist.
    WeightsError
        ``src`` cannot be read (unknown format, not a state_dict, refused pickle, damaged index, ...);
        ``dst`` exists (without ``overwrite``, or it is not ours); ``dst`` cannot be written (its folder is
        missing or not writable, the disk is full: the message names ``dst``).
    ValueError, TypeError
        Bad options or overrides.
    KeyboardInterrupt
        Passed on at once; the temporary output is removed and ``dst`` is left as it was.
    """
    src, dst = Path(src), Path(dst)
    _check_destination(dst, overwrite, store=True)
    with open_model(src) as source:
        return _compress(source, dst, codec_config=codec_config, policy_overrides=policy_overrides,
                         device=device, progress=progress, overwrite=overwrite, lossy=lossy, step=step,
                         sensitivities=sensitivities, scheduler=scheduler)


def _compress(source: ModelSource, dst: Path, *, codec_config: Mapping[str, Any] | None,
              policy_overrides: Mapping[str, Any] | None, device: str, progress: bool, overwrite: bool,
              lossy: str, step: float | None, sensitivities: Mapping[str, float] | None,
              scheduler: Any) -> Report:
    """:func:`compress_weights` of an opened source (also what :func:`sinr_codecs.save_file` runs)."""
    from sinr_codecs.codec import SINR

    t0 = time.perf_counter()
    overrides, modes = split_overrides(policy_overrides)
    decide_mode("", "lossless", modes, lossy, global_ok=False)  # validates lossy
    base = _base_config(codec_config, device, lossy)
    step = _check_step(step)
    sens = _check_sensitivities(sensitivities)
    for _, _, options in _parse_overrides(overrides):
        if options:
            SINR(**{**base, **options})  # validate per-pattern options early
    _check_destination(dst, overwrite, store=True)
    tensors = source.tensors
    if not tensors:
        raise WeightsError(f"{source.path} holds no tensors")
    report = Report(str(source.path), str(dst), source.format, notes=list(source.notes))
    plans = [_plan(t, overrides, modes, lossy) for t in tensors]
    steps = _global_steps(tensors, plans, base.get("max_rel_error"), step, sens, report)
    costs = [_cost(t, plan) for t, plan in zip(tensors, plans, strict=True)]

    existed = os.path.lexists(dst)
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent))
    except OSError as exc:
        raise _write_error(dst, exc, kept=existed) from None
    client, close_client = _client_for(scheduler)
    try:
        import zarr

        root = zarr.open_group(store=zarr.storage.LocalStore(work), mode="w", zarr_format=3)
        names = _safe_names([t.name for t in tensors])
        with bar(total=sum(costs), desc="compress", unit="", quiet=not progress, leave=True,
                 bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]") as outer, \
                quiet_numcodecs():
            for i, (tensor, safe, plan, cost) in enumerate(zip(tensors, names, plans, costs, strict=True)):
                outer.set_postfix_str(f"{i + 1}/{len(tensors)} tensors, {tensor.name}", refresh=True)
                done = [0.0]

                def advance(fraction: float, cost: float = cost, done: list[float] = done) -> None:
                    outer.update(cost * fraction - done[0])
                    done[0] = cost * fraction

                job = _Job(root, tensor, safe, plan, base, source.format, progress, work, advance, client)
                rec = _write_tensor(job, steps.get(tensor.name))
                report.tensors.append(rec)
                advance(1.0)
        root.attrs.update({ATTR_KEY: {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "source_format": source.format,
            "source_name": source.path.name,
            "safetensors_metadata": source.metadata,
            "shards": source.shards,
            "index_metadata": source.index_metadata,
            "global_step": report.global_step,
            "notes": report.notes,
            "tensors": [asdict(r) for r in report.tensors],
        }})
        _publish(work, dst, overwrite)
    except OSError as exc:  # disk full, permissions changed meanwhile, ...
        raise _write_error(dst, exc, kept=existed) from None
    finally:
        if close_client:
            client.close()
        _discard(work)
    report.store_bytes = dst.stat().st_size if _is_zip(dst) else _dir_size(dst)
    report.seconds = time.perf_counter() - t0
    return report


@dataclass(frozen=True)
class _Plan:
    """How one tensor is coded: the policy's decision and the coder (``"lossless"``, ``"global"``,
    ``"sinr"``, ``"uniform"`` or ``"best"``) with its uniform options."""

    decision: Decision
    mode: str
    uniform: Mapping[str, Any]


def _global_ok(tensor: _Tensor) -> bool:
    """Whether the global coding may quantize ``tensor`` (finiteness is checked when its values are read):
    floating point with :data:`MIN_GLOBAL_ELEMENTS` values or more (1-D tensors and matrices under
    :data:`~sinr_codecs.allocation.FINE_BELOW` values get a finer step, :mod:`sinr_codecs.allocation`)."""
    size = math.prod(tensor.shape)
    return _is_float(tensor.dtype) and len(tensor.shape) >= 1 and size >= MIN_GLOBAL_ELEMENTS


def _plan(tensor: _Tensor, overrides: Mapping[str, Any], modes: list[Any], lossy: str) -> _Plan:
    decision = choose_policy(tensor.name, dtype=tensor.dtype, shape=tensor.shape, overrides=overrides)
    mode, options = decide_mode(tensor.name, decision.policy, modes, lossy, global_ok=_global_ok(tensor))
    if mode == "global":
        fine = len(tensor.shape) == 1 or math.prod(tensor.shape) < allocation.FINE_BELOW
        decision = Decision("global", ("1-D: a finer step" if len(tensor.shape) == 1 else "small: a finer step")
                            if fine else "one step for the model")
    return _Plan(decision, mode, options)


def _cost(tensor: _Tensor, plan: _Plan) -> float:
    """Rough relative encoding time (for the overall bar's ETA): values x 64 under SINR (OMP's work per
    value grows with the vector length, at most 64 in error-bounded mode), the number of values otherwise."""
    numel = max(1, math.prod(tensor.shape))
    return float(numel) * (64 if plan.mode in ("sinr", "best") else 1)


def _global_steps(tensors: list[_Tensor], plans: list[_Plan], target: float | None, step: float | None,
                  sens: Mapping[str, float], report: Report) -> dict[str, float]:
    """Each ``"global"`` tensor's step: from ``step``, or solved for ``target`` (one pass over the tensors)."""
    chosen = [t for t, p in zip(tensors, plans, strict=True) if p.mode == "global"]
    if not chosen:
        return {}
    known = [sens[t.name] for t in chosen if t.name in sens]
    fill = math.exp(float(np.mean(np.log(known)))) if known else 1.0
    stats, names = [], []
    for t in chosen:
        values, _ = t.for_sinr(t.value)
        if not np.isfinite(values).all():  # NaN/inf: stored exactly, and out of the step's reckoning
            i = next(i for i, u in enumerate(tensors) if u is t)
            plans[i] = _Plan(Decision("lossless", "has NaN/inf"), "lossless", {})
            continue
        stats.append(allocation.tensor_stats(values, sensitivity=sens.get(t.name, fill)))
        names.append(t.name)
        del values
    if not stats:
        return {}
    goal = None
    if step is None:
        goal = target if target is not None else allocation.DEFAULT_REL_ERROR
        step = allocation.solve_step(stats, goal) if any(s.sumsq > 0 for s in stats) else 1.0
    report.global_step = step
    return dict(zip(names, allocation.steps(stats, step, goal), strict=True))


@dataclass
class _Job:
    """One tensor to code and where: the store's root group and folder, the tensor, its array name and plan,
    the SINR options, the source format, and the progress and cluster context."""

    root: Any
    tensor: _Tensor
    safe: str
    plan: _Plan
    base: dict[str, Any]
    fmt: str
    progress: bool
    folder: Path
    advance: Callable[[float], None]
    client: Any

    def record(self, values: np.ndarray, encoding: str, policy: str, reason: str, codec: dict[str, Any],
               chunks: tuple[int, ...], **extra: Any) -> TensorRecord:
        t = self.tensor
        return TensorRecord(name=t.name, array=self.safe, dtype=t.dtype, shape=list(t.shape),
                            stored_dtype=values.dtype.str, stored_shape=list(values.shape), encoding=encoding,
                            policy=policy, reason=reason, codec=codec, chunks=list(chunks),
                            bytes_before=t.nbytes, **extra)

    def finish(self, rec: TensorRecord) -> TensorRecord:
        folder = self.folder / rec.array
        rec.bytes_after = _dir_size(folder) - (folder / "zarr.json").stat().st_size
        return rec


def _write_tensor(job: _Job, step: float | None) -> TensorRecord:
    """Code one tensor as its plan says; its record, with the bytes written and the error measured."""
    plan, tensor = job.plan, job.tensor
    value = tensor.value
    if plan.mode != "lossless" and not tensor.finite(value):
        return _write_lossless(job, value, Decision("lossless", "has NaN/inf"))
    if plan.mode == "lossless":
        return _write_lossless(job, value, plan.decision)
    if plan.mode in ("sinr", "best"):
        native, native_encoding = tensor.for_sinr(value)
        native = np.asarray(native)
        rec = _write_sinr(job, native.reshape(native.shape[0], -1) if native.ndim >= 2 else native,
                          native_encoding)
        del native
    values, encoding = _uniform_values(tensor, value)
    del value
    rnd = _round_to(tensor)
    if plan.mode == "global":
        assert step is not None
        f = uniform.fit_step(values, step)
        return _write_scaled(job, values, encoding, f, "global", plan.decision.reason, rnd)
    if plan.mode == "uniform":
        bits = plan.uniform.get("bits")
        target = plan.uniform.get("max_rel_error") or job.base.get("max_rel_error") or DEFAULT_UNIFORM_ERROR
        f = uniform.fit_bits(values, bits, round_to=rnd) if bits else uniform.fit(values, target, round_to=rnd)
        return _write_scaled(job, values, encoding, f, "uniform", f"uniform ({plan.decision.reason})", rnd,
                             target=None if bits else float(target))
    rival = None
    if 0.0 < rec.rel_error < 1.0:  # an estimate from a sample: costs a few per cent of SINR's time
        fu = uniform.fit(values, rec.rel_error, round_to=rnd, sample=True)
        rival = (uniform.estimate_bytes(values, fu), fu.bits)
        rec.uniform_bytes, rec.uniform_bits = rival
    if plan.mode == "best" and rival is not None and rival[0] < rec.bytes_after:
        shutil.rmtree(job.folder / job.safe)
        why = (f"best: uniform ~{format_bytes(rival[0])} < sinr {format_bytes(rec.bytes_after)} at "
               f"rel.err {rec.rel_error:.2g}")
        f = uniform.fit(values, rec.rel_error, round_to=rnd)
        urec = _write_scaled(job, values, encoding, f, "uniform", why, rnd, target=rec.rel_error)
        urec.uniform_bytes, urec.uniform_bits = rival
        return urec
    if plan.mode == "best":
        rec.reason += "; best: sinr" + (" < uniform" if rival is not None else "")
    return rec


DEFAULT_UNIFORM_ERROR = 0.02
"""Relative error of ``uniform`` tensors when neither the override nor the configuration sets one."""


def _uniform_values(tensor: _Tensor, value: Any) -> tuple[np.ndarray, str]:
    """Values for the lossy coders: float32 (float64 stays float64; float16 and bfloat16 are widened, encoding
    ``"float32"``), native byte order, matrices as ``(shape[0], prod(shape[1:]))``; and their encoding."""
    values, encoding = tensor.for_sinr(value)
    values = np.asarray(values)
    wide = np.float64 if values.dtype.itemsize == 8 else np.float32
    if values.dtype != wide:
        encoding = "float32" if values.dtype.itemsize < 4 else encoding
        values = values.astype(wide)
    if values.ndim >= 2:
        values = values.reshape(values.shape[0], -1)
    return values, encoding


def _round_to(tensor: _Tensor) -> Callable[[np.ndarray], np.ndarray]:
    """Rounds float64 values to ``tensor``'s dtype and back (what restoring the model file does)."""
    import torch

    if tensor.dtype == "bfloat16":
        return lambda a: torch.from_numpy(a).to(torch.bfloat16).to(torch.float64).numpy()
    dt = np.dtype(tensor.dtype)
    return lambda a: a.astype(dt).astype(np.float64)


def _attrs(tensor: _Tensor, encoding: str, policy: str) -> dict[str, Any]:
    return {ATTR_KEY: {"name": tensor.name, "dtype": tensor.dtype, "shape": list(tensor.shape),
                       "encoding": encoding, "policy": policy}}


def _failed(tensor: _Tensor, policy: str, exc: Exception) -> WeightsError:
    return WeightsError(
        f"cannot compress tensor {tensor.name!r} {tuple(tensor.shape)} {tensor.dtype} with policy "
        f"{policy} ({type(exc).__name__}: {exc}); choose other options for it with a policy override")


def _restored_error(job: _Job, rec: TensorRecord, stored: np.ndarray, values: np.ndarray) -> float:
    """Relative error of the tensor restored from ``stored`` (the decoded array) as the model file will hold
    it, against ``values`` (the original, widened exactly where it was float16 or bfloat16)."""
    from sinr_codecs.codec import relative_error

    restored = _to_numpy(rec, stored) if job.fmt == "npz" else _to_torch(rec, stored)
    return float(relative_error(values, _as_f64(restored)))


def _write_scaled(job: _Job, values: np.ndarray, encoding: str, f: uniform.UniformFit, policy: str, reason: str,
                  round_to: Callable[[np.ndarray], np.ndarray], *, target: float | None = None) -> TensorRecord:
    """One step for the tensor (``global`` or ``uniform``): the integers through numcodecs' FixedScaleOffset
    and PCodec, written chunk by chunk. Each chunk is quantized once: its integers are coded (the coded bytes
    hashed: the record's checksum) and restored to measure the error, so memory follows the chunk, not the
    tensor."""
    import hashlib

    from numcodecs.pcodec import PCodec

    codec_record: dict[str, Any] = {"id": "uniform", "step": f.step, "astype": f.astype, "bits": f.bits,
                                    "target": target, "filter": "fixedscaleoffset", "serializer": "pcodec"}
    if values.nbytes <= INLINE_MAX_BYTES:  # a small tensor: its one chunk in its record, no array of its own
        q = np.ascontiguousarray(f.quantize(values))
        acc = uniform.ErrorAccumulator(round_to)
        acc.add(values, _restore_in_pieces(f, q, values.dtype))
        blob = PCodec().encode(q)
        if len(blob) <= INLINE_MAX_BYTES:
            codec_record["inline"] = _inline_data(np.frombuffer(blob, dtype=np.uint8))
            if target is None and policy != "global":
                codec_record["target"] = acc.rel_error
            rec = job.record(values, encoding, policy, reason, codec_record, values.shape, layout=None,
                             rel_error=acc.rel_error, sha256=hashlib.sha256(blob).hexdigest())
            rec.bytes_after = len(blob)
            return rec
    filters, serializer = uniform.zarr_codecs(f, values.dtype)
    chunks = _chunks_for(values.shape, None, 4)
    codec = PCodec()
    digest = hashlib.sha256()
    errors = uniform.ErrorAccumulator(round_to)
    rows = [0]  # rows of ``values`` coded so far (the chunks come in order; the last one is padded)

    def encode(block: np.ndarray) -> bytes:
        q = np.ascontiguousarray(f.quantize(block))
        valid = min(block.shape[0], values.shape[0] - rows[0]) if values.ndim else 1
        real = q[:valid] if values.ndim else q
        errors.add(block[:valid] if values.ndim else block, _restore_in_pieces(f, real, values.dtype))
        rows[0] += valid
        data = codec.encode(q)
        digest.update(data)
        return data

    try:
        arr = job.root.create_array(name=job.safe, shape=values.shape, chunks=chunks, dtype=values.dtype,
                                    filters=filters, serializer=serializer, compressors=None, fill_value=0,
                                    attributes=_attrs(job.tensor, encoding, policy),
                                    config={"write_empty_chunks": True})
        _write_chunks(arr, values, chunks, job.tensor.name, job.progress, encoder=encode,
                      folder=job.folder / job.safe, advance=job.advance)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise _failed(job.tensor, policy, exc) from exc
    if rows[0] != (values.shape[0] if values.ndim else 1):
        raise RuntimeError(f"{job.tensor.name!r}: {rows[0]} rows coded of {values.shape[0]} (a bug: please report it)")
    rel = errors.rel_error
    if target is None and policy != "global":
        codec_record["target"] = rel
    rec = job.record(values, encoding, policy, reason, codec_record, chunks, layout=None, rel_error=rel,
                     sha256=digest.hexdigest())
    return job.finish(rec)


def _restore_in_pieces(f: uniform.UniformFit, q: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``f.restore(q)`` cast to the stored ``dtype``, as a reader gets it (float64 only a piece at a time)."""
    flat = q.reshape(-1)
    out = np.empty(flat.size, dtype=dtype)
    for i in range(0, flat.size, 1 << 18):
        out[i:i + (1 << 18)] = f.restore(flat[i:i + (1 << 18)])
    return out.reshape(q.shape)


def _write_sinr(job: _Job, values: np.ndarray, encoding: str) -> TensorRecord:
    from sinr_codecs import bitstream
    from sinr_codecs.zarr3 import SINRCodec

    decision, base = job.plan.decision, job.base
    if SINRCodec(**base).max_rel_error is not None and not decision.reason.startswith("override"):
        config = dict(base)  # error-bounded: every row within the bound ("auto"), OMP on blocks of each row
    else:
        config = {**base, **_policy_options(decision, base)}
        if config.get("layout", "auto") == "auto":
            config["layout"] = decision.layout  # fixed sparsity: the policy's vectors
    if config.get("layout") == "blocks" and config.get("block_size") is None:
        config["block_size"] = _block_size(tuple(job.tensor.shape))
    codec = SINRCodec(**config)
    configuration: dict[str, Any] = codec.to_dict()["configuration"]  # type: ignore[assignment]
    codec_record = {"id": "sinr", **configuration}
    chunks = _chunks_for(values.shape, codec.layout, values.dtype.itemsize)
    if codec.layout == "blocks" and codec.block_size:
        per = codec.block_size // math.gcd(codec.block_size, max(1, math.prod(values.shape[1:])))
        chunks = (max(per, chunks[0] // per * per), *chunks[1:]) if chunks else chunks
    try:
        arr = job.root.create_array(name=job.safe, shape=values.shape, chunks=chunks, dtype=values.dtype,
                                    serializer=codec, compressors=None, fill_value=0,
                                    attributes=_attrs(job.tensor, encoding, "sinr"),
                                    config={"write_empty_chunks": True})
        _write_chunks(arr, values, chunks, job.tensor.name, job.progress, encoder=codec.core.encode,
                      folder=job.folder / job.safe, advance=job.advance, client=job.client)
        stored = np.asarray(arr[...])
    except (ValueError, TypeError, RuntimeError) as exc:  # e.g. a dictionary too large for a huge row
        raise _failed(job.tensor, "sinr", exc) from exc
    streams = [bitstream.read((job.folder / job.safe / p).read_bytes()) for p in _chunk_files(job.folder / job.safe)]
    modes = sorted({s.mode for s in streams})
    layout = sorted({s.layout.kind for s in streams})
    storage = modes[0] if len(modes) == 1 else f"dense in {sum(s.mode == 'dense' for s in streams)}/{len(streams)}"
    rec = job.record(values, encoding, "sinr", decision.reason, codec_record, chunks, layout="/".join(layout),
                     storage=storage, sha256=_sha256(stored))
    rec.rel_error = _restored_error(job, rec, stored, values)
    return job.finish(rec)


def _chunk_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != "zarr.json")


def _block_size(shape: tuple[int, ...]) -> int:
    """Vector length for the blocks layout: whole rows, at least :data:`FLAT_K1` values (64 for 1-D)."""
    if len(shape) < 2:
        return 64
    k1 = max(1, math.prod(shape[1:]))
    return k1 * math.ceil(FLAT_K1 / k1)


def _write_lossless(job: _Job, value: Any, decision: Decision) -> TensorRecord:
    from zarr.codecs import BloscCodec

    tensor = job.tensor
    values, encoding = tensor.exact(value)
    values = np.asarray(values)
    if values.nbytes <= INLINE_MAX_BYTES and values.dtype.kind in INLINE_KINDS:  # a bias: no array of its own
        rec = job.record(values, encoding, "lossless", decision.reason, {"id": "inline", "data": _inline_data(values)},
                         values.shape, layout=None, sha256=_sha256(values))
        rec.bytes_after = values.nbytes
        return rec
    if _blosc_helps(values):
        compressors: Any = BloscCodec(
            cname=_LOSSLESS["cname"], clevel=_LOSSLESS["clevel"], shuffle=_LOSSLESS["shuffle"])
        codec_record: dict[str, Any] = dict(_LOSSLESS)
    else:  # tiny or incompressible: Blosc's 16-byte header would only add
        compressors, codec_record = None, {"id": "raw"}
    chunks = _chunks_for(values.shape, None, values.dtype.itemsize)
    try:
        arr = job.root.create_array(name=job.safe, shape=values.shape, chunks=chunks, dtype=values.dtype,
                                serializer="auto", compressors=compressors, fill_value=0,
                                attributes=_attrs(tensor, encoding, "lossless"),
                                config={"write_empty_chunks": True})
        _write_chunks(arr, values, chunks, tensor.name, False)
        stored = np.asarray(arr[...])
    except (ValueError, TypeError, RuntimeError) as exc:
        raise _failed(tensor, "lossless", exc) from exc
    rec = job.record(values, encoding, "lossless", decision.reason, codec_record, chunks, layout=None,
                     sha256=_sha256(values))
    if _sha256(stored) != rec.sha256:
        raise RuntimeError(f"lossless round trip of {tensor.name!r} failed (a bug: please report it)")
    return job.finish(rec)


def _blosc_helps(values: np.ndarray) -> bool:
    """Whether Blosc makes the tensor smaller (tested on its first 1 MiB)."""
    from numcodecs import Blosc

    sample = np.ascontiguousarray(values).reshape(-1)[: max(1, (1 << 20) // max(1, values.itemsize))]
    if sample.size == 0:
        return False
    codec = Blosc(cname=_LOSSLESS["cname"], clevel=_LOSSLESS["clevel"], shuffle=Blosc.SHUFFLE,
                  typesize=values.itemsize)
    return len(codec.encode(sample)) < sample.nbytes


def _as_f64(x: Any) -> np.ndarray:
    import torch

    if isinstance(x, torch.Tensor):
        return x.to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _write_chunks(arr: Any, values: np.ndarray, chunks: tuple[int, ...], name: str, progress: bool, *,
                  encoder: Callable[[np.ndarray], bytes] | None = None, folder: Path | None = None,
                  advance: Callable[[float], None] | None = None, client: Any = None) -> None:
    """Write ``values`` one chunk-row at a time, with a bar when there is more than one.

    With ``encoder`` (the array's only codec, e.g. SINR) and ``folder`` (the array's folder in a local
    store), each chunk is encoded in a worker thread (:func:`_in_worker`), or on the Dask cluster of
    ``client``, and its bytes written to the chunk's file here, as zarr would (edge chunks padded with
    the fill value 0); otherwise zarr writes. ``advance(fraction)`` is told the fraction of rows done.
    """
    if values.ndim == 0 or values.size == 0:
        arr[...] = values
        return
    step = chunks[0]
    starts = range(0, values.shape[0], step)
    direct = encoder is not None and folder is not None and tuple(chunks[1:]) == tuple(values.shape[1:])
    if len(starts) == 1 and not direct:
        arr[...] = values
        return
    with bar(total=len(starts), desc=f"  {name}"[:40], unit="chunk", quiet=not progress, position=1) as b:
        if encoder is not None and folder is not None and direct:
            blocks = (_padded(values[s:s + step], step) for s in starts)
            for i, data in enumerate(_encoded(encoder, blocks, len(starts), client)):
                target = folder / arr.metadata.encode_chunk_key((i,) + (0,) * (values.ndim - 1))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(bytes(data))
                b.update()
                if advance:
                    advance(min(1.0, (i + 1) * step / values.shape[0]))
            return
        for s in starts:
            arr[s:s + step] = values[s:s + step]
            b.update()


def _padded(block: np.ndarray, rows: int) -> np.ndarray:
    if block.shape[0] < rows:
        block = np.concatenate([block, np.zeros((rows - block.shape[0], *block.shape[1:]), dtype=block.dtype)])
    return np.ascontiguousarray(block)


def _encoded(encoder: Callable[[np.ndarray], bytes], blocks: Iterator[np.ndarray], n: int,
             client: Any) -> Iterator[bytes]:
    """``encoder(block)`` for each block, in order: in a worker thread here, or all at once as tasks on a
    Dask cluster (cancelled if the caller stops early or is interrupted)."""
    if client is None:
        for block in blocks:
            yield _in_worker(encoder, block)
        return
    futures = [client.submit(encoder, block, pure=False) for block in blocks]
    try:
        for fut in futures:
            while True:  # short waits, so that Ctrl-C is handled at once
                try:
                    yield fut.result(timeout=0.05)
                    break
                except TimeoutError:
                    continue
    finally:
        client.cancel([f for f in futures if not f.done()])


def _client_for(scheduler: Any) -> tuple[Any, bool]:
    """A ``distributed.Client`` for ``scheduler`` (an address, or a client), and whether to close it."""
    if scheduler is None:
        return None, False
    try:
        import distributed
    except ImportError:
        raise ImportError("a scheduler needs dask's distributed package: "
                          "pip install 'sinr-codecs[dask]'") from None
    if isinstance(scheduler, distributed.Client):
        return scheduler, False
    if not isinstance(scheduler, str) or not scheduler:
        raise ValueError(f"scheduler must be an address such as 'tcp://host:8786' or a distributed.Client, "
                         f"got {scheduler!r}")
    try:
        return distributed.Client(scheduler, timeout=30), True  # type: ignore[no-untyped-call]
    except OSError as exc:
        raise WeightsError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
