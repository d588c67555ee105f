"""MotionEstimator: frame plumbing (resize, units, signs, box read-out), caching, validation, loading, weights."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mmtrack_corr.estimator import (
    DEFAULT_REFINE,
    FLAT_TEXTURE,
    MotionEstimator,
    box_mean,
    camera_box_affine,
    camera_box_motion,
    default_motion_source,
    fit_camera_homography,
    refine_camera_homography,
)
from mmtrack_corr.motion_head import MotionOutput
from mmtrack_corr.motion_model import (
    MotionModel,
    MotionModelConfig,
    WeightsIntegrityError,
    save_motion_model,
    shipped_weights,
)
from trackers import MotionSource, MotionTracker, displacements_from_flow

_TINY = {"encoder_widths": (4, 4, 8, 8, 8), "context": "none", "multiscale_widths": (8, 8, 8), "light_width": 8}


def _tiny_model(seed: int = 0) -> MotionModel:
    torch.manual_seed(seed)
    return MotionModel(MotionModelConfig(**_TINY))


class _FieldModel(MotionModel):
    """A real encoder with a fixed 'head': flow = the cell centre's (x, y) in working pixels, scaled by ``gain``.

    Read back through the estimator, a box must get ``gain`` times its own centre in working pixels, mapped to
    frame pixels - which checks the resize, the cell convention, the per-axis scaling and the box average.
    """

    def __init__(self, stride: int = 8, gain: float = 1.0, log_scale: float = 0.0) -> None:
        super().__init__(MotionModelConfig(**_TINY))
        self.stride, self.gain, self.log_b = stride, gain, log_scale
        self.encoder_calls = 0
        self.encoder.register_forward_hook(lambda *a: setattr(self, "encoder_calls", self.encoder_calls + 1))

    def forward_features(self, feats1, feats2, head=None) -> MotionOutput:  # type: ignore[no-untyped-def, override]
        h8, w8 = feats2[0].shape[-2:]
        h, w = h8 * 8 // self.stride, w8 * 8 // self.stride
        s = self.stride
        ys = torch.arange(h, dtype=torch.float32) * s + (s - 1) / 2
        xs = torch.arange(w, dtype=torch.float32) * s + (s - 1) / 2
        flow = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w)])[None] * self.gain
        log_scale = torch.full((1, 2, h, w), self.log_b)
        log_scale[..., : w // 2] = -5.0  # the left half is certain
        return MotionOutput(flow, log_scale, s)


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------------- plumbing
def test_box_mean_equals_trackers_read_out() -> None:
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(7, 9, 2))
    boxes = rng.uniform(-20, 90, size=(300, 4))
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(0, 40, size=(300, 2))  # includes boxes smaller than a cell
    for stride in (1, 5.5, 8, 32):
        expected = displacements_from_flow(flow, boxes, stride=stride)
        got = box_mean(torch.from_numpy(flow).permute(2, 0, 1), torch.from_numpy(boxes), stride).numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("stride", [pytest.param(8, id="multiscale_stride8"), pytest.param(32, id="light_stride32")])
@pytest.mark.parametrize("size", [pytest.param((96, 160), id="multiple_of_32"), pytest.param((90, 150), id="resized")])
def test_units_and_scaling_back_to_frame_pixels(stride: int, size: tuple[int, int]) -> None:
    model = _FieldModel(stride)
    est = MotionEstimator(model, refine=0, box_refine=False)
    h, w = size
    wh, ww = est.working_size_for(h, w)
    assert (wh, ww) == (96, 160)
    a, b = _frame(h, w, 0), _frame(h, w, 1)
    boxes = np.array([[0.0, 0.0, w, h], [w * 0.25, h * 0.25, w * 0.75, h * 0.75], [5.0, 40.0, 70.0, 90.0]])
    got = est.box_displacements(a, b, boxes)
    # expected: the box average of the cell centres (working pixels), mapped back per axis
    sx, sy = w / ww, h / wh
    flow_cells = model.forward_features([torch.zeros(1, 1, wh // 8, ww // 8)], [torch.zeros(1, 1, wh // 8, ww // 8)])
    work_boxes = boxes / np.array([sx, sy, sx, sy])
    ref = displacements_from_flow(flow_cells.flow[0].permute(1, 2, 0).numpy(), work_boxes, stride=stride)
    np.testing.assert_allclose(got, ref * np.array([sx, sy]), rtol=1e-6)
    # and that is about the box centre, in frame pixels
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    assert np.abs(got - centres).max() <= stride * max(sx, sy)
    dense = est.dense(a, b)
    assert dense.shape == (2, h, w) and dense.dtype == np.float32
    ys, xs = np.mgrid[0:h, 0:w]
    inner = (slice(stride, h - stride), slice(stride, w - stride))  # away from the clamped border cells
    np.testing.assert_allclose(dense[0][inner], (xs + 0.5 - 0.5 * sx)[inner], atol=1e-3)
    np.testing.assert_allclose(dense[1][inner], (ys + 0.5 - 0.5 * sy)[inner], atol=1e-3)


def test_working_size() -> None:
    est = MotionEstimator(_tiny_model(), max_side=1088)
    assert est.working_size_for(1080, 1920) == (608, 1088)
    assert est.working_size_for(480, 640) == (480, 640)
    assert est.working_size_for(10, 10) == (32, 32)
    assert MotionEstimator(_tiny_model(), max_side=None).working_size_for(1080, 1920) == (1088, 1920)
    assert MotionEstimator(_tiny_model(), working_size=(64, 96)).working_size_for(1080, 1920) == (64, 96)


def test_uncertainty_threshold_flags_boxes() -> None:
    model = _FieldModel(8, gain=0.0, log_scale=math.log(4.0))  # b = 4 working px on the right half, ~0 on the left
    boxes = np.array([[0.0, 0.0, 40.0, 40.0], [120.0, 0.0, 160.0, 40.0]])
    a, b = _frame(96, 160), _frame(96, 160, 1)
    flagged = MotionEstimator(model, uncertainty_thresh=2.0, refine=0, box_refine=False).box_displacements(a, b, boxes)
    assert np.isfinite(flagged[0]).all() and np.isnan(flagged[1]).all()
    assert np.isfinite(
        MotionEstimator(model, uncertainty_thresh=None, refine=0, box_refine=False).box_displacements(a, b, boxes)
    ).all()
    assert np.isfinite(
        MotionEstimator(model, uncertainty_thresh=5.0, refine=0, box_refine=False).box_displacements(a, b, boxes)
    ).all()
    disp, sigma = MotionEstimator(model, uncertainty_thresh=2.0, refine=0, box_refine=False).box_displacements(
        a, b, boxes, return_uncertainty=True
    )
    assert np.isnan(disp[1]).all() and sigma[0] < 0.1 and sigma[1] == pytest.approx(4.0)
    assert MotionEstimator(model, refine=0, box_refine=False).box_displacements(a, b, [], return_uncertainty=True)[
        1
    ].shape == (0,)
    unc = MotionEstimator(model, refine=0, box_refine=False).uncertainty(a, b)
    assert unc.shape == (2, 96, 160) and unc[:, :, -1].min() == pytest.approx(4.0)


# ---------------------------------------------------------------------------------------------------- caching
def test_one_encoder_pass_per_frame_in_a_tracker() -> None:
    model = _FieldModel(8, gain=0.0)
    est = MotionEstimator(model, refine=0)
    assert isinstance(est, MotionSource)
    tracker = MotionTracker(est)
    frames = [_frame(96, 128, i) for i in range(5)]
    box = np.array([[10.0, 10.0, 60.0, 80.0]])
    for f in frames:
        tracker.update(box, np.array([0.9]), frame=f)
    assert model.encoder_calls == len(frames)
    # a prev_frame other than the cached one is recomputed, not silently reused
    est(frames[0], frames[4], box)
    assert model.encoder_calls == len(frames) + 1
    est.reset()
    est(frames[3], frames[4], box)
    assert model.encoder_calls == len(frames) + 3


def test_empty_boxes_and_missing_frames() -> None:
    model = _FieldModel(8)
    est = MotionEstimator(model, refine=0)
    a, b = _frame(64, 64), _frame(64, 64, 1)
    assert est.box_displacements(a, b, np.zeros((0, 4))).shape == (0, 2)
    assert est(a, b, []).shape == (0, 2)
    assert model.encoder_calls == 1  # no boxes: the current frame is still encoded, and cached for the next call
    est(b, a, np.ones((1, 4)))
    assert model.encoder_calls == 2
    assert np.isnan(est(None, b, np.ones((2, 4)))).all()
    assert np.isnan(est(a, None, np.ones((3, 4)))).all() and est(a, None, np.ones((3, 4))).shape == (3, 2)


def test_boxes_outside_the_frame_are_clipped() -> None:
    est = MotionEstimator(_FieldModel(8), refine=0, box_refine=False)
    a, b = _frame(64, 96), _frame(64, 96, 1)
    out = est.box_displacements(a, b, np.array([[-50.0, -30.0, 40.0, 40.0], [200.0, 100.0, 260.0, 180.0]]))
    clipped = est.box_displacements(a, b, np.array([[0.0, 0.0, 40.0, 40.0], [96.0, 64.0, 96.0, 64.0]]))
    np.testing.assert_array_equal(out, clipped)
    assert np.isfinite(out).all()


def test_grey_frames_accepted() -> None:
    est = MotionEstimator(_tiny_model())
    g = _frame(64, 64)[..., 0]
    np.testing.assert_array_equal(est.dense(g, g), est.dense(np.dstack([g] * 3), np.dstack([g] * 3)))
    assert est.box_displacements(g[..., None], g[..., None], np.array([[0, 0, 10, 10]])).shape == (1, 2)


@pytest.mark.parametrize("grey", [False, True])
@pytest.mark.parametrize("max_side", [None, 64])
def test_frames_reach_the_encoder_channels_last(grey: bool, max_side: int | None) -> None:
    # the convolutions run channels-last only if the frame tensor is channels-last in every stride, batch included
    # (a size-1 batch with stride 3 made the whole encoder and head run channels-first, ~1.5x slower at 544x960)
    est = MotionEstimator(_tiny_model(), max_side=max_side)
    frame = _frame(96, 128)[..., 0] if grey else _frame(96, 128)
    entry = est._entry(frame)
    assert all(f.stride(1) == 1 and f.is_contiguous(memory_format=torch.channels_last) for f in entry.feats)
    rgb = np.dstack([frame] * 3) if grey else frame[..., ::-1]
    expected = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    if max_side is not None:  # resized in uint8: within one grey level of the float32 antialiased resize
        size = est.working_size_for(96, 128)
        expected = torch.nn.functional.interpolate(expected, size=size, mode="bilinear", antialias=True).clamp(0, 1)
        assert tuple(entry.image.shape[-2:]) == size
    torch.testing.assert_close(entry.image, expected, rtol=0, atol=1.0 / 255 if max_side else 1e-7)


# ---------------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("prev", "cur", "boxes", "exc", "match"),
    [
        pytest.param(_frame(64, 64), _frame(64, 96), [[0, 0, 1, 1]], ValueError, "cur_bgr: expected the", id="sizes"),
        pytest.param(_frame(64, 64).astype(float), _frame(64, 64), [[0, 0, 1, 1]], ValueError, "uint8", id="dtype"),
        pytest.param(_frame(64, 64)[..., :2], _frame(64, 64), [[0, 0, 1, 1]], ValueError, "shape", id="channels"),
        pytest.param(_frame(4, 64), _frame(4, 64), [[0, 0, 1, 1]], ValueError, "8x8", id="tiny"),
        pytest.param([[0]], _frame(64, 64), [[0, 0, 1, 1]], TypeError, "numpy", id="not_array"),
        pytest.param(_frame(64, 64), _frame(64, 64), [[0, 0, 1]], ValueError, r"\(N, 4\)", id="boxes_shape"),
        pytest.param(_frame(64, 64), _frame(64, 64), [[0, 0, np.nan, 1]], ValueError, "finite", id="boxes_nan"),
        pytest.param(_frame(64, 64), _frame(64, 64), [["a", 0, 1, 1]], TypeError, "numeric", id="boxes_text"),
    ],
)
def test_bad_inputs(prev: object, cur: object, boxes: object, exc: type[Exception], match: str) -> None:
    est = MotionEstimator(_tiny_model())
    with pytest.raises(exc, match=match):
        est.box_displacements(prev, cur, boxes)  # type: ignore[arg-type]


def test_bad_call_inputs() -> None:
    est = MotionEstimator(_tiny_model())
    with pytest.raises(ValueError, match="frame: expected the size of prev_frame"):
        est(_frame(64, 64), _frame(64, 96), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="prev_bgr"):
        est.dense(_frame(64, 64)[:, :, 0:2], _frame(64, 64))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"head": "huge"}, "head", id="head"),
        pytest.param({"max_side": 10}, "max_side", id="max_side"),
        pytest.param({"working_size": (100, 64)}, "working_size", id="working_size"),
        pytest.param({"uncertainty_thresh": -1.0}, "uncertainty_thresh", id="thresh_negative"),
        pytest.param({"uncertainty_thresh": "2"}, "uncertainty_thresh", id="thresh_text"),
        pytest.param({"refine": -1}, r"refine: expected an int >= 0", id="refine_negative"),
        pytest.param({"refine": True}, r"refine: expected an int >= 0", id="refine_bool"),
        pytest.param({"refine": 1.5}, r"refine: expected an int >= 0", id="refine_float"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MotionEstimator(_tiny_model(), **kwargs)


def test_model_type_and_head_only_model() -> None:
    with pytest.raises(TypeError, match="MotionModel"):
        MotionEstimator(torch.nn.Conv2d(1, 1, 1))  # type: ignore[arg-type]
    head_only = MotionModel(MotionModelConfig(encoder_widths=None, in_channels=(8, 8, 8), context="none"))
    with pytest.raises(ValueError, match="DetectorMotion"):
        MotionEstimator(head_only)


# ---------------------------------------------------------------------------------------------------- loading
def test_from_pretrained_path_sha_and_tampering(tmp_path: Path) -> None:
    model = _tiny_model(3)
    path = tmp_path / "m.pt"
    sha = save_motion_model(model, path)
    a, b = _frame(64, 96), _frame(64, 96, 1)
    boxes = np.array([[5.0, 5.0, 50.0, 40.0]])
    est = MotionEstimator.from_pretrained(path, expected_sha256=sha, head="light")
    np.testing.assert_array_equal(
        est.box_displacements(a, b, boxes), MotionEstimator(model, head="light").box_displacements(a, b, boxes)
    )
    src = default_motion_source(str(path))
    assert isinstance(src, MotionEstimator) and isinstance(src, MotionSource)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="sha256"):
        MotionEstimator.from_pretrained(path, expected_sha256=sha)
    with pytest.raises(FileNotFoundError):
        default_motion_source(str(tmp_path / "missing.pt"))


def test_deterministic() -> None:
    a, b = _frame(96, 128), _frame(96, 128, 1)
    boxes = np.array([[5.0, 5.0, 50.0, 40.0], [60.0, 30.0, 120.0, 90.0]])
    r1 = MotionEstimator(_tiny_model(1)).box_displacements(a, b, boxes)
    est = MotionEstimator(_tiny_model(1))
    r2 = est.box_displacements(a, b, boxes)
    est.reset()
    r3 = est.box_displacements(a, b, boxes)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(r1, r3)


# ---------------------------------------------------------------------------------------------------- shipped weights
def _shipped_or_skip() -> MotionEstimator:
    try:
        shipped_weights("default")
    except (ValueError, FileNotFoundError) as exc:
        pytest.skip(f"no shipped default weights yet ({exc})")
    return MotionEstimator.from_pretrained("default")


def _translated(photo: np.ndarray, dx: float, dy: float, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    y0, x0 = (photo.shape[0] - h) // 2, (photo.shape[1] - w) // 2
    m = np.float32([[1, 0, -x0], [0, 1, -y0]])
    first = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR)
    m2 = np.float32([[1, 0, -x0 + dx], [0, 1, -y0 + dy]])
    second = cv2.warpAffine(photo, m2, (w, h), flags=cv2.INTER_LINEAR)
    return first, second


@pytest.mark.parametrize("head", ["multiscale", "light"])
@pytest.mark.parametrize(
    ("dx", "dy"), [pytest.param(6.0, -3.0, id="right_up"), pytest.param(-11.0, 7.5, id="left_down")]
)
def test_shipped_weights_recover_a_translation_of_a_heldout_photo(head: str, dx: float, dy: float) -> None:
    from mmtrack_corr.photos import HELDOUT_PHOTOS, load_photo

    est = _shipped_or_skip()
    est.head = head
    photo = load_photo(HELDOUT_PHOTOS[0])
    first, second = _translated(photo, dx, dy, 256, 320)
    box = np.array([[64.0, 64.0, 256.0, 192.0]])
    got = est.box_displacements(first, second, box)[0]
    assert np.abs(got - [dx, dy]).max() <= 2.0, got
    dense = est.dense(first, second)
    assert np.abs(np.median(dense[:, 64:192, 64:256], axis=(1, 2)) - [dx, dy]).max() <= 2.0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("head", ["multiscale", "light"])
def test_shipped_weights_under_half_precision_autocast(head: str, dtype: torch.dtype) -> None:
    # autocast (the GPU benchmark's --bf16, or CUDA's float16 default; here on the CPU): the 3-scale head's warped
    # frame-t features came back float32 from grid_sample while frame t-1's stayed half, and the correlation refused
    # the pair; in float16 the features' normalisation also turned the zero vectors a warp leaves into NaN
    from mmtrack_corr.photos import HELDOUT_PHOTOS, load_photo

    est = _shipped_or_skip()
    est.head = head
    photo = load_photo(HELDOUT_PHOTOS[0])
    first, second = _translated(photo, 6.0, -3.0, 256, 320)
    box = np.array([[64.0, 64.0, 256.0, 192.0]])
    est.refine, est.box_refine = 0, False  # the network's own answer, where bf16 shows
    fp32 = est.box_displacements(first, second, box)[0]
    est.reset()
    with torch.autocast("cpu", dtype=dtype):
        half = est.box_displacements(first, second, box)[0]
        dense = est.dense(first, second)
    assert dense.dtype == np.float32 and np.isfinite(dense).all()
    assert np.abs(half - [6.0, -3.0]).max() <= 2.0 and np.abs(half - fp32).max() <= 1.0, (fp32, half)


@pytest.mark.parametrize("head", ["multiscale", "light"])
def test_refinement_brings_the_shipped_heads_to_a_fraction_of_a_pixel(head: str) -> None:
    from mmtrack_corr.photos import HELDOUT_PHOTOS, load_photo

    est = _shipped_or_skip()
    est.head = head
    photo = load_photo(HELDOUT_PHOTOS[1])
    dx, dy = -11.0, 7.0  # whole pixels: no interpolation blur in the moved frame to bias the truth
    first, second = _translated(photo, dx, dy, 256, 320)
    box = np.array([[64.0, 64.0, 256.0, 192.0]])
    assert est.refine == DEFAULT_REFINE == 2 and est.box_refine  # the estimator's defaults
    est.refine, est.box_refine = 0, False
    plain = np.abs(est.box_displacements(first, second, box)[0] - [dx, dy]).max()
    est.refine = 3
    refined = np.abs(est.box_displacements(first, second, box)[0] - [dx, dy]).max()  # same features, refined field
    assert refined <= 0.25 and refined < plain, (plain, refined)  # plain: 0.15 (3-scale), 1.04 (light) px
    dense = est.dense(first, second)
    assert np.abs(np.median(dense[:, 64:192, 64:256], axis=(1, 2)) - [dx, dy]).max() <= 0.25
    assert "refine=3" in repr(est)
    est.refine, est.box_refine = 0, True  # the box fit alone, from the head's plain field
    boxed = np.abs(est.box_displacements(first, second, box)[0] - [dx, dy]).max()
    assert boxed <= 0.05 and boxed < refined, (refined, boxed)


def test_shipped_weights_in_the_tracker() -> None:
    est = _shipped_or_skip()
    from mmtrack_corr.photos import HELDOUT_PHOTOS, load_photo

    photo = load_photo(HELDOUT_PHOTOS[1])
    tracker = MotionTracker(est)
    box = np.array([[100.0, 80.0, 160.0, 200.0]])
    ids = []
    for t in range(4):  # the camera pans 12 px/frame right: the scene (and the box) moves left
        frame, _ = _translated(photo, 12.0 * t, 0.0, 256, 320)
        out = tracker.update(box - [12.0 * t, 0, 12.0 * t, 0], np.array([0.9]), frame=frame)
        ids.append(out.ids.tolist())
    assert ids[-1] == ids[1] and len(ids[-1]) == 1


def _homography_field(h: int, w: int, stride: int, homography: np.ndarray) -> torch.Tensor:
    """(1, 2, h, w) flow at the cell centres of a stride-``stride`` grid under ``homography``."""
    ys, xs = np.mgrid[0:h, 0:w]
    pts = np.stack([xs * stride + (stride - 1) / 2, ys * stride + (stride - 1) / 2], -1).reshape(-1, 1, 2)
    moved = cv2.perspectiveTransform(pts.astype(np.float64), homography).reshape(h, w, 2)
    return torch.from_numpy((moved - pts.reshape(h, w, 2)).transpose(2, 0, 1)[None].copy()).float()


_CAMERA = np.array([[1.02, -0.03, 6.0], [0.025, 1.01, -4.0], [1e-5, -2e-5, 1.0]])


def test_camera_homography_from_the_field_ignores_an_independently_moving_block() -> None:
    flow = _homography_field(32, 48, 8, _CAMERA)
    flow[:, :, 10:16, 20:28] += torch.tensor([20.0, -12.0]).view(1, 2, 1, 1)  # an object moving on its own
    out = MotionOutput(flow, torch.zeros_like(flow), 8)
    homography = fit_camera_homography(out)
    assert homography is not None
    boxes = np.array([[0.0, 0.0, 60.0, 40.0], [300.0, 200.0, 380.0, 250.0], [160.0, 80.0, 224.0, 128.0]])
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], -1)
    truth = cv2.perspectiveTransform(centres[:, None].astype(np.float64), _CAMERA)[:, 0] - centres
    np.testing.assert_allclose(camera_box_motion(homography, boxes), truth, atol=0.05)  # the moving block's too


def test_no_camera_homography_without_a_dominant_motion() -> None:
    flow = torch.randn(1, 2, 20, 30, generator=torch.Generator().manual_seed(0)) * 30
    assert fit_camera_homography(MotionOutput(flow, torch.zeros_like(flow), 8)) is None
    tiny = torch.zeros(1, 2, 2, 3)
    assert fit_camera_homography(MotionOutput(tiny, tiny.clone(), 8)) is None


def test_camera_snap_replaces_noisy_background_boxes_and_keeps_moving_ones() -> None:
    est = MotionEstimator(_tiny_model(), max_side=None, camera_snap=3.0, refine=0)
    flow = _homography_field(32, 48, 8, _CAMERA)
    noise = torch.randn(flow.shape, generator=torch.Generator().manual_seed(1)) * 2.0
    flow = flow + noise
    flow[:, :, 10:16, 20:28] += torch.tensor([20.0, -12.0]).view(1, 2, 1, 1)
    out = MotionOutput(flow, torch.zeros_like(flow), 8)
    boxes = np.array([[8.0, 8.0, 40.0, 40.0], [168.0, 88.0, 216.0, 120.0]])  # background, then the moving block
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], -1)
    camera = cv2.perspectiveTransform(centres[:, None].astype(np.float64), _CAMERA)[:, 0] - centres
    disp, _ = est._read_boxes(out, boxes, (256, 384))
    np.testing.assert_allclose(disp[0], camera[0], atol=0.4)  # snapped: the frame-wide fit, not the box's noise
    assert np.linalg.norm(disp[1] - camera[1] - [20.0, -12.0]) < 1.5  # its own motion kept
    est.camera_snap = None
    plain, _ = est._read_boxes(out, boxes, (256, 384))
    assert np.linalg.norm(plain[0] - camera[0]) > np.linalg.norm(disp[0] - camera[0])


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True, "3"])
def test_bad_camera_snap(value: object) -> None:
    with pytest.raises(ValueError, match=r"camera_snap: expected a number of pixels > 0 or None"):
        MotionEstimator(_tiny_model(), camera_snap=value)  # type: ignore[arg-type]


def test_camera_box_affine_is_the_homography_linearised_at_each_box_centre() -> None:
    boxes = np.array([[10.0, 20.0, 90.0, 60.0], [200.0, 150.0, 230.0, 210.0]])
    t, a = camera_box_affine(_CAMERA, boxes)
    np.testing.assert_allclose(t, camera_box_motion(_CAMERA, boxes), atol=1e-9)
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], -1)
    half = np.stack([(boxes[:, 2] - boxes[:, 0]) / 2, (boxes[:, 3] - boxes[:, 1]) / 2], -1)
    eps = 1e-4
    for k in range(2):  # central differences of the motion along each box-normalised axis
        step = np.zeros_like(centres)
        step[:, k] = eps * half[:, k]
        plus = camera_box_motion(_CAMERA, np.concatenate([centres + step] * 2, axis=1))
        minus = camera_box_motion(_CAMERA, np.concatenate([centres - step] * 2, axis=1))
        np.testing.assert_allclose(a[:, :, k], (plus - minus) / (2 * eps), atol=1e-5)


class _GivenFieldModel(MotionModel):
    """A real encoder with a 'head' that returns a given stride-8 field (working pixels)."""

    def __init__(self, flow: torch.Tensor) -> None:
        super().__init__(MotionModelConfig(**_TINY))
        self.flow = flow

    def forward_features(self, feats1, feats2, head=None) -> MotionOutput:  # type: ignore[no-untyped-def, override]
        return MotionOutput(self.flow.clone(), torch.zeros_like(self.flow), 8)


def _panned(
    dx: float, dy: float, h: int = 192, w: int = 256, paint: Callable[[np.ndarray], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A held-out photograph seen through an (h, w) window and moved by (dx, dy); ``paint`` may first draw on the
    scene, given the part of the photograph frame 1 shows (its pixel (y, x) is frame 1's)."""
    from mmtrack_corr.photos import HELDOUT_PHOTOS, load_photo

    photo = load_photo(HELDOUT_PHOTOS[1])
    if paint is not None:
        photo = photo.copy()
        y0, x0 = (photo.shape[0] - h) // 2, (photo.shape[1] - w) // 2
        paint(photo[y0 : y0 + h, x0 : x0 + w])
    return _translated(photo, dx, dy, h, w)


