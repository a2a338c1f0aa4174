"""Compatibility module: the names ``sinr_adapters.base`` has always exported, from where they now live.

New code imports from the module named for the concept:

- :mod:`sinr_adapters.protocol`: ``Adapter``, ``Decoded``;
- :mod:`sinr_adapters.inr`: ``INRAdapter``;
- :mod:`sinr_adapters.sinr_options`: ``SINROptions``;
- :mod:`sinr_adapters.signals`: ``Signal``, ``image_array``, ``image_signal``;
- :mod:`sinr_adapters.results`: ``Result``;
- :mod:`sinr_adapters.quantizers`: ``uniform_quantize``, ``uniform_dequantize``, ``fake_uniform``, ``fake_half``;
- :mod:`sinr_adapters.container`: the stream (``MAGIC``, limits, ``write_varint``, ``write_section``,
  ``Reader``, ``inflate``, ``stored_uniform``, ``read_quantizer``, ``from_stored_uniform``,
  ``sparse_tensor_from_bytes``, ``config_number``, ``fingerprint``);
- :mod:`sinr_adapters.finetune`: ``CompressionSetup``;
- :mod:`sinr_adapters.checkpoints`: ``LoadReport``, ``read_state_dict``, ``map_state_dict``.
"""

from __future__ import annotations

from sinr_codecs.errors import StreamError

from .checkpoints import LoadReport, map_state_dict, read_state_dict
from .container import (
    MAGIC,
    MAX_FREQUENCY,
    MAX_STREAM_PARAMETERS,
    MAX_STREAM_TENSORS,
    Reader,
    config_number,
    fingerprint,
    from_stored_uniform,
    inflate,
    read_quantizer,
    sparse_tensor_from_bytes,
    stored_uniform,
    write_section,
    write_varint,
)
from .finetune import CompressionSetup
from .inr import INRAdapter
from .protocol import Adapter, Decoded
from .quantizers import fake_half, fake_uniform, uniform_dequantize, uniform_quantize
from .results import Result
from .signals import Signal, image_array
from .sinr_options import SINROptions

__all__ = [
    "MAGIC",
    "MAX_FREQUENCY",
    "MAX_STREAM_PARAMETERS",
    "MAX_STREAM_TENSORS",
    "Adapter",
    "CompressionSetup",
    "Decoded",
    "INRAdapter",
    "LoadReport",
    "Reader",
    "Result",
    "SINROptions",
    "Signal",
    "StreamError",
    "config_number",
    "fake_half",
    "fake_uniform",
    "fingerprint",
    "from_stored_uniform",
    "image_array",
    "inflate",
    "map_state_dict",
    "read_quantizer",
    "read_state_dict",
    "sparse_tensor_from_bytes",
    "stored_uniform",
    "uniform_dequantize",
    "uniform_quantize",
    "write_section",
    "write_varint",
]
