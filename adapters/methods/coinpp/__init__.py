"""COIN++: :mod:`~sinr_adapters.methods.coinpp.adapter` (the adapter), :mod:`~sinr_adapters.methods.coinpp.model`
(networks and patches), :mod:`~sinr_adapters.methods.coinpp.meta` (inner loop, MAML, calibration),
:mod:`~sinr_adapters.methods.coinpp.files` (base-network files and official checkpoints)."""

__all__: list[str] = []