def test_box_refine_fits_each_box_to_the_frames() -> None:
    first, second = _panned(-7.0, 4.0)  # the camera pans: the scene moves by (-7, 4)
    flow = torch.tensor([-7.0, 4.0]).view(1, 2, 1, 1) + 1.5 * torch.randn(
        1, 2, 24, 32, generator=torch.Generator().manual_seed(0)
    )
    boxes = np.array([[20.0, 20.0, 80.0, 100.0], [120.0, 60.0, 220.0, 160.0]])
    est = MotionEstimator(_GivenFieldModel(flow), max_side=None, refine=0, box_refine=False)
    plain = np.abs(est.box_displacements(first, second, boxes) - [-7.0, 4.0]).max()
    est.box_refine = True
    fitted = np.abs(est.box_displacements(first, second, boxes) - [-7.0, 4.0]).max()
    assert fitted < 0.1 < plain, (plain, fitted)
    assert "box_refine=True" in repr(est)


def _wrong_block_field(error: tuple[float, float] = (16.0, -12.0)) -> torch.Tensor:
    """The camera's (-7, 4) everywhere but a block of cells (working pixels 32-80) off by ``error``, (1, 2, 24, 32)."""
    flow = torch.tensor([-7.0, 4.0]).view(1, 2, 1, 1).repeat(1, 1, 24, 32)
    flow[:, :, 4:10, 4:10] += torch.tensor(error).view(1, 2, 1, 1)
    return flow


