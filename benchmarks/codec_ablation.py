"""What each knob of the `sinr` codec buys: bits per weight at equal reconstruction SNR, one idea at a time.

The weights are the hidden-to-hidden matrices of a COIN SIREN fitted to a bundled image (``--source
siren``, the default: rows = neurons, as the adapters code them) or i.i.d. Gaussian matrices
(``--source gaussian``). For every setting the script writes real streams and measures

- bits per weight = 8 × stream bytes / weights coded,
- SNR = -20·log10(‖W − Ŵ‖ / ‖W‖) in dB (20 dB = 10% relative error, 40 dB = 1%).

A *family* varies one knob over a sweep of sparsities (the rate knob); its curve is the Pareto front of
(bits/weight, SNR), and the figure reported is the **bits per weight the family needs at 20, 30 and 40 dB**
(log-linear interpolation on the front, as in :mod:`sinr_adapters.harness.rd`; ``null`` outside its range).
The peer measured in the same run is per-tensor uniform quantization + Brotli at 3–12 bits.

The base is the codec's fixed-sparsity defaults (8-bit values, k2 = 8·k1, sorted-gap indices, one
quantizer step per tensor, the codec's default entropy back end); each family changes one of them.
``--adaptive`` adds the error-bounded mode (``max_rel_error`` swept; per-vector steps, sparsity chosen per vector,
dense vectors where the dictionary does not pay; value bits do not apply).

No fine-tuning happens here: this is the codec alone. The INR-level effect (with fine-tuning) is the
harness's job (``sinr evaluate``). ``--out FILE`` also writes the run as one JSON document (``{"name",
"description", "machine", "config", "results", "points"}``: ``results`` the bits each family needs,
``points`` every measured point) with the machine measured by ``model_throughput.machine()`` and the
1-minute load average at the start and the end. Run::

    python benchmarks/codec_ablation.py                       # SIREN weights
    python benchmarks/codec_ablation.py --adaptive --out benchmarks/results/codec_ablation.json
    python benchmarks/codec_ablation.py --source gaussian --rows 256 --width 128
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import brotli
import numpy as np
import torch

from sinr_codecs.codec import SINR, relative_error
from sinr_codecs.sparse import SparseCode

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's other scripts, as modules
import model_throughput  # noqa: E402

SPARSITIES = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6)
TARGETS_DB = (20.0, 30.0, 40.0)
_DEFAULT = SINR(sparsity=0.25)
#: The codec's fixed-sparsity defaults, one quantizer step per tensor.
BASE = {"value_bits": _DEFAULT.value_bits, "dictionary_ratio": float(_DEFAULT.dictionary_ratio),
        "index_coding": _DEFAULT.index_coding, "entropy": _DEFAULT.entropy, "granularity": "tensor"}


def siren_weights(image: str, size: int, width: int, layers: int, steps: int, seed: int) -> list[np.ndarray]:
    """Hidden-to-hidden weight matrices ``(width, width)`` of a COIN SIREN fitted to a bundled image."""
    from sinr_adapters.framework.images import load_image
    from sinr_adapters.methods.coin import COINAdapter

    adapter = COINAdapter(width=width, layers=layers)
    signal = adapter.signal_from_image(load_image(image, size), name=image)
    model, log = adapter.fit(signal, steps=steps, device="cpu", progress=False, seed=seed)
    print(json.dumps({"fitted": image, "size": size, "width": width, "layers": layers, "steps": steps,
                      "psnr": round(adapter.psnr(model, signal), 3)}), file=sys.stderr)
    sd = model.state_dict()
    return [sd[n].detach().numpy().astype(np.float32) for n in adapter.sinr_tensor_names(model)]


def snr_db(w: np.ndarray, w_hat: np.ndarray) -> float:
    e = relative_error(w, w_hat)
    return math.inf if e == 0 else -20.0 * math.log10(e)


def sinr_point(mats: Sequence[np.ndarray], sparsity: float, *, value_bits: int, dictionary_ratio: float,
               index_coding: str, entropy: str, granularity: str, max_rel_error: float | None = None
               ) -> dict[str, Any]:
    """Code every matrix (its own seed), return bits/weight and SNR over all of them."""
    nbytes, num, err2, ref2, dense = 0, 0, 0.0, 0.0, 0
    t0 = time.perf_counter()
    for i, w in enumerate(mats):
        code = SparseCode.fit(w, sparsity=sparsity, dictionary_ratio=dictionary_ratio, seed=i, layout="rows",
                              max_rel_error=max_rel_error, value_bits=value_bits, device="cpu")
        gran = "vector" if max_rel_error is not None else granularity
        data = code.to_bytes(value_bits=value_bits, entropy=entropy, index_coding=index_coding, granularity=gran)
        dec = SparseCode.from_bytes(data).decode()
        dense += bool(code.dense)
        nbytes += len(data)
        num += w.size
        err2 += float(np.sum((w.astype(np.float64) - dec) ** 2))
        ref2 += float(np.sum(w.astype(np.float64) ** 2))
    rel = math.sqrt(err2 / ref2)
    return {"bits_per_weight": 8.0 * nbytes / num, "snr_db": -20 * math.log10(rel) if rel > 0 else math.inf,
            "dense_matrices": dense, "seconds": time.perf_counter() - t0}


def uniform_point(mats: Sequence[np.ndarray], bits: int) -> dict[str, Any]:
    """Per-tensor symmetric uniform quantization + byte-planed Brotli (8 bytes of scale per tensor)."""
    nbytes, num, err2, ref2 = 0, 0, 0.0, 0.0
    for w in mats:
        qmax = 2 ** (bits - 1) - 1
        step = float(np.abs(w).max()) / qmax
        q = np.rint(w / step).astype(np.int16 if bits > 8 else np.int8)
        planes = q.view(np.uint8).reshape(-1, q.itemsize).T.tobytes()
        nbytes += len(brotli.compress(planes, quality=11)) + 8
        num += w.size
        err2 += float(np.sum((w.astype(np.float64) - q * step) ** 2))
        ref2 += float(np.sum(w.astype(np.float64) ** 2))
    return {"bits_per_weight": 8.0 * nbytes / num, "snr_db": -10 * math.log10(err2 / ref2)}


def families(quick: bool) -> dict[str, dict[str, Any]]:
    """One knob changed from :data:`BASE` per family."""
    base = (f"base ({BASE['value_bits']}-bit values, k2={BASE['dictionary_ratio']:g}k1, {BASE['index_coding']}, "
            f"{BASE['entropy']})")
    fam: dict[str, dict[str, Any]] = {base: {}}
    for b in ((6, 12) if quick else (4, 6, 10, 12, 16)):
        fam[f"value_bits={b}"] = {"value_bits": b}
    for r in ((4.0,) if quick else (2.0, 4.0, 16.0, 32.0)):
        fam[f"dictionary_ratio={r:g}"] = {"dictionary_ratio": r}
    fam["index_coding=raw"] = {"index_coding": "raw"}
    fam["granularity=vector (a quantizer step per row)"] = {"granularity": "vector"}
    fam["paper (16-bit values, raw indices, brotli)"] = {"value_bits": 16, "index_coding": "raw",
                                                          "entropy": "brotli"}
    from sinr_codecs import entropy as _entropy

    for name in _entropy.BACKENDS:
        if name not in ("raw", BASE["entropy"]):
            fam[f"entropy={name}"] = {"entropy": name}
    return fam


def needed_bits(points: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    from sinr_adapters.harness.rd import pareto_front, rate_at

    front = pareto_front((p["bits_per_weight"], p["snr_db"]) for p in points)
    return {f"{t:g}dB": (None if (r := rate_at(front, t)) is None else round(r, 3)) for t in TARGETS_DB}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--source", choices=("siren", "gaussian"), default="siren", help="where the weights come from")
    p.add_argument("--image", default="astronaut", help="bundled image the SIREN is fitted to")
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--width", type=int, default=128, help="SIREN width / Gaussian row length k1")
    p.add_argument("--layers", type=int, default=4, help="SIREN sine layers (layers - 1 matrices coded)")
    p.add_argument("--steps", type=int, default=1000, help="SIREN fitting steps")
    p.add_argument("--rows", type=int, default=256, help="Gaussian: rows per matrix (3 matrices)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--adaptive", action="store_true",
                   help="also the error-bounded mode (per-vector sparsity) at matching error levels (slower)")
    p.add_argument("--quick", action="store_true", help="few families and sparsities (for tests)")
    p.add_argument("--out", default=None, help="also write the run as one JSON document here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load = [model_throughput._load()]
    if args.source == "siren":
        mats = siren_weights(args.image, args.size, args.width, args.layers, args.steps, args.seed)
    else:
        rng = np.random.default_rng(args.seed)
        mats = [rng.standard_normal((args.rows, args.width)).astype(np.float32) / math.sqrt(args.width)
                for _ in range(3)]
    sparsities = (0.1, 0.3) if args.quick else SPARSITIES
    summary, points = [], []
    for name, change in families(args.quick).items():
        opts = {**BASE, **change}
        pts = []
        for s in sparsities:
            pt = {"family": name, "sparsity": s, **opts, **sinr_point(mats, s, **opts)}
            pts.append(pt)
            points.append(pt)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in pt.items()}), flush=True)
        summary.append({"family": name, "bits_per_weight_needed": needed_bits(pts)})
    if args.adaptive:  # value bits do not apply: each row gets the largest step that meets the bound
        pts = []
        family = "error-bounded mode (max_rel_error: a step per row, dense rows where the dictionary does not pay)"
        for e in ((0.1, 0.03) if args.quick else (0.12, 0.1, 0.07, 0.05, 0.04, 0.03, 0.02, 0.01)):
            pt = {"family": family, "max_rel_error": e, **BASE, **sinr_point(mats, 0.25, **BASE, max_rel_error=e)}
            pts.append(pt)
            points.append(pt)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in pt.items()}), flush=True)
        summary.append({"family": family, "bits_per_weight_needed": needed_bits(pts)})
    pts = []
    for bits in ((4, 8) if args.quick else range(3, 13)):
        pt = {"family": "peer: uniform + brotli", "value_bits": bits, **uniform_point(mats, bits)}
        pts.append(pt)
        points.append(pt)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in pt.items()}), flush=True)
    summary.append({"family": "peer: uniform + brotli", "bits_per_weight_needed": needed_bits(pts)})
    load.append(model_throughput._load())
    machine = model_throughput.machine(load)
    print(json.dumps({"summary": summary, "source": args.source, "weights": int(sum(m.size for m in mats)),
                      "shapes": [list(m.shape) for m in mats], "machine": machine}))
    if args.out:
        config = {k: v for k, v in vars(args).items() if k != "out"}
        doc = {"name": "codec_ablation",
               "description": "bits per weight each family of sinr codec settings needs at 20/30/40 dB SNR "
                              "(Pareto front over sparsities, log-linear interpolation; null outside the "
                              "sweep), one knob changed from the base at a time, no fine-tuning; the peer is "
                              "per-tensor uniform quantization + Brotli q11 on byte planes",
               "machine": machine, "config": {**config, "base": BASE, "sparsities": list(sparsities)},
               "weights": int(sum(m.size for m in mats)), "shapes": [list(m.shape) for m in mats],
               "results": summary,
               "points": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in pt.items()} for pt in points]}
        model_throughput.write_json(doc, args.out)
    print("\n| family | " + " | ".join(f"bits/weight at {t:g} dB" for t in TARGETS_DB) + " |")
    print("|---|" + "---|" * len(TARGETS_DB))
    for row in summary:
        vals = row["bits_per_weight_needed"]
        print(f"| {row['family']} | " + " | ".join("–" if v is None else f"{v:.2f}" for v in vals.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
