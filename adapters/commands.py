"""``sinr evaluate`` and ``sinr demo``: the rate–distortion harness on the command line.

Both are added to the ``sinr`` command through the entry-point group ``sinr_codecs.commands``
(:func:`add_evaluate`, :func:`add_demo`); :func:`main_evaluate` and :func:`main_demo` run them
stand-alone (``argv`` in, exit status out) for scripts and tests. Tables go to standard output,
progress and per-point lines to standard error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .images import META_IMAGES

__all__ = ["DEMO", "add_demo", "add_evaluate", "main_demo", "main_evaluate"]

DEMO: dict[str, Any] = {
    "methods": ["coin"],
    "images": ["astronaut"],
    "size": 64,
    "widths": [16, 24, 32],
    "layers": 3,
    "steps": 1000,
    "finetune_steps": 200,
    "sparsity": [0.25, 0.4],
    "value_bits": [8],
    "baseline_bits": [8, 16],
}
"""The embedded default of ``sinr demo`` (a few minutes on 2 CPU cores)."""


class _Formatter(argparse.HelpFormatter):
    """Shows ``(default: X)`` for options with a real default; lists comma-separated."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        d = action.default
        if d is None or d is False or d is argparse.SUPPRESS or "default" in text:
            return text
        if isinstance(d, (list, tuple)):
            d = ",".join(str(x) for x in d)
        return f"{text} (default: {str(d).replace('%', '%%')})"


