"""The framework an INR-method adapter is built from: the one module a plugin author imports from.

An adapter implements the protocol :class:`Adapter` (most subclass :class:`INRAdapter`, or
:class:`FieldAdapter` for signals other than images; a method without a network, such as a classic image
codec, implements :class:`SignalCodec`), describes itself to the harness with an
:class:`AdapterSpec` of :class:`Option` values, and is declared in the entry-point group
``sinr_codecs.adapters`` (docs/writing-an-adapter.md). Everything such a plugin needs is importable from
here::

    from sinr_adapters.framework import AdapterSpec, INRAdapter, Option, Signal, image_signal, linspace_grid

and its tests run the shared checkers (:func:`check_adapter`, module :mod:`sinr_adapters.framework.testing`).
Each name is defined in one module of this package, where its documentation lives:

- :mod:`~sinr_adapters.framework.protocol`: the protocols (with and without a network), ``Decoded``, the output
  contract;
- :mod:`~sinr_adapters.framework.spec`: how an adapter describes itself (options, rate knob, signals, metric);
- :mod:`~sinr_adapters.framework.inr` and :mod:`~sinr_adapters.framework.fields`: the shared implementations;
- :mod:`~sinr_adapters.framework.finetune`: what fine-tuning trains before a stream is written;
- :mod:`~sinr_adapters.framework.container` and :mod:`~sinr_adapters.framework.records`: the stream
  (header, sections, checksum; the shared tensor records) and its checked reader;
- :mod:`~sinr_adapters.framework.signals`, :mod:`~sinr_adapters.framework.grids`,
  :mod:`~sinr_adapters.framework.images`: signals, coordinate grids, bundled test images;
- :mod:`~sinr_adapters.framework.nets`, :mod:`~sinr_adapters.framework.training`,
  :mod:`~sinr_adapters.framework.metrics`, :mod:`~sinr_adapters.framework.quantizers`: network blocks, the
  fitting loop, PSNR, the uniform quantizer and straight-through rounding;
- :mod:`~sinr_adapters.framework.checkpoints`: reading a method's own state_dicts;
- :mod:`~sinr_adapters.framework.sinr_options`, :mod:`~sinr_adapters.framework.results`: how SINR codes an
  adapter's tensors, and the record of one rate point;
- :mod:`~sinr_adapters.framework.testing`: the checkers.
"""

from __future__ import annotations

from . import container, records
from .checkpoints import LoadReport, map_state_dict, read_state_dict
from .container import MAX_FREQUENCY, Reader, config_number, write_section, write_varint
from .fields import FieldAdapter
from .finetune import CompressionSetup
from .grids import grid_of, linspace_grid, pixel_grid, unit_grid
from .images import load_image
from .inr import INRAdapter
from .metrics import psnr, psnr_8bit
from .nets import PositionalEncoding, Sine, SineLayer, Siren, siren_uniform_
from .protocol import Adapter, ContractError, Decoded, SignalCodec, check_rendering
from .quantizers import fake_half, fake_uniform, ste_round, uniform_dequantize, uniform_quantize
from .records import sparse_tensor_from_bytes
from .results import Result
from .signals import Signal, image_array, image_signal
from .sinr_options import SINROptions
from .spec import BPP, BYTES, AdapterSpec, Context, Metric, Option, OptionError, Prepared, RateUnit, SignalSource
from .testing import check_adapter
from .training import FitLog, fit

__all__ = [
    "BPP",
    "BYTES",
    "MAX_FREQUENCY",
    "Adapter",
    "AdapterSpec",
    "CompressionSetup",
    "Context",
    "ContractError",
    "Decoded",
    "FieldAdapter",
    "FitLog",
    "INRAdapter",
    "LoadReport",
    "Metric",
    "Option",
    "OptionError",
    "PositionalEncoding",
    "Prepared",
    "RateUnit",
    "Reader",
    "Result",
    "SINROptions",
    "Signal",
    "SignalCodec",
    "SignalSource",
    "Sine",
    "SineLayer",
    "Siren",
    "check_adapter",
    "check_rendering",
    "config_number",
    "container",
    "fake_half",
    "fake_uniform",
    "fit",
    "grid_of",
    "image_array",
    "image_signal",
    "linspace_grid",
    "load_image",
    "map_state_dict",
    "pixel_grid",
    "psnr",
    "psnr_8bit",
    "read_state_dict",
    "records",
    "siren_uniform_",
    "sparse_tensor_from_bytes",
    "ste_round",
    "uniform_dequantize",
    "uniform_quantize",
    "unit_grid",
    "write_section",
    "write_varint",
]
