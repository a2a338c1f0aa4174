"""The ``sinr`` command.

::

    sinr compress model.pt -o model.zarr [--max-rel-error 0.01 --lossy sinr --policy '*.bias=lossless' ...]
    sinr decompress model.zarr -o restored.pt
    sinr info model.zarr [--json]
    sinr adapters [--json]
    sinr --version

More subcommands come from the entry-point group ``sinr_codecs.commands``: each entry point loads to a
callable ``add(subparsers) -> None`` that adds its subparser and sets ``func`` (called with the parsed
namespace, returning an exit code or None) through ``set_defaults``. A plugin that fails to load is
skipped with a warning on standard error; plugins are loaded only when the command line needs them (help,
or a command that is not built in).

Results go to standard output, progress bars and messages to standard error. A user error (missing file,
unknown format, corrupt store, a pickle that is not a state_dict, a bad option value) prints one line,
``sinr: error: ...``, and exits with status 1 (2 for command-line usage errors), never a traceback;
``--traceback`` shows one for bug reports. :func:`main` takes ``argv`` and returns the exit status, so it
can be called in-process.

Interrupts: Ctrl-C (SIGINT), SIGTERM and SIGHUP stop a command at once; its temporary files are removed
and the previous output is left as it was. The command prints ``sinr: interrupted`` and exits with
128 + the signal number (130 for Ctrl-C). Run as a program (``argv`` not given), it then ends the process
without waiting for a worker thread still finishing its chunk of OMP.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from importlib.metadata import EntryPoint, PackageNotFoundError, entry_points, version
from typing import Any

from sinr_codecs import options

__all__ = ["main", "build_parser", "parse_policy", "COMMANDS_GROUP"]

COMMANDS_GROUP = "sinr_codecs.commands"
_BUILTIN = ("compress", "decompress", "info", "adapters")
_POLICY = re.compile(r"^(?P<pattern>.+?)=(?P<policy>global|sinr|lossless|uniform|best)(?::(?P<options>.*))?$")
WARN_REL_ERROR = 0.05
"""``sinr compress`` warns (one line on standard error) when a tensor's relative error exceeds this."""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` only for options that have a real default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _version() -> str:
    try:
        return version("sinr-codecs")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "unknown"


# --------------------------------------------------------------------------------------------------
# option types
# --------------------------------------------------------------------------------------------------
def _option_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_policy(text: str) -> tuple[str, Any]:
    """Parse ``PATTERN=POLICY[:KEY=VALUE,...]`` (the ``--policy`` option).

    POLICY is ``global`` (the model's one step), ``sinr``, ``lossless``, ``uniform`` (options
    ``max_rel_error`` or ``bits``) or ``best`` (SINR options; the smaller of SINR and uniform at equal error).

    Returns
    -------
    tuple
        ``(pattern, POLICY)`` or ``(pattern, {"policy": POLICY, **options})``; option values are read as
        JSON when they parse (``12``, ``0.5``, ``null``), else as strings.

    Examples
    --------
    >>> parse_policy("*.bias=lossless")
    ('*.bias', 'lossless')
    >>> parse_policy("net.0.*=sinr:sparsity=0.5,value-bits=12")
    ('net.0.*', {'policy': 'sinr', 'sparsity': 0.5, 'value_bits': 12})
    >>> parse_policy("head.*=uniform:bits=8")
    ('head.*', {'policy': 'uniform', 'bits': 8})
    """
    m = _POLICY.match(text)
    if not m:
        raise argparse.ArgumentTypeError(
            "expected PATTERN=POLICY or PATTERN=POLICY:KEY=VALUE,... with POLICY global, sinr, lossless, "
            f"uniform or best, got {text!r}")
    pattern, policy, options = m["pattern"], m["policy"], m["options"]
    if not options:
        return pattern, policy
    if policy == "lossless":
        raise argparse.ArgumentTypeError(f"policy lossless takes no options, got {text!r}")
    spec: dict[str, Any] = {"policy": policy}
    for item in options.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE in {text!r}, got {item!r}")
        spec[key.strip().replace("-", "_")] = _option_value(value.strip())
    return pattern, spec


