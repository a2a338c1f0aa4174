"""INR-method adapters for SINR (import name ``sinr_adapters``; the folder is ``adapters/``).

Each adapter runs one implicit-neural-representation method end to end, with or without SINR stacked
before the method's own quantization and entropy coding (docs/adapters.md):

- :class:`~sinr_adapters.coin.COINAdapter` (COIN: SIREN, half precision),
- :class:`~sinr_adapters.inric.INRICAdapter` (INRIC: SIREN + positional encoding, optional
  meta-learned initialisation, 8-bit quantization-aware fine-tuning, Brotli).

They are declared in the entry-point group ``sinr_codecs.adapters`` and found by
:mod:`sinr_codecs.registry`; ``sinr evaluate`` and ``sinr demo`` (:mod:`sinr_adapters.commands`)
run the rate–distortion harness (:mod:`sinr_adapters.evaluate`).
"""

from __future__ import annotations

from .inr import INRAdapter
from .protocol import Adapter, Decoded
from .results import Result
from .signals import Signal
from .sinr_options import SINROptions
from .coin import COINAdapter
from .inric import INRICAdapter

__all__ = ["Adapter", "COINAdapter", "Decoded", "INRAdapter", "INRICAdapter", "Result", "SINROptions", "Signal"]
