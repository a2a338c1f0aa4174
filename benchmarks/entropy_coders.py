"""Entropy coders for SINR's sections: Brotli on byte planes (today's back end) against static rANS.

Builds the two sections the SINR stream entropy-codes, exactly as :func:`sinr_codecs.bitstream.write`
does: the quantized nonzero values (``value_bits``-bit signed integers, in sorted-support order) and
the support as sorted-index gaps (:func:`sinr_codecs.entropy.encode_indices`, "delta" coding). They
come from :class:`sinr_codecs.SparseCode` fits of (a) i.i.d. Gaussian matrices and (b) the weight
matrices of a small MLP trained on scikit-learn's bundled digits (skipped with ``--no-mlp`` or
without scikit-learn).

Prints one JSON line per (matrix, sparsity, value bits, section) with bits per symbol of: the
empirical order-0 entropy (``entropy_bps``, no table, an overfit lower bound on short wide streams),
Brotli q11 on byte planes (``brotli_bps``, :func:`sinr_codecs.entropy.compress`), rANS
(``rans_bps``, :mod:`sinr_codecs.rans`, table and lane states included) and, for the support, the
combinatorial bound ``sum over vectors of log2 C(k2, s)`` (``bound_bps``: any code of an unordered
s-subset of k2 atoms, uniform over subsets); plus encode/decode milliseconds of both coders (best of
``--repeat``). A last line times rANS alone on 10**6 and 10**7 synthetic Laplacian symbols.

Run: ``python benchmarks/entropy_coders.py [--rows 512 --width 128] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from sinr_codecs import SparseCode, entropy, quantize, rans

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


def compare(a: np.ndarray, repeat: int) -> dict:
    """Sizes (bits/symbol) and times (ms) of Brotli-on-byte-planes and rANS for one section."""
    n = a.size
    sym = a.astype(np.int64)
    b_enc_ms, blob = _best_ms(lambda: entropy.compress(a, entropy.BACKENDS["brotli"]), repeat)
    b_dec_ms, back = _best_ms(lambda: entropy.decompress(blob, entropy.BACKENDS["brotli"], a.dtype, n), repeat)
    assert np.array_equal(back, a)
    r_enc_ms, data = _best_ms(lambda: rans.encode(sym), repeat)
    r_dec_ms, back = _best_ms(lambda data=data, n=n: rans.decode(data, n), repeat)
    assert np.array_equal(back, sym)
    return {"n": n, "distinct": int(np.unique(sym).size), "entropy_bps": round(rans.cost_bits(sym) / n, 4),
            "brotli_bps": round(8 * len(blob) / n, 4), "rans_bps": round(8 * len(data) / n, 4),
            "rans_vs_brotli": round(len(data) / len(blob), 4), "rans_mode": _mode(data),
            "brotli_bytes": len(blob), "rans_bytes": len(data),
            "brotli_enc_ms": round(b_enc_ms, 2), "brotli_dec_ms": round(b_dec_ms, 2),
            "rans_enc_ms": round(r_enc_ms, 2), "rans_dec_ms": round(r_dec_ms, 2)}


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
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sparsities = [float(s) for s in args.sparsity.split(",")]
    bits_list = [int(b) for b in args.value_bits.split(",")]
    if args.quick:
        args.rows, args.width, sparsities, bits_list, args.repeat = 64, 64, [0.25], [8], 1
        args.no_speed = True
    machine = f"{platform.machine()}, {platform.python_version()}, numpy {np.__version__}, 1 thread"

    mats = {"gaussian": np.random.default_rng(0).standard_normal((args.rows, args.width)).astype(np.float32)}
    if not args.no_mlp and not args.quick:
        try:
            mats.update(trained_mlp())
        except ImportError as e:  # scikit-learn missing
            print(json.dumps({"skipped": "mlp", "reason": str(e)}))
    for name, w in mats.items():
        for sp in sparsities:
            code = SparseCode.fit(w, sparsity=sp, dictionary_ratio=args.dictionary_ratio, device="cpu")
            secs = {b: sections(code, b) for b in bits_list}
            base = {"matrix": name, "shape": list(w.shape), "sparsity": sp, "k1": code.k1, "k2": code.k2,
                    "atoms_per_vector": float(code.counts.float().mean())}
            gaps = secs[bits_list[0]]["gaps"]
            row = {**base, "section": "gaps", **compare(gaps, args.repeat),
                   "bound_bps": round(support_bound_bits(code) / gaps.size, 4)}
            print(json.dumps(row), flush=True)
            for b in bits_list:
                print(json.dumps({**base, "section": "values", "value_bits": b,
                                  **compare(secs[b]["values"], args.repeat)}), flush=True)
    if not args.no_speed:
        for n in (10**6, 10**7):
            a = np.rint(np.random.default_rng(1).laplace(0, 20, n)).astype(np.int64)
            enc_ms, data = _best_ms(lambda a=a: rans.encode(a), 1 if n > 10**6 else args.repeat)
            dec_ms, back = _best_ms(lambda data=data, n=n: rans.decode(data, n), 1 if n > 10**6 else args.repeat)
            assert np.array_equal(back, a)
            row = {"speed": "laplace(0, 20)", "n": n, "rans_mode": _mode(data),
                   "entropy_bps": round(rans.cost_bits(a) / n, 4), "rans_bps": round(8 * len(data) / n, 4),
                   "rans_enc_ms": round(enc_ms, 1), "rans_dec_ms": round(dec_ms, 1)}
            if n <= 10**6:  # Brotli q11 on 10**7 symbols takes minutes
                a16 = a.astype(np.int16)
                b_enc_ms, blob = _best_ms(lambda a16=a16: entropy.compress(a16, entropy.BACKENDS["brotli"]), 1)
                b_dec_ms, _ = _best_ms(lambda blob=blob, a16=a16, n=n: entropy.decompress(blob, 1, a16.dtype, n), 1)
                row.update(brotli_bps=round(8 * len(blob) / n, 4), brotli_enc_ms=round(b_enc_ms, 1),
                           brotli_dec_ms=round(b_dec_ms, 1))
            print(json.dumps({**row, "machine": machine}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
