"""Whole models: a model file  <->  a Zarr group with one array per tensor, SINR for weight matrices.

Formats
-------
Model files (read and written, chosen by suffix):

- PyTorch state_dict: ``.pt``, ``.pth``, ``.bin``, ``.ckpt``. Always read with
  ``torch.load(weights_only=True, map_location="cpu")``: a file holding arbitrary Python objects is
  refused, never unpickled. A checkpoint that wraps its tensors (``{"state_dict": {...}, "epoch": 3}``)
  is unwrapped, with a note; anything else that is not a mapping of names to tensors is an error.
- ``.safetensors`` (needs the optional ``safetensors`` package: ``pip install 'sinr-codecs[safetensors]'``);
  its header metadata is kept and restored.
- ``.npz`` (read with ``allow_pickle=False``; numeric arrays only).

The compressed form is a Zarr format 3 group, a directory or a ``.zip`` file. Each tensor is one array
under a filesystem-safe name; the original name, dtype and shape are kept in the array's attributes and
in the group's ``"sinr_codecs"`` attribute, which also records, per tensor, the policy, the codec
configuration, the bytes before and after and the relative error measured when compressing (so
:func:`inspect_store` and ``sinr info`` show them without decoding anything).

Policy
------
Each tensor gets one of two policies (see :func:`choose_policy`), which the report shows with the reason:

- ``"sinr"`` for weight matrices: floating point, ``ndim >= 2``, finite, at least
  :data:`MIN_SINR_ELEMENTS` values. The tensor is viewed as ``(shape[0], prod(shape[1:]))``: one row per
  output neuron holding its incoming weights, the SINR vectors (``layout="rows"``, ``k1 = prod(shape[1:])``).
  As in the SINR paper, a small layer with ``k1 < 50`` is flattened whole into one vector
  (``layout="flat"``) when it has at most :data:`FLAT_MAX_ELEMENTS` values, else cut into blocks; rows
  longer than :data:`MAX_K1` are cut into equal blocks (their dictionary would be too large).
- ``"lossless"`` (Blosc with Zstandard and byte shuffle, or the raw bytes when Blosc would not make the
  tensor smaller; bit-exact, SHA-256-checked on reading) for everything else:
  biases and other 1-D tensors, scalars, tiny tensors, integer/bool/complex tensors and any tensor with
  NaN or infinite values.

``policy_overrides`` maps fnmatch patterns on tensor names to ``"sinr"``, ``"lossless"`` or a mapping
``{"policy": ..., **SINR options}``; every matching pattern applies, in order, so later ones win.

bfloat16 tensors are coded by SINR as float32 and rounded back to bfloat16 when restored (the relative
error recorded includes that rounding); stored losslessly they keep their exact bits.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sinr_codecs.progress import bar

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

MIN_SINR_ELEMENTS = 256
"""Smallest tensor (number of values) that the default policy codes with SINR."""
FLAT_K1 = 50
"""Rows shorter than this are too short to code one by one: the paper flattens such layers."""
MAX_K1 = 4096
"""Longest row coded as one vector (its dictionary has ``8 * k1**2`` entries); longer rows are cut into
equal blocks."""
FLAT_MAX_ELEMENTS = 2500
"""Largest layer flattened into one vector (the paper: k x k layers with k < 50, so <= 2401 values);
longer short-row layers are cut into blocks. The dictionary of a flat layer has 8 * numel**2 entries."""
CHUNK_BYTES = 4 << 20
"""Largest Zarr chunk before compression (bytes, as float32)."""
CHUNK_WORK = 1 << 28
"""Bound on ``rows * k1**2`` per chunk, so that one chunk's OMP (and one progress step) stays short."""

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
MODEL_SUFFIXES = (*TORCH_SUFFIXES, ".safetensors", ".npz")
_FLOATS = frozenset({"float16", "float32", "float64", "bfloat16"})
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")
_LOSSLESS = {"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": "shuffle"}


class WeightsError(ValueError):
    """A model file or compressed store cannot be read or written (the message says why and what to do)."""


