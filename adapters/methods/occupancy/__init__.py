"""Occupancy fields: :mod:`~sinr_adapters.methods.occupancy.adapter` (the adapter) and
:mod:`~sinr_adapters.methods.occupancy.shapes` (procedural signed-distance shapes, its signals)."""

__all__: list[str] = []
