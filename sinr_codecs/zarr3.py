"""SINR as a native Zarr format 3 codec (array -> bytes).

Contract
--------
:class:`SINRCodec` is a ``zarr.abc.codec.ArrayBytesCodec``: zarr hands it each chunk as an array together
with the chunk's :class:`~zarr.core.array_spec.ArraySpec` (dtype, shape), which a bytes-to-bytes codec never
sees, and it returns the chunk's SINR stream. Use it as the array's ``serializer``; zarr's compressors
(bytes -> bytes) may follow it, and it may sit inside a sharding codec. All the work is delegated to the
numcodecs codec :class:`sinr_codecs.codec.SINR`, so a chunk written by either is the same stream.

In ``zarr.json`` the codec is ``{"name": "sinr_codecs.sinr", "configuration": {...}}`` with the full SINR
configuration (every stored option of :class:`~sinr_codecs.codec.SINR` but ``dtype``, which comes from the
array; ``device`` belongs to the process and is never stored).
zarr finds the class through the ``zarr.codecs`` entry point of the same name, so an array written with it
opens in any Python environment where ``sinr-codecs`` is installed, without importing this module.

Only floating-point arrays (float16, float32, float64, either byte order) can use it; the check runs when
the array is created. Chunks are coded independently: SINR's vectors (rows along the last axis by default)
are formed inside a chunk, so chunks should span whole rows (``chunks=(n, shape[-1])``); see docs/zarr.md.

Examples
--------
>>> import numpy as np, zarr
>>> from sinr_codecs.zarr3 import SINRCodec
>>> a = zarr.create_array(store={}, shape=(64, 64), chunks=(32, 64), dtype="float32",
...                       serializer=SINRCodec(sparsity=16, value_bits=12), compressors=None)
>>> a.metadata.codecs[0].to_dict()["name"]
'sinr_codecs.sinr'
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import JSON, parse_named_configuration
from zarr.registry import register_codec

from sinr_codecs.errors import StreamError
from sinr_codecs.options import OPTIONS, numpydoc, parse

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer
    from zarr.core.chunk_grids import ChunkGrid
    from zarr.core.dtype.wrapper import TBaseDType, TBaseScalar, ZDType

    from sinr_codecs.codec import SINR

__all__ = ["SINRCodec", "CODEC_NAME"]

CODEC_NAME = "sinr_codecs.sinr"
"""The codec's name in ``zarr.json`` and its key in the ``zarr.codecs`` entry-point group."""

_FLOAT_KINDS = frozenset({"float16", "float32", "float64"})


def _core_class() -> type[SINR]:
    from sinr_codecs.codec import SINR  # imported late: torch is loaded only when a codec is built

    return SINR


_FIELDS = tuple(o for o in OPTIONS if o.stored and o.name != "dtype")
"""The options that are SINRCodec's fields (``dtype`` comes from the array; ``device`` is not stored)."""
_IGNORED_KEYS = ("dtype", "device")


def parse_sinr_configuration(data: dict[str, JSON] | None) -> dict[str, Any]:
    """Check a ``configuration`` mapping from ``zarr.json`` (keys are SINR options).

    ``dtype`` (a numcodecs configuration's key: the chunk's dtype always comes from the array) and
    ``device`` (written by older releases; where encoding runs belongs to the process) are accepted and
    ignored.

    Raises
    ------
    ValueError
        If ``data`` is not a mapping or holds an option :class:`SINRCodec` does not know.
    """
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"the {CODEC_NAME} configuration must be a JSON object, got {type(data).__name__}")
    known = {o.name for o in _FIELDS}
    unknown = sorted(set(data) - known - set(_IGNORED_KEYS))
    if unknown:
        raise ValueError(
            f"unknown {CODEC_NAME} option(s) {unknown}; known: {sorted(known)}. The array may have been "
            "written by a newer sinr-codecs: upgrade it (pip install -U sinr-codecs)."
        )
    return {k: v for k, v in data.items() if k not in _IGNORED_KEYS}


