"""Synthetic frame pairs: the returned motion is exact, boxes and displacements agree with it, determinism, errors."""

from __future__ import annotations

import ast
from pathlib import Path

import cv2
import numpy as np
import pytest

import mmtrack_corr
from mmtrack_corr.photos import HELDOUT_PHOTOS, TRAIN_PHOTOS
from mmtrack_corr.synthetic import (
    SPEED_LEVELS,
    FramePair,
    PhotometricEffects,
    SyntheticSequence,
    background_boxes,
    camera_speed,
    make_pair,
    make_sequence,
)

H, W = 136, 240  # a quarter of the default size in each direction: fast, and still many objects


def _warp_back(pair: FramePair, shift: float = 0.0) -> np.ndarray:
    """frame2 sampled at x + flow (+ shift), bilinear: the frame-1 image as the flow claims it."""
    height, width = pair.flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x = xs + pair.flow[..., 0] + shift
    map_y = ys + pair.flow[..., 1]
    return cv2.remap(pair.frame2, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _abs_error(pair: FramePair, back: np.ndarray) -> np.ndarray:
    return np.abs(back.astype(np.int32) - pair.frame1.astype(np.int32)).max(axis=-1)[pair.valid]


@pytest.mark.parametrize(("height", "width"), [(64, 64), (H, W), (101, 173), (256, 448)])
def test_shapes_and_dtypes(height: int, width: int) -> None:
    pair = make_pair(np.random.default_rng(1), height=height, width=width)
    assert pair.frame1.shape == pair.frame2.shape == (height, width, 3)
    assert pair.frame1.dtype == pair.frame2.dtype == np.uint8
    assert pair.flow.shape == (height, width, 2) and pair.flow.dtype == np.float32
    assert pair.valid.shape == (height, width) and pair.valid.dtype == bool
    assert pair.labels.shape == (height, width) and pair.labels.dtype == np.int32
    n = pair.ids.shape[0]
    assert pair.ids.dtype == np.int64
    assert pair.boxes.shape == pair.boxes2.shape == (n, 4) and pair.boxes.dtype == np.float64
    assert pair.displacements.shape == (n, 2) and pair.displacements.dtype == np.float64
    assert pair.visibility.shape == (n,) and pair.motions.shape == (n, 3, 3) and pair.camera.shape == (3, 3)
    assert len(pair.sprite_photos) == n
    assert np.all(np.isfinite(pair.flow))


@pytest.mark.parametrize("speed", SPEED_LEVELS)
def test_warping_frame2_back_by_the_flow_reproduces_frame1(speed: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(3):
        pair = make_pair(rng, height=H, width=W, speed=speed, photometric=False, max_objects=10)
        assert pair.valid.mean() > 0.5
        err = _abs_error(pair, _warp_back(pair))
        # both frames are bilinear resamplings of the same sources, so only re-interpolation error is left
        assert err.mean() < 1.5, err.mean()
        assert np.percentile(err, 90) <= 4
        # the check is sensitive: a flow wrong by 1.5 px is far worse on the same textures
        wrong = _abs_error(pair, _warp_back(pair, shift=1.5))
        assert wrong.mean() > 2 * err.mean() + 0.5


def test_flow_of_objects_is_their_own_motion_on_top_of_the_camera() -> None:
    rng = np.random.default_rng(3)
    pair = make_pair(rng, height=H, width=W, speed="fast", photometric=False, max_objects=12)
    assert pair.ids.size > 0
    xs, ys = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    pts = np.stack([xs, ys, np.ones_like(xs)], axis=-1)
    background = pair.labels == 0
    cam = pts @ pair.camera.T
    cam_flow = cam[..., :2] / cam[..., 2:] - pts[..., :2]
    np.testing.assert_allclose(pair.flow[background], cam_flow[background], atol=2e-3)
    for i, obj in enumerate(pair.ids):
        own = pair.labels == obj
        moved = pts[own] @ pair.motions[i].T
        np.testing.assert_allclose(pair.flow[own], moved[:, :2] / moved[:, 2:] - pts[own][:, :2], atol=2e-3)


def test_displacements_are_the_mean_flow_over_each_objects_pixels() -> None:
    rng = np.random.default_rng(11)
    for _ in range(3):
        pair = make_pair(rng, height=H, width=W, speed="medium", max_objects=12, perspective=False)
        for i, obj in enumerate(pair.ids):
            own = pair.labels == obj
            assert own.any()
            np.testing.assert_allclose(pair.displacements[i], pair.flow[own].astype(np.float64).mean(axis=0), atol=1e-4)
            # for an affine motion, the mean flow is the motion of the visible pixels' centroid
            ys, xs = np.nonzero(own)
            centroid = np.array([xs.mean(), ys.mean(), 1.0])
            moved = pair.motions[i] @ centroid
            np.testing.assert_allclose(pair.displacements[i], moved[:2] - centroid[:2], atol=1e-3)


def test_boxes_enclose_the_rendered_objects() -> None:
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(6):
        pair = make_pair(rng, height=H, width=W, speed="medium", photometric=False, max_objects=6)
        for i, obj in enumerate(pair.ids):
            x1, y1, x2, y2 = pair.boxes[i]
            assert x2 > x1 and y2 > y1
            if pair.visibility[i] < 0.999 or x1 < 1 or y1 < 1 or x2 > W - 1 or y2 > H - 1:
                continue  # occluded or cut by the border: the rendered mask is not the whole object
            ys, xs = np.nonzero(pair.labels == obj)
            np.testing.assert_allclose(pair.boxes[i], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1.5)
            # frame-2 box = the object's pixels carried by its motion
            pts = np.stack([xs, ys, np.ones_like(xs)], axis=1).astype(np.float64) @ pair.motions[i].T
            pts = pts[:, :2] / pts[:, 2:]
            expected2 = [pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max() + 1, pts[:, 1].max() + 1]
            np.testing.assert_allclose(pair.boxes2[i], expected2, atol=1.5)
            checked += 1
    assert checked >= 3


def test_valid_pixels_land_inside_frame2_and_occluded_ones_are_invalid() -> None:
    pair = make_pair(np.random.default_rng(2), height=H, width=W, speed="fast", photometric=False, max_objects=12)
    xs, ys = np.meshgrid(np.arange(W), np.arange(H))
    tx, ty = xs + pair.flow[..., 0], ys + pair.flow[..., 1]
    assert np.all((tx[pair.valid] >= 0) & (tx[pair.valid] <= W - 1) & (ty[pair.valid] >= 0) & (ty[pair.valid] <= H - 1))
    outside = (tx < 0) | (tx > W - 1) | (ty < 0) | (ty > H - 1)
    assert not np.any(pair.valid & outside)
    assert outside.any()  # a fast camera moves part of frame 1 out of view


def test_camera_motion_within_the_speed_level() -> None:
    rng = np.random.default_rng(4)
    centre = np.array([(W - 1) / 2.0, (H - 1) / 2.0, 1.0])
    for speed in SPEED_LEVELS:
        limits = camera_speed(speed)
        shifts = []
        for _ in range(12):
            pair = make_pair(rng, height=H, width=W, speed=speed, photometric=False, max_objects=0)
            moved = pair.camera @ centre
            shifts.append(np.hypot(*(moved[:2] / moved[2] - centre[:2])))
        # centre translation (+ the perspective part's share) stays within the level's limit
        assert max(shifts) <= (limits.translation + 2 * limits.perspective) * W
        assert max(shifts) > 0.3 * limits.translation * W


def test_heldout_pairs_use_only_heldout_photos() -> None:
    rng = np.random.default_rng(9)
    seen = set()
    for _ in range(6):
        pair = make_pair(rng, height=H, width=W, photos="heldout", max_objects=8)
        seen.add(pair.background_photo)
        seen.update(pair.sprite_photos)
    assert seen and seen <= set(HELDOUT_PHOTOS)
    pair = make_pair(rng, height=H, width=W, photos=["brick", "grass"], max_objects=8)
    assert {pair.background_photo, *pair.sprite_photos} <= {"brick", "grass"}
    assert set(pair.sprite_photos) <= {"brick", "grass"} - {pair.background_photo}


def test_same_seed_same_arrays() -> None:
    a = make_pair(np.random.default_rng(123), height=H, width=W)
    b = make_pair(np.random.default_rng(123), height=H, width=W)
    for name in ("frame1", "frame2", "flow", "valid", "labels", "boxes", "ids", "displacements", "boxes2", "camera"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    c = make_pair(np.random.default_rng(124), height=H, width=W)
    assert not np.array_equal(a.frame1, c.frame1)


def test_photometric_effects_change_pixels_not_motion() -> None:
    clean = make_pair(np.random.default_rng(8), height=H, width=W, photometric=False)
    full = make_pair(np.random.default_rng(8), height=H, width=W, photometric=True)
    noise = make_pair(
        np.random.default_rng(8), height=H, width=W, photometric=PhotometricEffects(False, False, False, True, False)
    )
    for other in (full, noise):
        np.testing.assert_array_equal(clean.flow, other.flow)
        np.testing.assert_array_equal(clean.valid, other.valid)
        np.testing.assert_array_equal(clean.boxes, other.boxes)
        assert not np.array_equal(clean.frame1, other.frame1)
    # noise only: same image up to the noise (sigma <= 6 levels)
    assert np.abs(noise.frame1.astype(int) - clean.frame1.astype(int)).mean() < 6


def test_background_boxes_hold_no_object_pixels_and_the_mean_camera_motion() -> None:
    rng = np.random.default_rng(6)
    pair = make_pair(rng, height=H, width=W, max_objects=6)
    boxes, disp = background_boxes(rng, pair, 10)
    assert boxes.shape[0] == disp.shape[0] and 1 <= boxes.shape[0] <= 10
    for (x1, y1, x2, y2), d in zip(boxes.astype(int), disp, strict=True):
        assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
        assert not pair.labels[y1:y2, x1:x2].any()
        np.testing.assert_allclose(d, pair.flow[y1:y2, x1:x2].astype(np.float64).mean(axis=(0, 1)), atol=1e-4)
    empty_boxes, empty_disp = background_boxes(rng, pair, 0)
    assert empty_boxes.shape == (0, 4) and empty_disp.shape == (0, 2)


def test_no_objects() -> None:
    pair = make_pair(np.random.default_rng(0), height=64, width=80, max_objects=0)
    assert pair.ids.shape == (0,) and pair.boxes.shape == (0, 4) and pair.displacements.shape == (0, 2)
    assert not pair.labels.any()


def test_train_is_the_default_photo_set() -> None:
    pair = make_pair(np.random.default_rng(0), height=64, width=80)
    assert pair.background_photo in TRAIN_PHOTOS


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"rng": 0}, TypeError, "rng: expected a numpy.random.Generator", id="rng_int"),
        pytest.param({"rng": np.random.RandomState(0)}, TypeError, "rng: expected", id="rng_legacy"),
        pytest.param({"height": 63}, ValueError, "height: expected an int >= 64, got 63", id="height_small"),
        pytest.param({"width": 100.0}, TypeError, "width: expected an int", id="width_float"),
        pytest.param({"width": True}, TypeError, "width: expected an int", id="width_bool"),
        pytest.param(
            {"speed": "turbo"}, ValueError, "speed: expected one of slow, medium, fast, got 'turbo'", id="speed"
        ),
        pytest.param({"photos": "test"}, ValueError, "photos: expected 'train', 'heldout'", id="photos"),
        pytest.param({"photometric": "yes"}, TypeError, "photometric: expected a bool", id="photometric"),
        pytest.param({"max_objects": 255}, ValueError, r"max_objects: expected an int in \[0, 254\]", id="max_objects"),
        pytest.param({"perspective": 1}, TypeError, "perspective: expected a bool", id="perspective"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type[Exception], match: str) -> None:
    args = {"rng": np.random.default_rng(0), "height": 64, "width": 64, **kwargs}
    with pytest.raises(error, match=match):
        make_pair(**args)


def test_background_boxes_bad_arguments() -> None:
    rng = np.random.default_rng(0)
    pair = make_pair(rng, height=64, width=64)
    with pytest.raises(TypeError, match="pair: expected a FramePair"):
        background_boxes(rng, "pair", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n: expected an int >= 0, got -1"):
        background_boxes(rng, pair, -1)


# ---------------------------------------------------------------------------------------------------------------------
# Sequences
# ---------------------------------------------------------------------------------------------------------------------

SH, SW, SN = 96, 160, 24


@pytest.fixture(scope="module")
def sequence() -> SyntheticSequence:
    return make_sequence(np.random.default_rng(21), SN, height=SH, width=SW, speed="medium", max_objects=8)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of tlwh boxes a (N, 4) and b (M, 4)."""
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    return inter / (a[:, 2:].prod(1)[:, None] + b[:, 2:].prod(1)[None] - inter)


def test_sequence_ground_truth_is_well_formed(sequence: SyntheticSequence) -> None:
    gt = sequence.gt
    assert len(gt) > SN  # several objects per frame
    assert np.all(np.diff(gt.frames) >= 0) and gt.frames.min() >= 1 and gt.frames.max() <= SN
    for f in range(1, SN + 1):
        rows = gt.frame_rows(f)
        assert np.unique(gt.ids[rows]).size == rows.size  # one row per object per frame
    x, y, w, h = gt.tlwh.T
    assert np.all((w > 0) & (h > 0) & (x >= 0) & (y >= 0) & (x + w <= SW + 1e-9) & (y + h <= SH + 1e-9))
    assert np.all((gt.visibility > 0) & (gt.visibility <= 1)) and np.all(gt.scores == 1)
    assert np.unique(gt.ids).size > 8  # objects enter over time (ids never reused)


def test_sequence_detections_are_well_formed(sequence: SyntheticSequence) -> None:
    det = sequence.detections
    assert len(det) > 0 and np.all(det.ids == -1)
    assert np.all(np.diff(det.frames) >= 0) and det.frames.min() >= 1 and det.frames.max() <= SN
    assert np.all((det.scores >= 0) & (det.scores <= 1))
    x, y, w, h = det.tlwh.T
    assert np.all((w >= 1) & (h >= 1) & (x >= 0) & (y >= 0) & (x + w <= SW + 1e-9) & (y + h <= SH + 1e-9))


def test_detections_follow_the_ground_truth_and_score_lower_when_occluded() -> None:
    seq = make_sequence(np.random.default_rng(5), 60, height=SH, width=SW, speed="slow", max_objects=12)
    gt, det = seq.gt, seq.detections
    matched_vis, matched_score = [], []
    for f in range(1, 61):
        g, d = gt.frame_rows(f), det.frame_rows(f)
        if g.size == 0 or d.size == 0:
            continue
        iou = _iou(gt.tlwh[g], det.tlwh[d])
        best = iou.argmax(axis=1)
        for i, j in enumerate(best):
            if iou[i, j] > 0.5:
                matched_vis.append(gt.visibility[g[i]])
                matched_score.append(det.scores[d[j]])
    vis, score = np.array(matched_vis), np.array(matched_score)
    assert vis.size > 0.6 * len(gt)  # most objects are detected, at IoU > 0.5
    assert np.corrcoef(vis, score)[0, 1] > 0.3


def test_sequence_frames_are_rendered_identically_every_time(sequence: SyntheticSequence) -> None:
    frames = list(sequence)
    assert len(frames) == SN and frames[0].shape == (SH, SW, 3) and frames[0].dtype == np.uint8
    np.testing.assert_array_equal(sequence.frame(7), frames[6])
    pair = sequence.pair(7)
    np.testing.assert_array_equal(pair.frame1, frames[6])
    np.testing.assert_array_equal(pair.frame2, frames[7])


def test_sequence_pairs_keep_ids_and_match_the_ground_truth(sequence: SyntheticSequence) -> None:
    gt = sequence.gt
    followed = 0
    for f in range(1, SN):
        pair = sequence.pair(f)
        rows, rows2 = gt.frame_rows(f), gt.frame_rows(f + 1)
        assert set(pair.ids.tolist()) == set(gt.ids[rows].tolist())
        for i, obj in enumerate(pair.ids):
            row = rows[gt.ids[rows] == obj][0]
            np.testing.assert_allclose(pair.visibility[i], gt.visibility[row], atol=1e-9)
            x1, y1, x2, y2 = pair.boxes[i]
            clipped = [max(x1, 0), max(y1, 0), min(x2, SW) - max(x1, 0), min(y2, SH) - max(y1, 0)]
            np.testing.assert_allclose(gt.tlwh[row], clipped, atol=1e-9)
            nxt = rows2[gt.ids[rows2] == obj]
            if nxt.size:  # the same id in the next frame sits where the exact motion takes the object
                x1, y1, x2, y2 = pair.boxes2[i]
                expected = [max(x1, 0), max(y1, 0), min(x2, SW) - max(x1, 0), min(y2, SH) - max(y1, 0)]
                np.testing.assert_allclose(gt.tlwh[nxt[0]], expected, atol=1e-9)
                followed += 1
    assert followed > SN


def test_sequence_flow_is_exact() -> None:
    seq = make_sequence(np.random.default_rng(3), 6, height=H, width=W, speed="fast", photometric=False)
    for f in (1, 5):
        pair = seq.pair(f)
        assert pair.valid.mean() > 0.5
        err = _abs_error(pair, _warp_back(pair))
        assert err.mean() < 1.5 and np.percentile(err, 90) <= 4
        assert _abs_error(pair, _warp_back(pair, shift=1.5)).mean() > 2 * err.mean() + 0.5


def test_sequence_camera_is_smooth_bounded_and_not_constant() -> None:
    seq = make_sequence(np.random.default_rng(8), 80, height=SH, width=SW, speed="fast", photometric=False)
    limits = camera_speed("fast")
    centre = np.array([(SW - 1) / 2.0, (SH - 1) / 2.0, 1.0])
    moves = []
    for f in range(1, 80):
        moved = seq.camera(f) @ centre
        moves.append(moved[:2] / moved[2] - centre[:2])
    mv = np.array(moves)
    speed = np.hypot(mv[:, 0], mv[:, 1])
    assert speed.max() <= limits.translation * SW * 1.01
    assert speed.min() >= 0.3 * limits.translation * SW
    assert speed.std() > 0.02 * speed.mean()  # the speed varies
    heading = np.unwrap(np.arctan2(mv[:, 1], mv[:, 0]))
    assert np.ptp(heading) > 0.2  # the direction changes
    assert np.abs(np.diff(heading)).max() < 0.4  # smoothly


def test_sequence_determinism_and_photo_split() -> None:
    a = make_sequence(np.random.default_rng(2), 5, height=SH, width=SW, photos="heldout")
    b = make_sequence(np.random.default_rng(2), 5, height=SH, width=SW, photos="heldout")
    for name in ("frames", "ids", "tlwh", "scores", "visibility"):
        np.testing.assert_array_equal(getattr(a.gt, name), getattr(b.gt, name))
        np.testing.assert_array_equal(getattr(a.detections, name), getattr(b.detections, name))
    np.testing.assert_array_equal(a.frame(4), b.frame(4))
    pair = a.pair(2)
    assert {a.background_photo, *pair.sprite_photos} <= set(HELDOUT_PHOTOS)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"n_frames": 1}, ValueError, "n_frames: expected an int >= 2, got 1", id="n_frames"),
        pytest.param({"max_objects": 0}, ValueError, r"max_objects: expected an int in \[1, 100\]", id="max_objects"),
        pytest.param({"frame_rate": 0}, ValueError, "frame_rate: expected a number > 0", id="frame_rate"),
        pytest.param({"speed": "warp"}, ValueError, "speed: expected one of", id="speed"),
        pytest.param({"rng": 3}, TypeError, "rng: expected a numpy.random.Generator", id="rng"),
    ],
)
def test_sequence_bad_arguments(kwargs: dict, error: type[Exception], match: str) -> None:
    args = {"rng": np.random.default_rng(0), "n_frames": 3, "height": 64, "width": 64, **kwargs}
    with pytest.raises(error, match=match):
        make_sequence(**args)


def test_sequence_frame_numbers_are_checked(sequence: SyntheticSequence) -> None:
    with pytest.raises(ValueError, match=rf"frame: expected an int in \[1, {SN}\], got 0"):
        sequence.frame(0)
    with pytest.raises(ValueError, match=rf"frame: expected an int in \[1, {SN - 1}\], got {SN}"):
        sequence.pair(SN)


def test_sequence_tables_convert_to_mot_records(sequence: SyntheticSequence, tmp_path: Path) -> None:
    from trackers.mot_io import MotRecords, read_mot_results, write_results

    gt = sequence.gt
    records = MotRecords(
        frames=gt.frames,
        ids=gt.ids,
        tlwh=gt.tlwh,
        scores=gt.scores,
        classes=np.ones_like(gt.ids),
        extras={"visibility": gt.visibility},
    )
    write_results(tmp_path / "gt.txt", records)
    back = read_mot_results(tmp_path / "gt.txt")
    np.testing.assert_array_equal(back.frames, gt.frames)
    np.testing.assert_array_equal(back.ids, gt.ids)
    np.testing.assert_allclose(back.tlwh, gt.tlwh, atol=0.006)


@pytest.mark.parametrize(
    "module", ["photos", "synthetic", "synthetic_render", "synthetic_photometric", "synthetic_sequence", "synth_cli"]
)
def test_synthetic_modules_import_neither_torch_nor_trackers(module: str) -> None:
    # numpy + OpenCV only, so benchmarks, the demo and data loaders use them without torch (the package's own
    # __init__ is another matter: it re-exports the torch op)
    source = (Path(mmtrack_corr.__file__).parent / f"{module}.py").read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"torch", "trackers", "scipy", "skimage", "sklearn"}, imported


@pytest.mark.parametrize("motion", [(40.0, 12.0), (-7.0, 30.0), (3.0, -2.0), (-45.0, -45.0), (95.0, -3.0)])
def test_motion_blur_is_a_centred_line_blur(motion: tuple[float, float]) -> None:
    from mmtrack_corr.synthetic_photometric import _motion_blur

    dx, dy = motion
    # a dot becomes a segment along the motion, centred on the dot (the blur moves no content)
    dot = np.zeros((301, 301, 3), np.uint8)
    dot[150, 150] = 255
    smear = _motion_blur(dot, dx, dy)[..., 0].astype(np.float64)
    ys, xs = np.mgrid[:301, :301]
    mass = smear.sum()
    np.testing.assert_allclose([(smear * xs).sum() / mass, (smear * ys).sum() / mass], [150, 150], atol=0.05)
    lit = np.nonzero(smear)
    assert abs((lit[1].max() - lit[1].min()) - abs(dx)) <= 2 and abs((lit[0].max() - lit[0].min()) - abs(dy)) <= 2
    # on a photograph it matches a box filter along the same centred segment
    image = make_pair(np.random.default_rng(0), height=272, width=480, photometric=False).frame1
    size = 2 * int(np.ceil(max(abs(dx), abs(dy)))) + 3
    kernel = np.zeros((size, size), np.float32)
    for s in np.linspace(-0.5, 0.5, 400):
        kernel[round(size // 2 + s * dy), round(size // 2 + s * dx)] += 1
    reference = cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT_101)
    m = size // 2  # away from the border, where the two pad the image differently
    inner = (slice(m, -m), slice(m, -m))
    blurred = _motion_blur(image, dx, dy)
    assert np.abs(blurred[inner].astype(int) - reference[inner]).mean() < 1.0
    assert np.abs(image[inner].astype(int) - reference[inner]).mean() > 1.5 or abs(dx) + abs(dy) < 6
