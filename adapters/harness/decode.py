"""Decoding any adapter stream in one call: :func:`decode_file` / :func:`decode_stream` (``sinr decode``).

A stream names the method that wrote it (its header, docs/format-adapters.md), so nothing else is needed to
decode it but the method's adapter, found in the registry (:mod:`sinr_adapters.harness.plugins`), and, for
a method that codes relative to state shared beforehand (INRIC's and NIC's meta-learned initialisation,
COIN++'s base network), the file holding that state (``shared``: what ``sinr evaluate --save-streams``
writes beside the streams, read by the adapter's ``from_shared_file``). Both the adapters' own streams
(``SIA1``) and rate-aware streams (``SRA2``) are read; what the adapter renders is held to the protocol
(:func:`~sinr_adapters.framework.protocol.check_rendering`). A method whose rendering needs side
information the stream does not hold (NIC: the cloud's positions) takes it as keyword arguments of its
``decode``. A file of a method without a network (a classic codec's ``.jpg``, ``.webp``, ``.jp2``,
``.avif``) names no method: it is read by the first installed such method whose ``decode`` accepts it.

:func:`write_signal` writes a decoded signal as a file: ``.png`` (an image, clamped to [0, 1] and rounded to
8 bits), ``.wav`` (a waveform ``(T, 1)`` in [-1, 1], 16-bit PCM) or ``.npy`` (any signal, as decoded).
"""

from __future__ import annotations

import os
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sinr_codecs.errors import StreamError

from ..framework import container
from ..framework.protocol import check_rendering
from ..rate_coding import stream as rate_stream
from .plugins import installed, method_spec, unavailable

__all__ = ["DecodedSignal", "decode_file", "decode_stream", "stream_method", "write_signal"]


@dataclass(frozen=True)
class DecodedSignal:
    """What :func:`decode_stream` returns.

    Attributes
    ----------
    values : numpy.ndarray
        The decoded signal: the adapter's rendering, of the shape the stream declares (grid shape, then
        channels); images in [0, 1] (not clamped).
    method : str
        The method that wrote the stream.
    kind : str
        Its signal kind (``"image"``, ``"audio"``, ...).
    """

    values: np.ndarray
    method: str
    kind: str


def stream_method(data: bytes) -> str:
    """The method named in an adapter stream's header (``SIA1`` or ``SRA2``), its checksum checked first.

    Raises
    ------
    StreamError
        If the bytes are not an adapter stream, or are corrupt.
    """
    if bytes(data[:4]) == rate_stream.MAGIC:
        return rate_stream.open_stream(data)[2]["method"]
    return container.read_header(container.strip_checksum(data))[0]["method"]


def _adapter(method: str, shared: str | os.PathLike[str] | None) -> Any:
    cls, _ = method_spec(method)
    if shared is not None:
        load = getattr(cls, "from_shared_file", None)
        if load is None:
            raise ValueError(f"adapter {method!r} keeps no shared state in a file: decode without one")
        return load(shared)
    try:
        return cls()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"adapter {method!r} cannot be built with its defaults to read a stream ({exc}); "
                         f"give {cls.__name__}'s constructor a default for every argument") from exc


def _codec_file(data: bytes) -> DecodedSignal | None:
    """The file decoded by the first installed method without a network that reads it (None: none does)."""
    for method, spec in installed()[0].items():
        if spec.weights or unavailable(method) is not None:
            continue
        try:
            values = method_spec(method)[0]().decode(data)
        except StreamError:
            continue
        return DecodedSignal(check_rendering(values, np.shape(values), adapter=method, method="decode"), method,
                             spec.signal_source().kind)
    return None


