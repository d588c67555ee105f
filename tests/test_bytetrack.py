"""ByteTracker: deterministic scenes (one behaviour each), errors, and parity with the official ByteTrack on MOT15."""

from __future__ import annotations

import configparser
import contextlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from official_bytetrack import OFFICIAL_COMBINED, OFFICIAL_PER_SEQUENCE, SHARED_MOT15

from trackers.bytetrack import ByteTracker, Tracks


def box(cx: float, cy: float, w: float = 40.0, h: float = 100.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def step(
    tracker: ByteTracker, boxes: list[list[float]], scores: list[float], classes: list[int] | None = None
) -> Tracks:
    b = np.array(boxes, dtype=float).reshape(-1, 4)
    s = np.array(scores, dtype=float)
    return tracker.update(b, s, None if classes is None else np.array(classes))


def nearest_id(out: Tracks, target: list[float]) -> int:
    centres = (out.boxes[:, :2] + out.boxes[:, 2:]) / 2
    t = np.array([(target[0] + target[2]) / 2, (target[1] + target[3]) / 2])
    return int(out.ids[np.argmin(np.linalg.norm(centres - t, axis=1))])


def test_trackers_package_imports_neither_torch_nor_mmtrack_corr() -> None:
    code = "import sys, trackers; print(sorted(m for m in ('torch', 'mmtrack_corr') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_output_types_and_shapes() -> None:
    out = step(ByteTracker(), [box(100, 100), box(300, 100)], [0.9, 0.8])
    assert len(out) == 2
    assert out.boxes.shape == (2, 4) and out.boxes.dtype == np.float64
    assert out.ids.dtype == np.int64 and out.ids.tolist() == [1, 2]
    assert out.scores.dtype == np.float64 and out.classes.dtype == np.int64
    assert out.classes.tolist() == [-1, -1]
    np.testing.assert_allclose(out.boxes, [box(100, 100), box(300, 100)])


def test_constant_velocity_box_keeps_id() -> None:
    tracker = ByteTracker()
    for f in range(60):
        out = step(tracker, [box(50 + 6 * f, 200 + 1 * f)], [0.9])
        assert out.ids.tolist() == [1]
    # after convergence the Kalman mean sits on the detection
    np.testing.assert_allclose(out.boxes[0], box(50 + 6 * 59, 200 + 59), atol=0.5)


def test_output_box_is_kalman_mean_not_detection() -> None:
    tracker = ByteTracker()
    step(tracker, [box(100, 100)], [0.9])
    out = step(tracker, [box(110, 100)], [0.9])
    # posterior = 100 + 0.8 * 10 on the centre (gain 100/125 after initiate, see test_kalman)
    cx = (out.boxes[0, 0] + out.boxes[0, 2]) / 2
    assert 100 < cx < 110
    assert cx == pytest.approx(100 + 10 * (164.0625 / (164.0625 + 25)), rel=1e-9)


def test_crossing_boxes_do_not_swap() -> None:
    tracker = ByteTracker()
    ids_a, ids_b = set(), set()
    for f in range(40):
        a = box(40 + 8 * f, 200)
        b = box(360 - 8 * f, 230)
        out = step(tracker, [a, b], [0.9, 0.85])
        if len(out) == 2:
            ids_a.add(nearest_id(out, a))
            ids_b.add(nearest_id(out, b))
    assert ids_a == {1} and ids_b == {2}


@pytest.mark.parametrize(
    ("frame_rate", "gap", "bridged"),
    [
        # max_time_lost = int(frame_rate / 30 * 30). As in the official code, a removed track lingers one more frame
        # in the lost list, so a gap of max_time_lost + 1 missing frames is still bridged.
        pytest.param(30.0, 10, True, id="short_gap_30fps"),
        pytest.param(30.0, 31, True, id="gap_max_time_lost_plus_one_30fps"),
        pytest.param(30.0, 32, False, id="long_gap_30fps"),
        pytest.param(15.0, 16, True, id="gap_bridged_15fps"),
        pytest.param(15.0, 17, False, id="long_gap_15fps"),
    ],
)
def test_gap_bridged_only_within_buffer(frame_rate: float, gap: int, bridged: bool) -> None:
    tracker = ByteTracker(track_buffer=30, frame_rate=frame_rate)
    assert tracker.max_time_lost == int(frame_rate / 30.0 * 30)
    for _ in range(5):
        assert step(tracker, [box(100, 100)], [0.9]).ids.tolist() == [1]
    for _ in range(gap):
        assert len(step(tracker, [], [])) == 0
    out = step(tracker, [box(100, 100)], [0.9])
    if bridged:
        assert out.ids.tolist() == [1]
    else:
        assert len(out) == 0  # a new, unconfirmed track
        assert step(tracker, [box(100, 100)], [0.9]).ids.tolist() == [2]


def test_low_score_boxes_never_start_tracks() -> None:
    tracker = ByteTracker()
    for f in range(10):
        assert len(step(tracker, [box(100 + f, 100)], [0.4])) == 0
    # between track_thresh and new_track_thresh: matched if a track exists, but never starts one
    for f in range(10):
        assert len(step(tracker, [box(300 + f, 100)], [0.65])) == 0


def test_low_score_boxes_extend_existing_tracks() -> None:
    tracker = ByteTracker()
    for f in range(5):
        step(tracker, [box(100 + 4 * f, 100)], [0.9])
    for f in range(5, 15):
        out = step(tracker, [box(100 + 4 * f, 100)], [0.3])
        assert out.ids.tolist() == [1]
        assert out.scores.tolist() == [0.3]


def test_score_equal_to_track_thresh_is_in_neither_stage() -> None:
    # official: high is score > track_thresh, low is score < track_thresh (strict on both sides)
    tracker = ByteTracker(track_thresh=0.6)
    for f in range(5):
        step(tracker, [box(100 + 4 * f, 100)], [0.9])
    assert len(step(tracker, [box(120, 100)], [0.6])) == 0  # unmatched: the track is lost
    # just below: a low detection, but stage 2 only extends tracks that were tracked, not lost ones
    assert len(step(tracker, [box(124, 100)], [0.59])) == 0
    assert step(tracker, [box(128, 100)], [0.61]).ids.tolist() == [1]  # high: re-found, same ID


def test_only_first_frame_confirms_at_once() -> None:
    tracker = ByteTracker()
    assert step(tracker, [box(100, 100)], [0.9]).ids.tolist() == [1]
    out = step(tracker, [box(100, 100), box(400, 100)], [0.9, 0.9])
    assert out.ids.tolist() == [1]  # the newcomer is unconfirmed
    out = step(tracker, [box(100, 100), box(400, 100)], [0.9, 0.9])
    assert sorted(out.ids.tolist()) == [1, 2]


def test_unconfirmed_track_removed_when_unmatched() -> None:
    tracker = ByteTracker()
    step(tracker, [box(100, 100)], [0.9])
    step(tracker, [box(100, 100), box(400, 100)], [0.9, 0.9])  # id 2, unconfirmed
    step(tracker, [box(100, 100)], [0.9])  # id 2 unmatched -> removed
    out = step(tracker, [box(100, 100), box(400, 100)], [0.9, 0.9])
    assert out.ids.tolist() == [1]  # id 3 born, unconfirmed
    assert sorted(step(tracker, [box(100, 100), box(400, 100)], [0.9, 0.9]).ids.tolist()) == [1, 3]


def test_empty_frames() -> None:
    tracker = ByteTracker()
    out = tracker.update(np.zeros((0, 4)), np.zeros(0))
    assert len(out) == 0 and out.boxes.shape == (0, 4) and out.ids.shape == (0,) and out.ids.dtype == np.int64
    assert len(tracker.update(np.array([]), np.array([]))) == 0
    step(tracker, [box(100, 100)], [0.9])
    step(tracker, [box(100, 100)], [0.9])
    assert len(tracker.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int))) == 0
    assert step(tracker, [box(100, 100)], [0.9]).ids.tolist() == [1]