def test_camera_snap_takes_the_camera_where_the_frames_disagree_with_a_wrong_field() -> None:
    first, second = _panned(-7.0, 4.0)
    flow = _wrong_block_field()  # the head grossly wrong in one block
    boxes = np.array([[40.0, 40.0, 72.0, 72.0], [150.0, 100.0, 200.0, 150.0]])  # in the wrong block, elsewhere
    est = MotionEstimator(_GivenFieldModel(flow), max_side=None, refine=0, camera_snap=1.0)
    got = est.box_displacements(first, second, boxes)
    np.testing.assert_allclose(got, [[-7.0, 4.0]] * 2, atol=0.1)
    est.camera_snap = None  # the box fit alone cannot come back from 20 px
    assert np.linalg.norm(est.box_displacements(first, second, boxes)[0] - [-7.0, 4.0]) > 5.0


def test_camera_fallback_is_the_default_and_leaves_textured_boxes_to_their_own_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mmtrack_corr.estimator as estimator_module

    fits: list[int] = []
    fit = estimator_module.fit_camera_homography
    monkeypatch.setattr(estimator_module, "fit_camera_homography", lambda *a, **k: fits.append(1) or fit(*a, **k))
    first, second = _panned(-7.0, 4.0)
    boxes = np.array([[40.0, 40.0, 72.0, 72.0], [150.0, 100.0, 200.0, 150.0]])  # in the wrong block, elsewhere
    est = MotionEstimator(_GivenFieldModel(_wrong_block_field()), max_side=None, refine=0)
    assert est.camera_fallback and "camera_fallback=True" in repr(est)
    got = est.box_displacements(first, second, boxes)
    assert not fits  # no box with a flat direction: the camera's homography is not even fitted (nor sharpened)
    flat_first, flat_second = _panned(-7.0, 4.0, paint=lambda scene: scene[30:90, 30:90].fill(128))
    est.box_displacements(flat_first, flat_second, boxes[:1])  # the same box on a flat patch: fitted
    assert len(fits) == 1
    # textured boxes: the frames pin both directions, so each keeps its own fit - even the one the head started
    # 20 px off, which the box fit cannot bring back (camera snap is the option that overrides textured boxes)
    assert np.linalg.norm(got[0] - [-7.0, 4.0]) > 5.0
    np.testing.assert_allclose(got[1], [-7.0, 4.0], atol=0.1)
    est.camera_fallback = False
    np.testing.assert_array_equal(est.box_displacements(first, second, boxes), got)


