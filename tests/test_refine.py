"""Photometric refinement (mmtrack_corr.refine): recovers known sub-pixel motion, keeps what it cannot see, and
refuses bad arguments by name."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from mmtrack_corr.photos import HELDOUT_PHOTOS, load_photo
from mmtrack_corr.refine import (
    MAX_STEP,
    box_pyramid,
    box_residual,
    box_structure,
    box_texture,
    grey_image,
    image_gradients,
    refine_boxes,
    refine_flow,
)


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


def _one_step_per_cell(first: torch.Tensor, second: torch.Tensor, coarse: torch.Tensor, stride: int) -> torch.Tensor:
    """One refine_flow step written out cell by cell in float64, from the module docstring's equations: the window's
    in-frame pixels, G = grad I1 + warped grad I2, the brightness offset eliminated, Tikhonov 4 lam n, step 2 x the
    solution in G, clipped; a window with fewer than half its pixels in the frame keeps its value."""
    from mmtrack_corr.refine import LAMBDA, WINDOW

    f1, f2, cells = first.double(), second.double(), coarse.double()
    _, _, h, w = f1.shape
    rows, cols = h // stride, w // stride
    dense = torch.nn.functional.interpolate(cells, size=(h, w), mode="bilinear", align_corners=False)[0]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    gx = (2 * (xs + dense[0]) + 1) / w - 1
    gy = (2 * (ys + dense[1]) + 1) / h - 1
    grid = torch.stack([gx, gy], -1)[None]
    frame2 = torch.cat([f2, image_gradients(f2)], 1)
    warped = torch.nn.functional.grid_sample(frame2, grid, padding_mode="border", align_corners=False)[0]
    inside = (gx.abs() < 1) & (gy.abs() < 1)
    big_g = image_gradients(f1)[0] + warped[1:]
    resid = warped[0] - f1[0, 0]
    out = cells.clone()
    reach = WINDOW // 2
    for i in range(rows):
        for j in range(cols):
            i0, i1, j0, j1 = max(i - reach, 0), min(i + reach + 1, rows), max(j - reach, 0), min(j + reach + 1, cols)
            sl = (slice(i0 * stride, i1 * stride), slice(j0 * stride, j1 * stride))
            keep = inside[sl]
            g = big_g[:, sl[0], sl[1]][:, keep]  # (2, n) in-frame pixels of the window
            r = resid[sl][keep]
            pixels = (i1 - i0) * (j1 - j0) * stride * stride
            n = keep.sum().item()
            if n < 0.5 * pixels:
                continue
            gc, rc = g - g.mean(1, keepdim=True), r - r.mean()  # the offset c eliminated
            a = gc @ gc.T / pixels + 4 * LAMBDA * n / pixels * torch.eye(2, dtype=torch.float64)
            b = gc @ rc / pixels
            step = -2 * torch.linalg.solve(a, b)
            out[0, :, i, j] += step.clamp(-MAX_STEP, MAX_STEP)
    return out


@pytest.mark.parametrize(("dx", "dy"), [(1.2, -0.7), (-3.5, 2.0)])
def test_one_refine_step_equals_the_equations_written_per_cell(dx: float, dy: float) -> None:
    # independent of how the module batches its sums; a pair moved out of the frame at the borders exercises the
    # in-frame mask and the half-window rule
    first, second = _pair(dx, dy, h=48, w=64)
    rng = np.random.default_rng(1)
    coarse = torch.from_numpy(rng.uniform(-2, 2, (1, 2, 6, 8)).astype(np.float32)) + torch.tensor([dx, dy]).view(
        1, 2, 1, 1
    )
    coarse[0, 0, :, -1] = 30.0  # the last column samples outside the frame: fewer than half its pixels in
    ours = refine_flow(first, second, coarse, 8, iters=1)
    ref = _one_step_per_cell(first, second, coarse, 8)
    assert torch.equal(ours[0, 0, :, -1], coarse[0, 0, :, -1])
    torch.testing.assert_close(ours.double(), ref, atol=2e-4, rtol=0)


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


# ---------------------------------------------------------------------------------------------------- per box
def _warped(matrix: np.ndarray, h: int = 128, w: int = 192):
    """A held-out photograph and its image under the 2x3 affine ``matrix`` (frame-1 pixel -> frame-2 pixel, pixel
    centres at integer + 0.5), as (1, 1, H, W) grey in [0, 1]."""
    photo = load_photo(HELDOUT_PHOTOS[1])
    y0, x0 = (photo.shape[0] - h) // 2, (photo.shape[1] - w) // 2
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    crop = np.ascontiguousarray(grey[y0 : y0 + h, x0 : x0 + w])
    # cv2 maps pixel indices; with centres at i + 0.5 the same affine map shifts by (A - I) @ (0.5, 0.5)
    m = matrix.astype(np.float64).copy()
    m[:, 2] += (m[:, :2] - np.eye(2)) @ np.array([0.5, 0.5])
    second = cv2.warpAffine(crop, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return torch.from_numpy(crop)[None, None], torch.from_numpy(second)[None, None]


_BOX = torch.tensor([[40.0, 30.0, 140.0, 100.0], [70.0, 50.0, 110.0, 90.0]], dtype=torch.float64)


@pytest.mark.parametrize(("dx", "dy"), [(1.4, -0.7), (-4.6, 3.2)])
def test_a_box_started_pixels_off_comes_back_to_the_true_translation(dx: float, dy: float) -> None:
    first, second = _warped(np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]))
    start = torch.tensor([[dx, dy]], dtype=torch.float64) + torch.tensor([[2.5, -2.0], [-2.0, -2.5]])
    fit = refine_boxes(first, second, _BOX, start)
    assert fit.displacements.dtype == torch.float64
    err = (fit.displacements - torch.tensor([dx, dy], dtype=torch.float64)).norm(dim=1)
    assert float(err.max()) < 0.1, err
    assert float(fit.affine.abs().max()) < 0.1  # no zoom or rotation to find
    assert bool((fit.residual < box_residual(first, second, _BOX, start)).all())


def test_under_a_zoom_the_affine_fit_returns_the_box_centre_motion() -> None:
    # 5 % zoom and a small rotation about (20, 10): over a 100 px box the motion varies by ~5 px
    a = np.array([[1.05, -0.02], [0.02, 1.05]])
    centre = np.array([20.0, 10.0])
    matrix = np.concatenate([a, (centre - a @ centre)[:, None]], axis=1)
    first, second = _warped(matrix)
    centres = ((_BOX[:, :2] + _BOX[:, 2:]) / 2).numpy()
    truth = centres @ a.T + matrix[:, 2] - centres  # the mean motion over a box = the motion of its centre
    fit = refine_boxes(first, second, _BOX, torch.zeros(2, 2, dtype=torch.float64))
    np.testing.assert_allclose(fit.displacements.numpy(), truth, atol=0.1)
    half = ((_BOX[:, 2:] - _BOX[:, :2]) / 2).numpy()
    expected_linear = (a - np.eye(2))[None] * half[:, None, :]  # per box-normalised offset
    np.testing.assert_allclose(fit.affine.numpy(), expected_linear, atol=0.15)


def test_box_brightness_offset_is_absorbed_and_steps_are_clipped() -> None:
    first, second = _warped(np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]))
    fit = refine_boxes(first, second + 0.07, _BOX, torch.zeros(2, 2))
    np.testing.assert_allclose(fit.displacements.numpy(), [[2.0, -1.0]] * 2, atol=0.1)
    one = refine_boxes(first, second, _BOX, torch.full((2, 2), 12.0), steps=(1,))
    assert float((one.displacements - 12.0).abs().max()) <= MAX_STEP + 1e-5
    start = torch.randn(2, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(refine_boxes(first, second, _BOX, start, steps=(0, 0)).displacements, start)


def test_a_box_outside_the_frame_keeps_its_start_and_has_no_residual() -> None:
    first, second = _warped(np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))
    boxes = torch.tensor([[300.0, 300.0, 340.0, 350.0], [40.0, 30.0, 140.0, 100.0]])
    start = torch.tensor([[3.0, -2.0], [0.0, 0.0]])
    fit = refine_boxes(first, second, boxes, start)
    assert torch.equal(fit.displacements[0], start[0]) and math.isinf(float(fit.residual[0]))
    assert math.isfinite(float(fit.residual[1]))
    empty = refine_boxes(first, second, torch.zeros(0, 4), torch.zeros(0, 2))
    assert empty.displacements.shape == (0, 2) and empty.residual.shape == (0,)


def test_box_residual_is_smallest_at_the_true_motion() -> None:
    first, second = _warped(np.array([[1.0, 0.0, 3.0], [0.0, 1.0, -2.0]]))
    right = box_residual(first, second, _BOX, torch.tensor([[3.0, -2.0]] * 2))
    wrong = box_residual(first, second, _BOX, torch.tensor([[0.0, 0.0]] * 2))
    assert bool((right * 20 < wrong).all()), (right, wrong)
    assert float(box_residual(first, first + 0.1, _BOX, torch.zeros(2, 2)).max()) < 1e-10  # offset removed


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"image1": torch.zeros(2, 1, 32, 32)}, r"image1: expected a \(1, 1, H, W\)", id="batch"),
        pytest.param({"image2": torch.zeros(1, 1, 32, 40)}, r"image2: expected the shape of image1", id="image2"),
        pytest.param({"boxes": torch.zeros(3, 5)}, r"boxes: expected shape \(N, 4\)", id="boxes"),
        pytest.param({"displacements": torch.zeros(2, 2)}, r"displacements: expected shape \(3, 2\)", id="disp"),
        pytest.param({"affine": torch.zeros(3, 2)}, r"affine: expected shape \(3, 2, 2\)", id="affine"),
        pytest.param(
            {"displacements": torch.tensor([[0.0, 0.0], [float("nan"), 1.0], [0.0, 0.0]])},
            r"displacements: expected finite values, got NaN or inf in rows \[1\]",
            id="disp_nan",
        ),
        pytest.param(
            {"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]] * 2 + [[0.0, 0.0, float("inf"), 4.0]])},
            r"boxes: expected finite values, got NaN or inf in rows \[2\]",
            id="boxes_inf",
        ),
        pytest.param({"steps": ()}, "steps: expected a non-empty tuple", id="steps_empty"),
        pytest.param({"steps": (2, -1)}, "steps: expected a non-empty tuple", id="steps_negative"),
        pytest.param({"steps": [2, 3]}, "steps: expected a non-empty tuple", id="steps_list"),
        pytest.param({"samples": 1}, "samples: expected an int >= 2", id="samples"),
        pytest.param({"lam_affine": -1.0}, "lam_affine: expected a finite number > 0", id="lam_affine"),
        pytest.param({"max_step": float("inf")}, "max_step: expected a finite number > 0", id="max_step"),
        pytest.param({"pyramid1": (torch.zeros(1, 3, 32, 32),)}, r"pyramid1: expected box_pyramid\(\)", id="levels"),
        pytest.param({"pyramid2": [torch.zeros(1, 3, 16, 16)] * 2}, r"pyramid2: .* shapes", id="pyramid_shape"),
    ],
)
def test_refine_boxes_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    args = {
        "image1": torch.zeros(1, 1, 32, 32),
        "image2": torch.zeros(1, 1, 32, 32),
        "boxes": torch.zeros(3, 4),
        "displacements": torch.zeros(3, 2),
    }
    args.update(kwargs)
    image1, image2, boxes, disp = (args.pop(k) for k in ("image1", "image2", "boxes", "displacements"))
    with pytest.raises(ValueError, match=match):
        refine_boxes(image1, image2, boxes, disp, **args)


def test_given_pyramids_give_the_same_fit_and_box_pyramid_checks_its_arguments() -> None:
    first, second = _warped(np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]))
    plain = refine_boxes(first, second, _BOX, torch.zeros(2, 2))
    pyr1, pyr2 = box_pyramid(first, 3, gradients=image_gradients(first)), box_pyramid(second, 3)
    given = refine_boxes(first, second, _BOX, torch.zeros(2, 2), pyramid1=pyr1, pyramid2=pyr2)
    assert torch.equal(plain.displacements, given.displacements)
    assert tuple(pyr1[2].shape) == (1, 3, 32, 48)
    torch.testing.assert_close(pyr1[1][:, :1], torch.nn.functional.avg_pool2d(first, 2))
    with pytest.raises(ValueError, match=r"levels: expected an int >= 1"):
        box_pyramid(first, 0)
    with pytest.raises(ValueError, match=r"image: expected a \(1, 1, H, W\) grey image"):
        box_pyramid(torch.zeros(1, 3, 8, 8))


# ---------------------------------------------------------------------------------------------------- box texture
@pytest.mark.parametrize("count", [40, 100])  # summed box by box / through an integral image (more than 64 boxes)
def test_box_texture_is_the_smaller_eigenvalue_of_the_box_structure_tensor(count: int) -> None:
    first, _ = _pair(0.0, 0.0)
    grads = image_gradients(first)
    rng = np.random.default_rng(0)
    boxes = rng.uniform(-20, 200, size=(count, 4))
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(2, 90, size=(count, 2))
    boxes[-1, 2:] = boxes[-1, :2] - 5.0  # inverted: no pixel
    got = box_texture(grads, torch.from_numpy(boxes)).numpy()
    tensors = box_structure(grads, torch.from_numpy(boxes)).numpy()
    g = grads[0].double().numpy()
    h, w = g.shape[1:]
    for i, box in enumerate(boxes):
        x0, y0, x1, y1 = np.clip(np.round(box), 0, [w, h, w, h]).astype(int)
        if x1 <= x0 or y1 <= y0:
            assert got[i] == math.inf and np.isnan(tensors[i]).all(), box
            continue
        gx, gy = g[0, y0:y1, x0:x1].ravel(), g[1, y0:y1, x0:x1].ravel()
        tensor = np.array([[gx @ gx, gx @ gy], [gx @ gy, gy @ gy]]) / gx.size
        np.testing.assert_allclose(tensors[i], tensor, rtol=1e-9, atol=1e-15)
        assert got[i] == pytest.approx(np.linalg.eigvalsh(tensor)[0], rel=1e-9, abs=1e-15)
    assert (got[np.isfinite(got)] > 3e-5).mean() > 0.5  # a photograph is textured almost everywhere
    if count > 64:  # the integral image agrees with the box-by-box sums
        parts = torch.cat([box_structure(grads, torch.from_numpy(part)) for part in np.array_split(boxes, 2)])
        torch.testing.assert_close(parts, torch.from_numpy(tensors), rtol=1e-9, atol=1e-15, equal_nan=True)


def test_box_texture_is_zero_on_flat_boxes_and_single_edges() -> None:
    image = torch.zeros(1, 1, 64, 96)
    image[..., 40:] = 1.0  # one horizontal edge: motion along it is invisible
    boxes = torch.tensor([[10.0, 5.0, 50.0, 30.0], [10.0, 30.0, 50.0, 50.0], [0.0, 0.0, 96.0, 64.0]])
    got = box_texture(image_gradients(image), boxes)
    assert got.tolist() == [0.0, 0.0, 0.0]
    none = torch.zeros(0, 4)  # no boxes: empty results, not an error
    assert tuple(box_structure(image_gradients(image), none).shape) == (0, 2, 2)
    assert tuple(box_texture(image_gradients(image), none).shape) == (0,)
    image[..., 20:30, 60:70] = 0.5  # a square: two edge directions
    assert box_texture(image_gradients(image), torch.tensor([[55.0, 15.0, 75.0, 35.0]])).item() > 1e-3
    assert box_texture(image_gradients(image), torch.tensor([[200.0, 0.0, 300.0, 10.0]])).item() == math.inf
    with pytest.raises(ValueError, match=r"gradients: expected \(1, 2, H, W\) image gradients"):
        box_texture(image, boxes)
    with pytest.raises(ValueError, match=r"boxes: expected shape \(N, 4\)"):
        box_texture(image_gradients(image), boxes[:, :3])
    with pytest.raises(ValueError, match=r"gradients: expected \(1, 2, H, W\) image gradients"):
        box_structure(image, boxes)


def test_inputs_that_require_grad_are_accepted_and_the_results_are_detached() -> None:
    # the refinements are fixed solvers (no parameters): no gradient flows through them, and tensors that require
    # grad (a head's output during training, say) give the same numbers as detached ones instead of an error
    first, second = _pair(1.3, -0.6)
    coarse = torch.zeros(1, 2, 16, 24)
    field = refine_flow(first, second, coarse.clone().requires_grad_(True), 8)
    assert not field.requires_grad
    assert torch.equal(field, refine_flow(first, second, coarse, 8))
    boxes, start = torch.tensor([[40.0, 30.0, 150.0, 100.0]]), torch.zeros(1, 2)
    fit = refine_boxes(first, second, boxes, start.clone().requires_grad_(True))
    assert not fit.displacements.requires_grad and not fit.affine.requires_grad
    assert torch.equal(fit.displacements, refine_boxes(first, second, boxes, start).displacements)


def test_an_enclosing_autocast_does_not_reach_the_solvers() -> None:
    # under bf16 autocast (a caller's mixed-precision inference) the solvers still compute in their inputs' float32:
    # the same numbers as without autocast, bit for bit (the box fit's batched products ran in bf16 before)
    first, second = _warped(np.array([[1.0, 0.0, 2.3], [0.0, 1.0, -1.4]]))
    coarse = torch.zeros(1, 2, 16, 24)
    boxes, start = _BOX.float(), torch.zeros(2, 2)
    plain_field = refine_flow(first, second, coarse, 8)
    plain_fit = refine_boxes(first, second, boxes, start)
    plain_residual = box_residual(first, second, boxes, start)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        field = refine_flow(first, second, coarse, 8)
        fit = refine_boxes(first, second, boxes, start)
        residual = box_residual(first, second, boxes, start)
    assert field.dtype == fit.displacements.dtype == torch.float32
    assert torch.equal(field, plain_field) and torch.equal(residual, plain_residual)
    assert torch.equal(fit.displacements, plain_fit.displacements) and torch.equal(fit.affine, plain_fit.affine)
