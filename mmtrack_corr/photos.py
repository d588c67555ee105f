"""Real photographs shipped inside installed wheels, split once into a training and a held-out set.

The synthetic motion data (:mod:`mmtrack_corr.synthetic`) renders its backgrounds and object sprites from these
photographs. They are read straight from the installed ``scikit-image`` (``skimage/data``) and ``scikit-learn``
(``sklearn/datasets/images``) packages; nothing is downloaded.

The split is fixed here, in code, so that every accuracy figure measured on :data:`HELDOUT_PHOTOS` is on images the
motion head never saw in training:

- :data:`TRAIN_PHOTOS` (13): astronaut, brick, camera, chelsea, china, coins, grass, hubble_deep_field, ihc, moon,
  page, retina, text.
- :data:`HELDOUT_PHOTOS` (6): coffee, flower, gravel, motorcycle_left, motorcycle_right, rocket.

``motorcycle_left`` and ``motorcycle_right`` are a stereo pair of one scene, so both sit on the same (held-out) side.
Left out: synthetic or nearly textureless images (``cell``, ``chessboard_*``, ``clock_motion``, ``color``,
``horse``, ``logo``, ``microaneurysms``, ``phantom``, the binary blobs) and multi-page or animated files.
Grayscale photographs are returned as 3-channel BGR with equal channels. ``retina`` is cut to the central 60 % of
each side (the rest of the file is black surround).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["HELDOUT_PHOTOS", "PHOTO_SETS", "TRAIN_PHOTOS", "load_photo", "photo_path", "resolve_photos"]

#: Photographs the motion head may train on.
TRAIN_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "china",
    "coins",
    "grass",
    "hubble_deep_field",
    "ihc",
    "moon",
    "page",
    "retina",
    "text",
)

#: Photographs reserved for measurement; disjoint from :data:`TRAIN_PHOTOS`.
HELDOUT_PHOTOS: tuple[str, ...] = (
    "coffee",
    "flower",
    "gravel",
    "motorcycle_left",
    "motorcycle_right",
    "rocket",
)

#: Named photo sets accepted wherever a ``photos`` argument is.
PHOTO_SETS: dict[str, tuple[str, ...]] = {"train": TRAIN_PHOTOS, "heldout": HELDOUT_PHOTOS}

_SKIMAGE_FILES = {
    "astronaut": "astronaut.png",
    "brick": "brick.png",
    "camera": "camera.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "coins": "coins.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "ihc": "ihc.png",
    "moon": "moon.png",
    "motorcycle_left": "motorcycle_left.png",
    "motorcycle_right": "motorcycle_right.png",
    "page": "page.png",
    "retina": "retina.jpg",
    "rocket": "rocket.jpg",
    "text": "text.png",
}
_SKLEARN_FILES = {"china": "china.jpg", "flower": "flower.jpg"}
# (top, bottom, left, right) fractions kept: the retina photograph is a disc on black; keep its inner square
_CROPS = {"retina": (0.2, 0.8, 0.2, 0.8)}


@functools.cache
def _package_dir(module: str, distribution: str) -> str:
    # locate the installed package without importing it (importing scikit-image or scikit-learn takes seconds)
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"photo_path: {distribution} is needed for the photographs: pip install {distribution}")
    return str(list(spec.submodule_search_locations)[0])


def photo_path(name: str) -> str:
    """Path of the named photograph inside its installed package.

    Args:
        name: a name from :data:`TRAIN_PHOTOS` or :data:`HELDOUT_PHOTOS`.

    Returns:
        Absolute file path.

    Raises:
        ValueError: unknown name.
        ImportError: the package that ships the photograph is not installed (message gives the install command).

    Example:
        >>> photo_path("coffee").endswith("coffee.png")
        True
    """
    if name in _SKIMAGE_FILES:
        return os.path.join(_package_dir("skimage", "scikit-image"), "data", _SKIMAGE_FILES[name])
    if name in _SKLEARN_FILES:
        return os.path.join(_package_dir("sklearn", "scikit-learn"), "datasets", "images", _SKLEARN_FILES[name])
    raise ValueError(f"name: expected one of {', '.join(TRAIN_PHOTOS + HELDOUT_PHOTOS)}, got {name!r}")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _without_icc_profile(data: bytes) -> bytes:
    """Drop a PNG's iCCP chunk (page.png's is malformed and makes libpng print a warning on every load)."""
    if not data.startswith(_PNG_SIGNATURE):
        return data
    out, pos = [data[:8]], 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 12 + length
        if data[pos + 4 : pos + 8] != b"iCCP":
            out.append(data[pos:end])
        pos = end
    return b"".join(out)


@functools.cache
def _load_cached(name: str) -> np.ndarray:
    path = photo_path(name)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        data = b""
    # grayscale files come back as 3 equal channels
    image = cv2.imdecode(np.frombuffer(_without_icc_profile(data), np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise FileNotFoundError(f"{path}: cannot read photograph {name!r} (is the package installation complete?)")
    if name in _CROPS:
        top, bottom, left, right = _CROPS[name]
        h, w = image.shape[:2]
        image = image[round(h * top) : round(h * bottom), round(w * left) : round(w * right)]
    image = np.ascontiguousarray(image)
    image.setflags(write=False)
    return image


def load_photo(name: str) -> np.ndarray:
    """Load a photograph as BGR uint8 (cached; the returned array is read-only, copy it before editing).

    Args:
        name: a name from :data:`TRAIN_PHOTOS` or :data:`HELDOUT_PHOTOS`.

    Returns:
        Image, shape (H, W, 3), uint8, BGR.

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: unknown name.
        FileNotFoundError: the file is missing from the installed package.

    Example:
        >>> load_photo("coffee").shape
        (400, 600, 3)
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a photo name (str), got {type(name).__name__}")
    return _load_cached(name)


def resolve_photos(photos: str | Sequence[str], argument: str = "photos") -> tuple[str, ...]:
    """Turn a ``photos`` argument (``"train"``, ``"heldout"`` or a sequence of names) into a tuple of names.

    Args:
        photos: a set name from :data:`PHOTO_SETS` or a non-empty sequence of photo names.
        argument: the argument name used in error messages.

    Returns:
        Photo names, in the given order.

    Raises:
        TypeError: ``photos`` is neither a str nor a sequence of str.
        ValueError: unknown set or photo name, or an empty sequence.

    Example:
        >>> resolve_photos("heldout")[:2]
        ('coffee', 'flower')
    """
    if isinstance(photos, str):
        if photos not in PHOTO_SETS:
            raise ValueError(f"{argument}: expected 'train', 'heldout' or a sequence of photo names, got {photos!r}")
        return PHOTO_SETS[photos]
    if not isinstance(photos, Sequence) or not all(isinstance(p, str) for p in photos):
        raise TypeError(f"{argument}: expected 'train', 'heldout' or a sequence of photo names (str), got {photos!r}")
    names = tuple(photos)
    if not names:
        raise ValueError(f"{argument}: expected at least one photo name, got an empty sequence")
    known = set(TRAIN_PHOTOS + HELDOUT_PHOTOS)
    unknown = [p for p in names if p not in known]
    if unknown:
        raise ValueError(f"{argument}: unknown photo name(s) {unknown}; known: {', '.join(sorted(known))}")
    return names