def test_two_instances_have_independent_ids() -> None:
    a, b = ByteTracker(), ByteTracker()
    assert step(a, [box(100, 100), box(300, 100)], [0.9, 0.9]).ids.tolist() == [1, 2]
    assert step(b, [box(500, 100)], [0.9]).ids.tolist() == [1]


def test_reset_and_frame_id() -> None:
    tracker = ByteTracker()
    for _ in range(3):
        step(tracker, [box(100, 100), box(300, 100)], [0.9, 0.9])
    assert tracker.frame_id == 3
    tracker.reset()
    assert tracker.frame_id == 0
    assert step(tracker, [box(600, 100)], [0.9]).ids.tolist() == [1]


def test_duplicate_tracked_and_lost_younger_dropped() -> None:
    tracker = ByteTracker()
    for f in range(30):  # track 1: 30 frames moving +10 px/frame, then lost (its prediction keeps drifting)
        step(tracker, [box(50 + 10 * f, 100)], [0.9])
    # track 2: a static object at x=451, born on frame 31 and confirmed on frame 32
    ids = [step(tracker, [box(451, 100)], [0.9]).ids.tolist() for _ in range(31, 44)]
    assert ids[1:10] == [[2]] * 9
    # frame 41: the lost track 1 drifts to ~449.4 (IoU > 0.85 with track 2); track 2 was tracked for 9 frames,
    # track 1 for 29, so the younger track 2 is dropped although it was matched ...
    assert ids[10] == []
    # ... and the detection re-finds the lost track 1 on frame 42
    assert ids[11] == [1] and ids[12] == [1]


