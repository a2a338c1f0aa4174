"""The rate–distortion harness: it loads adapters from the registry and knows no method by name.

- :mod:`~sinr_adapters.harness.evaluate`: fit, compress each way, decode, measure (:func:`run`);
- :mod:`~sinr_adapters.harness.commands`: ``sinr evaluate`` and ``sinr demo`` on the command line;
- :mod:`~sinr_adapters.harness.reporting`: tables, savings at equal quality, plot and result files;
- :mod:`~sinr_adapters.harness.rd`: operating points, savings at equal quality, BD-rate;
- :mod:`~sinr_adapters.harness.tune`: the smallest stream that reaches a target quality.
"""

__all__: list[str] = []
