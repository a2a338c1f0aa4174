"""Rate–distortion harness: fit, compress each way (with and without SINR), decode, measure, report.

For every method, rate point (:data:`RATE_KNOBS`: COIN/INRIC width, COIN++ latent length, SHACIRA table
size) and image the network is fitted **once**; then each compression path starts from
a copy of that fitted network and gets the **same number of fine-tuning steps** through the quantizer
its stored values will meet (straight-through): the method's own storage (COIN: float16; INRIC:
per-tensor uniform integers; COIN++: its latent quantizer; SHACIRA: rounded latents with the rate
penalty) without SINR, and SINR (sparse values, support fixed) with it. Bytes are
``len()`` of the stream written; PSNR is measured on the decoded image (clamped, rounded to 8 bits)
against the original 8-bit image, the same way for every method.

:func:`run` returns :class:`~sinr_adapters.base.Result` records; :func:`write_outputs` writes
``results.json`` (CompressAI-style ``{"name", "description", "results": {column: [per rate point]}}``
plus the configuration and the machine), ``results.csv``, ``results.md`` and ``rd.png``.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import nets, rd
from .base import INRAdapter, Result, Signal, SINROptions
from .images import IMAGES, META_IMAGES, load_image

__all__ = ["METHODS", "RATE_KNOBS", "EvalConfig", "comparisons_at_equal_psnr", "environment", "markdown_table",
           "plot_rd", "rate_points", "run", "summary", "write_outputs"]

METHODS = ("coin", "inric", "coinpp", "shacira")
RATE_KNOBS = {"coin": "width", "inric": "width", "coinpp": "latent_dim", "shacira": "log2_table_size"}
"""The configuration knob each method's rate points sweep (one curve point per value)."""
BITS_KEYS = {"coin": "bits", "inric": "bits", "coinpp": "bits", "shacira": "mlp_bits"}
"""The configuration key of each method's storage bits (the fair baseline's bit-width search)."""


