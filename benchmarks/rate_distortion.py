"""Full-size rate–distortion runs of COIN and INRIC with and without SINR (prints the table).

The default is the setting of the SINR paper's comparison, scaled to the images scikit-image ships:
three 512-px crops (astronaut, coffee, chelsea), 3 sine layers of width 128 (and narrower ones for the
curve), thousands of fitting steps, the same fine-tuning budget with and without SINR, and a bit-width search
for the method without SINR (``--baseline-bits``: the fair baseline). It is meant for one GPU
(``--device cuda``); on a CPU use ``--quick``. COIN++ and SHACIRA: add ``--method coinpp,shacira`` and
their options (``sinr evaluate --help``).

    python benchmarks/rate_distortion.py --device cuda --out bench-rd
    python benchmarks/rate_distortion.py --quick                  # minutes on a CPU, for a smoke test

Every option of ``sinr evaluate`` is accepted and overrides the defaults below, e.g.
``--widths 64,96,128 --sparsity 0.125,0.25 --value-bits 6,8 --inric-meta-steps 500``.
Results go to ``--out`` (results.json, results.csv, results.md, rd.png); the table to standard output.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

FULL = ["--method", "coin,inric", "--images", "astronaut,coffee,chelsea", "--size", "512",
        "--widths", "64,96,128", "--layers", "3", "--steps", "5000", "--finetune-steps", "500",
        "--sparsity", "0.125,0.25,0.4", "--value-bits", "6,8", "--baseline-bits", "6,8,10,16",
        "--out", "bench-rd"]
QUICK = ["--method", "coin,inric", "--images", "astronaut", "--size", "64", "--widths", "16,32",
         "--layers", "3", "--steps", "500", "--finetune-steps", "100", "--sparsity", "0.25",
         "--inric-ff-dims", "8", "--baseline-bits", "8,16", "--threads", "1", "--out", "bench-rd-quick"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    base = QUICK if "--quick" in argv else FULL
    argv = [a for a in argv if a != "--quick"]
    from sinr_adapters.harness.commands import main_evaluate

    # argparse keeps the last occurrence of an option: the user's arguments override the defaults
    return main_evaluate([*base, *argv])


if __name__ == "__main__":
    sys.exit(main())
