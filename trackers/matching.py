"""IoU cost and linear assignment, as ByteTrack's ``yolox/tracker/matching.py`` computes them.

IoU convention: the official ``iou_distance`` calls ``cython_bbox.bbox_overlaps`` (the Fast R-CNN routine), which
treats box coordinates as inclusive pixel indices and therefore adds one pixel to every width and height::

    iw = min(x2a, x2b) - max(x1a, x1b) + 1        (0 if iw <= 0)
    ih = min(y2a, y2b) - max(y1a, y1b) + 1        (0 if ih <= 0)
    iou = iw * ih / ((x2a - x1a + 1) (y2a - y1a + 1) + (x2b - x1b + 1) (y2b - y1b + 1) - iw * ih)

:func:`iou_matrix` reproduces that (``plus_one=True``, the default) so that association decisions match the
official tracker; pass ``plus_one=False`` for the continuous-coordinate IoU that evaluation tools use.
"""

from __future__ import annotations

import lap
import numpy as np

__all__ = ["fuse_score", "iou_matrix", "linear_assignment"]


def _indices(mask: np.ndarray) -> np.ndarray:
    """Indices of the True entries of a 1-D mask (``np.flatnonzero`` without its wrapper overhead)."""
    return np.asarray(mask).nonzero()[0]


def _as_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name}: expected shape (N, 4) xyxy boxes, got {arr.shape}")
    return arr


def iou_matrix(boxes_a_xyxy: np.ndarray, boxes_b_xyxy: np.ndarray, *, plus_one: bool = True) -> np.ndarray:
    """Pairwise IoU of two sets of xyxy boxes.

    Args:
        boxes_a_xyxy: boxes, shape (N, 4), xyxy pixels.
        boxes_b_xyxy: boxes, shape (M, 4), xyxy pixels.
        plus_one: use the inclusive-pixel convention of ``cython_bbox.bbox_overlaps`` (ByteTrack), i.e. add 1 to
            every width and height; False gives the continuous IoU (a zero-area union then gives IoU 0).

    Returns:
        IoU, shape (N, M), float64 in [0, 1].

    Raises:
        ValueError: a box array is not of shape (N, 4).

    Example:
        >>> iou_matrix(np.array([[0.0, 0.0, 9.0, 9.0]]), np.array([[0.0, 0.0, 9.0, 9.0], [5.0, 0.0, 14.0, 9.0]]))
        array([[1.        , 0.33333333]])
    """
    a = _as_boxes(boxes_a_xyxy, "boxes_a_xyxy")
    b = _as_boxes(boxes_b_xyxy, "boxes_b_xyxy")
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    one = 1.0 if plus_one else 0.0
    ax1, ay1, ax2, ay2 = (a[:, i : i + 1] for i in range(4))
    bx1, by1, bx2, by2 = (b[:, i] for i in range(4))
    # In-place arithmetic: these (N, M) temporaries dominate the cost for large N, M.
    iw = np.minimum(ax2, bx2)
    iw -= np.maximum(ax1, bx1)
    iw += one
    np.maximum(iw, 0.0, out=iw)
    ih = np.minimum(ay2, by2)
    ih -= np.maximum(ay1, by1)
    ih += one
    np.maximum(ih, 0.0, out=ih)
    inter = iw
    inter *= ih
    area_a = (ax2 - ax1 + one) * (ay2 - ay1 + one)
    area_b = (bx2 - bx1 + one) * (by2 - by1 + one)
    # The original computes (area_a + area_b) - inter, in that order; same rounding here.
    union = ih
    np.add(area_a, area_b, out=union)
    union -= inter
    positive = inter > 0
    np.divide(inter, union, out=inter, where=positive)
    return inter


