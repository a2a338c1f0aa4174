"""Test images bundled with scikit-image (read from its package folder: never a download).

:func:`load_image` centre-crops to a square, resizes with anti-aliasing, and rounds to 8-bit levels, so
the target is exactly what an 8-bit image file would hold; values are float32 in [0, 1], shape
``(size, size, 3)``. Grey images are replicated to three channels.

Examples
--------
>>> img = load_image("astronaut", size=32)
>>> img.shape, img.dtype, float(img.min()) >= 0.0, float(img.max()) <= 1.0
((32, 32, 3), dtype('float32'), True, True)
"""

from __future__ import annotations

import functools
import os

import numpy as np

__all__ = ["IMAGES", "META_IMAGES", "available_images", "load_image"]

# name -> file in skimage/data (colour images first; every one ships with the scikit-image wheel)
IMAGES: dict[str, str] = {
    "astronaut": "astronaut.png",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "rocket": "rocket.jpg",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
    "retina": "retina.jpg",
    "motorcycle": "motorcycle_left.png",
    "camera": "camera.png",
    "coins": "coins.png",
    "moon": "moon.png",
    "brick": "brick.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
}

META_IMAGES: tuple[str, ...] = ("rocket", "motorcycle", "immunohistochemistry", "retina", "hubble_deep_field")
"""The default held-out images for meta-learning (INRIC's θ0, COIN++'s base network): never the
evaluation images (astronaut, coffee, chelsea, ...)."""


def available_images() -> list[str]:
    """Names accepted by :func:`load_image`."""
    return list(IMAGES)


def _data_dir() -> str:
    try:
        import skimage.data
    except ImportError as exc:  # pragma: no cover
        raise ImportError("the bundled test images need scikit-image: pip install 'sinr-codecs[inr]'") from exc
    return os.path.dirname(skimage.data.__file__)


@functools.lru_cache(maxsize=32)
def _read(name: str) -> np.ndarray:
    if name not in IMAGES:
        raise KeyError(f"unknown image {name!r}; bundled images: {', '.join(IMAGES)}")
    from skimage import io

    path = os.path.join(_data_dir(), IMAGES[name])
    if not os.path.exists(path):  # pragma: no cover - a trimmed scikit-image install
        raise FileNotFoundError(f"{path} is missing from this scikit-image install")
    img = io.imread(path)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.shape[-1] == 4:
        img = img[..., :3]
    return np.ascontiguousarray(img)


def load_image(name: str, size: int | None = 64) -> np.ndarray:
    """A bundled image, centre-cropped to a square and resized to ``size`` (``None``: crop only).

    Parameters
    ----------
    name : str
        One of :data:`IMAGES` (e.g. ``"astronaut"``, ``"coffee"``, ``"chelsea"``).
    size : int or None, default 64
        Side length in pixels.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(size, size, 3)``, values ``k / 255`` in [0, 1].
    """
    return _load(name, None if size is None else int(size)).copy()


@functools.lru_cache(maxsize=64)
def _load(name: str, size: int | None) -> np.ndarray:
    """:func:`load_image`'s array, computed once per name and size (a run loads each image at every rate point)."""
    img = _read(name)
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = img[top:top + side, left:left + side].astype(np.float64) / 255.0
    if size is not None and int(size) != side:
        if int(size) < 2:
            raise ValueError("size must be >= 2")
        from skimage.transform import resize

        img = resize(img, (int(size), int(size)), order=3, anti_aliasing=True, mode="reflect")
    img = np.round(np.clip(img, 0.0, 1.0) * 255.0) / 255.0
    return img.astype(np.float32)
