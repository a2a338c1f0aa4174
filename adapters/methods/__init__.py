"""The bundled INR methods, one module or subpackage each, all registered in ``sinr_codecs.adapters``.

- :mod:`~sinr_adapters.methods.coin`: COIN, a SIREN per image stored in float16;
- :mod:`~sinr_adapters.methods.inric`: INRIC, a SIREN on a positional encoding, AdaRound, quantization-aware
  fine-tuning, rANS;
- :mod:`~sinr_adapters.methods.coinpp`: COIN++, a meta-learned base network and one quantized latent per patch;
- :mod:`~sinr_adapters.methods.shacira`: SHACIRA, hash-grid latents entropy-coded per level and a small MLP;
- :mod:`~sinr_adapters.methods.occupancy`: occupancy fields of procedural shapes (IoU against bytes);
- :mod:`~sinr_adapters.methods.audio`: a 1-D SIREN on synthesized waveforms (SNR against bits per sample);
- :mod:`~sinr_adapters.methods.nic`: NIC, point-cloud colours (Y-PSNR against bits per point).

Each is built on :mod:`sinr_adapters.framework` and registered like any third-party adapter.
"""

__all__: list[str] = []
