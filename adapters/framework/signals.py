"""Signals in a method's conventions: :class:`Signal`, and images turned into one.

A signal is samples of any kind (pixels, audio samples, points) with their coordinates. One that is not
an image may carry what the harness compares a rendering with (``reference``) and what its rate divides
by (``elements``). :func:`image_signal` is every image adapter's ``signal_from_image``: the methods
differ only in their coordinate grid (:mod:`sinr_adapters.framework.grids`), channel count and value
range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Signal", "image_array", "image_signal"]


@dataclass(frozen=True)
class Signal:
    """A sampled signal in a method's conventions.

    Attributes
    ----------
    coords : torch.Tensor
        ``(N, d)`` float32 coordinates.
    values : torch.Tensor
        ``(N, c)`` float32 values in the method's range (``value_range``).
    shape : tuple of int
        Grid shape followed by channels, e.g. ``(H, W, 3)``; ``prod(shape[:-1]) == N``.
    value_range : tuple of float
        ``(lo, hi)`` of the method's value range (``(0, 1)`` for COIN, ``(-1, 1)`` for INRIC).
    kind : str
        ``"image"``, or any other kind (``"audio"``, ``"occupancy"``, ``"point-cloud"``, ...) in the same
        layout.
    name : str
        Label for result tables.
    reference : numpy.ndarray or None
        What the harness's metric compares a rendering with (the shape of what the adapter renders, e.g.
        a dense occupancy grid while the network is trained on sampled points); None: the values in
        [0, 1] of ``shape`` (:meth:`unit_values`).
    elements : int or None
        What the rate divides by (pixels, samples, points); None: ``prod(shape[:-1])``.
    """

    coords: torch.Tensor
    values: torch.Tensor
    shape: tuple[int, ...]
    value_range: tuple[float, float] = (0.0, 1.0)
    kind: str = "image"
    name: str = ""
    reference: np.ndarray | None = None
    elements: int | None = None

    @property
    def num_points(self) -> int:
        """Samples the network is trained on (rows of ``coords``)."""
        return int(self.coords.shape[0])

    @property
    def peak(self) -> float:
        """Width of the value range (the PSNR peak in the method's units)."""
        return float(self.value_range[1] - self.value_range[0])

    @property
    def rate_elements(self) -> int:
        """What the rate divides by: :attr:`elements`, or the product of the grid shape."""
        return int(np.prod(self.shape[:-1])) if self.elements is None else int(self.elements)

    def target(self) -> np.ndarray:
        """What a rendering is measured against: :attr:`reference`, or :meth:`unit_values` as numpy."""
        return self.unit_values().cpu().numpy() if self.reference is None else np.asarray(self.reference)

    def to(self, device: torch.device | str) -> Signal:
        """The same signal with ``coords`` and ``values`` on ``device``."""
        return dataclasses.replace(self, coords=self.coords.to(device), values=self.values.to(device))

    def unit_values(self) -> torch.Tensor:
        """Values mapped to [0, 1], shape ``self.shape``."""
        lo, hi = self.value_range
        return ((self.values - lo) / (hi - lo)).reshape(self.shape)


def image_array(image: np.ndarray, channels: int) -> np.ndarray:
    """An image as float32 ``(H, W, C)`` in [0, 1] (uint8 scaled; grey replicated to 3 channels if asked)."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {img.shape}")
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    img = img.astype(np.float32)
    if img.shape[-1] == 1 and channels == 3:
        img = np.repeat(img, 3, axis=-1)
    if img.shape[-1] != channels:
        raise ValueError(f"image has {img.shape[-1]} channels, the adapter expects {channels}")
    if not np.isfinite(img).all() or img.min() < 0.0 or img.max() > 1.0:
        raise ValueError("image values must be finite and lie in [0, 1] (or be uint8)")
    return img


def image_signal(image: np.ndarray, *, channels: int, grid: Callable[[int, int], torch.Tensor],
                 value_range: tuple[float, float] = (0.0, 1.0), name: str = "") -> Signal:
    """An image as a :class:`Signal`: one sample per pixel, row-major.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)``, uint8 or float in [0, 1] (see :func:`image_array`).
    channels : int
        Channels the method expects (grey is replicated to 3).
    grid : callable
        ``grid(H, W)`` -> ``(H * W, 2)`` float32 coordinates in the method's convention
        (:mod:`sinr_adapters.framework.grids`).
    value_range : (float, float), default (0, 1)
        The method's value range: pixel values ``v`` in [0, 1] become ``v * (hi - lo) + lo``.
    name : str
        Label for result tables.

    Returns
    -------
    Signal
        ``coords (H * W, 2)``, ``values (H * W, C)`` float32, ``shape (H, W, C)``, kind ``"image"``.

    Examples
    --------
    >>> from sinr_adapters.framework.grids import linspace_grid
    >>> s = image_signal(np.zeros((4, 5), np.uint8), channels=3, grid=linspace_grid, value_range=(-1.0, 1.0))
    >>> s.shape, tuple(s.coords.shape), float(s.values.min())
    ((4, 5, 3), (20, 2), -1.0)
    """
    img = image_array(image, channels)
    h, w, c = img.shape
    values = torch.from_numpy(img.reshape(-1, c).astype(np.float32))
    lo, hi = float(value_range[0]), float(value_range[1])
    if (lo, hi) != (0.0, 1.0):
        values = values * (hi - lo) + lo
    return Signal(grid(h, w), values, (h, w, c), (lo, hi), "image", name)
