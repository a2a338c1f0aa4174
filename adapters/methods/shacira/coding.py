"""How SHACIRA's integer latents are entropy-coded in a stream (the coder is chosen per stream).

A latent record starts with one byte, the coder (:data:`CODERS`):

- ``rans`` (1): one :mod:`sinr_codecs.rans` section per hash-grid level, each with that level's
  empirical histogram (:func:`rans_encode` / :func:`rans_decode`);
- ``brotli`` (0): the zigzag-coded integers as bytes or two byte planes, Brotli-coded
  (:func:`brotli_encode` / :func:`brotli_decode`).

Latents lie within ``+-32767``; a stream holding others is refused.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import brotli
import numpy as np

from sinr_codecs import rans
from sinr_codecs.errors import StreamError

from ...framework.container import Reader, inflate, write_section

__all__ = ["CODERS", "MAX_LATENT", "brotli_decode", "brotli_encode", "rans_decode", "rans_encode"]

CODERS = {"brotli": 0, "rans": 1}
MAX_LATENT = 32767  # latents are stored as 16-bit zigzag integers by the Brotli coder


def rans_encode(levels: Sequence[np.ndarray]) -> bytes:
    """The integer latents, one :mod:`sinr_codecs.rans` section per level (each with its own empirical
    histogram): ``varint length | rANS stream`` per level."""
    buf = io.BytesIO()
    for q in levels:
        write_section(buf, rans.encode(np.asarray(q, dtype=np.int64).reshape(-1)))
    return buf.getvalue()


def rans_decode(r: Reader, counts: Sequence[int]) -> list[np.ndarray]:
    """Inverse of :func:`rans_encode` for levels of ``counts`` latents (reads from ``r``)."""
    out = []
    for count in counts:
        q = rans.decode(r.section(), int(count), max_alphabet=2 * MAX_LATENT + 1)
        if q.size and int(np.abs(q).max()) > MAX_LATENT:
            raise StreamError("a latent is outside +-32767")
        out.append(q)
    return out


def brotli_encode(q: np.ndarray) -> bytes:
    """The integer latents (``|q| <= 32767``) zigzag-coded (:func:`sinr_codecs.rans.zigzag`), as bytes
    (width 1) or two byte planes (width 2), Brotli-coded: ``u8 width | varint length | Brotli``."""
    u = np.asarray(rans.zigzag(q.reshape(-1)))
    width = 1 if (u.size == 0 or int(u.max()) < 256) else 2
    if int(u.max(initial=0)) >= 1 << 16:
        raise ValueError("latents beyond +-32767 cannot be stored")
    planes = u.astype(np.uint8) if width == 1 else u.astype("<u2").view(np.uint8).reshape(-1, 2).T  # byte planes
    raw = planes.tobytes()
    blob = brotli.compress(raw, quality=11)
    buf = io.BytesIO()
    buf.write(bytes([width]))
    write_section(buf, blob)
    return buf.getvalue()


def brotli_decode(r: Reader, count: int) -> np.ndarray:
    """Inverse of :func:`brotli_encode` for ``count`` latents (reads from ``r``; int64)."""
    (width,) = r.take(1)
    if width not in (1, 2):
        raise StreamError(f"bad integer width {width}")
    b = np.frombuffer(inflate(r.section(), count * width, "latent section"), dtype=np.uint8)
    u = b if width == 1 else np.ascontiguousarray(b.reshape(2, count).T).view("<u2").reshape(-1)
    if u.size and int(u.max()) > 2 * MAX_LATENT:
        raise StreamError("a latent is outside +-32767")
    return np.asarray(rans.unzigzag(u))
