"""An evaluation's results as a reader wants them: the mean per rate point, SINR's saving at equal quality,
a Markdown table, a rate–distortion plot, and the files :func:`write_outputs` writes.

Columns and axes follow the results' own units (``extra["rate_unit"]``, ``extra["metric"]``): bits per
pixel and PSNR for images, bytes and IoU for occupancy, and so on. The comparison rule is
:mod:`sinr_adapters.harness.rd`'s: the method through the upper convex hull of its points, SINR through its
measured Pareto front. Methods without a network (the classic codecs) are the reference curves: every INR
path's BD-rate against them and against the best of them (:mod:`sinr_adapters.harness.anchors`) follows the
tables, and the plot draws them in grey.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sinr_codecs.sparse import resolve_device

from ..framework.results import Result
from ..framework.spec import BPP
from . import anchors, rd
from .plugins import unavailable

if TYPE_CHECKING:
    from .config import EvalConfig

__all__ = ["comparisons_at_equal_psnr", "environment", "markdown_table", "plot_rd", "summary", "write_outputs"]


def environment(device: str = "auto", threads: int | None = None) -> dict[str, Any]:
    """The machine a run was measured on (stored with the results); ``threads``: the torch threads used."""
    dev = resolve_device(device)
    env = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
           "cpu_count": os.cpu_count(), "torch_threads": threads or torch.get_num_threads(), "device": str(dev)}
    if dev.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(dev)
    else:
        env["cpu"] = _cpu_model()
    return env


def _cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _point_key(r: Result) -> tuple[Any, ...]:
    s = r.sinr or {}
    return (r.label, r.rate_point, s.get("sparsity"), s.get("value_bits"))


def summary(results: Sequence[Result]) -> list[dict[str, Any]]:
    """Mean rate and quality over signals per rate point (method ± SINR, point, sparsity, value bits).

    The quality column is ``psnr`` (the adapter's metric: PSNR unless it describes another; then
    ``higher_is_better`` says its orientation, ``metric`` and ``rate_unit`` name it); ``anchor`` marks the
    points of a method without a network, whose ``psnr_fitted`` is None."""
    groups: dict[tuple[Any, ...], list[Result]] = {}
    for r in results:
        groups.setdefault(_point_key(r), []).append(r)
    rows = []
    for (label, point, s, bits), rs in groups.items():
        fitted = [r.psnr_fitted for r in rs if r.psnr_fitted is not None]
        rows.append({"label": label, "method": rs[0].method, "point": point, "sparsity": s, "value_bits": bits,
                     "signals": len(rs), "bytes": float(np.mean([r.bytes for r in rs])),
                     "bpp": float(np.mean([r.bpp for r in rs])), "psnr": float(np.mean([r.psnr for r in rs])),
                     "psnr_fitted": float(np.mean(fitted)) if fitted else None,
                     "encode_seconds": float(np.mean([r.encode_seconds for r in rs])),
                     "higher_is_better": all(r.extra.get("higher_is_better", True) for r in rs),
                     "anchor": all(bool(r.extra.get("anchor")) for r in rs),
                     "metric": rs[0].extra.get("metric", "PSNR"), "rate_unit": rs[0].extra.get("rate_unit", "bpp")})
    rows.sort(key=lambda d: (d["label"], d["bpp"]))
    return rows


def comparisons_at_equal_psnr(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """SINR's saving at equal PSNR (:func:`sinr_adapters.harness.rd.savings_report`) against each method's whole
    curve without SINR and, when ``baseline_bits`` made several storage settings, against each alone
    (method ``"coin (bits=16)"``: COIN as published)."""
    out = rd.savings_report(rows)
    variants = rd.setting_variants(rows)
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


def _metric_label(results: Sequence[Result]) -> str:
    names = {(r.extra.get("metric", "PSNR"), r.extra.get("metric_unit", "dB")) for r in results}
    if len(names) == 1:
        name, unit = names.pop()
        return f"{name} ({unit})" if unit else name
    return "quality"


def _rate_name(results: Sequence[Result]) -> str:
    """The rate column's name: ``bpp`` unless the results carry another rate unit (one for all)."""
    names = {r.extra.get("rate_unit", "bpp") for r in results}
    return names.pop() if len(names) == 1 else "rate"


