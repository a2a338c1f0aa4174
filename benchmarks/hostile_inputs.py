"""What hostile inputs cost the codec: exception type, seconds and peak memory, one JSON line per case.

Each case is a crafted stream of a few dozen bytes (valid checksum) or a crafted array/config, run in its
own subprocess under an address-space cap (``--cap-gib``, default 4), so an input that would allocate
gigabytes ends in ``MemoryError`` instead of exhausting the machine. The cases that decode a declared
output at the default limit (1 GiB) report the budget the decoder keeps to, 1.5 x the declared output +
300 MiB of the whole process's peak resident memory (importing torch included), and whether it held.
Run it against any installed sinr-codecs (or another checkout on ``PYTHONPATH``) to compare releases::

    python benchmarks/hostile_inputs.py   # prints {"case": ..., "outcome": ..., "seconds": ..., "peak_mib": ...}
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's other scripts, as modules
import model_throughput  # noqa: E402

CRAFT = textwrap.dedent('''
    import struct, zlib, time, resource, json, sys
    import numpy as np, brotli
    def varint(n):
        out = bytearray()
        while True:
            b = n & 0x7F; n >>= 7
            if not n:
                out.append(b); return bytes(out)
            out.append(b | 0x80)
    def craft(shape, *, dtype=2, layout=0, k1=None, mode=0, bits=8, granularity=0, backend=0, k2=None,
              s_max=0, counts_kind=0, coding=1, sections=()):
        k1 = shape[-1] if k1 is None else k1
        head = bytearray(b"SINR\\x01"); head.append(dtype)
        head += varint(len(shape)) + b"".join(varint(d) for d in shape)
        head.append(layout); head += varint(k1); head += bytes([mode, bits, granularity, backend])
        if mode == 0:
            head += varint(k1 + 1 if k2 is None else k2) + bytes([1]) + varint(0) + varint(s_max)
            head += bytes([counts_kind, coding])
        for s in sections:
            head += varint(len(s)) + s
        return bytes(head) + struct.pack("<I", zlib.crc32(head))
    def pco_run(value, count, dtype="<i2"):
        """A pcodec section (back end 3) of ``count`` copies of ``value``: pieces of 2**18 items."""
        from pcodec import ChunkConfig, standalone
        piece = 1 << 18
        full = standalone.simple_compress(np.full(piece, value, dtype=dtype), ChunkConfig())
        out = bytearray()
        for i in range(0, count, piece):
            blob = full if count - i >= piece else standalone.simple_compress(
                np.full(count - i, value, dtype=dtype), ChunkConfig())
            out += varint(len(blob)) + blob
        return bytes(out)
    def brotli_zeros(n):
        """Brotli of n zero bytes, compressed 64 MiB at a time (never holding the n bytes)."""
        c = brotli.Compressor(quality=1)
        out, block = bytearray(), bytes(min(n, 64 << 20))
        for i in range(0, n, len(block)):
            out += c.process(block[: min(len(block), n - i)])
        return bytes(out + c.finish())
    def peak_ratio(declared):
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({"declared_mib": declared / 2**20, "budget_mib": (1.5 * declared + (300 << 20)) / 2**20}))
''')

CASES: dict[str, str] = {
    "huge declared shape (2**32 float32)":
        "from sinr_codecs import SINR\nSINR().decode(craft((1 << 20, 1 << 12)))",
    "huge dictionary (k1*k2 = 2**31)":
        "from sinr_codecs import SINR\nSINR().decode(craft((4, 4096), k2=1 << 19, s_max=1))",
    "rANS run of one symbol behind 2**30 declared float32 (4 GiB: the output limit)":
        "from sinr_codecs import SINR\n"
        "run = b'\\x00' + varint(0) + varint((1 << 30) - 1)\n"
        "SINR().decode(craft((1 << 15, 1 << 15), backend=2, s_max=1, sections=(run,)))",
    "all-zero counts, large s_max (2**28 float16 declared)":
        "from sinr_codecs import SINR\n"
        "n, k1 = 1 << 18, 1024\n"
        "cnt = brotli.compress(bytes(2 * n), quality=5)\n"
        "e = brotli.compress(b'')\n"
        "st = brotli.compress(np.ones(1, '<f8').tobytes())\n"
        "SINR().decode(craft((n, k1), dtype=1, backend=1, s_max=k1 - 1, counts_kind=1, sections=(cnt, e, st, e)))",
    "dictionary at the cap (64 x 2**19) for a 64-element output":
        "from sinr_codecs import SINR\n"
        "st = brotli.compress(np.ones(1, '<f8').tobytes())\n"
        "SINR().decode(craft((64,), k2=1 << 19, s_max=1, backend=1,\n"
        "                    sections=(brotli.compress(bytes(4)), st, brotli.compress(b'\\x01'))))",
    "1023 atoms per vector (4096x1024 float16 declared, 73 bytes)":
        "from sinr_codecs import SINR\n"
        "n, k1, s = 4096, 1024, 1023\n"
        "ib = brotli.compress(bytes(2 * n * s), quality=5)\n"
        "vb = brotli.compress(np.ones(n * s, 'i1').tobytes(), quality=5)\n"
        "st = brotli.compress(np.ones(1, '<f8').tobytes())\n"
        "SINR().decode(craft((n, k1), dtype=1, backend=1, s_max=s, k2=8192, sections=(ib, st, vb)))",
    "Brotli zero bomb in a section":
        "from sinr_codecs import SINR\n"
        "bomb = brotli.compress(bytes(256 << 20), quality=1)\n"
        "st, v = brotli.compress(np.ones(1, '<f8').tobytes()), brotli.compress(bytes(8))\n"
        "SINR().decode(craft((4, 64), backend=1, s_max=2, sections=(bomb, st, v)))",
    "rANS run of one symbol claiming 2**30 symbols where 2**14 are declared (the rANS guard)":
        "from sinr_codecs import SINR\n"
        "run = b'\\x00' + varint(0) + varint((1 << 30) - 1)\n"
        "st, v = brotli.compress(np.ones(1, '<f8').tobytes()), b'\\x00' + varint(2) + varint((1 << 14) - 1)\n"
        "SINR().decode(craft((1 << 14, 64), backend=2, s_max=1, sections=(run, st, v)))",
    "dense rANS, 2**28 float32 declared (1 GiB output at the default limit)":
        "from sinr_codecs import SINR\n"
        "n = 1 << 28\n"
        "st, v = brotli.compress(np.ones(1, '<f8').tobytes()), b'\\x00' + varint(2) + varint(n - 1)\n"
        "out = SINR().decode(craft((1 << 14, 1 << 14), mode=1, bits=16, backend=2, sections=(st, v)))\n"
        "assert out.shape == (1 << 14, 1 << 14) and float(out[0, 0]) == 1.0\n"
        "peak_ratio(n * 4)",
    "dense Brotli, 16-bit values in 2 byte planes, 2**28 float32 declared (1 GiB)":
        "from sinr_codecs import SINR\n"
        "n = 1 << 28\n"
        "st, v = brotli.compress(np.ones(1, '<f8').tobytes()), brotli_zeros(2 * n)\n"
        "out = SINR().decode(craft((1 << 14, 1 << 14), mode=1, bits=16, backend=1, sections=(st, v)))\n"
        "assert not out.any()\n"
        "peak_ratio(n * 4)",
    "dense pcodec, one step code per 1-value vector, 2**28 float32 declared (1 GiB)":
        "from sinr_codecs import SINR\n"
        "n = 1 << 28\n"
        "out = SINR().decode(craft((n, 1), mode=1, bits=16, backend=3, granularity=2,\n"
        "                          sections=(pco_run(0, n, '<i4'), pco_run(3, n))))\n"
        "assert out.shape == (n, 1) and float(out[0, 0]) == 3.0\n"
        "peak_ratio(n * 4)",
    "sparse pcodec, 8 atoms per vector, 2**26 float32 declared (256 MiB)":
        "from sinr_codecs import SINR\n"
        "n, k1, s = 1 << 20, 64, 8\n"
        "out = SINR().decode(craft((n, k1), k2=512, s_max=s, bits=16, backend=3, granularity=2,\n"
        "                          sections=(pco_run(0, n * s, '<u2'), pco_run(0, n, '<i4'), pco_run(1, n * s))))\n"
        "assert out.shape == (n, k1) and np.isfinite(out[:4]).all()\n"
        "peak_ratio(n * k1 * 4)",
    "a stored step of 4e306 times 8-bit values (float64 overflow)":
        "from sinr_codecs import SINR\n"
        "st = brotli.compress(np.full(1, 4e306, '<f8').tobytes())\n"
        "v = brotli.compress(np.full(64, 100, 'i1').tobytes())\n"
        "SINR().decode(craft((1, 64), mode=1, bits=8, backend=1, sections=(st, v)))",
    "float16 weights near 65504 (non-finite values decoded)":
        "from sinr_codecs import SINR\n"
        "w = (np.random.default_rng(0).uniform(-1, 1, (16, 128)) * 65504).astype('float16')\n"
        "c = SINR(device='cpu'); d = c.decode(c.encode(w))\n"
        "print(json.dumps({'nonfinite': int((~np.isfinite(d)).sum())}))",
    "config from a store with dictionary_size=2**23, 4x64 chunk":
        "import numcodecs\n"
        "c = numcodecs.get_codec({'id': 'sinr', 'dictionary_size': 1 << 23})\n"
        "c.encode(np.ones((4, 64), 'float32'))",
    "device='tpu' at construction":
        "from sinr_codecs import SINR\nSINR(device='tpu')",
    "stored config carries device='cuda' (CPU-only machine)":
        "import numcodecs\n"
        "c = numcodecs.get_codec({'id': 'sinr', 'device': 'cuda', 'sparsity': 4})\n"
        "c.encode(np.ones((4, 64), 'float32'))\n"
        "print(json.dumps({'stored': 'device' in c.get_config()}))",
}

RUNNER = textwrap.dedent('''
    t = time.perf_counter()
    try:
        exec(compile(sys.argv[1], "case", "exec"))
        outcome = "ok"
    except BaseException as e:
        outcome = f"{type(e).__name__}: {str(e)[:120]}"
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"outcome": outcome, "seconds": round(dt, 3), "peak_mib": round(peak, 1)}))
''')


def run_case(name: str, code: str, cap_gib: float, timeout: float) -> dict:
    prog = CRAFT + RUNNER
    limit = int(cap_gib * (1 << 30))
    pre = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
    try:
        p = subprocess.run([sys.executable, "-c", pre + prog, code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"case": name, "outcome": f"still running after {timeout:g} s"}
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    if not lines:
        return {"case": name, "outcome": f"crashed (exit {p.returncode}): {p.stderr.strip()[-200:]}"}
    row = {"case": name}
    for x in lines:
        row.update(x)
    if "budget_mib" in row and "peak_mib" in row:  # decode memory against 1.5 x the declared output + 300 MiB
        row["within_budget"] = row["peak_mib"] <= row["budget_mib"]
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cap-gib", type=float, default=4.0, help="address-space cap per case (GiB)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a case is reported as hanging")
    ap.add_argument("--out", help="also write the results as JSON here (e.g. benchmarks/results/hostile_inputs.json)")
    args = ap.parse_args(argv)
    machine = {**model_throughput.machine(), "cap_gib": args.cap_gib}
    print(json.dumps({"machine": machine}))
    rows = []
    for name, code in CASES.items():
        rows.append(run_case(name, code, args.cap_gib, args.timeout))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        doc = {"name": "hostile_inputs", "description": "What each class of hostile input costs the installed "
               "sinr-codecs: outcome (exception and message), seconds and peak resident memory per case, each "
               "in its own capped subprocess (the seconds include importing torch).", "machine": machine,
               "results": rows}
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
