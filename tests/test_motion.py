"""MotionTracker (fusion rule, fallbacks, camera jump), DenseMotionSource and displacements_from_flow."""

from __future__ import annotations

import numpy as np
import pytest

from trackers.bytetrack import ByteTracker
from trackers.motion import DenseMotionSource, MotionSource, MotionTracker, displacements_from_flow


def box(cx: float, cy: float, w: float = 40.0, h: float = 100.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


class ScriptedShift:
    """A motion source that knows the scene: frame ``i`` (a 1-element array holding i) moved by ``shifts[i]``."""

    def __init__(self, shifts: dict[int, tuple[float, float]], default: tuple[float, float] = (0.0, 0.0)) -> None:
        self.shifts = shifts
        self.default = default
        self.calls: list[tuple[np.ndarray | None, np.ndarray | None, np.ndarray]] = []
        self.resets = 0

    def __call__(self, prev_frame: np.ndarray | None, frame: np.ndarray | None, boxes_xyxy: np.ndarray) -> np.ndarray:
        self.calls.append((None if prev_frame is None else prev_frame.copy(), frame, boxes_xyxy.copy()))
        if prev_frame is None or frame is None:
            return np.full((len(boxes_xyxy), 2), np.nan)
        d = self.shifts.get(int(frame[0]), self.default)
        return np.tile(np.asarray(d, dtype=float), (len(boxes_xyxy), 1))

    def reset(self) -> None:
        self.resets += 1


def nan_source(prev: np.ndarray | None, cur: np.ndarray | None, boxes: np.ndarray) -> np.ndarray:
    return np.full((len(boxes), 2), np.nan)


def zero_source(prev: np.ndarray | None, cur: np.ndarray | None, boxes: np.ndarray) -> np.ndarray:
    return np.zeros((len(boxes), 2))


def _random_scene(seed: int, frames: int = 40, n: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pos = rng.uniform(50, 600, (n, 2))
    vel = rng.normal(0, 4, (n, 2))
    scene = []
    for _ in range(frames):
        pos = pos + vel
        keep = rng.random(n) > 0.15
        b = np.array([box(x, y) for x, y in pos])[keep] + rng.normal(0, 1.0, (int(keep.sum()), 4))
        scene.append((b, rng.uniform(0.2, 1.0, int(keep.sum()))))
    return scene


def test_protocol_runtime_check() -> None:
    assert isinstance(zero_source, MotionSource)
    assert isinstance(ScriptedShift({}), MotionSource)


@pytest.mark.parametrize(
    ("source", "kwargs"),
    [
        pytest.param(nan_source, {}, id="nan_source_is_kalman_fallback"),
        pytest.param(zero_source, {"kalman_weight": 1.0}, id="zero_motion_with_kalman_weight_1"),
    ],
)
def test_reduces_to_bytetrack_exactly(source: MotionSource, kwargs: dict) -> None:
    byte = ByteTracker()
    motion = MotionTracker(source, **kwargs)
    for b, s in _random_scene(0):
        a = byte.update(b, s)
        m = motion.update(b, s, frame=np.zeros((8, 8), np.uint8))
        np.testing.assert_array_equal(a.ids, m.ids)
        np.testing.assert_array_equal(a.boxes, m.boxes)


def test_camera_jump_lost_by_bytetrack_kept_by_motion_tracker() -> None:
    jump_at, jump = 10, 60.0
    starts = [(100.0, 200.0), (300.0, 200.0), (500.0, 260.0)]
    shifts = {i: (2.0 + (jump if i == jump_at else 0.0), 0.0) for i in range(30)}
    byte = ByteTracker()
    motion = MotionTracker(ScriptedShift(shifts))
    byte_ids, motion_ids = [], []
    for i in range(30):
        offset = 2.0 * i + (jump if i >= jump_at else 0.0)
        dets = np.array([box(x + offset, y) for x, y in starts])
        scores = np.full(3, 0.9)
        byte_ids.append(sorted(byte.update(dets, scores).ids.tolist()))
        motion_ids.append(sorted(motion.update(dets, scores, frame=np.array([i])).ids.tolist()))
    assert all(ids == [1, 2, 3] for ids in motion_ids)
    assert byte_ids[jump_at - 1] == [1, 2, 3]
    assert byte_ids[jump_at] == []  # every box jumped 60 px: no overlap with the Kalman predictions
    assert byte_ids[-1] == [4, 5, 6]


def test_fusion_rule_kalman_weight_zero() -> None:
    # k = 0: the prior is the previous box translated by d (size kept) and the velocity becomes d, so a detection
    # exactly there leaves the posterior on it; the next frame (source says NaN) continues with velocity d.
    source = ScriptedShift({1: (7.0, -3.0), 2: (7.0, -3.0)}, default=(np.nan, np.nan))
    tracker = MotionTracker(source)
    tracker.update(np.array([box(100, 100)]), np.array([0.9]), frame=np.array([0]))
    out = tracker.update(np.array([box(107, 97)]), np.array([0.9]), frame=np.array([1]))
    np.testing.assert_allclose(out.boxes[0], box(107, 97), atol=1e-9)
    out = tracker.update(np.array([box(114, 94)]), np.array([0.9]), frame=np.array([2]))
    np.testing.assert_allclose(out.boxes[0], box(114, 94), atol=1e-9)
    out = tracker.update(np.array([box(121, 91)]), np.array([0.9]), frame=np.array([3]))  # NaN: Kalman fallback
    np.testing.assert_allclose(out.boxes[0], box(121, 91), atol=1e-6)


def test_fusion_rule_kalman_weight_one_adds_displacement_to_kalman_prediction() -> None:
    # k = 1: prior = Kalman prediction + d. Same detections shifted by d each frame on top of a constant velocity
    # scene give the same boxes (shifted) as plain ByteTrack on the unshifted scene.
    byte = ByteTracker()
    motion = MotionTracker(ScriptedShift({}, default=(5.0, 0.0)), kalman_weight=1.0)
    for i in range(8):
        b = np.array([box(100 + 3 * i, 100)])
        ref = byte.update(b, np.array([0.9]))
        got = motion.update(b + np.array([5.0 * i, 0, 5.0 * i, 0]), np.array([0.9]), frame=np.array([i]))
        np.testing.assert_allclose(got.boxes, ref.boxes + np.array([5.0 * i, 0, 5.0 * i, 0]), atol=1e-9)


def test_source_called_once_per_update_with_previous_frame_and_boxes() -> None:
    source = ScriptedShift({})
    tracker = MotionTracker(source)
    frame0 = np.array([0])
    tracker.update(np.zeros((0, 4)), np.zeros(0), frame=frame0)
    tracker.update(np.array([box(100, 100)]), np.array([0.9]), frame=np.array([1]))
    tracker.update(np.array([box(100, 100)]), np.array([0.9]), frame=np.array([2]))
    assert len(source.calls) == 3
    assert source.calls[0][0] is None and source.calls[0][2].shape == (0, 4)
    assert np.array_equal(np.asarray(source.calls[1][0]), [0]) and source.calls[1][2].shape == (0, 4)
    assert np.array_equal(np.asarray(source.calls[2][0]), [1])
    np.testing.assert_allclose(source.calls[2][2], [box(100, 100)])


def test_previous_frame_is_copied() -> None:
    source = ScriptedShift({})
    tracker = MotionTracker(source)
    buf = np.array([5])
    tracker.update(np.zeros((0, 4)), np.zeros(0), frame=buf)
    buf[0] = 6  # the caller reuses its buffer
    tracker.update(np.zeros((0, 4)), np.zeros(0), frame=buf)
    assert np.array_equal(np.asarray(source.calls[1][0]), [5])


def test_sample_center_asks_about_zero_size_boxes() -> None:
    source = ScriptedShift({})
    tracker = MotionTracker(source, sample="center")
    tracker.update(np.array([[10.0, 20.0, 50.0, 120.0]]), np.array([0.9]), frame=np.array([0]))
    tracker.update(np.array([[10.0, 20.0, 50.0, 120.0]]), np.array([0.9]), frame=np.array([1]))
    np.testing.assert_allclose(source.calls[1][2], [[30.0, 70.0, 30.0, 70.0]])


def test_lost_tracks_not_moved_unless_move_lost() -> None:
    def run(move_lost: bool) -> list[int]:
        # 20 px/frame, and a 100 px camera jump on frame 6 while the object is undetected (frames 5-7)
        source = ScriptedShift({6: (120.0, 0.0)}, default=(20.0, 0.0))
        tracker = MotionTracker(source, move_lost=move_lost)
        for i in range(5):
            tracker.update(np.array([box(100 + 20 * i, 100)]), np.array([0.9]), frame=np.array([i]))
        for i in range(5, 8):
            tracker.update(np.zeros((0, 4)), np.zeros(0), frame=np.array([i]))
        return tracker.update(np.array([box(360, 100)]), np.array([0.9]), frame=np.array([8])).ids.tolist()

    assert run(True) == [1]  # the lost track followed the motion, jump included
    assert run(False) == []  # MM-Tracker: lost tracks get the Kalman prediction (~260): a new, unconfirmed track


def test_per_class_supported() -> None:
    tracker = MotionTracker(zero_source, per_class=True)
    for _ in range(3):
        tracker.update(np.array([box(100, 100)]), np.array([0.9]), np.array([0]), frame=np.zeros(1))
    assert len(tracker.update(np.array([box(100, 100)]), np.array([0.9]), np.array([1]), frame=np.zeros(1))) == 0


def test_reset_resets_source_and_ids() -> None:
    source = ScriptedShift({})
    tracker = MotionTracker(source)
    assert source.resets == 0
    tracker.update(np.array([box(100, 100), box(300, 100)]), np.array([0.9, 0.9]), frame=np.array([0]))
    tracker.reset()
    assert source.resets == 1 and tracker.frame_id == 0
    assert tracker.update(np.array([box(100, 100)]), np.array([0.9]), frame=np.array([0])).ids.tolist() == [1]
    assert source.calls[-1][0] is None


@pytest.mark.parametrize(
    ("source", "match"),
    [
        pytest.param(lambda p, f, b: np.zeros((len(b), 3)), r"motion_source <lambda>: expected displacements of shape",
                     id="wrong_shape"),
        pytest.param(lambda p, f, b: np.full((len(b), 2), np.inf), r"motion_source <lambda>: .*got inf", id="inf"),
        pytest.param(lambda p, f, b: "x", r"motion_source <lambda>: expected", id="not_numeric"),
    ],
)  # fmt: skip
def test_bad_source_output(source: MotionSource, match: str) -> None:
    tracker = MotionTracker(source)
    with pytest.raises(ValueError, match=match):  # at the latest on frame 2, when a track is queried
        tracker.update(np.array([box(100, 100)]), np.array([0.9]))
        tracker.update(np.array([box(100, 100)]), np.array([0.9]))


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="motion_source: expected a callable"):
        MotionTracker(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sample: expected 'box' or 'center'"):
        MotionTracker(zero_source, sample="corner")
    with pytest.raises(ValueError, match=r"kalman_weight: expected a number in \[0, 1\]"):
        MotionTracker(zero_source, kalman_weight=2.0)
    with pytest.raises(TypeError, match="frame: expected a numpy array or None"):
        MotionTracker(zero_source).update(np.zeros((0, 4)), np.zeros(0), frame=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="frame_rate"):
        MotionTracker(zero_source, frame_rate=-1)


# ------------------------------------------------------------------------------------------------ dense flow
def _naive_displacements(flow: np.ndarray, boxes: np.ndarray, stride: float, reduce: str) -> np.ndarray:
    hh, ww = flow.shape[:2]
    out = np.zeros((len(boxes), 2))
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        cj = min(max(int(np.floor(((x1 + x2) / 2 + 0.5) / stride)), 0), ww - 1)
        ci = min(max(int(np.floor(((y1 + y2) / 2 + 0.5) / stride)), 0), hh - 1)
        cells = [
            flow[i, j]
            for i in range(hh)
            for j in range(ww)
            if x1 <= j * stride + (stride - 1) / 2 <= x2 and y1 <= i * stride + (stride - 1) / 2 <= y2
        ]
        if reduce == "center" or not cells:
            out[k] = flow[ci, cj]
        else:
            vals = np.array(cells)
            vals = vals[np.isfinite(vals).all(axis=1)]
            out[k] = vals.mean(axis=0) if len(vals) else np.nan
    return out


@pytest.mark.parametrize("stride", [1, 4, 8])
@pytest.mark.parametrize("reduce", ["mean", "center"])
def test_displacements_from_flow_against_naive(stride: int, reduce: str) -> None:
    rng = np.random.default_rng(stride)
    flow = rng.normal(0, 5, (12, 15, 2))
    flow[3, 4] = np.nan
    xy = rng.uniform(-10, 15 * stride, (25, 2))
    wh = rng.uniform(0, 6 * stride, (25, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    got = displacements_from_flow(flow, boxes, stride=stride, reduce=reduce)
    np.testing.assert_allclose(got, _naive_displacements(flow, boxes, stride, reduce), rtol=1e-10, atol=1e-10)


def test_box_mean_vs_center() -> None:
    flow = np.zeros((10, 10, 2))
    flow[:, 5:, 0] = 10.0  # right half moves 10 px right
    boxes = np.array([[2.0, 2.0, 7.0, 7.0]])  # cells 2..7: three on each side, centre cell 5 (x = 4.5 + 0.5)
    np.testing.assert_allclose(displacements_from_flow(flow, boxes, reduce="mean"), [[5.0, 0.0]])
    np.testing.assert_allclose(displacements_from_flow(flow, boxes, reduce="center"), [[10.0, 0.0]])
    box_src = DenseMotionSource(lambda p, f: flow, sample="box")
    ctr_src = DenseMotionSource(lambda p, f: flow, sample="center")
    img = np.zeros((10, 10), np.uint8)
    np.testing.assert_allclose(box_src(img, img, boxes), [[5.0, 0.0]])
    np.testing.assert_allclose(ctr_src(img, img, boxes), [[10.0, 0.0]])


def test_dense_source_unknown_without_frames_and_all_nan() -> None:
    src = DenseMotionSource(lambda p, f: np.full((4, 4, 2), np.nan))
    assert np.isnan(src(None, np.zeros((4, 4)), np.array([box(2, 2, 2, 2)]))).all()
    assert np.isnan(src(np.zeros((4, 4)), np.zeros((4, 4)), np.array([[0.0, 0.0, 3.0, 3.0]]))).all()
    assert src(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((0, 4))).shape == (0, 2)


def test_dense_source_drives_motion_tracker_through_camera_jump() -> None:
    # frames carry their own index; the flow function knows the scene's global shift
    def flow_fn(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        dx = 60.0 if int(cur[0, 0]) == 5 else 0.0
        return np.tile(np.array([dx, 0.0]), (20, 30, 1))

    tracker = MotionTracker(DenseMotionSource(flow_fn, stride=32))
    for i in range(10):
        frame = np.full((4, 4), i, dtype=np.uint8)
        x = 100.0 + (60.0 if i >= 5 else 0.0)
        out = tracker.update(np.array([box(x, 100), box(x + 200, 100)]), np.array([0.9, 0.9]), frame=frame)
        assert out.ids.tolist() == [1, 2]


def test_flow_errors() -> None:
    with pytest.raises(ValueError, match=r"flow: expected shape \(H', W', 2\), got \(4, 4\)"):
        displacements_from_flow(np.zeros((4, 4)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="stride: expected a positive"):
        displacements_from_flow(np.zeros((4, 4, 2)), np.zeros((1, 4)), stride=0)
    with pytest.raises(ValueError, match="reduce: expected 'mean' or 'center'"):
        displacements_from_flow(np.zeros((4, 4, 2)), np.zeros((1, 4)), reduce="median")
    with pytest.raises(ValueError, match=r"boxes_xyxy: expected shape \(N, 4\)"):
        displacements_from_flow(np.zeros((4, 4, 2)), np.zeros((1, 3)))
    with pytest.raises(TypeError, match="flow_fn: expected a callable"):
        DenseMotionSource(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sample: expected 'box' or 'center'"):
        DenseMotionSource(lambda p, f: p, sample="mean")
    bad = DenseMotionSource(lambda p, f: np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match=r"flow_fn <lambda>: expected a \(H', W', 2\) motion field"):
        bad(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((1, 4)))


def test_det_indices_match_bytetrack_and_point_at_inputs() -> None:
    rng = np.random.default_rng(3)
    bt, mt = ByteTracker(), MotionTracker(nan_source)
    for boxes, scores in _random_scene(11):
        order = rng.permutation(len(boxes))
        a, b = bt.update(boxes[order], scores[order]), mt.update(boxes[order], scores[order])
        np.testing.assert_array_equal(a.det_indices, b.det_indices)
        assert b.det_indices.dtype == np.int64 and (b.det_indices >= 0).all()
        np.testing.assert_array_equal(b.scores, scores[order][b.det_indices])