def test_camera_fallback_gives_a_flat_box_the_camera_motion_and_never_flags_it() -> None:

    def flat(scene: np.ndarray) -> None:
        scene[30:90, 30:90] = 128  # a flat patch of the scene (working pixels 30-90 of frame 1)

    first, second = _panned(-7.0, 4.0, paint=flat)
    boxes = np.array([[40.0, 40.0, 72.0, 72.0], [150.0, 100.0, 200.0, 150.0]])  # flat (wrong field), textured
    model = _GivenFieldModel(_wrong_block_field())
    est = MotionEstimator(model, max_side=None, refine=0, uncertainty_thresh=0.5, camera_fallback=True)
    got = est.box_displacements(first, second, boxes)  # the field's scale is 1 px: only the camera's boxes pass
    # the homography of the (exact) field elsewhere, sharpened on the frames' corners (to LK's precision)
    np.testing.assert_allclose(got[0], [-7.0, 4.0], atol=0.02)
    assert np.isnan(got[1]).all()
    est.uncertainty_thresh = None
    np.testing.assert_allclose(est.box_displacements(first, second, boxes)[1], [-7.0, 4.0], atol=0.1)
    est.camera_fallback = False  # without it, the flat box stays near the head's wrong (9, -8)
    assert np.linalg.norm(est.box_displacements(first, second, boxes)[0] - [-7.0, 4.0]) > 10.0
    est.box_refine = False  # the flat check needs no box fit
    est.camera_fallback = True
    np.testing.assert_allclose(est.box_displacements(first, second, boxes)[0], [-7.0, 4.0], atol=0.02)
    outside = np.array([[300.0, 250.0, 340.0, 290.0]])  # wholly outside: the nearest cell, with or without it
    est.box_refine = True
    kept = est.box_displacements(first, second, outside)
    est.camera_fallback = False
    np.testing.assert_array_equal(kept, est.box_displacements(first, second, outside))