def test_per_class_associates_within_class_only() -> None:
    same = ByteTracker(per_class=False)
    per = ByteTracker(per_class=True)
    for t in (same, per):
        for _ in range(5):
            assert step(t, [box(100, 100)], [0.9], [0]).ids.tolist() == [1]
    out_same = step(same, [box(100, 100)], [0.9], [1])
    assert out_same.ids.tolist() == [1] and out_same.classes.tolist() == [1]
    assert len(step(per, [box(100, 100)], [0.9], [1])) == 0  # class-1 newcomer, unconfirmed
    out_per = step(per, [box(100, 100)], [0.9], [1])
    assert out_per.ids.tolist() == [2] and out_per.classes.tolist() == [1]


def test_per_class_two_overlapping_classes_keep_ids() -> None:
    tracker = ByteTracker(per_class=True)
    for f in range(10):
        out = step(tracker, [box(100 + 2 * f, 100), box(102 + 2 * f, 102)], [0.9, 0.9], [0, 3])
        assert out.ids.tolist() == [1, 2] and out.classes.tolist() == [0, 3]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        pytest.param({"boxes_xyxy": np.zeros(3), "scores": np.zeros(1)}, ValueError,
                     r"boxes_xyxy: expected shape \(N, 4\).*got \(3,\)", id="boxes_1d"),
        pytest.param({"boxes_xyxy": np.zeros((2, 5)), "scores": np.zeros(2)}, ValueError,
                     r"boxes_xyxy: expected shape \(N, 4\).*\(2, 5\)", id="boxes_5_cols"),
        pytest.param({"boxes_xyxy": [[0, 0, np.nan, 1]], "scores": [0.9]}, ValueError,
                     r"boxes_xyxy: expected finite values.*row 0", id="boxes_nan"),
        pytest.param({"boxes_xyxy": [[0, 0, 1, 1], [5, 0, 4, 1]], "scores": [0.9, 0.9]}, ValueError,
                     r"boxes_xyxy: expected x2 >= x1 and y2 >= y1, got \[5.0, 0.0, 4.0, 1.0\] at row 1",
                     id="boxes_x2_lt_x1"),
        pytest.param({"boxes_xyxy": [["a", "b", "c", "d"]], "scores": [0.9]}, TypeError,
                     r"boxes_xyxy: expected a numeric array", id="boxes_strings"),
        pytest.param({"boxes_xyxy": [[0, 0, 1, 1]], "scores": [0.9, 0.8]}, ValueError,
                     r"scores: expected shape \(1,\) to match boxes_xyxy \(1, 4\), got \(2,\)", id="scores_shape"),
        pytest.param({"boxes_xyxy": [[0, 0, 1, 1]], "scores": [np.inf]}, ValueError,
                     r"scores: expected finite values", id="scores_inf"),
        pytest.param({"boxes_xyxy": [[0, 0, 1, 1]], "scores": [0.9], "classes": [0.5]}, ValueError,
                     r"classes: expected integer class ids", id="classes_fraction"),
        pytest.param({"boxes_xyxy": [[0, 0, 1, 1]], "scores": [0.9], "classes": [1, 2]}, ValueError,
                     r"classes: expected shape \(1,\)", id="classes_shape"),
    ],
)  # fmt: skip
def test_bad_inputs(kwargs: dict, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        ByteTracker().update(**kwargs)


def test_integral_float_classes_accepted() -> None:
    out = ByteTracker().update(np.array([box(100, 100)]), np.array([0.9]), np.array([2.0]))
    assert out.classes.tolist() == [2]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"frame_rate": 0}, r"frame_rate: expected a positive", id="frame_rate"),
        pytest.param({"track_buffer": -1}, r"track_buffer: expected a non-negative int", id="track_buffer"),
        pytest.param({"track_buffer": 2.5}, r"track_buffer: expected a non-negative int", id="track_buffer_float"),
        pytest.param({"low_thresh": 0.7}, r"low_thresh: expected <= track_thresh", id="low_thresh"),
        pytest.param({"match_thresh": float("nan")}, r"match_thresh: expected a finite number", id="nan_thresh"),
        pytest.param({"duplicate_iou": 1.5}, r"duplicate_iou: expected a value in \[0, 1\]", id="duplicate_iou"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ByteTracker(**kwargs)


def test_zero_height_boxes_ignored_with_warning() -> None:
    tracker = ByteTracker()
    with pytest.warns(UserWarning, match="zero height"):
        out = step(tracker, [box(100, 100), [10, 10, 20, 10]], [0.9, 0.9])
    assert out.ids.tolist() == [1]


# ------------------------------------------------------------------------------------------------ real data
OFFICIAL = {**OFFICIAL_PER_SEQUENCE, "COMBINED_SEQ": tuple(OFFICIAL_COMBINED.values())}


def _run_sequence(seq: Path) -> str:
    info = configparser.ConfigParser()
    info.read(seq / "seqinfo.ini")
    tracker = ByteTracker(0.6, 0.9, 30, float(info["Sequence"]["frameRate"]))
    det = np.loadtxt(seq / "det" / "det.txt", delimiter=",", ndmin=2)
    lines = []
    for frame in np.unique(det[:, 0]).astype(int):
        d = det[det[:, 0] == frame]
        boxes = d[:, 2:6].copy()
        boxes[:, 2:] += boxes[:, :2]
        out = tracker.update(boxes, d[:, 6])
        for b, i, s in zip(out.boxes, out.ids, out.scores, strict=True):
            w, h = b[2] - b[0], b[3] - b[1]
            if w * h > 100 and not w / h > 1.6:
                x1, y1 = round(b[0], 1), round(b[1], 1)
                lines.append(f"{frame},{i},{x1},{y1},{round(w, 1)},{round(h, 1)},{round(s, 2)},-1,-1,-1\n")
    return "".join(lines)


def test_matches_official_bytetrack_on_mot15(tmp_path: Path) -> None:
    trackeval = pytest.importorskip("trackeval", reason="needs TrackEval (pip install mmtrack-corr[eval])")
    if not SHARED_MOT15.is_dir():
        pytest.skip(f"MOT15 data not found at {SHARED_MOT15}")
    seqs = list(OFFICIAL_PER_SEQUENCE)
    gt_root = tmp_path / "gt" / "MOT15-train"
    data = tmp_path / "trackers" / "MOT15-train" / "ours" / "data"
    data.mkdir(parents=True)
    lengths = {}
    for name in seqs:
        (gt_root / name / "gt").mkdir(parents=True)
        (gt_root / name / "gt" / "gt.txt").symlink_to(SHARED_MOT15 / name / "gt" / "gt.txt")
        (gt_root / name / "seqinfo.ini").symlink_to(SHARED_MOT15 / name / "seqinfo.ini")
        (data / f"{name}.txt").write_text(_run_sequence(SHARED_MOT15 / name))
        info = configparser.ConfigParser()
        info.read(SHARED_MOT15 / name / "seqinfo.ini")
        lengths[name] = int(info["Sequence"]["seqLength"])
    eval_cfg = trackeval.Evaluator.get_default_eval_config()
    eval_cfg.update(USE_PARALLEL=False, PRINT_RESULTS=False, PRINT_CONFIG=False, TIME_PROGRESS=False,
                    OUTPUT_SUMMARY=False, OUTPUT_DETAILED=False, PLOT_CURVES=False, DISPLAY_LESS_PROGRESS=True,
                    LOG_ON_ERROR=str(tmp_path / "error_log.txt"))  # fmt: skip
    data_cfg = trackeval.datasets.MotChallenge2DBox.get_default_dataset_config()
    data_cfg.update(GT_FOLDER=str(tmp_path / "gt"), TRACKERS_FOLDER=str(tmp_path / "trackers"), BENCHMARK="MOT15",
                    SPLIT_TO_EVAL="train", TRACKERS_TO_EVAL=["ours"], PRINT_CONFIG=False, SEQ_INFO=lengths)  # fmt: skip
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(), trackeval.metrics.Identity()]
    with contextlib.redirect_stdout(io.StringIO()):
        res, _ = trackeval.Evaluator(eval_cfg).evaluate([trackeval.datasets.MotChallenge2DBox(data_cfg)], metrics)
    got = {}
    for name, (hota, mota, idf1) in OFFICIAL.items():
        m = res["MotChallenge2DBox"]["ours"][name]["pedestrian"]
        got[name] = (100 * float(np.mean(m["HOTA"]["HOTA"])), 100 * m["CLEAR"]["MOTA"], 100 * m["Identity"]["IDF1"])
        # the reference figures are given to 2 decimals
        np.testing.assert_allclose(got[name], (hota, mota, idf1), atol=0.005 + 1e-9, err_msg=name)


