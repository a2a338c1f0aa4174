"""INR-method adapters for SINR (import name ``sinr_adapters``; the folder is ``adapters/``).

An adapter runs one implicit-neural-representation method end to end (fit its network to a signal, store
it the method's way, decode, render) with and without SINR stacked before the method's own quantization
and entropy coding (docs/adapters.md). The package has four rooms:

- :mod:`sinr_adapters.framework`: what an adapter is built from, and the one module a plugin author
  imports from (the Adapter protocol, how an adapter describes itself, the shared coordinate-network
  implementation, the stream container, fine-tuning, signals, networks, the fitting loop, and checkers
  that test an adapter against the protocol);
- :mod:`sinr_adapters.methods`: the bundled methods, one module or subpackage each (COIN, INRIC,
  COIN++, SHACIRA, occupancy fields, audio, NIC point-cloud attributes);
- :mod:`sinr_adapters.harness`: the rate–distortion harness (``sinr evaluate``, ``sinr demo``,
  ``sinr decode``), which knows no method by name: it iterates the registry;
- :mod:`sinr_adapters.rate_coding`: rate-aware fine-tuning and its stream, rate models, sensitivities,
  AdaRound and meta-learned initialisations.

Adapters, ours and any other distribution's, are declared in the entry-point group
``sinr_codecs.adapters``, where :mod:`sinr_codecs.registry` finds them.
"""

__all__: list[str] = []