# --------------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------------
def _cmd_compress(args: argparse.Namespace) -> int:
    from sinr_codecs import sensitivity
    from sinr_codecs.weights import compress_weights

    config = {o.name: getattr(args, o.name) for o in options.OPTIONS
              if o.cli and o.name != "device" and getattr(args, o.name) is not None}
    lossy = args.lossy or ("sinr" if set(config) - {"max_rel_error"} else "global")
    if lossy != "global" and (args.step is not None or args.sensitivities):
        raise ValueError("--step and --sensitivities set the global coding: use them with --lossy global")
    sens = sensitivity.load(args.sensitivities) if args.sensitivities else None
    report = compress_weights(args.src, args.output, codec_config=config,
                              policy_overrides=dict(args.policy or []), device=args.device,
                              progress=not args.quiet, overwrite=args.force, lossy=lossy, step=args.step,
                              sensitivities=sens, scheduler=args.scheduler)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif not args.quiet:
        print(report.format_table())
        print(f"wrote {report.destination} in {report.seconds:.1f} s")
    _warn_large_errors(report)
    return 0


def _warn_large_errors(report: Any, threshold: float = WARN_REL_ERROR) -> None:
    """One line on standard error naming the tensors whose relative error exceeds ``threshold``."""
    worst = report.large_errors(threshold)
    if not worst:
        return
    names = ", ".join(f"{t.name} {t.rel_error:.1%}" for t in worst[:3])
    more = f" and {len(worst) - 3} more" if len(worst) > 3 else ""
    print(f"sinr: warning: {len(worst)} tensor(s) restore with a relative error above {threshold:.0%} "
          f"({names}{more}); bound it with --max-rel-error (e.g. 0.01), or keep them exact with "
          "--policy 'NAME=lossless'", file=sys.stderr)


def _cmd_decompress(args: argparse.Namespace) -> int:
    from sinr_codecs.weights import decompress_weights, format_bytes

    report = decompress_weights(args.src, args.output, progress=not args.quiet, overwrite=args.force)
    if not args.quiet:
        sizes = f"{format_bytes(report.bytes_after)} -> {format_bytes(report.bytes_before)}"
        print(f"restored {len(report.tensors)} tensors to {report.destination} ({sizes}) "
              f"in {report.seconds:.1f} s")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from sinr_codecs.weights import inspect_store

    report = inspect_store(args.src)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format_table())
    return 0


def _cmd_adapters(args: argparse.Namespace) -> int:
    try:
        from sinr_codecs.registry import available_adapters
    except ImportError as exc:
        print(f"sinr: no adapter registry in this installation ({exc})", file=sys.stderr)
        return 1
    found: dict[str, EntryPoint] = dict(available_adapters())
    rows: list[dict[str, str | None]] = [{"name": name, "target": ep.value,
             "distribution": getattr(getattr(ep, "dist", None), "name", None)}
            for name, ep in sorted(found.items())]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no adapters installed (entry-point group sinr_codecs.adapters)")
    else:
        width = max(len(str(r["name"])) for r in rows)
        for r in rows:
            dist = f"  [{r['distribution']}]" if r["distribution"] else ""
            print(f"{r['name']:<{width}}  {r['target']}{dist}")
    return 0