@dataclass(kw_only=True)
class EvalConfig:
    """What :func:`run` does (every field is a ``sinr evaluate`` option).

    Attributes
    ----------
    methods : list of str
        Any of ``"coin"``, ``"inric"``, ``"coinpp"``, ``"shacira"`` (:data:`METHODS`).
    images : list of str
        Bundled scikit-image names (:data:`sinr_adapters.images.IMAGES`).
    size : int
        Side of the centre-cropped, resized square images.
    widths : list of int
        Hidden widths of COIN and INRIC (their rate points: one per width and path).
    layers : int
        Sine layers (COIN's ``num_layers``; INRIC gets ``hidden_layers = layers - 1``, the same shape).
    steps, lr, batch_size
        Fitting: Adam steps, learning rate (None: the adapter's ``default_lr``; COIN/INRIC 1e-3,
        SHACIRA 1e-2), mini-batch size (None: full batch; also used by the fine-tuning). COIN++ fits a
        signal by its inner loop instead (``coinpp_inner_steps`` SGD steps on the latents).
    finetune_steps : int
        Fine-tuning steps after compression starts, the same for every path.
    finetune_lr, sinr_lr : float or None
        Learning rates of the fine-tuning without / with SINR (None: the adapter's defaults).
    sparsity, value_bits : lists
        SINR operating points (every combination is one more rate point per method rate point).
    dictionary_ratio : float
        SINR ``k2 / k1``.
    sinr_entropy, index_coding : str
        SINR's entropy back end (``"brotli"``, ``"rans"``) and index coding (``"delta"``, ``"raw"``).
    with_sinr, without_sinr : bool
        Which paths to run.
    baseline_bits : list of int
        The bit-width search of the path without SINR (issue 7's fair baseline): one more rate point per
        value, with the method's storage at that many bits (COIN: the hidden matrices as uniform integers,
        16 = COIN's float16; INRIC: its per-tensor quantizer; COIN++: its latent quantizer, 2..8;
        SHACIRA: its decoder and MLP, ``mlp_bits``: 32/16 floats or 2..15 uniform integers).
        Empty: the method's own setting only.
    target_psnr : float or None
        Also report, per method and image, the smallest stream reaching this PSNR (dB) with and without
        SINR among the paths run (:func:`sinr_adapters.tune.smallest_meeting`).
    inric_bits, inric_ff_dims, inric_encoding_scale, inric_l1
        INRIC's quantizer bits and positional encoding.
    inric_meta_steps : int
        Reptile steps for INRIC's meta-learned initialisation (0: none), learnt per width on
        ``meta_images`` at the same size (never on an evaluated image).
    coinpp_latent_dims : list of int
        COIN++'s rate points: latent length per patch (one base network meta-learned per value).
    coinpp_width, coinpp_layers, coinpp_patch, coinpp_bits
        COIN++'s base network width and depth (layers incl. the output layer), patch side in pixels,
        latent quantizer bits (5-6 in COIN++).
    coinpp_inner_steps : int
        SGD steps on the latents from zero, in meta-learning and per image (COIN++: 3).
    coinpp_meta_steps, coinpp_meta_lr, coinpp_meta_batch
        MAML outer steps, Adam learning rate and crops per step of the base network's meta-learning on
        ``meta_images`` (never on an evaluated image); the quantizer is calibrated on the same images.
    coinpp_base : str or None
        A base file written by ``COINppAdapter.save_base``: skip meta-learning and use it (its latent
        length is then the only COIN++ rate point).
    shacira_table_sizes : list of int
        SHACIRA's rate points: ``log2`` of the largest latent table per level.
    shacira_levels, shacira_base_resolution, shacira_hidden, shacira_rate_weight
        Hash-grid levels, coarsest resolution (the finest is ``size``), MLP width, entropy-penalty
        weight lambda.
    shacira_sinr_latents : bool
        With SINR, code the latent tables too (not only the MLP's weight matrices).
    device : str
        ``auto``, ``cpu``, ``cuda``.
    seed : int
        Network initialisation and dictionary seed.
    threads : int or None
        ``torch.set_num_threads`` (None: torch's default).
    """

    methods: list[str] = field(default_factory=lambda: ["coin"])
    images: list[str] = field(default_factory=lambda: ["astronaut"])
    size: int = 64
    widths: list[int] = field(default_factory=lambda: [16, 32])
    layers: int = 3
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
    target_psnr: float | None = None
    inric_bits: int = 8
    inric_ff_dims: int = 16
    inric_encoding_scale: float = 1.4
    inric_l1: float = 1e-6
    inric_meta_steps: int = 0
    meta_images: list[str] = field(default_factory=lambda: list(META_IMAGES))
    coinpp_latent_dims: list[int] = field(default_factory=lambda: [8, 16])
    coinpp_width: int = 32
    coinpp_layers: int = 4
    coinpp_patch: int = 16
    coinpp_bits: int = 5
    coinpp_inner_steps: int = 3
    coinpp_meta_steps: int = 300
    coinpp_meta_lr: float = 1e-3
    coinpp_meta_batch: int = 16
    coinpp_base: str | None = None
    shacira_table_sizes: list[int] = field(default_factory=lambda: [8, 10])
    shacira_levels: int = 8
    shacira_base_resolution: int = 4
    shacira_hidden: int = 16
    shacira_rate_weight: float = 2e-4
    shacira_sinr_latents: bool = False
    device: str = "auto"
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ValueError(f"unknown method(s) {bad}; the harness knows {list(METHODS)}")
        bad = [i for i in self.images if i not in IMAGES]
        if bad:
            raise ValueError(f"unknown image(s) {bad}; bundled: {', '.join(IMAGES)}")
        if not self.methods or not self.images or not self.widths:
            raise ValueError("methods, images and widths must not be empty")
        if self.size < 4 or self.layers < 1 or self.steps < 0 or self.finetune_steps < 0:
            raise ValueError("size must be >= 4, layers >= 1, steps and finetune_steps >= 0")
        if any(w < 1 for w in self.widths):
            raise ValueError("widths must be >= 1")
        if "coinpp" in self.methods:
            if self.coinpp_base is None and self.coinpp_meta_steps < 1:
                raise ValueError("COIN++ needs a base network: set coinpp_meta_steps >= 1 (meta-learn one) "
                                 "or coinpp_base (a file written by COINppAdapter.save_base)")
            if self.coinpp_patch > self.size:
                raise ValueError(f"coinpp_patch ({self.coinpp_patch}) is larger than the images ({self.size})")
            if not self.coinpp_latent_dims or any(d < 1 for d in self.coinpp_latent_dims):
                raise ValueError("coinpp_latent_dims must be a non-empty list of integers >= 1")
        if "shacira" in self.methods and (not self.shacira_table_sizes
                                          or any(not 2 <= t <= 24 for t in self.shacira_table_sizes)):
            raise ValueError("shacira_table_sizes must be a non-empty list of integers in 2..24")
        if self._needs_meta_images() and not self.held_out_images():
            raise ValueError("meta-learning needs bundled images that are not evaluated (meta_images)")
        if not (self.with_sinr or self.without_sinr):
            raise ValueError("nothing to do: both the with- and the without-SINR path are off")
        for s in self.sparsity:
            for b in self.value_bits:
                SINROptions(sparsity=s, value_bits=b, dictionary_ratio=self.dictionary_ratio,
                            entropy=self.sinr_entropy, index_coding=self.index_coding)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def held_out_images(self) -> list[str]:
        """``meta_images`` minus the evaluated images (what meta-learning may train on)."""
        return [n for n in self.meta_images if n not in self.images]

    def _needs_meta_images(self) -> bool:
        return (("inric" in self.methods and self.inric_meta_steps > 0)
                or ("coinpp" in self.methods and self.coinpp_base is None))


