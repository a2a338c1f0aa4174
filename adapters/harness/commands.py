"""``sinr evaluate``, ``sinr demo`` and ``sinr decode``: the harness on the command line.

Each is added to the ``sinr`` command through the entry-point group ``sinr_codecs.commands``
(:func:`add_evaluate`, :func:`add_demo`, :func:`add_decode`); :func:`main_evaluate`, :func:`main_demo` and
:func:`main_decode` run them stand-alone (``argv`` in, exit status out) for scripts and tests. Tables go to
standard output, progress, per-point lines and warnings to standard error. An installed adapter plugin
that breaks the protocol is named in a warning and left out; every other method still runs.

A run of INR methods also measures the installed methods without a network (the classic codecs: JPEG,
WebP, JPEG 2000, AVIF) on the same signals, so every summary compares each INR path with them
(:mod:`sinr_adapters.harness.anchors`); ``--method`` naming one of them runs just those named, and
``--no-anchors`` none.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sinr_codecs.entropy import CHOICES as ENTROPY_CHOICES
from sinr_codecs.entropy import INDEX_CODINGS
from sinr_codecs.options import BY_NAME as _SINR
from sinr_codecs.options import DEFAULT_SPARSITY, MAX_VALUE_BITS, MIN_VALUE_BITS, PRESETS
from sinr_codecs.options import parse as _parse_sinr

from ..framework.images import META_IMAGES
from ..framework.results import Result
from ..framework.spec import Option, OptionError, parse_assignment
from .config import EvalConfig
from .decode import decode_file, write_signal
from .evaluate import run
from .plugins import installed, method_spec
from .reporting import markdown_table, write_outputs
from .resume import load_previous, result_key

__all__ = ["DEMO", "add_decode", "add_demo", "add_evaluate", "main_decode", "main_demo", "main_evaluate"]

DEMO: dict[str, Any] = {
    "methods": ["coin"],
    "signals": ["astronaut"],
    "size": 64,
    "options": {"coin": {"widths": [16, 24, 32], "layers": 3}},
    "steps": 1000,
    "finetune_steps": 200,
    "sparsity": [0.25, 0.4],
    "value_bits": [8],
    "baseline_bits": [8, 16],
}
"""The embedded default of ``sinr demo`` (about a minute on 2 CPU cores)."""

_PRESET = PRESETS["default"]
"""The SINR options the evaluation uses when the command line leaves them unset."""


class _Formatter(argparse.HelpFormatter):
    """Shows ``(default: X)`` for options with a real default; lists comma-separated."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        d = action.default
        if d is None or d is False or d is argparse.SUPPRESS or "default" in text or d == []:
            return text
        if isinstance(d, (list, tuple)):
            d = ",".join(str(x) for x in d)
        return f"{text} (default: {str(d).replace('%', '%%')})"


