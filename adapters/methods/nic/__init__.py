"""Point-cloud attributes (NIC): :mod:`~sinr_adapters.methods.nic.adapter` (the adapter) and
:mod:`~sinr_adapters.methods.nic.pointclouds` (coloured point clouds, its signals)."""

__all__: list[str] = []
