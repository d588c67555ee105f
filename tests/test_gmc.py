"""CameraMotionCompensation: affine and per-box displacement on synthetic warped images, errors, tracker use."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from trackers.bytetrack import ByteTracker
from trackers.gmc import CameraMotionCompensation
from trackers.motion import MotionTracker


def textured(h: int = 240, w: int = 320, seed: int = 0, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = (rng.random((h, w, channels)) * 255).astype(np.uint8)
    img = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return img if channels == 3 else img.reshape(h, w)


def true_affine(angle_deg: float, shift: tuple[float, float], centre: tuple[float, float] = (150, 110)) -> np.ndarray:
    m = np.asarray(cv2.getRotationMatrix2D(centre, angle_deg, 1.0), dtype=np.float64)
    m[:, 2] += np.asarray(shift)
    return m


BOXES = np.array([[50.0, 50.0, 90.0, 130.0], [200.0, 100.0, 240.0, 180.0], [150.0, 20.0, 170.0, 60.0]])


@pytest.mark.parametrize("method", ["sparse", "ecc"])
@pytest.mark.parametrize("downscale", [1, 2])
@pytest.mark.parametrize("channels", [pytest.param(3, id="bgr"), pytest.param(1, id="gray")])
def test_recovers_rotation_and_shift(method: str, downscale: int, channels: int) -> None:
    img = textured(channels=channels)
    m = true_affine(2.0, (7.3, -4.1))
    moved = cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)
    gmc = CameraMotionCompensation(method, downscale)
    est = gmc.estimate(img, moved)
    assert est.shape == (2, 3) and est.dtype == np.float64
    centres = np.stack([(BOXES[:, 0] + BOXES[:, 2]) / 2, (BOXES[:, 1] + BOXES[:, 3]) / 2], axis=1)
    expected = centres @ m[:, :2].T + m[:, 2] - centres
    got = gmc(img, moved, BOXES)
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, expected, atol=0.5)
    np.testing.assert_allclose(est[:, :2], m[:, :2], atol=5e-3)
    # the affine itself maps points of the image correctly within half a pixel
    corners = np.array([[20.0, 20.0], [300.0, 20.0], [20.0, 220.0], [300.0, 220.0]])
    np.testing.assert_allclose(corners @ est[:, :2].T + est[:, 2], corners @ m[:, :2].T + m[:, 2], atol=0.5)


@pytest.mark.parametrize("method", ["sparse", "ecc"])
def test_no_motion_and_no_previous_frame(method: str) -> None:
    img = textured()
    gmc = CameraMotionCompensation(method)
    np.testing.assert_allclose(gmc(img, img, BOXES), 0.0, atol=0.05)
    np.testing.assert_array_equal(gmc.estimate(None, img), np.eye(2, 3))
    np.testing.assert_array_equal(gmc(None, img, BOXES), np.zeros((3, 2)))
    assert gmc(img, img, np.zeros((0, 4))).shape == (0, 2)


def test_textureless_frame_warns_and_returns_identity() -> None:
    flat = np.full((64, 64), 128, np.uint8)
    with pytest.warns(UserWarning, match="assuming no camera motion"):
        est = CameraMotionCompensation("sparse").estimate(flat, flat)
    np.testing.assert_array_equal(est, np.eye(2, 3))


@pytest.mark.parametrize(
    ("prev", "cur", "exc", "match"),
    [
        pytest.param(np.zeros((32, 32), np.float32), np.zeros((32, 32), np.uint8), ValueError,
                     r"prev_frame: expected dtype uint8, got float32", id="float_frame"),
        pytest.param(np.zeros((32, 32, 4), np.uint8), np.zeros((32, 32, 4), np.uint8), ValueError,
                     r"prev_frame: expected shape \(H, W\), \(H, W, 1\) or \(H, W, 3\)", id="four_channels"),
        pytest.param(np.zeros((32, 32), np.uint8), np.zeros((32, 40), np.uint8), ValueError,
                     r"frame: expected the same size as prev_frame", id="size_mismatch"),
        pytest.param([[0]], np.zeros((32, 32), np.uint8), TypeError, r"prev_frame: expected a numpy uint8 image",
                     id="not_array"),
        pytest.param(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), ValueError, r"at least 8x8",
                     id="tiny"),
    ],
)  # fmt: skip
def test_frame_validation(prev: np.ndarray, cur: np.ndarray, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        CameraMotionCompensation().estimate(prev, cur)


def test_argument_validation() -> None:
    with pytest.raises(ValueError, match="method: expected 'sparse' or 'ecc', got 'orb'"):
        CameraMotionCompensation("orb")
    with pytest.raises(ValueError, match="downscale: expected an integer >= 1, got 0"):
        CameraMotionCompensation(downscale=0)
    with pytest.raises(ValueError, match="max_corners: expected a positive number"):
        CameraMotionCompensation(max_corners=0)
    img = textured(channels=1)
    with pytest.raises(ValueError, match=r"boxes_xyxy: expected shape \(N, 4\)"):
        CameraMotionCompensation()(img, img, np.zeros((2, 3)))


def test_camera_pan_kept_by_motion_tracker_with_gmc() -> None:
    # Static objects filmed by a camera that pans 2 px/frame and jumps 60 px once: the crop window moves right,
    # so everything in view moves left.
    canvas = textured(480, 900, seed=1)
    offsets = [2 * i + (60 if i >= 8 else 0) for i in range(16)]
    world = [(300.0, 200.0), (420.0, 260.0), (520.0, 180.0)]
    byte = ByteTracker()
    motion = MotionTracker(CameraMotionCompensation("sparse", 2), kalman_weight=1.0)
    byte_ids, motion_ids = [], []
    for off in offsets:
        frame = np.ascontiguousarray(canvas[:, off : off + 640])
        dets = np.array([[x - off - 20, y - 50, x - off + 20, y + 50] for x, y in world])
        scores = np.full(3, 0.9)
        byte_ids.append(sorted(byte.update(dets, scores).ids.tolist()))
        motion_ids.append(sorted(motion.update(dets, scores, frame=frame).ids.tolist()))
    assert all(ids == [1, 2, 3] for ids in motion_ids)
    assert byte_ids[7] == [1, 2, 3] and byte_ids[-1] == [4, 5, 6]
