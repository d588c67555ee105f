"""Rendering core of the synthetic motion data: photo pyramids, textured sprites, compositing and exact motion.

Geometry conventions (shared by :mod:`mmtrack_corr.synthetic` and :mod:`mmtrack_corr.synthetic_sequence`):

- Pixel coordinates are OpenCV's: pixel ``(col, row)`` has its centre at ``(x, y) = (col, row)``.
- Every map is a 3x3 homography acting on homogeneous pixel coordinates.
- A frame is rendered from a photograph by a *view* ``G`` (frame pixel -> photo pixel), so the camera motion from
  frame 1 to frame 2 is ``T = G2^-1 G1`` (frame-1 pixel -> frame-2 pixel).
- A sprite (an object) is placed by a *pose* ``S`` (sprite pixel -> frame pixel); the object's motion from frame 1 to
  frame 2 is ``M = S2 S1^-1``. The flow of a frame-1 pixel ``x`` is ``T x - x`` on background and ``M x - x`` on an
  object's pixel (both with the projective division), so it is exact by construction: no flow is estimated.

Nothing here validates arguments; the public functions of :mod:`mmtrack_corr.synthetic` do.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from mmtrack_corr.photos import load_photo

#: Alpha below this is "no object", above ``1 - _ALPHA_EPS`` "fully object"; in between a pixel is a mixed edge pixel.
_ALPHA_EPS = 0.02

FloatArray = NDArray[np.float64]


@functools.lru_cache(maxsize=64)
def photo_pyramid(name: str) -> tuple[np.ndarray, ...]:
    """Gaussian pyramid of a photograph (level ``L`` pixel ``x`` ~ level 0 pixel ``x * 2**L``); cached."""
    levels = [np.ascontiguousarray(load_photo(name))]
    while min(levels[-1].shape[:2]) >= 32:
        levels.append(cv2.pyrDown(levels[-1]))
    return tuple(levels)


@functools.lru_cache(maxsize=16)
def pixel_grid(height: int, width: int) -> NDArray[np.float32]:
    """(H, W, 2) float32 grid of pixel coordinates (x, y); cached, read-only."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    grid = np.ascontiguousarray(np.stack([xs, ys], axis=-1))
    grid.setflags(write=False)
    return grid


