"""Whole models: a model file  <->  a Zarr group with one array per tensor, SINR for weight matrices.

The compressed form is a Zarr format 3 group, a directory or a ``.zip`` file. Each tensor is one array
under a filesystem-safe name; the original name, dtype and shape are kept in the array's attributes and
in the group's ``"sinr_codecs"`` attribute, which also records, per tensor, the policy, the codec
configuration, the bytes before and after and the relative error measured when compressing (so
:func:`inspect_store` and ``sinr info`` show them without decoding anything).

This module holds the store and the three operations on it (:func:`compress_weights`,
:func:`decompress_weights`, :func:`inspect_store`); the rest lives in modules of its own, whose public
names are re-exported here:

- :mod:`sinr_codecs.model_files`: reading and writing model files (``.pt``/``.pth``/``.bin``/``.ckpt``,
  ``.safetensors``, ``.npz``) and the dtype conversions (bfloat16);
- :mod:`sinr_codecs.policy`: which tensors SINR codes, in which layout (:func:`choose_policy`);
- :mod:`sinr_codecs.report`: :class:`TensorRecord`, :class:`Report` and its table;
- :mod:`sinr_codecs.errors`: :class:`WeightsError`.

A tensor stored losslessly uses Blosc with Zstandard and byte shuffle, or its raw bytes when Blosc would
not make it smaller; it is bit-exact and SHA-256-checked on reading.

Outputs never cost the user what was there before (:mod:`sinr_codecs.outputs` holds the checks and the
renames). A store is built in a hidden temporary folder next to
its destination and appears there only when complete, by a rename (a ``.zip`` is zipped to a temporary
sibling and renamed over the old one; a folder is swapped in: old renamed aside, new renamed in, old
deleted). ``overwrite=True`` replaces only a store that sinr compress wrote (its group attributes say so
and it holds no other file). An error or an interrupt (``KeyboardInterrupt``) leaves the previous output
as it was and removes the temporary files. The OMP of each chunk runs in a worker thread that the caller
waits for in short steps, so that ``KeyboardInterrupt`` stops the work within a fraction of a second even
when one torch operation takes seconds (the abandoned worker finishes its chunk in the background).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sinr_codecs.errors import WeightsError
from sinr_codecs.model_files import (
    MODEL_SUFFIXES,
    _check_writable,
    _format_of,
    _is_numpy_dtype,
    _load_tensors,
    _Tensor,
    _to_numpy,
    _to_torch,
    _write_error,
    _write_model,
)
from sinr_codecs.policy import (
    FLAT_K1,
    FLAT_MAX_ELEMENTS,
    MAX_K1,
    MIN_SINR_ELEMENTS,
    Decision,
    _parse_overrides,
    choose_policy,
)
from sinr_codecs.lossy import decide_mode, split_overrides
from sinr_codecs.progress import bar
from sinr_codecs.outputs import (
    _check_destination,
    _discard,
    _in_worker,
    _is_zip,
    _publish,
)
from sinr_codecs.report import ATTR_KEY, FORMAT_NAME, FORMAT_VERSION, Report, TensorRecord, format_bytes
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
_LOSSLESS = {"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": "shuffle"}


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


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _sha256(a: np.ndarray) -> str:
    canon = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype)
    return hashlib.sha256(canon.reshape(-1).view(np.uint8)).hexdigest()


def _chunks_for(shape: tuple[int, ...], layout: str | None, itemsize: int,
                block_size: int | None = None) -> tuple[int, ...]:
    """Chunk shape: whole rows, at most :data:`CHUNK_BYTES` (and for SINR :data:`CHUNK_WORK`) each; one
    chunk for a flat layer; a whole number of blocks per chunk for the blocks layout."""
    if not shape:
        return ()
    if layout == "flat":
        return tuple(max(1, s) for s in shape)
    k1 = max(1, math.prod(shape[1:]))
    rows = CHUNK_BYTES // (k1 * (max(itemsize, 4) if layout else itemsize))
    if layout == "rows":
        rows = min(rows, max(16, CHUNK_WORK // (k1 * k1)))
    if layout == "blocks" and block_size:
        per = block_size // math.gcd(block_size, k1)  # rows per whole number of blocks
        rows = max(per, rows // per * per)
    rows = max(1, min(shape[0], rows))
    return (rows, *(max(1, s) for s in shape[1:]))


def _block_size(shape: tuple[int, ...]) -> int:
    """Vector length for the blocks layout: whole rows, at least :data:`FLAT_K1` values (64 for 1-D)."""
    if len(shape) < 2:
        return 64
    k1 = max(1, math.prod(shape[1:]))
    return k1 * math.ceil(FLAT_K1 / k1)


@dataclass
class _Store:
    """An opened, validated store for reading."""

    root: Any
    meta: dict[str, Any]
    records: list[TensorRecord]
    closer: Callable[[], None]
    size: int
    keys: frozenset[str]  # every key in the store ("array/c/0/0", "array/zarr.json", ...)

    def chunk_count(self, array: str) -> int:
        """Number of chunk objects stored for ``array`` (listed directly: zarr's own count
        mis-reads a zip store when one array's name is a prefix of another's)."""
        prefix = f"{array}/c"
        return sum(k == prefix or k.startswith(prefix + "/") for k in self.keys)


def _open_store(path: Path) -> _Store:
    import zarr

    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    store: Any
    if path.is_dir():
        store, size = zarr.storage.LocalStore(path, read_only=True), _dir_size(path)
        keys = frozenset(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    elif _is_zip(path):
        try:  # reads the central directory only; each member's CRC is checked when zarr reads it
            with zipfile.ZipFile(path) as zf:
                keys = frozenset(zf.namelist())
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise WeightsError(f"{path} is not a valid zip file (truncated or corrupt?): {exc}") from None
        store, size = zarr.storage.ZipStore(path, mode="r"), path.stat().st_size
    else:
        raise WeightsError(
            f"{path} is not a compressed store: expected a directory or a .zip written by sinr compress")
    try:
        root = zarr.open_group(store=store, mode="r")
        attrs = dict(root.attrs)
    except Exception as exc:
        store.close()
        raise WeightsError(
            f"{path} is not a Zarr group written by sinr compress ({type(exc).__name__}: {exc})") from None
    meta = attrs.get(ATTR_KEY)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        store.close()
        raise WeightsError(
            f"{path} is a Zarr group without sinr-weights metadata: not written by sinr compress, or the "
            "compression was interrupted before it finished (run it again)")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        store.close()
        raise WeightsError(
            f"{path} uses sinr-weights format version {version}; this sinr-codecs reads up to "
            f"{FORMAT_VERSION}: upgrade it (pip install -U sinr-codecs)")
    tensors = meta.get("tensors")
    if not isinstance(tensors, list):
        store.close()
        raise WeightsError(f"{path}: the tensor list in the group attributes is damaged")
    try:
        records = [TensorRecord.from_dict(t) for t in tensors]
    except (TypeError, WeightsError) as exc:
        store.close()
        raise WeightsError(f"{path}: the tensor records are damaged ({exc})") from None
    return _Store(root, meta, records, store.close, size, keys)


def _read_array(st: _Store, rec: TensorRecord, path: Path) -> np.ndarray:
    """Read and check one tensor's stored values."""
    where = f"tensor {rec.name!r} (array {rec.array!r}) in {path}"
    try:
        with quiet_numcodecs():
            arr = st.root[rec.array]
    except KeyError:
        raise WeightsError(f"{where} is missing: the store is incomplete or damaged") from None
    if list(arr.shape) != list(rec.stored_shape):
        raise WeightsError(
            f"{where} has shape {arr.shape}, expected {tuple(rec.stored_shape)}: the store is damaged")
    stored = st.chunk_count(rec.array)
    if stored != arr.nchunks:
        raise WeightsError(
            f"{where} has {stored} of its {arr.nchunks} chunks: the store is truncated or damaged")
    try:
        with quiet_numcodecs():
            values = arr[...]
    except Exception as exc:  # StreamError, blosc/zip errors, ...
        raise WeightsError(f"{where} cannot be decoded: {type(exc).__name__}: {exc}") from None
    values = np.asarray(values)
    if rec.sha256 is not None and _sha256(values) != rec.sha256:
        raise WeightsError(f"{where} does not match its checksum: the store is damaged")
    return values


