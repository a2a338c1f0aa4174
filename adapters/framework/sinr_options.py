"""How SINR codes the tensors an adapter hands it: :class:`SINROptions`.

Every field is one of the codec's options (:data:`sinr_codecs.options.OPTIONS`) and is validated by the
same :func:`sinr_codecs.options.parse`, so a value the codec refuses is refused here with the same
message. Two meanings are the adapters' own: a stream codes several tensors, so ``seed`` is the first
tensor's seed and the ``i``-th coded tensor uses ``seed + i``; and the options the codec leaves to a
preset (``value_bits``, ``entropy``, ``index_coding``) have the ``"default"`` preset's values as defaults.
"""

from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass
from typing import Any

from sinr_codecs import options

__all__ = ["SINROptions"]

_PRESET = options.PRESETS["default"]
_UNSET = {**_PRESET, "sparsity": options.DEFAULT_SPARSITY}
"""What ``None`` stands for: the ``"default"`` preset's values, and the codec's fixed-sparsity default."""
_SHARED = ("sparsity", "dictionary_ratio", "value_bits", "seed", "layout", "block_size", "index_coding",
           "entropy", "device")

_SEED_LIMIT = "2**64" if options.MAX_SEED == (1 << 64) - 1 else str(options.MAX_SEED + 1)
_OWN_DOCS = {
    "sparsity": (f"int or float, default {options.DEFAULT_SPARSITY}",
                 "Nonzeros per vector: an int count (>= 1), or a float fraction in (0, 1) of the vector "
                 "length k1; clipped to k1 - 1."),
    "seed": (options.BY_NAME["seed"].type_doc,
             f"Dictionary seed of the first coded tensor, 0 <= seed < {_SEED_LIMIT}; the ``i``-th coded tensor "
             f"(in stream order) uses ``seed + i``, which must stay below {_SEED_LIMIT} too. Stored in each SINR "
             "section."),
    "value_bits": (f"int, default {_PRESET['value_bits']}",
                   f"Bits per stored sparse value, {options.MIN_VALUE_BITS}..{options.MAX_VALUE_BITS} (the core's "
                   "uniform quantizer). The SINR sections of an adapter stream are SparseCode streams, which hold "
                   f"up to {options.MAX_VALUE_BITS} bits. The codec's "
                   '``"auto"`` needs ``max_rel_error``, which adapters do not take (they fine-tune the '
                   "values instead)."),
}
"""The adapters' own wording of three options (their ranges and defaults still come from
:mod:`sinr_codecs.options`)."""


def _doc(name: str) -> str:
    if name in _OWN_DOCS:
        type_doc, text = _OWN_DOCS[name]
    else:
        o = options.BY_NAME[name]
        text, type_doc = o.doc, o.type_doc
        if name in _PRESET:  # the codec's "Unset: the preset's" becomes a plain default here
            text = text.split(" Unset:")[0]
            type_doc = type_doc.replace("optional", f'default "{_PRESET[name]}"')
    body = textwrap.wrap(text, 100, initial_indent="        ", subsequent_indent="        ")
    return "\n".join([f"    {name} : {type_doc}", *body])


@dataclass(frozen=True, kw_only=True)
class SINROptions:
    """How SINR codes the tensors an adapter hands it (passed to ``SparseCode.fit`` / ``to_bytes``).

    Every value is validated by :func:`sinr_codecs.options.parse` (a ``ValueError`` with the codec's
    message) and kept in its canonical form. ``None`` for ``value_bits``, ``entropy`` or ``index_coding``
    means the ``"default"`` preset's value (:data:`sinr_codecs.options.PRESETS`), and for ``sparsity``
    :data:`sinr_codecs.options.DEFAULT_SPARSITY` (adapters always code at a fixed sparsity and fine-tune).

    Parameters
    ----------
{parameters}

    Examples
    --------
    >>> SINROptions(sparsity=0.5, value_bits=10).to_dict()["value_bits"]
    10
    >>> SINROptions(seed=-1)
    Traceback (most recent call last):
    ...
    ValueError: seed must be an integer in [0, 18446744073709551615], got -1
    """

    sparsity: int | float = options.DEFAULT_SPARSITY
    dictionary_ratio: float = options.BY_NAME["dictionary_ratio"].default
    value_bits: int = _PRESET["value_bits"]
    seed: int = options.BY_NAME["seed"].default
    layout: str = options.BY_NAME["layout"].default
    block_size: int | None = options.BY_NAME["block_size"].default
    index_coding: str = _PRESET["index_coding"]
    entropy: str = _PRESET["entropy"]
    device: str = options.BY_NAME["device"].default

    def __post_init__(self) -> None:
        for name in _SHARED:
            value = getattr(self, name)
            if value is None and name in _UNSET:
                value = _UNSET[name]
            object.__setattr__(self, name, options.parse(name, value))
        if isinstance(self.value_bits, str):  # "auto", the only text the codec's option takes
            raise ValueError("value_bits='auto' searches the bits that meet max_rel_error, which SINROptions does "
                             "not take: give value_bits as an integer in [2, 24]")
        if self.layout == "blocks" and self.block_size is None:
            raise ValueError("layout='blocks' needs block_size")

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-safe dict (field order)."""
        return asdict(self)


SINROptions.__doc__ = (SINROptions.__doc__ or "").replace("{parameters}", "\n".join(_doc(n) for n in _SHARED))
