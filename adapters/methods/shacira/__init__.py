"""SHACIRA: :mod:`~sinr_adapters.methods.shacira.adapter` (the adapter), :mod:`~sinr_adapters.methods.shacira.model`
(the network), :mod:`~sinr_adapters.methods.shacira.hashgrid` (the multi-resolution hash grid) and
:mod:`~sinr_adapters.methods.shacira.coding` (the latents' entropy coders)."""

__all__: list[str] = []
