"""Classic image codecs as methods of the harness: JPEG, WebP, JPEG 2000 and AVIF through Pillow.

They store no network, so they have no path with SINR: each implements
:class:`~sinr_adapters.framework.protocol.SignalCodec` and describes itself with ``weights=False``
(:mod:`~sinr_adapters.framework.spec`). The harness measures them on the same 8-bit pixels as the INR
methods, with the same PSNR, counting whole files (headers included), and reports every INR path's
BD-rate against them (:mod:`sinr_adapters.harness.anchors`).

- :mod:`~sinr_adapters.methods.classic.pillow`: :class:`PillowCodec`, any format Pillow writes;
- :mod:`~sinr_adapters.methods.classic.formats`: the four codecs and their encoder options;
- :mod:`~sinr_adapters.methods.classic.headers`: how many bytes of a file are header, not coded image.
"""

from .formats import AVIFCodec, JPEG2000Codec, JPEGCodec, WebPCodec
from .pillow import PillowCodec

__all__ = ["AVIFCodec", "JPEG2000Codec", "JPEGCodec", "PillowCodec", "WebPCodec"]
