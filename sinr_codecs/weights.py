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
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sinr_codecs.errors import WeightsError
from sinr_codecs.model_files import (
    MODEL_SUFFIXES,
    _format_of,
    _is_numpy_dtype,
    _load_tensors,
    _Tensor,
    _to_numpy,
    _to_torch,
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
from sinr_codecs.progress import bar
from sinr_codecs.report import Report, TensorRecord, format_bytes

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

FORMAT_NAME = "sinr-weights"
FORMAT_VERSION = 1
ATTR_KEY = "sinr_codecs"

CHUNK_BYTES = 4 << 20
"""Largest Zarr chunk before compression (bytes, as float32)."""
CHUNK_WORK = 1 << 28
"""Bound on ``rows * k1**2`` per chunk, so that one chunk's OMP (and one progress step) stays short."""
_LOSSLESS = {"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": "shuffle"}


# ----------------------------------------------------------------------------------------------------
# the store
# ----------------------------------------------------------------------------------------------------
def _safe_names(names: list[str]) -> list[str]:
    """Filesystem- and Zarr-safe, unique (also case-insensitively) array names, one per tensor."""
    out, seen = [], set()
    for name in names:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._")[:180] or "tensor"
        safe, i = base, 1
        while safe.lower() in seen:
            safe = f"{base}-{i}"
            i += 1
        seen.add(safe.lower())
        out.append(safe)
    return out


def _is_zip(path: Path) -> bool:
    return path.suffix.lower() == ".zip"


def _looks_like_store(path: Path) -> bool:
    if path.is_dir():
        markers = ("zarr.json", ".zgroup", ".zarray")
        return any((path / m).exists() for m in markers) or not any(path.iterdir())
    return path.is_file() and _is_zip(path)


def _check_destination(path: Path, overwrite: bool, *, store: bool) -> None:
    if not path.exists():
        if not path.parent.exists():
            raise WeightsError(f"the folder {path.parent} does not exist; create it first")
        return
    if not overwrite:
        raise WeightsError(f"{path} already exists; choose another path or overwrite it (--force)")
    if store and not _looks_like_store(path):
        raise WeightsError(f"refusing to overwrite {path}: it does not look like a Zarr store")
    if not store and path.is_dir():
        raise WeightsError(f"refusing to overwrite {path}: it is a directory")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


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
        ``{fnmatch pattern: "sinr" | "lossless" | {"policy": "sinr", **SINR options}}``; all matching
        patterns apply in order (later ones win).
    device : str, default "auto"
        Where OMP runs: "auto", "cpu", "cuda", "cuda:N".
    progress : bool, default True
        Show progress bars (on standard error, and only on a terminal).
    overwrite : bool, default False
        Replace an existing store at ``dst`` (only something that looks like a Zarr store).

    Returns
    -------
    Report
        One record per tensor: policy, codec config, bytes before/after, measured relative error.

    Raises
    ------
    FileNotFoundError
        ``src`` does not exist.
    WeightsError
        ``src`` cannot be read (unknown format, not a state_dict, refused pickle, ...) or ``dst`` exists.
    ValueError, TypeError
        Bad codec options or overrides.
    """
    import zarr

    from sinr_codecs.codec import SINR

    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    fmt = _format_of(src, what="model file")
    base = _base_config(codec_config, device)
    for _, _, options in _parse_overrides(policy_overrides):
        if options:
            SINR(**{**base, **options})  # validate per-pattern options early
    _check_destination(dst, overwrite, store=True)
    notes: list[str] = []
    tensors, metadata = _load_tensors(src, fmt, notes)
    if not tensors:
        raise WeightsError(f"{src} holds no tensors")
    report = Report(str(src), str(dst), fmt, notes=notes)

    work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent))
    try:
        root = zarr.open_group(store=zarr.storage.LocalStore(work), mode="w", zarr_format=3)
        names = _safe_names([t.name for t in tensors])
        with bar(total=len(tensors), desc="compress", unit="tensor", quiet=not progress, leave=True) as outer:
            for tensor, safe in zip(tensors, names):
                outer.set_postfix_str(tensor.name, refresh=False)
                rec = _write_tensor(root, tensor, safe, base, policy_overrides, fmt, progress)
                rec.bytes_after = _dir_size(work / safe) - (work / safe / "zarr.json").stat().st_size
                report.tensors.append(rec)
                outer.update()
        root.attrs.update({ATTR_KEY: {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "source_format": fmt,
            "source_name": src.name,
            "safetensors_metadata": metadata,
            "notes": notes,
            "tensors": [asdict(r) for r in report.tensors],
        }})
        if dst.exists():
            _remove(dst)
        if _is_zip(dst):
            _zip_directory(work, dst)
            report.store_bytes = dst.stat().st_size
        else:
            os.replace(work, dst)
            report.store_bytes = _dir_size(dst)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.perf_counter() - t0
    return report


def _write_tensor(root: Any, tensor: _Tensor, safe: str, base: dict[str, Any],
                  overrides: Mapping[str, Any] | None, fmt: str, progress: bool) -> TensorRecord:
    """Create one array, write its values chunk by chunk, read it back to measure the error."""
    from zarr.codecs import BloscCodec

    from sinr_codecs.codec import relative_error
    from sinr_codecs.zarr3 import SINRCodec

    decision = choose_policy(tensor.name, dtype=tensor.dtype, shape=tensor.shape,
                             finite=tensor.finite(), overrides=overrides)
    if decision.policy == "sinr":
        values, encoding = tensor.for_sinr()
        if values.ndim >= 2:
            values = values.reshape(values.shape[0], -1)
        config = {**base, **decision.options}
        if config.get("layout", "auto") == "auto":
            config["layout"] = decision.layout
        if config["layout"] == "blocks" and config.get("block_size") is None:
            config["block_size"] = _block_size(tuple(tensor.shape))
        codec = SINRCodec(**config)
        serializer, compressors, layout = codec, None, codec.layout
        codec_record = {"id": "sinr", **codec.to_dict()["configuration"]}
    else:
        values, encoding = tensor.exact()
        serializer, layout = "auto", None
        if _blosc_helps(np.asarray(values)):
            compressors: Any = BloscCodec(
                cname=_LOSSLESS["cname"], clevel=_LOSSLESS["clevel"], shuffle=_LOSSLESS["shuffle"])
            codec_record = dict(_LOSSLESS)
        else:  # tiny or incompressible: Blosc's 16-byte header would only add
            compressors, codec_record = None, {"id": "raw"}
    values = np.asarray(values)
    chunks = _chunks_for(values.shape, layout, values.dtype.itemsize,
                         codec_record.get("block_size") if layout else None)
    attrs = {ATTR_KEY: {"name": tensor.name, "dtype": tensor.dtype, "shape": list(tensor.shape),
                        "encoding": encoding, "policy": decision.policy}}
    try:
        arr = root.create_array(name=safe, shape=values.shape, chunks=chunks, dtype=values.dtype,
                                serializer=serializer, compressors=compressors, fill_value=0,
                                attributes=attrs, config={"write_empty_chunks": True})
        _write_chunks(arr, values, chunks, tensor.name, progress)
        stored = np.asarray(arr[...])
    except (ValueError, TypeError, RuntimeError) as exc:  # e.g. a dictionary too large for a huge row
        raise WeightsError(
            f"cannot compress tensor {tensor.name!r} {tuple(tensor.shape)} {tensor.dtype} with policy "
            f"{decision.policy} ({type(exc).__name__}: {exc}); choose other options for it with a policy "
            "override") from exc
    rec = TensorRecord(
        name=tensor.name, array=safe, dtype=tensor.dtype, shape=list(tensor.shape),
        stored_dtype=values.dtype.str, stored_shape=list(values.shape), encoding=encoding,
        policy=decision.policy, layout=layout, reason=decision.reason, codec=codec_record,
        chunks=list(chunks), bytes_before=tensor.nbytes,
    )
    if decision.policy == "sinr":
        restored = _to_numpy(rec, stored) if fmt == "npz" else _to_torch(rec, stored)
        rec.rel_error = float(relative_error(_as_f64(tensor.value), _as_f64(restored)))
    else:
        rec.sha256 = _sha256(values)
        if _sha256(stored) != rec.sha256:
            raise RuntimeError(f"lossless round trip of {tensor.name!r} failed (a bug: please report it)")
    return rec


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


def _write_chunks(arr: Any, values: np.ndarray, chunks: tuple[int, ...], name: str, progress: bool) -> None:
    """Write ``values`` one chunk-row at a time, with a bar when there is more than one."""
    if values.ndim == 0 or values.size == 0:
        arr[...] = values
        return
    step = chunks[0]
    starts = range(0, values.shape[0], step)
    if len(starts) == 1:
        arr[...] = values
        return
    with bar(total=len(starts), desc=f"  {name}"[:40], unit="chunk", quiet=not progress, position=1) as b:
        for s in starts:
            arr[s:s + step] = values[s:s + step]
            b.update()


def _zip_directory(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for p in sorted(src.rglob("*")):
                if p.is_file():
                    zf.write(p, p.relative_to(src).as_posix())
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


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
        Replace an existing file at ``dst``.

    Returns
    -------
    Report
        The records stored at compression time.

    Raises
    ------
    FileNotFoundError
        ``src`` does not exist.
    WeightsError
        ``src`` is not a complete, intact store; or ``dst`` exists, or cannot hold a tensor's dtype.
    """
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    fmt = _format_of(dst, what="output")
    _check_destination(dst, overwrite, store=False)
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