def test_camera_fallback_takes_the_camera_only_along_an_edge() -> None:
    """A box crossed by one horizontal edge pins its vertical motion only: the fallback replaces the horizontal part."""

    def edge(scene: np.ndarray) -> None:
        scene[30:60, 30:90] = 80  # working pixels 30-90 of frame 1: one edge at row 60
        scene[60:90, 30:90] = 180

    first, second = _panned(-7.0, 4.0, paint=edge)
    flow = _wrong_block_field((16.0, -2.0))  # wrong along and across the edge
    est = MotionEstimator(_GivenFieldModel(flow), max_side=None, refine=0, camera_fallback=False)
    box = np.array([[40.0, 40.0, 72.0, 72.0]])
    plain = est.box_displacements(first, second, box)[0]
    assert abs(plain[1] - 4.0) < 0.2 and abs(plain[0] - 9.0) < 1.0  # the fit fixes y; x is invisible, stays
    est.camera_fallback = True  # (the camera's motion: the exact field's homography re-fitted to tracked corners,
    # so to their precision, ~0.1 px on these 192x256 frames, rather than exact)
    np.testing.assert_allclose(est.box_displacements(first, second, box)[0], [-7.0, 4.0], atol=0.2)
    est.box_refine = False  # the field's (9, 2) as it is: only its x becomes the camera's
    np.testing.assert_allclose(est.box_displacements(first, second, box)[0], [-7.0, 2.0], atol=0.2)


