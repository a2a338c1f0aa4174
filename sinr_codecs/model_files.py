"""Reading and writing model files: the formats, their tensors, and the dtype conversions between them.

Model files (read and written, chosen by suffix):

- PyTorch state_dict: ``.pt``, ``.pth``, ``.bin``, ``.ckpt``. Always read with
  ``torch.load(weights_only=True, map_location="cpu")``: a file holding arbitrary Python objects is
  refused, never unpickled. A checkpoint that wraps its tensors (``{"state_dict": {...}, "epoch": 3}``)
  is unwrapped, with a note; anything else that is not a mapping of names to tensors is an error.
- ``.safetensors`` (reading needs the optional ``safetensors`` package: ``pip install
  'sinr-codecs[safetensors]'``; writing does not); its header metadata is kept and restored.
- ``.npz`` (read with ``allow_pickle=False``; numeric arrays only).
- A sharded checkpoint: its index, ``*.safetensors.index.json`` or ``*.bin.index.json`` (Hugging Face's
  layout: ``{"metadata": {...}, "weight_map": {tensor name: shard file}}``) with the shards beside it.

Tensors are read one at a time (:class:`ModelSource`): a PyTorch file is memory-mapped, a safetensors file
and an npz archive are read tensor by tensor, so compressing needs memory for the largest tensor, not for the
file. Writing streams too (:func:`_write_model`), except for PyTorch files, which ``torch.save`` writes from
a whole state_dict.

bfloat16 tensors are handed to SINR as float32 (:meth:`_Tensor.for_sinr`) and rounded back to bfloat16
when restored (:func:`_to_torch`); stored losslessly they keep their exact bits (:meth:`_Tensor.exact`,
encoding ``"bits"``). numpy (``.npz``) cannot hold such dtypes, so they cannot be restored to ``.npz``.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from sinr_codecs.errors import WeightsError
from sinr_codecs.report import TensorRecord

__all__ = ["TORCH_SUFFIXES", "MODEL_SUFFIXES", "INDEX_SUFFIX", "ModelSource", "open_model"]

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
MODEL_SUFFIXES = (*TORCH_SUFFIXES, ".safetensors", ".npz")
INDEX_SUFFIX = ".index.json"
"""A sharded checkpoint's index ends with this (``model.safetensors.index.json``)."""
_MAX_INDEX_BYTES = 64 << 20
_FLOATS = frozenset({"float16", "float32", "float64", "bfloat16"})
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")


# ----------------------------------------------------------------------------------------------------
# dtypes
# ----------------------------------------------------------------------------------------------------
def _is_numpy_dtype(dtype: str) -> bool:
    try:
        np.dtype(dtype)
    except TypeError:
        return False
    return True


def _is_float(dtype: str) -> bool:
    """Whether a torch or numpy dtype name is one SINR codes (float16/32/64, bfloat16)."""
    return dtype in _FLOATS or (_is_numpy_dtype(dtype) and np.dtype(dtype).name in _FLOATS)


# ----------------------------------------------------------------------------------------------------
# reading model files
# ----------------------------------------------------------------------------------------------------
def constant(value: Any) -> Callable[[], Any]:
    """A loader that returns ``value`` (a tensor already in memory)."""
    return lambda: value


