"""SINR's back ends (numpy rANS, Brotli, pcodec) and the ``constriction`` library (Rust ANS), on SINR's sections.

Sections (flat integer arrays, exactly as :func:`sinr_codecs.bitstream.write` forms them):

- ``values<b>``: the nonzero values of a :class:`sinr_codecs.SparseCode`, quantized to ``b`` bits
  (8, 10, 12, 16) with one step per tensor, in sorted-support order;
- ``gaps``: the support as sorted-index gaps ("delta" index coding);
- ``uniform8``: the weights themselves, uniformly quantized to 8 bits (no SINR), the plain baseline.

Sources: (1) a 32768 x 128 i.i.d. Gaussian matrix, SINR-coded at k2 = 1024, s = 32 atoms per row;
sections of 1k, 10k, 100k and 1M symbols are its first rows (a smaller matrix of the same kind).
(2) a 3-layer COIN SIREN (width 128) fitted to a 64-px image: its three hidden 128 x 128 matrices
SINR-coded as one tensor each (4096 symbols per section) and uniform8 over all its weights.

Coders (bytes include everything a decoder needs besides the symbol count):

- ``rans``: :func:`sinr_codecs.entropy.compress` back end 2 (table and lane states in the stream);
- ``brotli``: back end 1 (Brotli at :data:`sinr_codecs.entropy.BROTLI_QUALITY` on byte planes);
- ``pcodec``: back end 3, the default of new streams (pcodec pieces, each with its byte length);
- ``cx_table``: constriction's ``AnsCoder`` driven by the very model our rANS chooses (same quantized
  frequency table, same "direct"/"binned" choice; binned raw bits through ``Uniform``): bytes =
  our table header + constriction's 32-bit words. The coder engine is the only difference;
- ``cx_laplace`` / ``cx_gaussian``: constriction's ``QuantizedLaplace`` / ``QuantizedGaussian`` over
  ``[min, max]`` with maximum-likelihood mean and scale: bytes = 2 float32 + the two range varints +
  the words. The kind of model a rate-aware training loss can target.

``entropy_bps`` is the empirical order-0 entropy (no table: an overfit bound on short wide sections).
Throughput is symbols per second (best of ``--repeat``, one thread) measured in this run. The JSON
names the machine (``model_throughput.machine``, the coders' versions, the 1-minute load average at the
start and the end of the run). ``--render`` prints the tables docs/entropy-coders.md shows, from a JSON
file, measuring nothing.

    python benchmarks/entropy_constriction.py                 # under a minute on 2 CPU cores
    python benchmarks/entropy_constriction.py --quick         # seconds, small sections only
    python benchmarks/entropy_constriction.py --render benchmarks/results/entropy_constriction.json

Needs ``pip install constriction`` (a benchmark-only dependency; not required by sinr-codecs).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from sinr_codecs import SparseCode, entropy, quantize, rans
from sinr_codecs.cursor import varint

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's other scripts, as modules
import model_throughput  # noqa: E402

try:
    import constriction
except ImportError:  # pragma: no cover - exercised by hand
    constriction = None

RESULTS = Path(__file__).with_name("results") / "entropy_constriction.json"
VALUE_BITS = (8, 10, 12, 16)
BACKENDS = (("rans", 2), ("brotli", 1), ("pcodec", 3))
"""The core's back ends measured: (column, :func:`sinr_codecs.entropy.compress` id)."""
CODERS = ("rans", "brotli", "pcodec", "cx_table", "cx_laplace", "cx_gaussian")


# ------------------------------------------------------------------------------------------ sections


def sinr_sections(indices: np.ndarray, counts: np.ndarray, values: torch.Tensor, k2: int) -> dict[str, np.ndarray]:
    """The gap and value sections of one SINR tensor, typed as ``bitstream.write`` types them."""
    symbols, order = entropy.encode_indices(indices, counts, entropy.INDEX_CODINGS["delta"])
    used = np.arange(indices.shape[1])[None, :] < counts[:, None]
    out = {"gaps": symbols.astype(np.uint16 if k2 <= 1 << 16 else np.uint32)}
    for b in VALUE_BITS:
        q, _ = quantize.quantize(values, b, "tensor")
        out[f"values{b}"] = np.take_along_axis(q, order, axis=1)[used].astype(quantize.int_dtype(b))
    return out


