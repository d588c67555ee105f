"""The tracking pipeline: frames -> detector -> motion -> tracker, one :class:`FrameResult` per frame.

``Pipeline(detector, motion, tracker).run(source)`` is what ``mmtrack-demo`` runs; use it from your own code to get
the same per-frame results (boxes, ids, the input detection behind each track, each track's motion, timings).

Conventions: boxes are xyxy pixels; a displacement is ``(dx, dy)`` in pixels from the previous frame to this one,
positive right/down; frames are BGR ``uint8`` (H, W, 3) and numbered from 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trackers import ByteTracker, MotionSource, MotionTracker, Tracks, iou_matrix, linear_assignment

from .detectors import Detections, as_detections

__all__ = ["STAGES", "FrameResult", "Pipeline", "StageTimer"]

#: Pipeline stages timed per frame, in order (``draw`` and ``encode`` are the CLI's).
STAGES = ("decode", "detect", "motion", "track", "draw", "encode")


@dataclass(frozen=True)
class FrameResult:
    """Everything the pipeline knows about one frame.

    Attributes:
        frame: 1-based frame number.
        image: the frame, BGR uint8 (H, W, 3) (the source's array, not a copy).
        detections: the detector's output for this frame (N boxes).
        tracks: the tracker's confirmed tracks (M boxes); ``tracks.det_indices[k]`` is the row of ``detections``
            that track ``k`` was matched to in this frame (-1 if none), so ids can be written back onto the
            detections: ``ids = np.full(len(detections), -1); ids[t.det_indices[t.det_indices >= 0]] = ...``.
        motion: per track, the displacement the motion stage estimated for it (for a track the motion source was
            asked about), otherwise its box centre's move since the previous frame; shape (M, 2); NaN when
            unknown (a track's first frame).
        flow: dense motion field (2, H', W') when the pipeline has a dense-motion function, else None.
        times: seconds spent in ``decode``, ``detect``, ``motion`` and ``track`` for this frame.
    """

    frame: int
    image: np.ndarray
    detections: Detections
    tracks: Tracks
    motion: np.ndarray
    flow: np.ndarray | None = None
    times: dict[str, float] = field(default_factory=dict)

    def ids_per_detection(self) -> np.ndarray:
        """Track id of each detection, shape (N,), int64; -1 for detections no track took.

        Example:
            >>> r = FrameResult(1, np.zeros((4, 4, 3), np.uint8), Detections(np.zeros((2, 4)), np.ones(2),
            ...     np.zeros(2, np.int64)), Tracks(np.zeros((1, 4)), np.array([7]), np.ones(1),
            ...     np.zeros(1, np.int64), np.array([1])), np.zeros((1, 2)))
            >>> r.ids_per_detection().tolist()
            [-1, 7]
        """
        out = np.full(len(self.detections), -1, dtype=np.int64)
        idx = np.asarray(self.tracks.det_indices)
        ok = idx >= 0
        out[idx[ok]] = self.tracks.ids[ok]
        return out


class StageTimer:
    """Accumulates seconds per stage over a run.

    Example:
        >>> t = StageTimer(); t.add({"detect": 0.5}); t.add({"detect": 1.5}); t.frames
        2
        >>> t.per_frame_ms()["detect"]
        1000.0
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {s: 0.0 for s in STAGES}
        self.frames = 0

    def add(self, times: dict[str, float], count_frame: bool = True) -> None:
        """Add one frame's stage times (``count_frame=False`` adds time to the current frame)."""
        for k, v in times.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + float(v)
        if count_frame:
            self.frames += 1

    @property
    def total(self) -> float:
        """Seconds over all stages."""
        return float(sum(self.seconds.values()))

    def per_frame_ms(self) -> dict[str, float]:
        """Milliseconds per frame for each stage (0 with no frames)."""
        n = max(self.frames, 1)
        return {k: 1000.0 * v / n for k, v in self.seconds.items()}

    def fps(self) -> float:
        """Frames per second over all stages."""
        return self.frames / self.total if self.total > 0 else 0.0


class _RecordingSource:
    """Wraps a motion source: times each call and keeps the last query (boxes, displacements)."""

    def __init__(self, source: MotionSource) -> None:
        self.source = source
        self.seconds = 0.0
        self.boxes = np.zeros((0, 4))
        self.displacements = np.zeros((0, 2))

    def __call__(self, prev_frame: np.ndarray | None, frame: np.ndarray | None, boxes_xyxy: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        d = self.source(prev_frame, frame, boxes_xyxy)
        self.seconds += time.perf_counter() - t0
        self.boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4).copy()
        self.displacements = np.asarray(d, dtype=np.float64).reshape(-1, 2).copy()
        return d

    def reset(self) -> None:
        reset = getattr(self.source, "reset", None)
        if callable(reset):
            reset()


def _match_motion(rec: _RecordingSource, tracks: Tracks) -> np.ndarray:
    """Give each output track the displacement of the queried box that, moved by it, overlaps the track most."""
    out = np.full((len(tracks), 2), np.nan)
    ok = np.isfinite(rec.displacements).all(axis=1)
    if not len(tracks) or not ok.any() or rec.boxes.shape[0] != rec.displacements.shape[0]:
        return out
    moved = rec.boxes[ok] + np.tile(rec.displacements[ok], 2)
    cost = 1.0 - iou_matrix(tracks.boxes, moved)
    matches, _, _ = linear_assignment(cost, 0.7)
    out[matches[:, 0]] = rec.displacements[ok][matches[:, 1]]
    return out


class Pipeline:
    """Detector + motion + tracker, run frame by frame.

    Args:
        detector: ``detector(frame) -> Detections`` or ``(boxes, scores[, classes])`` (see
            :mod:`mmtrack_demo.detectors`).
        motion: a :class:`trackers.MotionSource` (``(prev_frame, frame, boxes_xyxy) -> (N, 2)``), or None for
            the tracker's own prediction (Kalman).
        tracker: an object with ``update(boxes_xyxy, scores, classes)`` returning :class:`trackers.Tracks` (and
            ``frame=`` when it uses motion), e.g. :class:`trackers.ByteTracker` or
            :class:`trackers.MotionTracker`. Default: ``MotionTracker(motion)`` when ``motion`` is given, else
            ``ByteTracker()``. A given MotionTracker must hold ``motion`` (when that is given).
        dense: optional ``dense(prev_frame, frame) -> (2, H', W')`` dense motion for display (``FrameResult.flow``).

    Raises:
        TypeError: ``detector``, ``motion`` or ``dense`` is not callable, or ``tracker`` has no ``update``.
        ValueError: ``motion`` and a tracker holding a different motion source are both given.

    Example:
        >>> det = lambda frame: (np.array([[10.0, 10.0, 40.0, 80.0]]), np.array([0.9]))
        >>> frames = [np.zeros((96, 96, 3), np.uint8)] * 3
        >>> [len(r.tracks) for r in Pipeline(det).run(frames)]
        [1, 1, 1]
    """

    def __init__(
        self,
        detector: Callable[[np.ndarray], Any],
        motion: MotionSource | None = None,
        tracker: Any = None,
        *,
        dense: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        if not callable(detector):
            raise TypeError(f"detector: expected a callable frame -> detections, got {type(detector).__name__}")
        if motion is not None and not callable(motion):
            raise TypeError(
                "motion: expected a MotionSource (prev_frame, frame, boxes) -> (N, 2) or None, "
                f"got {type(motion).__name__}"
            )
        if dense is not None and not callable(dense):
            raise TypeError(f"dense: expected a callable (prev_frame, frame) -> (2, H, W), got {type(dense).__name__}")
        if tracker is None:
            tracker = ByteTracker() if motion is None else MotionTracker(motion)
        elif not callable(getattr(tracker, "update", None)):
            raise TypeError(
                f"tracker: expected an object with update(boxes, scores, classes), got {type(tracker).__name__}"
            )
        held = getattr(tracker, "motion_source", None)
        if motion is not None and held is not motion:
            raise ValueError(
                "motion: the tracker holds a different motion source; pass the same one or only the tracker"
            )
        self.detector = detector
        self.motion = motion if motion is not None else held
        self.tracker = tracker
        self.dense = dense

    def run(self, source: Iterable[np.ndarray], max_frames: int | None = None) -> Iterator[FrameResult]:
        """Track ``source`` from its first frame (the tracker and detector are reset first).

        Args:
            source: an iterable of BGR uint8 frames (H, W, 3), e.g. a :class:`mmtrack_demo.video.FrameSource` or
                a list of arrays.
            max_frames: stop after this many frames (None: all).

        Yields:
            One :class:`FrameResult` per frame, in order.

        Raises:
            ValueError: a detector output or frame of the wrong form.
        """
        tracker = self.tracker
        uses_frames = self.motion is not None
        rec = _RecordingSource(self.motion) if self.motion is not None else None
        if rec is not None:
            tracker.motion_source = rec  # timed and recorded; restored below
        try:
            reset = getattr(tracker, "reset", None)
            if callable(reset):
                reset()
            det_reset = getattr(self.detector, "reset", None)
            if callable(det_reset):
                det_reset()
            prev_centres: dict[int, np.ndarray] = {}
            prev_frame: np.ndarray | None = None
            frames = iter(source)
            n = 0
            while max_frames is None or n < max_frames:
                t0 = time.perf_counter()
                try:
                    image = next(frames)
                except StopIteration:
                    break
                t1 = time.perf_counter()
                n += 1
                dets = as_detections(self.detector(image), "detector")
                t2 = time.perf_counter()
                flow = None
                if self.dense is not None and prev_frame is not None:
                    flow = np.asarray(self.dense(prev_frame, image))
                t3 = time.perf_counter()
                motion_before = rec.seconds if rec is not None else 0.0
                if uses_frames:
                    tracks = tracker.update(dets.boxes, dets.scores, dets.classes, frame=image)
                else:
                    tracks = tracker.update(dets.boxes, dets.scores, dets.classes)
                t4 = time.perf_counter()
                motion_s = (rec.seconds - motion_before) if rec is not None else 0.0
                motion = _match_motion(rec, tracks) if rec is not None else np.full((len(tracks), 2), np.nan)
                centres = (tracks.boxes[:, :2] + tracks.boxes[:, 2:]) / 2
                for k in range(len(tracks)):
                    if not np.isfinite(motion[k]).all():
                        before = prev_centres.get(int(tracks.ids[k]))
                        if before is not None:
                            motion[k] = centres[k] - before
                prev_centres = {int(i): c for i, c in zip(tracks.ids, centres, strict=True)}
                prev_frame = image if self.dense is not None else None
                times = {
                    "decode": t1 - t0,
                    "detect": t2 - t1,
                    "motion": (t3 - t2) + motion_s,
                    "track": (t4 - t3) - motion_s,
                }
                yield FrameResult(n, image, dets, tracks, motion, flow, times)
        finally:
            if rec is not None:
                tracker.motion_source = rec.source
