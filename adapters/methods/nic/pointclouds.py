"""Coloured point clouds made from bundled scikit-image images mapped onto procedural surfaces.

A cloud is ``size`` points spread evenly over a surface inside ``[-1, 1]^3`` (a Fibonacci lattice on the
sphere, a golden-ratio lattice on the torus, ...), each coloured by the image at its surface coordinates
``(u, v)`` in ``[0, 1]^2`` (bilinear, 8-bit levels). Nothing is downloaded: the images ship with
scikit-image (:mod:`sinr_adapters.framework.images`). Names are ``<surface>_<image>``, e.g. ``sphere_astronaut``.

Examples
--------
>>> c = load_cloud("sphere_astronaut", 256)
>>> c.positions.shape, c.colours.shape, float(c.colours.max()) <= 1.0
((256, 3), (256, 3), True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...framework.images import load_image

__all__ = ["CLOUDS", "HELD_OUT_CLOUDS", "SURFACES", "Cloud", "load_cloud"]

_GOLDEN = (1.0 + 5.0 ** 0.5) / 2.0


def _lattice(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` evenly spread ``(a, b)`` in ``[0, 1)^2`` (a golden-ratio lattice)."""
    i = np.arange(n, dtype=np.float64)
    return (i + 0.5) / n, np.mod(i / _GOLDEN, 1.0)


def _sphere(n: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = _lattice(n)
    z = 1.0 - 2.0 * a                       # uniform in z: equal-area (Fibonacci sphere)
    r, phi = np.sqrt(np.maximum(1.0 - z * z, 0.0)), 2.0 * np.pi * b
    pos = 0.9 * np.stack([r * np.cos(phi), z, r * np.sin(phi)], axis=-1)
    return pos, np.stack([b, a], axis=-1)


def _torus(n: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = _lattice(n)
    major, minor = 0.62, 0.28
    theta, phi = 2.0 * np.pi * b, 2.0 * np.pi * a
    ring = major + minor * np.cos(phi)
    pos = np.stack([ring * np.cos(theta), minor * np.sin(phi), ring * np.sin(theta)], axis=-1)
    return pos, np.stack([b, a], axis=-1)


def _wavy(n: int) -> tuple[np.ndarray, np.ndarray]:
    pos, uv = _sphere(n)
    r = np.linalg.norm(pos, axis=-1, keepdims=True)
    bump = 1.0 + 0.08 * np.sin(6 * np.pi * uv[:, :1]) * np.sin(4 * np.pi * uv[:, 1:])
    return pos / r * 0.82 * bump, uv


SURFACES: dict[str, Callable[[int], tuple[np.ndarray, np.ndarray]]] = {
    "sphere": _sphere, "torus": _torus, "wavy": _wavy}
"""Surface name -> ``n -> (positions (n, 3), uv (n, 2))``."""

_EVAL_IMAGES = ("astronaut", "coffee", "chelsea")
_HELD_IMAGES = ("rocket", "motorcycle", "immunohistochemistry", "retina")

CLOUDS: tuple[str, ...] = tuple(f"{s}_{i}" for s in SURFACES for i in (*_EVAL_IMAGES, *_HELD_IMAGES))
"""Every cloud name: each surface with each image."""

HELD_OUT_CLOUDS: tuple[str, ...] = tuple(f"{s}_{i}" for s in SURFACES for i in _HELD_IMAGES)
"""The default held-out clouds (for the meta-learned initialisation): never textured with an evaluated image."""


@dataclass(frozen=True)
class Cloud:
    """A coloured point cloud: ``positions`` float32 ``(N, 3)`` in ``[-1, 1]``, ``colours`` float32
    ``(N, 3)`` RGB in [0, 1] (8-bit levels for the bundled clouds).

    Any cloud can be built from arrays (``N >= 1``); positions are used as given (scale a scan into the
    cube first: the SIREN's sine frequencies are set for coordinates in ``[-1, 1]``), and colours must
    be RGB in [0, 1] (divide 8-bit colours by 255).

    Raises
    ------
    ValueError
        Shapes other than ``(N, 3)`` and ``(N, 3)`` with the same ``N >= 1``, non-finite values,
        positions outside ``[-1, 1]`` or colours outside [0, 1].
    """

    name: str
    positions: np.ndarray
    colours: np.ndarray

    def __post_init__(self) -> None:
        pos, col = np.asarray(self.positions), np.asarray(self.colours)
        if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] < 1:
            raise ValueError(f"cloud positions must be (N >= 1, 3), got shape {pos.shape}")
        if col.shape != pos.shape:
            raise ValueError(f"cloud colours must be RGB of every point, ({pos.shape[0]}, 3), got shape {col.shape}")
        for what, a, lo, hint in (("positions", pos, -1.0, "scale the cloud into the cube"),
                                  ("colours", col, 0.0, "divide 8-bit colours by 255")):
            if not (np.issubdtype(a.dtype, np.number) and np.all(np.isfinite(a))):
                raise ValueError(f"cloud {what} must be finite numbers")
            if float(a.min()) < lo or float(a.max()) > 1.0:
                raise ValueError(f"cloud {what} must lie in [{lo:g}, 1] ({hint}), got [{float(a.min()):g}, "
                                 f"{float(a.max()):g}]")


def load_cloud(name: str, size: int = 4096) -> Cloud:
    """Cloud ``name`` (``<surface>_<image>``, one of :data:`CLOUDS`) with ``size`` points.

    Raises
    ------
    KeyError
        Unknown name.
    ValueError
        ``size < 16``.
    """
    if name not in CLOUDS:
        raise KeyError(f"unknown point cloud {name!r}; bundled clouds: {', '.join(CLOUDS)}")
    if int(size) < 16:
        raise ValueError("size must be >= 16")
    surface, image = name.split("_", 1)
    pos, uv = SURFACES[surface](int(size))
    img = load_image(image, 128).astype(np.float64)
    h, w = img.shape[:2]
    x, y = uv[:, 0] * (w - 1), (1.0 - uv[:, 1]) * (h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    col = ((1 - fx) * (1 - fy) * img[y0, x0] + fx * (1 - fy) * img[y0, x1]
           + (1 - fx) * fy * img[y1, x0] + fx * fy * img[y1, x1])
    col = np.round(np.clip(col, 0.0, 1.0) * 255.0) / 255.0
    return Cloud(name, pos.astype(np.float32), col.astype(np.float32))