def environment(device: str = "auto") -> dict[str, Any]:
    """The machine a run was measured on (stored with the results)."""
    dev = nets.resolve_device(device)
    env = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(dev)}
    if dev.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(dev)
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def rate_points(method: str, cfg: EvalConfig) -> list[tuple[str, int, INRAdapter]]:
    """``(knob, value, adapter)`` per rate point of ``method`` (:data:`RATE_KNOBS` names the knob).

    Adapters that need shared state (COIN++'s base network, INRIC's meta-learned θ0) come back without
    it; :func:`run` prepares them.
    """
    if method == "coin":
        from .coin import COINAdapter

        return [("width", w, COINAdapter(width=w, layers=cfg.layers)) for w in cfg.widths]
    if method == "inric":
        from .inric import INRICAdapter

        return [("width", w, INRICAdapter(hidden_features=w, hidden_layers=cfg.layers - 1,
                                          ff_dims=cfg.inric_ff_dims, encoding_scale=cfg.inric_encoding_scale,
                                          bits=cfg.inric_bits, l1=cfg.inric_l1)) for w in cfg.widths]
    if method == "coinpp":
        from .coinpp import COINppAdapter

        if cfg.coinpp_base is not None:
            a = COINppAdapter.from_base_file(cfg.coinpp_base)
            return [("latent_dim", a.latent_dim, a)]
        return [("latent_dim", d, COINppAdapter(width=cfg.coinpp_width, layers=cfg.coinpp_layers, latent_dim=d,
                                                patch=cfg.coinpp_patch, bits=cfg.coinpp_bits,
                                                inner_steps=cfg.coinpp_inner_steps))
                for d in cfg.coinpp_latent_dims]
    if method == "shacira":
        from .shacira import SHACIRAAdapter

        return [("log2_table_size", t, SHACIRAAdapter(
            levels=cfg.shacira_levels, base_resolution=min(cfg.shacira_base_resolution, cfg.size),
            finest_resolution=cfg.size, log2_table_size=t, hidden=cfg.shacira_hidden,
            rate_weight=cfg.shacira_rate_weight, sinr_latents=cfg.shacira_sinr_latents))
                for t in cfg.shacira_table_sizes]
    raise ValueError(f"unknown method {method!r}; the harness knows {list(METHODS)}")


