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
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import JSON, parse_named_configuration
from zarr.registry import register_codec

from sinr_codecs.errors import StreamError
from sinr_codecs.options import DEFAULT_MAX_REL_ERROR, OPTIONS, numpydoc, parse

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


_FIELDS = tuple(o for o in OPTIONS if o.stored and o.name not in ("dtype", "chunk_shape"))
"""The options stored in ``zarr.json`` (``dtype`` comes from the array; ``device`` is not stored)."""
_IGNORED_KEYS = ("dtype", "device", "chunk_shape")


def parse_sinr_configuration(data: dict[str, JSON] | None) -> dict[str, Any]:
    """Check a ``configuration`` mapping from ``zarr.json`` (keys are SINR options).

    ``dtype`` and ``chunk_shape`` (a numcodecs configuration's keys: the chunk's dtype and shape always come
    from the array) and
    ``device`` (written by older releases; where encoding runs belongs to the process) are accepted and
    ignored; a configuration holding both ``sparsity`` and ``max_rel_error`` (as older releases wrote
    error-bounded ones) is error-bounded.

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
    config = {k: v for k, v in data.items() if k not in _IGNORED_KEYS}
    if config.get("sparsity") is not None and config.get("max_rel_error") is not None:
        config["sparsity"] = None  # as older releases stored an error-bounded configuration
    return config


@dataclass(frozen=True, kw_only=True)
class SINRCodec(ArrayBytesCodec):
    """SINR sparse coding of float chunks, as a Zarr format 3 array-to-bytes codec.

    Every field has the meaning and default of :class:`sinr_codecs.codec.SINR` (one definition:
    :data:`sinr_codecs.options.OPTIONS`); invalid values raise ``ValueError`` here, at construction.
    The fields hold the resolved options (the preset's values filled in, the other mode's option None),
    so ``zarr.json`` reads the same even if a later release changes a preset. ``device`` (where this
    process encodes) is not stored. The chunk dtype and shape come from the array: ``dtype`` and
    ``chunk_shape`` are accepted so that ``SINRCodec(**config)`` takes any ``SINR(...).get_config()``
    (without ``"id"``); they are not stored, and an array of another dtype is refused when it is created
    (``TypeError``).

    Parameters
    ----------
{parameters}
    """

    sparsity: int | float | None = None
    dictionary_ratio: float = 8.0
    dictionary_size: int | None = None
    seed: int = 0
    value_bits: int | str | None = None
    layout: str = "auto"
    block_size: int | None = None
    max_rel_error: float | None = DEFAULT_MAX_REL_ERROR
    entropy: str | None = None
    index_coding: str | None = None
    preset: str = "default"
    device: str = field(default="auto", compare=False)
    dtype: str | None = field(default=None, compare=False, repr=False)
    chunk_shape: list[int] | None = field(default=None, compare=False, repr=False)

    is_fixed_size = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", parse("dtype", self.dtype))  # ValueError for a non-float dtype
        config = self.core.get_config()  # validates every option (ValueError)
        for o in _FIELDS:
            object.__setattr__(self, o.name, config[o.name])

    @functools.cached_property
    def core(self) -> SINR:
        """The numcodecs :class:`~sinr_codecs.codec.SINR` codec that does the work."""
        given = {o.name: getattr(self, o.name) for o in _FIELDS}
        return _core_class()(**given, device=self.device)

    # -- metadata ---------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        """Build from ``{"name": "sinr_codecs.sinr", "configuration": {...}}`` (as in ``zarr.json``)."""
        _, configuration = parse_named_configuration(data, CODEC_NAME, require_configuration=False)
        return cls(**parse_sinr_configuration(configuration))

    def to_dict(self) -> dict[str, JSON]:
        """``{"name": "sinr_codecs.sinr", "configuration": {...}}`` with every SINR option but ``dtype``."""
        config = {k: v for k, v in self.core.get_config().items() if k not in ("id", "dtype", "chunk_shape")}
        return {"name": CODEC_NAME, "configuration": config}

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
        given = self.dtype
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




SINRCodec.__doc__ = (SINRCodec.__doc__ or "").replace("{parameters}", numpydoc(exclude=("dtype", "chunk_shape")))


# Registering at import is harmless next to the entry point (the same class under the same key) and lets
# a codec built by hand be resolved even in an environment whose entry points are stale.
register_codec(CODEC_NAME, SINRCodec)