# ----------------------------------------------------------------------------------------------------
# the three operations
# ----------------------------------------------------------------------------------------------------
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


def _base_config(codec_config: Mapping[str, Any] | None, device: str) -> dict[str, Any]:
    from sinr_codecs.codec import SINR

    config = dict(codec_config or {})
    config.pop("id", None)
    if "dtype" in config:
        raise ValueError("codec_config must not set 'dtype' (each tensor's dtype is its own)")
    if device != "auto" or "device" not in config:
        config["device"] = device
    SINR(**config)  # validate now, before any work: raises ValueError/TypeError on a bad option
    return config


def compress_weights(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    codec_config: Mapping[str, Any] | None = None,
    policy_overrides: Mapping[str, Any] | None = None,
    device: str = "auto",
    progress: bool = True,
    overwrite: bool = False,
    lossy: str = "sinr",
    scheduler: Any = None,
) -> Report:
    """Compress every tensor of a model file into a Zarr group.

    Parameters
    ----------
    src : path
        ``.pt``/``.pth``/``.bin``/``.ckpt`` (PyTorch state_dict), ``.safetensors`` or ``.npz``.
    dst : path
        The store to create: a directory, or a ``.zip`` file.
    codec_config : mapping, optional
        SINR options for all SINR-coded tensors (see :class:`sinr_codecs.codec.SINR`; e.g.
        ``{"sparsity": 0.25, "value_bits": 12}``). ``layout`` left at ``"auto"`` lets the policy choose
        rows or flat per tensor.
    policy_overrides : mapping, optional
        ``{fnmatch pattern: POLICY | {"policy": POLICY, **options}}`` with POLICY one of ``"sinr"``
        (options: SINR's), ``"lossless"``, ``"uniform"`` (options: ``max_rel_error`` or ``bits``) or
        ``"best"`` (options: SINR's); all matching patterns apply in order (later ones win). See
        :mod:`sinr_codecs.lossy`.
    device : str, default "auto"
        Where OMP runs: "auto", "cpu", "cuda", "cuda:N".
    progress : bool, default True
        Show progress bars (on standard error, and only on a terminal).
    overwrite : bool, default False
        Replace an existing store at ``dst``: only a store written by this function (its group attributes
        say so, and it holds no file of its own) or an empty folder; anything else is refused. The old
        store is replaced by a rename once the new one is complete, never removed before.
    lossy : {"sinr", "uniform", "best"}, default "sinr"
        The coder of the tensors the policy codes lossily, where no override names one: SINR, a
        per-tensor uniform quantizer + Zstandard (at ``codec_config["max_rel_error"]``, else 2%), or the
        smaller of the two at the relative error SINR reached.
    scheduler : str or distributed.Client, optional
        Encode the SINR chunks on a Dask cluster: a scheduler address (``"tcp://host:8786"``) or a
        client. The workers need sinr-codecs installed; the store is written here. Default: in this
        process.

    Returns
    -------
    Report
        One record per tensor: policy, codec config, bytes before/after, measured relative error, and
        for SINR tensors what a uniform quantizer would need for the same error.

    Raises
    ------
    FileNotFoundError
        ``src`` does not exist.
    WeightsError
        ``src`` cannot be read (unknown format, not a state_dict, refused pickle, ...); ``dst`` exists
        (without ``overwrite``, or it is not ours); ``dst`` cannot be written (its folder is missing or
        not writable, the disk is full: the message names ``dst``).
    ValueError, TypeError
        Bad codec options or overrides.
    KeyboardInterrupt
        Passed on at once; the temporary output is removed and ``dst`` is left as it was.
    """
    import zarr

    from sinr_codecs.codec import SINR

    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    fmt = _format_of(src, what="model file")
    base = _base_config(codec_config, device)
    overrides, modes = split_overrides(policy_overrides)
    decide_mode("", "lossless", modes, lossy)  # validates lossy
    for _, _, options in _parse_overrides(overrides):
        if options:
            SINR(**{**base, **options})  # validate per-pattern options early
    _check_destination(dst, overwrite, store=True)
    notes: list[str] = []
    tensors, metadata = _load_tensors(src, fmt, notes)
    if not tensors:
        raise WeightsError(f"{src} holds no tensors")
    report = Report(str(src), str(dst), fmt, notes=notes)
    plans = [_plan(t, overrides, modes, lossy) for t in tensors]
    costs = [_cost(t, plan) for t, plan in zip(tensors, plans)]

    existed = os.path.lexists(dst)
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent))
    except OSError as exc:
        raise _write_error(dst, exc, kept=existed) from None
    client, close_client = _client_for(scheduler)
    try:
        root = zarr.open_group(store=zarr.storage.LocalStore(work), mode="w", zarr_format=3)
        names = _safe_names([t.name for t in tensors])
        with bar(total=sum(costs), desc="compress", unit="", quiet=not progress, leave=True,
                 bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]") as outer, \
                quiet_numcodecs():
            for i, (tensor, safe, plan, cost) in enumerate(zip(tensors, names, plans, costs)):
                outer.set_postfix_str(f"{i + 1}/{len(tensors)} tensors, {tensor.name}", refresh=True)
                done = [0.0]

                def advance(fraction: float, cost: float = cost, done: list[float] = done) -> None:
                    outer.update(cost * fraction - done[0])
                    done[0] = cost * fraction

                rec = _write_tensor(root, tensor, safe, plan, base, fmt, progress, work, advance, client)
                report.tensors.append(rec)
                advance(1.0)
        root.attrs.update({ATTR_KEY: {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "source_format": fmt,
            "source_name": src.name,
            "safetensors_metadata": metadata,
            "notes": notes,
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
    """How one tensor is coded: the policy's decision and the coder (``"lossless"``, ``"sinr"``,
    ``"uniform"`` or ``"best"``) with its uniform options."""

    decision: Decision
    mode: str
    uniform: Mapping[str, Any]


def _plan(tensor: _Tensor, overrides: Mapping[str, Any], modes: list[Any], lossy: str) -> _Plan:
    decision = choose_policy(tensor.name, dtype=tensor.dtype, shape=tensor.shape,
                             finite=tensor.finite(), overrides=overrides)
    mode, uniform = decide_mode(tensor.name, decision.policy, modes, lossy)
    return _Plan(decision, mode, uniform)


def _cost(tensor: _Tensor, plan: _Plan) -> float:
    """Rough relative encoding time (for the overall bar's ETA): values x vector length under SINR (OMP
    grows with k1 per value), the number of values otherwise."""
    numel = max(1, math.prod(tensor.shape))
    if plan.mode not in ("sinr", "best"):
        return float(numel)
    layout = plan.decision.layout
    k1 = numel if layout == "flat" else int(plan.decision.options.get("block_size") or 0) or (
        math.prod(tensor.shape[1:]) if len(tensor.shape) >= 2 and layout == "rows" else 64)
    return float(numel) * max(1, k1)


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
        return distributed.Client(scheduler, timeout=30), True
    except OSError as exc:
        raise WeightsError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None


def _round_to(tensor: _Tensor) -> Callable[[np.ndarray], np.ndarray]:
    """Rounds float64 values to ``tensor``'s dtype and back (what restoring the model file does)."""
    import torch

    if tensor.dtype == "bfloat16":
        return lambda a: torch.from_numpy(a).to(torch.bfloat16).to(torch.float64).numpy()
    dt = np.dtype(tensor.dtype)
    return lambda a: a.astype(dt).astype(np.float64)


def _write_tensor(root: Any, tensor: _Tensor, safe: str, plan: _Plan, base: dict[str, Any], fmt: str,
                  progress: bool, folder: Path, advance: Callable[[float], None], client: Any) -> TensorRecord:
    """Code one tensor as its plan says, into the array ``safe`` of the store folder ``folder``; its
    record, with the bytes written and the error measured on reading it back."""
    if plan.mode == "lossless":
        return _write_lossless(root, tensor, safe, plan.decision, folder)
    if plan.mode == "uniform":
        target = plan.uniform.get("max_rel_error") or base.get("max_rel_error") or DEFAULT_UNIFORM_ERROR
        return _write_uniform(root, tensor, safe, plan.decision, fmt, folder, plan.uniform.get("bits"),
                              target, f"uniform ({plan.decision.reason})")
    rec = _write_sinr(root, tensor, safe, plan.decision, base, fmt, progress, folder, advance, client)
    rival = _uniform_rival(tensor, rec)
    if rival is not None:
        rec.uniform_bytes, rec.uniform_bits = rival
    if plan.mode == "best" and rival is not None and rival[0] < rec.bytes_after:
        shutil.rmtree(folder / safe)
        why = (f"best: uniform ~{format_bytes(rival[0])} < sinr {format_bytes(rec.bytes_after)} at "
               f"rel.err {rec.rel_error:.2g}")
        urec = _write_uniform(root, tensor, safe, plan.decision, fmt, folder, None, rec.rel_error, why)
        urec.uniform_bytes, urec.uniform_bits = rival
        return urec
    if plan.mode == "best":
        rec.reason += "; best: sinr" + (" < uniform" if rival is not None else "")
    return rec


DEFAULT_UNIFORM_ERROR = 0.02
"""Relative error of ``uniform`` tensors when neither the override nor the SINR configuration sets one."""


def _dense_note(array_folder: Path) -> str:
    """``"; dense rows"`` (or ``"; dense rows in 2/5 chunks"``) when the SINR streams of an array's chunks
    are in dense mode, as the error-bounded encoder writes them where the dictionary does not pay; else
    ``""``. Read from the chunk files just written, so the report says what the store holds."""
    from sinr_codecs import bitstream

    chunks = [bitstream.read(p.read_bytes()) for p in sorted(array_folder.rglob("*"))
              if p.is_file() and p.name != "zarr.json"]
    dense = sorted({s.layout.kind for s in chunks if s.mode == "dense"})
    n = sum(s.mode == "dense" for s in chunks)
    if not n:
        return ""
    return f"; dense {'/'.join(dense)}" + ("" if n == len(chunks) else f" in {n}/{len(chunks)} chunks")


def _finish(rec: TensorRecord, folder: Path) -> TensorRecord:
    rec.bytes_after = _dir_size(folder / rec.array) - (folder / rec.array / "zarr.json").stat().st_size
    return rec


def _attrs(tensor: _Tensor, encoding: str, policy: str) -> dict[str, Any]:
    return {ATTR_KEY: {"name": tensor.name, "dtype": tensor.dtype, "shape": list(tensor.shape),
                       "encoding": encoding, "policy": policy}}


def _failed(tensor: _Tensor, policy: str, exc: Exception) -> WeightsError:
    return WeightsError(
        f"cannot compress tensor {tensor.name!r} {tuple(tensor.shape)} {tensor.dtype} with policy "
        f"{policy} ({type(exc).__name__}: {exc}); choose other options for it with a policy override")


def _write_sinr(root: Any, tensor: _Tensor, safe: str, decision: Decision, base: dict[str, Any], fmt: str,
                progress: bool, folder: Path, advance: Callable[[float], None], client: Any) -> TensorRecord:
    from sinr_codecs.codec import relative_error
    from sinr_codecs.zarr3 import SINRCodec

    values, encoding = tensor.for_sinr()
    if values.ndim >= 2:
        values = values.reshape(values.shape[0], -1)
    config = {**base, **_policy_options(decision, base)}
    if config.get("layout", "auto") == "auto":
        config["layout"] = decision.layout
    if config["layout"] == "blocks" and config.get("block_size") is None:
        config["block_size"] = _block_size(tuple(tensor.shape))
    codec = SINRCodec(**config)
    codec_record = {"id": "sinr", **codec.to_dict()["configuration"]}
    values = np.asarray(values)
    chunks = _chunks_for(values.shape, codec.layout, values.dtype.itemsize, codec_record.get("block_size"))
    try:
        arr = root.create_array(name=safe, shape=values.shape, chunks=chunks, dtype=values.dtype,
                                serializer=codec, compressors=None, fill_value=0,
                                attributes=_attrs(tensor, encoding, "sinr"), config={"write_empty_chunks": True})
        _write_chunks(arr, values, chunks, tensor.name, progress, encoder=codec.core.encode,
                      folder=folder / safe, advance=advance, client=client)
        stored = np.asarray(arr[...])
    except (ValueError, TypeError, RuntimeError) as exc:  # e.g. a dictionary too large for a huge row
        raise _failed(tensor, "sinr", exc) from exc
    rec = TensorRecord(
        name=tensor.name, array=safe, dtype=tensor.dtype, shape=list(tensor.shape),
        stored_dtype=values.dtype.str, stored_shape=list(values.shape), encoding=encoding,
        policy="sinr", layout=codec.layout, reason=decision.reason + _dense_note(folder / safe), codec=codec_record,
        chunks=list(chunks), bytes_before=tensor.nbytes,
    )
    restored = _to_numpy(rec, stored) if fmt == "npz" else _to_torch(rec, stored)
    rec.rel_error = float(relative_error(_as_f64(tensor.value), _as_f64(restored)))
    return _finish(rec, folder)


def _uniform_values(tensor: _Tensor) -> tuple[np.ndarray, str]:
    """Values for the uniform quantizer: float32 (float64 stays float64), native byte order; encoding."""
    values, encoding = tensor.for_sinr()
    values = np.asarray(values)
    return values.astype(np.float64 if values.dtype.itemsize == 8 else np.float32), encoding


def _uniform_rival(tensor: _Tensor, rec: TensorRecord) -> tuple[int, int] | None:
    """(bytes, bits) a per-tensor uniform quantizer + Zstandard needs for SINR's relative error, chunked
    as the SINR array; None when that error is 0 or >= 1."""
    from sinr_codecs import uniform

    if not 0.0 < rec.rel_error < 1.0:
        return None
    values, _ = _uniform_values(tensor)
    f = uniform.fit(values, rec.rel_error, round_to=_round_to(tensor))
    # Zstandard at level 19 over a whole chunk is one long C call: in a worker thread, so that a signal
    # stops the command at once
    size = _in_worker(uniform.compressed_bytes, values, f, rec.chunks[0] if rec.chunks else None)
    return size, f.bits


def _write_uniform(root: Any, tensor: _Tensor, safe: str, decision: Decision, fmt: str, folder: Path,
                   bits: int | None, target: float, reason: str) -> TensorRecord:
    from sinr_codecs import uniform
    from sinr_codecs.codec import relative_error

    values, encoding = _uniform_values(tensor)
    rnd = _round_to(tensor)
    try:
        f = uniform.fit_bits(values, bits, round_to=rnd) if bits else uniform.fit(values, target, round_to=rnd)
        filters, compressors = uniform.zarr_codecs(f, values.dtype)
        chunks = _chunks_for(values.shape, None, max(4, np.dtype(f.astype).itemsize))
        arr = root.create_array(name=safe, shape=values.shape, chunks=chunks, dtype=values.dtype,
                                filters=filters, compressors=compressors, fill_value=0, overwrite=True,
                                attributes=_attrs(tensor, encoding, "uniform"),
                                config={"write_empty_chunks": True})
        arr[...] = values
        stored = np.asarray(arr[...])
    except (ValueError, TypeError, RuntimeError) as exc:
        raise _failed(tensor, "uniform", exc) from exc
    rec = TensorRecord(
        name=tensor.name, array=safe, dtype=tensor.dtype, shape=list(tensor.shape),
        stored_dtype=values.dtype.str, stored_shape=list(values.shape), encoding=encoding,
        policy="uniform", layout=None, reason=reason,
        codec={"id": "uniform", "step": f.step, "astype": f.astype, "bits": f.bits,
               "target": None if bits else float(target), "compressor": {"id": "zstd", "level": uniform.ZSTD_LEVEL}},
        chunks=list(chunks), bytes_before=tensor.nbytes,
    )
    restored = _to_numpy(rec, stored) if fmt == "npz" else _to_torch(rec, stored)
    rec.rel_error = float(relative_error(_as_f64(tensor.value), _as_f64(restored)))
    return _finish(rec, folder)


def _write_lossless(root: Any, tensor: _Tensor, safe: str, decision: Decision, folder: Path) -> TensorRecord:
    from zarr.codecs import BloscCodec

    values, encoding = tensor.exact()
    values = np.asarray(values)
    if _blosc_helps(values):
        compressors: Any = BloscCodec(
            cname=_LOSSLESS["cname"], clevel=_LOSSLESS["clevel"], shuffle=_LOSSLESS["shuffle"])
        codec_record: dict[str, Any] = dict(_LOSSLESS)
    else:  # tiny or incompressible: Blosc's 16-byte header would only add
        compressors, codec_record = None, {"id": "raw"}
    chunks = _chunks_for(values.shape, None, values.dtype.itemsize)
    try:
        arr = root.create_array(name=safe, shape=values.shape, chunks=chunks, dtype=values.dtype,
                                serializer="auto", compressors=compressors, fill_value=0,
                                attributes=_attrs(tensor, encoding, "lossless"),
                                config={"write_empty_chunks": True})
        _write_chunks(arr, values, chunks, tensor.name, False)
        stored = np.asarray(arr[...])
    except (ValueError, TypeError, RuntimeError) as exc:
        raise _failed(tensor, "lossless", exc) from exc
    rec = TensorRecord(
        name=tensor.name, array=safe, dtype=tensor.dtype, shape=list(tensor.shape),
        stored_dtype=values.dtype.str, stored_shape=list(values.shape), encoding=encoding,
        policy="lossless", layout=None, reason=decision.reason, codec=codec_record,
        chunks=list(chunks), bytes_before=tensor.nbytes, sha256=_sha256(values),
    )
    if _sha256(stored) != rec.sha256:
        raise RuntimeError(f"lossless round trip of {tensor.name!r} failed (a bug: please report it)")
    return _finish(rec, folder)


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
        if direct:
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


def decompress_weights(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> Report:
    """Restore a model file from a store written by :func:`compress_weights`.

    Parameters
    ----------
    src : path
        The store: a directory or a ``.zip``.
    dst : path
        The model file to write; its suffix picks the format (``.pt``/``.pth``/``.bin``/``.ckpt``,
        ``.safetensors``, ``.npz``), which need not be the original one (bfloat16 cannot go to .npz).
    progress : bool, default True
        Show a progress bar (standard error, terminals only).
    overwrite : bool, default False
        Replace an existing regular file at ``dst`` (never a folder); the new file is written next to it
        and renamed over it when complete.

    Returns
    -------
    Report
        The records stored at compression time.

    Raises
    ------
    FileNotFoundError
        ``src`` does not exist.
    WeightsError
        ``src`` is not a complete, intact store; or ``dst`` exists, cannot be written (the message names
        it), or cannot hold a tensor's dtype.
    KeyboardInterrupt
        Passed on; ``dst`` is left as it was and no temporary file remains.
    """
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    fmt = _format_of(dst, what="output")
    _check_destination(dst, overwrite, store=False)
    _check_writable(dst)
    st = _open_store(src)
    try:
        if fmt == "npz":  # refuse before decoding anything
            for rec in st.records:
                if rec.encoding != "native" or not _is_numpy_dtype(rec.dtype):
                    _to_numpy(rec, np.empty(0))
        out: dict[str, Any] = {}
        with bar(st.records, desc="decompress", unit="tensor", quiet=not progress, leave=True) as it:
            for rec in it:
                stored = _read_array(st, rec, src)
                out[rec.name] = _to_numpy(rec, stored) if fmt == "npz" else _to_torch(rec, stored)
    finally:
        st.closer()
    metadata = st.meta.get("safetensors_metadata") if fmt == "safetensors" else None
    _write_model(dst, fmt, out, metadata if isinstance(metadata, dict) else None)
    report = Report(str(src), str(dst), str(st.meta.get("source_format", "")), st.records,
                    list(st.meta.get("notes") or []), time.perf_counter() - t0, st.size)
    return report


def inspect_store(path: str | os.PathLike[str]) -> Report:
    """What a store holds, from its metadata alone (nothing is decoded).

    Parameters
    ----------
    path : path
        A store written by :func:`compress_weights` (directory or ``.zip``).

    Returns
    -------
    Report
        ``destination`` is empty; ``store_bytes`` is the store's size on disk.

    Raises
    ------
    FileNotFoundError, WeightsError
        As :func:`decompress_weights`.
    """
    t0 = time.perf_counter()
    path = Path(path)
    st = _open_store(path)
    st.closer()
    return Report(str(path), "", str(st.meta.get("source_format", "")), st.records,
                  list(st.meta.get("notes") or []), time.perf_counter() - t0, st.size)