# --------------------------------------------------------------------------------------------------
# the parser
# --------------------------------------------------------------------------------------------------
def build_parser(*, plugins: bool = True) -> argparse.ArgumentParser:
    """The ``sinr`` argument parser; with ``plugins``, the subcommands of installed plugins too."""
    parser = argparse.ArgumentParser(
        prog="sinr", formatter_class=lambda prog: _Formatter(prog, max_help_position=32),
        description="SINR weight-space compression: compress model files into Zarr stores and back.")
    parser.add_argument("--version", action="version", version=f"sinr {_version()}",
                        help="print the version and exit")
    parser.add_argument("--traceback", action="store_true",
                        help="on an error, show the full traceback (for bug reports)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND",
                                help="what to do; 'sinr COMMAND --help' describes each")

    p = sub.add_parser(
        "compress", formatter_class=_Formatter, help="compress a model file into a Zarr store",
        description="Compress every tensor of a model file (.pt/.pth/.bin/.ckpt state_dict, .safetensors, "
                    ".npz, or a sharded checkpoint's *.index.json) into a Zarr store (a directory, or a .zip). "
                    "By default every floating-point tensor is quantized with one step for the whole model, "
                    "chosen so that all its weights together are within --max-rel-error (0.02), and stored "
                    "with standard numcodecs codecs (FixedScaleOffset + PCodec); integer tensors and "
                    "scalars stay exact. --lossy sinr codes weight matrices with the SINR codec instead (each "
                    "row within --max-rel-error). Prints the per-tensor table (see also: sinr info).")
    p.add_argument("src", metavar="SRC", help="model file, or a sharded checkpoint's index, to compress")
    p.add_argument("-o", "--output", required=True, metavar="DST",
                   help="store to create: a directory (e.g. model.zarr) or a .zip file")
    g = p.add_argument_group(
        "coding options (--max-rel-error applies to every coding; the others to --lossy sinr/best, which they "
        "select when --lossy is not given; unset: the codec's or the preset's)")
    options.add_arguments(g)
    p.add_argument("--lossy", choices=("global", "sinr", "uniform", "best"), default=None,
                   help="how tensors are coded where no --policy names a coding: global, one quantizer step "
                        "for the whole model (the default); sinr, the SINR codec, every row within "
                        "--max-rel-error (the default when a SINR option such as --sparsity is given); "
                        "uniform, one step per tensor, each within --max-rel-error; best, the smaller of "
                        "sinr and uniform at the error SINR reached")
    p.add_argument("--step", type=float, metavar="S",
                   help="--lossy global: the quantizer step of the whole model, in the weights' units, "
                        "instead of a --max-rel-error target")
    p.add_argument("--sensitivities", metavar="FILE",
                   help="--lossy global: per-tensor sensitivities (JSON, written by "
                        "sinr_codecs.sensitivity.save from calibration inputs): finer steps where the outputs "
                        "are more sensitive, fewer bytes at equal task error")
    p.add_argument("--policy", action="append", type=parse_policy, metavar="PATTERN=POLICY",
                   help="per-tensor coding by name pattern (fnmatch), repeatable, later ones win; POLICY is "
                        "global, sinr, lossless, uniform or best: '*.bias=lossless', 'net.0.*=sinr', "
                        "'net.1.*=sinr:sparsity=0.5,value_bits=12', 'head.*=uniform:bits=8', "
                        "'fc.*=uniform:max_rel_error=0.01', '*.weight=best'")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="encode SINR chunks on a Dask cluster (e.g. tcp://10.0.0.5:8786; needs "
                        "sinr-codecs[dask] here and on the workers); the store is written here")
    p.add_argument("-f", "--force", action="store_true",
                   help="replace DST if it is a store written by sinr compress (nothing else: not a foreign zip "
                        "or folder); the old store stays until the new one is complete")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no table")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.set_defaults(func=_cmd_compress)

    p = sub.add_parser(
        "decompress", formatter_class=_Formatter, help="restore a model file from a Zarr store",
        description="Restore the model file from a store written by sinr compress: same tensor names, "
                    "shapes and dtypes. The suffix of DST picks the format (.pt/.pth/.bin/.ckpt, "
                    ".safetensors, .npz).")
    p.add_argument("src", metavar="SRC", help="store written by sinr compress (directory or .zip)")
    p.add_argument("-o", "--output", required=True, metavar="DST", help="model file to write")
    p.add_argument("-f", "--force", action="store_true",
                   help="replace DST if it is a regular file (never a folder), once the new file is complete")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(func=_cmd_decompress)

    p = sub.add_parser(
        "info", formatter_class=_Formatter, help="show what a store holds, per tensor",
        description="Per-tensor table of a store written by sinr compress (name, shape, dtype, policy, "
                    "bytes before and after, ratio, relative error measured at compression), read from "
                    "its metadata without decoding.")
    p.add_argument("src", metavar="SRC", help="store (directory or .zip)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("adapters", formatter_class=_Formatter, help="list installed INR-method adapters",
                       description="List the adapters found in the entry-point group sinr_codecs.adapters.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a list")
    p.set_defaults(func=_cmd_adapters)

    if plugins:
        _add_plugins(sub)
    return parser


