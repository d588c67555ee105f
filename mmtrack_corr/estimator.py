"""``MotionEstimator``: the learned motion model on video frames, per box or dense, and as a tracker motion source.

Frames are numpy uint8 images, (H, W, 3) BGR as OpenCV decodes them ((H, W) and (H, W, 1) grey are accepted), of
any size: each is resized (antialiased bilinear) to a *working size* that is a multiple of 32 and the motion is
mapped back to the given frame's pixels, per axis. Displacements are (dx, dy) from the previous frame to the current
one, in pixels, positive right/down; boxes are xyxy pixels of the previous frame.

The estimator fulfils ``trackers.MotionSource`` by shape (``estimator(prev_frame, frame, boxes)``) without this
package importing ``trackers``. It keeps the encoder features of the last two frames it saw, so a tracker that calls
it once per frame pays one encoder pass per frame; a frame is recognised by its content, so passing a different
``prev_frame`` than last time simply recomputes its features.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Literal, overload

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmtrack_corr.motion_head import MotionOutput
from mmtrack_corr.motion_model import MotionModel, load_motion_model
from mmtrack_corr.refine import (
    BOX_STEPS,
    BoxFit,
    box_pyramid,
    box_residual,
    box_structure,
    grey_image,
    image_gradients,
    refine_boxes,
    refine_flow,
)
from mmtrack_corr.runtime import keep_freed_memory

__all__ = [
    "DEFAULT_MAX_SIDE",
    "DEFAULT_BOX_REFINE",
    "DEFAULT_CAMERA_FALLBACK",
    "FLAT_TEXTURE",
    "DEFAULT_REFINE",
    "MotionEstimator",
    "box_mean",
    "default_motion_source",
    "read_box_motion",
]

#: Default longer side of the working size: the width of the shipped weights' last training stage (384x640).
DEFAULT_MAX_SIDE = 640
#: Default Lucas-Kanade refinement steps (:func:`mmtrack_corr.refine.refine_flow`) on the head's field: chosen on
#: training-photo tracking sequences (stage-3 weights, HOTA 57.80 -> 58.48 and IDF1 74.71 -> 75.22 with 3 steps; the
#: shipped weights track as well with 2 steps as with 3 - HOTA 58.51 vs 58.53 - at two thirds of the cost).
DEFAULT_REFINE = 2
#: Default of ``box_refine``: fit each box's own affine motion to the frames (:func:`mmtrack_corr.refine.refine_boxes`).
DEFAULT_BOX_REFINE = True
#: Default of ``camera_fallback`` (along the directions the frames cannot pin - a flat box, a single edge - a box
#: takes the camera's motion): on. Chosen on training photographs: 10 fast sequences track as without it (HOTA
#: 54.56 / IDSW 28 both), 24 fast pairs + 3 sequences have 33-34 % less background-box error (2.17 -> 1.44, 3.21 ->
#: 2.12 px) and no more moving-object error (10.94 -> 10.95, 3.60 -> 3.53 px). Its first version, which also refitted
#: boxes from the camera's motion, lowered that tracking (HOTA 54.45, IDSW 32: small moving objects took the camera's
#: motion) and was off by default.
DEFAULT_CAMERA_FALLBACK = True
#: ``camera_fallback``'s flat direction: an eigenvalue of :func:`mmtrack_corr.refine.box_structure` below this (grey
#: levels in [0, 1] per working pixel, squared) - about the floor that image noise of 2 grey levels in 255 gives.
FLAT_TEXTURE = 3e-5
_FLAT_RESIDUAL_RATIO = 1.2  # camera_fallback: a flat direction takes the camera's component only if the frames'
# residual at the result is at most this times the residual at the box's own motion (a blurred or faint object is
# flat but not indifferent to its motion); 2.0 before: 1.2 gave training-photo fast moving boxes 11.10 / 3.65 ->
# 10.95 / 3.53 px (pairs / sequences) for background 1.37 / 2.04 -> 1.44 / 2.12 px
_MULTIPLE = 32
_CACHE_FRAMES = 2


def box_mean(field: Tensor, boxes: Tensor, stride: float) -> Tensor:
    """Average a dense field over boxes, the tensor twin of ``trackers.displacements_from_flow(reduce="mean")``.

    Cell (i, j) of ``field`` covers the input pixels [j*stride, (j+1)*stride) x [i*stride, (i+1)*stride), centre
    ``(j*stride + (stride-1)/2, i*stride + (stride-1)/2)``. Each box averages the cells whose centres lie inside it;
    a box containing no cell centre reads the cell under its centre; boxes reaching outside are clipped to the field.

    Args:
        field: values per cell, shape (C, h, w), finite.
        boxes: boxes, shape (N, 4), xyxy input pixels.
        stride: input pixels per cell.

    Returns:
        Box averages, shape (N, C), float64, on the field's device.

    Example:
        >>> box_mean(torch.ones(2, 4, 5), torch.tensor([[0.0, 0.0, 16.0, 16.0]]), 8).shape
        torch.Size([1, 2])
    """
    channels, hh, ww = field.shape
    f = field.to(torch.float64)
    b = boxes.to(device=f.device, dtype=torch.float64)
    s = float(stride)
    off = (s - 1.0) / 2.0
    cx = (b[:, 0] + b[:, 2]) / 2
    cy = (b[:, 1] + b[:, 3]) / 2
    cj = torch.floor((cx + 0.5) / s).clamp(0, ww - 1).long()
    ci = torch.floor((cy + 0.5) / s).clamp(0, hh - 1).long()
    centre = f[:, ci, cj].T
    j0 = torch.ceil((b[:, 0] - off) / s).clamp(0, ww).long()
    j1 = torch.floor((b[:, 2] - off) / s).clamp(-1, ww - 1).long() + 1
    i0 = torch.ceil((b[:, 1] - off) / s).clamp(0, hh).long()
    i1 = torch.floor((b[:, 3] - off) / s).clamp(-1, hh - 1).long() + 1
    sat = F.pad(f.cumsum(1).cumsum(2), (1, 0, 1, 0))  # summed-area table: O(1) per box
    valid = (j1 > j0) & (i1 > i0)
    zero = torch.zeros_like(j0)
    j0, j1, i0, i1 = (torch.where(valid, a, zero) for a in (j0, j1, i0, i1))
    total = sat[:, i1, j1] - sat[:, i0, j1] - sat[:, i1, j0] + sat[:, i0, j0]
    count = ((j1 - j0) * (i1 - i0)).clamp(min=1).to(torch.float64)
    mean = (total / count).T
    return torch.where(valid[:, None], mean, centre) if channels else mean


def read_box_motion(
    motion: MotionOutput,
    boxes_xyxy: np.ndarray,
    *,
    scale: float | tuple[float, float] = 1.0,
    frame_size: tuple[int, int] | None = None,
    index: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-box displacement and predicted uncertainty from a head's dense output (box average, :func:`box_mean`).

    Args:
        motion: a head's output (flow and log_scale in pixels of the head's input images, ``stride``).
        boxes_xyxy: boxes, shape (N, 4), xyxy in *frame* pixels.
        scale: frame pixels per head-input pixel, one number or (sx, sy) (e.g. ``original / resized`` for a detector
            that resizes its input).
        frame_size: (H, W) of the frame: boxes are clipped to it first; None clips to the field only.
        index: which batch element of ``motion``.

    Returns:
        ``(displacements, sigma)``: (N, 2) float64 ``(dx, dy)`` in frame pixels, and (N,) float64, the box average of
        the Laplace scale b in frame pixels, the larger of the two axes.

    Example:
        >>> out = MotionOutput(torch.full((1, 2, 4, 6), 2.0), torch.zeros(1, 2, 4, 6), 8)
        >>> read_box_motion(out, np.array([[0.0, 0.0, 16.0, 16.0]]), scale=0.5)[0]
        array([[1., 1.]])
    """
    sx, sy = _scale_pair(scale)
    boxes = np.array(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    if frame_size is not None:
        boxes = _clipped(boxes, frame_size)
    work = torch.from_numpy(boxes / np.array([sx, sy, sx, sy]))
    field = torch.cat([motion.flow[index], motion.log_scale[index].exp().expand(2, -1, -1)], dim=0)
    values = box_mean(field, work, motion.stride).cpu().numpy()
    factor = np.array([sx, sy])
    return values[:, :2] * factor, (values[:, 2:4] * factor).max(axis=1)


def _scale_pair(scale: float | tuple[float, float]) -> tuple[float, float]:
    """``scale`` as (sx, sy): one number for both axes, or a pair."""
    return (float(scale), float(scale)) if isinstance(scale, (int, float)) else (float(scale[0]), float(scale[1]))


def _inner(boxes: np.ndarray, fraction: float) -> np.ndarray:
    """(N, 4) xyxy boxes shrunk about their centres to ``fraction`` of their width and height."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) / 2 * fraction
    return np.concatenate([centre - half, centre + half], axis=1)


def _clipped(boxes: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """(N, 4) float64 xyxy boxes clipped to a (H, W) frame (a new array)."""
    out = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    out[:, 0::2] = out[:, 0::2].clip(0.0, frame_size[1])
    out[:, 1::2] = out[:, 1::2].clip(0.0, frame_size[0])
    return out


class FrameImages(ABC):
    """A frame at the refinements' resolution: its pixels (to recognise it) and - computed on first use - its grey
    image (1, 1, H, W) in [0, 1], the image's gradients and the box fit's pyramid. Subclasses say where the grey
    image comes from (:meth:`_make_grey`)."""

    def __init__(self, frame: np.ndarray) -> None:
        self.frame = frame
        self._grey: Tensor | None = None
        self._gradients: Tensor | None = None
        self._pyramid: tuple[Tensor, ...] | None = None

    @abstractmethod
    def _make_grey(self) -> Tensor:
        """The grey image, (1, 1, H, W) in [0, 1] (called once, on first use)."""

    def grey(self) -> Tensor:
        if self._grey is None:
            self._grey = self._make_grey()
        return self._grey

    def gradients(self) -> Tensor:
        if self._gradients is None:
            self._gradients = image_gradients(self.grey())
        return self._gradients

    def pyramid(self) -> tuple[Tensor, ...]:
        if self._pyramid is None:
            self._pyramid = box_pyramid(self.grey(), len(BOX_STEPS), gradients=self.gradients())
        return self._pyramid


class _CachedFrame(FrameImages):
    """A frame the estimator has seen: its working-size image and features; the refinements run at the working
    size."""

    def __init__(self, frame: np.ndarray, image: Tensor, feats: list[Tensor]) -> None:
        super().__init__(frame)
        self.image = image
        self.feats = feats

    def _make_grey(self) -> Tensor:
        return grey_image(self.image)


class GreyFrame(FrameImages):
    """A uint8 frame (BGR or grey) at its own resolution, or resized to ``size`` (H, W) (antialiased bilinear) and
    then padded to ``padded`` (H, W) at the bottom and right by repeating the last row and column (a detector's
    input)."""

    def __init__(
        self,
        frame: np.ndarray,
        device: torch.device,
        size: tuple[int, int] | None = None,
        padded: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(frame)
        self.device = device
        self.size = size
        self.padded = padded

    def _make_grey(self) -> Tensor:
        frame = torch.from_numpy(self.frame).to(self.device)
        if frame.dim() == 3 and frame.shape[2] == 3:  # BGR -> the luma of grey_image, the same float operations
            rgb = frame.permute(2, 0, 1).flip(0).unsqueeze(0).float().div_(255.0)
            grey = grey_image(rgb)
        else:
            grey = frame.reshape(1, 1, *frame.shape[:2]).float().div_(255.0)
        if self.size is not None and self.size != tuple(grey.shape[-2:]):
            grey = F.interpolate(grey, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        if self.padded is not None and self.padded != tuple(grey.shape[-2:]):
            grey = grey[..., : self.padded[0], : self.padded[1]]
            pad = (0, self.padded[1] - grey.shape[-1], 0, self.padded[0] - grey.shape[-2])
            grey = F.pad(grey, pad, mode="replicate")
        return grey.contiguous()


_CAMERA_MAX_POINTS = 2048
_CAMERA_MIN_INLIERS = 0.3
_SNAP_INNER = 0.6  # camera_snap's photometric check compares own and camera motion over this central part of a box


def fit_camera_homography(
    motion: MotionOutput, *, index: int = 0, reproj_thresh: float = 3.0, seed: int = 0
) -> np.ndarray | None:
    """The camera's homography from a head's own dense field: RANSAC over its cells, weighted to the confident ones.

    Every cell centre ``p`` of frame t-1 (head-input pixels) and ``p + flow(p)`` are a correspondence; the half of
    the cells with the smallest predicted scale ``b`` (at most 2048, evenly spaced) go to ``cv2.findHomography``
    (MAGSAC++, ``reproj_thresh`` pixels: far less noise-sensitive than plain RANSAC on these dense, noisy
    correspondences). Independently moving objects are outliers of the fit.

    Args:
        motion: a head's output (flow in head-input pixels).
        index: which batch element.
        reproj_thresh: RANSAC inlier distance, head-input pixels.
        seed: OpenCV's RNG seed for RANSAC (deterministic results).

    Returns:
        (3, 3) float64 homography mapping frame t-1 to frame t in head-input pixels, or None when fewer than 30 %
        of the cells used are inliers (no single camera motion explains the field) or fewer than 8 cells exist.

    Example:
        >>> out = MotionOutput(torch.full((1, 2, 6, 8), 3.0), torch.zeros(1, 2, 6, 8), 8)
        >>> np.round(fit_camera_homography(out), 6)[:2, 2].tolist()
        [3.0, 3.0]
    """
    flow = motion.flow[index].detach().to(torch.float64).cpu().numpy()
    scale = motion.log_scale[index].detach().to(torch.float64).exp().mean(dim=0).cpu().numpy()
    h, w = flow.shape[1:]
    if h * w < 8:
        return None
    s = float(motion.stride)
    ys, xs = np.mgrid[0:h, 0:w]
    src = np.stack([xs * s + (s - 1) / 2, ys * s + (s - 1) / 2], axis=-1).reshape(-1, 2)
    dst = src + flow.reshape(2, -1).T
    order = np.argsort(scale.reshape(-1), kind="stable")[: max(8, (h * w) // 2)]
    order = np.sort(order)[:: max(1, len(order) // _CAMERA_MAX_POINTS)]
    cv2.setRNGSeed(seed)
    homography, mask = cv2.findHomography(src[order], dst[order], cv2.USAC_MAGSAC, reproj_thresh, maxIters=500)
    if homography is None or mask is None or mask.mean() < _CAMERA_MIN_INLIERS:
        return None
    return np.asarray(homography, np.float64)


def refine_camera_homography(
    grey1: Tensor, grey2: Tensor, homography: np.ndarray, *, points: int = 300, max_change: float = 4.0
) -> np.ndarray:
    """Sharpen a camera homography on the frames: corners of frame t-1 tracked into frame t by pyramidal
    Lucas-Kanade, each started where ``homography`` puts it, and a homography refitted to the tracks.

    A head's homography (:func:`fit_camera_homography`) comes from cells of 8 pixels whose values are off by a pixel
    or more; the tracks are sub-pixel. Up to ``points`` corners (``cv2.goodFeaturesToTrack``, quality 0.01, 7 px
    apart) are tracked (21x21 window, 4 pyramid levels) and fitted with MAGSAC++ (1 px). The refit is kept only when
    at least 30 % of the tracks are its inliers and it moves the points of an 8x8 grid over the frame by at most
    ``max_change`` pixels on average from ``homography``: a larger change means the tracks followed something else
    (objects moving over a textureless background, where the corners are on the objects). Otherwise, and when
    fewer than 8 corners track, ``homography`` comes back.

    Args:
        grey1: frame t-1, (1, 1, H, W) grey in [0, 1] (:func:`mmtrack_corr.refine.grey_image`).
        grey2: frame t, same shape.
        homography: (3, 3) frame t-1 -> frame t, in these images' pixels.
        points: at most this many corners.
        max_change: the largest mean change of the grid points accepted, pixels.

    Returns:
        (3, 3) float64 homography.

    Example:
        >>> flat = torch.full((1, 1, 64, 64), 0.5)  # no corners: the input comes back
        >>> refine_camera_homography(flat, flat, np.eye(3)).tolist() == np.eye(3).tolist()
        True
    """
    if grey1.dim() != 4 or grey1.shape[:2] != (1, 1) or grey2.shape != grey1.shape:
        raise ValueError(
            f"grey1, grey2: expected two (1, 1, H, W) images, got {tuple(grey1.shape)} and {tuple(grey2.shape)}"
        )
    homography = np.asarray(homography, np.float64)
    g1 = (grey1[0, 0].float().cpu().numpy() * 255).clip(0, 255).astype(np.uint8)
    g2 = (grey2[0, 0].float().cpu().numpy() * 255).clip(0, 255).astype(np.uint8)
    corners = cv2.goodFeaturesToTrack(g1, points, 0.01, 7, blockSize=7)
    if corners is None or len(corners) < 8:
        return homography
    start = corners.reshape(-1, 2).astype(np.float32)
    guess = _project(homography, start).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01)
    end, status, _ = cv2.calcOpticalFlowPyrLK(
        g1, g2, start, guess, winSize=(21, 21), maxLevel=3, flags=cv2.OPTFLOW_USE_INITIAL_FLOW, criteria=criteria
    )
    tracked = status[:, 0] == 1
    if tracked.sum() < 8:
        return homography
    cv2.setRNGSeed(0)
    refit, mask = cv2.findHomography(start[tracked], end[tracked], cv2.USAC_MAGSAC, 1.0, maxIters=500)
    if refit is None or mask is None or mask.mean() < _CAMERA_MIN_INLIERS:
        return homography
    h, w = g1.shape
    ys, xs = np.mgrid[0:h:8j, 0:w:8j]
    grid = np.c_[xs.ravel(), ys.ravel()]
    refit = np.asarray(refit, np.float64)
    change = np.linalg.norm(_project(homography, grid) - _project(refit, grid), axis=1).mean()
    return refit if change <= max_change else homography


def _project(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points mapped by a (3, 3) homography, float64."""
    mapped = np.c_[points, np.ones(len(points))] @ homography.T
    return mapped[:, :2] / mapped[:, 2:3]


def camera_box_motion(homography: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Displacement of each box centre under a homography: (N, 2), in the homography's pixels."""
    return camera_box_affine(homography, boxes)[0]


def camera_box_affine(homography: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A homography's motion over each box, linearised at the box centre, in the form of
    :class:`mmtrack_corr.refine.BoxFit`: centre displacement (N, 2) and linear part (N, 2, 2) per box-normalised
    offset (``-1..1`` from the centre to the edges), both in the homography's pixels.

    Example:
        >>> zoom = np.diag([1.1, 1.1, 1.0])  # 10 % zoom about the origin
        >>> t, a = camera_box_affine(zoom, np.array([[10.0, 20.0, 30.0, 60.0]]))
        >>> t.round(6).tolist(), a.round(6).tolist()
        ([[2.0, 4.0]], [[[1.0, 0.0], [0.0, 2.0]]])
    """
    h = np.asarray(homography, np.float64)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    centre = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=-1)
    half = np.stack([(b[:, 2] - b[:, 0]) / 2, (b[:, 3] - b[:, 1]) / 2], axis=-1)
    mapped = np.concatenate([centre, np.ones((len(b), 1))], axis=1) @ h.T
    w = mapped[:, 2:3]
    moved = mapped[:, :2] / w
    jacobian = (h[None, :2, :2] - moved[:, :, None] * h[None, 2:3, :2]) / w[:, :, None]  # d(moved) / d(point)
    return moved - centre, (jacobian - np.eye(2)[None]) * half[:, None, :]


def box_motion_on_frames(
    motion: MotionOutput,
    boxes_xyxy: np.ndarray,
    frame_size: tuple[int, int],
    scale: tuple[float, float],
    images: tuple[FrameImages, FrameImages] | None,
    images_scale: tuple[float, float],
    *,
    box_refine: bool = True,
    camera_fallback: bool = DEFAULT_CAMERA_FALLBACK,
    camera_snap: float | None = None,
    uncertainty_thresh: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The estimator's box read-out: the head's box average, then on the two frames the box fit, the camera
    fallback and camera snap (see :class:`MotionEstimator`), then the uncertainty threshold.

    Args:
        motion: the head's output, in head-input pixels.
        boxes_xyxy: (N, 4) boxes in frame pixels (N >= 1).
        frame_size: (H, W) of the frames.
        scale: frame pixels per head-input pixel, (sx, sy).
        images: the two frames' images at the refinements' resolution, or None (the head's motion only).
        images_scale: frame pixels per pixel of ``images``, (sx, sy).
        box_refine, camera_fallback, camera_snap, uncertainty_thresh: as :class:`MotionEstimator`.

    Returns:
        ``(displacements, sigma)`` as :func:`read_box_motion`, NaN rows where sigma exceeds ``uncertainty_thresh``
        (boxes that took the camera's motion are never NaN).
    """
    factor = np.array(images_scale, np.float64)
    disp, sigma = read_box_motion(motion, boxes_xyxy, scale=scale, frame_size=frame_size)
    work = _clipped(boxes_xyxy, frame_size) / np.tile(factor, 2)  # boxes in the images' pixels
    device = motion.flow.device
    fit = None
    if box_refine and images is not None:
        e1, e2 = images
        fit = refine_boxes(
            e1.grey(),
            e2.grey(),
            torch.from_numpy(work).to(device),
            torch.from_numpy(disp / factor).to(device),
            pyramid1=e1.pyramid(),
            pyramid2=e2.pyramid(),
        )
        disp = fit.displacements.cpu().numpy() * factor
    snapped = np.zeros(len(disp), bool)  # boxes given the camera's motion (never flagged as uncertain)
    fallback_images = images if camera_fallback else None  # the fallback needs the frames
    flat = None if fallback_images is None else _flat_directions(fallback_images[0], work)
    homography = None
    if camera_snap is not None or flat is not None:  # the camera's motion is needed only by snap or a flat box
        homography = fit_camera_homography(motion)
        if homography is not None:  # head-input pixels -> the images' pixels
            to_images = np.diag([scale[0] / factor[0], scale[1] / factor[1], 1.0])
            homography = to_images @ homography @ np.linalg.inv(to_images)
            if fallback_images is not None:  # sharpened on the frames' corners
                homography = refine_camera_homography(fallback_images[0].grey(), fallback_images[1].grey(), homography)
    if homography is not None:
        cam_t, cam_a = camera_box_affine(homography, work)
        if fallback_images is not None and flat is not None:
            snapped = _camera_fallback(cam_t, work, disp, factor, fallback_images, fit, flat)
        if camera_snap is not None:
            camera = cam_t * factor
            near = np.linalg.norm(disp - camera, axis=1) <= camera_snap
            if fit is not None and images is not None:  # the frames' verdict over each box's centre
                inner = torch.from_numpy(_inner(work, _SNAP_INNER)).to(device)
                grey1, grey2 = images[0].grey(), images[1].grey()
                own = box_residual(grey1, grey2, inner, fit.displacements, fit.affine * _SNAP_INNER)
                cam = box_residual(
                    grey1,
                    grey2,
                    inner,
                    torch.from_numpy(cam_t).to(device),
                    torch.from_numpy(cam_a * _SNAP_INNER).to(device),
                )
                near |= (cam < own).cpu().numpy()
            disp[near] = camera[near]
            snapped |= near
    if uncertainty_thresh is not None:
        disp[(sigma > uncertainty_thresh) & ~snapped] = np.nan
    return disp, sigma


def _flat_directions(image: FrameImages, work: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``camera_fallback``'s first half, on frame t-1 at the refinements' resolution: the boxes ``work`` (the
    images' pixels) with a direction the frames cannot pin - an eigenvector of the box's structure tensor whose
    eigenvalue is below FLAT_TEXTURE - as (indices (F,), which eigenvalues are weak (F, 2), eigenvectors
    (F, 2, 2)), or None when no box has one."""
    device = image.grey().device
    tensor = box_structure(image.gradients(), torch.from_numpy(work).to(device)).cpu().numpy()
    inside = ~np.isnan(tensor).any(axis=(1, 2))
    values, vectors = np.linalg.eigh(np.where(inside[:, None, None], tensor, 0.0))
    weak = (values < FLAT_TEXTURE) & inside[:, None]
    flat = np.flatnonzero(weak.any(axis=1))
    if flat.size == 0:
        return None
    return flat, weak[flat], vectors[flat]


def _camera_fallback(
    cam_t: np.ndarray,
    work: np.ndarray,
    disp: np.ndarray,
    factor: np.ndarray,
    images: tuple[FrameImages, FrameImages],
    fit: BoxFit | None,
    flat_directions: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """``camera_fallback`` on ``disp`` (frame pixels, updated in place) for boxes ``work`` (the images' pixels),
    given the camera's motion over them (:func:`camera_box_affine`'s displacements, the images' pixels) and the
    boxes' flat directions (:func:`_flat_directions`); returns the mask of boxes that took the camera's motion in
    both directions."""
    e1, e2 = images
    grey1, grey2 = e1.grey(), e2.grey()
    device = grey1.device
    taken = np.zeros(len(disp), bool)
    affine = None if fit is None else fit.affine  # each box's linear part (with the box fit)
    # per flat direction the component becomes the camera's (both on a flat box) - unless the frames reject the
    # result (residual > _FLAT_RESIDUAL_RATIO x the box's own: e.g. a motion-blurred object)
    flat, weak, vectors = flat_directions
    projector = np.einsum("nik,nk,njk->nij", vectors, weak.astype(np.float64), vectors)
    own = disp[flat] / factor
    candidate = own + (projector @ (cam_t[flat] - own)[..., None])[..., 0]
    boxes = torch.from_numpy(work[flat]).to(device)
    both = torch.from_numpy(np.concatenate([own, candidate])).to(device, torch.float32)
    lin = None if affine is None else affine[torch.from_numpy(flat).to(device)].repeat(2, 1, 1)
    residual = box_residual(grey1, grey2, boxes.repeat(2, 1), both, lin).cpu().numpy()
    agree = residual[flat.size :] <= _FLAT_RESIDUAL_RATIO * residual[: flat.size]
    disp[flat[agree]] = candidate[agree] * factor
    taken[flat[agree & weak.all(axis=1)]] = True
    return taken


def _check_frame(frame: object, name: str) -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"{name}: expected a numpy uint8 image (H, W, 3) BGR, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8 (as decoded by OpenCV), got {frame.dtype}")
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 3))):
        raise ValueError(f"{name}: expected shape (H, W, 3) BGR, (H, W, 1) or (H, W), got {frame.shape}")
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise ValueError(f"{name}: expected an image of at least 8x8 pixels, got {frame.shape}")
    return frame


def _check_boxes(boxes_xyxy: object) -> np.ndarray:
    try:
        boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"boxes_xyxy: expected a numeric array of shape (N, 4), got {type(boxes_xyxy)}") from exc
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes_xyxy: expected shape (N, 4), got {boxes.shape}")
    if not np.isfinite(boxes).all():
        raise ValueError("boxes_xyxy: expected finite coordinates, got NaN or inf")
    return boxes


class MotionEstimator:
    """Learned frame-to-frame motion: per-box displacements, dense flow, and a ``trackers.MotionSource``.

    Args:
        model: a :class:`~mmtrack_corr.motion_model.MotionModel` with an encoder (for a detector's own features,
            use :class:`mmtrack_corr.hooks.DetectorMotion`). Put in eval mode.
        head: which head to run, ``"multiscale"`` or ``"light"`` (None: the model's default head).
        device: where to run (``"cpu"``, ``"cuda"``, ``torch.device``); None keeps the model where it is.
        max_side: frames whose longer side exceeds this are shrunk (aspect kept) before rounding the working size to
            multiples of 32; None never shrinks. Ignored when ``working_size`` is given. The default,
            :data:`DEFAULT_MAX_SIDE` = 640, is the width the shipped weights were last trained at: camera motion of a
            960-pixel frame then stays inside the displacements seen in training, and it is several times faster
            than the native size (see the README's motion benchmark for native vs 448 vs 640).
        working_size: fixed (H, W) working size, multiples of 32, or None to derive it per frame size.
        uncertainty_thresh: a box whose predicted uncertainty - the box average of the Laplace scale ``b`` of the
            head, in frame pixels, the larger of the two axes - exceeds this many pixels comes back as a NaN row
            (the tracker then uses its Kalman prediction). None never flags.
        camera_snap: with a number of pixels: the camera's homography is fitted to the head's own dense field
            (:func:`fit_camera_homography`, RANSAC over the confident cells), and a box whose displacement lies
            within ``camera_snap`` frame pixels of the homography's displacement of its centre takes the
            homography's - the field's noise averaged over the whole frame instead of one box, while boxes moving
            on their own (further than that from the camera motion) keep their own motion. With ``box_refine``, a
            box also takes the camera's motion when the frames agree with it better than with the box's own fit
            over the inner 60 % of the box (:func:`mmtrack_corr.refine.box_residual`): that catches background
            boxes where the head's field was grossly wrong. Snapped boxes are never flagged by
            ``uncertainty_thresh``. None (default) keeps every box's own motion.
        refine: Lucas-Kanade steps that refine the head's field on the working-size frames before anything is read
            from it (:func:`mmtrack_corr.refine.refine_flow`: per cell, brightness offset eliminated, steps clipped
            to 2 px); 0 uses the head's field as it is. The learned field finds the large motions, the steps remove
            its sub-pixel regression error where the frames are textured. Default :data:`DEFAULT_REFINE` = 2 (see
            the README's motion benchmark for what it buys and costs).
        box_refine: fit each box's own motion to the frames after reading it from the field
            (:func:`mmtrack_corr.refine.refine_boxes`: affine Lucas-Kanade over the box on the working-size frames,
            half resolution then full, from the box average of the field): the box's pixels pooled in one fit
            instead of cell by cell, and the affine part removes the bias a translation fit has where the motion
            varies over a large box. Default :data:`DEFAULT_BOX_REFINE` (True).
        camera_fallback: where a box's own motion cannot be trusted, give it the camera's: the homography fitted to
            the head's dense field (:func:`fit_camera_homography`), sharpened on the frames
            (:func:`refine_camera_homography`), linearised at the box centre. Along each eigenvector of the
            box's structure tensor on the working-size frame (:func:`mmtrack_corr.refine.box_structure`) whose
            eigenvalue is below :data:`FLAT_TEXTURE`, the box's motion takes the camera's component: the frames
            hardly tell the motion in that direction (along a single straight edge or a motion blur; in both
            directions on a flat box, which takes the camera's motion), and the head's guess there is often grossly
            wrong - unless the frames reject the result: its photometric residual over the box is more than 1.2x
            that of the box's own motion (a faint or motion-blurred object moving on its own is flat by the
            threshold but not indifferent to its motion). Boxes given the camera's motion in both directions are
            never flagged by ``uncertainty_thresh``. Its effect on moving objects and tracking is measured in the
            README's motion benchmark. Nothing changes where no single homography explains the field; where no
            box of a call has a flat direction the homography is not fitted at all (the check costs ~1 ms).
            Default :data:`DEFAULT_CAMERA_FALLBACK` (True).
        compile_encoder: run the encoder through ``torch.compile`` (Inductor; on CPU it needs a C++ compiler).
            The first frame of each working size compiles it (~20 s on a 2-core CPU); after that the encoder
            takes about half the time on CPU (544x960, one thread: 51 -> 28 ms in one run). Only the encoder:
            compiled, the motion head was 3.5x slower on CPU. Same outputs as eager to float precision.

    Raises:
        TypeError: ``model`` is not a MotionModel.
        ValueError: the model has no encoder, unknown ``head``, or bad ``max_side`` / ``working_size`` /
            ``uncertainty_thresh`` / ``camera_snap`` / ``refine`` / ``box_refine`` / ``camera_fallback``.

    Example:
        >>> from mmtrack_corr.motion_model import MotionModelConfig
        >>> est = MotionEstimator(MotionModel(MotionModelConfig()))
        >>> a = np.zeros((90, 120, 3), np.uint8)
        >>> est.box_displacements(a, a, np.array([[10.0, 10.0, 50.0, 60.0]])).shape
        (1, 2)
        >>> est.dense(a, a).shape
        (2, 90, 120)
    """

    def __init__(
        self,
        model: MotionModel,
        *,
        head: str | None = None,
        device: str | torch.device | None = None,
        max_side: int | None = DEFAULT_MAX_SIDE,
        working_size: tuple[int, int] | None = None,
        uncertainty_thresh: float | None = None,
        camera_snap: float | None = None,
        refine: int = DEFAULT_REFINE,
        box_refine: bool = DEFAULT_BOX_REFINE,
        camera_fallback: bool = DEFAULT_CAMERA_FALLBACK,
        compile_encoder: bool = False,
    ) -> None:
        if not isinstance(model, MotionModel):
            raise TypeError(f"model: expected a MotionModel, got {type(model).__name__}")
        if model.encoder is None:
            raise ValueError(
                "model: expected a model with a feature encoder; a head-only model reads a detector's features "
                "(use mmtrack_corr.hooks.DetectorMotion)"
            )
        if head is not None and head not in model.heads:
            raise ValueError(f"head: expected one of {tuple(model.heads)} or None, got {head!r}")
        if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 32):
            raise ValueError(f"max_side: expected an int >= 32 or None, got {max_side!r}")
        if working_size is not None:
            ok = (
                isinstance(working_size, Sequence)
                and len(working_size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 and v % 32 == 0 for v in working_size)
            )
            if not ok:
                raise ValueError(
                    f"working_size: expected (H, W), positive multiples of 32, or None, got {working_size!r}"
                )
            working_size = (int(working_size[0]), int(working_size[1]))
        for name, value in (("uncertainty_thresh", uncertainty_thresh), ("camera_snap", camera_snap)):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if value is not None and not (number and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: expected a number of pixels > 0 or None, got {value!r}")
        if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
            raise ValueError(f"refine: expected an int >= 0 (Lucas-Kanade steps; 0 = off), got {refine!r}")
        if not isinstance(box_refine, bool):
            raise ValueError(f"box_refine: expected True or False, got {box_refine!r}")
        if not isinstance(camera_fallback, bool):
            raise ValueError(f"camera_fallback: expected True or False, got {camera_fallback!r}")
        if not isinstance(compile_encoder, bool):
            raise ValueError(f"compile_encoder: expected True or False, got {compile_encoder!r}")
        if device is not None:
            model = model.to(device)
        self.model = model.eval()
        self.head = head
        self.max_side = max_side
        self.working_size = working_size
        self.uncertainty_thresh = None if uncertainty_thresh is None else float(uncertainty_thresh)
        self.camera_snap = None if camera_snap is None else float(camera_snap)
        self.refine = int(refine)
        self.box_refine = box_refine
        self.camera_fallback = camera_fallback
        self.compile_encoder = compile_encoder
        self._compiled: Callable[[Tensor], list[Tensor]] | None = None  # torch.compile(model.features), made once
        self._cache: list[_CachedFrame] = []

    @classmethod
    def from_pretrained(
        cls,
        name: str | os.PathLike[str] = "default",
        device: str | torch.device = "cpu",
        *,
        expected_sha256: str | None = None,
        head: str | None = None,
        max_side: int | None = DEFAULT_MAX_SIDE,
        working_size: tuple[int, int] | None = None,
        uncertainty_thresh: float | None = None,
        camera_snap: float | None = None,
        refine: int = DEFAULT_REFINE,
        box_refine: bool = DEFAULT_BOX_REFINE,
        camera_fallback: bool = DEFAULT_CAMERA_FALLBACK,
        compile_encoder: bool = False,
    ) -> MotionEstimator:
        """Load shipped weights by name (sha256-checked) or a weights file by path.

        Args:
            name: ``"default"`` (or another shipped name) or the path of a file written by
                :func:`~mmtrack_corr.motion_model.save_motion_model`.
            device: where to run.
            expected_sha256: hex sha256 the file must have (shipped weights are always checked).
            head, max_side, working_size, uncertainty_thresh, camera_snap, refine, box_refine, camera_fallback,
                compile_encoder: as the constructor.

        Returns:
            The estimator.

        Raises:
            FileNotFoundError: no such weights file, or the shipped file is missing.
            mmtrack_corr.motion_model.WeightsIntegrityError: the sha256 does not match.
            ValueError: not a weights file; bad arguments as the constructor.
        """
        model = load_motion_model(name, device=device, expected_sha256=expected_sha256)
        return cls(
            model,
            head=head,
            max_side=max_side,
            working_size=working_size,
            uncertainty_thresh=uncertainty_thresh,
            camera_snap=camera_snap,
            refine=refine,
            box_refine=box_refine,
            camera_fallback=camera_fallback,
            compile_encoder=compile_encoder,
        )

    @property
    def device(self) -> torch.device:
        """The device the model runs on."""
        return next(self.model.parameters()).device

    def reset(self) -> None:
        """Forget the cached frames and features (call between videos to free memory)."""
        self._cache.clear()

    def working_size_for(self, height: int, width: int) -> tuple[int, int]:
        """The (H, W) a frame of ``height`` x ``width`` is resized to: multiples of 32.

        Example:
            >>> from mmtrack_corr.motion_model import MotionModelConfig
            >>> MotionEstimator(MotionModel(MotionModelConfig()), max_side=1088).working_size_for(1080, 1920)
            (608, 1088)
        """
        if self.working_size is not None:
            return self.working_size
        scale = 1.0
        if self.max_side is not None and max(height, width) > self.max_side:
            scale = self.max_side / max(height, width)
        return (
            max(_MULTIPLE, int(round(height * scale / _MULTIPLE)) * _MULTIPLE),
            max(_MULTIPLE, int(round(width * scale / _MULTIPLE)) * _MULTIPLE),
        )

    # ------------------------------------------------------------------------------------------------ internals
    def _to_tensor(self, frame: np.ndarray) -> Tensor:
        h, w = frame.shape[:2]
        code = cv2.COLOR_BGR2RGB if frame.ndim == 3 and frame.shape[2] == 3 else cv2.COLOR_GRAY2RGB
        rgb = cv2.cvtColor(np.ascontiguousarray(frame.reshape(h, w) if code == cv2.COLOR_GRAY2RGB else frame), code)
        # (1, 3, H, W) in channels-last memory, as the encoder's convolutions want it: no layout copy on the way (the
        # channels-first float copy of a flipped uint8 view cost ~15 ms of one CPU thread at 544x960); unsqueeze
        # before permuting: a size-1 batch dimension with stride 3 would not count as channels-last to them
        x = torch.from_numpy(rgb).to(self.device).unsqueeze(0).permute(0, 3, 1, 2)
        size = self.working_size_for(h, w)
        if size == (h, w):
            return x.float().div_(255.0)
        if x.device.type == "cpu":
            # PyTorch's uint8 antialiased resize (its vectorised channels-last path: ~1.5 ms for 544x960 -> 352x640
            # against ~9 ms in float32); it rounds to whole grey levels, within 1 of the float32 result
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            return x.float().div_(255.0)
        x = F.interpolate(x.float().div_(255.0), size=size, mode="bilinear", align_corners=False, antialias=True)
        return x.clamp_(0.0, 1.0)

    def _entry(self, frame: np.ndarray) -> _CachedFrame:
        for entry in self._cache:
            if entry.frame.shape == frame.shape and np.array_equal(entry.frame, frame):
                return entry
        image = self._to_tensor(frame)
        entry = _CachedFrame(frame.copy(), image, self._encode(image))
        self._cache.append(entry)
        del self._cache[:-_CACHE_FRAMES]
        return entry

    def _encode(self, image: Tensor) -> list[Tensor]:
        if not self.compile_encoder:
            return self.model.features(image)
        if self._compiled is None:
            self._compiled = torch.compile(self.model.features, dynamic=False)
        return self._compiled(image)

    def _features(self, frame: np.ndarray) -> list[Tensor]:
        return self._entry(frame).feats

    def _motion(self, prev_frame: np.ndarray, frame: np.ndarray) -> MotionOutput:
        return self._motion_entries(prev_frame, frame)[0]

    def _motion_entries(
        self, prev_frame: np.ndarray, frame: np.ndarray
    ) -> tuple[MotionOutput, _CachedFrame, _CachedFrame]:
        e1 = self._entry(prev_frame)
        e2 = self._entry(frame)
        out = self.model.forward_features(e1.feats, e2.feats, self.head)
        if not self.refine:
            return out, e1, e2
        flow = refine_flow(
            e1.grey(),
            e2.grey(),
            out.flow,
            out.stride,
            iters=self.refine,
            gradients1=e1.gradients(),
            gradients2=e2.gradients(),
        )
        return MotionOutput(flow, out.log_scale, out.stride, out.aux), e1, e2

    def _frames(self, prev_bgr: object, cur_bgr: object) -> tuple[np.ndarray, np.ndarray]:
        prev = _check_frame(prev_bgr, "prev_bgr")
        cur = _check_frame(cur_bgr, "cur_bgr")
        if prev.shape[:2] != cur.shape[:2]:
            raise ValueError(f"cur_bgr: expected the size of prev_bgr {prev.shape[:2]}, got {cur.shape[:2]}")
        return prev, cur

    def _read_boxes(
        self,
        out: MotionOutput,
        boxes: np.ndarray,
        frame_hw: tuple[int, int],
        entries: tuple[_CachedFrame, _CachedFrame] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Box displacements and sigmas from a field; ``entries`` (the two frames) enable the box refinement, the
        camera fallback and camera_snap's photometric check."""
        wh, ww = self.working_size_for(*frame_hw)
        factor = (frame_hw[1] / ww, frame_hw[0] / wh)
        return box_motion_on_frames(
            out,
            boxes,
            frame_hw,
            factor,
            entries,
            factor,
            box_refine=self.box_refine,
            camera_fallback=self.camera_fallback,
            camera_snap=self.camera_snap,
            uncertainty_thresh=self.uncertainty_thresh,
        )

    # ------------------------------------------------------------------------------------------------ public
    @overload
    def box_displacements(
        self,
        prev_bgr: np.ndarray,
        cur_bgr: np.ndarray,
        boxes_xyxy: np.ndarray,
        *,
        return_uncertainty: Literal[False] = ...,
    ) -> np.ndarray: ...

    @overload
    def box_displacements(
        self, prev_bgr: np.ndarray, cur_bgr: np.ndarray, boxes_xyxy: np.ndarray, *, return_uncertainty: Literal[True]
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def box_displacements(
        self, prev_bgr: np.ndarray, cur_bgr: np.ndarray, boxes_xyxy: np.ndarray, *, return_uncertainty: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Displacement of each box from ``prev_bgr`` to ``cur_bgr``: the box average of the dense motion, then (with
        ``box_refine``) the box's own affine fit to the frames.

        Boxes are clipped to the frame first; a box wholly outside it (or too small to contain a motion cell)
        reads the cell nearest its centre (and keeps that value through the box fit).

        Args:
            prev_bgr: previous frame, uint8 (H, W, 3) BGR.
            cur_bgr: current frame, same size.
            boxes_xyxy: boxes in ``prev_bgr``, shape (N, 4), xyxy pixels; N may be 0.
            return_uncertainty: also return each box's predicted uncertainty.

        Returns:
            (N, 2) float64 ``(dx, dy)`` in pixels of the given frames; NaN rows where the predicted uncertainty
            exceeds ``uncertainty_thresh``. With ``return_uncertainty``, a pair ``(displacements, sigma)``, sigma
            (N,) float64: the box average of the Laplace scale b in frame pixels, the larger of the two axes (the
            quantity ``uncertainty_thresh`` is compared with).

        Raises:
            TypeError: a frame is not a numpy array; boxes are not numeric.
            ValueError: bad frame dtype/shape, frames of different sizes, boxes not (N, 4) or not finite.

        Example:
            >>> from mmtrack_corr.motion_model import MotionModelConfig
            >>> est = MotionEstimator(MotionModel(MotionModelConfig()))
            >>> a = np.zeros((64, 64, 3), np.uint8)
            >>> est.box_displacements(a, a, np.zeros((0, 4))).shape
            (0, 2)
        """
        prev, cur = self._frames(prev_bgr, cur_bgr)
        boxes = _check_boxes(boxes_xyxy)
        with torch.inference_mode():
            if boxes.shape[0] == 0:
                disp, sigma = np.zeros((0, 2)), np.zeros(0)
            else:
                out, e1, e2 = self._motion_entries(prev, cur)
                disp, sigma = self._read_boxes(out, boxes, prev.shape[:2], (e1, e2))
        return (disp, sigma) if return_uncertainty else disp

    def dense(self, prev_bgr: np.ndarray, cur_bgr: np.ndarray) -> np.ndarray:
        """Dense motion from ``prev_bgr`` to ``cur_bgr`` at every pixel of the given frames.

        The head's coarse field (stride 8 or 32 of the working size) is bilinearly interpolated between cell
        centres and scaled to the frame's pixels per axis.

        Args:
            prev_bgr: previous frame, uint8 (H, W, 3) BGR.
            cur_bgr: current frame, same size.

        Returns:
            (2, H, W) float32: ``(dx, dy)`` per pixel of ``prev_bgr``, in pixels.

        Raises:
            TypeError, ValueError: bad frames, as :meth:`box_displacements`.
        """
        prev, cur = self._frames(prev_bgr, cur_bgr)
        height, width = prev.shape[:2]
        wh, ww = self.working_size_for(height, width)
        with torch.inference_mode():
            out = self._motion(prev, cur)
            flow = F.interpolate(out.flow, size=(height, width), mode="bilinear", align_corners=False)[0]
            flow = flow * torch.tensor([width / ww, height / wh], device=flow.device).view(2, 1, 1)
            return flow.float().cpu().numpy()

    def uncertainty(self, prev_bgr: np.ndarray, cur_bgr: np.ndarray) -> np.ndarray:
        """Dense predicted uncertainty: the Laplace scale ``b`` (expected absolute error) per pixel and axis.

        Args:
            prev_bgr: previous frame, uint8 (H, W, 3) BGR.
            cur_bgr: current frame, same size.

        Returns:
            (2, H, W) float32, ``(b_x, b_y)`` in pixels of the given frames.
        """
        prev, cur = self._frames(prev_bgr, cur_bgr)
        height, width = prev.shape[:2]
        wh, ww = self.working_size_for(height, width)
        with torch.inference_mode():
            out = self._motion(prev, cur)
            b = F.interpolate(out.log_scale.exp(), size=(height, width), mode="bilinear", align_corners=False)[0]
            b = b.expand(2, -1, -1) * torch.tensor([width / ww, height / wh], device=b.device).view(2, 1, 1)
            return b.float().cpu().numpy()

    def __call__(self, prev_frame: np.ndarray | None, frame: np.ndarray | None, boxes_xyxy: np.ndarray) -> np.ndarray:
        """The ``trackers.MotionSource`` call: per-box displacements, NaN rows when a frame is missing.

        The current frame's features are computed (and cached for the next call) even when there are no boxes, so
        a tracker pays one encoder pass per frame.

        Args:
            prev_frame: previous frame (uint8 (H, W, 3) BGR) or None on the first frame.
            frame: current frame or None.
            boxes_xyxy: boxes in ``prev_frame``, shape (N, 4), xyxy pixels.

        Returns:
            (N, 2) float64 displacements, as :meth:`box_displacements`.
        """
        boxes = _check_boxes(boxes_xyxy)
        if frame is None:
            return np.full((boxes.shape[0], 2), np.nan)
        cur = _check_frame(frame, "frame")
        with torch.inference_mode():
            if prev_frame is None:
                self._features(cur)
                return np.full((boxes.shape[0], 2), np.nan)
            prev = _check_frame(prev_frame, "prev_frame")
            if prev.shape[:2] != cur.shape[:2]:
                raise ValueError(f"frame: expected the size of prev_frame {prev.shape[:2]}, got {cur.shape[:2]}")
            if boxes.shape[0] == 0:
                self._features(cur)
                return np.zeros((0, 2))
            out, e1, e2 = self._motion_entries(prev, cur)
            return self._read_boxes(out, boxes, prev.shape[:2], (e1, e2))[0]

    def __repr__(self) -> str:
        return (
            f"MotionEstimator(head={self.head or self.model.config.heads[0]!r}, device={str(self.device)!r}, "
            f"max_side={self.max_side}, working_size={self.working_size}, "
            f"uncertainty_thresh={self.uncertainty_thresh}, camera_snap={self.camera_snap}, refine={self.refine}, "
            f"box_refine={self.box_refine}, camera_fallback={self.camera_fallback}"
            + (", compile_encoder=True)" if self.compile_encoder else ")")
        )


def default_motion_source(
    weights: str | None = None,
    device: str = "cpu",
    uncertainty_thresh: float | None = None,
    refine: int = DEFAULT_REFINE,
    box_refine: bool = DEFAULT_BOX_REFINE,
    camera_fallback: bool = DEFAULT_CAMERA_FALLBACK,
) -> MotionEstimator:
    """The motion source ``mmtrack-eval --tracker motion`` builds when no ``--motion-source`` is given.

    Args:
        weights: a weights file (``--motion-weights``), or None for the shipped default weights.
        device: where to run.
        uncertainty_thresh: ``--motion-uncertainty`` (px): boxes predicted less certain come back NaN (Kalman
            fallback in the tracker); None = never.
        refine: ``--motion-refine``: Lucas-Kanade steps on the estimator's field (0 = off; default
            :data:`DEFAULT_REFINE`).
        box_refine: ``--motion-box-refine`` / ``--no-motion-box-refine``: fit each box's motion to the frames
            (default :data:`DEFAULT_BOX_REFINE`).
        camera_fallback: ``--motion-camera-fallback`` / ``--no-motion-camera-fallback``: along the directions the
            frames cannot pin (a flat box, a single edge) a box takes the camera's motion (default
            :data:`DEFAULT_CAMERA_FALLBACK`).

    Returns:
        A :class:`MotionEstimator` (a ``trackers.MotionSource``). It also calls
        :func:`mmtrack_corr.runtime.keep_freed_memory` (process-wide; ~25 % faster calls on CPU).

    Raises:
        FileNotFoundError, ValueError: as :meth:`MotionEstimator.from_pretrained`.
    """
    keep_freed_memory()  # the factory serves mmtrack-eval's processes: per-frame tensors reuse freed pages
    return MotionEstimator.from_pretrained(
        weights if weights is not None else "default",
        device=device,
        uncertainty_thresh=uncertainty_thresh,
        refine=refine,
        box_refine=box_refine,
        camera_fallback=camera_fallback,
    )