def _list(kind):
    def parse(text: str) -> list:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        try:
            return [kind(t) for t in items]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def _sparsity(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", help="folder for results.json, results.csv, results.md and rd.png "
                                                "(default: ./sinr-evaluate; ./sinr-demo for the demo)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's choice; 1 for the demo)")
    p.add_argument("--seed", type=int, default=0, help="network initialisation and dictionary seed")
    p.add_argument("--json", action="store_true", help="print results.json to standard output instead of the table")
    p.add_argument("--quiet", action="store_true", help="no per-point lines on standard error")
    p.add_argument("--save-streams", action="store_true",
                   help="also write every compressed stream to DIR/streams/ (sizes = the bytes counted), with "
                        "the meta-learned base networks / initialisations they need to decode (.npz)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="progress bars on standard error (default: only on a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false")


def _add_evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", type=_list(str), default=["coin"], metavar="M[,M]",
                   help="any of coin, inric, coinpp, shacira")
    p.add_argument("--images", type=_list(str), default=["astronaut"], metavar="NAME[,NAME]",
                   help="bundled scikit-image images (astronaut, coffee, chelsea, rocket, ...)")
    p.add_argument("--size", type=int, default=64, help="side of the square crop in pixels")
    p.add_argument("--widths", type=_list(int), default=[16, 32], metavar="W[,W]",
                   help="COIN/INRIC hidden widths (their rate points)")
    p.add_argument("--layers", type=int, default=3,
                   help="sine layers (COIN's num_layers; INRIC gets hidden_layers = layers - 1)")
    p.add_argument("--steps", type=int, default=1000, help="fitting steps (Adam)")
    p.add_argument("--lr", type=float, metavar="LR",
                   help="fitting learning rate (default: coin/inric 1e-3, shacira 1e-2; COIN++ fits by its inner loop)")
    p.add_argument("--batch-size", type=int, metavar="N", help="mini-batch size (default: full batch)")
    p.add_argument("--finetune-steps", type=int, default=200,
                   help="fine-tuning steps after compression starts, the same with and without SINR")
    p.add_argument("--finetune-lr", type=float, metavar="LR",
                   help="fine-tuning learning rate without SINR (default: coin 1e-5, inric 1e-6, coinpp 3e-3, "
                        "shacira 1e-4)")
    p.add_argument("--sinr-lr", type=float, metavar="LR",
                   help="fine-tuning learning rate with SINR (default: coin/inric 1e-3, coinpp 3e-3, shacira 1e-2)")
    p.add_argument("--sparsity", type=_list(_sparsity), default=[0.25], metavar="S[,S]",
                   help="SINR atoms per vector: integers, or fractions of the vector length")
    p.add_argument("--value-bits", type=_list(int), default=[8], metavar="B[,B]", help="SINR value bits")
    p.add_argument("--dictionary-ratio", type=float, default=8.0, help="SINR k2 / k1")
    p.add_argument("--sinr-entropy", choices=("brotli", "rans", "raw"), default="brotli",
                   help="SINR's entropy back end")
    p.add_argument("--index-coding", choices=("delta", "raw"), default="delta",
                   help="SINR's index coding (raw: the paper's, indices in selection order)")
    p.add_argument("--baseline-bits", type=_list(int), default=[], metavar="B[,B]",
                   help="bit-width search of the path without SINR, the fair baseline: coin's hidden matrices "
                        "as B-bit uniform integers (16: COIN's float16), inric's quantizer, coinpp's latent "
                        "quantizer, shacira's MLP (mlp_bits: 32, 16 or 2..15) (default: each method's own setting)")
    p.add_argument("--target-psnr", type=float, metavar="DB",
                   help="also report the smallest stream reaching this PSNR per method and image, with and "
                        "without SINR (auto-tuning over the paths run)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--no-sinr", action="store_true", help="only the methods as published")
    g.add_argument("--sinr-only", action="store_true", help="only the methods with SINR")
    p.add_argument("--inric-bits", type=int, default=8, help="INRIC quantizer bits")
    p.add_argument("--inric-ff-dims", type=int, default=16, help="INRIC positional-encoding frequencies")
    p.add_argument("--inric-encoding-scale", type=float, default=1.4, help="INRIC positional-encoding scale")
    p.add_argument("--inric-l1", type=float, default=1e-6, help="INRIC L1 weight on theta - theta0")
    p.add_argument("--inric-meta-steps", type=int, default=0,
                   help="Reptile steps for INRIC's meta-learned init on held-out bundled images (0: none)")
    p.add_argument("--meta-images", type=_list(str), metavar="NAME[,NAME]",
                   help="held-out bundled images for meta-learning (INRIC's theta0, COIN++'s base network; "
                        "default: " + ",".join(META_IMAGES) + ")")
    c = p.add_argument_group("COIN++ (--method coinpp)")
    c.add_argument("--coinpp-latent-dims", type=_list(int), default=[8, 16], metavar="D[,D]",
                   help="latent length per patch (its rate points; one base network meta-learned per value)")
    c.add_argument("--coinpp-width", type=int, default=32, metavar="N", help="base network width")
    c.add_argument("--coinpp-layers", type=int, default=4, metavar="N", help="base network layers incl. the output layer")
    c.add_argument("--coinpp-patch", type=int, default=16, metavar="N", help="patch side in pixels")
    c.add_argument("--coinpp-bits", type=int, default=5, metavar="N", help="latent quantizer bits (2..8)")
    c.add_argument("--coinpp-inner-steps", type=int, default=3, metavar="N", help="SGD steps on the latents per image")
    c.add_argument("--coinpp-meta-steps", type=int, default=300, metavar="N", help="MAML outer steps of the base network")
    c.add_argument("--coinpp-meta-lr", type=float, default=1e-3, metavar="X", help="MAML outer learning rate (Adam)")
    c.add_argument("--coinpp-meta-batch", type=int, default=16, metavar="N", help="random crops per MAML outer step")
    c.add_argument("--coinpp-base", metavar="FILE",
                   help="a base file from COINppAdapter.save_base: no meta-learning, its latent length only")
    h = p.add_argument_group("SHACIRA (--method shacira)")
    h.add_argument("--shacira-table-sizes", type=_list(int), default=[8, 10], metavar="T[,T]",
                   help="log2 of the largest latent table per level (its rate points)")
    h.add_argument("--shacira-levels", type=int, default=8, metavar="N", help="hash-grid levels")
    h.add_argument("--shacira-base-resolution", type=int, default=4, metavar="N",
                   help="coarsest grid resolution (the finest is --size)")
    h.add_argument("--shacira-hidden", type=int, default=16, metavar="N", help="MLP width")
    h.add_argument("--shacira-rate-weight", type=float, default=2e-4, metavar="X", help="entropy-penalty weight lambda")
    h.add_argument("--shacira-sinr-latents", action="store_true",
                   help="with SINR, code the latent tables too (not only the MLP's weight matrices)")
    _add_common(p)


def _config_from_args(args: argparse.Namespace):
    from .evaluate import EvalConfig

    return EvalConfig(
        methods=args.method, images=args.images, size=args.size, widths=args.widths, layers=args.layers,
        steps=args.steps, lr=args.lr, batch_size=args.batch_size, finetune_steps=args.finetune_steps,
        finetune_lr=args.finetune_lr, sinr_lr=args.sinr_lr, sparsity=args.sparsity, value_bits=args.value_bits,
        dictionary_ratio=args.dictionary_ratio, sinr_entropy=args.sinr_entropy, index_coding=args.index_coding,
        with_sinr=not args.no_sinr, without_sinr=not args.sinr_only,
        baseline_bits=args.baseline_bits, target_psnr=args.target_psnr,
        inric_bits=args.inric_bits, inric_ff_dims=args.inric_ff_dims,
        inric_encoding_scale=args.inric_encoding_scale, inric_l1=args.inric_l1,
        inric_meta_steps=args.inric_meta_steps,
        **({"meta_images": args.meta_images} if args.meta_images else {}),
        **{k: getattr(args, k) for k in vars(args) if k.startswith(("coinpp_", "shacira_"))},
        device=args.device, seed=args.seed, threads=args.threads)


def _run(cfg, args: argparse.Namespace, *, name: str, default_out: str) -> int:
    from .evaluate import markdown_table, run, write_outputs

    log = (lambda msg: None) if args.quiet else None
    out = Path(args.out or default_out)
    results = run(cfg, progress=args.progress, log=log, streams_dir=out / "streams" if args.save_streams else None)
    paths = write_outputs(results, out, config=cfg, name=name)
    if args.json:
        sys.stdout.write(paths["json"].read_text())
    else:
        sys.stdout.write(markdown_table(results, target_psnr=cfg.target_psnr))
    sys.stdout.flush()
    print(f"wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    return _run(_config_from_args(args), args, name="sinr-evaluate", default_out="sinr-evaluate")


def _cmd_demo(args: argparse.Namespace) -> int:
    from .evaluate import EvalConfig

    # one thread unless asked: these tiny networks gain nothing from more, and lose a lot when threads contend
    cfg = EvalConfig(**DEMO, device=args.device, seed=args.seed, threads=args.threads or 1)
    return _run(cfg, args, name="sinr-demo", default_out="sinr-demo")


_EVAL_HELP = "rate–distortion of INR methods with and without SINR on bundled images"
_EVAL_DESC = ("Fit each method's network to each image once, compress it the method's own way and with "
              "SINR (the same number of fine-tuning steps for both), decode, and write results.json, "
              "results.csv, results.md and a bpp-vs-PSNR plot rd.png to --out. Prints the table.")
_DEMO_HELP = "COIN vs COIN+SINR on one bundled image (about a minute on 2 CPU cores)"
_DEMO_DESC = (f"The harness on an embedded default ({DEMO['images'][0]}, {DEMO['size']}x{DEMO['size']} px, "
              f"COIN widths {DEMO['widths']}, {DEMO['layers']} layers, {DEMO['steps']} fitting + "
              f"{DEMO['finetune_steps']} fine-tuning steps, SINR sparsity {DEMO['sparsity']} at "
              f"{DEMO['value_bits'][0]} bits; COIN itself at float16 as published and, as a fair baseline, with "
              f"its hidden matrices as 8-bit integers): prints the table, SINR's saving at equal PSNR against "
              f"both, and saves the plot (default folder sinr-demo).")


def add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sinr evaluate`` (entry point of the group ``sinr_codecs.commands``)."""
    p = subparsers.add_parser("evaluate", help=_EVAL_HELP, description=_EVAL_DESC,
                              formatter_class=_Formatter)
    _add_evaluate_args(p)
    p.set_defaults(func=_cmd_evaluate)


def add_demo(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sinr demo`` (entry point of the group ``sinr_codecs.commands``)."""
    p = subparsers.add_parser("demo", help=_DEMO_HELP, description=_DEMO_DESC,
                              formatter_class=_Formatter)
    _add_common(p)
    p.set_defaults(func=_cmd_demo)


def _standalone(add, argv: Sequence[str] | None, prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog.split()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add(sub)
    name = prog.split()[-1]
    try:
        args = parser.parse_args([name, *(sys.argv[1:] if argv is None else argv)])
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, ImportError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1


def main_evaluate(argv: Sequence[str] | None = None) -> int:
    """``sinr evaluate`` without the ``sinr`` front end; returns the exit status."""
    return _standalone(add_evaluate, argv, "sinr evaluate")


def main_demo(argv: Sequence[str] | None = None) -> int:
    """``sinr demo`` without the ``sinr`` front end; returns the exit status."""
    return _standalone(add_demo, argv, "sinr demo")
