"""Tests for mmtrack_demo.pipeline (Pipeline, FrameResult), mmtrack_demo.motion and mmtrack_demo.drawing.

Scenes are exact: boxes moved by a known camera pan, so a stand-in motion source that returns the true
displacement is an independent reference for what the pipeline must hand to the tracker and report back.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from mmtrack_demo.drawing import TrackPainter, flow_to_color, id_color
from mmtrack_demo.motion import build_motion, build_tracker
from mmtrack_demo.pipeline import STAGES, Pipeline, StageTimer

from trackers import ByteTracker, MotionTracker

H, W = 240, 320
BASE = np.array([[40.0, 60.0, 70.0, 130.0], [150.0, 80.0, 180.0, 150.0], [240.0, 50.0, 270.0, 120.0]])


def _pan(t: int) -> np.ndarray:
    """Camera offset at frame t (1-based): slow, then a 45-pixel jump at frame 6 (Kalman cannot follow it)."""
    x = 2.0 * (t - 1) + (45.0 if t >= 6 else 0.0)
    return np.array([x, 0.0])


class _Scene:
    """Frames whose pixel (0, 0) carries the frame number; detections = the three boxes moved by the pan."""

    def __init__(self, n: int = 10) -> None:
        self.frames = []
        for t in range(1, n + 1):
            f = np.zeros((H, W, 3), np.uint8)
            f[0, 0, 0] = t
            self.frames.append(f)

    def detector(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = int(frame[0, 0, 0])
        order = [2, 0, 1] if t % 2 else [0, 1, 2]  # detection order changes: det_indices must follow
        return BASE[order] + np.tile(_pan(t), 2), np.array([0.9, 0.8, 0.95])[order]

    @staticmethod
    def true_motion(prev: np.ndarray | None, cur: np.ndarray | None, boxes: np.ndarray) -> np.ndarray:
        if prev is None or cur is None:
            return np.full((len(boxes), 2), np.nan)
        d = _pan(int(cur[0, 0, 0])) - _pan(int(prev[0, 0, 0]))
        return np.tile(d, (len(boxes), 1))


def test_ids_follow_the_camera_jump_with_exact_motion() -> None:
    scene = _Scene()
    results = list(Pipeline(scene.detector, _Scene.true_motion).run(scene.frames))
    assert [r.frame for r in results] == list(range(1, 11))
    ids = [sorted(r.tracks.ids.tolist()) for r in results]
    assert ids == [[1, 2, 3]] * 10
    # Kalman alone loses all three at the jump (new ids appear)
    kalman = [sorted(r.tracks.ids.tolist()) for r in Pipeline(scene.detector).run(scene.frames)]
    assert kalman[0] == [1, 2, 3] and kalman[5] != [1, 2, 3]


def test_det_indices_and_ids_per_detection() -> None:
    scene = _Scene()
    for r in Pipeline(scene.detector, _Scene.true_motion).run(scene.frames):
        idx = r.tracks.det_indices
        assert (idx >= 0).all()
        np.testing.assert_allclose(r.tracks.boxes, r.detections.boxes[idx], atol=1e-6)
        per_det = r.ids_per_detection()
        assert sorted(per_det.tolist()) == sorted(r.tracks.ids.tolist())
        for k, tid in enumerate(r.tracks.ids):
            assert per_det[idx[k]] == tid


def test_motion_reported_per_track() -> None:
    scene = _Scene()
    results = list(Pipeline(scene.detector, _Scene.true_motion).run(scene.frames))
    assert np.isnan(results[0].motion).all()  # first frame: nothing to compare with
    for r in results[1:]:
        expected = _pan(r.frame) - _pan(r.frame - 1)
        np.testing.assert_allclose(r.motion, np.tile(expected, (3, 1)))
    # without a motion source the per-track motion is the track box centre's move since the previous frame
    kal = list(Pipeline(scene.detector).run(scene.frames[:3]))
    centre = {int(i): (b[:2] + b[2:]) / 2 for i, b in zip(kal[1].tracks.ids, kal[1].tracks.boxes, strict=True)}
    for k, (i, b) in enumerate(zip(kal[2].tracks.ids, kal[2].tracks.boxes, strict=True)):
        np.testing.assert_allclose(kal[2].motion[k], (b[:2] + b[2:]) / 2 - centre[int(i)])
    assert 1.0 < kal[2].motion[0, 0] <= 2.0  # the Kalman box lags the detections' 2 px per frame a little


def test_timings_max_frames_and_source_restored() -> None:
    scene = _Scene()
    calls = []

    def source(prev: np.ndarray | None, cur: np.ndarray | None, boxes: np.ndarray) -> np.ndarray:
        calls.append(len(boxes))
        return _Scene.true_motion(prev, cur, boxes)

    tracker = MotionTracker(source)
    pipe = Pipeline(scene.detector, source, tracker)
    results = list(pipe.run(scene.frames, max_frames=4))
    assert len(results) == 4 and len(calls) == 4
    for r in results:
        assert set(r.times) == {"decode", "detect", "motion", "track"}
        assert all(v >= 0 for v in r.times.values())
    assert tracker.motion_source is source
    # a second run starts afresh (tracker reset: ids from 1 again)
    again = list(pipe.run(scene.frames, max_frames=2))
    assert sorted(again[0].tracks.ids.tolist()) == [1, 2, 3]


def test_dense_motion_is_passed_through() -> None:
    scene = _Scene(3)

    def dense(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        return np.full((2, H // 8, W // 8), float(cur[0, 0, 0]))

    flows = [r.flow for r in Pipeline(scene.detector, dense=dense).run(scene.frames)]
    assert flows[0] is None and flows[1] is not None and float(flows[2][0, 0, 0]) == 3.0


def test_pipeline_argument_errors() -> None:
    scene = _Scene(1)
    with pytest.raises(TypeError, match="detector: expected a callable"):
        Pipeline(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="motion: expected a MotionSource"):
        Pipeline(scene.detector, motion=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tracker: expected an object with update"):
        Pipeline(scene.detector, tracker=object())
    with pytest.raises(ValueError, match="the tracker holds a different motion source"):
        Pipeline(scene.detector, _Scene.true_motion, MotionTracker(lambda a, b, c: np.zeros((len(c), 2))))
    bad = Pipeline(lambda frame: (np.zeros((1, 4)), np.array([2.0])))
    with pytest.raises(ValueError, match=r"detector: expected scores in \[0, 1\]"):
        list(bad.run(scene.frames))


def test_build_motion_choices() -> None:
    kal = build_motion("kalman")
    assert kal.source is None and isinstance(build_tracker(kal, frame_rate=25), ByteTracker)
    gmc = build_motion("gmc")
    tracker = build_tracker(gmc, frame_rate=25)
    assert isinstance(tracker, MotionTracker) and tracker.kalman_weight == 1.0
    with pytest.raises(ValueError, match="motion: expected one of learned, kalman, gmc"):
        build_motion("optical")
    with pytest.raises(ValueError, match="--motion-weights: only used with --motion learned"):
        build_motion("gmc", weights="w.pt")


def test_gmc_dense_field_is_the_camera_shift() -> None:
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur((rng.random((H, W, 3)) * 255).astype(np.uint8), (0, 0), 2)
    moved = cv2.warpAffine(
        img, np.array([[1, 0, 4], [0, 1, -3]], dtype=np.float32), (W, H), borderMode=cv2.BORDER_REFLECT
    )
    gmc = build_motion("gmc")
    assert gmc.dense is not None
    field = gmc.dense(img, moved)
    assert field.shape == (2, H // 8, W // 8)
    np.testing.assert_allclose(np.median(field[0]), 4.0, atol=0.3)
    np.testing.assert_allclose(np.median(field[1]), -3.0, atol=0.3)


def test_stage_timer() -> None:
    t = StageTimer()
    t.add({"detect": 0.25, "track": 0.25})
    t.add({"detect": 0.75, "track": 0.25})
    assert t.frames == 2 and t.total == pytest.approx(1.5)
    assert t.per_frame_ms()["detect"] == pytest.approx(500.0) and set(STAGES) <= set(t.per_frame_ms())
    assert t.fps() == pytest.approx(2 / 1.5)


# ---------------------------------------------------------------------------------------------------- drawing
def test_flow_colours_follow_direction() -> None:
    flow = np.zeros((2, 4, 4))
    flow[0, :, :2] = 5.0  # right
    flow[1, :, 2:] = 5.0  # down
    img = flow_to_color(flow)
    b, g, r = img[0, 0].astype(int)
    assert r > 200 and g < 50 and b < 50  # hue 0 = red for motion to the right
    assert img[0, 3].tolist() != img[0, 0].tolist() and img[0, 3].max() > 200
    nan = flow_to_color(np.full((2, 2, 2), np.nan))
    assert nan.max() == 0
    with pytest.raises(ValueError, match=r"flow: expected shape \(2, H, W\)"):
        flow_to_color(np.zeros((4, 4, 2)))


def test_painter_draws_boxes_in_id_colours_and_trails() -> None:
    painter = TrackPainter(trail_frames=5)
    img = np.zeros((100, 120, 3), np.uint8)
    box = np.array([[20.0, 30.0, 60.0, 90.0]])
    out = painter.draw(img, box, np.array([7]))
    assert out[60, 20].tolist() == list(id_color(7))  # the left edge, in the id's colour
    assert img.max() == 0  # the input is not drawn on
    for dx in range(1, 4):
        out = painter.draw(img, box + [5 * dx, 0, 5 * dx, 0], np.array([7]), motion=np.array([[5.0, 0.0]]))
    # the trail joins the centres (40 -> 55, y = 60): pixels between them carry the colour
    assert out[60, 47].tolist() == list(id_color(7)) or out[60, 47].max() > 0
    assert len(painter._trails[7]) == 4
    assert id_color(1) != id_color(2) != id_color(3)


def test_demo_working_size_and_refinement_are_the_estimators_defaults() -> None:
    """demo/motion.py keeps its own copies (it must import without torch); they must not drift apart."""
    from mmtrack_demo.motion import LEARNED_BOX_REFINE, LEARNED_CAMERA_FALLBACK, LEARNED_MAX_SIDE, LEARNED_REFINE

    from mmtrack_corr.estimator import DEFAULT_BOX_REFINE, DEFAULT_CAMERA_FALLBACK, DEFAULT_MAX_SIDE, DEFAULT_REFINE

    assert LEARNED_MAX_SIDE == DEFAULT_MAX_SIDE
    assert LEARNED_REFINE == DEFAULT_REFINE
    assert LEARNED_BOX_REFINE == DEFAULT_BOX_REFINE
    assert LEARNED_CAMERA_FALLBACK == DEFAULT_CAMERA_FALLBACK
