"""Rate–distortion harness: fit, compress each way (with and without SINR), decode, measure, report.

The harness knows no method by name: every adapter in the registry (:mod:`sinr_codecs.registry`, the
entry-point group ``sinr_codecs.adapters``) describes itself (:mod:`sinr_adapters.framework.spec`): its options, the
rate knob its points sweep, its storage-bits knob, its signals (kind, names, loader, rate unit) and quality
metric, and any preparation (e.g. meta-learning on held-out signals). For every method, rate point and image the network is fitted
**once**; then each compression path starts from a copy of that fitted network and gets the **same number
of fine-tuning steps** through the quantizer its stored values will meet (straight-through): the method's
own storage without SINR, and SINR (sparse values, support fixed) with it. Bytes are ``len()`` of the
stream written, the rate is in the adapter's rate unit (bits per pixel for images, bits per sample, per
point, or bytes); quality is measured on the decoded signal against the original, the same way for every
method (PSNR of the 8-bit image unless the adapter describes another metric: IoU, SNR, Y-PSNR...). Result
records keep their column names for every kind: ``bpp`` holds the rate and ``psnr`` the quality, in the
units named by ``extra["rate_unit"]`` and ``extra["metric"]`` / ``extra["metric_unit"]`` when they are
not bits per pixel and PSNR.

:func:`run` returns :class:`~sinr_adapters.framework.results.Result` records, handing each to ``on_result`` as it
finishes and skipping those in ``done`` (a resumed run, :func:`load_previous`);
:func:`~sinr_adapters.harness.reporting.write_outputs` (:mod:`sinr_adapters.harness.reporting`, re-exported here) writes ``results.json`` (CompressAI-style ``{"name", "description", "results": {column: [per rate point]}}``
plus the configuration and the machine), ``results.csv``, ``results.md`` and ``rd.png``.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sinr_adapters.framework import nets
from .reporting import comparisons_at_equal_psnr, environment, markdown_table, plot_rd, summary, write_outputs
from sinr_adapters.framework.results import Result
from sinr_adapters.framework.sinr_options import SINROptions
from sinr_adapters.framework.spec import BPP, AdapterSpec, Context, SignalSource, describe

__all__ = ["EvalConfig", "comparisons_at_equal_psnr", "environment", "load_previous", "markdown_table",
           "method_spec", "plot_rd", "rate_points", "result_key", "run", "summary", "write_outputs"]


def method_spec(method: str) -> tuple[type, AdapterSpec]:
    """The adapter class installed as ``method`` and its description.

    Raises
    ------
    ValueError
        No adapter of that name is installed, it fails to import, or it does not describe itself.
    """
    from sinr_codecs.registry import AdapterLoadError, UnknownAdapterError, load_adapter

    try:
        cls = load_adapter(method)
    except UnknownAdapterError as exc:
        raise ValueError(f"unknown method {method!r}: {exc}") from exc
    except AdapterLoadError as exc:
        raise ValueError(str(exc)) from exc
    return cls, describe(cls, method)


@dataclass(kw_only=True)
class EvalConfig:
    """What :func:`run` does (every field is a ``sinr evaluate`` option).

    Attributes
    ----------
    methods : list of str
        Installed adapter names (``sinr adapters`` lists them).
    images : list of str or None
        The signals evaluated (``--signals`` / ``--images``): names of each method's signal source
        (bundled scikit-image names for image methods, :data:`sinr_adapters.framework.images.IMAGES`); every method
        must know every name. None: the union of the methods' default signals (``astronaut`` for images).
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
        Which paths to run.
    baseline_bits : list of int
        The bit-width search of the path without SINR (the fair baseline): one more rate point per value,
        with the method's storage-bits knob (its description's ``bits``) at that many bits. Empty: the
        method's own setting only.
    rate_aware : list of float
        Rate weights ``lam`` of rate-aware compression (:mod:`sinr_adapters.rate_coding.rate_aware`): each adds the
        paths "rate-aware" (without SINR) and "rate-aware+SINR" (per SINR setting), one point per value,
        trained for ``finetune_steps``. Empty: none.
    rate_aware_seed : int or None
        With ``rate_aware``: also the path "rate-aware+seed", one point per rate weight: a network fitted
        from the seeded initialisation :func:`sinr_adapters.rate_coding.rate_aware.seeded_init` (this seed) and coded
        as ``theta - theta0`` (methods without reference weights). None: not run.
    target_psnr : float or None
        Also report, per method and image, the smallest stream reaching this quality with and without SINR
        among the paths run (:func:`sinr_adapters.harness.tune.smallest_meeting`).
    meta_images : list of str or None
        Signals a method's preparation may train on (minus the evaluated ones; each method uses those its
        source knows). None: the union of the sources' held-out defaults.
    options : dict of str to dict
        Per method, its own options (:class:`sinr_adapters.framework.spec.Option`): ``{"coinpp": {"patch": 8}}``.
        Filled with the defaults and checked at construction; options for a method not in ``methods`` are
        refused.
    device : str
        ``auto``, ``cpu``, ``cuda``.
    seed : int
        Network initialisation and dictionary seed.
    threads : int or None, default 1
        ``torch.set_num_threads`` while :func:`run` runs (None: torch's default). One thread is fastest for
        these small networks on a CPU and far faster than contending threads.
    """

    methods: list[str] = field(default_factory=lambda: ["coin"])
    images: list[str] | None = None
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
    sinr_entropy: str = "brotli"
    index_coding: str = "delta"
    with_sinr: bool = True
    without_sinr: bool = True
    baseline_bits: list[int] = field(default_factory=list)
    rate_aware: list[float] = field(default_factory=list)
    rate_aware_seed: int | None = None
    target_psnr: float | None = None
    meta_images: list[str] | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str = "auto"
    seed: int = 0
    threads: int | None = 1

    def __post_init__(self) -> None:
        if not self.methods or (self.images is not None and not self.images):
            raise ValueError("methods and images must not be empty")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"a method is listed twice in {self.methods}")
        sources = {m: method_spec(m)[1].signal_source() for m in self.methods}
        if self.images is None:
            self.images = list(dict.fromkeys(n for src in sources.values() for n in src.default))
        if self.meta_images is None:
            self.meta_images = list(dict.fromkeys(n for src in sources.values() for n in src.held_out))
        bad = [n for n in self.images if all(n not in src.names for src in sources.values())]
        if bad:
            if all(src.kind == "image" for src in sources.values()):
                raise ValueError(f"unknown image(s) {bad}; bundled: {', '.join(next(iter(sources.values())).names)}")
            known = "; ".join(f"{m} ({src.kind}): {', '.join(src.names)}" for m, src in sources.items())
            raise ValueError(f"unknown signal(s) {bad}; the methods know {known}")
        for method, src in sources.items():
            if not self.signals_for(method):
                raise ValueError(f"none of the signals {self.images} is a {src.kind} signal {method} knows "
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
        resolved: dict[str, dict[str, Any]] = {}
        for method in self.methods:
            _, spec = method_spec(method)
            ctx = self.context(method=method)
            opts = spec.resolve(self.options.get(method, {}), method=method)
            if spec.validate is not None:
                spec.validate(opts, ctx)
            if self.baseline_bits and self.without_sinr and spec.bits is None:
                raise ValueError(f"--baseline-bits: adapter {method!r} describes no storage-bits knob to search")
            if self.rate_aware and not spec.rate_aware:
                raise ValueError(f"--rate-aware: adapter {method!r} does not support rate-aware compression (it is "
                                 "defined with the mean squared error and the adapter's render; this method has its "
                                 "own loss or decoding)")
            if spec.needs_held_out(opts) and not self.held_out_images(method):
                raise ValueError(f"{method}: meta-learning needs {'bundled images' if ctx.source.kind == 'image' else 'signals'} "
                                 "that are not evaluated (meta_images)")
            resolved[method] = opts
        self.options = resolved
        for s in self.sparsity:
            for b in self.value_bits:
                SINROptions(sparsity=s, value_bits=b, dictionary_ratio=self.dictionary_ratio,
                            entropy=self.sinr_entropy, index_coding=self.index_coding, seed=self.seed,
                            device=self.device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def source(self, method: str | None = None) -> SignalSource:
        """The signal source of ``method`` (default: the first method)."""
        return method_spec(method or self.methods[0])[1].signal_source()

    def signals_for(self, method: str) -> list[str]:
        """The evaluated signals ``method``'s source knows (in ``images`` order): with methods of several
        kinds, each evaluates its own."""
        src = self.source(method)
        return [n for n in self.images or () if n in src.names]

    def method_size(self, method: str | None = None) -> int:
        """The signal size ``method`` is evaluated at (``size``, or its source's default)."""
        return int(self.size) if self.size is not None else self.source(method).size

    def held_out_images(self, method: str | None = None) -> list[str]:
        """``meta_images`` that ``method``'s source knows, minus the evaluated signals (what preparation
        may train on; default: the first method)."""
        src = self.source(method)
        return [n for n in self.meta_images or () if n in src.names and n not in self.images]

    def context(self, progress: bool | None = None, method: str | None = None) -> Context:
        """The settings hooks of ``method`` see (:class:`sinr_adapters.framework.spec.Context`; default: the first
        method)."""
        return Context(size=self.method_size(method), steps=self.steps, lr=self.lr, seed=self.seed,
                       device=self.device, progress=progress, held_out=tuple(self.held_out_images(method)),
                       source=self.source(method))


def _point(spec: AdapterSpec, value: Any) -> str:
    return "default" if spec.rate is None else f"{spec.rate_key}={value}"


def rate_points(method: str, cfg: EvalConfig) -> list[tuple[str, Any, Any]]:
    """``(knob, value, adapter)`` per rate point of ``method`` (the knob is its description's ``rate_key``).

    Adapters that need shared state (e.g. a meta-learned base network) come back without it; :func:`run`
    prepares them.
    """
    cls, spec = method_spec(method)
    return [(spec.rate_key, v, a) for v, a in spec.rate_points(cls, cfg.options[method], cfg.context(method=method))]


def result_key(r: Result) -> tuple:
    """What identifies one measured point: method, image, rate point, with/without SINR, SINR setting."""
    s = r.sinr or {}
    return (r.method, r.image, r.rate_point, bool(r.with_sinr), s.get("sparsity"), s.get("value_bits"))


@dataclass
class _Path:
    point: str
    bits: int | None = None
    sinr: SINROptions | None = None
    rate: float | None = None  # rate-aware compression with this lam
    seed: int | None = None  # ... of the network fitted from this seeded initialisation (theta - theta0 coded)

    def key(self, method: str, image: str) -> tuple:
        s = self.sinr
        return (method, image, self.point, s is not None, None if s is None else s.sparsity,
                None if s is None else s.value_bits)


def _paths(spec: AdapterSpec, point: str, cfg: EvalConfig) -> list[_Path]:
    out: list[_Path] = []
    if cfg.without_sinr:
        out += ([_Path(f"{point},{spec.bits}={b}", b) for b in cfg.baseline_bits] if cfg.baseline_bits
                else [_Path(point)])
    if cfg.with_sinr:
        out += [_Path(point, sinr=SINROptions(sparsity=s, value_bits=b, dictionary_ratio=cfg.dictionary_ratio,
                                             entropy=cfg.sinr_entropy, index_coding=cfg.index_coding,
                                             seed=cfg.seed, device=cfg.device))
                for s in cfg.sparsity for b in cfg.value_bits]
    # one rate-aware point per rate weight without SINR (also beside a bit search, whose paths fix the
    # bits a rate-aware stream learns) and per SINR setting
    rated = ([_Path(point)] if cfg.without_sinr else []) + [p for p in out if p.sinr is not None]
    for lam in cfg.rate_aware:
        out += [_Path(f"{p.point},lam={lam:g}", sinr=p.sinr, rate=float(lam)) for p in rated]
    if cfg.rate_aware_seed is not None:
        out += [_Path(f"{point},lam={lam:g},seed", rate=float(lam), seed=int(cfg.rate_aware_seed))
                for lam in cfg.rate_aware]
    return out


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    nets.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    nets.synchronize(device)
    return out, time.perf_counter() - t0


def _decode(spec: AdapterSpec, adapter: Any, data: bytes, device: str, signal: Any) -> np.ndarray:
    if spec.render is not None:
        return spec.render(adapter, adapter.decompress(data, device=device).model, signal)
    if hasattr(adapter, "decode"):
        return adapter.decode(data, device=device)
    dec = adapter.decompress(data, device=device)
    return adapter.render(dec.model, dec.shape)


def _reference(signal: Any) -> np.ndarray:
    """What the metric compares a rendering with: the signal's ``reference`` or its values in [0, 1]."""
    ref = getattr(signal, "reference", None)
    return signal.unit_values().cpu().numpy() if ref is None else np.asarray(ref)


def _elements(signal: Any) -> int:
    """What the rate divides by: the signal's ``elements`` or the product of its grid shape."""
    n = getattr(signal, "elements", None)
    return int(np.prod(signal.shape[:-1])) if n is None else int(n)


def _quality(spec: AdapterSpec, adapter: Any, model: Any, signal: Any) -> float:
    if spec.render is not None:
        return spec.metric(spec.render(adapter, model, signal), _reference(signal))
    if spec.metric.measure is None and hasattr(adapter, "psnr"):
        return float(adapter.psnr(model, signal))
    return spec.metric(adapter.render(model, signal.shape), _reference(signal))


@dataclass
class _Unit:
    method: str
    spec: AdapterSpec
    options: dict[str, Any]
    value: Any
    adapter: Any
    point: str
    paths: list[_Path]


def _default_log(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr)


def run(cfg: EvalConfig, *, progress: bool | None = None, log: Callable[[str], None] | None = None,
        streams_dir: str | os.PathLike | None = None, done: Sequence[Result] = (),
        on_result: Callable[[list[Result]], None] | None = None) -> list[Result]:
    """Run the harness; ``log`` receives one line per rate point (default: standard error).

    Parameters
    ----------
    progress : bool or None
        An overall progress bar with an estimate of the time left (tqdm, standard error) and the adapters'
        own bars (None: only on a terminal).
    streams_dir : path or None
        Also write every compressed stream there (``<label>_<image>_<knob><value>[_s<S>_b<B>].sia``;
        ``Result.extra["stream"]`` names the file), and the shared state a stream needs to decode when
        a preparation learnt it here (``<method>_<knob><value>_<tag>.npz``; ``Result.config["shared_file"]``).
    done : sequence of Result
        Points already measured (:func:`load_previous`): they are not run again but returned in place.
    on_result : callable or None
        Called with every finished result so far (``done`` included) after each new one, e.g. to write
        them to disk.

    Returns
    -------
    list of Result
        In plan order: method, rate point, image, then the paths without and with SINR.
    """
    from tqdm import tqdm

    log = _default_log if log is None else log
    prev_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    try:
        dev = nets.resolve_device(cfg.device)
        finished = {result_key(r): r for r in done}
        units: list[_Unit] = []
        for method in cfg.methods:
            cls, spec = method_spec(method)
            ctx = cfg.context(progress, method)
            opts = cfg.options[method]
            for value, adapter in spec.rate_points(cls, opts, ctx):
                point = _point(spec, value)
                units.append(_Unit(method, spec, opts, value, adapter, point, _paths(spec, point, cfg)))
        keys = [p.key(u.method, img) for u in units for img in cfg.signals_for(u.method) for p in u.paths]
        bar = tqdm(total=len(keys), initial=sum(k in finished for k in keys), desc="sinr evaluate", unit="point",
                   file=sys.stderr, disable=not nets.progress_enabled(progress), dynamic_ncols=True, smoothing=0.05)
        if streams_dir is not None:
            Path(streams_dir).mkdir(parents=True, exist_ok=True)
        results: list[Result] = []
        with bar:
            for u in units:
                results += _run_unit(u, cfg, cfg.context(progress, u.method), dev, finished, bar, log, streams_dir,
                                     progress, on_result)
        return results
    finally:
        torch.set_num_threads(prev_threads)


def _run_unit(u: _Unit, cfg: EvalConfig, ctx: Context, dev: torch.device, finished: dict[tuple, Result], bar: Any,
              log: Callable[[str], None], streams_dir: str | os.PathLike | None, progress: bool | None,
              on_result: Callable[[list[Result]], None] | None) -> list[Result]:
    """One rate point of one method over every image: prepare, then fit and compress each image."""
    spec, adapter, knob = u.spec, u.adapter, u.spec.rate_key
    signals = cfg.signals_for(u.method)
    todo = [img for img in signals if any(p.key(u.method, img) not in finished for p in u.paths)]
    record: dict[str, Any] = {}
    if todo and spec.prepare is not None:
        prep, secs = _timed(lambda: spec.prepare(adapter, u.options, ctx), dev)
        adapter, record = prep.adapter, dict(prep.record)
        if prep.save is not None or prep.message:
            record["prepare_seconds"] = secs
        if prep.message:
            log(f"{u.method} {u.point}: {prep.message} in {secs:.1f}s")
        if streams_dir is not None and prep.save is not None:  # the shared state the streams need
            path = Path(streams_dir) / f"{u.method}_{knob}{u.value}_{spec.shared_tag}.npz"
            prep.save(path)
            record["shared_file"] = str(path)
    out: list[Result] = []
    for image_name in signals:
        if image_name not in todo:
            out += [finished[p.key(u.method, image_name)] for p in u.paths]
            continue
        source = spec.signal_source()
        signal = spec.make_signal(adapter, source.load(image_name, ctx.size), image_name)
        steps, lr = (cfg.steps, cfg.lr) if spec.fit_schedule is None else spec.fit_schedule(adapter, cfg.steps, cfg.lr)
        (model, _), fit_s = _timed(lambda: adapter.fit(signal, steps=steps, lr=lr, batch_size=cfg.batch_size,
                                                       device=cfg.device, progress=progress, seed=cfg.seed), dev)
        fitted = _quality(spec, adapter, model, signal)
        seeded: tuple[Any, dict[str, float], float] | None = None
        reference = _reference(signal)
        pixels = _elements(signal)
        for path in u.paths:
            key = path.key(u.method, image_name)
            if key in finished:
                out.append(finished[key])
                continue
            coder = adapter if path.bits is None else adapter.with_config({**adapter.config(), spec.bits: path.bits})
            opts = path.sinr
            if path.rate is not None:
                from sinr_adapters.rate_coding import rate_aware

                ra_opts = rate_aware.RateAwareOptions(lam=path.rate, steps=cfg.finetune_steps)
                if path.seed is None:
                    (data, info), enc_s = _timed(lambda: rate_aware.compress(coder, model, signal, ra_opts, sinr=opts),
                                                 dev)
                    info = {**info, "path": "rate-aware+SINR" if opts is not None else "rate-aware"}
                else:
                    if seeded is None:  # fitted once per signal, from the seeded initialisation
                        if coder.reference() is not None:
                            raise ValueError(f"rate_aware_seed: {u.method} stores values relative to its own "
                                             "reference weights; seeded residuals apply to methods without one")
                        init, stds = rate_aware.seeded_init(coder, path.seed)
                        (seeded_model, _), seed_fit_s = _timed(lambda: coder.fit(
                            signal, steps=steps, lr=lr, batch_size=cfg.batch_size, device=cfg.device,
                            progress=progress, seed=path.seed, model=init), dev)
                        seeded = (seeded_model, stds, seed_fit_s)
                    (data, info), enc_s = _timed(lambda: rate_aware.compress(
                        coder, seeded[0], signal, ra_opts, seed=path.seed, stds=seeded[1]), dev)
                    info = {**info, "path": "rate-aware+seed", "seed_fit_seconds": seeded[2],
                            "seed_psnr_fitted": _quality(spec, coder, seeded[0], signal)}
                decoded, dec_s = _timed(lambda: rate_aware.decode(coder, data, device=cfg.device), dev)
            else:
                (data, info), enc_s = _timed(lambda: coder.compress_with_info(
                    copy.deepcopy(model), signal, sinr=opts, finetune_steps=cfg.finetune_steps,
                    finetune_lr=cfg.finetune_lr, sinr_lr=cfg.sinr_lr, batch_size=cfg.batch_size,
                    progress=progress), dev)
                decoded, dec_s = _timed(lambda: _decode(spec, coder, data, cfg.device, signal), dev)
            quality = spec.metric(decoded, reference)
            info.pop("finetune_log", None)
            extra = {**info, "point": path.point, knob: u.value, "size": ctx.size}
            if spec.metric.name != "PSNR" or not spec.metric.higher_is_better:
                extra.update(metric=spec.metric.name, metric_unit=spec.metric.unit,
                             higher_is_better=spec.metric.higher_is_better)
            if source.rate != BPP:
                extra.update(rate_unit=source.rate.name, rate_label=source.rate.label, signal=source.kind)
            r = Result(method=u.method, with_sinr=opts is not None, image=image_name,
                       config={**coder.config(), **record}, sinr=None if opts is None else opts.to_dict(),
                       bytes=len(data), pixels=pixels, bpp=source.rate.of(len(data), pixels), psnr=quality,
                       psnr_fitted=fitted, fit_seconds=fit_s, encode_seconds=enc_s, decode_seconds=dec_s,
                       steps=int(steps if steps is not None else cfg.steps), finetune_steps=cfg.finetune_steps,
                       device=str(dev), extra=extra)
            if streams_dir is not None:
                stem = f"{r.label}_{image_name}_{path.point.replace('=', '').replace(',', '_')}"
                if opts is not None:
                    stem += f"_s{opts.sparsity}_b{opts.value_bits}"
                file = Path(streams_dir) / f"{stem}.sia"
                file.write_bytes(data)
                r.extra["stream"] = str(file)
            out.append(r)
            finished[key] = r
            bar.update()
            sinr_txt = "" if opts is None else f" s={opts.sparsity} bits={opts.value_bits}"
            rate_txt = "" if source.rate.per is None else f"{r.bpp:.3f} {source.rate.name}, "
            q_txt = f"{spec.metric.name} {r.psnr:.3f}" if not spec.metric.unit else f"{r.psnr:.2f} {spec.metric.unit}"
            log(f"{r.label:<12} {image_name:<10} {path.point:<10}{sinr_txt}: {r.bytes} B, {rate_txt}"
                f"{q_txt} (fitted {fitted:.{3 if not spec.metric.unit else 2}f}; fit {fit_s:.1f}s, encode {enc_s:.1f}s, "
                f"decode {dec_s:.2f}s)")
            if on_result is not None:
                on_result(list(finished.values()))
    return out


def _normalised(d: Any) -> Any:
    return json.loads(json.dumps(d))


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            if k == "threads" and not prefix:   # how many threads ran changes no result
                continue
            where = f"{prefix}{k}"
            if k not in old or k not in new:
                out.append(f"{where}: {'absent' if k not in old else old[k]!r} -> "
                           f"{'absent' if k not in new else new[k]!r}")
            else:
                out += _differences(old[k], new[k], where + ".")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def load_previous(out_dir: str | os.PathLike, config: EvalConfig) -> list[Result]:
    """The results a run with the same configuration already wrote to ``out_dir`` (to resume it).

    Returns
    -------
    list of Result
        Empty when ``out_dir`` holds no ``results.json``.

    Raises
    ------
    ValueError
        ``results.json`` is unreadable, or was written with another configuration (the message lists the
        differences); the caller decides whether to start afresh.
    """
    path = Path(out_dir) / "results.json"
    if not path.exists():
        return []
    fix = "pass --fresh to discard them, or choose another --out"
    try:
        doc = json.loads(path.read_text())
        cols = doc["results"]
        prev = doc["config"]
        rows = [dict(zip(cols, vals)) for vals in zip(*cols.values())] if cols else []
        results = [Result.from_dict(row) for row in rows]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} cannot be resumed from ({type(exc).__name__}: {exc}); {fix}") from exc
    diff = _differences(_normalised(prev), _normalised(config.to_dict())) if isinstance(prev, dict) else ["config"]
    if diff:
        more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
        raise ValueError(f"{path} holds results of another configuration ({'; '.join(diff[:4])}{more}); {fix}")
    return results