def _prepare(method: str, adapter: INRAdapter, cfg: EvalConfig, *, progress: bool | None,
             log: Callable[[str], None], point: str, dev: torch.device) -> tuple[INRAdapter, dict[str, Any]]:
    """Learn what a method shares between images (on held-out images only); returns the adapter and a
    record of it for the results' configuration."""
    held_out = cfg.held_out_images()
    if method == "inric" and cfg.inric_meta_steps > 0:
        adapter, secs = _timed(lambda: adapter.meta_learn(
            [load_image(n, cfg.size) for n in held_out], outer_steps=cfg.inric_meta_steps,
            device=cfg.device, seed=cfg.seed, progress=progress), dev)
        log(f"{method} {point}: meta-learned theta0 on {held_out} in {secs:.1f}s")
        return adapter, {"meta_images": held_out, "meta_steps": cfg.inric_meta_steps, "meta_seconds": secs}
    if method == "coinpp" and cfg.coinpp_base is None:
        adapter, secs = _timed(lambda: adapter.meta_learn(
            [load_image(n, cfg.size) for n in held_out], outer_steps=cfg.coinpp_meta_steps,
            batch_size=cfg.coinpp_meta_batch, outer_lr=cfg.coinpp_meta_lr, device=cfg.device, seed=cfg.seed,
            progress=progress), dev)
        log(f"{method} {point}: meta-learned the base network on {held_out} in {secs:.1f}s "
            f"(crop PSNR after the inner loop {adapter.meta_info.get('final_psnr', float('nan')):.2f} dB)")
        return adapter, {"meta_images": held_out, "meta_steps": cfg.coinpp_meta_steps, "meta_seconds": secs,
                         "base_fingerprint": adapter.base_fingerprint()}
    if method == "coinpp":
        return adapter, {"base_file": cfg.coinpp_base, "base_fingerprint": adapter.base_fingerprint()}
    return adapter, {}


def _baselines(method: str, adapter: INRAdapter, cfg: EvalConfig, point: str
               ) -> list[tuple[INRAdapter, None, str]]:
    """The without-SINR paths of one rate point: the method as configured, or one per ``baseline_bits``."""
    if not cfg.baseline_bits:
        return [(adapter, None, point)]
    key = BITS_KEYS[method]
    return [(adapter.with_config({**adapter.config(), key: b}), None, f"{point},{key}={b}")
            for b in cfg.baseline_bits]


def _fit_steps(method: str, adapter: INRAdapter, cfg: EvalConfig) -> int:
    """COIN++ fits a signal by its inner loop (the steps it was meta-learned for); the others by ``steps``."""
    return adapter.inner_steps if method == "coinpp" else cfg.steps


def _fit(method: str, adapter: INRAdapter, signal: Signal, cfg: EvalConfig, progress: bool | None):
    lr = None if method == "coinpp" else cfg.lr  # COIN++: its inner-loop learning rate
    return adapter.fit(signal, steps=_fit_steps(method, adapter, cfg), lr=lr, batch_size=cfg.batch_size,
                       device=cfg.device, progress=progress, seed=cfg.seed)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    nets.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    nets.synchronize(device)
    return out, time.perf_counter() - t0


