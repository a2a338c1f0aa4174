"""Rate–distortion harness: fit, compress each way (with and without SINR), decode, measure.

The harness knows no method by name: every adapter in the registry (:mod:`sinr_codecs.registry`, the
entry-point group ``sinr_codecs.adapters``) describes itself (:mod:`sinr_adapters.framework.spec`): its
options, the rate knob its points sweep, its storage-bits knob, its signals (kind, names, loader, rate
unit) and quality metric, and any preparation (e.g. meta-learning on held-out signals); each is checked
when it is loaded (:mod:`sinr_adapters.harness.plugins`). For every method, rate point and signal the
network is fitted **once**; then each compression path starts from a copy of that fitted network and gets
the **same number of fine-tuning steps** through the quantizer its stored values will meet
(straight-through): the method's own storage without SINR, and SINR (sparse values, support fixed) with it.
Bytes are ``len()`` of the stream written, the rate is in the adapter's rate unit (bits per pixel for
images, bits per sample, per point, or bytes); quality is measured on the decoded signal against the
original, the same way for every method (PSNR of the 8-bit image unless the adapter describes another
metric: IoU, SNR, Y-PSNR...). What ``decompress`` and ``render`` return is held to the protocol
(:func:`~sinr_adapters.framework.protocol.check_rendering`): an array of another shape or dtype stops the
run with the adapter and the method named, never a broadcast score. Result records keep their column
names for every kind: ``bpp`` holds the rate and ``psnr`` the quality, in the units named by
``extra["rate_unit"]`` and ``extra["metric"]`` / ``extra["metric_unit"]`` when they are not bits per pixel
and PSNR.

A method without a network (its description says ``weights=False``: the classic image codecs) is measured
on the same signals with the same metric, but only its own path: it is neither fitted nor fine-tuned, and
has no path with SINR, no bit search and no rate-aware path, whatever the run asks of the INR methods (the
log says so once per method). Its results carry ``extra["anchor"] = True`` and ``psnr_fitted = None``; the
report compares every INR path with them (:mod:`sinr_adapters.harness.anchors`). A method that cannot run on
this machine (its description's ``unavailable`` hook, e.g. a Pillow without that encoder) is skipped with
the reason in the log.

:func:`run` returns :class:`~sinr_adapters.framework.results.Result` records, handing each to ``on_result``
as it finishes and skipping those in ``done`` (a resumed run, :func:`~sinr_adapters.harness.resume.load_previous`);
:func:`~sinr_adapters.harness.reporting.write_outputs` writes the files.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sinr_codecs.sparse import resolve_device

from ..framework import training
from ..framework.protocol import ContractError, Decoded, check_rendering
from ..framework.results import Result
from ..framework.signals import Signal
from ..framework.sinr_options import SINROptions
from ..framework.spec import BPP, AdapterSpec, Context
from .config import EvalConfig
from .plugins import check_rate_point, method_spec, unavailable
from .resume import result_key

__all__ = ["decode_stream", "measure", "rate_points", "run"]


def rate_points(method: str, cfg: EvalConfig) -> list[tuple[str, Any, Any]]:
    """``(knob, value, adapter)`` per rate point of ``method`` (the knob is its description's ``rate_key``),
    each adapter checked (:func:`~sinr_adapters.harness.plugins.check_rate_point`).

    Adapters that need shared state (e.g. a meta-learned base network) come back without it; :func:`run`
    prepares them.
    """
    cls, spec = method_spec(method)
    points = spec.rate_points(cls, cfg.options[method], cfg.context(method=method))
    for _, adapter in points:
        check_rate_point(method, spec, adapter)
    return [(spec.rate_key, v, a) for v, a in points]


@dataclass
class _Path:
    point: str
    bits: int | None = None
    sinr: SINROptions | None = None
    rate: float | None = None  # rate-aware compression with this lam
    seed: int | None = None  # ... of the network fitted from this seeded initialisation (theta - theta0 coded)

    def key(self, method: str, signal: str) -> tuple[Any, ...]:
        s = self.sinr
        return (method, signal, self.point, s is not None, None if s is None else s.sparsity,
                None if s is None else s.value_bits)


def _paths(spec: AdapterSpec, point: str, cfg: EvalConfig) -> list[_Path]:
    if not spec.weights:   # a codec without a network: its own path, whatever the INR methods run
        return [_Path(point)]
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


def _timed(sync: torch.device, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``(fn(*args, **kwargs), seconds)``, the device ``sync`` synchronised before each clock reading."""
    training.synchronize(sync)
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    training.synchronize(sync)
    return out, time.perf_counter() - t0


def decode_stream(method: str, spec: AdapterSpec, adapter: Any, data: bytes, signal: Signal, *,
                  device: str = "cpu") -> np.ndarray:
    """What the adapter decodes from ``data``, held to the protocol: ``decompress`` must return a
    :class:`~sinr_adapters.framework.protocol.Decoded` of the signal's shape, and ``render`` (or the
    description's ``render``) an array the metric can compare with the signal's reference.

    Raises
    ------
    ContractError
        Naming the adapter and the method that broke the contract.
    """
    dec = adapter.decompress(data, device=device)
    if not isinstance(dec, Decoded) or tuple(dec.shape) != tuple(signal.shape):
        got = type(dec).__name__ if not isinstance(dec, Decoded) else f"shape {tuple(dec.shape)}"
        raise ContractError(f"adapter {method!r}: decompress returned {got}, expected a Decoded of the signal's "
                            f"shape {tuple(signal.shape)}")
    return measure(method, spec, adapter, dec.model, signal)


def measure(method: str, spec: AdapterSpec, adapter: Any, model: Any, signal: Signal) -> np.ndarray:
    """The rendering of ``model`` that the metric compares with ``signal.target()``: ``adapter.render(model,
    signal.shape)``, or the description's ``render(adapter, model, signal)``; checked
    (:func:`~sinr_adapters.framework.protocol.check_rendering`)."""
    target = signal.target()
    if spec.render is not None:
        return check_rendering(spec.render(adapter, model, signal), target.shape, adapter=method,
                               method="the render of its describe()")
    out = check_rendering(adapter.render(model, signal.shape), signal.shape, adapter=method, method="render")
    if out.shape != target.shape:
        raise ContractError(f"adapter {method!r}: its signal's reference has shape {target.shape}, its render "
                            f"{out.shape}; give the signal a reference of the rendering's shape")
    return out


def _quality(method: str, spec: AdapterSpec, adapter: Any, model: Any, signal: Signal) -> float:
    if spec.render is None and spec.metric.measure is None and hasattr(adapter, "psnr"):
        return float(adapter.psnr(model, signal))
    return spec.metric(measure(method, spec, adapter, model, signal), signal.target())


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
        streams_dir: str | os.PathLike[str] | None = None, done: Sequence[Result] = (),
        on_result: Callable[[list[Result]], None] | None = None) -> list[Result]:
    """Run the harness; ``log`` receives one line per measured point (default: standard error).

    Parameters
    ----------
    progress : bool or None
        An overall progress bar with an estimate of the time left (tqdm, standard error) and the adapters'
        own bars (None: only on a terminal).
    streams_dir : path or None
        Also write every compressed stream there (``<label>_<signal>_<knob><value>[_s<S>_b<B>].sia``;
        ``Result.extra["stream"]`` names the file), and the shared state a stream needs to decode when
        a preparation learnt it here (``<method>_<knob><value>_<tag>.npz``; ``Result.config["shared_file"]``).
    done : sequence of Result
        Points already measured (:func:`~sinr_adapters.harness.resume.load_previous`): they are not run again
        but returned in place.
    on_result : callable or None
        Called with every finished result so far (``done`` included) after each new one, e.g. to write
        them to disk.

    Returns
    -------
    list of Result
        In plan order: method, rate point, signal, then the paths without and with SINR.
    """
    from tqdm import tqdm

    log = _default_log if log is None else log
    prev_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    try:
        dev = resolve_device(cfg.device)
        finished = {result_key(r): r for r in done}
        units: list[_Unit] = []
        for method in cfg.methods:
            _, spec = method_spec(method)
            why = unavailable(method)
            if why is not None:
                log(f"{method}: skipped: {why}")
                continue
            if not spec.weights:
                log(f"{method}: no network, so no path with SINR: measured as published, a reference curve for the "
                    "INR paths")
            opts = cfg.options[method]
            for _, value, adapter in rate_points(method, cfg):
                point = "default" if spec.rate is None else f"{spec.rate_key}={value}"
                units.append(_Unit(method, spec, opts, value, adapter, point, _paths(spec, point, cfg)))
        keys = [p.key(u.method, name) for u in units for name in cfg.signals_for(u.method) for p in u.paths]
        bar = tqdm(total=len(keys), initial=sum(k in finished for k in keys), desc="sinr evaluate", unit="point",
                   file=sys.stderr, disable=not training.progress_enabled(progress), dynamic_ncols=True,
                   smoothing=0.05)
        if streams_dir is not None:
            Path(streams_dir).mkdir(parents=True, exist_ok=True)
        results: list[Result] = []
        with bar:
            for u in units:
                results += _Measure(u, cfg, cfg.context(progress, u.method), dev, finished, bar, log, streams_dir,
                                    progress, on_result).run()
        return results
    finally:
        torch.set_num_threads(prev_threads)