def test_camera_fallback_keeps_a_faint_object_the_frames_see_moving_on_its_own() -> None:
    """A faint blob (flat by FLAT_TEXTURE, like a motion-blurred object) moving by (5, 6) while the camera moves the
    scene by (-7, 4): the camera's motion explains the frames far worse than the blob's own, so the box keeps it."""
    import cv2

    from mmtrack_corr.refine import box_texture, image_gradients

    def flat(scene: np.ndarray) -> None:
        scene[30:120, 30:120] = 128

    first, second = _panned(-7.0, 4.0, paint=flat)
    yy, xx = np.mgrid[0:192, 0:256].astype(np.float64)

    def blob(frame: np.ndarray, cx: float, cy: float) -> np.ndarray:
        bump = 0.1 * 255.0 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 6.0**2))
        return np.clip(frame + bump[..., None], 0, 255).round().astype(np.uint8)

    first, second = blob(first, 56.0, 56.0), blob(second, 61.0, 62.0)
    box = np.array([[40.0, 40.0, 72.0, 72.0]])
    grey = torch.from_numpy(cv2.cvtColor(first, cv2.COLOR_BGR2GRAY) / 255.0).float().view(1, 1, 192, 256)
    assert box_texture(image_gradients(grey), torch.from_numpy(box)).item() < FLAT_TEXTURE  # flat by the threshold
    flow = _wrong_block_field((12.0, 2.0))  # the head saw the blob's own (5, 6) in its cells
    est = MotionEstimator(_GivenFieldModel(flow), max_side=None, refine=0, camera_fallback=True)
    np.testing.assert_allclose(est.box_displacements(first, second, box)[0], [5.0, 6.0], atol=0.3)
    est.box_refine = False  # the head's value as it is: the frames reject the camera's just the same
    np.testing.assert_allclose(est.box_displacements(first, second, box)[0], [5.0, 6.0], atol=1e-6)