def run(cfg: EvalConfig, *, progress: bool | None = None, log: Callable[[str], None] | None = None,
        streams_dir: str | os.PathLike | None = None) -> list[Result]:
    """Run the harness; ``log`` receives one line per rate point (default: standard error).

    With ``streams_dir`` every compressed stream is also written there (``<label>_<image>_<knob><value>[_s<S>_b<B>].sia``;
    ``Result.extra["stream"]`` names the file), so the bytes counted can be checked against the files, and so
    is the shared state a stream needs to decode (COIN++'s base network, INRIC's θ0, when meta-learned here:
    ``<method>_<knob><value>_base.npz`` / ``_init.npz``; ``Result.config["shared_file"]`` names it).
    """
    if log is None:
        def log(msg: str) -> None:
            print(msg, file=sys.stderr, flush=True)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    dev = nets.resolve_device(cfg.device)
    images = {name: load_image(name, cfg.size) for name in cfg.images}
    pixels = cfg.size * cfg.size
    results: list[Result] = []
    if streams_dir is not None:
        Path(streams_dir).mkdir(parents=True, exist_ok=True)
    for method in cfg.methods:
        for knob, value, adapter in rate_points(method, cfg):
            point = f"{knob}={value}"
            adapter, extra_cfg = _prepare(method, adapter, cfg, progress=progress, log=log, point=point, dev=dev)
            if streams_dir is not None and "meta_steps" in extra_cfg:  # the shared state the streams need
                path = Path(streams_dir) / f"{method}_{knob}{value}_{'base' if method == 'coinpp' else 'init'}.npz"
                (adapter.save_base if method == "coinpp" else adapter.save_init)(path)
                extra_cfg["shared_file"] = str(path)
            fit_steps = _fit_steps(method, adapter, cfg)
            for image_name, image in images.items():
                signal = adapter.signal_from_image(image, name=image_name)
                (model, fit_log), fit_s = _timed(lambda: _fit(method, adapter, signal, cfg, progress), dev)
                psnr_fitted = adapter.psnr(model, signal)
                paths: list[tuple[INRAdapter, SINROptions | None, str]] = []
                if cfg.without_sinr:
                    paths += _baselines(method, adapter, cfg, point)
                if cfg.with_sinr:
                    paths += [(adapter, SINROptions(sparsity=s, value_bits=b, dictionary_ratio=cfg.dictionary_ratio,
                                                    entropy=cfg.sinr_entropy, index_coding=cfg.index_coding,
                                                    seed=cfg.seed, device=cfg.device), point)
                              for s in cfg.sparsity for b in cfg.value_bits]
                for coder, opts, path_point in paths:
                    (data, info), enc_s = _timed(lambda: coder.compress_with_info(
                        copy.deepcopy(model), signal, sinr=opts, finetune_steps=cfg.finetune_steps,
                        finetune_lr=cfg.finetune_lr, sinr_lr=cfg.sinr_lr, batch_size=cfg.batch_size,
                        progress=progress), dev)
                    decoded, dec_s = _timed(lambda: coder.decode(data, device=cfg.device), dev)
                    psnr = nets.psnr_8bit(torch.from_numpy(decoded), signal.unit_values().cpu())
                    info.pop("finetune_log", None)
                    r = Result(method=method, with_sinr=opts is not None, image=image_name,
                               config={**coder.config(), **extra_cfg},
                               sinr=None if opts is None else opts.to_dict(), bytes=len(data), pixels=pixels,
                               bpp=8.0 * len(data) / pixels, psnr=psnr, psnr_fitted=psnr_fitted,
                               fit_seconds=fit_s, encode_seconds=enc_s, decode_seconds=dec_s,
                               steps=fit_steps, finetune_steps=cfg.finetune_steps, device=str(dev),
                               extra={**info, "point": path_point, knob: value, "size": cfg.size})
                    if streams_dir is not None:
                        stem = f"{r.label}_{image_name}_{path_point.replace('=', '').replace(',', '_')}"
                        if opts is not None:
                            stem += f"_s{opts.sparsity}_b{opts.value_bits}"
                        path = Path(streams_dir) / f"{stem}.sia"
                        path.write_bytes(data)
                        r.extra["stream"] = str(path)
                    results.append(r)
                    sinr_txt = "" if opts is None else f" s={opts.sparsity} bits={opts.value_bits}"
                    log(f"{r.label:<12} {image_name:<10} {path_point:<10}{sinr_txt}: {r.bytes} B, "
                        f"{r.bpp:.3f} bpp, {r.psnr:.2f} dB (fitted {psnr_fitted:.2f} dB; "
                        f"fit {fit_s:.1f}s, encode {enc_s:.1f}s, decode {dec_s:.2f}s)")
    return results


# ------------------------------------------------------------------------------------------------------
# reporting
# ------------------------------------------------------------------------------------------------------
def _point_key(r: Result) -> tuple:
    s = r.sinr or {}
    return (r.label, r.rate_point, s.get("sparsity"), s.get("value_bits"))


def summary(results: Sequence[Result]) -> list[dict[str, Any]]:
    """Mean bpp and PSNR over images per rate point (method ± SINR, point, sparsity, value bits)."""
    groups: dict[tuple, list[Result]] = {}
    for r in results:
        groups.setdefault(_point_key(r), []).append(r)
    rows = []
    for (label, point, s, bits), rs in groups.items():
        rows.append({"label": label, "point": point, "sparsity": s, "value_bits": bits, "images": len(rs),
                     "bytes": float(np.mean([r.bytes for r in rs])), "bpp": float(np.mean([r.bpp for r in rs])),
                     "psnr": float(np.mean([r.psnr for r in rs])),
                     "psnr_fitted": float(np.mean([r.psnr_fitted for r in rs])),
                     "encode_seconds": float(np.mean([r.encode_seconds for r in rs]))})
    rows.sort(key=lambda d: (d["label"], d["bpp"]))
    return rows


