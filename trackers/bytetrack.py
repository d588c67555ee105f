"""ByteTrack association, faithful to the official implementation and vectorised.

Reference: ifzhang/ByteTrack, ``yolox/tracker/byte_tracker.py`` + ``matching.py`` + ``kalman_filter.py`` +
``basetrack.py``. The decisions of :class:`ByteTracker` are those of the official ``BYTETracker`` step for step,
including its less obvious details:

- High detections: ``score > track_thresh``. Second-stage (low) detections: ``low_thresh < score < track_thresh``
  -- strictly below ``track_thresh`` as the official code does (``scores < track_thresh``), so a detection scoring
  exactly ``track_thresh`` is used by neither stage.
- Stage 1 pool = confirmed tracked tracks + lost tracks, all Kalman-predicted first; a non-tracked track's height
  velocity is zeroed before its prediction (and stays zero, as ``STrack.multi_predict`` writes it back).
  Cost ``1 - IoU`` (IoU with the +1 pixel convention of ``cython_bbox``, see :mod:`trackers.matching`), fused with
  the detection score (``1 - IoU * score``) unless ``fuse_score=False`` (the official ``mot20`` switch), accepted
  up to ``match_thresh`` by ``lap.lapjv``. A matched lost track is re-activated with its old ID.
- Stage 2: pool tracks left unmatched that were *tracked* (not lost) vs low detections, cost ``1 - IoU`` without
  fusion, accepted up to ``second_match_thresh`` (0.5); the still-unmatched ones become lost.
- Unconfirmed tracks (born on the previous frame; never Kalman-predicted) vs the high detections left from stage 1,
  fused cost, accepted up to ``unconfirmed_match_thresh`` (0.7); unmatched unconfirmed tracks are removed.
- A remaining high detection starts a track if ``score >= new_track_thresh`` (default ``track_thresh + 0.1``);
  it is confirmed at once only on the tracker's first frame.
- A lost track is removed when ``frame_id - last_matched_frame > max_time_lost`` with
  ``max_time_lost = int(frame_rate / 30.0 * track_buffer)``. As in the original, a removed track stays in the lost
  list (and can still be re-found) for one more frame, because the original subtracts its removed list before
  extending it; a track re-found that way is dropped at once the next time it is lost.
- Tracked vs lost pairs with ``1 - IoU < 1 - duplicate_iou`` (official: ``< 0.15``, i.e. IoU > 0.85): the one
  tracked for fewer frames is dropped.
- Output: the confirmed tracked tracks, in the original's list order, with the box of the Kalman mean (not the raw
  detection) and the score of the last matched detection.

Beyond the original: every instance owns its ID counter (IDs start at 1), inputs are validated, and
``per_class=True`` restricts every association (and the duplicate check) to tracks and detections of the same class
by masking cross-class costs, so one ID counter serves all classes (VisDrone-style per-class tracking).
A track's class is the class of the detection it was last matched to.

Conventions: boxes are xyxy pixels; the internal state is the official ``(cx, cy, w/h, h)`` Kalman state.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from trackers.kalman import KalmanFilterXYAH
from trackers.matching import fuse_score as _fuse_score
from trackers.matching import iou_matrix, iou_pairs, linear_assignment, overlap_pairs, sparse_linear_assignment
from trackers.mot_io.parsing import MAX_COORD

__all__ = ["ByteTracker", "Tracks"]


def _indices(mask: np.ndarray) -> np.ndarray:
    """Indices of the True entries of a 1-D mask (``np.flatnonzero`` without its wrapper overhead)."""
    return np.asarray(mask).nonzero()[0]


_MAX_SCORE = 1e15  # keeps 1 - IoU * score finite
_TRACKED = 1
_LOST = 2
_REMOVED = 3


@dataclass(frozen=True)
class Tracks:
    """The confirmed tracks of one frame, as returned by ``update``.

    Attributes:
        boxes: boxes, shape (M, 4), float64 xyxy pixels (from the Kalman mean after this frame's update).
        ids: track IDs, shape (M,), int64, >= 1.
        scores: score of each track's last matched detection, shape (M,), float64.
        classes: class of each track's last matched detection, shape (M,), int64 (-1 when no classes were given).
        det_indices: for each track, the row (into this ``update``'s ``boxes_xyxy``) of the detection it was matched
            to in this update, shape (M,), int64; -1 for a track not matched in this update. In
            :class:`ByteTracker` and :class:`~trackers.motion.MotionTracker` every output track was matched this
            frame (a confirmed track left unmatched becomes lost and is not output; a new track is output only on
            the first frame, matched to the detection that started it), so the entries are all >= 0 there; use it
            to write IDs back onto the caller's detections (``ids_per_det[out.det_indices] = out.ids``).
    """

    boxes: np.ndarray
    ids: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    det_indices: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def empty(cls) -> Tracks:
        """No tracks: arrays of shapes (0, 4), (0,), (0,), (0,), (0,)."""
        return cls(
            np.zeros((0, 4)),
            np.zeros((0,), dtype=np.int64),
            np.zeros((0,)),
            np.zeros((0,), dtype=np.int64),
            np.zeros((0,), dtype=np.int64),
        )


def _validate_detections(
    boxes_xyxy: object, scores: object, classes: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes = np.asarray(boxes_xyxy)
    if boxes.dtype == np.bool_ or not np.issubdtype(boxes.dtype, np.number):
        raise TypeError(f"boxes_xyxy: expected a numeric array of shape (N, 4), got dtype {boxes.dtype}")
    boxes = boxes.astype(np.float64, copy=False)
    if boxes.size == 0 and boxes.ndim <= 2:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes_xyxy: expected shape (N, 4) xyxy boxes, got {boxes.shape}")
    n = boxes.shape[0]
    if not np.isfinite(boxes).all():
        row = int(_indices(~np.isfinite(boxes).all(axis=1))[0])
        raise ValueError(f"boxes_xyxy: expected finite values, got {boxes[row].tolist()} at row {row}")
    far = (np.abs(boxes) > MAX_COORD).any(axis=1)
    if far.any():
        row = int(_indices(far)[0])
        raise ValueError(
            f"boxes_xyxy: expected coordinates within +-{MAX_COORD:g} pixels, got {boxes[row].tolist()} at row {row}"
        )
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        row = int(_indices(bad)[0])
        raise ValueError(f"boxes_xyxy: expected x2 >= x1 and y2 >= y1, got {boxes[row].tolist()} at row {row}")

    sc = np.asarray(scores)
    if sc.dtype == np.bool_ or not np.issubdtype(sc.dtype, np.number):
        raise TypeError(f"scores: expected a numeric array of shape ({n},), got dtype {sc.dtype}")
    sc = sc.astype(np.float64, copy=False)
    if sc.size == 0 and n == 0:
        sc = sc.reshape(0)
    if sc.shape != (n,):
        raise ValueError(f"scores: expected shape ({n},) to match boxes_xyxy {boxes.shape}, got {sc.shape}")
    if not np.isfinite(sc).all():
        row = int(_indices(~np.isfinite(sc))[0])
        raise ValueError(f"scores: expected finite values, got {sc[row]} at index {row}")
    if (np.abs(sc) > _MAX_SCORE).any():
        row = int(_indices(np.abs(sc) > _MAX_SCORE)[0])
        raise ValueError(f"scores: expected |score| <= {_MAX_SCORE:g}, got {sc[row]} at index {row}")

    if classes is None:
        cl = np.full(n, -1, dtype=np.int64)
    else:
        c = np.asarray(classes)
        if c.size == 0 and n == 0:
            c = c.reshape(0)
        if c.shape != (n,):
            raise ValueError(f"classes: expected shape ({n},) to match boxes_xyxy {boxes.shape}, got {c.shape}")
        if np.issubdtype(c.dtype, np.integer):
            cl = c.astype(np.int64, copy=False)
        elif np.issubdtype(c.dtype, np.floating) and np.isfinite(c).all() and (c == np.round(c)).all():
            cl = c.astype(np.int64)
        else:
            raise ValueError(f"classes: expected integer class ids, got dtype {c.dtype} values {c[:5].tolist()}")
    return boxes, sc, cl


def _xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """Official ``STrack.tlbr`` from a Kalman mean: w = a*h, x1 = cx - w/2, x2 = x1 + w (same rounding)."""
    out = np.empty((xyah.shape[0], 4))
    w = xyah[:, 2] * xyah[:, 3]
    h = xyah[:, 3]
    out[:, 0] = xyah[:, 0] - w / 2
    out[:, 1] = xyah[:, 1] - h / 2
    out[:, 2] = out[:, 0] + w
    out[:, 3] = out[:, 1] + h
    return out


class ByteTracker:
    """ByteTrack multi-object tracker (official association, vectorised Kalman filter and IoU).

    Args:
        track_thresh: detections scoring above it are "high" (stage 1, may start tracks).
        match_thresh: largest accepted stage-1 cost (``1 - IoU * score`` with fusion).
        track_buffer: frames (at 30 fps) a lost track is kept for re-identification.
        frame_rate: video frame rate; ``max_time_lost = int(frame_rate / 30.0 * track_buffer)``.
        low_thresh: detections with ``low_thresh < score < track_thresh`` feed stage 2.
        new_track_thresh: smallest score of a detection that starts a track (default ``track_thresh + 0.1``).
        second_match_thresh: largest accepted stage-2 cost (``1 - IoU``).
        unconfirmed_match_thresh: largest accepted cost between unconfirmed tracks and detections.
        fuse_score: multiply IoU by the detection score in stage 1 and the unconfirmed stage (off for MOT20).
        per_class: associate tracks only with detections of the same class.
        duplicate_iou: a tracked and a lost track overlapping with IoU above it are duplicates
            (official: distance ``1 - IoU < 0.15``).

    Raises:
        ValueError: a threshold or count is out of range.

    Example:
        >>> tracker = ByteTracker()
        >>> out = tracker.update(np.array([[10.0, 10.0, 50.0, 90.0]]), np.array([0.9]))
        >>> out.boxes.shape, out.ids.tolist()
        ((1, 4), [1])
    """

    def __init__(
        self,
        track_thresh: float = 0.6,
        match_thresh: float = 0.9,
        track_buffer: int = 30,
        frame_rate: float = 30.0,
        *,
        low_thresh: float = 0.1,
        new_track_thresh: float | None = None,
        second_match_thresh: float = 0.5,
        unconfirmed_match_thresh: float = 0.7,
        fuse_score: bool = True,
        per_class: bool = False,
        duplicate_iou: float = 0.85,
    ) -> None:
        for name, value in (
            ("track_thresh", track_thresh),
            ("match_thresh", match_thresh),
            ("low_thresh", low_thresh),
            ("second_match_thresh", second_match_thresh),
            ("unconfirmed_match_thresh", unconfirmed_match_thresh),
            ("duplicate_iou", duplicate_iou),
            ("frame_rate", frame_rate),
        ):
            if not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value):
                raise ValueError(f"{name}: expected a finite number, got {value!r}")
        if not 0.0 <= duplicate_iou <= 1.0:
            raise ValueError(f"duplicate_iou: expected a value in [0, 1], got {duplicate_iou!r}")
        if low_thresh > track_thresh:
            raise ValueError(f"low_thresh: expected <= track_thresh ({track_thresh!r}), got {low_thresh!r}")
        if frame_rate <= 0:
            raise ValueError(f"frame_rate: expected a positive number of frames per second, got {frame_rate!r}")
        if isinstance(track_buffer, bool) or not isinstance(track_buffer, (int, np.integer)) or track_buffer < 0:
            raise ValueError(f"track_buffer: expected a non-negative int number of frames, got {track_buffer!r}")
        if new_track_thresh is not None and not np.isfinite(new_track_thresh):
            raise ValueError(f"new_track_thresh: expected a finite number or None, got {new_track_thresh!r}")
        self.track_thresh = float(track_thresh)
        self.match_thresh = float(match_thresh)
        self.track_buffer = int(track_buffer)
        self.frame_rate = float(frame_rate)
        self.low_thresh = float(low_thresh)
        # Official: det_thresh = args.track_thresh + 0.1 (same float expression).
        self.new_track_thresh = float(track_thresh + 0.1 if new_track_thresh is None else new_track_thresh)
        self.second_match_thresh = float(second_match_thresh)
        self.unconfirmed_match_thresh = float(unconfirmed_match_thresh)
        self.fuse_score = bool(fuse_score)
        self.per_class = bool(per_class)
        self.duplicate_iou = float(duplicate_iou)
        # Official: pairs with IoU distance < 0.15; rounding keeps 1 - 0.85 from becoming 0.15000000000000002.
        self._duplicate_dist = round(1.0 - self.duplicate_iou, 12)
        self.max_time_lost = int(frame_rate / 30.0 * track_buffer)
        self.kalman_filter = KalmanFilterXYAH()
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget all tracks and restart IDs at 1 and the frame counter at 0."""
        self._frame_id = 0
        self._next_id = 1
        self._n_tracked = 0  # rows [0, n_tracked) are the tracked list, the rest the lost list (in order)
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 8, 8))
        self._ids = np.zeros((0,), dtype=np.int64)
        self._state = np.zeros((0,), dtype=np.int8)
        self._activated = np.zeros((0,), dtype=bool)
        self._last_frame = np.zeros((0,), dtype=np.int64)
        self._start_frame = np.zeros((0,), dtype=np.int64)
        self._score = np.zeros((0,))
        self._cls = np.zeros((0,), dtype=np.int64)
        self._in_removed = np.zeros((0,), dtype=bool)
        self._det = np.zeros((0,), dtype=np.int64)  # input row matched in the current update, -1 if none

    @property
    def frame_id(self) -> int:
        """Number of ``update`` calls since construction or the last :meth:`reset`."""
        return self._frame_id

    @property
    def track_count(self) -> int:
        """Number of tracks kept (tracked, unconfirmed and lost); 0 means another empty frame changes nothing."""
        return int(self._ids.shape[0])

    def _take(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (in that order) of every per-track array."""
        self._mean = self._mean[rows]
        self._cov = self._cov[rows]
        self._ids = self._ids[rows]
        self._state = self._state[rows]
        self._activated = self._activated[rows]
        self._last_frame = self._last_frame[rows]
        self._start_frame = self._start_frame[rows]
        self._score = self._score[rows]
        self._cls = self._cls[rows]
        self._in_removed = self._in_removed[rows]
        self._det = self._det[rows]

    def _pools(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the stage-1 pool (confirmed tracked, then lost) and of the unconfirmed tracks."""
        nt = self._n_tracked
        act = self._activated[:nt]
        return np.concatenate([_indices(act), np.arange(nt, self._ids.shape[0])]), _indices(~act)

    # ------------------------------------------------------------------ hooks
    def _predict(self, pool: np.ndarray, unconfirmed: np.ndarray) -> None:
        """Kalman-predict the stage-1 pool in place (official ``STrack.multi_predict``)."""
        if pool.size == 0:
            return
        mean = self._mean[pool]
        mean[self._state[pool] != _TRACKED, 7] = 0.0
        self._mean[pool], self._cov[pool] = self.kalman_filter.multi_predict(mean, self._cov[pool])

    # ------------------------------------------------------------------ helpers
    #: Largest tracks x detections product matched with dense (N, M) matrices; above it, only overlapping pairs are
    #: scored (grid search, sparse assignment). Both give the same decisions (tests force each path).
    _dense_limit = 20_000

    def _associate(
        self,
        track_boxes: np.ndarray,
        track_cls: np.ndarray,
        det_boxes: np.ndarray,
        det_scores: np.ndarray,
        det_cls: np.ndarray,
        fuse: bool,
        thresh: float,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Match tracks to detections: cost ``1 - IoU`` (fused: ``1 - IoU * score``), accepted up to ``thresh``."""
        n, m = track_boxes.shape[0], det_boxes.shape[0]
        mask = max(thresh, 1.0) + 1.0  # cross-class pairs: never matched
        if n * m <= self._dense_limit or thresh >= 1.0:  # thresh >= 1 also admits pairs that do not overlap
            cost = 1 - iou_matrix(track_boxes, det_boxes)
            if fuse and cost.size:
                cost = _fuse_score(cost, det_scores)
            if self.per_class and cost.size:
                cost[track_cls[:, None] != det_cls[None, :]] = mask
            return linear_assignment(cost, thresh)
        # Pairs that do not overlap cost exactly 1 (fused too: 1 - 0 * score) > thresh: only overlaps matter.
        ia, ib = overlap_pairs(track_boxes, det_boxes)
        pair_cost = 1 - iou_pairs(track_boxes, det_boxes, ia, ib)
        if fuse:
            pair_cost = 1 - (1 - pair_cost) * det_scores[ib]  # fuse_score's arithmetic, entry by entry
        if self.per_class:
            pair_cost[track_cls[ia] != det_cls[ib]] = mask
        return sparse_linear_assignment(ia, ib, pair_cost, (n, m), thresh, fill=1.0)

    def _duplicate_pairs(self, tracked: np.ndarray, lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p, q): tracked[p] and lost[q] overlap with ``1 - IoU < 1 - duplicate_iou`` (same class if per_class)."""
        a = _xyah_to_xyxy(self._mean[tracked, :4])
        b = _xyah_to_xyxy(self._mean[lost, :4])
        if tracked.size * lost.size <= self._dense_limit:
            dist = 1 - iou_matrix(a, b)
            if self.per_class:
                dist[self._cls[tracked][:, None] != self._cls[lost][None, :]] = 1.0
            p, q = np.nonzero(dist < self._duplicate_dist)
            return p, q
        # a pair that does not overlap has distance 1, never below the (at most 1) duplicate distance
        p, q = overlap_pairs(a, b)
        dist = 1 - iou_pairs(a, b, p, q)
        if self.per_class:
            dist[self._cls[tracked[p]] != self._cls[lost[q]]] = 1.0
        keep = dist < self._duplicate_dist
        return p[keep], q[keep]

    # ------------------------------------------------------------------ main
    def update(self, boxes_xyxy: np.ndarray, scores: np.ndarray, classes: np.ndarray | None = None) -> Tracks:
        """Advance the tracker by one frame.

        Args:
            boxes_xyxy: detections, shape (N, 4), xyxy pixels, finite and within +-1e7, ``x2 >= x1`` and
                ``y2 >= y1``; N may be 0.
                Zero-height boxes cannot be represented by the (cx, cy, w/h, h) state and are ignored
                (with a warning).
            scores: detection scores, shape (N,), finite.
            classes: integer class ids, shape (N,), or None (all -1).

        Returns:
            The confirmed tracks after this frame (:class:`Tracks`; ``det_indices`` index ``boxes_xyxy``).

        Raises:
            ValueError: shapes or values of the inputs are invalid (the message names the argument).
            TypeError: an input is not numeric.
        """
        boxes, sc, cl = _validate_detections(boxes_xyxy, scores, classes)
        return self._step(boxes, sc, cl)

    def _step(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> Tracks:
        self._frame_id += 1
        f = self._frame_id
        zero_h = boxes[:, 3] <= boxes[:, 1]
        input_row = np.arange(boxes.shape[0], dtype=np.int64)  # row in the caller's input of each detection
        if zero_h.any():
            warnings.warn(
                f"boxes_xyxy: ignoring {int(zero_h.sum())} detection(s) of zero height (y2 == y1)", stacklevel=3
            )
            keep = ~zero_h
            boxes, scores, classes, input_row = boxes[keep], scores[keep], classes[keep], input_row[keep]
        self._det.fill(-1)

        # Detections as the original sees them: tlwh, its tlbr (x1 + w) and xyah (cx = x1 + w/2, a = w/h).
        tlwh = boxes.copy()
        tlwh[:, 2:] -= tlwh[:, :2]
        det_boxes = tlwh.copy()
        det_boxes[:, 2:] += det_boxes[:, :2]
        det_xyah = tlwh.copy()
        det_xyah[:, :2] += det_xyah[:, 2:] / 2
        det_xyah[:, 2] /= det_xyah[:, 3]

        hi = _indices(scores > self.track_thresh)
        lo = _indices((scores > self.low_thresh) & (scores < self.track_thresh))

        nt = self._n_tracked
        total = self._ids.shape[0]
        pool, unconfirmed = self._pools()

        # Step 2: first association, high detections vs tracked + lost (predicted).
        self._predict(pool, unconfirmed)
        pool_boxes = _xyah_to_xyxy(self._mean[pool, :4])
        m1, u_track, u_det = self._associate(
            pool_boxes, self._cls[pool], det_boxes[hi], scores[hi], classes[hi], self.fuse_score, self.match_thresh
        )
        rows1 = pool[m1[:, 0]]
        dets1 = hi[m1[:, 1]]
        refind = rows1[self._state[rows1] != _TRACKED]

        # Step 3: second association, low detections vs the unmatched tracks that were tracked.
        cand = u_track[self._state[pool[u_track]] == _TRACKED]
        r_tracked = pool[cand]
        m2, u_track2, _ = self._associate(
            pool_boxes[cand], self._cls[r_tracked], det_boxes[lo], scores[lo], classes[lo], False,
            self.second_match_thresh,
        )  # fmt: skip
        rows2 = r_tracked[m2[:, 0]]
        dets2 = lo[m2[:, 1]]
        newly_lost = r_tracked[u_track2]

        # Unconfirmed tracks (not predicted) vs the high detections left over.
        rem = hi[u_det]
        m3, u_unconf, u_det3 = self._associate(
            _xyah_to_xyxy(self._mean[unconfirmed, :4]), self._cls[unconfirmed], det_boxes[rem], scores[rem],
            classes[rem], self.fuse_score, self.unconfirmed_match_thresh,
        )  # fmt: skip
        rows3 = unconfirmed[m3[:, 0]]
        dets3 = rem[m3[:, 1]]

        # Kalman update of every matched track at once (the three sets are disjoint).
        rows = np.concatenate([rows1, rows2, rows3])
        dets = np.concatenate([dets1, dets2, dets3])
        if rows.size:
            self._mean[rows], self._cov[rows] = self.kalman_filter.multi_update(
                self._mean[rows], self._cov[rows], det_xyah[dets]
            )
            self._state[rows] = _TRACKED
            self._activated[rows] = True
            self._last_frame[rows] = f
            self._score[rows] = scores[dets]
            self._cls[rows] = classes[dets]
            self._det[rows] = input_row[dets]
        self._state[newly_lost] = _LOST
        self._state[unconfirmed[u_unconf]] = _REMOVED

        # Step 4: new tracks.
        new = rem[u_det3]
        new = new[scores[new] >= self.new_track_thresh]
        k = new.size
        if k:
            mean, cov = self.kalman_filter.multi_initiate(det_xyah[new])
            self._mean = np.concatenate([self._mean, mean])
            self._cov = np.concatenate([self._cov, cov])
            self._ids = np.concatenate([self._ids, np.arange(self._next_id, self._next_id + k, dtype=np.int64)])
            self._next_id += k
            self._state = np.concatenate([self._state, np.full(k, _TRACKED, dtype=np.int8)])
            self._activated = np.concatenate([self._activated, np.full(k, f == 1)])
            self._last_frame = np.concatenate([self._last_frame, np.full(k, f, dtype=np.int64)])
            self._start_frame = np.concatenate([self._start_frame, np.full(k, f, dtype=np.int64)])
            self._score = np.concatenate([self._score, scores[new]])
            self._cls = np.concatenate([self._cls, classes[new]])
            self._in_removed = np.concatenate([self._in_removed, np.zeros(k, dtype=bool)])
            self._det = np.concatenate([self._det, input_row[new]])
        new_rows = np.arange(total, total + k)

        # Step 5: expire lost tracks (checked on the old lost list, after this frame's matches).
        old_lost = np.arange(nt, total)
        expired = old_lost[f - self._last_frame[old_lost] > self.max_time_lost]
        self._state[expired] = _REMOVED

        # New lists, in the original's order: tracked = old tracked still Tracked + new + re-found;
        # lost = old lost not re-found + newly lost, minus tracks already in the removed list.
        tracked = np.concatenate([_indices(self._state[:nt] == _TRACKED), new_rows, refind])
        lost = np.concatenate([old_lost[self._state[old_lost] != _TRACKED], newly_lost])
        lost = lost[~self._in_removed[lost]]
        self._in_removed[expired] = True

        # Remove duplicates between tracked and lost (the younger of a pair goes).
        if tracked.size and lost.size:
            p, q = self._duplicate_pairs(tracked, lost)
            if p.size:
                age_p = self._last_frame[tracked[p]] - self._start_frame[tracked[p]]
                age_q = self._last_frame[lost[q]] - self._start_frame[lost[q]]
                drop_lost = np.unique(q[age_p > age_q])
                drop_tracked = np.unique(p[age_p <= age_q])
                tracked = np.delete(tracked, drop_tracked)
                lost = np.delete(lost, drop_lost)

        self._take(np.concatenate([tracked, lost]))
        self._n_tracked = tracked.size
        return self._output()

    def _output(self) -> Tracks:
        out = _indices(self._activated[: self._n_tracked])
        if out.size == 0:
            return Tracks.empty()
        return Tracks(
            boxes=_xyah_to_xyxy(self._mean[out, :4]),
            ids=self._ids[out].copy(),
            scores=self._score[out].copy(),
            classes=self._cls[out].copy(),
            det_indices=self._det[out].copy(),
        )
