"""What whole-model compression did to each tensor: :class:`TensorRecord`, :class:`Report` and its table.

A :class:`Report` is what :func:`sinr_codecs.weights.compress_weights`,
:func:`sinr_codecs.weights.decompress_weights` and :func:`sinr_codecs.weights.inspect_store` return;
its :class:`TensorRecord` entries are also what a store keeps, per tensor, in its ``"sinr_codecs"``
group attribute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sinr_codecs.errors import WeightsError

__all__ = ["TensorRecord", "Report", "format_bytes"]

FORMAT_NAME = "sinr-weights"
"""The ``"format"`` a store's ``"sinr_codecs"`` group attribute names (it marks a store sinr compress wrote)."""
FORMAT_VERSION = 2
"""The newest version of that attribute's layout this sinr-codecs writes and reads."""
ATTR_KEY = "sinr_codecs"
"""The group attribute that holds the store's :class:`TensorRecord` entries."""


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
    policy : {"global", "sinr", "uniform", "lossless"}
        ``"global"`` (the model's one step, :mod:`sinr_codecs.allocation`) and ``"uniform"`` (a per-tensor
        step): a uniform quantizer (:mod:`sinr_codecs.uniform`) whose ``codec`` entry holds ``step``,
        ``astype`` (the integer type) and ``bits``.
    layout : str or None
        SINR vector layout (``"rows"``, ``"flat"``, ``"blocks"``); None otherwise.
    storage : str or None
        SINR tensors: ``"dense"`` (quantized vectors, no dictionary: the error-bounded encoder's choice where
        the dictionary does not pay), ``"sparse"``, or ``"dense in 2/5"`` chunks; None otherwise.
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
        SHA-256 of the stored values as a reader decodes them (C order, little-endian), or for ``"global"`` and
        ``"uniform"`` tensors of their chunk files' bytes in chunk order; checked on reading: a chunk of another
        tensor or a damaged chunk is caught even where its codec cannot tell.
    uniform_bytes : int or None
        For SINR-coded tensors (and uniform ones that won a ``best`` choice): the bytes a per-tensor
        uniform quantizer + pcodec needs for the same relative error, estimated from the integers'
        entropy on a sample. None when not estimated (other tensors).
    uniform_bits : int or None
        That quantizer's bits per value before entropy coding.
    """

    name: str
    array: str
    dtype: str
    shape: list[int]
    stored_dtype: str
    stored_shape: list[int]
    encoding: str
    policy: str
    reason: str
    codec: dict[str, Any]
    chunks: list[int]
    bytes_before: int
    layout: str | None = None
    storage: str | None = None
    bytes_after: int = 0
    rel_error: float = 0.0
    sha256: str | None = None
    uniform_bytes: int | None = None
    uniform_bits: int | None = None

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
    """The outcome of :func:`~sinr_codecs.weights.compress_weights`,
    :func:`~sinr_codecs.weights.decompress_weights` or :func:`~sinr_codecs.weights.inspect_store`.

    Attributes
    ----------
    source, destination : str
        Paths read and written (``destination`` is empty for :func:`~sinr_codecs.weights.inspect_store`).
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
    global_step : float or None
        The model's one quantizer step, when tensors were coded ``"global"``.
    """

    source: str
    destination: str
    source_format: str
    tensors: list[TensorRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    store_bytes: int = 0
    global_step: float | None = None

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

    @property
    def bytes_if_uniform(self) -> int:
        """Total compressed bytes had each SINR tensor been quantized uniformly at its relative error
        (the others as stored)."""
        return sum(t.uniform_bytes if t.policy == "sinr" and t.uniform_bytes is not None else t.bytes_after
                   for t in self.tensors)

    def large_errors(self, threshold: float) -> list[TensorRecord]:
        """The lossy tensors whose relative error exceeds ``threshold``, worst first."""
        return sorted((t for t in self.tensors if t.rel_error > threshold), key=lambda t: -t.rel_error)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: the fields, the records and a ``"totals"`` entry."""
        return {
            "source": self.source,
            "destination": self.destination,
            "source_format": self.source_format,
            "tensors": [asdict(t) | {"ratio": _finite(t.ratio)} for t in self.tensors],
            "notes": list(self.notes),
            "seconds": self.seconds,
            "global_step": self.global_step,
            "totals": {
                "tensors": len(self.tensors),
                "sinr": sum(t.policy == "sinr" for t in self.tensors),
                "global": sum(t.policy == "global" for t in self.tensors),
                "lossless": sum(t.policy == "lossless" for t in self.tensors),
                "uniform": sum(t.policy == "uniform" for t in self.tensors),
                "bytes_if_uniform": self.bytes_if_uniform,
                "bytes_before": self.bytes_before,
                "bytes_after": self.bytes_after,
                "ratio": _finite(self.ratio),
                "store_bytes": self.store_bytes,
            },
        }

    def format_table(self) -> str:
        """The per-tensor table shown by ``sinr info`` and ``sinr compress`` (plain text)."""
        head = ["name", "shape", "dtype", "policy", "before", "after", "ratio", "rel.err", "uniform", "why"]
        rows = []
        for t in self.tensors:
            if t.policy == "sinr" and t.layout:
                policy = f"sinr/{t.storage}/{t.layout}" if t.storage else f"sinr/{t.layout}"
            elif t.policy in ("uniform", "global"):
                policy = f"{t.policy}/{t.codec.get('bits')}b"
            else:
                policy = f"{t.policy}/{t.codec.get('id')}" if t.codec.get("id") else t.policy
            rows.append([
                t.name, "x".join(map(str, t.shape)) or "()", t.dtype, policy, format_bytes(t.bytes_before),
                format_bytes(t.bytes_after), _fmt_ratio(t.ratio),
                f"{t.rel_error:.2e}" if t.rel_error else "0",
                format_bytes(t.uniform_bytes) if t.uniform_bytes is not None else "-",
                t.reason,
            ])
        lossy = sum(t.policy != "lossless" for t in self.tensors)
        compared = any(t.uniform_bytes is not None for t in self.tensors)
        total = [
            f"total: {len(self.tensors)} tensors", "", "", f"{lossy} lossy", format_bytes(self.bytes_before),
            format_bytes(self.bytes_after), _fmt_ratio(self.ratio), "",
            format_bytes(self.bytes_if_uniform) if compared else "", "",
        ]
        right = {4, 5, 6, 7, 8}
        widths = [max(len(str(r[i])) for r in [head, *rows, total]) for i in range(len(head))]

        def line(r: list[str]) -> str:
            cells = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in
                     enumerate(zip(r, widths, strict=True))]
            return "  ".join(cells).rstrip()

        rule = "  ".join("-" * w for w in widths)
        out = [line(head), rule, *map(line, rows), rule, line(total)]
        if self.store_bytes:
            out.append(f"store on disk, metadata included: {format_bytes(self.store_bytes)}")
        if self.global_step is not None:
            out.append(f"global step: {self.global_step:.6g}")
        if compared:
            out.append("uniform: bytes a per-tensor uniform quantizer + pcodec needs for the same rel.err, "
                       "estimated (total: every SINR tensor so coded)")
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
    size = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}"
    return str(n)  # pragma: no cover
