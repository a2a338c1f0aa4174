"""Procedural 3-D shapes as signed distance functions (SDFs), for occupancy fields. Nothing is downloaded.

A shape is built from primitives (sphere, box, torus, capsule, ellipsoid) combined by union (``min``),
smooth union (polynomial smooth minimum), intersection and subtraction, inside the cube ``[-1, 1]^3``
(``y`` up). Negative distance is inside. :data:`SHAPES` names the bundled shapes; ``"statue"`` is a
statue-like figure (a pedestal, a body, a head, arms and legs, smoothly joined), the stand-in for the
scanned statues of the occupancy experiments in the INR literature.

Examples
--------
>>> s = load_shape("blobs", 16)
>>> occ = s.occupancy_grid()
>>> occ.shape, occ.dtype, 0.0 < float(occ.mean()) < 1.0
((16, 16, 16), dtype('bool'), True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["SHAPES", "Shape", "box", "capsule", "ellipsoid", "grid_points", "load_shape", "smooth_union", "sphere",
           "subtract", "torus", "union"]

SDF = Callable[[np.ndarray], np.ndarray]


def sphere(p: np.ndarray, centre: tuple[float, float, float], radius: float) -> np.ndarray:
    """Distance to a sphere; ``p`` ``(..., 3)``."""
    return np.linalg.norm(p - np.asarray(centre), axis=-1) - radius


def ellipsoid(p: np.ndarray, centre: tuple[float, float, float], radii: tuple[float, float, float]) -> np.ndarray:
    """Approximate distance to an axis-aligned ellipsoid (exact sign; the usual first-order bound)."""
    q = (p - np.asarray(centre)) / np.asarray(radii)
    k0 = np.linalg.norm(q, axis=-1)
    k1 = np.linalg.norm(q / np.asarray(radii), axis=-1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def box(p: np.ndarray, centre: tuple[float, float, float], half: tuple[float, float, float]) -> np.ndarray:
    """Distance to an axis-aligned box of half-sizes ``half``."""
    q = np.abs(p - np.asarray(centre)) - np.asarray(half)
    return np.linalg.norm(np.maximum(q, 0.0), axis=-1) + np.minimum(q.max(axis=-1), 0.0)


def torus(p: np.ndarray, centre: tuple[float, float, float], major: float, minor: float) -> np.ndarray:
    """Distance to a torus around the ``y`` axis (ring radius ``major``, tube radius ``minor``)."""
    q = p - np.asarray(centre)
    ring = np.hypot(q[..., 0], q[..., 2]) - major
    return np.hypot(ring, q[..., 1]) - minor


def capsule(p: np.ndarray, a: tuple[float, float, float], b: tuple[float, float, float], radius: float) -> np.ndarray:
    """Distance to the segment ``a``–``b`` minus ``radius``."""
    a_, b_ = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    pa, ba = p - a_, b_ - a_
    h = np.clip((pa @ ba) / float(ba @ ba), 0.0, 1.0)
    return np.linalg.norm(pa - h[..., None] * ba, axis=-1) - radius


def union(*d: np.ndarray) -> np.ndarray:
    return np.minimum.reduce(d)


def subtract(d: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """``d`` with ``cut`` removed."""
    return np.maximum(d, -cut)


def smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum of two distances (blend width ``k``)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1.0 - h) + a * h - k * h * (1.0 - h)


def _statue(p: np.ndarray) -> np.ndarray:
    pedestal = box(p, (0.0, -0.78, 0.0), (0.42, 0.12, 0.32))
    plinth = box(p, (0.0, -0.62, 0.0), (0.34, 0.05, 0.26))
    legs = union(capsule(p, (-0.1, -0.57, 0.0), (-0.12, -0.12, 0.02), 0.08),
                 capsule(p, (0.1, -0.57, 0.0), (0.13, -0.12, -0.03), 0.08))
    torso = ellipsoid(p, (0.0, 0.1, 0.0), (0.2, 0.3, 0.13))
    head = sphere(p, (0.02, 0.55, 0.02), 0.13)
    neck = capsule(p, (0.0, 0.35, 0.0), (0.01, 0.46, 0.01), 0.06)
    arms = union(capsule(p, (-0.2, 0.3, 0.0), (-0.38, 0.0, 0.12), 0.06),
                 capsule(p, (-0.38, 0.0, 0.12), (-0.3, -0.2, 0.25), 0.05),
                 capsule(p, (0.2, 0.3, 0.0), (0.42, 0.55, 0.05), 0.06),
                 capsule(p, (0.42, 0.55, 0.05), (0.45, 0.8, 0.1), 0.05))
    body = smooth_union(smooth_union(smooth_union(torso, legs, 0.08), neck, 0.05), head, 0.04)
    body = smooth_union(body, arms, 0.06)
    return union(body, smooth_union(pedestal, plinth, 0.02))


def _blobs(p: np.ndarray) -> np.ndarray:
    d = sphere(p, (-0.3, -0.2, 0.0), 0.35)
    for c, r in (((0.3, -0.1, 0.1), 0.3), ((0.0, 0.35, -0.1), 0.28), ((0.05, 0.0, 0.45), 0.2)):
        d = smooth_union(d, sphere(p, c, r), 0.2)
    return d


def _torus_box(p: np.ndarray) -> np.ndarray:
    block = subtract(box(p, (0.0, -0.35, 0.0), (0.5, 0.25, 0.5)), sphere(p, (0.0, -0.1, 0.0), 0.4))
    return union(block, torus(p, (0.0, 0.35, 0.0), 0.5, 0.12))


def _capsules(p: np.ndarray) -> np.ndarray:
    d = capsule(p, (-0.7, 0.0, 0.0), (0.7, 0.0, 0.0), 0.12)
    d = smooth_union(d, capsule(p, (0.0, -0.7, 0.0), (0.0, 0.7, 0.0), 0.12), 0.1)
    d = smooth_union(d, capsule(p, (0.0, 0.0, -0.7), (0.0, 0.0, 0.7), 0.12), 0.1)
    for s in (-1.0, 1.0):
        d = smooth_union(d, sphere(p, (0.7 * s, 0.0, 0.0), 0.2), 0.05)
        d = smooth_union(d, sphere(p, (0.0, 0.7 * s, 0.0), 0.2), 0.05)
    return d


SHAPES: dict[str, SDF] = {"statue": _statue, "blobs": _blobs, "torus_box": _torus_box, "capsules": _capsules}
"""The bundled shapes: name -> signed distance function on ``(..., 3)`` points in ``[-1, 1]^3``."""


CHUNK = 1 << 18
"""Grid points per signed-distance evaluation in :meth:`Shape.occupancy_grid` (bounds its working memory)."""


def _axis(size: int) -> np.ndarray:
    return (np.arange(size, dtype=np.float64) * 2.0 + 1.0) / size - 1.0


def grid_points(size: int) -> np.ndarray:
    """The cell centres of a ``size^3`` grid over ``[-1, 1]^3``, ``(size^3, 3)`` float32, index order
    ``(x, y, z)`` with ``z`` fastest (built in place: 12 bytes per cell)."""
    axis = _axis(size).astype(np.float32)
    g = np.empty((size, size, size, 3), dtype=np.float32)
    g[..., 0] = axis[:, None, None]
    g[..., 1] = axis[None, :, None]
    g[..., 2] = axis[None, None, :]
    return g.reshape(-1, 3)


@dataclass(frozen=True)
class Shape:
    """A named shape and the grid size its occupancy is evaluated on.

    Attributes
    ----------
    name : str
    sdf : callable
        Signed distance ``(..., 3) -> (...)`` (negative inside).
    size : int
        Side of the evaluation grid (the harness's ``--size``).
    """

    name: str
    sdf: SDF
    size: int

    def occupancy_grid(self) -> np.ndarray:
        """Occupancy of the ``size^3`` cell centres, bool ``(size, size, size)``.

        The signed distance is evaluated in float64 on :data:`CHUNK` cells at a time, so the working
        memory stays a few tens of MB whatever the grid (the result: one byte per cell)."""
        g = self.size
        axis = _axis(g).astype(np.float32).astype(np.float64)   # the float32 points the network is rendered on
        out = np.empty(g ** 3, dtype=bool)
        rows = max(1, CHUNK // (g * g))       # x-slabs per evaluation
        yz = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
        for i in range(0, g, rows):
            xs = axis[i:i + rows]
            pts = np.concatenate([np.repeat(xs, g * g)[:, None], np.tile(yz, (len(xs), 1))], axis=1)
            out[i * g * g:(i + len(xs)) * g * g] = self.sdf(pts) < 0.0
        return out.reshape((g,) * 3)

    def sample(self, count: int, *, near_fraction: float = 0.5, band: float = 0.05, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
        """Training points: ``count`` points, a ``near_fraction`` of them within ``band`` of the surface
        (points drawn uniformly, kept when ``|sdf| < band``), the rest uniform in the cube.

        Returns
        -------
        (points, occupancy)
            float32 ``(count, 3)`` and float32 ``(count,)`` in {0, 1}.
        """
        rng = np.random.default_rng(seed)
        n_near = int(round(count * near_fraction))
        near: list[np.ndarray] = []
        have = 0
        for _ in range(64):
            if have >= n_near:
                break
            cand = rng.uniform(-1.0, 1.0, size=(max(4 * (n_near - have), 1024), 3))
            keep = cand[np.abs(self.sdf(cand)) < band]
            near.append(keep)
            have += len(keep)
        pts = np.concatenate([*near, np.zeros((0, 3))])[:n_near]
        pts = np.concatenate([pts, rng.uniform(-1.0, 1.0, size=(count - len(pts), 3))])
        return pts.astype(np.float32), (self.sdf(pts) < 0.0).astype(np.float32)


def load_shape(name: str, size: int = 32) -> Shape:
    """The bundled shape ``name`` (one of :data:`SHAPES`) evaluated on a ``size^3`` grid.

    Raises
    ------
    KeyError
        Unknown name.
    ValueError
        ``size < 4``.
    """
    if name not in SHAPES:
        raise KeyError(f"unknown shape {name!r}; bundled shapes: {', '.join(SHAPES)}")
    if int(size) < 4:
        raise ValueError("size must be >= 4")
    return Shape(name, SHAPES[name], int(size))