# ----------------------------------------------------------------------------------------------------
# records
# ----------------------------------------------------------------------------------------------------
@dataclass
class TensorRecord:
    """What was done to one tensor (one entry of the group's ``"sinr_codecs"`` attribute).

    Attributes
    ----------
    name : str
        The tensor's name in the model file, exactly.
    array : str
        The Zarr array's name inside the group.
    dtype : str
        Original dtype: a torch dtype name (``"bfloat16"``) or numpy dtype (``"float32"``, ``">f4"``).
    shape : list of int
        Original shape.
    stored_dtype : str
        The Zarr array's dtype (numpy ``dtype.str``).
    stored_shape : list of int
        The Zarr array's shape (a SINR matrix is stored as ``(shape[0], prod(shape[1:]))``).
    encoding : {"native", "float32", "bits"}
        How stored values map back: as they are, widened to float32 (bfloat16 under SINR), or the raw
        bits as unsigned integers (dtypes numpy lacks, e.g. bfloat16 or float8, stored losslessly).
    policy : {"sinr", "lossless"}
    layout : str or None
        SINR vector layout (``"rows"``, ``"flat"``, ``"blocks"``); None for lossless.
    reason : str
        Why this policy was chosen.
    codec : dict
        The codec configuration (numcodecs style, with ``"id"``).
    chunks : list of int
        Zarr chunk shape.
    bytes_before : int
        Size of the tensor's values in the model file (bytes).
    bytes_after : int
        Size of its compressed chunks in the store (bytes, without metadata).
    rel_error : float
        ``||w - w'|| / ||w||`` of the restored tensor, measured when compressing (0 for lossless).
    sha256 : str or None
        For lossless tensors: SHA-256 of the stored values (C order, little-endian), checked on reading.
    """

    name: str
    array: str
    dtype: str
    shape: list[int]
    stored_dtype: str
    stored_shape: list[int]
    encoding: str
    policy: str
    layout: str | None
    reason: str
    codec: dict[str, Any]
    chunks: list[int]
    bytes_before: int
    bytes_after: int = 0
    rel_error: float = 0.0
    sha256: str | None = None

    @property
    def ratio(self) -> float:
        """``bytes_before / bytes_after`` (inf when nothing was stored)."""
        return self.bytes_before / self.bytes_after if self.bytes_after else math.inf

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorRecord:
        """Inverse of :func:`dataclasses.asdict` (unknown keys from newer versions are ignored)."""
        names = set(cls.__dataclass_fields__)
        missing = [n for n in ("name", "array", "dtype", "shape", "policy") if n not in data]
        if missing:
            raise WeightsError(f"a tensor record is missing {missing}: the store's attributes are damaged")
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Report:
    """The outcome of :func:`compress_weights`, :func:`decompress_weights` or :func:`inspect_store`.

    Attributes
    ----------
    source, destination : str
        Paths read and written (``destination`` is empty for :func:`inspect_store`).
    source_format : str
        Format of the original model file: ``"torch"``, ``"safetensors"`` or ``"npz"``.
    tensors : list of TensorRecord
        One record per tensor, in the model file's order.
    notes : list of str
        Things the user should know (an unwrapped checkpoint, overrides that could not apply, ...).
    seconds : float
        Wall time of the operation.
    store_bytes : int
        Size of the whole store on disk, metadata included (bytes; 0 when unknown).
    """

    source: str
    destination: str
    source_format: str
    tensors: list[TensorRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    store_bytes: int = 0

    @property
    def bytes_before(self) -> int:
        """Total size of the tensors' values (bytes)."""
        return sum(t.bytes_before for t in self.tensors)

    @property
    def bytes_after(self) -> int:
        """Total size of the compressed chunks (bytes, without metadata)."""
        return sum(t.bytes_after for t in self.tensors)

    @property
    def ratio(self) -> float:
        """``bytes_before / bytes_after``."""
        return self.bytes_before / self.bytes_after if self.bytes_after else math.inf

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: the fields, the records and a ``"totals"`` entry."""
        return {
            "source": self.source,
            "destination": self.destination,
            "source_format": self.source_format,
            "tensors": [asdict(t) | {"ratio": _finite(t.ratio)} for t in self.tensors],
            "notes": list(self.notes),
            "seconds": self.seconds,
            "totals": {
                "tensors": len(self.tensors),
                "sinr": sum(t.policy == "sinr" for t in self.tensors),
                "lossless": sum(t.policy == "lossless" for t in self.tensors),
                "bytes_before": self.bytes_before,
                "bytes_after": self.bytes_after,
                "ratio": _finite(self.ratio),
                "store_bytes": self.store_bytes,
            },
        }

    def format_table(self) -> str:
        """The per-tensor table shown by ``sinr info`` and ``sinr compress`` (plain text)."""
        head = ["name", "shape", "dtype", "policy", "before", "after", "ratio", "rel.err", "why"]
        rows = []
        for t in self.tensors:
            policy = (f"sinr/{t.layout}" if t.policy == "sinr" and t.layout else
                      f"{t.policy}/{t.codec.get('id')}" if t.codec.get("id") else t.policy)
            rows.append([
                t.name, "x".join(map(str, t.shape)) or "()", t.dtype, policy, format_bytes(t.bytes_before),
                format_bytes(t.bytes_after), _fmt_ratio(t.ratio),
                f"{t.rel_error:.2e}" if t.rel_error else "0",
                t.reason,
            ])
        n_sinr = sum(t.policy == "sinr" for t in self.tensors)
        total = [
            f"total: {len(self.tensors)} tensors", "", "", f"{n_sinr} sinr", format_bytes(self.bytes_before),
            format_bytes(self.bytes_after), _fmt_ratio(self.ratio), "", "",
        ]
        right = {4, 5, 6, 7}
        widths = [max(len(str(r[i])) for r in [head, *rows, total]) for i in range(len(head))]

        def line(r: list[str]) -> str:
            cells = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in
                     enumerate(zip(r, widths))]
            return "  ".join(cells).rstrip()

        rule = "  ".join("-" * w for w in widths)
        out = [line(head), rule, *map(line, rows), rule, line(total)]
        if self.store_bytes:
            out.append(f"store on disk, metadata included: {format_bytes(self.store_bytes)}")
        out.extend(f"note: {n}" for n in self.notes)
        return "\n".join(out)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _fmt_ratio(x: float) -> str:
    return f"{x:.2f}x" if math.isfinite(x) else "-"


def format_bytes(n: int) -> str:
    """``n`` bytes for people: ``"512 B"``, ``"16.0 KiB"``, ``"1.5 MiB"``."""
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
    return str(n)  # pragma: no cover


# ----------------------------------------------------------------------------------------------------
# policy
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """The policy for one tensor: ``policy`` ("sinr"/"lossless"), ``reason``, SINR ``layout`` and
    per-pattern SINR ``options`` (empty for lossless)."""

    policy: str
    reason: str
    layout: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def _parse_overrides(overrides: Mapping[str, Any] | None) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for pattern, spec in (overrides or {}).items():
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"policy override patterns must be non-empty strings, got {pattern!r}")
        if isinstance(spec, str):
            policy, options = spec, {}
        elif isinstance(spec, Mapping):
            options = dict(spec)
            policy = options.pop("policy", "sinr")
        else:
            raise ValueError(
                f"policy override {pattern!r}: expected 'sinr', 'lossless' or a mapping "
                f"{{'policy': ..., **codec options}}, got {type(spec).__name__}"
            )
        if policy not in ("sinr", "lossless"):
            raise ValueError(
                f"policy override {pattern!r}: policy must be 'sinr' or 'lossless', got {policy!r}")
        if policy == "lossless" and options:
            raise ValueError(
                f"policy override {pattern!r}: codec options {sorted(options)} need policy 'sinr'")
        if "dtype" in options:
            raise ValueError(f"policy override {pattern!r}: 'dtype' cannot be set (it is the tensor's)")
        out.append((pattern, policy, options))
    return out


def choose_policy(
    name: str,
    *,
    dtype: str,
    shape: tuple[int, ...],
    finite: bool = True,
    overrides: Mapping[str, Any] | None = None,
) -> Decision:
    """Decide how one tensor is stored (the default rules, then the matching overrides).

    Parameters
    ----------
    name : str
        Tensor name, matched against the override patterns with :func:`fnmatch.fnmatchcase`.
    dtype : str
        Dtype name (torch or numpy spelling, e.g. ``"bfloat16"``, ``"float32"``, ``"int64"``).
    shape : tuple of int
        Tensor shape.
    finite : bool, default True
        Whether every value is finite (no NaN or infinity).
    overrides : mapping, optional
        ``{pattern: "sinr" | "lossless" | {"policy": ..., **SINR options}}``.

    Returns
    -------
    Decision

    Examples
    --------
    >>> choose_policy("fc.weight", dtype="float32", shape=(64, 64)).layout
    'rows'
    >>> choose_policy("fc.bias", dtype="float32", shape=(64,)).policy
    'lossless'
    >>> choose_policy("fc.bias", dtype="float32", shape=(640,), overrides={"*.bias": "sinr"}).layout
    'flat'
    """
    shape = tuple(int(s) for s in shape)
    numel = math.prod(shape)
    floating = _is_float(dtype)
    if not floating:
        why = "not a float type SINR codes" if "float" in dtype else "not floating point"
        decision = Decision("lossless", f"{dtype}, {why}")
    elif numel == 0:
        decision = Decision("lossless", "empty")
    elif not finite:
        decision = Decision("lossless", "has NaN/inf")
    elif len(shape) == 0:
        decision = Decision("lossless", "scalar")
    elif len(shape) == 1:
        decision = Decision("lossless", "1-D (bias/norm)")
    elif numel < MIN_SINR_ELEMENTS:
        decision = Decision("lossless", f"tiny (< {MIN_SINR_ELEMENTS} values)")
    else:
        decision = _matrix_layout(shape)

    for pattern, policy, options in _parse_overrides(overrides):
        if not fnmatch.fnmatchcase(name, pattern):
            continue
        if policy == "lossless":
            decision = Decision("lossless", f"override {pattern}")
            continue
        if not floating or numel == 0 or not finite:
            why = "not floating point" if not floating else "empty" if numel == 0 else "has NaN/inf"
            decision = Decision("lossless", f"override {pattern}=sinr ignored: {why}")
            continue
        if decision.policy == "sinr":
            base = decision
        elif len(shape) >= 2:
            base = _matrix_layout(shape)
        else:
            base = Decision("sinr", "", "flat" if numel <= FLAT_MAX_ELEMENTS else "blocks")
        merged = {**base.options, **options}
        decision = Decision("sinr", f"override {pattern}", merged.get("layout", base.layout), merged)
    return decision


def _is_numpy_dtype(dtype: str) -> bool:
    try:
        np.dtype(dtype)
    except TypeError:
        return False
    return True


def _is_float(dtype: str) -> bool:
    """Whether a torch or numpy dtype name is one SINR codes (float16/32/64, bfloat16)."""
    return dtype in _FLOATS or (_is_numpy_dtype(dtype) and np.dtype(dtype).name in _FLOATS)


def _matrix_layout(shape: tuple[int, ...]) -> Decision:
    """The SINR decision for a float tensor of ndim >= 2: rows, flat, or blocks."""
    k1 = math.prod(shape[1:])
    if FLAT_K1 <= k1 <= MAX_K1:
        return Decision("sinr", f"matrix, rows of {k1}", "rows")
    if k1 > MAX_K1:  # a dictionary of k1 x 8 k1 would not fit: cut rows into equal pieces
        block = max((d for d in range(MAX_K1, 255, -1) if k1 % d == 0), default=1024)
        return Decision("sinr", f"rows of {k1} > {MAX_K1}: blocks of {block}", "blocks",
                        {"block_size": block})
    if math.prod(shape) <= FLAT_MAX_ELEMENTS:
        return Decision("sinr", f"rows of {k1} < {FLAT_K1}: flattened", "flat")
    return Decision("sinr", f"rows of {k1} < {FLAT_K1}: blocks", "blocks")


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


def _write_model(path: Path, fmt: str, tensors: dict[str, Any], metadata: dict[str, str] | None) -> None:
    """Write ``tensors`` (torch tensors, or numpy arrays for npz) to ``path`` via a temporary file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if fmt == "torch":
            import torch

            torch.save(tensors, tmp)
        elif fmt == "safetensors":
            try:
                from safetensors.torch import save_file
            except ImportError:
                raise WeightsError(
                    "writing .safetensors needs the safetensors package: "
                    "pip install 'sinr-codecs[safetensors]'") from None
            try:
                save_file(tensors, str(tmp), metadata=metadata)
            except Exception as exc:
                raise WeightsError(f"cannot write {path} as .safetensors: {exc}") from None
        else:  # npz, written as np.savez does, but any name works (np.savez reserves "file")
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                for name, a in tensors.items():
                    with zf.open(name + ".npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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