@pytest.mark.parametrize("value", [0, 1, None, "yes"])
def test_bad_camera_fallback(value: object) -> None:
    with pytest.raises(ValueError, match=r"camera_fallback: expected True or False"):
        MotionEstimator(_tiny_model(), camera_fallback=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, 1, None, "yes"])
def test_bad_box_refine(value: object) -> None:
    with pytest.raises(ValueError, match=r"box_refine: expected True or False"):
        MotionEstimator(_tiny_model(), box_refine=value)  # type: ignore[arg-type]


def test_compile_encoder_gives_the_eager_displacements() -> None:
    """``compile_encoder=True`` runs the encoder through torch.compile (Inductor) with the same results."""
    pytest.importorskip("torch._inductor")
    first, second = _panned(-7.0, 4.0)
    boxes = np.array([[20.0, 20.0, 80.0, 100.0], [120.0, 60.0, 220.0, 160.0]])
    model = _tiny_model()
    eager = MotionEstimator(model, max_side=None).box_displacements(first, second, boxes)
    est = MotionEstimator(model, max_side=None, compile_encoder=True)
    assert "compile_encoder=True" in repr(est)
    np.testing.assert_allclose(est.box_displacements(first, second, boxes), eager, atol=1e-4)
    assert est._compiled is not None