def _rate_label(results: Sequence[Result]) -> str:
    labels = {r.extra.get("rate_label", BPP.label) for r in results}
    return labels.pop() if len(labels) == 1 else "rate (each method's unit)"


def _signal_word(results: Sequence[Result]) -> str:
    kinds = {r.extra.get("signal", "image") for r in results}
    return "image" if kinds <= {"image"} else "signal"


def _metric_short(results: Sequence[Result]) -> str:
    names = {r.extra.get("metric", "PSNR") for r in results}
    return names.pop() if len(names) == 1 else "quality"


def markdown_table(results: Sequence[Result], *, target_psnr: float | None = None) -> str:
    """Per-signal table, the mean over signals per rate point, SINR's saving at equal quality, every INR path's
    BD-rate against the classic codecs of the run (:mod:`sinr_adapters.harness.anchors`) and, with
    ``target_psnr``, the smallest stream reaching it per method and signal. Column names follow the
    results' metric and rate unit (``PSNR (dB)`` and ``bpp`` for images)."""
    q = _metric_label(results)
    rate, word, qs = _rate_name(results), _signal_word(results), _metric_short(results)
    nd = 3 if all(r.extra.get("metric_unit", "dB") == "" for r in results) else 2   # a ratio (IoU)
    rate_col = "" if rate == "bytes" else f" {rate} |"
    head = (f"| method | {word} | rate point | sparsity | value bits | bytes |{rate_col} {q} | fitted {q} "
            "| fit s | encode s | decode s |\n|---|---|---|---|---|---|" + ("" if rate == "bytes" else "---|")
            + "---|---|---|---|---|\n")
    lines = []
    for r in sorted(results, key=lambda r: (r.label, r.signal, r.bpp)):
        s = r.sinr or {}
        rate_val = "" if rate == "bytes" else f" {r.bpp:.3f} |"
        lines.append(f"| {r.label} | {r.signal} | {r.rate_point} | {_fmt(s.get('sparsity'))} | "
                     f"{_fmt(s.get('value_bits'))} | {r.bytes} |{rate_val} {_fmt(r.psnr, nd)} | "
                     f"{_fmt(r.psnr_fitted, nd)} | {'–' if r.extra.get('anchor') else f'{r.fit_seconds:.1f}'} | "
                     f"{r.encode_seconds:.1f} | "
                     f"{r.decode_seconds:.2f} |")
    out = head + "\n".join(lines) + "\n"
    rows = summary(results)
    if len({r.signal for r in results}) > 1:
        out += (f"\nMean over {word}s:\n\n| method | rate point | sparsity | value bits | {rate} | {q} |\n"
                "|---|---|---|---|---|---|\n")
        out += "\n".join(f"| {d['label']} | {d['point']} | {_fmt(d['sparsity'])} | {_fmt(d['value_bits'])} | "
                         f"{d['bpp']:.3f} | {_fmt(d['psnr'], nd)} |" for d in rows) + "\n"
    comparisons = comparisons_at_equal_psnr(rows)
    if comparisons:
        out += (f"\nSINR against the method alone at equal {qs} (mean curves, log-{rate} interpolated; the method: the "
                "upper convex hull of its points, SINR: its Pareto front; BD-rate < 0: fewer bits; '>=': SINR is "
                f"above the method's best quality at fewer bits, a lower bound):\n\n| method | best saving | "
                f"at {q} | {rate} with SINR | {rate} without "
                "| SINR points compared | BD-rate |\n|---|---|---|---|---|---|---|\n")
        for c in comparisons:
            if c["best_saving"] is None:
                lo_hi = c["anchor_quality_range"]
                unit = results[0].extra.get("metric_unit", "dB") if results else "dB"
                rng = "–" if lo_hi is None else f"{lo_hi[0]:.2f}–{lo_hi[1]:.2f}{' ' + unit if unit else ''}"
                out += (f"| {c['method']} | no SINR point inside the method's {qs} range ({rng}) | – | – | – | "
                        f"0 of {c['test_points']} | – |\n")
                continue
            bd = "–" if c["bd_rate"] is None else f"{100 * c['bd_rate']:+.1f}%"
            bound = ">= " if c["best_is_bound"] else ""
            rd_ = 0 if rate == "bytes" else 3
            out += (f"| {c['method']} | {bound}{100 * c['best_saving']:+.1f}% | {c['at_quality']:.{nd}f} | "
                    f"{c['at_rate']:.{rd_}f} | {c['anchor_rate']:.{rd_}f} | {c['points_compared']} of "
                    f"{c['test_points']} | {bd} |\n")
    out += anchors.markdown(anchors.against_anchors(rows), metric=qs, rate=rate,
                            unit=results[0].extra.get("metric_unit", "dB") if results else "dB")
    if target_psnr is not None:
        from .tune import smallest_meeting

        out += (f"\nSmallest stream reaching {target_psnr:g} dB (among the paths run):\n\n| method | signal | bytes "
                "without SINR | its point | bytes with SINR | its point | saving |\n"
                "|---|---|---|---|---|---|---|\n")
        for t in smallest_meeting(results, target_psnr):
            sav = "–" if t["saving"] is None else f"{100 * t['saving']:+.1f}%"
            out += (f"| {t['method']} | {t['signal']} | {_fmt(t['plain_bytes'])} | {_fmt(t['plain_point'])} | "
                    f"{_fmt(t['sinr_bytes'])} | {_fmt(t['sinr_point'])} | {sav} |\n")
    return out