def _add_plugins(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Let each ``sinr_codecs.commands`` entry point add its subcommand; skip broken ones (one that
    raises, or that tries to replace a built-in command: argparse refuses a second parser of a name)."""
    try:
        eps = sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name)
    except Exception as exc:  # pragma: no cover - broken metadata
        print(f"sinr: warning: cannot list command plugins: {exc}", file=sys.stderr)
        return
    for ep in eps:
        before = dict(sub.choices)
        n_help = len(sub._choices_actions)
        try:
            add = ep.load()
            add(sub)
        except Exception as exc:
            _restore(sub, before, n_help)
            print(f"sinr: warning: skipping command plugin {ep.name!r} ({ep.value}): "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        if any(sub.choices.get(n) is not p for n, p in before.items()):  # argparse < 3.11 allowed this
            _restore(sub, before, n_help)
            print(f"sinr: warning: skipping command plugin {ep.name!r} ({ep.value}): it redefines a "
                  "command", file=sys.stderr)


def _restore(sub: argparse._SubParsersAction[argparse.ArgumentParser], choices: dict[str, Any], n_help: int) -> None:
    sub.choices.clear()
    sub.choices.update(choices)
    del sub._choices_actions[n_help:]


def _command_of(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


# --------------------------------------------------------------------------------------------------
# signals
# --------------------------------------------------------------------------------------------------
class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that the same clean-up runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated(signum)


def _install_handlers() -> dict[int, Any]:
    """Make SIGTERM and SIGHUP raise :class:`_Terminated` (main thread only); return the old handlers.
    A signal someone chose to ignore (``SIG_IGN``, e.g. under nohup) stays ignored."""
    saved: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return saved
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        old = signal.getsignal(sig)
        if old is None or old is signal.SIG_IGN:
            continue
        signal.signal(sig, _raise_terminated)
        saved[sig] = old
    return saved


def _restore_handlers(saved: dict[int, Any]) -> None:
    for sig, old in saved.items():
        signal.signal(sig, old)


def _interrupted(exc: KeyboardInterrupt, *, program: bool) -> int:
    """Report an interrupt; its exit status (128 + signal number). As a program, end the process now:
    an abandoned worker thread may still be inside a long torch operation, and waiting for it (or tearing
    the interpreter down around it) takes seconds."""
    signum = exc.signum if isinstance(exc, _Terminated) else signal.SIGINT
    name = signal.Signals(signum).name
    print("sinr: interrupted" if signum == signal.SIGINT else f"sinr: interrupted ({name})", file=sys.stderr)
    status = 128 + int(signum)
    if program:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(status)
    return status


# --------------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sinr`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 success, 1 error, 2 command-line usage error, 128 + N after signal N (130 for
        Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
    """
    program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    wants_help = not argv or any(a in ("-h", "--help") for a in argv)
    parser = build_parser(plugins=command not in _BUILTIN if command else wants_help)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    func = getattr(args, "func", None)
    if func is None:
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        print(f"sinr: error: command {args.command!r} has no handler (a broken plugin?)", file=sys.stderr)
        return 1
    saved = _install_handlers()
    try:
        status = func(args)
    except KeyboardInterrupt as exc:
        return _interrupted(exc, program=program)
    except BrokenPipeError:  # e.g. `sinr info --json m.zarr | head`: the reader left, nothing to report
        _silence_stdout()
        return 1
    except (ValueError, TypeError, OSError, ImportError) as exc:  # user errors: one line, no traceback
        if args.traceback:
            raise
        print(f"sinr: error: {_message(exc)}", file=sys.stderr)
        return 1
    finally:
        _restore_handlers(saved)
    return 0 if status is None else int(status)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. captured in tests)
        pass


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    return str(exc).strip() or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