@pytest.mark.parametrize("value", [0, 1, None, "yes"])
def test_bad_compile_encoder(value: object) -> None:
    with pytest.raises(ValueError, match=r"compile_encoder: expected True or False"):
        MotionEstimator(_tiny_model(), compile_encoder=value)  # type: ignore[arg-type]


def test_refine_camera_homography_sharpens_a_rough_homography_and_refuses_a_large_change() -> None:
    """A held-out photograph under a known homography (1 degree, 2 % zoom, a pan): a homography 1.8 px off comes
    back within 0.15 px; one 10.8 px off is returned unchanged (the change exceeds max_change), unless allowed."""
    from mmtrack_corr.photos import HELDOUT_PHOTOS, load_photo
    from mmtrack_corr.refine import grey_image

    photo = load_photo(HELDOUT_PHOTOS[1])
    h, w = 192, 256
    y0, x0 = (photo.shape[0] - h) // 2, (photo.shape[1] - w) // 2
    to_frame = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    c, s = 1.02 * math.cos(math.radians(1.0)), 1.02 * math.sin(math.radians(1.0))
    centre = np.array([[1.0, 0.0, w / 2], [0.0, 1.0, h / 2], [0.0, 0.0, 1.0]])
    truth = centre @ np.array([[c, -s, -6.0], [s, c, 3.0], [0.0, 0.0, 1.0]]) @ np.linalg.inv(centre)
    frames = [cv2.warpPerspective(photo, m @ to_frame, (w, h)) for m in (np.eye(3), truth)]
    grey = [grey_image(torch.from_numpy(f[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255) for f in frames]

    def error(homography: np.ndarray) -> float:
        ys, xs = np.mgrid[20 : h - 20 : 9j, 20 : w - 20 : 9j]
        grid = np.c_[xs.ravel(), ys.ravel(), np.ones(xs.size)]
        a, b = grid @ homography.T, grid @ truth.T
        return float(np.linalg.norm(a[:, :2] / a[:, 2:] - b[:, :2] / b[:, 2:], axis=1).mean())

    def shifted(dx: float, dy: float) -> np.ndarray:
        return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]]) @ truth

    rough = shifted(1.5, -1.0)
    assert error(refine_camera_homography(grey[0], grey[1], rough)) < 0.15 < 1.5 < error(rough)
    far = shifted(9.0, 6.0)
    assert np.array_equal(refine_camera_homography(grey[0], grey[1], far), far)
    assert error(refine_camera_homography(grey[0], grey[1], far, max_change=20.0)) < 0.15
    with pytest.raises(ValueError, match=r"grey1, grey2: expected two \(1, 1, H, W\) images"):
        refine_camera_homography(grey[0], grey[1][..., :100], rough)
