"""Motion-aware ByteTrack (MM-Tracker style) and the motion-source protocol.

A *motion source* tells the tracker how far each box moved between two frames. MM-Tracker's learned motion head
(in ``mmtrack_corr``), a dense optical-flow function wrapped by :class:`DenseMotionSource`, and camera-motion
compensation (:class:`trackers.gmc.CameraMotionCompensation`) all fulfil the same :class:`MotionSource` protocol,
so this module never imports any of them.

Conventions: boxes are xyxy pixels; a displacement is ``(dx, dy)`` in input pixels, positive right/down, of a box
from the previous frame to the current one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from trackers.bytetrack import _TRACKED, ByteTracker, Tracks, _indices, _validate_detections, _xyah_to_xyxy

__all__ = ["DenseMotionSource", "MotionSource", "MotionTracker", "displacements_from_flow"]


@runtime_checkable
class MotionSource(Protocol):
    """Per-box motion between two frames.

    Called as ``source(prev_frame, frame, boxes_xyxy)`` with ``boxes_xyxy`` of shape (N, 4) (xyxy pixels, where the
    boxes were in ``prev_frame``; N may be 0); returns displacements of shape (N, 2), ``(dx, dy)`` in pixels from
    ``prev_frame`` to ``frame``, positive right/down. A NaN row means "unknown" (the tracker then falls back to its
    Kalman prediction for that box). ``prev_frame`` is None on the first frame and either frame is None when the
    caller passed no image. The arguments are positional, so any callable of that shape fits (a function, a
    lambda, an object with ``__call__``). :class:`MotionTracker` calls its source exactly once per ``update``, in
    frame order, so a source may cache per-frame work (for example the previous frame's features).
    """

    def __call__(
        self, prev_frame: np.ndarray | None, frame: np.ndarray | None, boxes_xyxy: np.ndarray, /
    ) -> np.ndarray: ...


def _source_name(source: object) -> str:
    return getattr(source, "__name__", None) or type(source).__name__


# ---------------------------------------------------------------------------------------------------- dense flow
def displacements_from_flow(
    flow: np.ndarray, boxes_xyxy: np.ndarray, *, stride: float = 1, reduce: str = "mean"
) -> np.ndarray:
    """Read per-box displacements from a dense motion field.

    Cell ``(i, j)`` of ``flow`` is the motion of the input pixels ``[j*stride, (j+1)*stride)`` x
    ``[i*stride, (i+1)*stride)``, whose centre is ``(j*stride + (stride-1)/2, i*stride + (stride-1)/2)``; its value
    is ``(dx, dy)`` already in input pixels. ``reduce="mean"`` averages the cells whose centres lie inside the box
    (NaN cells are skipped); a box too small to contain a cell centre, or ``reduce="center"``, reads the cell under
    the box centre (MM-Tracker's way). Boxes reaching outside the field are clipped to it.

    Args:
        flow: motion field, shape (H', W', 2), ``(dx, dy)`` per cell in input pixels.
        boxes_xyxy: boxes, shape (N, 4), xyxy input pixels.
        stride: input pixels per flow cell (e.g. 8 for a 1/8-scale motion map).
        reduce: ``"mean"`` (box average) or ``"center"``.

    Returns:
        Displacements, shape (N, 2), float64 (NaN where every read cell is NaN).

    Raises:
        ValueError: bad shapes, a non-positive stride or an unknown ``reduce``.

    Example:
        >>> flow = np.zeros((60, 80, 2)); flow[..., 0] = 3.0
        >>> displacements_from_flow(flow, np.array([[8.0, 8.0, 40.0, 40.0]]), stride=8).shape
        (1, 2)
    """
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow: expected shape (H', W', 2), got {flow.shape}")
    if flow.shape[0] == 0 or flow.shape[1] == 0:
        raise ValueError(f"flow: expected a non-empty field, got {flow.shape}")
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 2))
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes_xyxy: expected shape (N, 4), got {boxes.shape}")
    if not (isinstance(stride, (int, float, np.integer, np.floating)) and np.isfinite(stride) and stride > 0):
        raise ValueError(f"stride: expected a positive number of input pixels per cell, got {stride!r}")
    if reduce not in ("mean", "center"):
        raise ValueError(f"reduce: expected 'mean' or 'center', got {reduce!r}")
    hh, ww = flow.shape[:2]
    s = float(stride)
    off = (s - 1.0) / 2.0
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    cj = np.clip(np.floor((cx + 0.5) / s), 0, ww - 1).astype(np.int64)
    ci = np.clip(np.floor((cy + 0.5) / s), 0, hh - 1).astype(np.int64)
    centre = flow[ci, cj]
    if reduce == "center":
        return centre
    j0 = np.clip(np.ceil((boxes[:, 0] - off) / s), 0, ww).astype(np.int64)
    j1 = np.clip(np.floor((boxes[:, 2] - off) / s), -1, ww - 1).astype(np.int64) + 1
    i0 = np.clip(np.ceil((boxes[:, 1] - off) / s), 0, hh).astype(np.int64)
    i1 = np.clip(np.floor((boxes[:, 3] - off) / s), -1, hh - 1).astype(np.int64) + 1
    finite = np.isfinite(flow).all(axis=2)
    # Summed-area tables of the finite values and of their count: O(1) per box.
    sat = np.zeros((hh + 1, ww + 1, 3))
    sat[1:, 1:, :2] = np.where(finite[..., None], flow, 0.0)
    sat[1:, 1:, 2] = finite
    sat = sat.cumsum(axis=0).cumsum(axis=1)
    valid = (j1 > j0) & (i1 > i0)
    j0v, j1v, i0v, i1v = (np.where(valid, a, 0) for a in (j0, j1, i0, i1))
    total = sat[i1v, j1v] - sat[i0v, j1v] - sat[i1v, j0v] + sat[i0v, j0v]
    count = total[:, 2:3]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total[:, :2] / np.where(count > 0, count, 1.0), np.nan)
    return np.where(valid[:, None], mean, centre)


class DenseMotionSource:
    """Adapt a dense flow function into a :class:`MotionSource`.

    Args:
        flow_fn: ``flow_fn(prev_frame, frame) -> (H', W', 2)`` motion field in input pixels at ``stride``.
        stride: input pixels per cell of the field.
        sample: ``"box"`` (mean over each box, default) or ``"center"`` (the cell under the box centre).

    Raises:
        TypeError: ``flow_fn`` is not callable.
        ValueError: bad ``stride`` or ``sample``.

    Example:
        >>> src = DenseMotionSource(lambda a, b: np.full((4, 5, 2), 2.0), stride=8)
        >>> src(np.zeros((32, 40)), np.zeros((32, 40)), np.array([[0.0, 0.0, 16.0, 16.0]])).shape
        (1, 2)
    """

    def __init__(
        self, flow_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], *, stride: float = 1, sample: str = "box"
    ) -> None:
        if not callable(flow_fn):
            raise TypeError(f"flow_fn: expected a callable (prev_frame, frame) -> (H', W', 2), got {type(flow_fn)}")
        if not (isinstance(stride, (int, float, np.integer, np.floating)) and np.isfinite(stride) and stride > 0):
            raise ValueError(f"stride: expected a positive number of input pixels per cell, got {stride!r}")
        if sample not in ("box", "center"):
            raise ValueError(f"sample: expected 'box' or 'center', got {sample!r}")
        self.flow_fn = flow_fn
        self.stride = stride
        self.sample = sample

    def __call__(self, prev_frame: np.ndarray | None, frame: np.ndarray | None, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Per-box displacements, shape (N, 2); NaN rows when either frame is None."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        if prev_frame is None or frame is None:
            return np.full((boxes.shape[0], 2), np.nan)
        flow = np.asarray(self.flow_fn(prev_frame, frame))
        if flow.ndim != 3 or flow.shape[2] != 2:
            raise ValueError(
                f"flow_fn {_source_name(self.flow_fn)}: expected a (H', W', 2) motion field, got {flow.shape}"
            )
        return displacements_from_flow(
            flow, boxes, stride=self.stride, reduce="mean" if self.sample == "box" else "center"
        )


# ---------------------------------------------------------------------------------------------------- tracker
class MotionTracker(ByteTracker):
    """ByteTrack whose prediction step uses an external per-box motion estimate (MM-Tracker style).

    Same association loop as :class:`~trackers.bytetrack.ByteTracker`; only the prediction before stage 1 differs.
    MM-Tracker translates each *tracked* box by its estimated displacement (width and height kept), runs no Kalman
    prediction and leaves lost tracks where they were. We keep the Kalman filter as smoother and fallback, with this
    fusion rule for a track whose displacement ``d`` is known (previous posterior mean: centre ``c``, aspect ``a``,
    height ``h``, velocities ``v``, ``va``, ``vh``; ``k = kalman_weight``)::

        c' = c + d + k * v          a' = a + k * va          h' = h + k * vh
        v' = k * v + (1 - k) * d    (va, vh unchanged)       covariance: the Kalman prediction's

    - ``k = 0`` (default) is MM-Tracker: the box moves by ``d`` with its size kept. The velocity becomes ``d``, so if
      the source cannot answer next frame (NaN row, no frame), the constant-velocity fallback continues the last
      observed motion; the Kalman update that follows a match still smooths the box and refines the velocity.
    - ``k = 1`` adds ``d`` to the ordinary Kalman prediction (BoT-SORT-style camera-motion compensation): use it
      with a source that measures camera motion only, such as :class:`~trackers.gmc.CameraMotionCompensation`.

    Tracks without a known displacement (NaN row; lost tracks unless ``move_lost=True``) get ByteTrack's Kalman
    prediction unchanged. Unconfirmed tracks (born on the previous frame), which ByteTrack never predicts, are
    translated by their displacement so that a camera jump does not delete every newborn track.

    The tracker keeps a copy of the previous frame and calls ``motion_source(prev_frame, frame, boxes)`` exactly once
    per ``update`` (also with no boxes), with the tracks' boxes of the previous frame: the full box
    (``sample="box"``) or a zero-size box at its centre (``sample="center"``, which makes box-averaging sources
    read the motion at the centre, as MM-Tracker does).

    Args:
        motion_source: a :class:`MotionSource`.
        sample: ``"box"`` or ``"center"``, which boxes the source is asked about (see above).
        kalman_weight: ``k`` in the fusion rule above, in [0, 1].
        move_lost: also move lost tracks by their displacement (MM-Tracker does not).
        track_thresh, match_thresh, track_buffer, frame_rate, low_thresh, new_track_thresh, second_match_thresh,
            unconfirmed_match_thresh, fuse_score, per_class, duplicate_iou: as :class:`ByteTracker`.

    Raises:
        TypeError: ``motion_source`` is not callable.
        ValueError: bad ``sample``, ``kalman_weight`` or ByteTracker argument.

    Example:
        >>> tracker = MotionTracker(lambda prev, cur, boxes: np.zeros((len(boxes), 2)))
        >>> out = tracker.update(np.array([[10.0, 10.0, 50.0, 90.0]]), np.array([0.9]))
        >>> out.boxes.shape
        (1, 4)
    """

    def __init__(
        self,
        motion_source: MotionSource,
        *,
        sample: str = "box",
        kalman_weight: float = 0.0,
        move_lost: bool = False,
        track_thresh: float = 0.6,
        match_thresh: float = 0.9,
        track_buffer: int = 30,
        frame_rate: float = 30.0,
        low_thresh: float = 0.1,
        new_track_thresh: float | None = None,
        second_match_thresh: float = 0.5,
        unconfirmed_match_thresh: float = 0.7,
        fuse_score: bool = True,
        per_class: bool = False,
        duplicate_iou: float = 0.85,
    ) -> None:
        if not callable(motion_source):
            raise TypeError(
                "motion_source: expected a callable (prev_frame, frame, boxes_xyxy) -> (N, 2), "
                f"got {type(motion_source).__name__}"
            )
        if sample not in ("box", "center"):
            raise ValueError(f"sample: expected 'box' or 'center', got {sample!r}")
        if not (isinstance(kalman_weight, (int, float, np.integer, np.floating)) and 0.0 <= kalman_weight <= 1.0):
            raise ValueError(f"kalman_weight: expected a number in [0, 1], got {kalman_weight!r}")
        self.motion_source = motion_source
        self.sample = sample
        self.kalman_weight = float(kalman_weight)
        self.move_lost = bool(move_lost)
        self._prev_frame: np.ndarray | None = None
        self._frame: np.ndarray | None = None
        self._pending: tuple[np.ndarray, np.ndarray] | None = None
        super().__init__(
            track_thresh,
            match_thresh,
            track_buffer,
            frame_rate,
            low_thresh=low_thresh,
            new_track_thresh=new_track_thresh,
            second_match_thresh=second_match_thresh,
            unconfirmed_match_thresh=unconfirmed_match_thresh,
            fuse_score=fuse_score,
            per_class=per_class,
            duplicate_iou=duplicate_iou,
        )
        self._constructed = True

    def reset(self) -> None:
        """Forget all tracks and the cached frame; also calls ``motion_source.reset()`` if the source has one."""
        super().reset()
        self._prev_frame = None
        self._frame = None
        if getattr(self, "_constructed", False):  # not from ByteTracker.__init__: leave a fresh source alone
            reset = getattr(self.motion_source, "reset", None)
            if callable(reset):
                reset()

    def update(  # type: ignore[override]
        self,
        boxes_xyxy: np.ndarray,
        scores: np.ndarray,
        classes: np.ndarray | None = None,
        *,
        frame: np.ndarray | None = None,
    ) -> Tracks:
        """Advance the tracker by one frame.

        Args:
            boxes_xyxy: detections, shape (N, 4), xyxy pixels (see :meth:`ByteTracker.update`).
            scores: detection scores, shape (N,).
            classes: integer class ids, shape (N,), or None.
            frame: the current image (any array the motion source understands, e.g. (H, W, 3) uint8), or None.

        Returns:
            The confirmed tracks after this frame (``det_indices`` index ``boxes_xyxy``).

        Raises:
            ValueError: invalid detections, or the motion source returned a wrong shape or infinite values.
            TypeError: ``frame`` is not a numpy array or None.

        If this raises (bad input, or the motion source raising or answering a wrong shape), the tracker is left
        exactly as it was: ``frame_id``, the tracks and the cached previous frame are unchanged.
        """
        boxes, sc, cl = _validate_detections(boxes_xyxy, scores, classes)
        if frame is not None and not isinstance(frame, np.ndarray):
            raise TypeError(f"frame: expected a numpy array or None, got {type(frame).__name__}")
        # Ask the motion source first: if it fails (or answers nonsense), no state has changed yet, so the frame
        # counter, the tracks and the cached previous frame are exactly as before this call.
        pool, unconfirmed = self._pools()
        moved = np.arange(pool.size) if self.move_lost else _indices(self._state[pool] == _TRACKED)
        query = np.concatenate([pool[moved], unconfirmed])
        self._frame = frame
        try:
            d = self._displacements(_xyah_to_xyxy(self._mean[query, :4]))
        finally:
            self._frame = None
        self._pending = (moved, d)
        try:
            out = self._step(boxes, sc, cl)
        finally:
            self._pending = None
        # A copy: callers often reuse one buffer for every decoded frame.
        self._prev_frame = None if frame is None else frame.copy()
        return out

    def _displacements(self, boxes: np.ndarray) -> np.ndarray:
        if self.sample == "center":
            cx = (boxes[:, 0] + boxes[:, 2]) / 2
            cy = (boxes[:, 1] + boxes[:, 3]) / 2
            boxes = np.stack([cx, cy, cx, cy], axis=1)
        result = self.motion_source(self._prev_frame, self._frame, boxes)
        name = _source_name(self.motion_source)
        try:
            d = np.asarray(result, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"motion_source {name}: expected a numeric (N, 2) array, got {type(result)}") from exc
        n = boxes.shape[0]
        if d.size == 0 and n == 0:
            return np.zeros((0, 2))
        if d.shape != (n, 2):
            raise ValueError(f"motion_source {name}: expected displacements of shape ({n}, 2), got {d.shape}")
        if np.isinf(d).any():
            raise ValueError(f"motion_source {name}: expected finite displacements or NaN (unknown), got inf")
        return d

    def _predict(self, pool: np.ndarray, unconfirmed: np.ndarray) -> None:
        if self._pending is None:  # only reachable through ByteTracker.update, which MotionTracker overrides
            raise RuntimeError("MotionTracker: _step called without the motion source's displacements")
        moved, d = self._pending
        tracked = self._state[pool] == _TRACKED
        d_pool, d_unconf = d[: moved.size], d[moved.size :]

        if pool.size:
            m0 = self._mean[pool]
            m0[~tracked, 7] = 0.0  # as ByteTrack: a lost track's height velocity is zeroed
            mean, cov = self.kalman_filter.multi_predict(m0, self._cov[pool])
            known = np.isfinite(d_pool).all(axis=1)
            at = moved[known]
            dk = d_pool[known]
            k = self.kalman_weight
            mean[at, 0:2] = m0[at, 0:2] + dk + k * m0[at, 4:6]
            mean[at, 2:4] = m0[at, 2:4] + k * m0[at, 6:8]
            mean[at, 4:6] = k * m0[at, 4:6] + (1.0 - k) * dk
            self._mean[pool] = mean
            self._cov[pool] = cov
        if unconfirmed.size:
            known_u = np.isfinite(d_unconf).all(axis=1)
            self._mean[unconfirmed[known_u], 0:2] += d_unconf[known_u]