def decode_stream(data: bytes, *, shared: str | os.PathLike[str] | None = None, device: str = "cpu",
                  **side: Any) -> DecodedSignal:
    """Decode an adapter stream of any installed method.

    Parameters
    ----------
    data : bytes
        An adapter stream (``SIA1``), a rate-aware stream (``SRA2``), or a file of a method without a network
        (read by the first installed one that accepts it; ``shared`` and ``side`` do not apply).
    shared : path or None
        The file of the state the stream was written relative to (a meta-learned initialisation or base
        network, ``.npz``); None when the method keeps none.
    device : str, default "cpu"
        Where the network runs.
    **side
        Side information the method's ``decode`` needs to render (NIC: ``positions``).

    Raises
    ------
    StreamError
        If the stream is corrupt, truncated, or was written with other shared state.
    ValueError
        If the method is not installed, needs a shared file or side information that was not given.
    """
    if bytes(data[:4]) not in (container.MAGIC, rate_stream.MAGIC) and (found := _codec_file(data)) is not None:
        return found
    method = stream_method(data)
    cls, spec = method_spec(method)
    adapter = _adapter(method, shared)
    kind = spec.signal_source().kind
    if bytes(data[:4]) == rate_stream.MAGIC:
        dec = rate_stream.decompress(adapter, data, device=device)
        out = dec.header["adapter"].render(dec.model, dec.shape)
        return DecodedSignal(check_rendering(out, dec.shape, adapter=method, method="render"), method, kind)
    if side:
        return DecodedSignal(np.asarray(adapter.decode(data, device=device, **side)), method, kind)
    if spec.render is not None:
        raise ValueError(f"{method} streams need side information to render ({cls.__name__}.decode's keyword "
                         "arguments, e.g. a point cloud's positions); pass it to decode_stream")
    dec = adapter.decompress(data, device=device)
    out = adapter.render(dec.model, dec.shape)
    return DecodedSignal(check_rendering(out, dec.shape, adapter=method, method="render"), method, kind)


def decode_file(path: str | os.PathLike[str], *, shared: str | os.PathLike[str] | None = None, device: str = "cpu",
                **side: Any) -> DecodedSignal:
    """:func:`decode_stream` of the stream in file ``path`` (e.g. one ``sinr evaluate --save-streams`` wrote).

    Examples
    --------
    >>> import tempfile, torch
    >>> from sinr_adapters.methods.coin import COINAdapter
    >>> a = COINAdapter(width=4, layers=2)
    >>> signal = a.signal_from_image(np.zeros((4, 4, 3), np.float32))
    >>> torch.manual_seed(0) and None
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "s.sia").write_bytes(a.compress(a.build_model(), signal))
    ...     out = decode_file(Path(d) / "s.sia")
    >>> out.method, out.kind, out.values.shape
    ('coin', 'image', (4, 4, 3))
    """
    return decode_stream(Path(path).read_bytes(), shared=shared, device=device, **side)


def write_signal(values: np.ndarray, path: str | os.PathLike[str], *, sample_rate: int = 16000) -> None:
    """Write a decoded signal by the file's extension: ``.png`` (``(H, W)`` or ``(H, W, C)`` with 1, 3 or 4
    channels, clamped to [0, 1] and rounded to 8 bits), ``.wav`` (``(T,)`` or ``(T, 1)`` in [-1, 1], 16-bit
    PCM at ``sample_rate``) or ``.npy`` (anything, as decoded; no pickle).

    Raises
    ------
    ValueError
        For another extension, or a signal that the format cannot hold.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".npy":
        np.save(p, np.asarray(values), allow_pickle=False)
    elif ext == ".png":
        img = np.asarray(values)
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
            raise ValueError(f"a signal of shape {values.shape} is not an image: write it as .npy")
        try:
            from PIL import Image
        except ImportError as exc:  # pragma: no cover - Pillow comes with the inr extra
            raise ImportError("writing PNG needs Pillow: pip install 'sinr-codecs[inr]'") from exc
        Image.fromarray(np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)).save(p)
    elif ext == ".wav":
        w = np.asarray(values)
        if w.ndim == 2 and w.shape[1] == 1:
            w = w[:, 0]
        if w.ndim != 1:
            raise ValueError(f"a signal of shape {values.shape} is not a mono waveform: write it as .npy")
        pcm = np.round(np.clip(w, -1.0, 1.0) * 32767.0).astype("<i2")
        with wave.open(str(p), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(int(sample_rate))
            f.writeframes(pcm.tobytes())
    else:
        raise ValueError(f"cannot write {p.name}: the output's extension must be .png, .wav or .npy")
