"""A classic image codec through Pillow, as a method of the harness without a network.

:class:`PillowCodec` implements :class:`~sinr_adapters.framework.protocol.SignalCodec` for any format
Pillow writes; a subclass (:mod:`~sinr_adapters.methods.classic.formats`) names the format, its quality
range and default rate points, and its own encoder options. The file written is exactly what
``Image.save`` writes, container and headers included, and the harness counts all of it; decoding reads
the file back with Pillow (refusing another format), and the harness measures the decoded 8-bit pixels
against the same 8-bit pixels every INR method fits, with the same PSNR.

Pillow is imported only when a file is written or read, so the methods load (and ``sinr adapters`` lists
them) without it; :meth:`PillowCodec.unavailable` says what is missing, and the harness skips the method
with that message.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from sinr_codecs.errors import StreamError
from sinr_codecs.limits import get_limits

from ...framework.grids import pixel_grid
from ...framework.signals import Signal, image_signal
from ...framework.spec import AdapterSpec, Option
from .headers import header_bytes

__all__ = ["PillowCodec"]


class PillowCodec:
    """A classic image codec written and read by Pillow (subclass it to add a format).

    Parameters
    ----------
    quality : int or float, optional
        The encoder's quality (the rate knob; its range and meaning are the subclass's ``quality_help``);
        default ``default_quality``.
    **options
        The format's own encoder options (``own_options``), each checked against its
        :class:`~sinr_adapters.framework.spec.Option`; an unknown one raises ``TypeError``.

    Attributes
    ----------
    quality : int or float
    options : dict
        Every own option, defaults filled in (JSON-safe).
    """

    name: ClassVar[str]
    label: ClassVar[str]
    """The format's name for messages and tables (``"JPEG 2000"``)."""
    pillow_format: ClassVar[str]
    """Pillow's name of the format (``Image.save(format=...)``)."""
    feature: ClassVar[str]
    """``PIL.features`` name of the encoder this Pillow must have."""
    suffix: ClassVar[str]
    """The file-name suffix (``".jpg"``)."""
    quality_type: ClassVar[type] = int
    quality_range: ClassVar[tuple[float, float]] = (0, 100)
    quality_help: ClassVar[str] = "encoder quality"
    default_quality: ClassVar[float] = 75
    default_qualities: ClassVar[tuple[float, ...]] = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90)
    own_options: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, *, quality: float | None = None, **options: Any) -> None:
        cls = type(self)
        lo, hi = cls.quality_range
        one = Option("quality", cls.quality_type, cls.default_quality, cls.quality_help, minimum=lo, maximum=hi)
        self.quality = one.check(cls.default_quality if quality is None else quality, method=cls.name)
        known = {o.name: o for o in cls.own_options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(f"{cls.name}: unknown option(s) {unknown}; its options: quality, {', '.join(known)}")
        self.options = {n: o.check(options.get(n, o.default), method=cls.name) for n, o in known.items()}

    # ---- what the harness reads ------------------------------------------------------------------------
    @classmethod
    def describe(cls) -> AdapterSpec:
        """The harness runs the codec at each of its qualities (the rate points), on the bundled images,
        without a network (:class:`~sinr_adapters.framework.spec.AdapterSpec` with ``weights=False``)."""
        lo, hi = cls.quality_range
        qualities = Option("qualities", cls.quality_type, list(cls.default_qualities),
                           f"{cls.quality_help} (the rate points)", multiple=True, minimum=lo, maximum=hi)
        return AdapterSpec(summary=f"{cls.label} through Pillow: a classic codec, no network (a reference curve)",
                           options=(qualities, *cls.own_options), rate="qualities", rate_key="quality",
                           weights=False, unavailable=cls.unavailable, suffix=cls.suffix)

    @classmethod
    def unavailable(cls) -> str | None:
        """None when this Pillow writes and reads the format, else what is missing and how to install it."""
        try:
            import PIL
            from PIL import features
        except ImportError:
            return (f"{cls.label} needs Pillow, which is not installed: pip install 'sinr-codecs[inr]' (Pillow comes "
                    "with scikit-image) or pip install pillow")
        with warnings.catch_warnings():          # an older Pillow warns about a feature it does not know
            warnings.simplefilter("ignore")
            ok = bool(features.check(cls.feature))
        if ok:
            return None
        return (f"this Pillow ({PIL.__version__}) was built without {cls.label} "
                f"(PIL.features.check({cls.feature!r}) is False); install a Pillow wheel that includes it: "
                "pip install --upgrade pillow")

    def config(self) -> dict[str, Any]:
        """The constructor's arguments (JSON-safe)."""
        return {"quality": self.quality, **self.options}

    def with_config(self, config: Mapping[str, Any]) -> PillowCodec:
        return type(self)(**dict(config))

    def signal_from_image(self, image: np.ndarray, *, name: str = "") -> Signal:
        """The image as a :class:`~sinr_adapters.framework.signals.Signal` (RGB, values in [0, 1]; the
        coordinates are integer pixel positions, unused by a codec)."""
        return image_signal(image, channels=3, grid=pixel_grid, name=name)

    # ---- the file ----------------------------------------------------------------------------------------
    def save_options(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """Keyword arguments of ``Image.save`` for an image of ``shape`` ``(H, W, 3)`` (subclasses add theirs)."""
        return {"quality": self.quality, **self.options}

    def _require(self) -> None:
        why = self.unavailable()
        if why is not None:
            raise ImportError(why)

    def encode(self, signal: Signal) -> bytes:
        """The whole file for ``signal``'s 8-bit pixels (``round(255 * values)``), as Pillow writes it.

        Raises
        ------
        ValueError
            The signal is not an ``(H, W, 3)`` image.
        ImportError
            This Pillow cannot write the format (:meth:`unavailable`).
        """
        if signal.kind != "image" or len(signal.shape) != 3 or signal.shape[-1] != 3:
            raise ValueError(f"{self.name} codes (H, W, 3) images, got a {signal.kind} signal of shape {signal.shape}")
        self._require()
        from PIL import Image

        unit = signal.unit_values().detach().cpu().numpy()
        pixels = np.round(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format=self.pillow_format, **self.save_options(pixels.shape))
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        """The decoded image, float32 ``(H, W, 3)`` in [0, 1] (8-bit levels).

        Raises
        ------
        StreamError
            ``data`` is not a file of this format Pillow can read, or declares more pixels than
            :func:`sinr_codecs.limits.get_limits` allows (checked before decoding).
        """
        self._require()
        from PIL import Image

        try:
            with Image.open(io.BytesIO(bytes(data)), formats=[self.pillow_format]) as im:
                width, height = im.size
                if 4 * 3 * width * height > get_limits().max_output_bytes:
                    raise StreamError(f"{self.label} file declares {width}x{height} pixels, more than the "
                                      "decoded-output limit allows (sinr_codecs.limits)")
                rgb = np.asarray(im.convert("RGB"))
        except StreamError:
            raise
        except Exception as exc:  # Pillow's parsers raise OSError, SyntaxError, ValueError, RuntimeError, ...
            raise StreamError(f"not a readable {self.label} file ({type(exc).__name__}: {exc})") from exc
        return rgb.astype(np.float32) / np.float32(255.0)

    def stream_info(self, data: bytes) -> dict[str, Any]:
        """What the harness records about a file: ``header_bytes``, the bytes that are not coded image data
        (:func:`~sinr_adapters.methods.classic.headers.header_bytes`)."""
        return {"header_bytes": header_bytes(data, self.pillow_format)}
