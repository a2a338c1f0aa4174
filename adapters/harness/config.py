"""What one run of the rate–distortion harness does: :class:`EvalConfig` (every ``sinr evaluate`` option).

A configuration is checked when it is made: every method is installed and passes the plugin checks
(:func:`sinr_adapters.harness.plugins.method_spec`), its options are filled with their defaults and
checked against its description and its ``validate`` hook, and every signal is known to a method's source.

Examples
--------
>>> cfg = EvalConfig(methods=["coin"], options={"coin": {"widths": [8]}})
>>> cfg.signals, cfg.size, cfg.options["coin"]["widths"]
(['astronaut'], 64, [8])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..framework.sinr_options import SINROptions
from ..framework.spec import Context, SignalSource
from .plugins import method_spec

__all__ = ["EvalConfig"]


@dataclass(kw_only=True)
class EvalConfig:
    """What :func:`~sinr_adapters.harness.evaluate.run` does (every field is a ``sinr evaluate`` option).

    Attributes
    ----------
    methods : list of str
        Installed adapter names (``sinr adapters`` lists them).
    signals : list of str or None
        The signals evaluated (``--signals`` / ``--images``): names of the methods' signal sources (bundled
        scikit-image names for image methods, :data:`sinr_adapters.framework.images.IMAGES`); each method
        evaluates those its source knows, and every name must be known to one. None: the union of the
        methods' default signals (``astronaut`` for images).
    size : int or None
        The signals' size in the sources' unit: side of the square images, samples of a waveform, side of
        an occupancy grid, points of a cloud. None: each source's default (64 for images).
    steps, lr, batch_size
        Fitting: Adam steps, learning rate (None: the adapter's ``default_lr``), mini-batch size (None:
        full batch; also used by the fine-tuning). An adapter may fit otherwise (its ``fit_schedule``: COIN++
        runs its inner loop).
    finetune_steps : int
        Fine-tuning steps after compression starts, the same for every path.
    finetune_lr, sinr_lr : float or None
        Learning rates of the fine-tuning without / with SINR (None: the adapter's defaults).
    sparsity, value_bits : lists
        SINR operating points (every combination is one more rate point per method rate point).
    dictionary_ratio : float
        SINR ``k2 / k1``.
    sinr_entropy, index_coding : str
        SINR's entropy back end (``"brotli"``, ``"rans"``, ``"raw"``) and index coding (``"delta"``, ``"raw"``).
    with_sinr, without_sinr : bool
        Which paths of the INR methods to run (a method without a network, e.g. a classic codec, always
        runs its one path).
    baseline_bits : list of int
        The bit-width search of the path without SINR (the fair baseline): one more rate point per value,
        with the method's storage-bits knob (its description's ``bits``) at that many bits. Empty: the
        method's own setting only. Methods without a network are not searched.
    rate_aware : list of float
        Rate weights ``lam`` of rate-aware compression (:mod:`sinr_adapters.rate_coding.rate_aware`): each adds the
        paths "rate-aware" (without SINR) and "rate-aware+SINR" (per SINR setting), one point per value,
        trained for ``finetune_steps``. Empty: none.
    rate_aware_seed : int or None
        With ``rate_aware``: also the path "rate-aware+seed", one point per rate weight: a network fitted
        from the seeded initialisation :func:`sinr_adapters.rate_coding.rate_aware.seeded_init` (this seed) and coded
        as ``theta - theta0`` (methods without reference weights). None: not run.
    target_psnr : float or None
        Also report, per method and signal, the smallest stream reaching this quality with and without SINR
        among the paths run (:func:`sinr_adapters.harness.tune.smallest_meeting`).
    held_out : list of str or None
        Signals a method's preparation may train on (``--meta-signals``; minus the evaluated ones; each method
        uses those its source knows). None: the union of the sources' held-out defaults.
    options : dict of str to dict
        Per method, its own options (:class:`sinr_adapters.framework.spec.Option`): ``{"coinpp": {"patch": 8}}``.
        Filled with the defaults and checked at construction; options for a method not in ``methods`` are
        refused.
    device : str
        ``auto``, ``cpu``, ``cuda``.
    seed : int
        Network initialisation and dictionary seed.
    threads : int or None, default 1
        ``torch.set_num_threads`` while the harness runs (None: torch's default). One thread is fastest for
        these small networks on a CPU and far faster than contending threads.
    """

    methods: list[str] = field(default_factory=lambda: ["coin"])
    signals: list[str] | None = None
    size: int | None = None
    steps: int = 1000
    lr: float | None = None
    batch_size: int | None = None
    finetune_steps: int = 200
    finetune_lr: float | None = None
    sinr_lr: float | None = None
    sparsity: list[int | float] = field(default_factory=lambda: [0.25])
    value_bits: list[int] = field(default_factory=lambda: [8])
    dictionary_ratio: float = 8.0
    sinr_entropy: str = "auto"
    index_coding: str = "delta"
    with_sinr: bool = True
    without_sinr: bool = True
    baseline_bits: list[int] = field(default_factory=list)
    rate_aware: list[float] = field(default_factory=list)
    rate_aware_seed: int | None = None
    target_psnr: float | None = None
    held_out: list[str] | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str = "auto"
    seed: int = 0
    threads: int | None = 1

    def __post_init__(self) -> None:
        if not self.methods or (self.signals is not None and not self.signals):
            raise ValueError("methods and signals must not be empty")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"a method is listed twice in {self.methods}")
        sources = {m: method_spec(m)[1].signal_source() for m in self.methods}
        self._sources = sources   # looked up once: a run asks for them at every point
        if self.signals is None:
            self.signals = list(dict.fromkeys(n for src in sources.values() for n in src.default))
        if self.held_out is None:
            self.held_out = list(dict.fromkeys(n for src in sources.values() for n in src.held_out))
        bad = [n for n in self.signals if all(n not in src.names for src in sources.values())]
        if bad:
            if all(src.kind == "image" for src in sources.values()):
                raise ValueError(f"unknown image(s) {bad}; bundled: {', '.join(next(iter(sources.values())).names)}")
            known = "; ".join(f"{m} ({src.kind}): {', '.join(src.names)}" for m, src in sources.items())
            raise ValueError(f"unknown signal(s) {bad}; the methods know {known}")
        for method, src in sources.items():
            if not self.signals_for(method):
                raise ValueError(f"none of the signals {self.signals} is a {src.kind} signal {method} knows "
                                 f"({', '.join(src.names)})")
        if self.size is None and len({(s.kind, s.size) for s in sources.values()}) == 1:
            self.size = next(iter(sources.values())).size
        for method, src in sources.items():
            if self.method_size(method) < src.min_size:
                raise ValueError(f"size must be >= {src.min_size} for {method} ({src.size_help})")
        if self.steps < 0 or self.finetune_steps < 0:
            raise ValueError("steps and finetune_steps must be >= 0")
        if self.threads is not None and int(self.threads) < 1:
            raise ValueError(f"threads must be >= 1 (or None: torch's default), got {self.threads}")
        if self.rate_aware_seed is not None and not (self.rate_aware and self.without_sinr):
            raise ValueError("rate_aware_seed needs rate_aware weights and the path without SINR")
        if self.rate_aware_seed is not None and not 0 <= int(self.rate_aware_seed) < 1 << 63:
            raise ValueError(f"rate_aware_seed must be in 0..2**63-1, got {self.rate_aware_seed}")
        if not (self.with_sinr or self.without_sinr):
            raise ValueError("nothing to do: both the with- and the without-SINR path are off")
        stray = sorted(set(self.options) - set(self.methods))
        if stray:
            raise ValueError(f"options given for {stray}, which {'is' if len(stray) == 1 else 'are'} not among "
                             f"the methods {self.methods}")
        self.options = {method: self._resolve(method) for method in self.methods}
        for s in self.sparsity:
            for b in self.value_bits:
                SINROptions(sparsity=s, value_bits=b, dictionary_ratio=self.dictionary_ratio,
                            entropy=self.sinr_entropy, index_coding=self.index_coding, seed=self.seed,
                            device=self.device)

    def _resolve(self, method: str) -> dict[str, Any]:
        """``method``'s options, defaults filled in, checked against its description and its ``validate``."""
        _, spec = method_spec(method)
        ctx = self.context(method=method)
        opts = spec.resolve(self.options.get(method, {}), method=method)
        if spec.validate is not None:
            spec.validate(opts, ctx)
        if not spec.weights:   # a codec without a network runs its own path only; the INR paths' options pass it by
            return opts
        if self.baseline_bits and self.without_sinr and spec.bits is None:
            raise ValueError(f"--baseline-bits: adapter {method!r} describes no storage-bits knob to search")
        if self.rate_aware and not spec.rate_aware:
            raise ValueError(f"--rate-aware: adapter {method!r} does not support rate-aware compression (it is "
                             "defined with the mean squared error and the adapter's render; this method has its "
                             "own loss or decoding)")
        if spec.needs_held_out(opts) and not self.held_out_signals(method):
            raise ValueError(f"{method}: its preparation (meta-learning) needs {self.source(method).kind} signals "
                             "that are not evaluated (--meta-signals)")
        return opts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def source(self, method: str | None = None) -> SignalSource:
        """The signal source of ``method`` (default: the first method)."""
        method = method or self.methods[0]
        known = getattr(self, "_sources", {})
        return known[method] if method in known else method_spec(method)[1].signal_source()

    def signals_for(self, method: str) -> list[str]:
        """The evaluated signals ``method``'s source knows (in ``signals`` order): with methods of several
        kinds, each evaluates its own."""
        src = self.source(method)
        return [n for n in self.signals or () if n in src.names]

    def method_size(self, method: str | None = None) -> int:
        """The signal size ``method`` is evaluated at (``size``, or its source's default)."""
        return int(self.size) if self.size is not None else self.source(method).size

    def held_out_signals(self, method: str | None = None) -> list[str]:
        """``held_out`` signals that ``method``'s source knows, minus the evaluated ones (what preparation may
        train on; default: the first method)."""
        src = self.source(method)
        return [n for n in self.held_out or () if n in src.names and n not in (self.signals or ())]

    def context(self, progress: bool | None = None, method: str | None = None) -> Context:
        """The settings hooks of ``method`` see (:class:`sinr_adapters.framework.spec.Context`; default: the first
        method)."""
        return Context(size=self.method_size(method), steps=self.steps, lr=self.lr, seed=self.seed,
                       device=self.device, progress=progress, held_out=tuple(self.held_out_signals(method)),
                       source=self.source(method), with_sinr=self.with_sinr, without_sinr=self.without_sinr)