def comparisons_at_equal_psnr(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """SINR's saving at equal PSNR (:func:`sinr_adapters.rd.savings_report`) against each method's whole
    curve without SINR and, when ``baseline_bits`` made several storage settings, against each alone
    (method ``"coin (bits=16)"``: COIN as published)."""
    out = rd.savings_report(rows)
    variants: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in rows:
        if not d["label"].endswith("+sinr") and "," in str(d["point"]):
            variants.setdefault((d["label"], str(d["point"]).split(",", 1)[1]), []).append(d)
    if len({tag for _, tag in variants}) > 1:
        for (label, tag), plain in sorted(variants.items()):
            name = f"{label} ({tag})"
            sub = [{**d, "label": name} for d in plain]
            sub += [{**d, "label": name + "+sinr"} for d in rows if d["label"] == label + "+sinr"]
            out += rd.savings_report(sub)
    return out


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.{nd}f}"
    return str(v)


def markdown_table(results: Sequence[Result], *, target_psnr: float | None = None) -> str:
    """Per-image table, the mean over images per rate point, SINR's saving at equal PSNR and, with
    ``target_psnr``, the smallest stream reaching it per method and image."""
    head = ("| method | image | rate point | sparsity | value bits | bytes | bpp | PSNR (dB) | fitted PSNR (dB) "
            "| fit s | encode s | decode s |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in sorted(results, key=lambda r: (r.label, r.image, r.bpp)):
        s = r.sinr or {}
        lines.append(f"| {r.label} | {r.image} | {r.rate_point} | {_fmt(s.get('sparsity'))} | "
                     f"{_fmt(s.get('value_bits'))} | {r.bytes} | {r.bpp:.3f} | {_fmt(r.psnr)} | "
                     f"{_fmt(r.psnr_fitted)} | {r.fit_seconds:.1f} | {r.encode_seconds:.1f} | "
                     f"{r.decode_seconds:.2f} |")
    out = head + "\n".join(lines) + "\n"
    rows = summary(results)
    if len({r.image for r in results}) > 1:
        out += ("\nMean over images:\n\n| method | rate point | sparsity | value bits | bpp | PSNR (dB) |\n"
                "|---|---|---|---|---|---|\n")
        out += "\n".join(f"| {d['label']} | {d['point']} | {_fmt(d['sparsity'])} | {_fmt(d['value_bits'])} | "
                         f"{d['bpp']:.3f} | {_fmt(d['psnr'])} |" for d in rows) + "\n"
    comparisons = comparisons_at_equal_psnr(rows)
    if comparisons:
        out += ("\nSINR against the method alone at equal PSNR (mean curves, Pareto fronts, log-bpp interpolated; "
                "BD-rate < 0: fewer bits; '>=': SINR is above the method's best PSNR at fewer bits, a lower bound):\n\n| method | best saving | at PSNR (dB) | bpp with SINR | bpp without "
                "| SINR points compared | BD-rate |\n|---|---|---|---|---|---|---|\n")
        for c in comparisons:
            if c["best_saving"] is None:
                lo_hi = c["anchor_quality_range"]
                rng = "–" if lo_hi is None else f"{lo_hi[0]:.2f}–{lo_hi[1]:.2f} dB"
                out += (f"| {c['method']} | no SINR point inside the method's PSNR range ({rng}) | – | – | – | "
                        f"0 of {c['test_points']} | – |\n")
                continue
            bd = "–" if c["bd_rate"] is None else f"{100 * c['bd_rate']:+.1f}%"
            bound = ">= " if c["best_is_bound"] else ""
            out += (f"| {c['method']} | {bound}{100 * c['best_saving']:+.1f}% | {c['at_quality']:.2f} | {c['at_rate']:.3f} | "
                    f"{c['anchor_rate']:.3f} | {c['points_compared']} of {c['test_points']} | {bd} |\n")
    if target_psnr is not None:
        from .tune import smallest_meeting

        out += (f"\nSmallest stream reaching {target_psnr:g} dB (among the paths run):\n\n| method | image | bytes "
                "without SINR | its point | bytes with SINR | its point | saving |\n"
                "|---|---|---|---|---|---|---|\n")
        for t in smallest_meeting(results, target_psnr):
            sav = "–" if t["saving"] is None else f"{100 * t['saving']:+.1f}%"
            out += (f"| {t['method']} | {t['image']} | {_fmt(t['plain_bytes'])} | {_fmt(t['plain_point'])} | "
                    f"{_fmt(t['sinr_bytes'])} | {_fmt(t['sinr_point'])} | {sav} |\n")
    return out


def plot_rd(results: Sequence[Result], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Rate–distortion plot (bpp vs PSNR): one curve per method ± SINR through its Pareto-optimal rate
    points (mean over images; dominated points hollow), faint points per image. Uses matplotlib's Agg
    backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    rows = summary(results)
    labels = sorted({d["label"] for d in rows})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, label in enumerate(labels):
        c = colors[i % len(colors)]
        pts = [(d["bpp"], d["psnr"]) for d in rows if d["label"] == label]
        front = rd.pareto_front(pts)  # the curve is the Pareto front; dominated operating points are hollow
        ax.plot([b for b, _ in front], [q for _, q in front], marker="o", color=c, label=label,
                linestyle="--" if label.endswith("+sinr") else "-")
        rest = [p for p in pts if p not in front]
        if rest:
            ax.scatter([b for b, _ in rest], [q for _, q in rest], facecolors="none", edgecolors=c)
        per = [r for r in results if r.label == label]
        if len({r.image for r in per}) > 1:
            ax.scatter([r.bpp for r in per], [r.psnr for r in per], color=c, alpha=0.25, s=12)
    ax.set_xlabel("bits per pixel (bytes written × 8 / pixels)")
    ax.set_ylabel("PSNR (dB), decoded 8-bit image")
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(results: Sequence[Result], out_dir: str | os.PathLike, *, config: EvalConfig | None = None,
                  name: str = "sinr-evaluate", description: str | None = None) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv``, ``results.md`` and ``rd.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r.to_dict() for r in results]
    columns: dict[str, list] = {}
    for d in rows:
        for k, v in d.items():
            columns.setdefault(k, []).append(v)
    if description is None:
        description = ("INR methods with and without SINR on bundled scikit-image images; bytes are the "
                       "stream written, PSNR on the decoded 8-bit image")
    env = environment(config.device if config else "auto")
    rows_summary = summary(results)
    doc = {"name": name, "description": description, "results": columns,
           "summary": rows_summary, "sinr_savings": comparisons_at_equal_psnr(rows_summary),
           "config": config.to_dict() if config else None, "environment": env}
    if config is not None and config.target_psnr is not None:
        from .tune import smallest_meeting

        doc["target"] = smallest_meeting(results, config.target_psnr)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "md": out / "results.md",
             "png": out / "rd.png"}
    paths["json"].write_text(json.dumps(doc, indent=2, allow_nan=True) + "\n")
    flat = [r.to_row() for r in results]
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(flat[0]) if flat else ["method"])
        writer.writeheader()
        writer.writerows(flat)
    machine = f"{env['device']}" + (f" ({env['gpu']})" if "gpu" in env else
                                    f", {env['cpu_count']} CPU cores, {env['torch_threads']} torch threads")
    target = config.target_psnr if config else None
    md = (f"# {name}\n\n{description}.\n\nMachine: {machine}; torch {env['torch']}.\n\n"
          + markdown_table(results, target_psnr=target))
    paths["md"].write_text(md)
    title = None
    if config is not None:
        title = (f"{config.size}px, {config.layers} layers, {config.steps} fit + {config.finetune_steps} "
                 f"fine-tune steps, {', '.join(config.images)}")
    plot_rd(results, paths["png"], title=title)
    return paths
