"""Reading a store that :func:`sinr_codecs.weights.compress_weights` wrote: one tensor, or all of them.

A store is a Zarr format 3 group (a folder or a ``.zip``) with one array per tensor and a ``"sinr_codecs"``
group attribute holding a :class:`~sinr_codecs.report.TensorRecord` per tensor. :func:`_open_store`
validates a store before anything is decoded; :class:`StoreReader` gives lazy access to its tensors (one
is decoded when asked for, the others are not touched); :func:`decompress_weights` restores a model file,
tensor by tensor; :func:`inspect_store` reads the records alone.

Every problem with a store (missing, truncated or damaged arrays, attributes that lie, a checksum that does
not match) is a :class:`~sinr_codecs.errors.WeightsError` naming the store and the tensor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sinr_codecs.errors import WeightsError
from sinr_codecs.model_files import (
    INDEX_SUFFIX,
    _check_writable,
    _format_of,
    _is_numpy_dtype,
    _to_numpy,
    _to_torch,
    _torch_label,
    _write_model,
)
from sinr_codecs.outputs import _check_destination, _is_zip
from sinr_codecs.progress import bar
from sinr_codecs.report import ATTR_KEY, FORMAT_NAME, FORMAT_VERSION, Report, TensorRecord
from sinr_codecs.uniform import quiet_numcodecs

__all__ = ["StoreReader", "decompress_weights", "inspect_store"]


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _little_endian(dtype: np.dtype) -> np.dtype:
    """``dtype`` in little-endian byte order (the order checksums and inline data use)."""
    return dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype


def _le_bytes(a: np.ndarray) -> memoryview:
    """``a``'s values as little-endian bytes, in C order."""
    return np.ascontiguousarray(a, dtype=_little_endian(a.dtype)).reshape(-1).view(np.uint8).data


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(_le_bytes(a)).hexdigest()


INLINE_MAX_BYTES = 1024
"""Largest tensor (bytes of its stored values) held in its record in the root group's attributes instead of an
array of its own.

A Zarr array costs about 600 bytes of metadata and zip entries in a store, far more than a bias of a few dozen
values. A lossless one is held as base64 of its little-endian bytes (codec ``{"id": "inline", "data"}``); a
one-step (``global``/``uniform``) one as base64 of the one pcodec chunk its array would hold (codec key
``"inline"``), so its coded bytes are the same either way."""
INLINE_KINDS = "biufc"
"""numpy dtype kinds a lossless tensor may have to be held inline (numbers and booleans)."""


def _inline_data(values: np.ndarray) -> str:
    """Base64 of ``values``' little-endian bytes (at most :data:`INLINE_MAX_BYTES` of them; a uint8 array: the
    bytes themselves)."""
    return base64.b64encode(_le_bytes(values)).decode("ascii")