class _Measure:
    """One rate point of one method over every signal: prepare, then fit and compress each signal."""

    def __init__(self, u: _Unit, cfg: EvalConfig, ctx: Context, dev: torch.device,
                 finished: dict[tuple[Any, ...], Result], bar: Any, log: Callable[[str], None],
                 streams_dir: str | os.PathLike[str] | None, progress: bool | None,
                 on_result: Callable[[list[Result]], None] | None) -> None:
        self.u, self.cfg, self.ctx, self.dev, self.finished, self.bar = u, cfg, ctx, dev, finished, bar
        self.log, self.streams_dir, self.progress, self.on_result = log, streams_dir, progress, on_result
        self.adapter: Any = u.adapter
        self.record: dict[str, Any] = {}
        self.seeded: tuple[Any, dict[str, float], float] | None = None

    def run(self) -> list[Result]:
        u = self.u
        signals = self.cfg.signals_for(u.method)
        todo = [n for n in signals if any(p.key(u.method, n) not in self.finished for p in u.paths)]
        if todo and u.spec.prepare is not None:
            self._prepare()
        out: list[Result] = []
        for name in signals:
            if name in todo:
                out += self._signal(name)
            else:
                out += [self.finished[p.key(u.method, name)] for p in u.paths]
        return out

    def _prepare(self) -> None:
        u, spec = self.u, self.u.spec
        assert spec.prepare is not None
        prep, secs = _timed(self.dev, spec.prepare, self.adapter, u.options, self.ctx)
        self.adapter, self.record = prep.adapter, dict(prep.record)
        if prep.save is not None or prep.message:
            self.record["prepare_seconds"] = secs
        if prep.message:
            self.log(f"{u.method} {u.point}: {prep.message} in {secs:.1f}s")
        if self.streams_dir is not None and prep.save is not None:  # the shared state the streams need
            path = Path(self.streams_dir) / f"{u.method}_{spec.rate_key}{u.value}_{spec.shared_tag}.npz"
            prep.save(path)
            self.record["shared_file"] = str(path)

    def _signal(self, name: str) -> list[Result]:
        u, spec, cfg, adapter = self.u, self.u.spec, self.cfg, self.adapter
        signal = spec.make_signal(adapter, spec.signal_source().load(name, self.ctx.size), name)
        model: Any = None
        fitted: float | None = None
        steps: int | None = 0
        fit_s = 0.0
        if spec.weights:   # a codec without a network has nothing to fit
            steps, lr = ((cfg.steps, cfg.lr) if spec.fit_schedule is None
                         else spec.fit_schedule(adapter, cfg.steps, cfg.lr))
            (model, _), fit_s = _timed(self.dev, adapter.fit, signal, steps=steps, lr=lr, batch_size=cfg.batch_size,
                                       device=cfg.device, progress=self.progress, seed=cfg.seed)
            fitted = _quality(u.method, spec, adapter, model, signal)
        self.seeded = None
        out = []
        for path in u.paths:
            key = path.key(u.method, name)
            if key not in self.finished:
                r = self._path(path, name, signal, model, fitted, fit_s, steps)
                self.finished[key] = r
                self.bar.update()
                if self.on_result is not None:
                    self.on_result(list(self.finished.values()))
            out.append(self.finished[key])
        return out

    def _compress(self, path: _Path, coder: Any, signal: Signal, model: Any, steps: int | None,
                  lr: float | None) -> tuple[bytes, dict[str, Any], float, np.ndarray, float]:
        """``(stream, info, encode seconds, decoded rendering, decode seconds)`` of one path."""
        cfg, dev, u = self.cfg, self.dev, self.u
        if not u.spec.weights:
            return _encode(u.method, coder, signal)
        if path.rate is None:
            (data, info), enc_s = _timed(dev, coder.compress_with_info, copy.deepcopy(model), signal, sinr=path.sinr,
                                         finetune_steps=cfg.finetune_steps, finetune_lr=cfg.finetune_lr,
                                         sinr_lr=cfg.sinr_lr, batch_size=cfg.batch_size, progress=self.progress)
            decoded, dec_s = _timed(dev, decode_stream, u.method, u.spec, coder, data, signal, device=cfg.device)
            return data, info, enc_s, decoded, dec_s
        from ..rate_coding import rate_aware
        from ..rate_coding import stream as rate_stream

        opts = rate_aware.RateAwareOptions(lam=path.rate, steps=cfg.finetune_steps)
        if path.seed is None:
            (data, info), enc_s = _timed(dev, rate_aware.compress, coder, model, signal, opts, sinr=path.sinr)
            info = {**info, "path": "rate-aware+SINR" if path.sinr is not None else "rate-aware"}
        else:
            if self.seeded is None:  # fitted once per signal, from the seeded initialisation
                if coder.reference() is not None:
                    raise ValueError(f"rate_aware_seed: {u.method} stores values relative to its own reference "
                                     "weights; seeded residuals apply to methods without one")
                init, stds = rate_aware.seeded_init(coder, path.seed)
                (seeded_model, _), seed_fit_s = _timed(dev, coder.fit, signal, steps=steps, lr=lr,
                                                       batch_size=cfg.batch_size, device=cfg.device,
                                                       progress=self.progress, seed=path.seed, model=init)
                self.seeded = (seeded_model, stds, seed_fit_s)
            seeded_model, stds, seed_fit_s = self.seeded
            (data, info), enc_s = _timed(dev, rate_aware.compress, coder, seeded_model, signal, opts, seed=path.seed,
                                         stds=stds)
            info = {**info, "path": "rate-aware+seed", "seed_fit_seconds": seed_fit_s,
                    "seed_psnr_fitted": _quality(u.method, u.spec, coder, seeded_model, signal)}
        dec, dec_s = _timed(dev, rate_stream.decompress, coder, data, device=cfg.device)
        decoded = measure(u.method, u.spec, dec.header["adapter"], dec.model, signal)
        return data, info, enc_s, decoded, dec_s

    def _path(self, path: _Path, name: str, signal: Signal, model: Any, fitted: float | None, fit_s: float,
              steps: int | None) -> Result:
        u, spec, cfg, adapter = self.u, self.u.spec, self.cfg, self.adapter
        source = spec.signal_source()
        coder = adapter if path.bits is None else adapter.with_config({**adapter.config(), spec.bits: path.bits})
        lr = cfg.lr if spec.fit_schedule is None else spec.fit_schedule(adapter, cfg.steps, cfg.lr)[1]
        data, info, enc_s, decoded, dec_s = self._compress(path, coder, signal, model, steps, lr)
        quality = spec.metric(decoded, signal.target())
        info.pop("finetune_log", None)
        extra = {**info, "point": path.point, spec.rate_key: u.value, "size": self.ctx.size}
        if not spec.weights:
            extra["anchor"] = True
        if spec.metric.name != "PSNR" or not spec.metric.higher_is_better:
            extra.update(metric=spec.metric.name, metric_unit=spec.metric.unit,
                         higher_is_better=spec.metric.higher_is_better)
        if source.rate != BPP:
            extra.update(rate_unit=source.rate.name, rate_label=source.rate.label, signal=source.kind)
        opts = path.sinr
        elements = signal.rate_elements
        r = Result(method=u.method, with_sinr=opts is not None, signal=name, config={**coder.config(), **self.record},
                   sinr=None if opts is None else opts.to_dict(), bytes=len(data), elements=elements,
                   bpp=source.rate.of(len(data), elements), psnr=quality, psnr_fitted=fitted, fit_seconds=fit_s,
                   encode_seconds=enc_s, decode_seconds=dec_s, steps=int(steps if steps is not None else cfg.steps),
                   finetune_steps=cfg.finetune_steps if spec.weights else 0,
                   device=str(self.dev) if spec.weights else "cpu", extra=extra)
        if self.streams_dir is not None:
            stem = f"{r.label}_{name}_{path.point.replace('=', '').replace(',', '_')}"
            if opts is not None:
                stem += f"_s{opts.sparsity}_b{opts.value_bits}"
            file = Path(self.streams_dir) / f"{stem}{spec.suffix}"
            file.write_bytes(data)
            r.extra["stream"] = str(file)
        sinr_txt = "" if opts is None else f" s={opts.sparsity} bits={opts.value_bits}"
        rate_txt = "" if source.rate.per is None else f"{r.bpp:.3f} {source.rate.name}, "
        unit = spec.metric.unit
        q_txt = f"{spec.metric.name} {r.psnr:.3f}" if not unit else f"{r.psnr:.2f} {unit}"
        fit_txt = "" if fitted is None else f"fitted {fitted:.{3 if not unit else 2}f}; fit {fit_s:.1f}s, "
        self.log(f"{r.label:<12} {name:<10} {path.point:<10}{sinr_txt}: {r.bytes} B, {rate_txt}{q_txt} "
                 f"({fit_txt}encode {enc_s:.1f}s, decode {dec_s:.2f}s)")
        return r


def _encode(method: str, codec: Any, signal: Signal) -> tuple[bytes, dict[str, Any], float, np.ndarray, float]:
    """``(file, info, encode seconds, decoded signal, decode seconds)`` of a codec without a network, its
    decoding held to the protocol (:func:`~sinr_adapters.framework.protocol.check_rendering`)."""
    cpu = torch.device("cpu")
    data, enc_s = _timed(cpu, codec.encode, signal)
    decoded, dec_s = _timed(cpu, codec.decode, data)
    decoded = check_rendering(decoded, signal.target().shape, adapter=method, method="decode")
    hook = getattr(codec, "stream_info", None)
    info = dict(hook(data)) if callable(hook) else {}
    return data, info, enc_s, decoded, dec_s
