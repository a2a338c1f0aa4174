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
``--json FILE`` also writes the run as one JSON document for ``benchmarks/results/``: ``{"name" (FILE's
stem), "description", "machine", "config", "summary", "sinr_savings", "results"}``, one record per point in
``results``, the machine measured by ``model_throughput.machine()`` with the 1-minute load average at the
start and the end::

    python benchmarks/rate_distortion.py --method occupancy --signals statue --size 32 --steps 500 \
        --finetune-steps 100 --sparsity 0.25,0.4 --baseline-bits 8,16 --threads 1 --out occupancy \
        --json benchmarks/results/modalities_occupancy.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's other scripts, as modules
import model_throughput  # noqa: E402

FULL = ["--method", "coin,inric", "--images", "astronaut,coffee,chelsea", "--size", "512",
        "--widths", "64,96,128", "--layers", "3", "--steps", "5000", "--finetune-steps", "500",
        "--sparsity", "0.125,0.25,0.4", "--value-bits", "6,8", "--baseline-bits", "6,8,10,16",
        "--out", "bench-rd"]
QUICK = ["--method", "coin,inric", "--images", "astronaut", "--size", "64", "--widths", "16,32",
         "--layers", "3", "--steps", "500", "--finetune-steps", "100", "--sparsity", "0.25",
         "--inric-ff-dims", "8", "--baseline-bits", "8,16", "--threads", "1", "--out", "bench-rd-quick"]



def _option(argv: Sequence[str], name: str) -> tuple[list[str], str | None]:
    """``argv`` without option ``name`` (``--name VALUE`` or ``--name=VALUE``), and its last value."""
    rest: list[str] = []
    value = None
    it = iter(argv)
    for a in it:
        if a == name:
            value = next(it, None)
        elif a.startswith(name + "="):
            value = a[len(name) + 1:]
        else:
            rest.append(a)
    return rest, value


def result_document(run_json: Path, name: str, load: Sequence[float | None]) -> dict[str, Any]:
    """The harness's ``results.json`` of a run as a ``benchmarks/results/`` document with the machine."""
    run = json.loads(run_json.read_text())
    columns: dict[str, list[Any]] = run["results"]
    n = len(next(iter(columns.values()), []))
    rows = [{k: v[i] for k, v in columns.items()} for i in range(n)]
    machine = model_throughput.machine(load)
    threads = (run.get("config") or {}).get("threads")
    if threads:  # the run's own setting (the harness restores torch's afterwards)
        machine["torch_threads"] = threads
    return {"name": name, "description": run["description"], "machine": machine, "config": run.get("config"),
            "summary": run.get("summary"), "sinr_savings": run.get("sinr_savings"), "results": rows}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    base = QUICK if "--quick" in argv else FULL
    argv, json_out = _option([a for a in argv if a != "--quick"], "--json")
    from sinr_adapters.harness.commands import main_evaluate

    load = [model_throughput._load()]
    # argparse keeps the last occurrence of an option: the user's arguments override the defaults
    args = [*base, *argv]
    rc = main_evaluate(args)
    if rc == 0 and json_out:
        _, out = _option(args, "--out")
        if out is None:
            raise SystemExit("--json needs the run's --out folder")
        load.append(model_throughput._load())
        path = Path(json_out)
        doc = result_document(Path(out) / "results.json", path.stem, load)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1, allow_nan=True) + "\n")
    return int(rc)


if __name__ == "__main__":
    sys.exit(main())
