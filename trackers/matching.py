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

__all__ = [
    "fuse_score",
    "iou_matrix",
    "iou_pairs",
    "linear_assignment",
    "overlap_pairs",
    "sparse_linear_assignment",
]


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


# ---------------------------------------------------------------------------------------------------- sparse path
# With thousands of boxes per frame, the dense (N, M) IoU and cost matrices dominate time and memory, yet only
# overlapping pairs can ever be matched (every threshold below 1 needs IoU > 0). The functions below find those
# pairs with a uniform grid, compute their IoU with the same arithmetic as iou_matrix (bit-identical values), and
# solve the assignment per connected component of the admissible pairs.

_EMPTY_PAIRS = (np.zeros(0, np.int64), np.zeros(0, np.int64))
_PAIR_CHUNK = 1 << 21  # candidate pairs examined at once: bounds the temporary memory (~100 MB)


def _pair_filter(a: np.ndarray, b: np.ndarray, ia: np.ndarray, ib: np.ndarray, one: float) -> np.ndarray:
    """Mask of the pairs whose intersection is positive, with iou_matrix's exact expressions."""
    iw = np.minimum(a[ia, 2], b[ib, 2])
    iw -= np.maximum(a[ia, 0], b[ib, 0])
    iw += one
    ih = np.minimum(a[ia, 3], b[ib, 3])
    ih -= np.maximum(a[ia, 1], b[ib, 1])
    ih += one
    return (iw > 0) & (ih > 0)


