"""The result record every adapter produces: one rate point (:class:`Result`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Result"]


@dataclass(kw_only=True)
class Result:
    """One rate point: one method, with or without SINR, on one signal.

    ``bytes`` is ``len()`` of the stream written; ``elements`` what the rate divides by (pixels, samples,
    points); ``bpp`` the rate in the method's rate unit (``8 * bytes / elements`` bits per pixel for images;
    ``extra["rate_unit"]`` names another); ``psnr`` the quality of the decoded signal in the method's metric
    (for images the PSNR of the decoded signal clamped to [0, 1] and rounded to 8 bits against the original
    8-bit signal; ``extra["metric"]`` names another), ``psnr_fitted`` the same for the uncompressed fitted
    model (None for a method without a network, which fits nothing: ``extra["anchor"]`` is then True).
    """

    method: str
    with_sinr: bool
    signal: str
    config: dict[str, Any]
    sinr: dict[str, Any] | None
    bytes: int
    elements: int
    bpp: float
    psnr: float
    psnr_fitted: float | None
    fit_seconds: float
    encode_seconds: float
    decode_seconds: float
    steps: int
    finetune_steps: int
    device: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Curve label: ``"coin"`` or ``"coin+sinr"`` (``"coin rate-aware"``, ``"coin rate-aware+SINR"``
        for the paths ``extra["path"]`` names)."""
        if self.extra.get("path"):
            return f"{self.method} {self.extra['path']}"
        return f"{self.method}+sinr" if self.with_sinr else self.method

    @property
    def rate_point(self) -> str:
        """The rate point's knob and value, e.g. ``"width=32"`` (older records only hold ``width``)."""
        return self.extra.get("point") or f"width={self.extra.get('width')}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe nested dict (``label`` included)."""
        d = asdict(self)
        d["label"] = self.label
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Result:
        """Inverse of :meth:`to_dict` (``label`` is ignored)."""
        return cls(**{k: v for k, v in d.items() if k != "label"})

    def to_row(self) -> dict[str, Any]:
        """Flat dict for CSV: ``config``, ``sinr`` and ``extra`` as compact JSON strings."""
        d = self.to_dict()
        for key in ("config", "sinr", "extra"):
            d[key] = json.dumps(d[key], sort_keys=True, separators=(",", ":"))
        return d
