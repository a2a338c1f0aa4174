"""The four classic image codecs every INR-compression paper plots, through Pillow.

Each is a :class:`~sinr_adapters.methods.classic.pillow.PillowCodec` registered in the entry-point group
``sinr_codecs.adapters`` like any method; the rate knob is the encoder's quality:

======== ============ ============================== ======================================================
name     format       quality                        encoder settings (defaults)
======== ============ ============================== ======================================================
jpeg     JPEG         libjpeg quality 1..100         optimised Huffman tables, 4:2:0 chroma
webp     WebP (lossy) libwebp quality 0..100         effort ``method=6`` (smallest files)
jpeg2000 JPEG 2000    target PSNR in dB (OpenJPEG)   JP2 file, 9/7 wavelet
avif     AVIF         libavif quality 0..100         ``speed=6`` (Pillow's default), 4:2:0 chroma, one thread
======== ============ ============================== ======================================================

Examples
--------
>>> from sinr_adapters.framework.testing import sample_image
>>> codec = JPEGCodec(quality=50)
>>> signal = codec.signal_from_image(sample_image(16))
>>> data = codec.encode(signal)
>>> data[:2], codec.decode(data).shape
(b'\\xff\\xd8', (16, 16, 3))
>>> JPEGCodec.describe().weights
False
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...framework.spec import Option
from .pillow import PillowCodec

__all__ = ["AVIFCodec", "JPEG2000Codec", "JPEGCodec", "WebPCodec"]

_SUBSAMPLING = ("4:4:4", "4:2:2", "4:2:0")


class JPEGCodec(PillowCodec):
    """JPEG (libjpeg through Pillow).

    Parameters
    ----------
    quality : int, default 75
        libjpeg's quality, 1..100.
    optimize : bool, default True
        Huffman tables optimised for the image (libjpeg's ``-optimize``): never a larger file than the standard
        tables, which a small image pays for in full.
    subsampling : {"4:4:4", "4:2:2", "4:2:0"}, default "4:2:0"
        Chroma subsampling.
    """

    name: ClassVar[str] = "jpeg"
    label: ClassVar[str] = "JPEG"
    pillow_format: ClassVar[str] = "JPEG"
    feature: ClassVar[str] = "jpg"
    suffix: ClassVar[str] = ".jpg"
    quality_range: ClassVar[tuple[float, float]] = (1, 100)
    quality_help: ClassVar[str] = "libjpeg quality (1..100)"
    default_qualities: ClassVar[tuple[float, ...]] = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
    own_options: ClassVar[tuple[Option, ...]] = (
        Option("optimize", bool, True, "Huffman tables optimised for the image (never a larger file)"),
        Option("subsampling", str, "4:2:0", "chroma subsampling", choices=_SUBSAMPLING))


class WebPCodec(PillowCodec):
    """Lossy WebP (libwebp through Pillow).

    Parameters
    ----------
    quality : int, default 75
        libwebp's quality, 0..100.
    method : int, default 6
        Encoder effort, 0..6 (6: the smallest files, the slowest; Pillow's default is 4).
    """

    name: ClassVar[str] = "webp"
    label: ClassVar[str] = "WebP"
    pillow_format: ClassVar[str] = "WEBP"
    feature: ClassVar[str] = "webp"
    suffix: ClassVar[str] = ".webp"
    quality_help: ClassVar[str] = "libwebp quality (0..100)"
    default_qualities: ClassVar[tuple[float, ...]] = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100)
    own_options: ClassVar[tuple[Option, ...]] = (
        Option("method", int, 6, "encoder effort (6: smallest files, slowest)", minimum=0, maximum=6),)


class JPEG2000Codec(PillowCodec):
    """JPEG 2000 (OpenJPEG through Pillow), a JP2 file at a target PSNR.

    Parameters
    ----------
    quality : float, default 30
        OpenJPEG's fixed quality: the PSNR in dB its rate allocation aims at (``opj_compress -q``), 10..70.
    irreversible : bool, default True
        The 9/7 wavelet (lossy coding's usual choice); False: the reversible 5/3 wavelet.
    """

    name: ClassVar[str] = "jpeg2000"
    label: ClassVar[str] = "JPEG 2000"
    pillow_format: ClassVar[str] = "JPEG2000"
    feature: ClassVar[str] = "jpg_2000"
    suffix: ClassVar[str] = ".jp2"
    quality_type: ClassVar[type] = float
    quality_range: ClassVar[tuple[float, float]] = (10.0, 70.0)
    quality_help: ClassVar[str] = "OpenJPEG's target PSNR in dB (10..70)"
    default_quality: ClassVar[float] = 30.0
    default_qualities: ClassVar[tuple[float, ...]] = (20.0, 22.0, 24.0, 26.0, 28.0, 30.0, 32.0, 34.0, 36.0, 38.0,
                                                      40.0)
    own_options: ClassVar[tuple[Option, ...]] = (
        Option("irreversible", bool, True, "the 9/7 wavelet (False: the reversible 5/3 one)"),)

    def save_options(self, shape: tuple[int, ...]) -> dict[str, Any]:
        return {"quality_mode": "dB", "quality_layers": [self.quality], "irreversible": self.options["irreversible"]}


class AVIFCodec(PillowCodec):
    """AVIF (libavif through Pillow).

    Parameters
    ----------
    quality : int, default 75
        libavif's quality, 0..100.
    speed : int, default 6
        Encoder speed, 0..10 (0: the slowest, searching the most coding choices; Pillow's default 6).
    subsampling : {"4:4:4", "4:2:2", "4:2:0"}, default "4:2:0"
        Chroma subsampling.
    """

    name: ClassVar[str] = "avif"
    label: ClassVar[str] = "AVIF"
    pillow_format: ClassVar[str] = "AVIF"
    feature: ClassVar[str] = "avif"
    suffix: ClassVar[str] = ".avif"
    quality_help: ClassVar[str] = "libavif quality (0..100)"
    default_qualities: ClassVar[tuple[float, ...]] = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100)
    own_options: ClassVar[tuple[Option, ...]] = (
        Option("speed", int, 6, "encoder speed (0: slowest)", minimum=0, maximum=10),
        Option("subsampling", str, "4:2:0", "chroma subsampling", choices=_SUBSAMPLING))

    def save_options(self, shape: tuple[int, ...]) -> dict[str, Any]:
        return {"quality": self.quality, **self.options, "max_threads": 1}   # one thread: the same file anywhere