def _check_det_indices(out: Tracks, boxes: np.ndarray, scores: np.ndarray) -> None:
    """Each output track points at a distinct input row whose box it sits on and whose score it carries."""
    assert out.det_indices.dtype == np.int64 and out.det_indices.shape == (len(out),)
    assert (out.det_indices >= 0).all()
    assert np.unique(out.det_indices).size == len(out)
    matched = boxes[out.det_indices]
    np.testing.assert_array_equal(out.scores, scores[out.det_indices])
    # the Kalman posterior sits on the matched detection far more closely than on any other one
    centre = (out.boxes[:, :2] + out.boxes[:, 2:]) / 2
    dist = np.linalg.norm(centre[:, None, :] - ((boxes[:, :2] + boxes[:, 2:]) / 2)[None], axis=2)
    np.testing.assert_array_equal(np.argmin(dist, axis=1), out.det_indices)
    assert np.abs(out.boxes - matched).max() < 20


def test_det_indices_point_at_the_matched_input_rows() -> None:
    rng = np.random.default_rng(7)
    tracker = ByteTracker()
    for f in range(25):
        boxes = np.array([box(60 + 150 * i + 3 * f, 200 + 2 * f * (i % 2)) for i in range(6)])
        # row 3 starts a track, then is low (matched in stage 2 only), then vanishes below low_thresh (lost)
        scores = np.array([0.95, 0.9, 0.85, 0.9 if f == 0 else 0.3, 0.92, 0.88])
        if f == 10:
            scores[3] = 0.05
        order = rng.permutation(len(boxes))
        out = tracker.update(boxes[order], scores[order])
        _check_det_indices(out, boxes[order], scores[order])
        assert (3 in order[out.det_indices]) == (f < 10)  # a lost track only returns with a high detection


def test_det_indices_skip_zero_height_rows_and_empty() -> None:
    tracker = ByteTracker()
    boxes = np.array([box(100, 100), [5.0, 5.0, 9.0, 5.0], box(300, 100)])
    scores = np.array([0.9, 0.9, 0.9])
    with pytest.warns(UserWarning, match="zero height"):
        out = tracker.update(boxes, scores)
    assert sorted(out.det_indices.tolist()) == [0, 2]
    np.testing.assert_allclose(out.boxes[np.argsort(out.det_indices)], boxes[[0, 2]])
    empty = tracker.update(np.zeros((0, 4)), np.zeros(0))
    assert empty.det_indices.shape == (0,) and empty.det_indices.dtype == np.int64
    assert Tracks.empty().det_indices.shape == (0,) and Tracks.empty().det_indices.dtype == np.int64