def _list(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
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


_sparsity.__name__ = "a count or a fraction"


_KINDS: dict[Any, str] = {int: "an integer", float: "a number"}


def _sinr_value(name: str, kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type for one value of the SINR option ``name``: read as ``kind``, then checked by the
    option's one definition (:func:`sinr_codecs.options.parse`, whose message is shown)."""
    def parse(text: str) -> Any:
        try:
            value = kind(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: expected {_KINDS.get(kind, getattr(kind, '__name__', ''))}, "
                                             f"got {text!r}") from None
        try:
            return _parse_sinr(name, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = name
    return parse


def _sinr_list(name: str, kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """A comma-separated list of values of the SINR option ``name`` (:func:`_sinr_value` each)."""
    one = _sinr_value(name, kind)

    def parse(text: str) -> list[Any]:
        items = [t for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        return [one(t) for t in items]
    parse.__name__ = name
    return parse


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", help="folder for results.json, results.csv, results.md and rd.png; "
                                                "a rerun with the same DIR resumes, skipping finished points "
                                                "(default: ./sinr-evaluate; ./sinr-demo for the demo)")
    p.add_argument("--fresh", action="store_true",
                   help="discard the results already in --out instead of resuming from them")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch CPU threads (default: 1, as small networks run fastest on one; 0: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="network initialisation and dictionary seed")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="METHOD.OPTION=VALUE",
                   help="a method's own option, e.g. coinpp.patch=16 or coin.widths=16,24 (repeatable; "
                        "`sinr evaluate --help` lists each method's options as --METHOD-OPTION)")
    p.add_argument("--no-anchors", action="store_true",
                   help="do not add the classic codecs (installed methods without a network, `sinr adapters`) that "
                        "a run otherwise measures beside its INR methods, on the same signals, as reference curves "
                        "(naming one in --method runs just those named)")
    p.add_argument("--json", action="store_true", help="print results.json to standard output instead of the table")
    p.add_argument("--quiet", action="store_true", help="no per-point lines on standard error")
    p.add_argument("--save-streams", action="store_true",
                   help="also write every compressed stream to DIR/streams/ (sizes = the bytes counted), with "
                        "the shared state they need to decode (e.g. meta-learned base networks, .npz)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="progress bars with the time left on standard error (default: only on a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false")


def _installed(*, warn: bool = False) -> dict[str, Any]:
    """Every installed adapter that passes the plugin checks, by name; with ``warn``, each one that does not
    is named on standard error with what to fix (it is left out, the others run)."""
    ok, broken = installed()
    if warn:
        for name, error in broken.items():
            print(f"sinr: warning: skipping adapter plugin {name!r}: {error}", file=sys.stderr)
    return ok


def _option_type(opt: Option, method: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return opt.parse(text, method=method)
        except OptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = opt.type.__name__
    return parse


def _add_method_options(p: argparse.ArgumentParser) -> None:
    """One group per installed adapter: ``--METHOD-OPTION`` for each option it describes, plus the shared
    aliases (``--widths``) that set an option of every method declaring it."""
    aliases: dict[str, list[tuple[str, Any]]] = {}
    specs = _installed(warn=True)
    shared = p.add_argument_group("options shared by several methods (each also has its own flag below)")
    for method, spec in specs.items():
        g = p.add_argument_group(f"{method}: {spec.summary} (--method {method})")
        for opt in spec.options:
            for alias in opt.aliases:
                aliases.setdefault(alias, []).append((method, opt))
            default = opt.default if not opt.multiple else ",".join(str(v) for v in opt.default)
            text = f"{opt.help} (default: {default})".replace("%", "%%")
            dest = f"opt__{method}__{opt.name}"
            if opt.type is bool:
                g.add_argument(opt.flag(method), dest=dest, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=text)
            else:
                metavar = opt.type.__name__.upper() + ("[,...]" if opt.multiple else "")
                g.add_argument(opt.flag(method), dest=dest, type=_option_type(opt, method),
                               default=argparse.SUPPRESS, metavar=metavar, help=text)
    for alias, targets in sorted(aliases.items()):
        if any(alias == a.option_strings[0] for a in p._actions):
            continue
        first = targets[0][1]
        who = ", ".join(f"{m}.{o.name}" for m, o in targets)

        def check(text: str, targets: list[tuple[str, Option]] = targets) -> str:  # checked for every method
            for m, o in targets:
                _option_type(o, m)(text)
            return text
        check.__name__ = first.type.__name__
        shared.add_argument(alias, dest=f"alias__{alias.lstrip('-').replace('-', '_')}", type=check,
                            default=argparse.SUPPRESS,
                            metavar=first.type.__name__.upper() + ("[,...]" if first.multiple else ""),
                            help=f"sets {who}")
    p.set_defaults(_aliases={a: [(m, o.name) for m, o in t] for a, t in aliases.items()})


def _sources() -> dict[str, Any]:
    """The signal source of every installed adapter that describes one, by kind (first adapter wins)."""
    out: dict[str, Any] = {}
    for spec in _installed().values():
        try:
            src = spec.signal_source()
        except ValueError:
            continue
        out.setdefault(src.kind, src)
    return out


def _sources_help() -> str:
    parts = [f"{kind}: {', '.join(src.names)}" for kind, src in _sources().items() if kind != "image"]
    return "; ".join(parts) if parts else "other kinds: their adapters' signals"


def _sizes_help() -> str:
    parts = [f"{src.size_help} for {kind} (default {src.size})" for kind, src in _sources().items()]
    return "; ".join(parts) if parts else "side of the square crop in pixels (default 64)"


def _bits_help() -> str:
    """Each installed method's storage-bits knob, from its description."""
    parts = [f"{m}: {spec.bits}" for m, spec in _installed().items() if spec.bits is not None]
    return "; ".join(parts) if parts else "none installed describes one"


def _add_evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", type=_list(str), default=["coin"], metavar="M[,M]",
                   help="installed adapters (`sinr adapters`): " + ", ".join(_installed()))
    p.add_argument("--signals", "--images", dest="signals", type=_list(str), metavar="NAME[,NAME]",
                   help="the signals evaluated, by name in each method's signal source: bundled scikit-image "
                        "images for image methods (astronaut, coffee, chelsea, rocket, ...); "
                        + _sources_help() + " (default: each method's default signals; astronaut for images)")
    p.add_argument("--size", type=int, metavar="N",
                   help="signal size in each source's unit: " + _sizes_help())
    p.add_argument("--steps", type=int, default=1000, help="fitting steps (Adam)")
    p.add_argument("--lr", type=float, metavar="LR",
                   help="fitting learning rate (default: the adapter's; a method that fits by its own schedule, "
                        "e.g. a meta-learned inner loop, may ignore it)")
    p.add_argument("--batch-size", type=int, metavar="N", help="mini-batch size (default: full batch)")
    p.add_argument("--finetune-steps", type=int, default=200,
                   help="fine-tuning steps after compression starts, the same with and without SINR")
    p.add_argument("--finetune-lr", type=float, metavar="LR",
                   help="fine-tuning learning rate without SINR (default: the adapter's)")
    p.add_argument("--sinr-lr", type=float, metavar="LR",
                   help="fine-tuning learning rate with SINR (default: the adapter's)")
    p.add_argument("--sparsity", type=_sinr_list("sparsity", _sparsity), default=[DEFAULT_SPARSITY],
                   metavar="S[,S]", help="SINR atoms per vector: integers, or fractions of the vector length")
    p.add_argument("--value-bits", type=_sinr_list("value_bits", int), default=[_PRESET["value_bits"]],
                   metavar="B[,B]", help=f"SINR value bits ({MIN_VALUE_BITS}..{MAX_VALUE_BITS})")
    p.add_argument("--dictionary-ratio", type=_sinr_value("dictionary_ratio", float),
                   default=_SINR["dictionary_ratio"].default, metavar="R", help="SINR k2 / k1 (>= 1)")
    p.add_argument("--sinr-entropy", choices=ENTROPY_CHOICES, default=_PRESET["entropy"],
                   help="SINR's entropy back end")
    p.add_argument("--index-coding", choices=tuple(INDEX_CODINGS), default=_PRESET["index_coding"],
                   help="SINR's index coding (raw: the paper's, indices in selection order)")
    p.add_argument("--baseline-bits", type=_list(int), default=[], metavar="B[,B]",
                   help="bit-width search of the path without SINR, the fair baseline: each method's "
                        "storage-bits knob at these values (" + _bits_help() + ") (default: each method's own "
                        "setting)")
    p.add_argument("--rate-aware", type=_list(float), default=[], metavar="LAM[,LAM]",
                   help="also run rate-aware compression (learned steps, rate term, rANS; curves "
                        "'<method> rate-aware' and '<method> rate-aware+SINR'), one point per rate weight "
                        "(bits per pixel against MSE; try 3e-4,1e-3,3e-3)")
    p.add_argument("--rate-aware-seed", type=int, metavar="N",
                   help="with --rate-aware: also the curve '<method> rate-aware+seed', a network fitted from an "
                        "initialisation regenerated from seed N and coded as its difference from it (methods "
                        "without reference weights)")
    p.add_argument("--target-psnr", type=float, metavar="DB",
                   help="also report the smallest stream reaching this PSNR per method and image, with and "
                        "without SINR (auto-tuning over the paths run)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--no-sinr", action="store_true", help="only the methods as published")
    g.add_argument("--sinr-only", action="store_true", help="only the methods with SINR")
    p.add_argument("--meta-signals", "--meta-images", dest="held_out", type=_list(str), metavar="NAME[,NAME]",
                   help="held-out signals for a method's preparation (meta-learning; never an evaluated one); "
                        "default: each source's held-out signals (" + ",".join(META_IMAGES) + " for images)")
    _add_common(p)
    _add_method_options(p)


def _method_options(args: argparse.Namespace, methods: Sequence[str],
                    base: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Per-method options from the aliases, the ``--METHOD-OPTION`` flags and ``--set`` (in that order of
    precedence, lowest first); flags of methods not selected are ignored, ``--set`` for them is refused."""
    options: dict[str, dict[str, Any]] = {m: dict((base or {}).get(m, {})) for m in methods}
    for alias, targets in getattr(args, "_aliases", {}).items():
        text = getattr(args, f"alias__{alias.lstrip('-').replace('-', '_')}", None)
        for method, name in targets if text is not None else ():
            opt = method_spec(method)[1].option(name) if method in options else None
            if opt is not None and text is not None:
                options[method][name] = opt.parse(text, method=method)
    for dest, value in vars(args).items():
        if dest.startswith("opt__"):
            _, method, name = dest.split("__", 2)
            if method in options:
                options[method][name] = value
    for text in args.settings:
        method, name, value = parse_assignment(text)
        _, spec = method_spec(method)
        if method not in options:
            raise OptionError(f"--set {text}: {method} is not among the methods run ({', '.join(methods)})")
        opt = spec.option(name)
        if opt is None:
            known = ", ".join(o.name for o in spec.options) or "none"
            raise OptionError(f"--set {text}: {method} has no option {name!r} (its options: {known})")
        options[method][name] = opt.parse(value, method=method)
    return {m: o for m, o in options.items() if o}


def _with_anchors(methods: Sequence[str], args: argparse.Namespace) -> list[str]:
    """``methods`` and, unless ``--no-anchors`` or one of them already is one, every installed method without a
    network (a classic codec) whose signal kind one of them encodes."""
    specs = _installed()
    if args.no_anchors or any(m in specs and not specs[m].weights for m in methods):
        return list(methods)
    kinds = {specs[m].signal_source().kind for m in methods if m in specs}
    return [*methods, *(m for m, spec in specs.items()
                        if not spec.weights and m not in methods and spec.signal_source().kind in kinds)]


def _threads(n: int) -> int | None:
    if n < 0:
        raise ValueError(f"--threads must be >= 0 (0: torch's default), got {n}")
    return n or None


def _config_from_args(args: argparse.Namespace) -> EvalConfig:
    methods = _with_anchors(args.method, args)
    return EvalConfig(
        methods=methods, signals=args.signals, size=args.size, steps=args.steps, lr=args.lr,
        batch_size=args.batch_size, finetune_steps=args.finetune_steps, finetune_lr=args.finetune_lr,
        sinr_lr=args.sinr_lr, sparsity=args.sparsity, value_bits=args.value_bits,
        dictionary_ratio=args.dictionary_ratio, sinr_entropy=args.sinr_entropy, index_coding=args.index_coding,
        with_sinr=not args.no_sinr, without_sinr=not args.sinr_only,
        baseline_bits=args.baseline_bits, rate_aware=args.rate_aware,
        rate_aware_seed=args.rate_aware_seed, target_psnr=args.target_psnr,
        **({"held_out": args.held_out} if args.held_out else {}),
        options=_method_options(args, methods), device=args.device, seed=args.seed,
        threads=_threads(args.threads))


def _quiet(msg: str) -> None:
    """A log that drops every line (``--quiet``)."""


def _run(cfg: EvalConfig, args: argparse.Namespace, *, name: str, default_out: str) -> int:
    out = Path(args.out or default_out)
    done = [] if args.fresh else load_previous(out, cfg)
    if done:
        print(f"{name}: resuming from {out / 'results.json'}: {len(done)} point(s) already measured",
              file=sys.stderr)

    def checkpoint(results: list[Result]) -> None:  # every finished point reaches the disk at once
        write_outputs(results, out, config=cfg, name=name, complete=False)

    results = run(cfg, progress=args.progress, log=_quiet if args.quiet else None,
                  streams_dir=out / "streams" if args.save_streams else None, done=done, on_result=checkpoint)
    planned = {result_key(r) for r in results}
    results += [r for r in done if result_key(r) not in planned]  # points of an earlier plan are kept
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
    demo = {k: v for k, v in DEMO.items() if k not in ("options", "methods")}
    methods = _with_anchors(DEMO["methods"], args)
    cfg = EvalConfig(**demo, methods=methods, options=_method_options(args, methods, DEMO["options"]),
                     device=args.device, seed=args.seed, threads=_threads(args.threads))
    return _run(cfg, args, name="sinr-demo", default_out="sinr-demo")


_EVAL_HELP = "rate–distortion of INR methods with and without SINR (images, occupancy, audio, point clouds)"
_EVAL_DESC = ("Fit each method's network to each signal once, compress it the method's own way and with "
              "SINR (the same number of fine-tuning steps for both), decode, and write results.json, "
              "results.csv, results.md and a rate-vs-quality plot rd.png to --out (bpp vs PSNR for images, "
              "bytes vs IoU for occupancy, bits per sample vs SNR for audio, bits per point vs Y-PSNR for "
              "point-cloud attributes: each adapter names its signals, metric and rate unit). Prints the table. Every "
              "installed adapter (entry-point group sinr_codecs.adapters) can be run; its own options are "
              "set with --set METHOD.OPTION=VALUE or --METHOD-OPTION. The installed classic codecs (methods "
              "without a network, so without a path with SINR) are measured beside the INR methods on the same "
              "signals, whole files counted, and the table gives every INR path's BD-rate against them and "
              "against the best of them (--no-anchors: leave them out). Each finished point is written at "
              "once, and a rerun with the same --out resumes.")
_DEMO_HELP = "COIN vs COIN+SINR and the classic codecs on one bundled image (about a minute on 2 CPU cores)"
_DEMO_DESC = (f"The harness on an embedded default ({DEMO['signals'][0]}, {DEMO['size']}x{DEMO['size']} px, "
              f"COIN widths {DEMO['options']['coin']['widths']}, {DEMO['options']['coin']['layers']} layers, "
              f"{DEMO['steps']} fitting + "
              f"{DEMO['finetune_steps']} fine-tuning steps, SINR sparsity {DEMO['sparsity']} at "
              f"{DEMO['value_bits'][0]} bits; COIN itself at float16 as published and, as a fair baseline, with "
              f"its hidden matrices as 8-bit integers; the classic codecs JPEG, WebP, JPEG 2000 and AVIF on the same "
              f"pixels): prints the table, SINR's saving at equal PSNR against both, every COIN path's BD-rate "
              f"against the best classic codec, and saves the plot (default folder sinr-demo).")


def add_evaluate(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sinr evaluate`` (entry point of the group ``sinr_codecs.commands``)."""
    p = subparsers.add_parser("evaluate", help=_EVAL_HELP, description=_EVAL_DESC,
                              formatter_class=_Formatter)
    _add_evaluate_args(p)
    p.set_defaults(func=_cmd_evaluate)


def add_demo(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sinr demo`` (entry point of the group ``sinr_codecs.commands``)."""
    p = subparsers.add_parser("demo", help=_DEMO_HELP, description=_DEMO_DESC,
                              formatter_class=_Formatter)
    _add_common(p)
    p.set_defaults(func=_cmd_demo)


def _side(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name.strip().isidentifier() or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE.npy, got {text!r}")
    return name.strip(), path


def _cmd_decode(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.exists() and not args.force:
        raise ValueError(f"{out} exists; pass -f to overwrite it")
    side = {name: np.load(path, allow_pickle=False) for name, path in args.side}
    decoded = decode_file(args.src, shared=args.shared, device=args.device, **side)
    write_signal(decoded.values, out, sample_rate=args.sample_rate)
    shape = "x".join(str(d) for d in decoded.values.shape)
    print(f"decoded a {decoded.method} stream ({decoded.kind}, {shape}) to {out}", file=sys.stderr)
    return 0


_DECODE_HELP = "decode an INR adapter stream (.sia) of any installed method to an image, waveform or array"
_DECODE_DESC = ("Decode a stream written by an INR adapter (sinr evaluate --save-streams writes them): the "
                "stream names its method, whose adapter renders the signal. The output's extension chooses the "
                "format: .png (images, 8-bit), .wav (waveforms, 16-bit PCM) or .npy (any signal, as decoded). "
                "A stream written relative to shared state (a meta-learned initialisation or base network) "
                "needs that file (--shared, the .npz saved beside the streams).")


def add_decode(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sinr decode`` (entry point of the group ``sinr_codecs.commands``)."""
    p = subparsers.add_parser("decode", help=_DECODE_HELP, description=_DECODE_DESC, formatter_class=_Formatter)
    p.add_argument("src", metavar="STREAM", help="the stream file (.sia)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the decoded signal: .png, .wav or .npy")
    p.add_argument("--shared", metavar="FILE", help="the shared state the stream was written with (.npz)")
    p.add_argument("--side", action="append", type=_side, default=[], metavar="NAME=FILE.npy",
                   help="side information the method needs to render (e.g. positions=cloud.npy for point-cloud "
                        "attributes); repeatable")
    p.add_argument("--sample-rate", type=int, default=16000, metavar="HZ", help="sample rate of a .wav output")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("-f", "--force", action="store_true", help="overwrite the output if it exists")
    p.set_defaults(func=_cmd_decode)


def _standalone(add: Callable[[Any], None], argv: Sequence[str] | None, prog: str) -> int:
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


def main_decode(argv: Sequence[str] | None = None) -> int:
    """``sinr decode`` without the ``sinr`` front end; returns the exit status."""
    return _standalone(add_decode, argv, "sinr decode")
