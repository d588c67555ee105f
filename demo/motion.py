"""The demo's motion choices (``--motion learned|kalman|gmc``) and the tracker each one runs with.

- ``learned``: MM-Tracker-style learned motion (``mmtrack_corr.estimator.MotionEstimator``, shipped weights or
  ``--motion-weights``): each tracked box is moved by the displacement the network reads at its position
  (:class:`trackers.MotionTracker`, ``kalman_weight=0``); its dense field can be drawn as an overlay.
- ``kalman``: ByteTrack's constant-velocity Kalman prediction only (:class:`trackers.ByteTracker`).
- ``gmc``: camera-motion compensation (:class:`trackers.CameraMotionCompensation`, BoT-SORT style) added to the
  Kalman prediction (``kalman_weight=1``); its overlay is the global affine motion at every pixel.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from trackers import ByteTracker, CameraMotionCompensation, MotionSource, MotionTracker

__all__ = [
    "LEARNED_MAX_SIDE",
    "MOTIONS",
    "MotionSetup",
    "build_motion",
    "build_tracker",
    "default_motion",
    "learned_available",
]

MOTIONS = ("learned", "kalman", "gmc")

#: Longer side of the learned network's working size in the demo, = ``mmtrack_corr.estimator.DEFAULT_MAX_SIDE`` (not
#: imported: this module must load without torch): the shipped weights' last training stage ran on 384x640 frames.
LEARNED_MAX_SIDE = 640
#: Lucas-Kanade refinement steps of the learned field in the demo, = ``mmtrack_corr.estimator.DEFAULT_REFINE``.
LEARNED_REFINE = 2
#: Whether the demo fits each box's motion to the frames, = ``mmtrack_corr.estimator.DEFAULT_BOX_REFINE``.
LEARNED_BOX_REFINE = True
#: Whether flat boxes (and a box's flat direction) take the camera's motion in the demo,
#: = ``mmtrack_corr.estimator.DEFAULT_CAMERA_FALLBACK``.
LEARNED_CAMERA_FALLBACK = True


def learned_available() -> bool:
    """Whether learned motion can run here: ``mmtrack_corr.estimator`` imports and the shipped weights are present."""
    try:
        if importlib.util.find_spec("mmtrack_corr.estimator") is None:
            return False
        from mmtrack_corr.motion_model import shipped_weights

        shipped_weights("default")
    except (ImportError, ValueError, OSError):
        return False
    return True


def default_motion() -> str:
    """``"learned"`` when :func:`learned_available`, else ``"gmc"`` (the best motion that needs no weights)."""
    return "learned" if learned_available() else "gmc"


@dataclass(frozen=True)
class MotionSetup:
    """A motion choice, built.

    Attributes:
        name: ``"learned"``, ``"kalman"`` or ``"gmc"``.
        source: the motion source (None for ``kalman``).
        dense: ``dense(prev_frame, frame) -> (2, H', W')`` for the overlay, or None.
        kalman_weight: the :class:`trackers.MotionTracker` fusion weight this source is meant for.
        description: one line for summaries.
    """

    name: str
    source: MotionSource | None
    dense: Callable[[np.ndarray, np.ndarray], np.ndarray] | None
    kalman_weight: float
    description: str


def _affine_field(cmc: CameraMotionCompensation, stride: int = 8) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def dense(prev_frame: np.ndarray, frame: np.ndarray) -> np.ndarray:
        a = cmc.estimate(prev_frame, frame)
        h, w = frame.shape[:2]
        ys, xs = np.mgrid[stride / 2 : h : stride, stride / 2 : w : stride]
        dx = a[0, 0] * xs + a[0, 1] * ys + a[0, 2] - xs
        dy = a[1, 0] * xs + a[1, 1] * ys + a[1, 2] - ys
        return np.stack([dx, dy])

    return dense


def build_motion(
    name: str,
    *,
    weights: str | None = None,
    device: str = "cpu",
    max_side: int | None = None,
    refine: int | None = None,
    box_refine: bool | None = None,
    camera_fallback: bool | None = None,
) -> MotionSetup:
    """Build a motion choice.

    Args:
        name: ``"learned"``, ``"kalman"`` or ``"gmc"``.
        weights: weights file for ``learned`` (default: the shipped weights).
        device: torch device for ``learned``.
        max_side: ``learned`` only: frames whose longer side exceeds this are shrunk before the network (faster,
            coarser motion); None: :data:`LEARNED_MAX_SIDE`.
        refine: ``learned`` only: Lucas-Kanade steps refining the learned field on the frames (0 = off); None:
            :data:`LEARNED_REFINE`.
        box_refine: ``learned`` only: fit each box's motion to the frames; None: :data:`LEARNED_BOX_REFINE`.
        camera_fallback: ``learned`` only: flat boxes (and a box's flat direction) take the camera's motion;
            None: :data:`LEARNED_CAMERA_FALLBACK`.

    Returns:
        The :class:`MotionSetup`.

    Raises:
        ValueError: unknown name, or ``weights`` given for a motion that has none.
        ImportError: ``learned`` in an install without the estimator.
        FileNotFoundError: ``weights`` does not exist.

    Example:
        >>> build_motion("kalman").source is None
        True
    """
    if name not in MOTIONS:
        raise ValueError(f"motion: expected one of {', '.join(MOTIONS)}, got {name!r}")
    if weights is not None and name != "learned":
        raise ValueError(f"--motion-weights: only used with --motion learned, got --motion {name}")
    if max_side is not None and name != "learned":
        raise ValueError(f"--motion-max-side: only used with --motion learned, got --motion {name}")
    if refine is not None and name != "learned":
        raise ValueError(f"--motion-refine: only used with --motion learned, got --motion {name}")
    if box_refine is not None and name != "learned":
        raise ValueError(f"--motion-box-refine: only used with --motion learned, got --motion {name}")
    if camera_fallback is not None and name != "learned":
        raise ValueError(f"--motion-camera-fallback: only used with --motion learned, got --motion {name}")
    if name == "kalman":
        return MotionSetup(name, None, None, 0.0, "ByteTrack Kalman (constant velocity)")
    if name == "gmc":
        cmc = CameraMotionCompensation()
        return MotionSetup(name, cmc, _affine_field(cmc), 1.0, "Kalman + camera-motion compensation (sparse, BoT-SORT)")
    try:
        from mmtrack_corr.estimator import MotionEstimator
    except ImportError as err:
        raise ImportError(f"--motion learned: the learned estimator does not import ({err}); use --motion gmc") from err
    from mmtrack_corr.runtime import keep_freed_memory

    keep_freed_memory()  # the per-frame tensors reuse the pages the previous frame freed (~25 % faster on CPU)

    estimator: Any = MotionEstimator.from_pretrained(
        weights if weights is not None else "default",
        device=device,
        max_side=LEARNED_MAX_SIDE if max_side is None else max_side,
        refine=LEARNED_REFINE if refine is None else refine,
        box_refine=LEARNED_BOX_REFINE if box_refine is None else box_refine,
        camera_fallback=LEARNED_CAMERA_FALLBACK if camera_fallback is None else camera_fallback,
    )
    dense = getattr(estimator, "dense", None)
    return MotionSetup(
        name,
        estimator,
        dense if callable(dense) else None,
        0.0,
        f"learned motion ({weights or 'shipped weights'}, {device}, working size {estimator.working_size_for(544, 960)}"
        f" at 544x960, refine {estimator.refine or 'off'}, box fit {'on' if estimator.box_refine else 'off'}, "
        f"camera fallback {'on' if estimator.camera_fallback else 'off'})",
    )


def build_tracker(setup: MotionSetup, frame_rate: float = 30.0, **kwargs: Any) -> ByteTracker:
    """The tracker for a motion choice: ``ByteTracker`` for ``kalman``, else ``MotionTracker(setup.source)``.

    Args:
        setup: from :func:`build_motion`.
        frame_rate: the video's frame rate (lost tracks are kept ``track_buffer`` frames at 30 fps).
        **kwargs: further :class:`trackers.ByteTracker` arguments (``track_thresh=`` ...).

    Example:
        >>> type(build_tracker(build_motion("gmc"))).__name__
        'MotionTracker'
    """
    if setup.source is None:
        return ByteTracker(frame_rate=frame_rate, **kwargs)
    return MotionTracker(setup.source, kalman_weight=setup.kalman_weight, frame_rate=frame_rate, **kwargs)
