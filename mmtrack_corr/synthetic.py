"""Synthetic camera-motion data with exact motion: frame pairs (and, in :mod:`mmtrack_corr.synthetic_sequence`,
whole MOT sequences) rendered from real photographs.

A pair is two views of a photograph (the background) under a known camera motion, with textured sprites (objects
cut from *other* photographs of the same split: rectangles, ellipses and irregular polygons) pasted on top, each
moving on its own and occluding the others. Because every pixel is rendered through a known map, the dense motion
frame 1 -> frame 2 is exact:

- background pixel ``x``: ``T x - x``, with ``T`` the camera homography (frame-1 pixel -> frame-2 pixel);
- pixel of object ``k``: ``M_k x - x``, with ``M_k = O_k T`` the camera motion followed by the object's own motion
  ``O_k`` (rotation by up to 3 degrees and scale by up to 3 % about the object's camera-moved centre ``c' = T c``,
  then a translation ``d_k``). The object's own motion is therefore measured in frame-2 pixels, on top of the
  camera's.

Camera motion (:data:`SPEED_LEVELS`, numbers at the reference width 960 and scaled with the width): translation of
the image centre of up to 2 % / 5 % / 10 % of the width (uniform magnitude, uniform direction), rotation about the
image centre of up to 0.5 / 1.5 / 3 degrees, zoom by up to 1 / 2.5 / 5 %, and a perspective part that moves each image
corner by up to 0.2 / 0.5 / 1 % of the width. Objects: 16-200 px (side of a square of equal area, log-uniform,
aspect 0.4-2.5; scaled with ``sqrt(H W / (544 * 960))``), own translation uniform in a disc of radius 20 / 40 / 60 px
(scaled with the width), a quarter of them parked (no own motion).

Background: one photograph, mirrored at random and zoomed so that both frames' footprints fill 60-100 % of it, read
from the finest level of its Gaussian pyramid that is no finer than the frame (band-limited, so that resampling frame
2 at ``x + flow`` reproduces frame 1 closely). Sprites are placed uniformly (partly outside the image allowed), rotated
by up to 20 degrees; the render order is the depth order.

Conventions: pixel ``(col, row)`` has its centre at ``(x, y) = (col, row)``; boxes are xyxy pixels with
``x2 = rightmost column + 1`` (so ``w = x2 - x1`` counts columns); displacements are (dx, dy), positive right/down.
Photometric effects (:class:`~mmtrack_corr.synthetic_photometric.PhotometricEffects`) change appearance, never
positions: the flow is that of the clean frames.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from numpy.typing import NDArray

from mmtrack_corr.photos import resolve_photos
from mmtrack_corr.synthetic_photometric import PhotometricEffects, apply_photometric, resolve_photometric
from mmtrack_corr.synthetic_render import (
    Layer,
    Sprite,
    apply_h,
    exact_flow,
    make_sprite,
    photo_pyramid,
    render,
    similarity,
    sprite_box,
    translation,
    visibility_mask,
)

if TYPE_CHECKING:
    from mmtrack_corr.synthetic_sequence import SyntheticSequence, make_sequence

__all__ = [
    "SPEED_LEVELS",
    "CameraSpeed",
    "FramePair",
    "PhotometricEffects",
    "SyntheticSequence",
    "background_boxes",
    "camera_speed",
    "make_pair",
    "make_sequence",
]

#: Camera speed levels, slowest first.
SPEED_LEVELS = ("slow", "medium", "fast")

#: Reference frame size (H, W) at which sizes and speeds are stated; other sizes scale them.
REFERENCE_SIZE = (544, 960)


@dataclass(frozen=True)
class CameraSpeed:
    """Per-frame motion limits of one speed level, at the reference width 960 (scaled with the frame width).

    Attributes:
        translation: maximum translation of the image centre, as a fraction of the width.
        rotation_deg: maximum rotation about the image centre, degrees.
        zoom: maximum relative scale change (zoom in or out).
        perspective: maximum displacement of each image corner by the perspective part, fraction of the width.
        object_speed: maximum own translation of an object, pixels at width 960.
    """

    translation: float
    rotation_deg: float
    zoom: float
    perspective: float
    object_speed: float


_SPEEDS = {
    "slow": CameraSpeed(translation=0.02, rotation_deg=0.5, zoom=0.01, perspective=0.002, object_speed=20.0),
    "medium": CameraSpeed(translation=0.05, rotation_deg=1.5, zoom=0.025, perspective=0.005, object_speed=40.0),
    "fast": CameraSpeed(translation=0.10, rotation_deg=3.0, zoom=0.05, perspective=0.01, object_speed=60.0),
}


def camera_speed(speed: str) -> CameraSpeed:
    """The limits of a speed level.

    Raises:
        ValueError: ``speed`` is not in :data:`SPEED_LEVELS`.

    Example:
        >>> camera_speed("fast").translation
        0.1
    """
    if not isinstance(speed, str) or speed not in _SPEEDS:
        raise ValueError(f"speed: expected one of {', '.join(SPEED_LEVELS)}, got {speed!r}")
    return _SPEEDS[speed]


@dataclass(frozen=True)
class FramePair:
    """Two frames with their exact motion.

    Attributes:
        frame1: first frame, (H, W, 3) uint8 BGR.
        frame2: second frame, (H, W, 3) uint8 BGR.
        flow: exact motion of every frame-1 pixel to frame 2, (H, W, 2) float32 (dx, dy).
        valid: (H, W) bool, True where the frame-1 pixel is visible in frame 2 (inside the frame, not occluded, not
            an anti-aliased object edge at either end): there ``frame2`` at ``x + flow`` shows the same point.
        labels: (H, W) int32, the object id on top at each frame-1 pixel (alpha >= 0.5), 0 for background.
        boxes: amodal boxes of the objects in frame 1, (N, 4) float64 xyxy; they may extend past the image.
        ids: object ids, (N,) int64 (1-based; ``labels == ids[i]`` are object i's visible pixels).
        displacements: (N, 2) float64, the mean of ``flow`` over each object's visible frame-1 pixels
            (``labels == id``); equals the motion of the visible part's centroid for an affine motion.
        boxes2: the same objects' amodal boxes in frame 2, (N, 4) float64 xyxy (may lie partly or wholly outside).
        visibility: (N,) float64, visible frame-1 pixels / the object's full area (occlusion and image border).
        camera: camera homography frame-1 pixel -> frame-2 pixel, (3, 3) float64.
        motions: per-object homographies frame-1 pixel -> frame-2 pixel, (N, 3, 3) float64.
        background_photo: name of the background photograph.
        sprite_photos: names of the photographs the listed objects were cut from, one per object.
    """

    frame1: np.ndarray
    frame2: np.ndarray
    flow: NDArray[np.float32]
    valid: NDArray[np.bool_]
    labels: np.ndarray
    boxes: NDArray[np.float64]
    ids: NDArray[np.int64]
    displacements: NDArray[np.float64]
    boxes2: NDArray[np.float64]
    visibility: NDArray[np.float64]
    camera: NDArray[np.float64]
    motions: NDArray[np.float64]
    background_photo: str
    sprite_photos: tuple[str, ...]


# --------------------------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------------------------


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng: expected a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    return rng


def _check_int(value: object, name: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an int, got {value!r}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name}: expected an int {bound}, got {number}")
    return number


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} {value!r}")
    return bool(value)


# --------------------------------------------------------------------------------------------------------------------
# Scene sampling
# --------------------------------------------------------------------------------------------------------------------


def size_scale(height: int, width: int) -> float:
    """Object-size scale of a frame relative to the reference 544x960: ``sqrt(H W / (544 * 960))``."""
    return math.sqrt(height * width / float(REFERENCE_SIZE[0] * REFERENCE_SIZE[1]))


def sample_camera(
    rng: np.random.Generator, height: int, width: int, limits: CameraSpeed, perspective: bool
) -> NDArray[np.float64]:
    """Random camera homography (frame-1 pixel -> frame-2 pixel) within ``limits``."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    magnitude = rng.uniform(0.0, limits.translation * width)
    direction = rng.uniform(0.0, 2.0 * math.pi)
    angle = math.radians(rng.uniform(-limits.rotation_deg, limits.rotation_deg))
    zoom = math.exp(rng.uniform(-math.log1p(limits.zoom), math.log1p(limits.zoom)))
    tx, ty = magnitude * math.cos(direction), magnitude * math.sin(direction)
    camera = translation(cx + tx, cy + ty) @ similarity(angle, zoom) @ translation(-cx, -cy)
    if perspective and limits.perspective > 0:
        corners = np.array([[0.0, 0.0], [width - 1.0, 0.0], [width - 1.0, height - 1.0], [0.0, height - 1.0]])
        moved = apply_h(camera, corners) + rng.uniform(-1.0, 1.0, (4, 2)) * limits.perspective * width
        camera = cv2.getPerspectiveTransform(corners.astype(np.float32), moved.astype(np.float32)).astype(np.float64)
        camera /= camera[2, 2]
    return camera


def background_view(
    rng: np.random.Generator, photo: str, height: int, width: int, cameras: Sequence[NDArray[np.float64]]
) -> tuple[np.ndarray, NDArray[np.float64]]:
    """Choose the pyramid level and view (frame-1 pixel -> level pixel) so that every frame lies inside the photo.

    ``cameras`` map frame-1 pixels to each later frame's pixels. The photo is mirrored at random and zoomed so that
    the union of all frames' footprints fills 60-100 % of it along its tighter axis.
    """
    pyramid = photo_pyramid(photo)
    ph, pw = pyramid[0].shape[:2]
    corners = np.array([[0.0, 0.0], [width - 1.0, 0.0], [width - 1.0, height - 1.0], [0.0, height - 1.0]])
    pts = [corners] + [apply_h(np.linalg.inv(np.asarray(c, dtype=np.float64)), corners) for c in cameras]
    allpts = np.concatenate(pts)
    lo, hi = allpts.min(axis=0) - 2.0, allpts.max(axis=0) + 2.0
    span_w, span_h = hi - lo
    fit = min((pw - 1) / span_w, (ph - 1) / span_h)
    scale = fit * rng.uniform(0.6, 1.0)  # photo pixels per frame pixel
    off_x = rng.uniform(0.0, (pw - 1) - scale * span_w)
    off_y = rng.uniform(0.0, (ph - 1) - scale * span_h)
    view = translation(off_x, off_y) @ similarity(0.0, scale) @ translation(-lo[0], -lo[1])
    if rng.random() < 0.5:
        view = np.array([[-1.0, 0.0, pw - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ view
    # sample from the finest pyramid level that is no finer than the frame: band-limited, so both frames resample the
    # same smooth surface and re-interpolating frame 2 at ``x + flow`` reproduces frame 1 closely
    level = max(0, min(len(pyramid) - 1, int(math.ceil(math.log2(max(scale, 1e-6)) - 1e-9))))
    level_view = similarity(0.0, 0.5**level) @ view
    return pyramid[level], level_view


def sample_sprite_size(rng: np.random.Generator, scale: float, max_aspect: float = 2.5) -> tuple[int, int]:
    """Sprite (width, height): side of the equal-area square log-uniform in 16-200 px x scale, aspect w/h
    log-uniform in [0.4, max_aspect]."""
    lo, hi = 16.0 * scale, 200.0 * scale
    side = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    aspect = math.exp(rng.uniform(math.log(0.4), math.log(max_aspect)))
    w = min(hi, max(lo, side * math.sqrt(aspect)))
    h = min(hi, max(lo, side / math.sqrt(aspect)))
    return max(4, round(w)), max(4, round(h))


def pick_sprite_photo(rng: np.random.Generator, names: tuple[str, ...], background: str) -> str:
    """A photo for a sprite: any of ``names`` but the background's (when there is another)."""
    others = [n for n in names if n != background] or list(names)
    return others[int(rng.integers(len(others)))]


# --------------------------------------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------------------------------------


def make_pair(
    rng: np.random.Generator,
    height: int = 544,
    width: int = 960,
    speed: str = "medium",
    photos: str | Sequence[str] = "train",
    photometric: bool | PhotometricEffects = True,
    *,
    max_objects: int = 12,
    perspective: bool = True,
) -> FramePair:
    """Render two frames of a photographed scene under a random camera motion, with moving objects, and their motion.

    Args:
        rng: the only source of randomness (same generator state -> identical arrays).
        height: frame height in pixels, >= 64.
        width: frame width in pixels, >= 64.
        speed: camera speed level, one of :data:`SPEED_LEVELS` (see the module docstring for the numbers).
        photos: ``"train"``, ``"heldout"`` or a sequence of photo names (:mod:`mmtrack_corr.photos`); the background
            and every sprite come from these photos only.
        photometric: True for all photometric effects, False for none, or a
            :class:`~mmtrack_corr.synthetic_photometric.PhotometricEffects` choosing each.
        max_objects: the number of objects is uniform in ``[0, max_objects]`` (at most 254).
        perspective: add the perspective part of the camera motion (otherwise the camera motion is a similarity).

    Returns:
        A :class:`FramePair`; objects with no visible pixel in frame 1 are not listed.

    Raises:
        TypeError: ``rng`` is not a numpy Generator, or an argument has the wrong type.
        ValueError: a size below 64, an unknown speed level or photo, or ``max_objects`` out of range.

    Example:
        >>> pair = make_pair(np.random.default_rng(0), height=64, width=96)
        >>> pair.flow.shape
        (64, 96, 2)
    """
    _check_rng(rng)
    height = _check_int(height, "height", 64)
    width = _check_int(width, "width", 64)
    limits = camera_speed(speed)
    names = resolve_photos(photos)
    effects = resolve_photometric(photometric)
    max_objects = _check_int(max_objects, "max_objects", 0, 254)
    perspective = _check_bool(perspective, "perspective")

    size = (height, width)
    camera = sample_camera(rng, height, width, limits, perspective)
    bg_name = names[int(rng.integers(len(names)))]
    background, view1 = background_view(rng, bg_name, height, width, [camera])
    view2 = view1 @ np.linalg.inv(camera)

    scale = size_scale(height, width)
    max_own = limits.object_speed * width / REFERENCE_SIZE[1]
    sprites: list[Sprite] = []
    poses1: list[NDArray[np.float64]] = []
    poses2: list[NDArray[np.float64]] = []
    for _ in range(int(rng.integers(0, max_objects + 1))):  # render order = depth order, back to front
        sw, sh = sample_sprite_size(rng, scale)
        sprite = make_sprite(rng, pick_sprite_photo(rng, names, bg_name), sw, sh)
        centre = np.array([rng.uniform(0.0, width - 1.0), rng.uniform(0.0, height - 1.0)])
        scx, scy = sprite.centre
        pose1 = translation(*centre) @ similarity(math.radians(rng.uniform(-20, 20)), 1.0) @ translation(-scx, -scy)
        moved = apply_h(camera, centre)[0]
        if rng.random() < 0.25:
            own = np.eye(3)
        else:
            radius = max_own * math.sqrt(rng.random())
            heading = rng.uniform(0.0, 2.0 * math.pi)
            shift = moved + radius * np.array([math.cos(heading), math.sin(heading)])
            spin = similarity(math.radians(rng.uniform(-3, 3)), math.exp(rng.uniform(-0.03, 0.03)))
            own = translation(*shift) @ spin @ translation(-moved[0], -moved[1])
        sprites.append(sprite)
        poses1.append(pose1)
        poses2.append(own @ camera @ pose1)

    clean1, labels1, mixed1, layers1 = render(background, view1, size, sprites, poses1)
    clean2, labels2, mixed2, _ = render(background, view2, size, sprites, poses2)
    assert clean1 is not None and clean2 is not None  # a background was given
    if effects.any:
        centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
        cdx, cdy = apply_h(camera, centre)[0] - centre
        frame1, frame2 = apply_photometric(rng, (clean1, clean2), effects, (cdx, cdy))
    else:
        frame1, frame2 = clean1, clean2
    return assemble_pair(
        (frame1, frame2),
        camera,
        sprites,
        poses1,
        poses2,
        np.arange(1, len(sprites) + 1, dtype=np.int64),
        (labels1, mixed1, layers1),
        (labels2, mixed2),
        bg_name,
    )


def assemble_pair(
    frames: tuple[np.ndarray, np.ndarray],
    camera: NDArray[np.float64],
    sprites: Sequence[Sprite],
    poses1: Sequence[NDArray[np.float64]],
    poses2: Sequence[NDArray[np.float64]],
    ids: NDArray[np.int64],
    rendered1: tuple[np.ndarray, NDArray[np.bool_], list[Layer | None]],
    rendered2: tuple[np.ndarray, NDArray[np.bool_]],
    background_photo: str,
) -> FramePair:
    """Exact flow, validity, boxes and displacements of two rendered frames (shared by pairs and sequences).

    ``sprites``, ``poses1`` / ``poses2`` (sprite -> frame 1 / frame 2) and ``ids`` list the same objects in render
    order; ``rendered1`` is frame 1's (labels, mixed, layers) and ``rendered2`` frame 2's (labels, mixed) from
    :func:`~mmtrack_corr.synthetic_render.render` with these sprites in this order.
    """
    labels1, mixed1, layers1 = rendered1
    labels2, mixed2 = rendered2
    size = labels1.shape
    motions = [p2 @ np.linalg.inv(p1) for p1, p2 in zip(poses1, poses2, strict=True)]
    flow = exact_flow(size, camera, motions, labels1, layers1)
    valid = visibility_mask(flow, labels1, mixed1, labels2, mixed2)

    counts = np.bincount(labels1.ravel(), minlength=len(sprites) + 1)[1:]
    keep = [int(k) for k in np.flatnonzero(counts > 0)]
    displacements = np.zeros((len(keep), 2))
    for row, k in enumerate(keep):
        layer = layers1[k]
        assert layer is not None  # an object with visible pixels was rendered
        x0, y0, x1, y1 = layer.roi
        own_px = labels1[y0:y1, x0:x1] == k + 1
        displacements[row] = flow[y0:y1, x0:x1][own_px].astype(np.float64).mean(axis=0)
    to_id = np.zeros(len(sprites) + 1, np.int64)
    to_id[1:] = ids
    table = np.zeros((1, 256), np.int32)
    table[0, : len(sprites) + 1] = to_id
    return FramePair(
        frame1=frames[0],
        frame2=frames[1],
        flow=flow,
        valid=valid,
        labels=cv2.LUT(labels1, table),
        boxes=np.array([sprite_box(sprites[k], poses1[k]) for k in keep]).reshape(-1, 4),
        ids=to_id[np.array(keep, dtype=np.int64) + 1],
        displacements=displacements,
        boxes2=np.array([sprite_box(sprites[k], poses2[k]) for k in keep]).reshape(-1, 4),
        visibility=np.array([visible_fraction(sprites[k], poses1[k], int(counts[k])) for k in keep], dtype=np.float64),
        camera=camera,
        motions=np.array([motions[k] for k in keep]).reshape(-1, 3, 3),
        background_photo=background_photo,
        sprite_photos=tuple(sprites[k].photo for k in keep),
    )


def visible_fraction(sprite: Sprite, pose: NDArray[np.float64], visible_pixels: int) -> float:
    """Visible pixels over the object's full area in the frame (sprite area x the pose's area scale), at most 1."""
    area = sprite.area * abs(float(np.linalg.det(pose[:2, :2])))
    return min(1.0, visible_pixels / max(area, 1.0))


def background_boxes(
    rng: np.random.Generator, pair: FramePair, n: int, *, max_tries: int = 50
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Boxes on pure background and the camera motion over each, for "background box" error figures.

    Box sizes are drawn like object sizes (16-200 px at 544x960, scaled); integer corners, inside the image, with no
    object pixel (``labels != 0``) inside in frame 1. The displacement of a box is the mean of ``pair.flow`` over its
    pixels (pure camera motion there).

    Args:
        rng: random generator.
        pair: a pair from :func:`make_pair`.
        n: number of boxes wanted, >= 0.
        max_tries: candidate boxes drawn per wanted box before giving up (crowded frames).

    Returns:
        boxes (M, 4) float64 xyxy and displacements (M, 2) float64, with ``M <= n`` (fewer only when the frame is
        too crowded to find ``n`` free boxes within ``n * max_tries`` draws).

    Raises:
        TypeError: ``rng`` or ``pair`` of the wrong type.
        ValueError: ``n`` or ``max_tries`` out of range.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> boxes, disp = background_boxes(rng, make_pair(rng, height=64, width=96, max_objects=0), 3)
        >>> disp.shape
        (3, 2)
    """
    _check_rng(rng)
    if not isinstance(pair, FramePair):
        raise TypeError(f"pair: expected a FramePair, got {type(pair).__name__}")
    n = _check_int(n, "n", 0)
    max_tries = _check_int(max_tries, "max_tries", 1)
    height, width = pair.labels.shape
    occupied = cv2.integral((pair.labels > 0).astype(np.uint8))
    flow_sum = cv2.integral(np.ascontiguousarray(pair.flow.astype(np.float64)))
    scale = size_scale(height, width)
    boxes: list[list[float]] = []
    disps: list[NDArray[np.float64]] = []
    for _ in range(n * max_tries):
        if len(boxes) == n:
            break
        bw, bh = sample_sprite_size(rng, scale)
        bw, bh = min(bw, width), min(bh, height)
        x0 = int(rng.integers(0, width - bw + 1))
        y0 = int(rng.integers(0, height - bh + 1))
        x1, y1 = x0 + bw, y0 + bh
        if occupied[y1, x1] - occupied[y0, x1] - occupied[y1, x0] + occupied[y0, x0] > 0:
            continue
        total = flow_sum[y1, x1] - flow_sum[y0, x1] - flow_sum[y1, x0] + flow_sum[y0, x0]
        boxes.append([float(x0), float(y0), float(x1), float(y1)])
        disps.append(np.asarray(total, dtype=np.float64) / (bw * bh))
    return np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(disps, dtype=np.float64).reshape(-1, 2)


# Sequences build on the pair machinery above; they are re-exported here so that one module holds the public API.
# Loaded on first use (PEP 562): an import at the bottom of this module made ``import
# mmtrack_corr.synthetic_sequence`` fail when it was the first import of a process (a circular import).
def __getattr__(name: str) -> Any:
    if name in ("SyntheticSequence", "make_sequence"):
        from mmtrack_corr import synthetic_sequence

        return getattr(synthetic_sequence, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
