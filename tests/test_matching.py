"""iou_matrix (cython_bbox +1 convention), linear_assignment (lap.lapjv with cost_limit), fuse_score."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from trackers.matching import fuse_score, iou_matrix, linear_assignment


def _naive_bbox_overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The Fast R-CNN ``cython_bbox.bbox_overlaps`` loop, transcribed in float64 Python."""
    out = np.zeros((len(a), len(b)))
    for k in range(len(b)):
        box_area = (b[k, 2] - b[k, 0] + 1) * (b[k, 3] - b[k, 1] + 1)
        for n in range(len(a)):
            iw = min(a[n, 2], b[k, 2]) - max(a[n, 0], b[k, 0]) + 1
            if iw > 0:
                ih = min(a[n, 3], b[k, 3]) - max(a[n, 1], b[k, 1]) + 1
                if ih > 0:
                    ua = (a[n, 2] - a[n, 0] + 1) * (a[n, 3] - a[n, 1] + 1) + box_area - iw * ih
                    out[n, k] = iw * ih / ua
    return out


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(0, 40, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param([0, 0, 9, 9], [0, 0, 9, 9], 1.0, id="identical"),
        pytest.param([0, 0, 9, 9], [5, 0, 14, 9], 50 / 150, id="half_overlap_plus_one"),
        pytest.param([0, 0, 9, 9], [9, 0, 18, 9], 10 / 190, id="share_one_pixel_column"),
        pytest.param([0, 0, 9, 9], [10, 0, 19, 9], 0.0, id="adjacent"),
        pytest.param([0, 0, 9, 9], [50, 50, 60, 60], 0.0, id="disjoint"),
        pytest.param([0, 0, 0, 0], [0, 0, 0, 0], 1.0, id="zero_size_is_one_pixel"),
    ],
)
def test_iou_plus_one_convention(a: list[float], b: list[float], expected: float) -> None:
    got = iou_matrix(np.array([a], dtype=float), np.array([b], dtype=float))
    assert got.shape == (1, 1)
    assert got[0, 0] == pytest.approx(expected, rel=1e-15)


def test_iou_continuous_convention() -> None:
    got = iou_matrix(np.array([[0.0, 0, 10, 10]]), np.array([[5.0, 0, 15, 10], [0, 0, 0, 0]]), plus_one=False)
    np.testing.assert_allclose(got, [[50 / 150, 0.0]])


def test_iou_equals_cython_bbox_loop_bitwise() -> None:
    rng = np.random.default_rng(0)
    a, b = _random_boxes(rng, 23), _random_boxes(rng, 17)
    np.testing.assert_array_equal(iou_matrix(a, b), _naive_bbox_overlaps(a, b))


@pytest.mark.parametrize(("n", "m"), [pytest.param(0, 3, id="no_rows"), pytest.param(2, 0, id="no_cols"),
                                      pytest.param(0, 0, id="both_empty")])  # fmt: skip
def test_iou_empty(n: int, m: int) -> None:
    out = iou_matrix(np.zeros((n, 4)), np.ones((m, 4)))
    assert out.shape == (n, m)
    assert iou_matrix(np.array([]), np.ones((m, 4))).shape == (0, m)


def test_iou_bad_shape_message() -> None:
    with pytest.raises(ValueError, match=r"boxes_b_xyxy: expected shape \(N, 4\).*\(2, 3\)"):
        iou_matrix(np.zeros((1, 4)), np.zeros((2, 3)))


def test_linear_assignment_empty() -> None:
    m, ur, uc = linear_assignment(np.zeros((0, 3)), 0.5)
    assert m.shape == (0, 2) and ur.tolist() == [] and uc.tolist() == [0, 1, 2]
    m, ur, uc = linear_assignment(np.zeros((2, 0)), 0.5)
    assert m.shape == (0, 2) and ur.tolist() == [0, 1] and uc.tolist() == []


def test_linear_assignment_threshold_inclusive_and_exclusive() -> None:
    m, ur, uc = linear_assignment(np.array([[0.5, 0.9], [0.9, 0.51]]), 0.5)
    assert m.tolist() == [[0, 0]]
    assert ur.tolist() == [1] and uc.tolist() == [1]


def test_linear_assignment_prefers_global_optimum() -> None:
    # Greedy would take (0, 0) at 0.1 and leave row 1 unmatched; the optimum matches both rows.
    m, ur, uc = linear_assignment(np.array([[0.1, 0.2], [0.3, 0.95]]), 0.9)
    assert m.tolist() == [[0, 1], [1, 0]]
    assert ur.size == 0 and uc.size == 0


def test_linear_assignment_optimal_against_brute_force() -> None:
    rng = np.random.default_rng(1)
    thresh = 0.6
    for _ in range(30):
        n, m = rng.integers(1, 5, size=2)
        cost = rng.uniform(0, 1, (n, m))
        matches, ur, uc = linear_assignment(cost, thresh)
        got = cost[matches[:, 0], matches[:, 1]].sum() + (len(ur) + len(uc)) * thresh / 2
        assert len(matches) + len(ur) == n and len(matches) + len(uc) == m
        assert (cost[matches[:, 0], matches[:, 1]] <= thresh).all()
        best = np.inf
        for k in range(min(n, m) + 1):
            for rows in itertools.combinations(range(n), k):
                for cols in itertools.permutations(range(m), k):
                    c = sum(cost[r, q] for r, q in zip(rows, cols, strict=True))
                    best = min(best, c + (n + m - 2 * k) * thresh / 2)
        assert got == pytest.approx(best, abs=1e-12)


def test_linear_assignment_errors() -> None:
    with pytest.raises(ValueError, match=r"cost: expected a 2-D matrix, got shape \(3,\)"):
        linear_assignment(np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="cost: expected no NaN"):
        linear_assignment(np.array([[np.nan]]), 0.5)


def test_fuse_score() -> None:
    cost = np.array([[0.2, 1.0], [0.5, 0.0]])
    got = fuse_score(cost, np.array([0.5, 0.9]))
    np.testing.assert_allclose(got, [[1 - 0.8 * 0.5, 1.0], [1 - 0.5 * 0.5, 1 - 0.9]])
    assert fuse_score(np.zeros((0, 2)), np.ones(2)).shape == (0, 2)
    with pytest.raises(ValueError, match=r"det_scores: expected shape \(2,\).*got \(3,\)"):
        fuse_score(cost, np.ones(3))