@dataclass
class _Tensor:
    """One tensor of a model file: its name, dtype and shape, and a way to load its values.

    ``load()`` returns a torch tensor or a numpy array; each call may read the file again, so callers
    keep the value while they need it and drop it after.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    load: Callable[[], Any]

    @property
    def value(self) -> Any:
        return self.load()

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * _itemsize(self.dtype)

    @staticmethod
    def finite(value: Any) -> bool:
        import torch

        if isinstance(value, torch.Tensor):
            return (not value.is_floating_point()) or bool(torch.isfinite(value).all())
        return value.dtype.kind != "f" or bool(np.isfinite(value).all())

    @staticmethod
    def for_sinr(value: Any) -> tuple[np.ndarray, str]:
        """Values for the lossy coders (float16/32/64; bfloat16 widened to float32) and their encoding."""
        import torch

        if isinstance(value, torch.Tensor):
            if value.dtype == torch.bfloat16:
                return value.float().numpy(), "float32"
            return value.numpy(), "native"
        return value, "native"

    def exact(self, value: Any) -> tuple[np.ndarray, str]:
        """Bit-exact values as a numpy array and their encoding ("native" or "bits")."""
        import torch

        if not isinstance(value, torch.Tensor):
            return value, "native"
        try:
            return value.numpy(), "native"
        except TypeError:  # bfloat16, float8, ...: keep the bits
            bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}.get(value.element_size())
            if bits is None:
                raise WeightsError(
                    f"tensor {self.name!r} has dtype {self.dtype}, which cannot be stored") from None
            raw = value.contiguous().view(bits).numpy()
            return raw.view(np.dtype(f"u{value.element_size()}")), "bits"


def _itemsize(dtype: str) -> int:
    if _is_numpy_dtype(dtype):
        return np.dtype(dtype).itemsize
    import torch

    dt = getattr(torch, dtype, None)
    return torch.empty(0, dtype=dt).element_size() if isinstance(dt, torch.dtype) else 0


@dataclass
class ModelSource:
    """An opened model file (or sharded checkpoint) whose tensors load one at a time.

    Attributes
    ----------
    path : Path
        The file (or the index of a sharded checkpoint).
    format : str
        ``"torch"``, ``"safetensors"`` or ``"npz"`` (a sharded checkpoint: its shards' format).
    tensors : list of _Tensor
        In the file's order (shard after shard, each in its own order).
    metadata : dict or None
        A safetensors header's metadata.
    notes : list of str
        Things the user should know (an unwrapped checkpoint, ...).
    shards : dict or None
        A sharded checkpoint's ``weight_map`` (tensor name -> shard file name) and ``index_metadata``.
    """

    path: Path
    format: str
    tensors: list[_Tensor]
    metadata: dict[str, str] | None = None
    notes: list[str] = field(default_factory=list)
    shards: dict[str, str] | None = None
    index_metadata: dict[str, Any] | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self._closers:
            close()
        self._closers.clear()

    def __enter__(self) -> ModelSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_model(path: str | os.PathLike[str]) -> ModelSource:
    """Open a model file or a sharded checkpoint's index for reading tensor by tensor.

    Raises
    ------
    FileNotFoundError
        ``path`` (or a shard it names) does not exist.
    WeightsError
        An unknown format, a file that cannot be read, a refused pickle, a damaged index.
    """
    path = Path(path)
    if path.name.lower().endswith(INDEX_SUFFIX):
        return _open_sharded(path)
    fmt = _format_of(path, what="model file")
    _check_file(path)
    src = ModelSource(path, fmt, [])
    if fmt == "torch":
        src.tensors = _load_torch(path, src.notes)
    elif fmt == "safetensors":
        src.tensors, src.metadata, close = _open_safetensors(path)
        src._closers.append(close)
    else:
        src.tensors, close = _open_npz(path)
        src._closers.append(close)
    return src


def _check_file(path: Path) -> None:
    if not path.is_file():
        if path.exists():
            raise WeightsError(f"{path} is not a file")
        raise FileNotFoundError(f"no such file: {path}")


def _open_sharded(index: Path) -> ModelSource:
    """A sharded checkpoint: the index's weight map, each shard opened in turn."""
    _check_file(index)
    if index.stat().st_size > _MAX_INDEX_BYTES:
        raise WeightsError(f"{index} is larger than {_MAX_INDEX_BYTES} bytes: not a checkpoint index")
    try:
        doc = json.loads(index.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{index} is not a JSON checkpoint index ({exc})") from None
    wmap = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(wmap, dict) or not wmap or not all(isinstance(k, str) and isinstance(v, str)
                                                         for k, v in wmap.items()):
        raise WeightsError(f"{index} has no weight_map of tensor names to shard files: not a checkpoint index")
    shard_names = list(dict.fromkeys(wmap.values()))
    for name in shard_names:
        if Path(name).name != name or name in ("", ".", ".."):
            raise WeightsError(f"{index} names a shard {name!r} outside its folder; shards must sit beside it")
    formats = {_format_of(Path(n), what="shard") for n in shard_names}
    if len(formats) != 1:
        raise WeightsError(f"{index} mixes shard formats {sorted(formats)}")
    src = ModelSource(index, formats.pop(), [], shards=dict(wmap),
                      index_metadata=doc.get("metadata") if isinstance(doc.get("metadata"), dict) else None)
    try:
        for name in shard_names:
            shard = open_model(index.parent / name)
            src._closers.append(shard.close)
            wanted = [t for t in shard.tensors if wmap.get(t.name) == name]
            extra = sorted({t.name for t in shard.tensors} - set(wmap))
            if extra:
                src.notes.append(f"{name} holds tensors the index does not list, ignored: {extra[:5]}")
            src.tensors.extend(wanted)
            src.notes.extend(shard.notes)
            if shard.metadata and src.metadata is None:
                src.metadata = shard.metadata
        missing = sorted(set(wmap) - {t.name for t in src.tensors})
        if missing:
            raise WeightsError(f"{index} lists tensors its shards do not hold: {missing[:5]}")
    except BaseException:
        src.close()
        raise
    return src


def _load_tensors(path: Path, fmt: str, notes: list[str]) -> tuple[list[_Tensor], dict[str, str] | None]:
    """Every tensor of a model file (loaded lazily, see :class:`ModelSource`) and its metadata."""
    src = open_model(path)
    notes.extend(src.notes)
    return src.tensors, src.metadata


def _format_of(path: Path, *, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix in TORCH_SUFFIXES:
        return "torch"
    if suffix == ".safetensors":
        return "safetensors"
    if suffix == ".npz":
        return "npz"
    raise WeightsError(
        f"unknown {what} format {suffix or '(no suffix)'!r} of {path}; expected one of "
        f"{', '.join(MODEL_SUFFIXES)}"
    )


def _load_torch(path: Path, notes: list[str]) -> list[_Tensor]:
    import pickle

    import torch

    try:
        try:
            obj = torch.load(path, weights_only=True, map_location="cpu", mmap=True)
        except RuntimeError as exc:  # legacy (non-zip) files cannot be memory-mapped
            if "mmap" not in str(exc):
                raise
            obj = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise WeightsError(
                f"refused to load {path}: it holds Python objects other than tensors and plain "
                f"containers, and sinr never unpickles arbitrary objects (torch.load(weights_only=True) "
                f"said: {first}). If you trust the file, load it yourself and save only the weights: "
                "torch.save(model.state_dict(), 'weights.pt')."
            ) from None
        raise WeightsError(f"{path} is not a readable PyTorch file ({first})") from None
    except Exception as exc:  # corrupt zip, truncated file, not a torch file at all
        raise WeightsError(
            f"{path} is not a readable PyTorch file ({type(exc).__name__}: {str(exc).strip()[:200]})"
        ) from None
    return [_Tensor(n, str(t.dtype).removeprefix("torch."), tuple(t.shape), constant(t))
            for n, t in _as_state_dict(obj, path, notes).items()]


def _describe(obj: Any) -> str:
    import torch

    if isinstance(obj, torch.Tensor):
        return f"a single tensor of shape {tuple(obj.shape)}"
    if isinstance(obj, Mapping):
        return f"a {type(obj).__name__} with keys {list(obj)[:5]}"
    return f"a {type(obj).__name__}"


def _as_state_dict(obj: Any, path: Path, notes: list[str]) -> dict[str, Any]:
    """A flat ``{name: tensor}`` from what ``torch.load`` returned, or a clear error."""
    import torch

    def flat(m: Any) -> bool:
        return isinstance(m, Mapping) and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in m.items())

    hint = ("a state_dict maps names to tensors; save one with torch.save(model.state_dict(), path)")
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} holds {_describe(obj)}, not a state_dict: {hint}")
    if flat(obj):
        tensors = dict(obj)
    else:
        inner = next((k for k in _WRAPPER_KEYS if flat(obj.get(k)) and obj.get(k)), None)
        if inner is None:
            bad = next(((k, v) for k, v in obj.items()
                        if not isinstance(k, str) or not isinstance(v, torch.Tensor)))
            raise WeightsError(
                f"{path} is not a flat state_dict: entry {bad[0]!r} is {_describe(bad[1])}, not a tensor "
                f"({hint})"
            )
        others = [str(k) for k in obj if k != inner]
        notes.append(
            f"read the tensors under {inner!r} of the checkpoint; other entries were ignored: {others}")
        tensors = dict(obj[inner])
    out = {}
    for name, t in tensors.items():
        if t.layout != torch.strided:
            raise WeightsError(f"tensor {name!r} in {path} is {t.layout}; only dense tensors are supported")
        if t.is_quantized:
            raise WeightsError(f"tensor {name!r} in {path} is quantized ({t.dtype}); not supported")
        out[name] = t.detach().cpu().contiguous()
    return out


def _open_safetensors(path: Path) -> tuple[list[_Tensor], dict[str, str] | None, Callable[[], None]]:
    try:
        from safetensors import safe_open
    except ImportError:
        raise WeightsError(
            "reading .safetensors needs the safetensors package: pip install 'sinr-codecs[safetensors]'"
        ) from None
    try:
        handle: Any = safe_open(str(path), framework="pt", device="cpu")
        f = handle.__enter__()
        metadata = f.metadata()
        out = []
        for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            sl = f.get_slice(name)
            dtype = _SAFETENSORS_TO_TORCH.get(sl.get_dtype(), sl.get_dtype().lower())
            out.append(_Tensor(name, dtype, tuple(sl.get_shape()), partial(_safetensor, f, path, name)))
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(f"{path} is not a readable .safetensors file ({str(exc).strip()[:200]})") from None
    return out, dict(metadata) if metadata else None, lambda: handle.__exit__(None, None, None)


def _safetensor(f: Any, path: Path, name: str) -> Any:
    try:
        return f.get_tensor(name).contiguous()
    except Exception as exc:
        raise WeightsError(f"cannot read tensor {name!r} of {path} ({str(exc).strip()[:200]})") from None


def _open_npz(path: Path) -> tuple[list[_Tensor], Callable[[], None]]:
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # not a zip, truncated, ...
        raise WeightsError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
    if not hasattr(z, "files"):
        raise WeightsError(f"{path} is a single .npy array, not an .npz archive")
    out = []
    try:
        for name in z.files:
            dtype, shape = _npz_header(z, name, path)
            out.append(_Tensor(name, dtype.str if dtype.byteorder == ">" else dtype.name, shape,
                               partial(_npz_array, z, name, path)))
    except BaseException:
        z.close()
        raise
    return out, z.close


def _npz_header(z: Any, name: str, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """An npz member's dtype and shape, from its header alone."""
    from numpy.lib import format as npformat

    try:
        with z.zip.open(name + ".npy") as f:
            version = npformat.read_magic(f)
            read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
            shape, _, dtype = read(f)
    except Exception as exc:
        raise WeightsError(f"array {name!r} in {path} has a damaged header ({type(exc).__name__}: {exc})") from None
    if dtype.hasobject:
        raise WeightsError(f"array {name!r} in {path} holds Python objects and cannot be read without unpickling; "
                           "sinr reads numeric arrays only")
    if dtype.kind not in "biufc":
        raise WeightsError(
            f"array {name!r} in {path} has dtype {dtype}; only bool, integer, float and complex arrays are "
            "supported")
    return dtype, tuple(int(d) for d in shape)


def _npz_array(z: Any, name: str, path: Path) -> np.ndarray:
    try:
        return z[name]
    except ValueError as exc:
        raise WeightsError(
            f"array {name!r} in {path} cannot be read without unpickling ({exc}); sinr reads numeric arrays "
            "only") from None
    except Exception as exc:
        raise WeightsError(f"array {name!r} in {path} cannot be read ({type(exc).__name__}: {exc})") from None


_SAFETENSORS_TO_TORCH = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                         "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
                         "U16": "uint16", "U32": "uint32", "U64": "uint64", "BOOL": "bool",
                         "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "C64": "complex64"}
_TORCH_TO_SAFETENSORS = {v: k for k, v in _SAFETENSORS_TO_TORCH.items()}


# ----------------------------------------------------------------------------------------------------
# writing model files
# ----------------------------------------------------------------------------------------------------
def _torch_dtype(label: str) -> Any:
    import torch

    dt = getattr(torch, label, None)
    if isinstance(dt, torch.dtype):
        return dt
    native = np.dtype(label).newbyteorder("=")
    return torch.from_numpy(np.empty(0, dtype=native)).dtype


def _torch_label(dtype: str) -> str:
    """The torch dtype name of a record's dtype (``">f4"`` -> ``"float32"``; ``"bfloat16"`` as is)."""
    if _is_numpy_dtype(dtype):
        return np.dtype(dtype).newbyteorder("=").name
    return dtype


def _to_torch(rec: TensorRecord, stored: np.ndarray) -> Any:
    import torch

    target = _torch_dtype(rec.dtype)
    a = stored.astype(stored.dtype.newbyteorder("="), copy=False)
    if rec.encoding == "bits":
        signed = {1: np.uint8, 2: np.int16, 4: np.int32, 8: np.int64}[a.dtype.itemsize]
        t = torch.from_numpy(np.ascontiguousarray(a).view(signed)).view(target)
    else:
        t = torch.from_numpy(np.ascontiguousarray(a)).to(target)
    return t.reshape(tuple(rec.shape)).contiguous()


def _to_numpy(rec: TensorRecord, stored: np.ndarray) -> np.ndarray:
    if rec.encoding != "native" or not _is_numpy_dtype(rec.dtype):
        raise WeightsError(
            f"tensor {rec.name!r} is {rec.dtype}, which numpy (.npz) cannot hold; restore to .pt or "
            ".safetensors instead")
    return stored.astype(np.dtype(rec.dtype), copy=False).reshape(tuple(rec.shape))


def _public_mode(mode: int) -> int:
    """``mode`` less the process umask: the permissions a file or folder created normally would get
    (``tempfile`` creates private ones)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def _write_error(path: Path, exc: BaseException, *, kept: bool = False) -> WeightsError:
    """One-line error for an output that could not be written: names ``path`` (not a temporary file)
    and the reason; ``kept``: say that what was at ``path`` before is still there."""
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
        inside = os.path.abspath(str(exc.filename or "")).startswith(
            os.path.join(os.path.abspath(path.parent), ""))
        if exc.filename and not inside:  # somewhere else than our temporary files
            reason += f" ({exc.filename})"
        elif not os.access(path.parent, os.W_OK):
            reason += f" (the folder {path.parent} is not writable)"
    else:
        text = str(exc).strip()
        reason = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
    note = f"; the existing {path} was left as it was" if kept else ""
    return WeightsError(f"cannot write {path}: {reason}{note}")


def _check_writable(path: Path) -> None:
    """Fail early, before any long work, when no file can be created next to ``path`` (a read-only
    folder or file system): a :class:`WeightsError` naming ``path``."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc, kept=os.path.lexists(path)) from None
    os.close(fd)
    os.unlink(name)


def _write_model(path: Path, fmt: str, entries: list[tuple[str, str, tuple[int, ...]]], values: Iterable[Any],
                 metadata: dict[str, str] | None) -> None:
    """Write the tensors ``entries`` (name, dtype label, shape), whose values ``values`` yields in the same
    order (torch tensors, or numpy arrays for npz), to ``path``.

    safetensors and npz files are written as the values come (one tensor in memory at a time); a PyTorch
    file is written from the whole state_dict. Everything goes to a temporary file next to ``path``,
    renamed over it when complete: an error or an interrupt leaves what was at ``path`` as it was, and
    removes the temporary file. A file that cannot be written (folder not writable, disk full, ...) is a
    :class:`WeightsError` naming ``path``.
    """
    if fmt == "safetensors":
        unknown = sorted({d for _, d, _ in entries if d not in _TORCH_TO_SAFETENSORS})
        if unknown:
            raise WeightsError(f"cannot write {path} as .safetensors: it has no dtype for {unknown}")
    kept = os.path.lexists(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    tmp = Path(name)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                _write_to(f, fmt, entries, iter(values), metadata)
            os.chmod(tmp, _public_mode(0o666))
            os.replace(tmp, path)
        except WeightsError:
            raise
        except (OSError, RuntimeError) as exc:  # disk full; torch's writer reports I/O as RuntimeError
            raise _write_error(path, exc, kept=kept) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_to(f: Any, fmt: str, entries: list[tuple[str, str, tuple[int, ...]]], values: Iterator[Any],
              metadata: dict[str, str] | None) -> None:
    """Write the bytes of a model file to the open file ``f``."""
    if fmt == "torch":
        import torch

        torch.save({name: next(values) for name, _, _ in entries}, f)
    elif fmt == "safetensors":
        _write_safetensors(f, entries, values, metadata)
    else:  # npz, written as np.savez does, but any name works (np.savez reserves "file")
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, _, _ in entries:
                with zf.open(name + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(next(values)), allow_pickle=False)


def _write_safetensors(f: Any, entries: list[tuple[str, str, tuple[int, ...]]], values: Iterator[Any],
                       metadata: dict[str, str] | None) -> None:
    """The safetensors layout: an 8-byte little-endian header length, the JSON header (padded with spaces
    to a multiple of 8), then every tensor's bytes, C order, little-endian, in the header's order."""
    import torch

    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, dtype, shape in entries:
        size = math.prod(shape) * _itemsize(dtype)
        header[name] = {"dtype": _TORCH_TO_SAFETENSORS[dtype], "shape": list(shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for name, dtype, shape in entries:
        t = next(values)
        if isinstance(t, torch.Tensor):
            t = t.contiguous().reshape(-1)
            raw = t.view(torch.uint8).numpy() if t.numel() else np.zeros(0, np.uint8)
        else:
            raw = np.ascontiguousarray(t, dtype=np.asarray(t).dtype.newbyteorder("<")).view(np.uint8)
        if raw.size != math.prod(shape) * _itemsize(dtype):
            raise WeightsError(f"tensor {name!r}: {raw.size} bytes for a {dtype} tensor of shape {shape}")
        f.write(raw.reshape(-1).data)
