"""sinr-codecs: SINR weight-space compression as a pluggable codec.

Public API:

- :class:`SINR` — the ``sinr`` numcodecs codec (also found by ``numcodecs.get_codec({"id": "sinr"})``);
- :class:`SparseCode` — a SINR-coded tensor: fit by OMP, reconstruct (differentiably), write/read streams;
- :func:`sensing_matrix` — the seeded dictionary;
- :func:`batch_omp` — batched Orthogonal Matching Pursuit in torch (CPU or CUDA);
- :func:`save_file`, :func:`load_file`, :func:`safe_open` — a dict of tensors into a compressed store and
  back, shaped like safetensors' API (:mod:`sinr_codecs.files`);
- :class:`StreamError`, :class:`NonFiniteError`, :class:`WeightsError` — the errors a user handles.

Submodules are imported lazily so that ``import sinr_codecs`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("sinr-codecs")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

_LAZY = {
    "SINR": "codec",
    "relative_error": "codec",
    "SparseCode": "sparse",
    "sensing_matrix": "dictionary",
    "batch_omp": "omp",
    "OMPResult": "omp",
    "StreamError": "errors",
    "NonFiniteError": "errors",
    "WeightsError": "errors",
    "save_file": "files",
    "load_file": "files",
    "safe_open": "files",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