def _dense_pairs(a: np.ndarray, b: np.ndarray, rows: np.ndarray, cols: np.ndarray, one: float) -> list[np.ndarray]:
    """All overlapping pairs between a[rows] and b[cols], by brute force in bounded chunks."""
    out_a, out_b = [], []
    if rows.size == 0 or cols.size == 0:
        return [np.zeros(0, np.int64), np.zeros(0, np.int64)]
    step = max(1, _PAIR_CHUNK // cols.size)
    for start in range(0, rows.size, step):
        ia = np.repeat(rows[start : start + step], cols.size)
        ib = np.tile(cols, min(step, rows.size - start))
        keep = _pair_filter(a, b, ia, ib, one)
        out_a.append(ia[keep])
        out_b.append(ib[keep])
    return [np.concatenate(out_a), np.concatenate(out_b)]


def overlap_pairs(
    boxes_a_xyxy: np.ndarray, boxes_b_xyxy: np.ndarray, *, plus_one: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of boxes with a positive intersection (IoU > 0), without forming the (N, M) matrix.

    Boxes of ``b`` go into a uniform grid (by their top-left corner) whose cell is as large as the largest box;
    each box of ``a`` looks only at the cells it can reach. Outliers, boxes over 4 times the 98th-percentile size,
    are compared with every box of the other set instead, so one huge box does not make the cells huge. The result
    is exactly ``np.nonzero(iou_matrix(a, b, plus_one=plus_one) > 0)``.

    Args:
        boxes_a_xyxy: boxes, shape (N, 4), xyxy pixels.
        boxes_b_xyxy: boxes, shape (M, 4), xyxy pixels.
        plus_one: the inclusive-pixel convention of :func:`iou_matrix`.

    Returns:
        ``(rows, cols)``: int64 indices into a and b, shape (K,) each, sorted by row then column.

    Example:
        >>> a = np.array([[0.0, 0.0, 9.0, 9.0], [100.0, 100.0, 120.0, 130.0]])
        >>> overlap_pairs(a, np.array([[5.0, 5.0, 15.0, 15.0]]))
        (array([0]), array([0]))
    """
    a = _as_boxes(boxes_a_xyxy, "boxes_a_xyxy")
    b = _as_boxes(boxes_b_xyxy, "boxes_b_xyxy")
    n, m = a.shape[0], b.shape[0]
    if n == 0 or m == 0:
        return _EMPTY_PAIRS
    one = 1.0 if plus_one else 0.0
    ext_a = np.maximum(a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]) + one
    ext_b = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) + one
    # outliers (over 4x the 98th-percentile size) are compared by brute force; the grid cell fits every other box
    limit = 4.0 * max(4.0, float(np.quantile(np.concatenate([ext_a, ext_b]), 0.98)))
    big_a, big_b = ext_a > limit, ext_b > limit
    small_a, small_b = _indices(~big_a), _indices(~big_b)
    cell = max(16.0, float(ext_b[small_b].max())) if small_b.size else 16.0
    parts = [_dense_pairs(a, b, _indices(big_a), np.arange(m), one), _dense_pairs(a, b, small_a, _indices(big_b), one)]
    if small_a.size and small_b.size:
        x0 = min(float(a[:, 0].min()), float(b[:, 0].min())) - 2 * cell - 2.0
        y0 = min(float(a[:, 1].min()), float(b[:, 1].min())) - 2 * cell - 2.0
        bcx = np.floor((b[small_b, 0] - x0) / cell).astype(np.int64)
        bcy = np.floor((b[small_b, 1] - y0) / cell).astype(np.int64)
        width = int(bcx.max()) + 8
        keys = bcy * width + bcx
        order = np.argsort(keys, kind="stable")
        sorted_keys, sorted_b = keys[order], small_b[order]
        # A small b box overlapping a has bx1 in [ax1 - one - cell, ax2 + one] (and by1 likewise); one extra pixel
        # each side absorbs rounding, and floor is monotone, so these cell ranges cover every candidate.
        sa = a[small_a]
        cx_lo = np.floor((sa[:, 0] - one - cell - 1.0 - x0) / cell).astype(np.int64)
        cx_hi = np.floor((sa[:, 2] + one + 1.0 - x0) / cell).astype(np.int64)
        cy_lo = np.floor((sa[:, 1] - one - cell - 1.0 - y0) / cell).astype(np.int64)
        cy_hi = np.floor((sa[:, 3] + one + 1.0 - y0) / cell).astype(np.int64)
        # keys of one grid row are consecutive only within [0, width): clip, so a range never bleeds into the next
        np.clip(cx_lo, 0, None, out=cx_lo)
        np.clip(cx_hi, None, width - 1, out=cx_hi)
        span = int((cy_hi - cy_lo).max()) + 1
        # one key range per (a box, grid row): cells cx_lo..cx_hi of that row are consecutive keys
        rows_a = np.repeat(np.arange(small_a.size), span)
        cy = np.repeat(cy_lo, span) + np.tile(np.arange(span), small_a.size)
        valid = cy <= np.repeat(cy_hi, span)
        rows_a, cy = rows_a[valid], cy[valid]
        lo = np.searchsorted(sorted_keys, cy * width + cx_lo[rows_a], side="left")
        hi = np.searchsorted(sorted_keys, cy * width + cx_hi[rows_a], side="right")
        counts = np.maximum(hi - lo, 0)  # empty when the a box lies beyond every b box
        out_a, out_b = [], []
        ends = np.cumsum(counts)
        start = 0
        while start < counts.size:  # chunks of whole ranges, about _PAIR_CHUNK candidates each
            base = int(ends[start - 1]) if start else 0
            stop = int(np.searchsorted(ends, base + _PAIR_CHUNK, side="right"))
            stop = max(stop, start + 1)
            c = counts[start:stop]
            total = int(c.sum())
            if total:
                ia = np.repeat(small_a[rows_a[start:stop]], c)
                offsets = np.repeat(lo[start:stop] - (np.cumsum(c) - c), c) + np.arange(total)
                ib = sorted_b[offsets]
                keep = _pair_filter(a, b, ia, ib, one)
                out_a.append(ia[keep])
                out_b.append(ib[keep])
            start = stop
        if out_a:
            parts.append([np.concatenate(out_a), np.concatenate(out_b)])
    ia = np.concatenate([p[0] for p in parts])
    ib = np.concatenate([p[1] for p in parts])
    order = np.lexsort((ib, ia))
    return ia[order], ib[order]


def iou_pairs(
    boxes_a_xyxy: np.ndarray, boxes_b_xyxy: np.ndarray, rows: np.ndarray, cols: np.ndarray, *, plus_one: bool = True
) -> np.ndarray:
    """IoU of the pairs ``(a[rows[k]], b[cols[k]])``, bit-identical to the same entries of :func:`iou_matrix`.

    Args:
        boxes_a_xyxy: boxes, shape (N, 4), xyxy pixels.
        boxes_b_xyxy: boxes, shape (M, 4), xyxy pixels.
        rows: indices into a, shape (K,).
        cols: indices into b, shape (K,).
        plus_one: the inclusive-pixel convention of :func:`iou_matrix`.

    Returns:
        IoU, shape (K,), float64.

    Example:
        >>> iou_pairs(np.array([[0.0, 0.0, 9.0, 9.0]]), np.array([[5.0, 0.0, 14.0, 9.0]]), np.array([0]), np.array([0]))
        array([0.33333333])
    """
    a = _as_boxes(boxes_a_xyxy, "boxes_a_xyxy")
    b = _as_boxes(boxes_b_xyxy, "boxes_b_xyxy")
    one = 1.0 if plus_one else 0.0
    ra, cb = a[rows], b[cols]
    iw = np.minimum(ra[:, 2], cb[:, 2])
    iw -= np.maximum(ra[:, 0], cb[:, 0])
    iw += one
    np.maximum(iw, 0.0, out=iw)
    ih = np.minimum(ra[:, 3], cb[:, 3])
    ih -= np.maximum(ra[:, 1], cb[:, 1])
    ih += one
    np.maximum(ih, 0.0, out=ih)
    inter = iw
    inter *= ih
    area_a = (ra[:, 2] - ra[:, 0] + one) * (ra[:, 3] - ra[:, 1] + one)
    area_b = (cb[:, 2] - cb[:, 0] + one) * (cb[:, 3] - cb[:, 1] + one)
    union = ih
    np.add(area_a, area_b, out=union)
    union -= inter
    np.divide(inter, union, out=inter, where=inter > 0)
    return inter


def sparse_linear_assignment(
    rows: np.ndarray,
    cols: np.ndarray,
    costs: np.ndarray,
    shape: tuple[int, int],
    thresh: float,
    *,
    fill: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`linear_assignment` of a cost matrix given by its listed entries (all others equal ``fill``).

    ``fill`` must exceed ``thresh`` (unlisted pairs are never matched). Isolated admissible pairs, and stars (one
    row or one column) whose cheapest entry is unique, are settled directly; every other connected component of
    the admissible pairs goes to ``lap.lapjv`` as the dense block of the full matrix on its rows and columns
    (listed entries, ``fill`` elsewhere), which is exactly what the dense call would see for those rows and
    columns; the optimum is therefore the same, and so is the pick, except when several assignments tie exactly
    (as for :func:`linear_assignment`).

    Args:
        rows: row of each listed entry, shape (K,), int.
        cols: column of each listed entry, shape (K,), int; (row, col) pairs unique.
        costs: the entries, shape (K,), no NaN.
        shape: ``(N, M)`` of the full matrix.
        thresh: largest accepted cost of a matched pair.
        fill: cost of every unlisted pair, > ``thresh``.

    Returns:
        ``(matches, unmatched_rows, unmatched_cols)`` as :func:`linear_assignment`.

    Raises:
        ValueError: ``fill <= thresh``, mismatched lengths or NaN costs.

    Example:
        >>> m, ur, uc = sparse_linear_assignment(np.array([0]), np.array([1]), np.array([0.2]), (2, 2), 0.5)
        >>> m.tolist(), ur.tolist(), uc.tolist()
        ([[0, 1]], [1], [0])
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n, m = shape
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    costs = np.asarray(costs, dtype=np.float64)
    if not fill > thresh:
        raise ValueError(f"fill: expected a cost above thresh ({thresh!r}), got {fill!r}")
    if rows.shape != cols.shape or rows.shape != costs.shape:
        raise ValueError(f"rows, cols, costs: expected equal lengths, got {rows.shape}, {cols.shape}, {costs.shape}")
    if np.isnan(costs).any():
        raise ValueError("costs: expected no NaN entries")
    row_to_col = np.full(n, -1, dtype=np.int64)
    col_matched = np.zeros(m, dtype=bool)
    adm = costs <= thresh
    r, c = rows[adm], cols[adm]
    if r.size:
        row_count = np.bincount(r, minlength=n)
        col_count = np.bincount(c, minlength=m)
        iso = (row_count[r] == 1) & (col_count[c] == 1)
        row_to_col[r[iso]] = c[iso]
        col_matched[c[iso]] = True
        rr, cc, vv = r[~iso], c[~iso], costs[adm][~iso]
        if rr.size:
            graph = coo_matrix((np.ones(rr.size, np.int8), (rr, cc + n)), shape=(n + m, n + m))
            _, label = connected_components(graph, directed=False)
            comp_of_entry = label[rr]
            # A component with one row (or one column) is a star: its optimum is the cheapest entry. Settled here
            # when that entry is unique and below thresh; ties go to lapjv below, so its pick is kept.
            first_row = np.full(n + m, -1, dtype=np.int64)
            first_row[comp_of_entry[::-1]] = rr[::-1]
            first_col = np.full(n + m, -1, dtype=np.int64)
            first_col[comp_of_entry[::-1]] = cc[::-1]
            one_row = np.ones(n + m, dtype=bool)
            one_row[comp_of_entry[rr != first_row[comp_of_entry]]] = False
            one_col = np.ones(n + m, dtype=bool)
            one_col[comp_of_entry[cc != first_col[comp_of_entry]]] = False
            star = one_row | one_col
            in_star = star[comp_of_entry]
            order = np.lexsort((vv[in_star], comp_of_entry[in_star]))
            comp_s, v_s = comp_of_entry[in_star][order], vv[in_star][order]
            r_s, c_s = rr[in_star][order], cc[in_star][order]
            head = np.flatnonzero(np.r_[True, comp_s[1:] != comp_s[:-1]]) if comp_s.size else comp_s
            unique_min = (v_s[head + 1] > v_s[head]) & (v_s[head] < thresh)  # a star has >= 2 entries
            settled = head[unique_min]
            row_to_col[r_s[settled]] = c_s[settled]
            col_matched[c_s[settled]] = True
            done = np.zeros(n + m, dtype=bool)
            done[comp_s[settled]] = True
            rest = ~done[comp_of_entry]
            rr, cc, comp_of_entry = rr[rest], cc[rest], comp_of_entry[rest]
            # all listed entries (admissible or not) by row, to fill each block with the matrix's true values
            by_row = np.argsort(rows, kind="stable")
            row_start = np.searchsorted(rows[by_row], np.arange(n + 1))
            order = np.argsort(comp_of_entry, kind="stable")
            bounds = np.flatnonzero(np.diff(comp_of_entry[order])) + 1
            col_pos = np.full(m, -1, dtype=np.int64)
            for sel in np.split(order, bounds) if rr.size else ():
                block_rows = np.unique(rr[sel])
                block_cols = np.unique(cc[sel])
                col_pos[block_cols] = np.arange(block_cols.size)
                block = np.full((block_rows.size, block_cols.size), float(fill))
                starts, stops = row_start[block_rows], row_start[block_rows + 1]
                lens = stops - starts
                entries = by_row[np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))]
                bi = np.repeat(np.arange(block_rows.size), lens)
                bj = col_pos[cols[entries]]
                inside = bj >= 0
                block[bi[inside], bj[inside]] = costs[entries[inside]]
                col_pos[block_cols] = -1
                _, x, _ = lap.lapjv(block, extend_cost=True, cost_limit=thresh)
                x = np.asarray(x, dtype=np.int64)
                hit = x >= 0
                row_to_col[block_rows[hit]] = block_cols[x[hit]]
                col_matched[block_cols[x[hit]]] = True
    matched_rows = _indices(row_to_col >= 0)
    matches = np.stack([matched_rows, row_to_col[matched_rows]], axis=1)
    return matches, _indices(row_to_col < 0), _indices(~col_matched)