def plot_rd(results: Sequence[Result], path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Rate–distortion plot (rate vs quality in the results' units: bpp vs PSNR for images, bytes vs IoU
    for occupancy...), mean over signals: one curve per method through its operating
    points (the upper convex hull in log-bpp, :func:`sinr_adapters.harness.rd.operating_points`) and per method +
    SINR through its Pareto front (the comparison's rule, :mod:`sinr_adapters.harness.rd`); the other points
    hollow, faint points per signal. The classic codecs (methods without a network) are drawn in grey, dotted,
    under the INR curves, above a pale band tracing the best of them (:mod:`sinr_adapters.harness.anchors`).
    Uses matplotlib's Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    rows = summary(results)
    classic = {d["label"] for d in anchors.anchor_rows(rows)}
    labels = sorted({d["label"] for d in rows} - classic) + sorted(classic)
    colors = [c for c in plt.rcParams["axes.prop_cycle"].by_key()["color"]
              if matplotlib.colors.to_hex(c) != "#7f7f7f"]   # grey is the classic codecs' colour
    best = anchors.against_anchors(rows)["best"]
    if best:   # the best classic codec: a pale band under everything
        ax.plot([d["bpp"] for d in best], [d["psnr"] for d in best], color="0.85", linewidth=7, solid_capstyle="round",
                zorder=0, label="best classic")
    for i, label in enumerate(labels):
        k = labels.index(label) - (len(labels) - len(classic))
        c = (f"{0.25 + 0.15 * (k % 4):.2f}" if label in classic else colors[i % len(colors)])
        style: dict[str, Any] = ({"marker": "sDv^"[k % 4], "markersize": 4, "linewidth": 1, "linestyle": ":",
                                  "zorder": 1} if label in classic else
                                 {"marker": "o", "linestyle": "--" if label.endswith("+sinr") else "-", "zorder": 2})
        pts = [(d["bpp"], d["psnr"]) for d in rows if d["label"] == label]
        hib = all(d.get("higher_is_better", True) for d in rows if d["label"] == label)
        # the comparisons' rules: the method's operating points (hull), SINR's and a classic codec's measured
        # Pareto fronts
        front = (rd.pareto_front(pts) if (label.endswith("+sinr") or label in classic) and hib
                 else rd.operating_points(pts, higher_is_better=hib))
        ax.plot([b for b, _ in front], [q for _, q in front], color=c, label=label, **style)
        rest = [p for p in pts if p not in front]
        if rest:
            ax.scatter([b for b, _ in rest], [q for _, q in rest], facecolors="none", edgecolors=c, s=12)
        per = [r for r in results if r.label == label]
        if len({r.signal for r in per}) > 1 and label not in classic:
            ax.scatter([r.bpp for r in per], [r.psnr for r in per], color=c, alpha=0.25, s=12)
    ax.set_xlabel(_rate_label(results))
    if _rate_name(results) == "bytes":
        ax.set_xscale("log")
    q = _metric_label(results)
    ax.set_ylabel("PSNR (dB), decoded 8-bit image" if q == "PSNR (dB)" and _signal_word(results) == "image"
                  else f"{q}, decoded signal")
    ax.grid(True, alpha=0.3)
    if labels:
        ax.legend(fontsize=7 if len(labels) > 6 else None)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def _write_text(path: Path, text: str) -> None:
    """Replace ``path`` atomically (an interrupted run never leaves half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_outputs(results: Sequence[Result], out_dir: str | os.PathLike[str], *, config: EvalConfig | None = None,
                  name: str = "sinr-evaluate", description: str | None = None,
                  complete: bool = True) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv``, ``results.md`` and (when ``complete``) ``rd.png`` into ``out_dir``.

    ``results.json`` says ``"complete": false`` while a run is still adding points (:func:`run`'s
    ``on_result``); each file is replaced atomically. Beside the results it holds the summary, SINR's savings,
    ``classic`` (every INR path against the classic codecs, :func:`sinr_adapters.harness.anchors.against_anchors`)
    and, once complete, ``skipped`` (each method of the configuration that could not run here, and why).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r.to_dict() for r in results]
    columns: dict[str, list[Any]] = {}
    for d in rows:
        for k, v in d.items():
            columns.setdefault(k, []).append(v)
    classic = " and classic codecs (whole files)" if any(r.extra.get("anchor") for r in results) else ""
    if description is None:
        if _signal_word(results) == "image" and _metric_label(results) in ("PSNR (dB)", "quality"):
            description = (f"INR methods with and without SINR{classic} on bundled scikit-image images; bytes are the "
                           "stream written, PSNR on the decoded 8-bit image")
        else:
            description = (f"INR methods with and without SINR{classic}; bytes are the stream written, the rate is "
                           f"{_rate_label(results)}, {_metric_label(results)} is measured on the decoded signal")
    env = environment(config.device if config else "auto", config.threads if config else None)
    rows_summary = summary(results)
    skipped = {m: why for m in (config.methods if config and complete else ()) if (why := unavailable(m)) is not None}
    doc = {"name": name, "description": description, "results": columns,
           "summary": rows_summary, "sinr_savings": comparisons_at_equal_psnr(rows_summary),
           "classic": anchors.against_anchors(rows_summary), "skipped": skipped,
           "config": config.to_dict() if config else None, "environment": env, "complete": complete}
    if config is not None and config.target_psnr is not None:
        from .tune import smallest_meeting

        doc["target"] = smallest_meeting(results, config.target_psnr)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "md": out / "results.md"}
    _write_text(paths["json"], json.dumps(doc, indent=2, allow_nan=True) + "\n")
    flat = [r.to_row() for r in results]
    tmp = paths["csv"].with_name("results.csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(flat[0]) if flat else ["method"])
        writer.writeheader()
        writer.writerows(flat)
    os.replace(tmp, paths["csv"])
    machine = f"{env['device']}" + (f" ({env['gpu']})" if "gpu" in env else
                                    f", {env['cpu_count']} CPU cores, {env['torch_threads']} torch threads")
    target = config.target_psnr if config else None
    state = "" if complete else "Partial: the run is still adding points.\n\n"
    state += "".join(f"Skipped {m}: {why}\n\n" for m, why in skipped.items())
    md = (f"# {name}\n\n{description}.\n\nMachine: {machine}; torch {env['torch']}.\n\n{state}"
          + markdown_table(results, target_psnr=target))
    _write_text(paths["md"], md)
    if complete:
        title = None
        if config is not None:
            size = "" if config.size is None else (f"{config.size}px, " if _signal_word(results) == "image"
                                                   else f"size {config.size}, ")
            title = (f"{size}{config.steps} fit + {config.finetune_steps} fine-tune steps, "
                     f"{', '.join(config.signals or ())}")
        paths["png"] = plot_rd(results, out / "rd.png", title=title)
    return paths
