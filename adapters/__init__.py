"""INR-method adapters for SINR (import name ``sinr_adapters``; the folder is ``adapters/``).

Each adapter runs one implicit-neural-representation method end to end, with or without SINR stacked
before the method's own quantization and entropy coding (docs/adapters.md):

- :class:`~sinr_adapters.coin.COINAdapter` (COIN: SIREN, half precision),
- :class:`~sinr_adapters.inric.INRICAdapter` (INRIC: SIREN + positional encoding, optional
  meta-learned initialisation, 8-bit quantization-aware fine-tuning, Brotli),
- :class:`~sinr_adapters.coinpp.COINppAdapter` (COIN++: a meta-learned base network shared beforehand,
  per-patch latent modulations quantized and Brotli-coded),
- :class:`~sinr_adapters.shacira.SHACIRAAdapter` (SHACIRA: a hash grid of integer latents, entropy-coded
  per level, with a latent decoder and a small MLP).

The plugin interface: an adapter implements :class:`~sinr_adapters.base.Adapter` (most subclass
:class:`~sinr_adapters.base.INRAdapter`), describes itself to the harness through a classmethod
``describe()`` returning a :class:`~sinr_adapters.spec.AdapterSpec` (its options, rate knob, storage
bits, signal kind, quality metric and preparation), and is declared in the entry-point group
``sinr_codecs.adapters``, where :mod:`sinr_codecs.registry` finds it, ours and any other distribution's
alike (docs/writing-an-adapter.md; examples/sinr-adapter-example/). ``sinr evaluate`` and ``sinr demo``
(:mod:`sinr_adapters.commands`) run the rate–distortion harness (:mod:`sinr_adapters.evaluate`) over
every registered adapter. Their streams are specified in docs/format-adapters.md.
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
