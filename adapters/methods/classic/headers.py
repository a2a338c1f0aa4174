"""How much of a classic image file is header: every byte that is not coded image data.

A classic codec's file carries its own description: JPEG's quantisation and Huffman tables, WebP's RIFF
chunk and frame header, AVIF's ISOBMFF boxes, JPEG 2000's boxes and codestream headers. The harness counts
whole files (what a user stores); :func:`header_bytes` says how many of those bytes describe rather than
code the image, so a table can show why small images cost classic codecs so much:

- JPEG: everything outside the entropy-coded scan data (markers, JFIF, tables, frame and scan headers);
- WebP: the RIFF header, each chunk header and the 10-byte VP8 key-frame header (5 bytes for VP8L);
- AVIF: every ISOBMFF box but the contents of ``mdat`` (the AV1 data);
- JPEG 2000: the JP2 boxes, the codestream's main header, each tile-part header and the end marker.

Examples
--------
>>> import io
>>> from PIL import Image
>>> buf = io.BytesIO()
>>> Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, format="WEBP", quality=50)
>>> header_bytes(buf.getvalue(), "WEBP")
30
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

__all__ = ["HEADER_PARSERS", "header_bytes"]


def _be(data: bytes, at: int, n: int) -> int:
    if at + n > len(data):
        raise ValueError("truncated")
    return int.from_bytes(data[at:at + n], "big")


def _jpeg_payload(data: bytes) -> int:
    """Bytes of entropy-coded scan data (restart markers and stuffed zero bytes included)."""
    payload, i, n = 0, 2, len(data)          # after SOI
    while i + 2 <= n:
        if data[i] != 0xFF:
            raise ValueError(f"no marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:                   # fill byte
            i += 1
            continue
        if marker == 0xD9:                   # EOI
            return payload
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        length = _be(data, i + 2, 2)
        if length < 2:
            raise ValueError(f"segment length {length} at byte {i}")
        i += 2 + length
        if marker == 0xDA:                   # SOS: scan data up to the next marker that is not RSTn or 0xFF00
            j = i
            while True:
                j = data.find(b"\xff", j)
                if j < 0 or j + 1 >= n:
                    j = n
                    break
                if data[j + 1] == 0 or 0xD0 <= data[j + 1] <= 0xD7:
                    j += 2
                    continue
                break
            payload += j - i
            i = j
    raise ValueError("no end-of-image marker")


def _riff_payload(data: bytes) -> int:
    """Bytes of coded image data in a WebP file's chunks."""
    payload, i = 0, 12                        # after "RIFF" size "WEBP"
    skip = {b"VP8 ": 10, b"VP8L": 5, b"ALPH": 1}
    while i + 8 <= len(data):
        fourcc, size = data[i:i + 4], int.from_bytes(data[i + 4:i + 8], "little")
        if fourcc in skip:
            payload += max(0, min(size, len(data) - i - 8) - skip[fourcc])
        i += 8 + size + (size & 1)
    return payload


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """ISOBMFF / JP2 boxes: ``(type, content start, content end)``."""
    i, end = start, len(data) if end is None else end
    while i + 8 <= end:
        size, kind, head = _be(data, i, 4), data[i + 4:i + 8], 8
        if size == 1:
            size, head = _be(data, i + 8, 8), 16
        elif size == 0:
            size = end - i
        if size < head:
            raise ValueError(f"box size {size} at byte {i}")
        yield kind, i + head, min(i + size, end)
        i += size


def _avif_payload(data: bytes) -> int:
    return sum(stop - start for kind, start, stop in _boxes(data) if kind == b"mdat")


def _codestream_payload(cs: bytes) -> int:
    """Bytes of tile data in a JPEG 2000 codestream (after each tile-part's SOD marker)."""
    payload, i = 0, 2                         # after SOC
    while i + 4 <= len(cs):
        marker = _be(cs, i, 2)
        if marker == 0xFFD9:                  # EOC
            break
        if marker != 0xFF90:                  # a main-header segment
            i += 2 + _be(cs, i + 2, 2)
            continue
        psot = _be(cs, i + 6, 4)              # SOT: the tile-part's length from its SOT marker
        end = len(cs) - 2 if psot == 0 else min(i + psot, len(cs))
        j = i + 2 + _be(cs, i + 2, 2)
        while j + 2 <= end and cs[j:j + 2] != b"\xff\x93":   # tile-part header segments up to SOD
            j += 2 + _be(cs, j + 2, 2)
        payload += max(0, end - (j + 2))
        i = end
    return payload


def _jpeg2000_payload(data: bytes) -> int:
    if data[:4] == b"\xff\x4f\xff\x51":      # a bare codestream
        return _codestream_payload(data)
    return sum(_codestream_payload(data[start:stop]) for kind, start, stop in _boxes(data) if kind == b"jp2c")


HEADER_PARSERS: dict[str, Callable[[bytes], int]] = {
    "JPEG": _jpeg_payload, "WEBP": _riff_payload, "AVIF": _avif_payload, "JPEG2000": _jpeg2000_payload}
"""Per Pillow format name, the function counting a file's coded image bytes."""


def header_bytes(data: bytes, fmt: str) -> int | None:
    """Bytes of the file ``data`` in Pillow format ``fmt`` that are not coded image data (module docstring).

    Parameters
    ----------
    data : bytes
        A whole file, as the codec wrote it.
    fmt : {"JPEG", "WEBP", "AVIF", "JPEG2000"}
        Its Pillow format name.

    Returns
    -------
    int or None
        ``len(data)`` minus the coded image bytes; None for a format without a parser or a file its parser
        cannot walk.
    """
    parse = HEADER_PARSERS.get(fmt)
    if parse is None:
        return None
    try:
        return len(data) - parse(bytes(data))
    except (ValueError, IndexError):
        return None