class SINRCodec(ArrayBytesCodec):
    """SINR sparse coding of float chunks, as a Zarr format 3 array-to-bytes codec.

    Every parameter has the meaning and default of :class:`sinr_codecs.codec.SINR` (one definition:
    :data:`sinr_codecs.options.OPTIONS`); invalid values raise ``ValueError`` here, at construction.
    The fields hold the resolved options (the preset's values filled in), so ``zarr.json`` reads the
    same even if a later release changes a preset. The chunk dtype comes from the array: ``dtype``, the
    one option of :class:`~sinr_codecs.codec.SINR` that is not a field, is accepted so that
    ``SINRCodec(**config)`` takes any ``SINR(...).get_config()`` (without ``"id"``); it is not stored,
    and an array of another dtype is refused when it is created (``TypeError``).

    Parameters
    ----------
{parameters}
    """

    is_fixed_size = False

    def __init__(self, **kwargs: Any) -> None:
        dtype = parse("dtype", kwargs.pop("dtype", None))  # ValueError for a non-float dtype
        core = _core_class()(**kwargs)  # validates; raises ValueError on a bad option
        config = core.get_config()
        for o in _FIELDS:
            object.__setattr__(self, o.name, config[o.name])
        object.__setattr__(self, "_core", core)
        object.__setattr__(self, "_dtype", dtype)

    # -- metadata ---------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        """Build from ``{"name": "sinr_codecs.sinr", "configuration": {...}}`` (as in ``zarr.json``)."""
        _, configuration = parse_named_configuration(data, CODEC_NAME, require_configuration=False)
        return cls(**parse_sinr_configuration(configuration))

    def to_dict(self) -> dict[str, JSON]:
        """``{"name": "sinr_codecs.sinr", "configuration": {...}}`` with every SINR option but ``dtype``."""
        config = {k: v for k, v in self.core.get_config().items() if k not in ("id", "dtype")}
        return {"name": CODEC_NAME, "configuration": config}

    @property
    def device(self) -> str:
        """Where OMP runs when this process encodes (not stored in ``zarr.json``)."""
        return self.core.device

    @property
    def core(self) -> SINR:
        """The numcodecs :class:`~sinr_codecs.codec.SINR` codec that does the work."""
        core = self.__dict__.get("_core")
        if core is None:  # e.g. after an unusual copy; rebuild from the fields
            core = _core_class()(**{f.name: getattr(self, f.name) for f in fields(self)})
            object.__setattr__(self, "_core", core)
        return core

    def validate(
        self,
        *,
        shape: tuple[int, ...],
        dtype: ZDType[TBaseDType, TBaseScalar],
        chunk_grid: ChunkGrid,
    ) -> None:
        """Refuse non-float arrays when the array is created (``TypeError``)."""
        native = dtype.to_native_dtype()
        if not isinstance(native, np.dtype) or native.name not in _FLOAT_KINDS:
            raise TypeError(
                f"{CODEC_NAME} codes float16/float32/float64 arrays only, not {native}; keep the default "
                "serializer (zarr.codecs.BytesCodec) for this array, or cast it to a float dtype."
            )
        given = self.__dict__.get("_dtype")
        if given is not None and np.dtype(given).name != native.name:
            raise TypeError(f"{CODEC_NAME} was built with dtype={np.dtype(given).name!r}, but the array is "
                            f"{native.name}: the chunk dtype comes from the array (leave dtype out)")

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        """Not known in advance: SINR streams are variable-length."""
        raise NotImplementedError(f"{CODEC_NAME} produces variable-length chunks")

    # -- the work ---------------------------------------------------------------------------------
    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        data = self.core.encode(chunk_array.as_numpy_array())
        return chunk_spec.prototype.buffer.from_bytes(bytes(data))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        decoded = np.asarray(self.core.decode(chunk_bytes.as_numpy_array()))
        shape = tuple(chunk_spec.shape)
        native = chunk_spec.dtype.to_native_dtype()
        if decoded.shape != shape or decoded.dtype.newbyteorder("=") != np.dtype(native).newbyteorder("="):
            raise StreamError(
                f"a {CODEC_NAME} chunk holds a {decoded.dtype.name} array of shape {decoded.shape}, but the "
                f"array's chunks are {np.dtype(native).name} of shape {shape}: the chunk belongs to another "
                "array or the store is corrupt"
            )
        if decoded.dtype != native:  # byte order of the array vs of the stream
            decoded = decoded.astype(native)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(decoded)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)




def _as_dataclass() -> None:
    """Make SINRCodec a frozen dataclass whose fields are the stored SINR options (keyword-only)."""
    SINRCodec.__annotations__ = {o.name: Any for o in _FIELDS}
    for o in _FIELDS:
        setattr(SINRCodec, o.name, o.default)
    dataclass(frozen=True, init=False)(SINRCodec)
    SINRCodec.__init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default)
           for o in OPTIONS if o.name != "dtype"])
    SINRCodec.__doc__ = (SINRCodec.__doc__ or "").replace("{parameters}", numpydoc(exclude=("dtype",)))


_as_dataclass()

# Registering at import is harmless next to the entry point (the same class under the same key) and lets
# a codec built by hand be resolved even in an environment whose entry points are stale.
register_codec(CODEC_NAME, SINRCodec)
