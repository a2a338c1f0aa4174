"""Reading and writing model files: the formats, their tensors, and the dtype conversions between them.

Model files (read and written, chosen by suffix):

- PyTorch state_dict: ``.pt``, ``.pth``, ``.bin``, ``.ckpt``. Always read with
  ``torch.load(weights_only=True, map_location="cpu")``: a file holding arbitrary Python objects is
  refused, never unpickled. A checkpoint that wraps its tensors (``{"state_dict": {...}, "epoch": 3}``)
  is unwrapped, with a note; anything else that is not a mapping of names to tensors is an error.
- ``.safetensors`` (needs the optional ``safetensors`` package: ``pip install 'sinr-codecs[safetensors]'``);
  its header metadata is kept and restored.
- ``.npz`` (read with ``allow_pickle=False``; numeric arrays only).

bfloat16 tensors are handed to SINR as float32 (:meth:`_Tensor.for_sinr`) and rounded back to bfloat16
when restored (:func:`_to_torch`); stored losslessly they keep their exact bits (:meth:`_Tensor.exact`,
encoding ``"bits"``). numpy (``.npz``) cannot hold such dtypes, so they cannot be restored to ``.npz``.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sinr_codecs.errors import WeightsError
from sinr_codecs.report import TensorRecord

__all__ = ["TORCH_SUFFIXES", "MODEL_SUFFIXES"]

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
MODEL_SUFFIXES = (*TORCH_SUFFIXES, ".safetensors", ".npz")
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
@dataclass
class _Tensor:
    """One tensor of a model file: its name and a way to get its values."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    value: Any  # torch.Tensor or numpy.ndarray

    @property
    def nbytes(self) -> int:
        import torch

        if isinstance(self.value, torch.Tensor):
            return self.value.numel() * self.value.element_size()
        return int(self.value.nbytes)

    def finite(self) -> bool:
        import torch

        if not _is_float(self.dtype):
            return True
        if isinstance(self.value, torch.Tensor):
            return bool(torch.isfinite(self.value).all())
        return bool(np.isfinite(self.value).all())

    def for_sinr(self) -> tuple[np.ndarray, str]:
        """Values for the codec (float16/32/64; bfloat16 widened to float32) and their encoding."""
        import torch

        v = self.value
        if isinstance(v, torch.Tensor):
            if v.dtype == torch.bfloat16:
                return v.float().numpy(), "float32"
            return v.numpy(), "native"
        return v, "native"

    def exact(self) -> tuple[np.ndarray, str]:
        """Bit-exact values as a numpy array and their encoding ("native" or "bits")."""
        import torch

        v = self.value
        if not isinstance(v, torch.Tensor):
            return v, "native"
        try:
            return v.numpy(), "native"
        except TypeError:  # bfloat16, float8, ...: keep the bits
            bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}.get(v.element_size())
            if bits is None:
                raise WeightsError(
                    f"tensor {self.name!r} has dtype {self.dtype}, which cannot be stored") from None
            raw = v.contiguous().view(bits).numpy()
            return raw.view(np.dtype(f"u{v.element_size()}")), "bits"


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


def _load_tensors(path: Path, fmt: str, notes: list[str]) -> tuple[list[_Tensor], dict[str, str] | None]:
    if not path.is_file():
        if path.exists():
            raise WeightsError(f"{path} is not a file")
        raise FileNotFoundError(f"no such file: {path}")
    if fmt == "torch":
        return _load_torch(path, notes), None
    if fmt == "safetensors":
        return _load_safetensors(path)
    return _load_npz(path), None


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
    return [_Tensor(n, str(t.dtype).removeprefix("torch."), tuple(t.shape), t)
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


def _load_safetensors(path: Path) -> tuple[list[_Tensor], dict[str, str] | None]:
    try:
        from safetensors import safe_open
    except ImportError:
        raise WeightsError(
            "reading .safetensors needs the safetensors package: pip install 'sinr-codecs[safetensors]'"
        ) from None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata()
            tensors = [f.get_tensor(k) for k in f.keys()]
            names = list(f.keys())
    except Exception as exc:
        raise WeightsError(f"{path} is not a readable .safetensors file ({str(exc).strip()[:200]})") from None
    out = [_Tensor(n, str(t.dtype).removeprefix("torch."), tuple(t.shape), t.contiguous())
           for n, t in zip(names, tensors)]
    return out, dict(metadata) if metadata else None


def _load_npz(path: Path) -> list[_Tensor]:
    out = []
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise WeightsError(f"{path} is a single .npy array, not an .npz archive")
            for name in z.files:
                try:
                    a = z[name]
                except ValueError as exc:
                    raise WeightsError(
                        f"array {name!r} in {path} cannot be read without unpickling ({exc}); sinr reads "
                        "numeric arrays only") from None
                if a.dtype.kind not in "biufc":
                    raise WeightsError(
                        f"array {name!r} in {path} has dtype {a.dtype}; only bool, integer, float and "
                        "complex arrays are supported")
                dtype = a.dtype.str if a.dtype.byteorder == ">" else a.dtype.name
                out.append(_Tensor(name, dtype, a.shape, a))
    except WeightsError:
        raise
    except Exception as exc:  # not a zip, truncated, ...
        raise WeightsError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
    return out


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


def _write_model(path: Path, fmt: str, tensors: dict[str, Any], metadata: dict[str, str] | None) -> None:
    """Write ``tensors`` (torch tensors, or numpy arrays for npz) to ``path``.

    They go to a temporary file next to ``path``, renamed over it when complete: an error or an interrupt
    leaves what was at ``path`` as it was, and removes the temporary file. A file that cannot be written
    (folder not writable, disk full, ...) is a :class:`WeightsError` naming ``path``.
    """
    kept = os.path.lexists(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    tmp = Path(name)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                _write_to(f, tmp, path, fmt, tensors, metadata)
            os.chmod(tmp, _public_mode(0o666))
            os.replace(tmp, path)
        except WeightsError:
            raise
        except (OSError, RuntimeError) as exc:  # disk full; torch's writer reports I/O as RuntimeError
            raise _write_error(path, exc, kept=kept) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_to(f: Any, tmp: Path, path: Path, fmt: str, tensors: dict[str, Any],
              metadata: dict[str, str] | None) -> None:
    """Write the bytes of the model file ``path`` to the open file ``f`` (whose own path is ``tmp``)."""
    if fmt == "torch":
        import torch

        torch.save(tensors, f)
    elif fmt == "safetensors":
        try:
            from safetensors.torch import save_file
        except ImportError:
            raise WeightsError(
                "writing .safetensors needs the safetensors package: "
                "pip install 'sinr-codecs[safetensors]'") from None
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except OSError:
            raise
        except Exception as exc:
            raise WeightsError(f"cannot write {path} as .safetensors: {exc}") from None
    else:  # npz, written as np.savez does, but any name works (np.savez reserves "file")
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, a in tensors.items():
                with zf.open(name + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(a), allow_pickle=False)
