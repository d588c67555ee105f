"""Photometric refinement (mmtrack_corr.refine): recovers known sub-pixel motion, keeps what it cannot see, and
refuses bad arguments by name."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mmtrack_corr.photos import HELDOUT_PHOTOS, load_photo
from mmtrack_corr.refine import MAX_STEP, grey_image, image_gradients, refine_flow


def _pair(dx: float, dy: float, h: int = 128, w: int = 192, gain: float = 1.0, offset: float = 0.0):
    """A held-out photograph and its copy moved by (dx, dy) (bilinear), as (1, 1, H, W) grey in [0, 1]."""
    photo = load_photo(HELDOUT_PHOTOS[0])
    y0, x0 = (photo.shape[0] - h) // 2, (photo.shape[1] - w) // 2
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    first = cv2.warpAffine(grey, np.float32([[1, 0, -x0], [0, 1, -y0]]), (w, h), flags=cv2.INTER_LINEAR)
    second = cv2.warpAffine(grey, np.float32([[1, 0, -x0 + dx], [0, 1, -y0 + dy]]), (w, h), flags=cv2.INTER_LINEAR)
    second = second * gain + offset
    return torch.from_numpy(first)[None, None], torch.from_numpy(second)[None, None]


def _inner(flow: torch.Tensor) -> torch.Tensor:
    """The cells at least two cells from the border (their windows see no pixel leaving the frame)."""
    return flow[0, :, 2:-2, 2:-2]


@pytest.mark.parametrize(("dx", "dy"), [(1.3, -0.6), (-2.4, 3.1), (6.0, 0.0)])
def test_a_coarse_field_off_by_pixels_comes_back_to_the_true_translation(dx: float, dy: float) -> None:
    first, second = _pair(dx, dy)
    # a head's error: up to 1.5 px, varying smoothly over the frame
    knots = torch.from_numpy(np.random.default_rng(0).uniform(-1.5, 1.5, (1, 2, 3, 4)).astype(np.float32))
    noise = torch.nn.functional.interpolate(knots, size=(16, 24), mode="bilinear", align_corners=True)
    coarse = torch.tensor([dx, dy]).view(1, 2, 1, 1) + noise
    refined = refine_flow(first, second, coarse, 8, iters=4)
    err = (_inner(refined) - torch.tensor([dx, dy]).view(2, 1, 1)).norm(dim=0)
    before = (_inner(coarse) - torch.tensor([dx, dy]).view(2, 1, 1)).norm(dim=0)
    assert float(before.median()) > 0.5
    assert float(err.median()) < 0.25, float(err.median())
    assert float(err.mean()) < 0.5 * float(before.mean())


def test_brightness_change_between_frames_is_absorbed() -> None:
    first, second = _pair(1.5, -1.0, gain=1.0, offset=0.08)  # the whole frame 8 grey levels in 100 brighter
    refined = refine_flow(first, second, torch.zeros(1, 2, 16, 24), 8, iters=4)
    err = (_inner(refined) - torch.tensor([1.5, -1.0]).view(2, 1, 1)).norm(dim=0)
    assert float(err.median()) < 0.25


def test_a_textureless_cell_keeps_its_learned_value() -> None:
    flat = torch.full((1, 1, 64, 64), 0.5)
    coarse = torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(refine_flow(flat, flat, coarse, 8), coarse)


def test_each_step_is_clipped_and_zero_steps_change_nothing() -> None:
    first, second = _pair(0.0, 0.0)
    coarse = torch.full((1, 2, 16, 24), 10.0)  # 10 px off: far outside where a linearisation holds
    one = refine_flow(first, second, coarse, 8, iters=1)
    assert float((one - coarse).abs().max()) <= MAX_STEP + 1e-6
    assert refine_flow(first, second, coarse, 8, iters=0) is coarse


def test_dtypes_batches_and_the_gradients_argument() -> None:
    first, second = _pair(1.0, 0.5)
    coarse = torch.zeros(1, 2, 16, 24)
    ref = refine_flow(first, second, coarse, 8)
    given = refine_flow(first, second, coarse, 8, gradients1=image_gradients(first))
    assert torch.equal(ref, given)
    double = refine_flow(first.double(), second.double(), coarse.double(), 8)
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), ref, atol=1e-3, rtol=0)
    half = refine_flow(first, second, coarse.bfloat16(), 8)
    assert half.dtype == torch.bfloat16
    batch = refine_flow(torch.cat([first, second]), torch.cat([second, first]), torch.zeros(2, 2, 16, 24), 8)
    torch.testing.assert_close(batch[:1], ref)
    assert float(_inner(batch[1:]).mean(dim=(1, 2))[0]) < -0.9  # the reverse pair moves left


def test_grey_image_weights() -> None:
    rgb = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert float(grey_image(rgb)) == pytest.approx(0.299)
    with pytest.raises(ValueError, match=r"rgb: expected shape \(B, 3, H, W\)"):
        grey_image(torch.zeros(1, 1, 4, 4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"image2": torch.zeros(1, 1, 32, 40)}, r"image2: expected the shape of image1", id="image2"),
        pytest.param({"image1": torch.zeros(1, 3, 32, 32), "image2": torch.zeros(1, 3, 32, 32)}, "image1", id="rgb"),
        pytest.param({"flow": torch.zeros(1, 2, 8, 8)}, r"flow: expected shape \(1, 2, 4, 4\)", id="flow_shape"),
        pytest.param({"stride": 0}, "stride: expected an int >= 1", id="stride"),
        pytest.param({"stride": 5}, r"flow: expected shape .* cells of 5 px", id="stride_not_dividing"),
        pytest.param({"iters": -1}, "iters: expected an int >= 0", id="iters_negative"),
        pytest.param({"iters": True}, "iters: expected an int >= 0", id="iters_bool"),
        pytest.param({"window": 2}, "window: expected an odd int", id="window_even"),
        pytest.param({"lam": 0.0}, "lam: expected a finite number > 0", id="lam"),
        pytest.param({"max_step": float("nan")}, "max_step: expected a finite number > 0", id="max_step"),
        pytest.param({"gradients1": torch.zeros(1, 2, 8, 8)}, r"gradients1: expected shape", id="gradients"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    args = {"image1": torch.zeros(1, 1, 32, 32), "image2": torch.zeros(1, 1, 32, 32), "flow": torch.zeros(1, 2, 4, 4)}
    args["stride"] = 8
    args.update(kwargs)
    image1, image2, flow, stride = (args.pop(k) for k in ("image1", "image2", "flow", "stride"))
    with pytest.raises(ValueError, match=match):
        refine_flow(image1, image2, flow, stride, **args)
