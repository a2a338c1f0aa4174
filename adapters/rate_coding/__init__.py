"""Rate coding: training the stored values for the bits they cost, and what it builds on.

- :mod:`~sinr_adapters.rate_coding.rate_aware`: rate-aware compression (learned steps, rate + distortion
  fine-tuning, seeded residuals) and its stream;
- :mod:`~sinr_adapters.rate_coding.rate`: differentiable rate models and their exact coding tables;
- :mod:`~sinr_adapters.rate_coding.sensitivity`: diagonal Fisher sensitivities and the high-rate step allocation;
- :mod:`~sinr_adapters.rate_coding.adaround`: AdaRound learned rounding;
- :mod:`~sinr_adapters.rate_coding.meta_init`: meta-learned initialisations (Reptile, Meta-SGD) and their files.
"""

__all__: list[str] = []