def translation(tx: float, ty: float) -> FloatArray:
    """3x3 translation matrix."""
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def similarity(angle_rad: float, scale: float) -> FloatArray:
    """3x3 rotation + uniform scale about the origin."""
    c, s = math.cos(angle_rad) * scale, math.sin(angle_rad) * scale
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def apply_h(matrix: FloatArray, points: FloatArray) -> FloatArray:
    """Apply a 3x3 homography to points of shape (N, 2), float64."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    hom = pts @ matrix[:, :2].T + matrix[:, 2]
    return hom[:, :2] / hom[:, 2:3]


def is_affine(matrix: FloatArray) -> bool:
    """True when the last row is (0, 0, 1) up to rounding."""
    return bool(abs(matrix[2, 0]) < 1e-12 and abs(matrix[2, 1]) < 1e-12 and abs(matrix[2, 2] - 1.0) < 1e-12)


def warp_inverse(
    image: np.ndarray, dst_to_src: FloatArray, size: tuple[int, int], border: int, border_value: float = 0.0
) -> np.ndarray:
    """Resample ``image`` at ``dst_to_src(x)`` for every destination pixel ``x`` (bilinear); size is (W, H)."""
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    if is_affine(dst_to_src):
        return cv2.warpAffine(image, dst_to_src[:2], size, flags=flags, borderMode=border, borderValue=border_value)
    return cv2.warpPerspective(image, dst_to_src, size, flags=flags, borderMode=border, borderValue=border_value)


@dataclass(frozen=True)
class Sprite:
    """A textured object cut from a photograph.

    Attributes:
        texture: BGR texture, shape (h, w, 3), uint8.
        alpha: coverage in [0, 1], shape (h, w), float32 (rectangles are all ones; irregular shapes anti-aliased).
        premultiplied: (B, G, R, alpha) with the colour multiplied by alpha, shape (h, w, 4), float32: resampled in
            one warp, and bilinear interpolation of premultiplied colour does not bleed the outside into edges.
        hull: convex hull of the pixels with alpha >= 0.5, shape (K, 2), float64 sprite pixel coordinates.
        area: number of sprite pixels with alpha >= 0.5.
        shape: "rectangle", "ellipse" or "polygon".
        photo: name of the source photograph.
    """

    texture: np.ndarray
    alpha: NDArray[np.float32]
    premultiplied: NDArray[np.float32]
    hull: FloatArray
    area: int
    shape: str
    photo: str

    @property
    def centre(self) -> tuple[float, float]:
        """Sprite-pixel centre ((w - 1) / 2, (h - 1) / 2)."""
        return ((self.alpha.shape[1] - 1) / 2.0, (self.alpha.shape[0] - 1) / 2.0)


SPRITE_SHAPES = ("rectangle", "ellipse", "polygon")


def make_sprite(rng: np.random.Generator, photo: str, width: int, height: int) -> Sprite:
    """Cut a ``width`` x ``height`` textured sprite of a random shape from ``photo``."""
    pyramid = photo_pyramid(photo)
    src = pyramid[0]
    ph, pw = src.shape[:2]
    # crop 0.5x-2x the sprite size (clipped to the photo), resized with area averaging: texture at varied scales
    zoom = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    cw = int(min(pw, max(4, round(width * zoom))))
    ch = int(min(ph, max(4, round(height * zoom))))
    x0 = int(rng.integers(0, pw - cw + 1))
    y0 = int(rng.integers(0, ph - ch + 1))
    crop = src[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    texture = cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=cv2.INTER_AREA)
    shape = SPRITE_SHAPES[int(rng.choice(3, p=[0.35, 0.3, 0.35]))]
    if shape == "rectangle":
        mask = np.full((height, width), 255, np.uint8)
    else:
        mask = np.zeros((height, width), np.uint8)
        shift = 4  # sub-pixel vertex precision for the anti-aliased drawing
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        if shape == "ellipse":
            axes = (max(1.0, cx * rng.uniform(0.85, 1.0)), max(1.0, cy * rng.uniform(0.85, 1.0)))
            centre = (round(cx * 16), round(cy * 16))
            cv2.ellipse(
                mask, centre, (round(axes[0] * 16), round(axes[1] * 16)), 0, 0, 360, 255, -1, cv2.LINE_AA, shift
            )
        else:
            n = int(rng.integers(5, 12))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radii = rng.uniform(0.45, 1.0, n)
            pts = np.stack([cx + cx * radii * np.cos(angles), cy + cy * radii * np.sin(angles)], axis=1)
            cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift)
    solid = mask >= 128
    if not solid.any():  # degenerate polygon on a tiny sprite: fall back to a rectangle
        mask[:] = 255
        solid[:] = True
        shape = "rectangle"
    # the hull of the solid pixels is the hull of each row's leftmost and rightmost solid pixel
    rows = np.flatnonzero(solid.any(axis=1))
    left = solid[rows].argmax(axis=1)
    right = width - 1 - solid[rows, ::-1].argmax(axis=1)
    extremes = np.concatenate([np.stack([left, rows], 1), np.stack([right, rows], 1)]).astype(np.int32)
    hull = cv2.convexHull(extremes.reshape(-1, 1, 2)).reshape(-1, 2).astype(np.float64)
    alpha = mask.astype(np.float32) / 255.0
    premultiplied = np.concatenate([texture.astype(np.float32) * alpha[..., None], alpha[..., None]], axis=-1)
    return Sprite(
        texture=texture,
        alpha=alpha,
        premultiplied=premultiplied,
        hull=hull,
        area=int(solid.sum()),
        shape=shape,
        photo=photo,
    )


def sprite_box(sprite: Sprite, pose: FloatArray) -> FloatArray:
    """Amodal xyxy box of a sprite under ``pose``: its solid pixels' centres mapped, ``[min, max + 1]``, unclipped."""
    pts = apply_h(pose, sprite.hull)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] + 1.0, hi[1] + 1.0])


@dataclass
class Layer:
    """Where one sprite landed in a rendered frame: its region of interest and coverage there."""

    roi: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), inside the frame
    alpha: NDArray[np.float32]  # (y1 - y0, x1 - x0)


