"""Rate-aware compression of COIN against COIN as published and its bit-searched QAT baseline (prints JSON).

Per image and width, one network is fitted (and one more from the seeded initialisation of
:func:`sinr_adapters.rate_coding.rate_aware.seeded_init`); every path starts from a copy of it with the same number
of fine-tuning steps:

- ``coin``: COIN as published (float16, no fine-tuning);
- ``qat``: the hidden matrices as ``bits``-bit uniform integers (Brotli), quantization-aware fine-tuned,
  one rate point per ``--bits`` value (the bit-searched baseline);
- ``rate-aware``: :func:`sinr_adapters.rate_coding.rate_aware.compress` without SINR, one point per ``--lams`` value,
  steps initialised as ``--step-init`` says (default ``"fisher-relative"``, the library's default; the
  same for every path but the ``+fisher`` ones);
- ``rate-aware+SINR``: the same with SINR-coded hidden matrices (one point per lam, ``--sparsity`` and
  ``--dictionary-ratio``; with several ratios the path is ``rate-aware+SINR k2/k1=R``);
- ``rate-aware+seed``: the same as ``rate-aware`` on the network fitted from the seeded initialisation,
  coding ``theta - theta0``;
- ``rate-aware+fisher`` / ``rate-aware+fisher-relative`` (``--step-inits``): ``rate-aware`` with the steps
  initialised from the diagonal Fisher (``RateAwareOptions.step_init``);
- ``rate-aware+SINR+refine`` (``--refine-every N``): ``rate-aware+SINR`` with support refinement;
- ``qat+alloc`` (``--qat-alloc``): the ``qat`` baseline with a bit width per tensor, every tensor included
  (:func:`fisher_allocation`; ``COINAdapter(tensor_bits=...)``), one point per distinct allocation over
  ``--alloc-lams``, quantization-aware fine-tuned like ``qat``;
- ``best``: the points of ``rate-aware`` and ``rate-aware+seed`` together (the library's best path: a
  user codes both ways and keeps the smaller stream at the quality wanted).

BD-rates (:func:`sinr_adapters.harness.rd.bd_rate`, per image over the points of all widths) are printed with the
points as one JSON document. A path's curve is every point of it over all widths and rate knobs: the
anchor's is reduced to its operating points (upper convex hull in log-rate), the test curve's to its
Pareto front (``sinr_adapters.harness.rd``: the rule can favour the anchor, never the test curve). So
``best vs coin`` is the BD-rate against COIN as published over widths::

    python benchmarks/rate_aware.py --images astronaut,camera,coffee --widths 16,32,48,64 > rate_aware.json

``--merge A.json B.json ...`` measures nothing: it pools the points of earlier runs (same images) and
prints them with their BD-rates, each input listed with the machine it names (the result's ``machine`` is
theirs when they agree; an input that names none is refused). ``--out FILE`` also rewrites FILE with the
points measured so far after every point (a long run that stops early keeps them, and its machine; BD-rates
are added at the end). The machine is measured (``model_throughput.machine``: platform, CPU model, cores,
Python, torch, numpy, torch threads), with the 1-minute load average at the start and the end of a run.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's other scripts, as modules
import model_throughput  # noqa: E402


def machine(load: Sequence[float | None]) -> dict[str, Any]:
    """Where a run measured: ``model_throughput.machine()`` and the 1-minute load averages ``load``."""
    return model_throughput.machine(load)


def _load() -> float | None:
    return model_throughput._load()


def merge(paths: Sequence[str]) -> dict[str, Any]:
    """The points of earlier runs' JSON pooled, with BD-rates over them; every input listed with its machine.

    Raises
    ------
    SystemExit
        If an input names no machine (its points could not say where they were measured).
    """
    points: list[dict] = []
    inputs = []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        if not data.get("machine"):
            raise SystemExit(f"{path} names no machine: merge only runs whose JSON records where they ran")
        points += data["results"]
        inputs.append({"file": Path(path).name, "machine": data["machine"], "partial": bool(data.get("partial")),
                       "points": len(data["results"]), "config": data.get("config")})
    # one machine when the inputs name the same one (the load averages aside, which are listed per input)
    machines = [{k: v for k, v in i["machine"].items() if k != "load_average_1min"} for i in inputs]
    loads = {"load_average_1min": "per input, in merged[].machine"} if any(
        "load_average_1min" in i["machine"] for i in inputs) else {}
    same = all(m == machines[0] for m in machines)
    common = {**machines[0], **loads} if same else {"several": "see merged[].machine"}
    images = list(dict.fromkeys(p["image"] for p in points))
    return {"name": "rate_aware", "description": "COIN rate-aware compression (bpp, PSNR), merged runs",
            "machine": common, "merged": inputs, "bd_rate": bd_rates(points, images), "results": points}


def _psnr(decoded: np.ndarray, reference: np.ndarray) -> float:
    from sinr_adapters.harness.plugins import method_spec

    return float(method_spec("coin")[1].metric(decoded, reference))


def fisher_allocation(adapter, model: torch.nn.Module, signal, lams: Sequence[float], *,
                      candidates: Sequence[int] = (2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 16), probes: int = 16
                      ) -> list[tuple[float, list[int]]]:
    """Per-tensor bit widths for a uniform-quantizer baseline, one allocation per rate weight.

    Every stored tensor ``k`` at ``b`` bits (16: float16) costs about ``D_k(b) = sum(F * (w - Q_b(w))**2) / 2``
    of image MSE (``F``: the diagonal Fisher of :func:`sinr_adapters.rate_coding.sensitivity.diagonal_fisher` at the
    fitted weights ``w``; ``Q_b``: the per-tensor symmetric quantizer the stream uses) and
    ``R_k(b)`` bits: its integers Brotli-coded alone as the stream stores them (one byte each up to 8 bits,
    two above), plus the 5-byte record; float16: 16 bits a value. (An empirical entropy would favour wide
    integers in small tensors: it cannot exceed ``log2(numel)``.) Since both add up over tensors, minimising
    ``sum_k D_k + lam * R_k / pixels`` (the rate-aware objective) is one choice per tensor:
    ``argmin_b D_k(b) + lam R_k(b) / pixels``.

    Returns
    -------
    list of (lam, bits)
        The distinct allocations (``bits`` in ``adapter.stored_names()`` order), in the order of ``lams``.
    """
    import brotli

    from sinr_adapters.framework.quantizers import uniform_quantize
    from sinr_adapters.rate_coding.sensitivity import diagonal_fisher

    names = adapter.stored_names()
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    coords = signal.coords.to(next(model.parameters()).device)
    fisher = diagonal_fisher(lambda ps: torch.func.functional_call(model, dict(zip(names, ps, strict=True)), (coords,)),
                             [sd[k] for k in names], probes=probes)
    pixels = int(np.prod(signal.shape[:-1]))
    table = []
    for k, f in zip(names, fisher, strict=True):
        w = sd[k]
        opts = []
        for b in candidates:
            if b == 16:
                wq, rate = w.half().float(), 16.0 * w.numel()
            else:
                q, step = uniform_quantize(w, b)
                wq = q.to(w.dtype) * step
                ints = (q.numpy() + 2 ** (b - 1) - 1).astype("<u1" if b <= 8 else "<u2")
                rate = 8.0 * len(brotli.compress(ints.tobytes(), quality=11)) + 40.0
            opts.append((b, float((f * (w - wq) ** 2).sum()) / 2.0, rate))
        table.append(opts)
    out: list[tuple[float, list[int]]] = []
    for lam in lams:
        bits = [min(opts, key=lambda o: o[1] + lam * o[2] / pixels)[0] for opts in table]
        if all(bits != b for _, b in out):
            out.append((lam, bits))
    return out


def bd_rates(points: Sequence[dict], images: Sequence[str]) -> dict[str, dict]:
    """BD-rates (:func:`sinr_adapters.harness.rd.bd_rate`) per image over all widths, their mean, and per image and
    width, for every pair of paths in ``points`` this benchmark compares (``best``: ``rate-aware`` and
    ``rate-aware+seed`` pooled)."""
    from sinr_adapters.harness.rd import bd_rate

    members = {"best": ("rate-aware", "rate-aware+seed")}
    present = {p["path"] for p in points}
    present |= {m for m, parts in members.items() if any(x in present for x in parts)}

    def curve(path: str, image: str, width: int | None = None) -> list[tuple[float, float]]:
        names = members.get(path, (path,))
        return [(p["bpp"], p["psnr"]) for p in points
                if p["path"] in names and p["image"] == image and width in (None, p["width"])]

    widths = sorted({p["width"] for p in points})

    def entry(anchor: str, test: str) -> dict:
        per = {img: bd_rate(curve(anchor, img), curve(test, img)) for img in images}
        vals = [v for v in per.values() if v is not None]
        per_width = {img: {w: bd_rate(curve(anchor, img, w), curve(test, img, w)) for w in widths} for img in images}
        return {"per_image": per, "mean": float(np.mean(vals)) if vals else None, "per_width": per_width}

    anchors = ("coin", "qat", "qat+alloc", "rate-aware")
    tests = ["qat", "qat+alloc", "rate-aware", "rate-aware+seed", "best"]
    tests += sorted(x for x in present if x.startswith("rate-aware+") and x != "rate-aware+seed")
    bd: dict[str, dict] = {}
    for test in tests:
        for anchor in anchors:
            if test == anchor or test not in present or anchor not in present:
                continue
            if anchor == "rate-aware" and test in ("qat", "qat+alloc", "best"):
                continue
            if anchor == "qat+alloc" and test == "qat":
                continue
            bd[f"{test} vs {anchor}"] = entry(anchor, test)
        if test.endswith("+refine") and test[:-len("+refine")] in present:
            base = test[:-len("+refine")]
            bd[f"{test} vs {base}"] = entry(base, test)
    return bd


def run(args: argparse.Namespace) -> dict:
    from sinr_adapters.framework.images import load_image
    from sinr_adapters.framework.sinr_options import SINROptions
    from sinr_adapters.methods.coin import COINAdapter
    from sinr_adapters.rate_coding import rate_aware as ra
    from sinr_adapters.rate_coding import stream as rate_stream

    torch.set_num_threads(1)
    load = [_load()]
    points: list[dict] = []

    def sinr_name(ratio: float) -> str:
        return "rate-aware+SINR" if len(args.dictionary_ratio) == 1 else f"rate-aware+SINR k2/k1={ratio:g}"

    def add(path: str, image: str, width: int, nbytes: int, psnr: float, pixels: int, **extra) -> None:
        points.append({"path": path, "image": image, "width": width, "bytes": nbytes,
                       "bpp": 8.0 * nbytes / pixels, "psnr": psnr, **extra})
        print(f"{path:<16} {image:<10} w={width:<3} {nbytes:6d} B {8.0 * nbytes / pixels:6.3f} bpp "
              f"{psnr:6.2f} dB {extra}", file=sys.stderr, flush=True)
        if args.out:
            with open(args.out, "w") as f:
                json.dump({"name": "rate_aware", "partial": True, "machine": machine(load), "config": vars(args),
                           "results": points}, f, indent=1)

    for image in args.images:
        for width in args.widths:
            adapter = COINAdapter(width=width, layers=args.layers)
            signal = adapter.signal_from_image(load_image(image, args.size), name=image)
            ref = signal.unit_values().cpu().numpy()
            pixels = int(np.prod(signal.shape[:-1]))
            model, _ = adapter.fit(signal, steps=args.steps, progress=False, seed=args.seed)
            data = adapter.compress(copy.deepcopy(model), signal)
            add("coin", image, width, len(data), _psnr(adapter.decode(data), ref), pixels)
            for b in args.bits:
                coder = adapter.with_config({**adapter.config(), "bits": b})
                data = coder.compress(copy.deepcopy(model), signal, finetune_steps=args.finetune_steps)
                add("qat", image, width, len(data), _psnr(coder.decode(data), ref), pixels, bits=b)
            if args.qat_alloc:
                for lam, alloc in fisher_allocation(adapter, model, signal, args.alloc_lams):
                    coder = adapter.with_config({**adapter.config(), "tensor_bits": alloc})
                    data = coder.compress(copy.deepcopy(model), signal, finetune_steps=args.finetune_steps)
                    add("qat+alloc", image, width, len(data), _psnr(coder.decode(data), ref), pixels,
                        alloc_lam=lam, tensor_bits=alloc)
            base = {"step_init": args.step_init}
            runs = [("rate-aware", model, None, None, None, base)]
            runs += [(f"rate-aware+{m}", model, None, None, None, {"step_init": m}) for m in args.step_inits]
            for r in args.dictionary_ratio:
                sinr_path = sinr_name(r)
                sinr_opts = [SINROptions(sparsity=s, value_bits=8, seed=args.seed, dictionary_ratio=r)
                             for s in args.sparsity]
                runs += [(sinr_path, model, o, None, None, base) for o in sinr_opts]
                if args.refine_every:
                    runs += [(sinr_path + "+refine", model, o, None, None,
                              {**base, "refine_every": args.refine_every}) for o in sinr_opts]
            if args.seeded:
                init, stds = ra.seeded_init(adapter, args.seed)
                seeded, _ = adapter.fit(signal, steps=args.steps, progress=False, model=init)
                runs.append(("rate-aware+seed", seeded, None, args.seed, stds, base))
            for path, m, sinr, seed, stds, extra in runs:
                for lam in args.lams:
                    t0 = time.perf_counter()
                    opts = ra.RateAwareOptions(lam=lam, steps=args.finetune_steps, **extra)
                    data, info = ra.compress(adapter, m, signal, opts, sinr=sinr, seed=seed, stds=stds)
                    q = _psnr(rate_stream.decode(adapter, data), ref)
                    add(path, image, width, len(data), q, pixels, lam=lam,
                        sparsity=None if sinr is None else sinr.sparsity,
                        dictionary_ratio=None if sinr is None else sinr.dictionary_ratio,
                        estimated_bits=round(info["estimated_bits"], 1), actual_bits=info["actual_bits"],
                        sinr_bits=info["sinr_bits"], seconds=round(time.perf_counter() - t0, 1),
                        **({"refinements": info["support_refinements"]} if sinr is not None else {}))

    bd = bd_rates(points, args.images)
    load.append(_load())
    return {"name": "rate_aware", "description": "COIN rate-aware compression (bpp, PSNR)",
            "machine": machine(load),
            "config": vars(args), "bd_rate": bd, "results": points}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    csv = lambda t: (lambda s: [t(x) for x in s.split(",") if x])  # noqa: E731
    p.add_argument("--images", type=csv(str), default=["astronaut", "camera", "coffee"])
    p.add_argument("--widths", type=csv(int), default=[16, 32, 48, 64])
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=1000, help="fitting steps")
    p.add_argument("--finetune-steps", type=int, default=300, help="fine-tuning steps of every path")
    p.add_argument("--bits", type=csv(int), default=[6, 8, 10], help="QAT baseline bit widths")
    p.add_argument("--lams", type=csv(float), default=[1e-4, 1e-3, 1e-2], help="rate weights")
    p.add_argument("--sparsity", type=csv(float), default=[0.5], help="SINR sparsities")
    p.add_argument("--no-seeded", dest="seeded", action="store_false", help="skip the seeded-residual path")
    p.add_argument("--dictionary-ratio", type=csv(float), default=[8.0], help="SINR k2 / k1 (several: one "
                   "rate-aware+SINR path each)")
    p.add_argument("--step-init", default="fisher-relative", choices=("max", "fisher", "fisher-relative"),
                   help="step_init of the rate-aware, rate-aware+SINR and rate-aware+seed paths")
    p.add_argument("--qat-alloc", action="store_true", help="also the qat baseline with a Fisher-weighted bit "
                   "width per tensor (path qat+alloc)")
    p.add_argument("--alloc-lams", type=csv(float), default=[1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
                   help="rate weights of the qat+alloc allocations")
    p.add_argument("--merge", nargs="+", metavar="JSON", help="pool the points of earlier runs' JSON and print "
                   "them with BD-rates (measures nothing; with --out, also written there)")
    p.add_argument("--out", help="rewrite this JSON file with the points so far after every point (and the "
                   "result at the end)")
    p.add_argument("--step-inits", type=csv(str), default=[], help="also rate-aware with these step_init "
                   "values (fisher, fisher-relative)")
    p.add_argument("--refine-every", type=int, default=0, help="also rate-aware+SINR with support refinement "
                   "every N steps")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    doc = merge(args.merge) if args.merge else run(args)
    json.dump(doc, sys.stdout, indent=1, allow_nan=True)
    print()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1, allow_nan=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
