"""Entropy back ends for SINR's sections: pcodec (the default), static rANS and Brotli on byte planes.

Builds the two sections the SINR stream entropy-codes, exactly as :func:`sinr_codecs.bitstream.write`
does: the quantized nonzero values (``value_bits``-bit signed integers, in sorted-support order) and
the support as sorted-index gaps (:func:`sinr_codecs.entropy.encode_indices`, "delta" coding). They
come from :class:`sinr_codecs.SparseCode` fits of (a) i.i.d. Gaussian matrices and (b) the weight
matrices of a small MLP trained on scikit-learn's bundled digits (skipped with ``--no-mlp`` or
without scikit-learn).

Prints one JSON line per (matrix, sparsity, value bits, section) with bits per symbol of: the
empirical order-0 entropy (``entropy_bps``, no table, an overfit lower bound on short wide streams) and
each back end as :func:`sinr_codecs.entropy.compress` writes it: pcodec (``pcodec_bps``), rANS
(``rans_bps``, :mod:`sinr_codecs.rans`, table and lane states included) and Brotli on byte planes at
quality :data:`sinr_codecs.entropy.BROTLI_QUALITY` (``brotli_bps``); for the support also the
combinatorial bound ``sum over vectors of log2 C(k2, s)`` (``bound_bps``: any code of an unordered
s-subset of k2 atoms, uniform over subsets); plus encode/decode milliseconds of each coder (best of
``--repeat``). A last line times the coders on 10**6 and 10**7 synthetic Laplacian symbols (Brotli on
10**6 only). ``--out FILE`` also writes every line as one JSON document (``{"name", "description",
"machine", "config", "results"}``) with the machine measured by ``model_throughput.machine()`` and the
1-minute load average at the start and the end::

    python benchmarks/entropy_coders.py [--rows 512 --width 128] [--quick]
    python benchmarks/entropy_coders.py --out benchmarks/results/entropy_coders.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sinr_codecs import SparseCode, entropy, quantize, rans

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's other scripts, as modules
import model_throughput  # noqa: E402

#: The back ends compared, by name (ids from :data:`sinr_codecs.entropy.BACKENDS`).
CODERS = ("pcodec", "rans", "brotli")

_MODES = {0: "constant", 0x40: "binned-offset", 0x41: "binned-zigzag"}


def _mode(data: bytes) -> str:
    if not data:
        return "empty"
    return _MODES.get(data[0], "direct")


def _best_ms(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return 1000 * best, out


def sections(code: SparseCode, value_bits: int) -> dict[str, np.ndarray]:
    """The values and index-gap sections of ``code``'s stream, as the typed arrays Brotli gets."""
    indices, counts = code.indices.numpy(), code.counts.numpy()
    symbols, order = entropy.encode_indices(indices, counts, entropy.INDEX_CODINGS["delta"])
    q, _ = quantize.quantize(code.values, value_bits, "tensor")
    q = np.take_along_axis(q, order, axis=1)
    used = np.arange(indices.shape[1])[None, :] < counts[:, None]
    return {"values": q[used].astype(quantize.int_dtype(value_bits)),
            "gaps": symbols.astype(np.uint16 if code.k2 <= 1 << 16 else np.uint32)}


def support_bound_bits(code: SparseCode) -> float:
    """sum over vectors of log2 C(k2, s): the bits of a uniform code of each unordered support."""
    k2 = code.k2
    s = code.counts.numpy().astype(np.float64)
    lg = np.vectorize(math.lgamma)
    return float(np.sum((math.lgamma(k2 + 1) - lg(s + 1) - lg(k2 - s + 1)) / math.log(2)))


def _coded(a: np.ndarray, name: str, repeat: int) -> tuple[bytes, float, float]:
    """The section, encode ms and decode ms of back end ``name`` on ``a`` (the round trip checked)."""
    backend = entropy.BACKENDS[name]
    enc_ms, blob = _best_ms(lambda: entropy.compress(a, backend), repeat)
    dec_ms, back = _best_ms(lambda: entropy.decompress(blob, backend, a.dtype, a.size), repeat)
    assert np.array_equal(back, a), name
    return blob, enc_ms, dec_ms


def compare(a: np.ndarray, repeat: int) -> dict:
    """Sizes (bits/symbol) and times (ms) of every back end in :data:`CODERS` for one section."""
    n = a.size
    row: dict[str, Any] = {"n": n, "distinct": int(np.unique(a).size),
                           "entropy_bps": round(rans.cost_bits(a.astype(np.int64)) / n, 4)}
    blobs = {}
    for name in CODERS:
        blob, enc_ms, dec_ms = _coded(a, name, repeat)
        blobs[name], nbytes = blob, len(blob)
        row.update({f"{name}_bps": round(8 * nbytes / n, 4), f"{name}_bytes": nbytes,
                    f"{name}_enc_ms": round(enc_ms, 2), f"{name}_dec_ms": round(dec_ms, 2)})
    row["pcodec_vs_rans"] = round(len(blobs["pcodec"]) / len(blobs["rans"]), 4)
    row["brotli_vs_rans"] = round(len(blobs["brotli"]) / len(blobs["rans"]), 4)
    row["rans_mode"] = _mode(blobs["rans"])  # the rANS section is rans.encode's stream as it is
    return row


