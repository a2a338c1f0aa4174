"""Which coder a tensor gets in whole-model compression: the global step, SINR, a per-tensor uniform
quantizer, the smaller of the last two, or none (exact).

The coder of every tensor that can be coded lossily is ``lossy=`` (``sinr compress --lossy``), unless a
``--policy PATTERN=POLICY`` override names another for it (the last matching pattern wins):

- ``"global"``: one quantizer step for the whole model (:mod:`sinr_codecs.allocation`); any floating-point
  tensor of :data:`~sinr_codecs.weights.MIN_GLOBAL_ELEMENTS` values or more, 1-D tensors included.
- ``"sinr"``: the SINR codec, for the tensors :func:`sinr_codecs.policy.choose_policy` gives to SINR
  (weight matrices; 1-D and tiny tensors stay exact unless an override names them).
- ``"uniform"``: :mod:`sinr_codecs.uniform`, at a relative error (``uniform:max_rel_error=0.02``) or a
  number of bits (``uniform:bits=8``); with neither, at the configuration's ``max_rel_error``.
- ``"best"``: code with SINR, then with a uniform quantizer at the relative error SINR reached, and keep
  the smaller (``best:KEY=VALUE,...`` sets the SINR options, as ``sinr:...`` does).
- ``"lossless"``: exact.

Integer tensors, scalars and tensors with NaN/inf are exact whatever the coder.

Examples
--------
>>> split_overrides({"*.weight": "best", "head.*": {"policy": "uniform", "bits": 8}})[0]
{'*.weight': 'sinr', 'head.*': 'sinr'}
>>> decide_mode("head.weight", "sinr", split_overrides({"head.*": "uniform"})[1], "sinr", global_ok=True)
('uniform', {})
>>> decide_mode("fc.bias", "lossless", [], "global", global_ok=True)
('global', {})
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

__all__ = ["MODES", "UNIFORM_OPTIONS", "split_overrides", "decide_mode", "parse_uniform_options"]

MODES = ("global", "sinr", "uniform", "best")
"""Lossy coders: what ``lossy=`` (``sinr compress --lossy``) accepts."""
POLICIES = (*MODES, "lossless")
"""What an override may name."""
UNIFORM_OPTIONS = ("max_rel_error", "bits")


def parse_uniform_options(options: Mapping[str, Any], where: str = "uniform") -> dict[str, Any]:
    """Validate the options of a ``uniform`` policy: at most one of ``max_rel_error`` (in (0, 1)) and
    ``bits`` (an int in [2, 24]); ``ValueError`` otherwise."""
    unknown = sorted(set(options) - set(UNIFORM_OPTIONS))
    if unknown:
        raise ValueError(f"{where}: unknown uniform option(s) {unknown}; known: {list(UNIFORM_OPTIONS)}")
    if len(options) > 1:
        raise ValueError(f"{where}: give max_rel_error or bits, not both")
    out: dict[str, Any] = {}
    if "max_rel_error" in options:
        from sinr_codecs.options import parse_max_rel_error

        out["max_rel_error"] = parse_max_rel_error(options["max_rel_error"])
    if "bits" in options:
        b = options["bits"]
        if isinstance(b, bool) or not isinstance(b, int) or not 2 <= b <= 24:
            raise ValueError(f"{where}: bits must be an integer in [2, 24], got {b!r}")
        out["bits"] = int(b)
    return out


def split_overrides(
        overrides: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[tuple[str, str, dict[str, Any]]]]:
    """Separate the lossy mode from the overrides :func:`~sinr_codecs.policy.choose_policy` reads.

    Returns
    -------
    policy_overrides : dict
        The overrides with ``uniform`` turned into ``"sinr"`` and ``best`` into ``sinr`` with its
        options (so that the policy's rules about what can be coded lossily apply to both).
    modes : list of (pattern, policy, uniform options)
        Every override in order, with its own policy name (``"sinr"``, ``"lossless"``, ``"uniform"``,
        ``"best"``).

    Raises
    ------
    ValueError
        A malformed override or bad uniform options.
    """
    policy_overrides: dict[str, Any] = {}
    modes: list[tuple[str, str, dict[str, Any]]] = []
    for pattern, spec in (overrides or {}).items():
        if isinstance(spec, str):
            policy, options = spec, {}
        elif isinstance(spec, Mapping):
            options = dict(spec)
            policy = options.pop("policy", "sinr")
        else:  # let choose_policy word the error
            policy_overrides[pattern] = spec
            continue
        if policy == "uniform":
            modes.append((pattern, policy, parse_uniform_options(options, f"policy override {pattern!r}")))
            policy_overrides[pattern] = "sinr"
        elif policy == "global":
            if options:
                raise ValueError(f"policy override {pattern!r}: the global coding takes no options (set the "
                                 "model's max_rel_error or step)")
            modes.append((pattern, policy, {}))
            policy_overrides[pattern] = "sinr"
        elif policy == "best":
            modes.append((pattern, policy, {}))
            policy_overrides[pattern] = {"policy": "sinr", **options} if options else "sinr"
        else:
            if policy not in ("sinr", "lossless"):
                raise ValueError(f"policy override {pattern!r}: policy must be one of {', '.join(POLICIES)}; "
                                 f"got {policy!r}")
            modes.append((pattern, policy, {}))
            policy_overrides[pattern] = spec
    return policy_overrides, modes


def decide_mode(name: str, policy: str, modes: list[tuple[str, str, dict[str, Any]]],
                lossy: str, *, global_ok: bool) -> tuple[str, dict[str, Any]]:
    """The coder of one tensor: ``"lossless"``, ``"global"``, ``"sinr"``, ``"uniform"`` or ``"best"``, and the
    uniform options that apply.

    ``policy`` is what :func:`~sinr_codecs.policy.choose_policy` decided (with the overrides from
    :func:`split_overrides`); the last matching override names the coder, else ``lossy``. ``global_ok``:
    whether the global coding may take the tensor (floating point, 16 values or more).
    """
    if lossy not in MODES:
        raise ValueError(f"lossy must be one of {MODES}, got {lossy!r}")
    mode, options = lossy, {}
    for pattern, p, opts in modes:
        if fnmatch.fnmatchcase(name, pattern):
            mode, options = p, opts
    if mode == "global":
        return ("global", {}) if global_ok else ("lossless", {})
    if policy != "sinr" or mode == "lossless":
        return "lossless", {}
    return mode, options