def uniform8(w: np.ndarray) -> np.ndarray:
    """Weights quantized to 8-bit signed integers with one step per tensor."""
    q, _ = quantize.quantize(torch.from_numpy(np.asarray(w, dtype=np.float32).reshape(1, -1)), 8, "tensor")
    return q.reshape(-1)


def gaussian_sections(sizes: Sequence[int], k1: int = 128, ratio: float = 8.0, s: int = 32) -> list[dict]:
    """Sections of row prefixes of one SINR-coded Gaussian matrix, plus uniform8 of as many weights."""
    rows = max(1, math.ceil(max(sizes) / s))
    w = np.random.default_rng(0).standard_normal((rows, k1)).astype(np.float32)
    t = time.perf_counter()
    code = SparseCode.fit(w, sparsity=s, dictionary_ratio=ratio, device="cpu")
    print(f"# OMP on {rows} x {k1}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    idx, cnt = code.indices.numpy(), code.counts.numpy()
    out = []
    for n in sizes:
        r = max(1, math.ceil(n / s))
        secs = sinr_sections(idx[:r], cnt[:r], code.values[:r], code.k2)
        secs["uniform8"] = uniform8(w.reshape(-1)[:n])
        for name, a in secs.items():
            out.append({"source": f"gaussian {r}x{k1}", "section": name, "symbols": a})
    return out


def siren_sections(steps: int, width: int = 128, size: int = 64) -> list[dict]:
    """Sections of a COIN SIREN fitted to the bundled astronaut image (hidden matrices SINR-coded)."""
    from sinr_adapters.framework.images import load_image
    from sinr_adapters.methods.coin import COINAdapter

    adapter = COINAdapter(width=width, layers=3)
    signal = adapter.signal_from_image(load_image("astronaut", size), name="astronaut")
    t = time.perf_counter()
    model, _ = adapter.fit(signal, steps=steps, progress=False)
    print(f"# SIREN fit ({steps} steps): {time.perf_counter() - t:.1f} s", file=sys.stderr)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    out = []
    for key, w in sd.items():
        if w.ndim == 2 and w.shape == (width, width):
            code = SparseCode.fit(w, sparsity=0.25, dictionary_ratio=8.0, device="cpu")
            secs = sinr_sections(code.indices.numpy(), code.counts.numpy(), code.values, code.k2)
            for name, a in secs.items():
                out.append({"source": f"siren {key}", "section": name, "symbols": a})
    allw = np.concatenate([w.reshape(-1) for w in sd.values()])
    out.append({"source": f"siren all weights ({allw.size})", "section": "uniform8", "symbols": uniform8(allw)})
    return out


# ------------------------------------------------------------------------------------------ coders


def _best(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def rans_model(a: np.ndarray) -> dict:
    """The model :func:`sinr_codecs.rans.encode` picks for ``a`` (same selection), for another coder.

    Returns the model header bytes our rANS writes (tag, offset, table), the per-symbol table index,
    the quantized frequencies and, for the binned model, each symbol's raw bits (count and value).
    """
    a = a.astype(np.int64)
    lo, size, present, counts, idx = rans._histogram(a)
    if present.size == 1:
        return {"head": b"\x00" + varint(rans.zigzag(lo)), "freqs": None}
    direct = None
    if present.size <= (1 << rans.MAX_SCALE):
        scale, freqs, table, coded = rans._choose_scale(counts, present, size)
        head = bytes([scale]) + varint(rans.zigzag(lo)) + table
        direct = {"head": head, "freqs": freqs, "bits": coded + 8 * len(head), "tix": idx, "nb": None}
    best = None
    for est, tag, k, m in rans._binned_candidates(lo, present, counts)[:rans._EXACT_CANDIDATES]:
        if direct is not None and est > 1.5 * direct["bits"] + 256:
            break
        model = rans._binned_model(tag, k, m, lo, present, counts)
        if best is None or model["bits"] < best["bits"]:
            best = model
    if direct is not None and (best is None or direct["bits"] <= best["bits"]):
        return {**direct, "mode": "direct"}
    u = a - lo if best["tag"] == rans._TAG_OFFSET else rans.zigzag(a)
    nb = best["nb"][idx]
    return {"head": best["head"], "freqs": best["freqs"], "tix": best["tix"][idx], "nb": nb,
            "raw": u & ((np.int64(1) << nb) - 1), "mode": "binned"}


def cx_table_encode(model: dict) -> np.ndarray:
    """constriction AnsCoder words for the symbols of ``model`` (tokens, then binned raw bits)."""
    cm = constriction.stream.model
    coder = constriction.stream.stack.AnsCoder()
    if model["nb"] is not None:  # pushed first, popped after the tokens that say how many bits
        sel = model["nb"] > 0
        coder.encode_reverse(model["raw"][sel].astype(np.int32), cm.Uniform(),
                             (np.int32(1) << model["nb"][sel].astype(np.int32)))
    cat = cm.Categorical(model["freqs"].astype(np.float64), perfect=False)
    coder.encode_reverse(model["tix"].astype(np.int32), cat)
    return coder.get_compressed()


def cx_table_decode(model: dict, words: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`cx_table_encode`: table indices (and raw bits) back; the model is the table."""
    cm = constriction.stream.model
    coder = constriction.stream.stack.AnsCoder(words)
    cat = cm.Categorical(model["freqs"].astype(np.float64), perfect=False)
    tix = coder.decode(cat, n)
    if model["nb"] is None:
        return tix
    nb = model["nb"]  # a real decoder derives nb from tix; the cost is one table lookup per symbol
    sel = nb > 0
    raw = coder.decode(cm.Uniform(), (np.int32(1) << nb[sel].astype(np.int32)))
    return tix, raw


def parametric(a: np.ndarray, family: str) -> tuple[object, int]:
    """(constriction model, header bytes) with maximum-likelihood parameters for ``a``."""
    a64 = a.astype(np.float64)
    lo, hi = int(a.min()), int(a.max())
    if family == "laplace":
        mean = float(np.median(a64))
        scale = max(float(np.mean(np.abs(a64 - mean))), 0.1)
        m = constriction.stream.model.QuantizedLaplace(lo, hi, np.float32(mean), np.float32(scale))
    else:
        mean = float(a64.mean())
        scale = max(float(a64.std()), 0.1)
        m = constriction.stream.model.QuantizedGaussian(lo, hi, np.float32(mean), np.float32(scale))
    return m, 8 + len(varint(rans.zigzag(lo))) + len(varint(rans.zigzag(hi)))


def measure(a: np.ndarray, repeat: int) -> dict:
    """Bytes, bits/symbol and throughput of every coder on section ``a`` (all round-trips checked)."""
    n = a.size
    sym = a.astype(np.int64)
    row: dict = {"n": n, "distinct": int(np.unique(sym).size), "min": int(sym.min()), "max": int(sym.max()),
                 "entropy_bps": round(rans.cost_bits(sym) / n, 4)}

    def put(name: str, nbytes: int, enc_s: float, dec_s: float) -> None:
        row[name] = {"bytes": nbytes, "bps": round(8 * nbytes / n, 4),
                     "enc_sym_s": round(n / enc_s), "dec_sym_s": round(n / dec_s)}

    for name, backend in BACKENDS:
        enc_s, blob = _best(lambda backend=backend: entropy.compress(a, backend), repeat)
        dec_s, back = _best(lambda blob=blob, backend=backend: entropy.decompress(blob, backend, a.dtype, n), repeat)
        assert np.array_equal(back, a), name
        put(name, len(blob), enc_s, dec_s)

    # constriction, our table: choosing the model (histogram, scale, table) is timed apart, since
    # rans's encode time includes it; cx_table's encode time is model + coding
    model_s, model = _best(lambda: rans_model(a), repeat)
    if model["freqs"] is not None:
        code_s, words = _best(lambda: cx_table_encode(model), repeat)
        dec_s, back = _best(lambda: cx_table_decode(model, words, n), repeat)
        if model["nb"] is None:
            assert np.array_equal(back, model["tix"])
        else:
            assert np.array_equal(back[0], model["tix"])
            assert np.array_equal(back[1], model["raw"][model["nb"] > 0])
    else:
        code_s, dec_s, words = 0.0, model_s, np.zeros(0, np.uint32)
    enc_s = model_s + code_s
    put("cx_table", len(model["head"]) + 4 * words.size, enc_s, dec_s)
    row["cx_table"]["mode"] = model.get("mode", "constant")
    row["model_sym_s"] = round(n / model_s)
    row["cx_table"]["enc_coder_only_sym_s"] = round(n / max(code_s, 1e-9))

    if row["distinct"] > 1:
        for family in ("laplace", "gaussian"):
            m, head = parametric(a, family)
            x = a.astype(np.int32)

            def enc(m=m, x=x):
                c = constriction.stream.stack.AnsCoder()
                c.encode_reverse(x, m)
                return c.get_compressed()

            enc_s, words = _best(enc, repeat)
            dec_s, back = _best(lambda words=words, m=m: constriction.stream.stack.AnsCoder(words).decode(m, n), repeat)
            assert np.array_equal(back, x), family
            put(f"cx_{family}", head + 4 * words.size, enc_s, dec_s)
    return row


# ------------------------------------------------------------------------------------------ main



def machine(load: Sequence[float | None]) -> dict:
    """Where the figures were measured: ``model_throughput.machine()`` (platform, CPU model, cores, Python,
    torch, numpy, torch threads), the coders' versions and the 1-minute load averages ``load``."""
    versions = {}
    for dist in ("brotli", "pcodec", "constriction", "sinr-codecs"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {**model_throughput.machine(), "versions": versions, "load_average_1min": list(load)}


def _load() -> float | None:
    return model_throughput._load()


def _ms(v: float) -> str:
    return f"{v / 1e6:.2f}"


def _pct(x: float) -> str:
    return f"{round(100 * x, 1) + 0.0:+.1f} %".replace("-", "\u2212")  # + 0.0: no "-0.0"


def markdown(rows: list[dict]) -> str:
    """The tables and summary lines docs/entropy-coders.md shows: bits/symbol of every section; bytes
    relative to rANS (all sections, and the core's back ends by section length); the parametric models'
    excess over rANS; each back end's excess over the order-0 entropy; speed ranges; and the speed of the
    Gaussian gaps/values8/values16 sections and of the first SIREN matrix's gaps and values8."""
    heads = {"rans": "rANS", "brotli": "Brotli", "pcodec": "pcodec", "cx_table": "cx table",
             "cx_laplace": "cx Laplace", "cx_gaussian": "cx Gaussian"}
    out = ["| source | section | symbols | entropy | " + " | ".join(heads[c] for c in CODERS) + " |",
           "|---|---|---:|---:|" + "---:|" * len(CODERS)]
    for r in rows:
        cells = [f"{r[c]['bps']:.3f}" if c in r else "-" for c in CODERS]
        out.append(f"| {r['source']} | {r['section']} | {r['n']} | {r['entropy_bps']:.3f} | " + " | ".join(cells)
                   + " |")
    out += ["", f"Bytes relative to rANS over all {len(rows)} sections (min / median / max):"]
    for c in CODERS[1:]:
        rel = [r[c]["bytes"] / r["rans"]["bytes"] - 1 for r in rows if c in r]
        out.append(f"- {heads[c]}: {_pct(min(rel))} / {_pct(statistics.median(rel))} / {_pct(max(rel))}"
                   + (f" ({len(rel)} sections)" if len(rel) != len(rows) else ""))
    groups = (("under 5,000 symbols", 0, 5_000), ("5,000 to 50,000", 5_000, 50_000), ("50,000 and more", 50_000, None))
    out += ["", "The core's back ends, bytes relative to rANS by section length (min / median / max):"]
    for c in ("brotli", "pcodec"):
        parts = []
        for label, lo, hi in groups:
            rel = [r[c]["bytes"] / r["rans"]["bytes"] - 1 for r in rows if r["n"] >= lo and (hi is None or r["n"] < hi)]
            if rel:
                parts.append(f"{label} ({len(rel)}): {_pct(min(rel))} / {_pct(statistics.median(rel))} / "
                             f"{_pct(max(rel))}")
        out.append(f"- {heads[c]}: " + "; ".join(parts))
    out += ["", "Parametric models, bits/symbol above rANS (min / max) by kind of section:"]
    for c in ("cx_laplace", "cx_gaussian"):
        parts = []
        for kind in ("values", "gaps", "uniform8"):
            d = [r[c]["bps"] - r["rans"]["bps"] for r in rows if c in r and r["section"].startswith(kind)]
            if d:
                parts.append(f"{kind} {min(d):+.3f} / {max(d):+.3f}".replace("-", "\u2212"))
        out.append(f"- {heads[c]}: " + "; ".join(parts))
    out += ["", "Bits/symbol above the order-0 entropy (min / median / max), all sections and those of "
            "≥ 100,000 symbols:"]
    for c in CODERS[:3]:
        over = [r[c]["bps"] - r["entropy_bps"] for r in rows]
        big = [r[c]["bps"] - r["entropy_bps"] for r in rows if r["n"] >= 100_000]
        line = f"- {heads[c]}: {min(over):.3f} / {statistics.median(over):.3f} / {max(over):.3f}"
        if big:
            line += f"; ≥ 100k: {min(big):.3f} / {statistics.median(big):.3f} / {max(big):.3f}"
        out.append(line)
    out += ["", "Speed over all sections, million symbols/s (lowest – highest; best of the repeats):"]
    for c in ("rans", "pcodec", "brotli", "cx_table"):
        enc = [r[c]["enc_sym_s"] for r in rows]
        dec = [r[c]["dec_sym_s"] for r in rows]
        out.append(f"- {heads[c]}: encode {_ms(min(enc))} – {_ms(max(enc))}, decode {_ms(min(dec))} – {_ms(max(dec))}")
    speed = [r for r in rows if r["section"] in ("gaps", "values8", "values16") and r["source"].startswith("gaussian")]
    first = next((r["source"] for r in rows if r["source"].startswith("siren net")), None)
    speed += [r for r in rows if r["source"] == first and r["section"] in ("gaps", "values8")]
    out += ["", "| section | symbols | rANS enc / dec | pcodec enc / dec | Brotli enc / dec | cx table enc "
            "(model + coding) | cx coding only | cx table dec | cx Laplace enc / dec |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def both(r: dict, c: str) -> str:
        return f"{_ms(r[c]['enc_sym_s'])} / {_ms(r[c]['dec_sym_s'])}" if c in r else "-"

    for r in speed:
        cx = r["cx_table"]
        out.append(f"| {r['source']} {r['section']} | {r['n']} | "
                   + " | ".join(both(r, c) for c in ("rans", "pcodec", "brotli"))
                   + f" | {_ms(cx['enc_sym_s'])} | {_ms(cx['enc_coder_only_sym_s'])} | {_ms(cx['dec_sym_s'])} | "
                   + both(r, "cx_laplace") + " |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000,1000000", help="Gaussian section sizes (symbols)")
    p.add_argument("--siren-steps", type=int, default=300, help="SIREN fitting steps (0: no SIREN)")
    p.add_argument("--repeat", type=int, default=3, help="timing repeats, best kept (1 above 10**5 symbols)")
    p.add_argument("--out", default=str(RESULTS), help=f"JSON file to write (default {RESULTS})")
    p.add_argument("--quick", action="store_true", help="1k and 10k symbols, no SIREN, one repeat")
    p.add_argument("--render", metavar="JSON", help="print the Markdown tables of this result file (measures "
                   "nothing)")
    args = p.parse_args(argv)
    if args.render:
        print(markdown(json.loads(Path(args.render).read_text())["results"]))
        return 0
    if constriction is None:
        print("entropy_constriction.py needs the constriction package: pip install constriction "
              "(a benchmark-only dependency)", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    load = [_load()]
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes, args.siren_steps, args.repeat = [1000, 10000], 0, 1
    secs = gaussian_sections(sizes)
    if args.siren_steps > 0:
        secs += siren_sections(args.siren_steps)
    rows = []
    for s in secs:
        a = s.pop("symbols")
        t = time.perf_counter()
        r = {**s, **measure(a, args.repeat if a.size <= 100_000 else 1)}
        rows.append(r)
        print(f"# {s['source']} {s['section']} n={a.size}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    load.append(_load())
    result = {"name": "entropy_constriction",
              "description": "bytes, bits/symbol and symbols/s of SINR's sections under the core's back ends "
                             f"(numpy rANS, Brotli q{entropy.BROTLI_QUALITY} on byte planes, pcodec) and "
                             "constriction (table and parametric models)",
              "machine": machine(load),
              "config": {"sizes": sizes, "siren_steps": args.siren_steps, "repeat": args.repeat,
                         "quick": args.quick},
              "results": rows}
    text = json.dumps(result, indent=1)
    print(text)
    print(markdown(rows), file=sys.stderr)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