def trained_mlp(seed: int = 0, steps: int = 300, hidden: int = 256) -> dict[str, np.ndarray]:
    """Weight matrices of a 64-hidden-hidden-10 MLP trained briefly on the digits data set."""
    from sklearn.datasets import load_digits

    torch.manual_seed(seed)
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    net = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                              torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (128,))
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = float((net(x).argmax(1) == y).float().mean())
    mats = {f"mlp.{i}.weight(acc={acc:.3f})": m.weight.detach().numpy().copy()
            for i, m in enumerate(net) if isinstance(m, torch.nn.Linear) and m.weight.shape[1] >= 64}
    return mats


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=512, help="rows of the Gaussian matrix (default 512)")
    p.add_argument("--width", type=int, default=128, help="row length k1 of the Gaussian matrix (default 128)")
    p.add_argument("--sparsity", default="0.125,0.25", help="comma-separated fractions of k1 (default 0.125,0.25)")
    p.add_argument("--value-bits", default="8,12,16", help="comma-separated quantizer bits (default 8,12,16)")
    p.add_argument("--dictionary-ratio", type=float, default=8.0, help="k2 / k1 (default 8)")
    p.add_argument("--repeat", type=int, default=3, help="timing repeats, best kept (default 3)")
    p.add_argument("--no-mlp", action="store_true", help="skip the trained-MLP matrices")
    p.add_argument("--no-speed", action="store_true", help="skip the 10**6 / 10**7-symbol speed line")
    p.add_argument("--quick", action="store_true", help="one small setting (for tests)")
    p.add_argument("--out", default=None, help="also write every line as one JSON document here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    load = [model_throughput._load()]
    rows: list[dict[str, Any]] = []

    def emit(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)

    sparsities = [float(s) for s in args.sparsity.split(",")]
    bits_list = [int(b) for b in args.value_bits.split(",")]
    if args.quick:
        args.rows, args.width, sparsities, bits_list, args.repeat = 64, 64, [0.25], [8], 1
        args.no_speed = True

    mats = {"gaussian": np.random.default_rng(0).standard_normal((args.rows, args.width)).astype(np.float32)}
    if not args.no_mlp and not args.quick:
        try:
            mats.update(trained_mlp())
        except ImportError as e:  # scikit-learn missing
            print(json.dumps({"skipped": "mlp", "reason": str(e)}), file=sys.stderr)
    for name, w in mats.items():
        for sp in sparsities:
            code = SparseCode.fit(w, sparsity=sp, dictionary_ratio=args.dictionary_ratio, device="cpu")
            secs = {b: sections(code, b) for b in bits_list}
            base = {"matrix": name, "shape": list(w.shape), "sparsity": sp, "k1": code.k1, "k2": code.k2,
                    "atoms_per_vector": float(code.counts.float().mean())}
            gaps = secs[bits_list[0]]["gaps"]
            emit({**base, "section": "gaps", **compare(gaps, args.repeat),
                  "bound_bps": round(support_bound_bits(code) / gaps.size, 4)})
            for b in bits_list:
                emit({**base, "section": "values", "value_bits": b, **compare(secs[b]["values"], args.repeat)})
    if not args.no_speed:
        for n in (10**6, 10**7):
            a = np.rint(np.random.default_rng(1).laplace(0, 20, n)).astype(np.int16)
            reps = 1 if n > 10**6 else args.repeat
            row = {"speed": "laplace(0, 20)", "n": n, "entropy_bps": round(rans.cost_bits(a.astype(np.int64)) / n, 4)}
            for name in CODERS if n <= 10**6 else ("pcodec", "rans"):  # Brotli on 10**7 symbols takes minutes
                blob, enc_ms, dec_ms = _coded(a, name, reps)
                row.update({f"{name}_bps": round(8 * len(blob) / n, 4), f"{name}_enc_ms": round(enc_ms, 1),
                            f"{name}_dec_ms": round(dec_ms, 1)})
            emit(row)
    if args.out:
        load.append(model_throughput._load())
        doc = {"name": "entropy_coders",
               "description": "SINR's value and index-gap sections (Gaussian matrix, trained digits MLP) under the "
                              "core's back ends (pcodec, rANS, Brotli at the writer's quality): bits/symbol "
                              "against the order-0 entropy and, for the support, log2 C(k2, s); encode/decode ms",
               "machine": model_throughput.machine(load),
               "config": {**{k: v for k, v in vars(args).items() if k != "out"},
                          "brotli_quality": entropy.BROTLI_QUALITY},
               "results": rows}
        model_throughput.write_json(doc, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