def render(
    background: np.ndarray | None,
    view: FloatArray,
    size: tuple[int, int],
    sprites: list[Sprite],
    poses: list[FloatArray],
) -> tuple[np.ndarray | None, np.ndarray, NDArray[np.bool_], list[Layer | None]]:
    """Render a frame: the background photo level seen through ``view``, then the sprites back to front.

    Args:
        background: photo (pyramid level), (h, w, 3) uint8, seen as an infinite mirrored plane; None renders only
            the labels (the returned frame is None).
        view: frame pixel -> background pixel.
        size: (H, W).
        sprites: objects, back to front.
        poses: sprite pixel -> frame pixel, one per sprite.

    Returns:
        frame (H, W, 3) uint8; labels (H, W) uint8 (0 background, ``k + 1`` where sprite ``k`` is on top with alpha
        >= 0.5); mixed (H, W) bool (the top surface is a partially covering edge); layers (None when off-frame).
    """
    height, width = size
    frame = None if background is None else warp_inverse(background, view, (width, height), cv2.BORDER_REFLECT_101)
    labels = np.zeros((height, width), np.uint8)
    mixed = np.zeros((height, width), bool)
    layers: list[Layer | None] = []
    for k, (sprite, pose) in enumerate(zip(sprites, poses, strict=True)):
        sh, sw = sprite.alpha.shape
        corners = apply_h(pose, np.array([[-1.0, -1.0], [sw, -1.0], [sw, sh], [-1.0, sh]]))
        x0 = max(0, math.floor(corners[:, 0].min()))
        y0 = max(0, math.floor(corners[:, 1].min()))
        x1 = min(width, math.ceil(corners[:, 0].max()) + 1)
        y1 = min(height, math.ceil(corners[:, 1].max()) + 1)
        if x1 <= x0 or y1 <= y0:
            layers.append(None)
            continue
        to_sprite = np.linalg.inv(pose) @ translation(x0, y0)
        roi_size = (x1 - x0, y1 - y0)
        if frame is None:
            alpha = warp_inverse(sprite.alpha, to_sprite, roi_size, cv2.BORDER_CONSTANT, 0.0)
        else:
            warped = warp_inverse(sprite.premultiplied, to_sprite, roi_size, cv2.BORDER_CONSTANT, 0.0)
            alpha = np.ascontiguousarray(warped[..., 3])
            region = frame[y0:y1, x0:x1]
            region[...] = np.clip(region * (1.0 - warped[..., 3:]) + warped[..., :3] + 0.5, 0, 255).astype(np.uint8)
        labels[y0:y1, x0:x1][alpha >= 0.5] = k + 1
        sub_mixed = mixed[y0:y1, x0:x1]
        sub_mixed[alpha >= 1.0 - _ALPHA_EPS] = False
        sub_mixed |= (alpha > _ALPHA_EPS) & (alpha < 1.0 - _ALPHA_EPS)
        layers.append(Layer((x0, y0, x1, y1), alpha))
    return frame, labels, mixed, layers


def exact_flow(
    size: tuple[int, int],
    camera: FloatArray,
    motions: list[FloatArray],
    labels1: np.ndarray,
    layers1: list[Layer | None],
) -> NDArray[np.float32]:
    """Dense flow frame 1 -> frame 2: ``camera x - x`` on background, ``motions[k] x - x`` on sprite ``k``'s pixels.

    Returns:
        (H, W, 2) float32 (dx, dy).
    """
    height, width = size
    grid = pixel_grid(height, width)
    if is_affine(camera):
        target = cv2.transform(grid.reshape(-1, 1, 2), camera[:2]).reshape(height, width, 2)
    else:
        target = cv2.perspectiveTransform(grid.reshape(-1, 1, 2), camera).reshape(height, width, 2)
    flow = target - grid
    for k, layer in enumerate(layers1):
        if layer is None:
            continue
        x0, y0, x1, y1 = layer.roi
        own = labels1[y0:y1, x0:x1] == k + 1
        if not own.any():
            continue
        pts = grid[y0:y1, x0:x1][own].astype(np.float64)
        flow[y0:y1, x0:x1][own] = (apply_h(motions[k], pts) - pts).astype(np.float32)
    return flow


def visibility_mask(
    flow: NDArray[np.float32],
    labels1: np.ndarray,
    mixed1: NDArray[np.bool_],
    labels2: np.ndarray,
    mixed2: NDArray[np.bool_],
) -> NDArray[np.bool_]:
    """Frame-1 pixels whose flow is an exact, unambiguous target.

    A pixel is valid when its frame-2 position lies inside frame 2 (``0 <= x <= W - 1``, ``0 <= y <= H - 1``), the
    same surface is on top there (same label: not occluded, not disoccluded), and neither end is a mixed
    (partially covered) edge pixel; frame-2 positions within one pixel of a label edge are excluded too, so that a
    bilinear lookup there reads only the same surface.
    """
    height, width = labels1.shape
    grid = pixel_grid(height, width)
    map_x = np.ascontiguousarray(grid[..., 0] + flow[..., 0])
    map_y = np.ascontiguousarray(grid[..., 1] + flow[..., 1])
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    kernel = np.ones((3, 3), np.uint8)
    edge2 = (cv2.dilate(labels2, kernel) != cv2.erode(labels2, kernel)) | mixed2
    unsafe2 = cv2.dilate(edge2.astype(np.uint8), kernel)
    label_at = cv2.remap(labels2, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    unsafe_at = cv2.remap(unsafe2, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=1)
    return inside & (label_at == labels1) & (unsafe_at == 0) & ~mixed1
