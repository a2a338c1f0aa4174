"""SINR's entropy back ends on INR-sized streams: Brotli vs rANS, same fitted COIN SIREN, same SINR code.

Entropy coding is lossless, so both streams decode to the same image; only their sizes differ. For
each bundled image and width it fits a 3-layer COIN SIREN (64 px, ``--steps`` Adam steps), compresses it
with SINR at each sparsity × value bits, once per back end, and prints one JSON line with the SINR
sections' bytes and the whole stream's bytes for each, and rANS's saving (negative: rANS is larger).

    python benchmarks/entropy_inr.py                     # about 3 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence

import torch


def main(argv: Sequence[str] | None = None) -> int:
    from sinr_adapters.framework.images import load_image
    from sinr_adapters.framework.sinr_options import SINROptions
    from sinr_adapters.methods.coin import COINAdapter

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default="astronaut,coffee,chelsea")
    p.add_argument("--widths", default="16,32")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.images.split(","):
        for width in (int(w) for w in args.widths.split(",")):
            adapter = COINAdapter(width=width, layers=3)
            signal = adapter.signal_from_image(load_image(name, args.size), name=name)
            model, _ = adapter.fit(signal, steps=args.steps, progress=False)
            for s in (0.25, 0.5):
                for bits in (6, 8):
                    row = {"image": name, "width": width, "sparsity": s, "value_bits": bits}
                    for backend in ("brotli", "rans"):
                        opts = SINROptions(sparsity=s, value_bits=bits, entropy=backend, device="cpu")
                        data, info = adapter.compress_with_info(copy.deepcopy(model), signal, sinr=opts,
                                                                progress=False)
                        row[f"{backend}_sinr_bytes"] = info["sinr_bytes"]
                        row[f"{backend}_stream_bytes"] = len(data)
                    row["rans_saving_sinr"] = round(1 - row["rans_sinr_bytes"] / row["brotli_sinr_bytes"], 4)
                    row["rans_saving_stream"] = round(1 - row["rans_stream_bytes"] / row["brotli_stream_bytes"], 4)
                    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
