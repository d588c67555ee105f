"""Camera-motion compensation (global motion), BoT-SORT style, as a motion source.

Two estimators of the affine map from the previous frame to the current one, both on grayscale images downscaled by
``downscale``:

- ``"sparse"``: ``cv2.goodFeaturesToTrack`` corners, tracked by ``cv2.calcOpticalFlowPyrLK`` and fitted by
  ``cv2.estimateAffinePartial2D`` with RANSAC (rotation + uniform scale + translation).
- ``"ecc"``: ``cv2.findTransformECC`` with ``MOTION_EUCLIDEAN`` (rotation + translation) on Gaussian-blurred images.

The affine found at low resolution is mapped back to full-resolution pixels exactly (``S^-1 M S`` with the resize
map ``S`` of ``cv2.resize``), not just by scaling its translation. As a :class:`~trackers.motion.MotionSource` it
returns, per box, ``affine(centre) - centre``: the camera's contribution to the box's motion. Use it with
``MotionTracker(..., kalman_weight=1.0)`` so that it corrects the Kalman prediction instead of replacing it.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np

__all__ = ["CameraMotionCompensation"]


def _check_frame(frame: object, name: str) -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"{name}: expected a numpy uint8 image (H, W) or (H, W, 3), got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8, got {frame.dtype}")
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 3))):
        raise ValueError(f"{name}: expected shape (H, W), (H, W, 1) or (H, W, 3) (BGR), got {frame.shape}")
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise ValueError(f"{name}: expected an image of at least 8x8 pixels, got {frame.shape}")
    return frame


class CameraMotionCompensation:
    """Global (camera) motion between consecutive frames, usable as a motion source.

    Args:
        method: ``"sparse"`` (corners + pyramidal Lucas-Kanade + RANSAC partial affine) or ``"ecc"``.
        downscale: integer factor by which frames are shrunk before estimation (speed).
        max_corners: corners detected per frame (sparse).
        quality_level: ``goodFeaturesToTrack`` quality level (sparse).
        min_distance: minimum distance between corners in downscaled pixels (sparse).
        ecc_iterations: maximum ECC iterations.
        ecc_eps: ECC convergence threshold.

    Raises:
        ValueError: unknown ``method`` or a non-positive parameter.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> img = cv2.GaussianBlur((rng.random((120, 160)) * 255).astype(np.uint8), (0, 0), 2)
        >>> moved = cv2.warpAffine(img, np.float32([[1, 0, 3], [0, 1, -2]]), (160, 120), borderMode=cv2.BORDER_REFLECT)
        >>> CameraMotionCompensation(downscale=1).estimate(img, moved).shape
        (2, 3)
    """

    def __init__(
        self,
        method: str = "sparse",
        downscale: int = 2,
        *,
        max_corners: int = 1000,
        quality_level: float = 0.01,
        min_distance: float = 1.0,
        ecc_iterations: int = 100,
        ecc_eps: float = 1e-5,
    ) -> None:
        if method not in ("sparse", "ecc"):
            raise ValueError(f"method: expected 'sparse' or 'ecc', got {method!r}")
        if isinstance(downscale, bool) or not isinstance(downscale, (int, np.integer)) or downscale < 1:
            raise ValueError(f"downscale: expected an integer >= 1, got {downscale!r}")
        for name, value in (
            ("max_corners", max_corners),
            ("quality_level", quality_level),
            ("min_distance", min_distance),
            ("ecc_iterations", ecc_iterations),
            ("ecc_eps", ecc_eps),
        ):
            if not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
                raise ValueError(f"{name}: expected a positive number, got {value!r}")
        self.method = method
        self.downscale = int(downscale)
        self.max_corners = int(max_corners)
        self.quality_level = float(quality_level)
        self.min_distance = float(min_distance)
        self.ecc_iterations = int(ecc_iterations)
        self.ecc_eps = float(ecc_eps)

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        gray = (
            frame
            if frame.ndim == 2
            else (frame[..., 0] if frame.shape[2] == 1 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
        )
        if self.method == "ecc":
            gray = cv2.GaussianBlur(gray, (3, 3), 1.5)
        if self.downscale > 1:
            h, w = gray.shape
            gray = cv2.resize(gray, (max(w // self.downscale, 1), max(h // self.downscale, 1)))
        return np.ascontiguousarray(gray)

    def estimate(self, prev_frame: np.ndarray | None, frame: np.ndarray | None) -> np.ndarray:
        """Affine map from ``prev_frame`` pixel coordinates to ``frame`` pixel coordinates.

        Args:
            prev_frame: previous image, uint8 (H, W) or (H, W, 3) BGR, or None (first frame).
            frame: current image of the same shape, or None.

        Returns:
            Affine ``[[a, b, tx], [c, d, ty]]``, shape (2, 3), float64; the identity when either frame is None or
            the estimation fails (too few tracked corners, ECC not converging; a warning says so).

        Raises:
            TypeError: a frame is not a numpy array.
            ValueError: a frame is not uint8 or has the wrong shape, or the two frames differ in shape.
        """
        identity = np.eye(2, 3)
        if prev_frame is None or frame is None:
            return identity
        prev_frame = _check_frame(prev_frame, "prev_frame")
        frame = _check_frame(frame, "frame")
        if prev_frame.shape[:2] != frame.shape[:2]:
            raise ValueError(f"frame: expected the same size as prev_frame {prev_frame.shape}, got {frame.shape}")
        prev_small = self._prepare(prev_frame)
        small = self._prepare(frame)
        if self.method == "sparse":
            small_affine = self._sparse(prev_small, small)
        else:
            small_affine = self._ecc(prev_small, small)
        if small_affine is None:
            return identity
        # Full-resolution map: S^-1 M S, with S the pixel-centre map of cv2.resize (x_s = (x + 0.5) / s - 0.5).
        h, w = frame.shape[:2]
        sx = w / small.shape[1]
        sy = h / small.shape[0]
        s_mat = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])
        s_inv = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        m = np.vstack([small_affine, [0, 0, 1]])
        return (s_inv @ m @ s_mat)[:2]

    def _sparse(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray | None:
        corners = cv2.goodFeaturesToTrack(
            prev,
            maxCorners=self.max_corners,
            qualityLevel=self.quality_level,
            minDistance=self.min_distance,
            blockSize=3,
            useHarrisDetector=False,
            k=0.04,
        )
        if corners is None or len(corners) < 5:
            warnings.warn("CameraMotionCompensation: too few corners; assuming no camera motion", stacklevel=3)
            return None
        moved, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, corners, None)  # type: ignore[call-overload]
        ok = status.reshape(-1) == 1
        if ok.sum() < 5:
            warnings.warn("CameraMotionCompensation: too few tracked corners; assuming no camera motion", stacklevel=3)
            return None
        affine, _ = cv2.estimateAffinePartial2D(corners[ok], moved[ok], method=cv2.RANSAC)
        if affine is None:
            warnings.warn("CameraMotionCompensation: RANSAC found no affine; assuming no camera motion", stacklevel=3)
            return None
        return np.asarray(affine, dtype=np.float64)

    def _ecc(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray | None:
        warp = np.eye(2, 3, dtype=np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, self.ecc_iterations, self.ecc_eps)
        try:
            # No mask, no extra Gaussian pre-filter (gaussFiltSize 1), as BoT-SORT calls it.
            _, warp = cv2.findTransformECC(prev, cur, warp, cv2.MOTION_EUCLIDEAN, criteria, None, 1)  # type: ignore[call-overload]
        except cv2.error:
            warnings.warn("CameraMotionCompensation: ECC did not converge; assuming no camera motion", stacklevel=3)
            return None
        return np.asarray(warp, dtype=np.float64)

    def __call__(self, prev_frame: np.ndarray | None, frame: np.ndarray | None, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Camera displacement at each box centre: ``affine(centre) - centre``.

        Args:
            prev_frame: previous image or None (then all displacements are zero).
            frame: current image or None.
            boxes_xyxy: boxes in ``prev_frame``, shape (N, 4), xyxy pixels.

        Returns:
            Displacements ``(dx, dy)``, shape (N, 2), float64.

        Raises:
            ValueError: ``boxes_xyxy`` is not (N, 4), or bad frames (see :meth:`estimate`).
        """
        boxes = np.asarray(boxes_xyxy, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes_xyxy: expected shape (N, 4), got {boxes.shape}")
        affine = self.estimate(prev_frame, frame)
        centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
        return centres @ affine[:, :2].T + affine[:, 2] - centres