def linear_assignment(cost: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost assignment that leaves pairs costing more than ``thresh`` unmatched.

    Calls ``lap.lapjv(cost, extend_cost=True, cost_limit=thresh)`` as ByteTrack does: every row and column may
    also stay unmatched at cost ``thresh / 2`` each, so a pair is matched only if its cost is at most ``thresh``
    and the total is minimal. Rows and columns with no entry ``<= thresh`` (unmatched in every optimal solution)
    and isolated pairs (a row and a column that are each other's only admissible entry: matched in every optimal
    solution) are settled without ``lapjv``; that changes nothing but the run time, except that when several
    assignments tie exactly the pick may differ from a call on the full matrix.

    Args:
        cost: cost matrix, shape (N, M), finite.
        thresh: largest accepted cost of a matched pair.

    Returns:
        ``(matches, unmatched_rows, unmatched_cols)``: matches of shape (K, 2) int64 as ``(row, col)`` in
        ascending row order; unmatched row and column indices in ascending order (int64).

    Raises:
        ValueError: ``cost`` is not 2-D or contains NaN.

    Example:
        >>> m, ur, uc = linear_assignment(np.array([[0.1, 0.9], [0.8, 0.95]]), thresh=0.5)
        >>> m.tolist(), ur.tolist(), uc.tolist()
        ([[0, 0]], [1], [1])
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost: expected a 2-D matrix, got shape {cost.shape}")
    n, m = cost.shape
    if cost.size == 0:
        return np.empty((0, 2), dtype=np.int64), np.arange(n, dtype=np.int64), np.arange(m, dtype=np.int64)
    if np.isnan(cost).any():
        raise ValueError("cost: expected no NaN entries")
    # Exact shortcuts around lapjv (the optimum is unchanged):
    # - a row or column without a single admissible entry (<= thresh) is unmatched in every optimal solution,
    #   since matching a pair dearer than ``thresh`` costs more than leaving both unmatched;
    # - a row and a column that are each other's only admissible entry form an isolated pair: matched.
    # Only the rest, usually a few small clusters of overlapping boxes, goes to lapjv.
    admissible = cost <= thresh
    row_count = admissible.sum(axis=1)
    col_count = admissible.sum(axis=0)
    first_col = admissible.argmax(axis=1)
    isolated = (row_count == 1) & (col_count[first_col] == 1)
    row_to_col = np.full(n, -1, dtype=np.int64)
    row_to_col[isolated] = first_col[isolated]
    col_matched = np.zeros(m, dtype=bool)
    col_matched[first_col[isolated]] = True
    rows = _indices((row_count > 0) & ~isolated)
    cols = _indices((col_count > 0) & ~col_matched)
    if rows.size:
        sub = cost if (rows.size == n and cols.size == m) else cost[np.ix_(rows, cols)]
        _, x, _ = lap.lapjv(sub, extend_cost=True, cost_limit=thresh)
        x = np.asarray(x, dtype=np.int64)
        hit = x >= 0
        row_to_col[rows[hit]] = cols[x[hit]]
        col_matched[cols[x[hit]]] = True
    matched_rows = _indices(row_to_col >= 0)
    matches = np.stack([matched_rows, row_to_col[matched_rows]], axis=1)
    return matches, _indices(row_to_col < 0), _indices(~col_matched)


def fuse_score(iou_cost: np.ndarray, det_scores: np.ndarray) -> np.ndarray:
    """ByteTrack's score fusion: ``1 - (1 - iou_cost) * score`` per detection column.

    Args:
        iou_cost: ``1 - IoU``, shape (N, M).
        det_scores: detection scores, shape (M,).

    Returns:
        Fused cost, shape (N, M).

    Raises:
        ValueError: ``det_scores`` does not have one entry per column.

    Example:
        >>> fuse_score(np.array([[0.2]]), np.array([0.5]))
        array([[0.6]])
    """
    iou_cost = np.asarray(iou_cost, dtype=np.float64)
    det_scores = np.asarray(det_scores, dtype=np.float64)
    if iou_cost.ndim != 2 or det_scores.shape != (iou_cost.shape[1],):
        raise ValueError(
            f"det_scores: expected shape ({iou_cost.shape[1] if iou_cost.ndim == 2 else 'M'},) "
            f"for a cost matrix of shape {iou_cost.shape}, got {det_scores.shape}"
        )
    if iou_cost.size == 0:
        return iou_cost
    return 1 - (1 - iou_cost) * det_scores[None, :]
