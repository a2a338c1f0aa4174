"""Audio: :mod:`~sinr_adapters.methods.audio.adapter` (the adapter) and
:mod:`~sinr_adapters.methods.audio.waveforms` (synthesized waveforms, its signals)."""

__all__: list[str] = []