def _from_base64(data: str, where: str, what: str) -> bytes:
    """The bytes of the base64 text ``data`` (:class:`WeightsError` naming ``where`` and ``what`` if it is not)."""
    try:
        return base64.b64decode(data, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise WeightsError(f"{where}: its inline {what} is not base64 ({exc}): the store is damaged") from None


def _inline_values(data: Any, dtype: Any, shape: Any, where: str) -> np.ndarray:
    """The array of ``dtype`` and ``shape`` that the base64 text ``data`` holds, every size checked against the
    record before decoding (:class:`WeightsError` naming ``where`` otherwise)."""
    try:
        dt = np.dtype(dtype)
        shp = tuple(int(d) for d in shape)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{where}: its record is damaged ({exc})") from None
    if dt.kind not in INLINE_KINDS or any(d < 0 for d in shp):
        raise WeightsError(f"{where}: its record names dtype {dtype!r} and shape {shp}: the store is damaged")
    nbytes = math.prod(shp) * dt.itemsize
    if not isinstance(data, str) or nbytes > INLINE_MAX_BYTES or len(data) != 4 * math.ceil(nbytes / 3):
        raise WeightsError(f"{where}: its inline data does not hold {nbytes} bytes: the store is damaged")
    raw = _from_base64(data, where, "data")
    if len(raw) != nbytes:
        raise WeightsError(f"{where}: its inline data holds {len(raw)} bytes, not {nbytes}: the store is damaged")
    return np.frombuffer(raw, dtype=_little_endian(dt)).reshape(shp).copy()


def _scaled(rec: TensorRecord) -> bool:
    """Whether ``rec`` is a tensor of one quantizer step (its integers in pcodec chunks, or in one chunk that
    its record holds, ``"inline"``)."""
    return rec.policy in ("global", "uniform") and rec.codec.get("serializer") == "pcodec"


def _inline_chunk(rec: TensorRecord, shape: tuple[int, ...], dtype: np.dtype, where: str) -> bytes:
    """The one pcodec chunk a small one-step tensor's record holds, its size checked before decoding."""
    data = rec.codec.get("inline")
    if math.prod(shape) * dtype.itemsize > INLINE_MAX_BYTES:
        raise WeightsError(f"{where}: its record holds a tensor of shape {shape} inline, more than "
                           f"{INLINE_MAX_BYTES} bytes: the store is damaged")
    if not isinstance(data, str) or len(data) > 4 * math.ceil(INLINE_MAX_BYTES / 3):
        raise WeightsError(f"{where}: its inline chunk is damaged")
    return _from_base64(data, where, "chunk")


@dataclass
class _Store:
    """An opened, validated store for reading."""

    root: Any
    meta: dict[str, Any]
    records: list[TensorRecord]
    closer: Callable[[], None]
    size: int
    keys: frozenset[str]  # every key in the store ("array/c/0/0", "array/zarr.json", ...)
    read_bytes: Callable[[str], bytes]  # one object's bytes, by key

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
    read_bytes: Callable[[str], bytes]
    if path.is_dir():
        store, size = zarr.storage.LocalStore(path, read_only=True), _dir_size(path)
        keys = frozenset(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())

        def read_bytes(key: str) -> bytes:
            return (path / key).read_bytes()
    elif _is_zip(path):
        try:  # reads the central directory only; each member's CRC is checked when it is read
            zf = zipfile.ZipFile(path)
            keys = frozenset(zf.namelist())
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise WeightsError(f"{path} is not a valid zip file (truncated or corrupt?): {exc}") from None
        read_bytes = zf.read
        store, size = zarr.storage.ZipStore(path, mode="r"), path.stat().st_size
        zarr_close = store.close

        def close() -> None:
            zarr_close()
            zf.close()
        store.close = close
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
    except (TypeError, ValueError, WeightsError) as exc:
        store.close()
        raise WeightsError(f"{path}: the tensor records are damaged ({exc})") from None
    names = [r.name for r in records]
    if len(set(names)) != len(names):
        store.close()
        raise WeightsError(f"{path}: the tensor records name a tensor twice: the store is damaged")
    return _Store(root, meta, records, store.close, size, keys, read_bytes)


def _read_array(st: _Store, rec: TensorRecord, path: Path) -> np.ndarray:
    """Read and check one tensor's stored values."""
    where = f"tensor {rec.name!r} (array {rec.array!r}) in {path}"
    if _scaled(rec):
        return _read_scaled(st, rec, where)
    if rec.codec.get("id") == "inline":
        values = _inline_values(rec.codec.get("data"), rec.stored_dtype, rec.stored_shape, where)
        if rec.sha256 is not None and _sha256(values) != rec.sha256:
            raise WeightsError(f"{where} does not match its checksum: the store is damaged")
        return values
    try:
        with quiet_numcodecs():
            arr = st.root[rec.array]
    except KeyError:
        raise WeightsError(f"{where} is missing: the store is incomplete or damaged") from None
    except Exception as exc:  # metadata naming an unknown or refused codec (a pickle codec, ...), bad JSON
        raise WeightsError(f"{where} cannot be opened: {type(exc).__name__}: {exc}") from None
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
    except Exception as exc:  # StreamError, pcodec/blosc/zip errors, ...
        raise WeightsError(f"{where} cannot be decoded: {type(exc).__name__}: {exc}") from None
    values = np.asarray(values)
    if rec.sha256 is not None and _sha256(values) != rec.sha256:
        raise WeightsError(f"{where} does not match its checksum: the store is damaged")
    if not np.all(np.isfinite(values)) and rec.policy != "lossless":
        raise WeightsError(f"{where} decodes to values that are not finite: the store is damaged")
    return values


def _read_scaled(st: _Store, rec: TensorRecord, where: str) -> np.ndarray:
    """A tensor of one quantizer step (FixedScaleOffset + PCodec chunks): :func:`_scaled_integers`, then
    :func:`_dequantize`."""
    return _dequantize(*_scaled_integers(st, rec, where))


def _scaled_integers(st: _Store, rec: TensorRecord, where: str) -> tuple[np.ndarray, float, np.dtype, tuple[int, ...]]:
    """The integers of a one-step tensor, read chunk by chunk without zarr's machinery: the chunk files (or
    the one chunk a small tensor's record holds) are checked against the record's checksum of their bytes,
    then decoded by pcodec straight into place. Returns ``(q, step, dtype, shape)``."""
    from pcodec import standalone

    try:
        step, astype = float(rec.codec["step"]), np.dtype(rec.codec["astype"])
        dtype, shape, chunks = np.dtype(rec.stored_dtype), tuple(rec.stored_shape), tuple(rec.chunks)
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{where}: its record is damaged ({exc})") from None
    if (astype.kind != "i" or astype.itemsize not in (2, 4) or dtype.kind != "f"
            or not (math.isfinite(step) and step > 0) or len(chunks) != len(shape) or not shape
            or chunks[0] < 1 or list(chunks[1:]) != list(shape[1:])):
        raise WeightsError(f"{where}: its record is damaged (step {step}, integers {astype}, chunks {chunks})")
    rows, per_row = shape[0], math.prod(shape[1:])
    if "inline" in rec.codec:  # a small tensor: its one chunk in the record, no array
        if chunks[0] != rows:
            raise WeightsError(f"{where}: its record is damaged (chunks {chunks} for an inline tensor)")
        blobs = [_inline_chunk(rec, shape, dtype, where)]
    else:
        _check_scaled_metadata(st, rec, where, step, astype, shape, chunks)
        n_chunks = -(-rows // chunks[0])
        if st.chunk_count(rec.array) != n_chunks:
            raise WeightsError(f"{where} has {st.chunk_count(rec.array)} of its {n_chunks} chunks: the store is "
                               "truncated or damaged")
        tail = "/0" * (len(shape) - 1)
        try:
            blobs = [st.read_bytes(f"{rec.array}/c/{i}{tail}") for i in range(n_chunks)]
        except (KeyError, OSError, zipfile.BadZipFile) as exc:
            raise WeightsError(f"{where} cannot be read: {type(exc).__name__}: {exc}") from None
    if rec.sha256 is not None:
        digest = hashlib.sha256()
        for blob in blobs:
            digest.update(blob)
        if digest.hexdigest() != rec.sha256:
            raise WeightsError(f"{where} does not match its checksum: the store is damaged")
    q = np.empty(rows * per_row, dtype=astype)
    buf = np.empty(chunks[0] * per_row, dtype=astype)
    for i, blob in enumerate(blobs):
        r0, r1 = i * chunks[0], min(rows, (i + 1) * chunks[0])
        full = (r1 - r0) == chunks[0]
        dst = q[r0 * per_row:r1 * per_row] if full else buf
        try:
            progress = standalone.simple_decompress_into(blob, dst)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise WeightsError(f"{where} cannot be decoded: {type(exc).__name__}: {exc}") from None
        if progress.n_processed != dst.size or not progress.finished:
            raise WeightsError(f"{where}: chunk {i} holds another number of values: the store is damaged")
        if not full:
            q[r0 * per_row:] = buf[:(r1 - r0) * per_row]
    return q, step, dtype, shape


_DEQUANTIZE_BLOCK = 1 << 16


def _dequantize(q: np.ndarray, step: float, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """``q / (1 / step)`` in float64, cast to ``dtype``, as numcodecs' FixedScaleOffset decodes (so this reader
    and any Zarr reader return the same bits), in blocks that stay in cache."""
    scale = 1.0 / step
    out = np.empty(q.size, dtype=dtype)
    tmp = np.empty(min(q.size, _DEQUANTIZE_BLOCK), dtype=np.float64)
    for i in range(0, q.size, _DEQUANTIZE_BLOCK):
        j = min(q.size, i + _DEQUANTIZE_BLOCK)
        np.true_divide(q[i:j], scale, out=tmp[:j - i], dtype=np.float64)
        np.copyto(out[i:j], tmp[:j - i], casting="same_kind")
    return out.reshape(shape)


def _check_scaled_metadata(st: _Store, rec: TensorRecord, where: str, step: float, astype: np.dtype,
                           shape: tuple[int, ...], chunks: tuple[int, ...]) -> None:
    """The array's zarr.json must say what its record says (the codecs any other Zarr reader would use)."""
    try:
        meta = json.loads(st.read_bytes(f"{rec.array}/zarr.json"))
        codecs = meta["codecs"]
        names = [c["name"] for c in codecs]
        fso = codecs[0]["configuration"]
        agrees = (names == ["numcodecs.fixedscaleoffset", "numcodecs.pcodec"] and list(meta["shape"]) == list(shape)
                  and list(meta["chunk_grid"]["configuration"]["chunk_shape"]) == list(chunks)
                  and np.dtype(fso["astype"]) == astype and fso.get("offset", 0) == 0
                  and math.isclose(float(fso["scale"]), 1.0 / step, rel_tol=1e-12))
    except (KeyError, IndexError, TypeError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"{where}: its zarr.json is missing or damaged ({type(exc).__name__}: {exc})") from None
    if not agrees:
        raise WeightsError(f"{where}: its zarr.json (codecs {names}) disagrees with the store's record of it: the "
                           "store is damaged or was altered")


class StoreReader:
    """Lazy access to the tensors of a store, shaped like ``safetensors.safe_open``.

    Parameters
    ----------
    path : path
        A store written by :func:`sinr_codecs.weights.compress_weights` or :func:`sinr_codecs.save_file`.
    framework : {"pt", "np"}, default "pt"
        :meth:`get_tensor` returns torch tensors (original dtypes, bfloat16 included) or numpy arrays.
    device : str, default "cpu"
        Torch device for ``"pt"`` tensors.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sinr_codecs import save_file, safe_open
    >>> path = os.path.join(tempfile.mkdtemp(), "w.zip")
    >>> _ = save_file({"fc.weight": np.ones((64, 32), "f4"), "fc.bias": np.zeros(64, "f4")}, path)
    >>> with safe_open(path, framework="np") as f:
    ...     sorted(f.keys()), f.get_tensor("fc.bias").shape
    (['fc.bias', 'fc.weight'], (64,))
    """

    def __init__(self, path: str | os.PathLike[str], framework: str = "pt", device: str = "cpu") -> None:
        if framework not in ("pt", "np", "numpy"):
            raise ValueError(f"framework must be 'pt' or 'np', got {framework!r}")
        self.path = Path(path)
        self.framework = "np" if framework == "numpy" else framework
        self.device = device
        self._st = _open_store(self.path)
        self._by_name = {r.name: r for r in self._st.records}

    def keys(self) -> list[str]:
        """Tensor names, in the original file's order."""
        return [r.name for r in self._st.records]

    def metadata(self) -> dict[str, str] | None:
        """The original safetensors header metadata (None when there was none)."""
        meta = self._st.meta.get("safetensors_metadata")
        return dict(meta) if isinstance(meta, dict) else None

    def record(self, name: str) -> TensorRecord:
        """What compression did to tensor ``name`` (policy, bytes, relative error, ...)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.path} has no tensor {name!r}") from None

    def get_tensor(self, name: str) -> Any:
        """Decode tensor ``name`` alone (a torch tensor or a numpy array, original shape and dtype)."""
        rec = self.record(name)
        return self._convert(rec, _read_array(self._st, rec, self.path))

    def _convert(self, rec: TensorRecord, stored: np.ndarray) -> Any:
        if self.framework == "np":
            return _to_numpy(rec, stored)
        return _to_torch(rec, stored).to(self.device)

    def tensors(self, names: list[str] | None = None) -> Iterator[tuple[str, Any]]:
        """``(name, tensor)`` for ``names`` (all, in order), decoded one after the other: while one tensor's
        integers are decoded, the previous one's are multiplied out in a second thread."""
        return ((rec.name, self._convert(rec, stored)) for rec, stored in _read_all(
            self._st, [self.record(n) for n in (names if names is not None else self.keys())], self.path))

    def close(self) -> None:
        self._st.closer()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _output_format(dst: Path) -> str:
    """``"index"`` for a sharded checkpoint's index, else the model file format of ``dst``."""
    if dst.name.lower().endswith(INDEX_SUFFIX):
        return "index"
    return _format_of(dst, what="output")


def decompress_weights(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> Report:
    """Restore a model file (or a sharded checkpoint) from a store written by
    :func:`~sinr_codecs.weights.compress_weights`.

    Parameters
    ----------
    src : path
        The store: a directory or a ``.zip``.
    dst : path
        The model file to write; its suffix picks the format (``.pt``/``.pth``/``.bin``/``.ckpt``,
        ``.safetensors``, ``.npz``), which need not be the original one (bfloat16 cannot go to .npz). A
        name ending in ``.index.json`` (``model.safetensors.index.json``) writes a sharded checkpoint: the
        store's shards (as compressed) beside the index; the store must come from a sharded checkpoint.
    progress : bool, default True
        Show a progress bar (standard error, terminals only).
    overwrite : bool, default False
        Replace existing regular files at ``dst`` (and its shards); never a folder. Each new file is written
        next to its destination and renamed over it when complete.

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
    fmt = _output_format(dst)
    _check_destination(dst, overwrite, store=False)
    _check_writable(dst)
    st = _open_store(src)
    try:
        groups = _output_files(st, src, dst, fmt)
        for path, _, _ in groups[1:]:
            _check_destination(path, overwrite, store=False)
        with bar(total=len(st.records), desc="decompress", unit="tensor", quiet=not progress, leave=True) as b:
            for path, file_fmt, records in groups:
                if file_fmt == "npz":  # refuse before decoding anything
                    for rec in records:
                        if rec.encoding != "native" or not _is_numpy_dtype(rec.dtype):
                            _to_numpy(rec, np.empty(0))
                entries = [(r.name, _torch_label(r.dtype) if file_fmt != "npz" else r.dtype, tuple(r.shape))
                           for r in records]
                metadata = st.meta.get("safetensors_metadata") if file_fmt == "safetensors" else None
                _write_model(path, file_fmt, entries, _restored(st, src, records, file_fmt, b),
                             metadata if isinstance(metadata, dict) else None)
        if fmt == "index":
            _write_index(st, dst, groups)
    finally:
        st.closer()
    return _report(st, src, dst, t0)


def _report(st: _Store, src: Path, dst: Path | str, t0: float) -> Report:
    step = st.meta.get("global_step")
    return Report(str(src), str(dst), str(st.meta.get("source_format", "")), st.records,
                  list(st.meta.get("notes") or []), time.perf_counter() - t0, st.size,
                  float(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else None)


def _read_all(st: _Store, records: list[TensorRecord], path: Path) -> Iterator[tuple[TensorRecord, np.ndarray]]:
    """Each record's stored values, in order. The integers of a one-step tensor are decoded here (pcodec holds
    the interpreter) while the tensors before it are multiplied out in a worker thread (numpy lets go of
    it), so two cores share the work. Tensors wait for their turn while the waiting ones hold no more than
    twice the largest of them: a small tensor (a bias) between two matrices does not stall the pipeline, and
    memory stays near two tensors'."""
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sinr-decode") as pool:
        pending: deque[tuple[TensorRecord, Future[np.ndarray], int]] = deque()
        for rec in records:
            where = f"tensor {rec.name!r} (array {rec.array!r}) in {path}"
            if _scaled(rec):
                q, step, dtype, shape = _scaled_integers(st, rec, where)
                job: Future[np.ndarray] = pool.submit(_dequantize, q, step, dtype, shape)
                size = q.size * max(q.itemsize, np.dtype(dtype).itemsize)
            else:
                job = Future()
                job.set_result(_read_array(st, rec, path))
                size = job.result().nbytes
            pending.append((rec, job, size))
            while len(pending) > 1 and sum(p[2] for p in pending) > 2 * max(p[2] for p in pending):
                first, done, _ = pending.popleft()
                yield first, done.result()
        while pending:
            first, done, _ = pending.popleft()
            yield first, done.result()


def _restored(st: _Store, src: Path, records: list[TensorRecord], fmt: str, b: Any) -> Iterator[Any]:
    """Each record's tensor, decoded as the writer asks for it (at most two in memory at a time)."""
    for rec, stored in _read_all(st, records, src):
        yield _to_numpy(rec, stored) if fmt == "npz" else _to_torch(rec, stored)
        b.update()


def _output_files(st: _Store, src: Path, dst: Path, fmt: str) -> list[tuple[Path, str, list[TensorRecord]]]:
    """``(path, format, records)`` of every file to write: ``dst`` alone, or a sharded checkpoint's shards."""
    if fmt != "index":
        return [(dst, fmt, st.records)]
    shards = st.meta.get("shards")
    if not isinstance(shards, dict) or not shards:
        raise WeightsError(f"{src} was not compressed from a sharded checkpoint: restore it to a single model "
                           "file (.safetensors, .pt, .npz)")
    out: dict[str, list[TensorRecord]] = {}
    for rec in st.records:
        name = shards.get(rec.name)
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise WeightsError(f"{src}: the shard of tensor {rec.name!r} is missing or not a file name: the "
                               "store is damaged")
        out.setdefault(name, []).append(rec)
    return [(dst.parent / name, _format_of(Path(name), what="shard"), recs) for name, recs in out.items()]


def _write_index(st: _Store, dst: Path, groups: list[tuple[Path, str, list[TensorRecord]]]) -> None:
    from sinr_codecs.model_files import _itemsize, _public_mode

    meta = dict(st.meta.get("index_metadata") or {})
    meta["total_size"] = sum(int(np.prod(r.shape)) * _itemsize(_torch_label(r.dtype)) for r in st.records)
    doc = {"metadata": meta, "weight_map": {r.name: path.name for path, _, recs in groups for r in recs}}
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.chmod(tmp, _public_mode(0o666))
    os.replace(tmp, dst)


def inspect_store(path: str | os.PathLike[str]) -> Report:
    """What a store holds, from its metadata alone (nothing is decoded).

    Parameters
    ----------
    path : path
        A store written by :func:`~sinr_codecs.weights.compress_weights` (directory or ``.zip``).

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
    return _report(st, path, "", t0)
