"""Photometric refinement of a head's motion on the frames: Lucas-Kanade steps per cell of its field
(:func:`refine_flow`) and an affine fit per box (:func:`refine_boxes`).

The heads regress motion per stride-8 (or stride-32) cell from cost volumes of coarse features; whatever the size
of the motion, what they return is off by a pixel or so of the working image (sub-cell regression from 81
similarities). The frames themselves pin the motion of a textured cell far more precisely, but only near the answer:
a Lucas-Kanade step converges from within a pixel or two, and cannot find a 40-pixel camera pan on its own. The two
are complementary: the learned field supplies the large displacements, then a few Gauss-Newton steps of the
brightness-constancy residual, pooled over each cell's neighbourhood, remove the regression error.

Per step, with ``I1`` the previous frame, ``I2w`` the current one warped by the current field ``u`` (bilinear) and
``g = (grad I1 + warped grad I2) / 2`` (the efficient second-order minimisation's gradient: it converges in a step or
two where ``grad I1`` alone undershoots on fine texture): over the pixels of a window of ``window x window`` cells
around each cell (pixels whose warped position lies inside the frame), minimise
``sum (I2w - I1 + g . d + c)^2 + lam * n * |d|^2`` over the update ``d`` and a brightness offset ``c`` (frames whose
exposure changes). Eliminating ``c`` leaves a 2x2 system per cell, solved in closed form; ``lam`` (per pixel, grey
levels in [0, 1]) keeps a textureless cell at its learned value, and each step is clipped to ``max_step`` pixels, so
a cell whose linearisation is wrong (occlusion, a boundary between two motions) cannot run away.

What it cannot do: a window measures one motion, the average over its pixels, so an error of the field that changes
from cell to cell within a window is averaged, not removed (the heads' errors are smooth; a boundary between two
motions stays as sharp as the head made it, since each cell keeps its own value plus its window's correction).

Per box (:func:`refine_boxes`), the same residual over sample points spanning the box, with an affine motion about
the box centre (six parameters and the offset), coarse to fine over a two-level pyramid: the whole box in one fit,
and a box displacement that is the mean motion of its pixels even where the motion varies over the box. It starts
from the field's box average and converges from a few pixels; a box whose start is 20 px off stays off.

Everything is plain PyTorch on the field's device; no parameters, no training.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple, ParamSpec, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "BOX_SAMPLES",
    "BOX_STEPS",
    "LAMBDA",
    "LAMBDA_AFFINE",
    "MAX_STEP",
    "WINDOW",
    "BoxFit",
    "box_pyramid",
    "box_residual",
    "box_structure",
    "box_texture",
    "grey_image",
    "image_gradients",
    "refine_boxes",
    "refine_flow",
]

#: Tikhonov weight per pixel (grey levels in [0, 1]): a cell needs gradient energy above ~1e-5 per pixel to move.
LAMBDA = 1e-5
#: Largest update of one step, per axis, in image pixels.
MAX_STEP = 2.0
#: Window side in cells: each cell's update pools the pixels of its ``WINDOW x WINDOW`` neighbourhood of cells.
WINDOW = 3
_MIN_VALID = 0.5  # a cell whose window has less than half its pixels inside the frame after warping keeps its value
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _without_autocast(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``fn`` with autocast off (CPU and CUDA): the photometric solvers work in their inputs' precision (float32
    for half-precision fields), never in the bfloat16 / float16 matrix products an enclosing autocast would pick
    (under CPU bf16 autocast without it, the default estimator's error on 8 slow held-out pairs was 2.760 px against
    2.741 in float32; with it, 2.741)."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            return fn(*args, **kwargs)

    return wrapper


def grey_image(rgb: Tensor) -> Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) luma (ITU-R BT.601 weights), same dtype and range.

    Example:
        >>> grey_image(torch.ones(1, 3, 2, 2)).flatten().tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb: expected shape (B, 3, H, W), got {tuple(rgb.shape)}")
    return 0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]


def image_gradients(image: Tensor) -> Tensor:
    """Central differences of a (B, 1, H, W) image: (B, 2, H, W), (d/dx, d/dy); zero on the outermost pixels.

    Example:
        >>> image_gradients(torch.arange(4.0).view(1, 1, 1, 4))[0].tolist()
        [[[0.0, 1.0, 1.0, 0.0]], [[0.0, 0.0, 0.0, 0.0]]]
    """
    out = image.new_zeros(image.shape[0], 2, *image.shape[2:])
    out[:, 0:1, :, 1:-1] = (image[..., :, 2:] - image[..., :, :-2]) * 0.5
    out[:, 1:2, 1:-1, :] = (image[..., 2:, :] - image[..., :-2, :]) * 0.5
    return out


def _base_grid(height: int, width: int, like: Tensor) -> Tensor:
    """(1, H, W, 2) ``grid_sample`` coordinates (align_corners=False) of every pixel centre: ``(2x + 1) / W - 1``."""
    xs = (2.0 * torch.arange(width, dtype=like.dtype, device=like.device) + 1.0) / width - 1.0
    ys = (2.0 * torch.arange(height, dtype=like.dtype, device=like.device) + 1.0) / height - 1.0
    return torch.stack([xs.view(1, width).expand(height, width), ys.view(height, 1).expand(height, width)], -1)[None]


def _warp(image: Tensor, cells: Tensor, base: Tensor, to_grid: Tensor) -> tuple[Tensor, Tensor]:
    """Backward-warp ``image`` by the bilinearly upsampled cell field: ``out[y, x] = image[y + dy, x + dx]``, and the
    (B, H, W, 2) sampling grid (a pixel's sample lies inside the image where both its coordinates are inside
    (-1, 1)). ``base``: :func:`_base_grid` of the image; ``to_grid``: (1, 2, 1, 1) pixels -> grid units,
    ``(2 / W, 2 / H)``."""
    _, _, height, width = image.shape
    dense = F.interpolate(cells * to_grid, size=(height, width), mode="bilinear", align_corners=False)
    grid = dense.permute(0, 2, 3, 1) + base  # flow in grid units, added to the pixel centres
    warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return warped, grid


@_without_autocast
@torch.no_grad()
def refine_flow(
    image1: Tensor,
    image2: Tensor,
    flow: Tensor,
    stride: int,
    *,
    iters: int = 3,
    lam: float = LAMBDA,
    window: int = WINDOW,
    max_step: float = MAX_STEP,
    gradients1: Tensor | None = None,
    gradients2: Tensor | None = None,
) -> Tensor:
    """Refine a coarse field, one value per ``stride x stride`` cell, with Lucas-Kanade steps on the two frames.

    Args:
        image1: frame t-1, (B, 1, H, W) grey, levels in [0, 1] (:func:`grey_image`).
        image2: frame t, same shape.
        flow: (dx, dy) from frame t-1 to frame t in pixels of the images, per cell, shape (B, 2, H / stride,
            W / stride); cell (i, j) covers pixels [i*stride, (i+1)*stride) x [j*stride, (j+1)*stride) (a head's
            ``MotionOutput.flow`` on the images it was computed from).
        stride: image pixels per cell.
        iters: Gauss-Newton steps (0 returns ``flow`` unchanged).
        lam: Tikhonov weight per pixel toward the current value (> 0).
        window: odd window side in cells.
        max_step: per-step clip of each component, pixels (> 0).
        gradients1: :func:`image_gradients` of ``image1`` when already computed (a video's frame is the previous
            frame of the next pair).
        gradients2: the same for ``image2``.

    Returns:
        The refined field, same shape and dtype as ``flow``. No gradient flows through the refinement (a fixed
        photometric solver, run under ``torch.no_grad``): inputs that require grad are accepted and the result is
        detached.

    Raises:
        ValueError: shapes that do not match, ``H`` or ``W`` not ``stride`` times the field's, or bad
            ``iters`` / ``lam`` / ``window`` / ``max_step`` / ``gradients1`` / ``gradients2``.

    Example:
        >>> yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
        >>> def frame(sx, sy):  # a texture moved by (sx, sy)
        ...     return (0.5 + 0.2 * torch.sin((xx - sx) / 5) + 0.2 * torch.cos((yy - sy) / 4)).view(1, 1, 64, 64)
        >>> coarse = torch.zeros(1, 2, 8, 8)  # a head that saw no motion; the truth is (1.5, -1.0)
        >>> refined = refine_flow(frame(0.0, 0.0), frame(1.5, -1.0), coarse, 8)
        >>> [round(v, 1) for v in refined[0, :, 2:6, 2:6].mean(dim=(1, 2)).tolist()]
        [1.5, -1.0]
    """
    if image1.dim() != 4 or image1.shape[1] != 1:
        raise ValueError(f"image1: expected a (B, 1, H, W) grey image, got {tuple(image1.shape)}")
    if image2.shape != image1.shape:
        raise ValueError(f"image2: expected the shape of image1 {tuple(image1.shape)}, got {tuple(image2.shape)}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride: expected an int >= 1, got {stride!r}")
    batch, _, height, width = image1.shape
    want = (batch, 2, height // stride, width // stride)
    if height % stride or width % stride or flow.dim() != 4 or tuple(flow.shape) != want:
        raise ValueError(
            f"flow: expected shape {want} (images {height}x{width} in cells of {stride} px), got {tuple(flow.shape)}"
        )
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ValueError(f"iters: expected an int >= 0, got {iters!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ValueError(f"window: expected an odd int >= 1, got {window!r}")
    for name, value in (("lam", lam), ("max_step", max_step)):
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    for name, grad in (("gradients1", gradients1), ("gradients2", gradients2)):
        if grad is not None and tuple(grad.shape) != (batch, 2, height, width):
            raise ValueError(f"{name}: expected shape {(batch, 2, height, width)}, got {tuple(grad.shape)}")
    if iters == 0:
        return flow
    dtype = torch.float32 if flow.dtype in (torch.float16, torch.bfloat16) else flow.dtype
    i1 = image1.to(dtype)
    grad1 = (image_gradients(image1) if gradients1 is None else gradients1).to(dtype)
    grad2 = (image_gradients(image2) if gradients2 is None else gradients2).to(dtype)
    frame2 = torch.cat([image2.to(dtype), grad2], dim=1)  # warped together: one sampling per step
    cells = flow.to(dtype).contiguous()  # a head's channels-last field would make every upsampling ~4x slower
    base = _base_grid(height, width, cells)
    to_grid = torch.tensor([2.0 / width, 2.0 / height], dtype=dtype, device=cells.device).view(1, 2, 1, 1)
    # per pixel v = inside * (Gx, Gy, residual) with G = grad I1 + warped grad I2 (twice the ESM gradient: the factor
    # 2 is undone below) and the products the 2x2 system needs, all in one buffer whose cell averages are one
    # average pooling: (Gx Gx, Gx Gy, Gx r, Gy Gy, Gy r, Gx, Gy, r, inside); v is channels 5-7, the mask channel 8
    prods = i1.new_empty(batch, 9, height, width)
    v, inside = prods[:, 5:8], prods[:, 8:9]
    for _ in range(iters):
        warped, grid = _warp(frame2, cells, base, to_grid)
        torch.lt(grid.abs().amax(dim=-1, keepdim=True).permute(0, 3, 1, 2), 1.0, out=inside)  # sample in the image
        torch.add(grad1, warped[:, 1:], out=v[:, :2])
        torch.sub(warped[:, :1], i1, out=v[:, 2:])
        v.mul_(inside)
        torch.mul(v[:, 0:1], v, out=prods[:, 0:3])
        torch.mul(v[:, 1:2], v[:, 1:], out=prods[:, 3:5])
        sums = F.avg_pool2d(prods, stride)  # per cell (the mean over its stride x stride pixels)
        if window > 1:  # then over the window of cells
            sums = F.avg_pool2d(sums, window, 1, window // 2, count_include_pad=False)
        sxx, sxy, sxt, syy, syt, sx, sy, st, n = sums.unbind(1)
        count = n.clamp(min=1e-6)
        # eliminate the brightness offset c: centre the sums (a covariance, positive semi-definite); with G = 2g the
        # sums of G G are 4x those of g g, so the Tikhonov term is 4 lam and the solution in G is half the step
        axx = sxx - sx * sx / count + 4.0 * lam * n
        axy = sxy - sx * sy / count
        ayy = syy - sy * sy / count + 4.0 * lam * n
        bx = sxt - sx * st / count
        by = syt - sy * st / count
        det = (axx * ayy - axy * axy).clamp(min=1e-20)
        step = torch.stack([(axy * by - ayy * bx) / det, (axy * bx - axx * by) / det], dim=1) * 2.0
        step = step.clamp(-max_step, max_step) * (n >= _MIN_VALID).unsqueeze(1).to(dtype)
        cells = cells + step
    return cells.to(flow.dtype)


# ---------------------------------------------------------------------------------------------------- per box
#: Gauss-Newton steps of :func:`refine_boxes` per pyramid level, coarsest (half resolution) first.
BOX_STEPS = (2, 3)
#: Sample points per box side in :func:`refine_boxes` and :func:`box_residual`.
BOX_SAMPLES = 20
#: Tikhonov weight per sample on the affine part of :func:`refine_boxes` (pixels of displacement per half box).
LAMBDA_AFFINE = 1e-4
_STRUCTURE_DIRECT_BOXES = 64  # box_structure sums up to this many boxes box by box, more through an integral image
_BOX_MIN_VALID = 0.25  # a box with fewer of its samples inside both frames keeps its value (and has no residual)


class BoxFit(NamedTuple):
    """Per-box motion from :func:`refine_boxes`: an affine motion about each box centre.

    Attributes:
        displacements: (N, 2) ``(dx, dy)`` of the box centre, image pixels.
        affine: (N, 2, 2) the linear part: the motion at box-normalised offset ``X`` (``-1..1`` from the centre to
            the edges, per axis) is ``displacements + affine @ X``.
        residual: (N,) mean squared photometric residual over the box after the fit, brightness offset removed
            (:func:`box_residual`); ``inf`` where fewer than a quarter of the samples lie inside both frames.
    """

    displacements: Tensor
    affine: Tensor
    residual: Tensor


def _box_offsets(boxes: Tensor, samples: int) -> tuple[Tensor, Tensor]:
    """Sample points of each box (N, S*S, 2), image pixels, and their box-normalised offsets X (N, S*S, 2) in
    (-1, 1): an S x S grid of cell centres spanning the box (continuous coordinates, pixel ``j`` covers [j, j+1))."""
    k = (2.0 * torch.arange(samples, dtype=boxes.dtype, device=boxes.device) + 1.0) / samples - 1.0
    offsets = torch.stack(
        [k.view(1, samples).expand(samples, samples), k.view(samples, 1).expand(samples, samples)], -1
    )
    offsets = offsets.reshape(1, samples * samples, 2)
    centre = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2
    half = (boxes[:, None, 2:] - boxes[:, None, :2]) / 2
    return centre + half * offsets, offsets.expand(boxes.shape[0], -1, -1)


def _sample(image: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
    """Bilinear samples of a (1, C, H, W) image at (N, P, 2) pixel positions: (C, N, P), and (N, P) 1.0 where the
    position lies inside the image."""
    _, _, height, width = image.shape
    grid = points * torch.tensor([2.0 / width, 2.0 / height], dtype=points.dtype, device=points.device) - 1.0
    inside = (grid.abs().amax(dim=-1) < 1.0).to(image.dtype)
    out = F.grid_sample(image, grid[None].to(image.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    return out[0], inside


def _check_box_inputs(
    image1: Tensor, image2: Tensor, boxes: Tensor, displacements: Tensor, affine: Tensor | None
) -> None:
    if image1.dim() != 4 or image1.shape[:2] != (1, 1):
        raise ValueError(f"image1: expected a (1, 1, H, W) grey image, got {tuple(image1.shape)}")
    if image2.shape != image1.shape:
        raise ValueError(f"image2: expected the shape of image1 {tuple(image1.shape)}, got {tuple(image2.shape)}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes: expected shape (N, 4), got {tuple(boxes.shape)}")
    if tuple(displacements.shape) != (boxes.shape[0], 2):
        raise ValueError(f"displacements: expected shape {(boxes.shape[0], 2)}, got {tuple(displacements.shape)}")
    if affine is not None and tuple(affine.shape) != (boxes.shape[0], 2, 2):
        raise ValueError(f"affine: expected shape {(boxes.shape[0], 2, 2)}, got {tuple(affine.shape)}")
    given = [("boxes", boxes), ("displacements", displacements)] + ([("affine", affine)] if affine is not None else [])
    if not bool(torch.stack([torch.isfinite(value).all() for _, value in given]).all()):  # one sync for all
        for name, value in given:
            bad = (~torch.isfinite(value.reshape(value.shape[0], -1))).any(dim=1).nonzero().flatten().tolist()
            if bad:
                raise ValueError(f"{name}: expected finite values, got NaN or inf in rows {bad[:10]}")


def _halved(image: Tensor) -> Tensor:
    """2x2 averages (``avg_pool2d(image, 2)``: an odd last row or column is dropped), as a reshape and a mean."""
    b, c, h, w = image.shape
    even = image[..., : h // 2 * 2, : w // 2 * 2]
    return even.reshape(b, c, h // 2, 2, w // 2, 2).mean(dim=(3, 5))


@_without_autocast
def box_pyramid(image: Tensor, levels: int = len(BOX_STEPS), gradients: Tensor | None = None) -> tuple[Tensor, ...]:
    """The image pyramid :func:`refine_boxes` samples: per level, finest first, a (1, 3, h, w) float32 tensor of
    the grey image and its :func:`image_gradients`; level ``k`` is the 2x2 average of level ``k - 1``.

    Args:
        image: (1, 1, H, W) grey, levels in [0, 1].
        levels: number of levels (>= 1).
        gradients: :func:`image_gradients` of ``image`` when already computed.

    Returns:
        ``levels`` tensors, full resolution first.

    Example:
        >>> [tuple(t.shape) for t in box_pyramid(torch.zeros(1, 1, 64, 96), 2)]
        [(1, 3, 64, 96), (1, 3, 32, 48)]
    """
    if image.dim() != 4 or image.shape[:2] != (1, 1):
        raise ValueError(f"image: expected a (1, 1, H, W) grey image, got {tuple(image.shape)}")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels: expected an int >= 1, got {levels!r}")
    grey = image.to(torch.float32)
    grads = image_gradients(grey) if gradients is None else gradients.to(torch.float32)
    out = [torch.cat([grey, grads], dim=1)]
    for _ in range(levels - 1):
        grey = _halved(grey)
        out.append(torch.cat([grey, image_gradients(grey)], dim=1))
    return tuple(out)


@_without_autocast
def box_residual(
    image1: Tensor,
    image2: Tensor,
    boxes: Tensor,
    displacements: Tensor,
    affine: Tensor | None = None,
    *,
    samples: int = BOX_SAMPLES,
) -> Tensor:
    """How well a motion explains each box: mean squared difference of the two frames over the box's sample points,
    frame t sampled where the motion moves each point, brightness offset removed (the variance of the difference).

    Args:
        image1: frame t-1, (1, 1, H, W) grey, levels in [0, 1].
        image2: frame t, same shape.
        boxes: (N, 4) xyxy image pixels of frame t-1.
        displacements: (N, 2) motion of each box centre, pixels.
        affine: (N, 2, 2) linear part about the centre (:class:`BoxFit`), or None for a pure translation.
        samples: sample points per box side.

    Returns:
        (N,) residuals, float32 (grey levels squared); ``inf`` where fewer than a quarter of the samples lie inside
        both frames.

    Raises:
        ValueError: shapes that do not match.
    """
    _check_box_inputs(image1, image2, boxes, displacements, affine)
    return _box_residual(image1, image2, boxes, displacements, affine, samples)


@_without_autocast
def box_structure(gradients: Tensor, boxes: Tensor) -> Tensor:
    """Each box's mean structure tensor: the box mean of ``g g^T``, ``g`` the image gradient - the normal matrix of
    a Lucas-Kanade translation fit over the box, per pixel.

    Its eigenvectors are the directions in which the box's pixels pin its motion, and its eigenvalues how firmly:
    both near zero on a flat box, one near zero on a box crossed by a single straight edge or blurred along one
    direction (motion along the edge, or along the blur, is invisible). Image noise sets the floor (central
    differences of noise of standard deviation ``s`` give about ``s^2 / 2`` per axis: 3e-5 for 2 grey levels in 255).
    Up to 64 boxes are summed box by box (cost grows with their area), more through one float64 integral image of
    the frame (a fixed cost: ~5 ms at 352x640 on one core); the two agree to rounding (~1e-12 relative).

    Args:
        gradients: (1, 2, H, W) :func:`image_gradients` of the grey image (levels in [0, 1]).
        boxes: (N, 4) xyxy pixels; corners are rounded to whole pixels (pixel ``j`` covers [j, j+1)) and clipped to
            the image.

    Returns:
        (N, 2, 2) float64, grey levels squared per pixel squared, symmetric; NaN for a box with no whole pixel inside
        the image.

    Raises:
        ValueError: shapes that do not match.

    Example:
        >>> xx = torch.arange(64.0).view(1, 1, 1, 64).expand(1, 1, 48, 64)
        >>> ramp = image_gradients(xx / 64)  # brightness rising left to right: only horizontal motion shows
        >>> (box_structure(ramp, torch.tensor([[8.0, 8.0, 40.0, 40.0]]))[0] * 64**2).tolist()
        [[1.0, 0.0], [0.0, 0.0]]
    """
    if gradients.dim() != 4 or gradients.shape[:2] != (1, 2):
        raise ValueError(f"gradients: expected (1, 2, H, W) image gradients, got {tuple(gradients.shape)}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes: expected shape (N, 4), got {tuple(boxes.shape)}")
    height, width = gradients.shape[2:]
    corners = boxes.to(device=gradients.device, dtype=torch.float64).round()
    x0, x1 = corners[:, 0].clamp(0, width).long(), corners[:, 2].clamp(0, width).long()
    y0, y1 = corners[:, 1].clamp(0, height).long(), corners[:, 3].clamp(0, height).long()
    area = ((x1 - x0).clamp(min=0) * (y1 - y0).clamp(min=0)).to(torch.float64)
    if len(boxes) <= _STRUCTURE_DIRECT_BOXES:
        sums = _direct_structure_sums(gradients[0], x0, y0, x1, y1)
    else:
        sums = _integral_structure_sums(gradients[0], x0, y0, x1, y1)
    a, b, c = torch.where(area > 0, sums / area.clamp(min=1.0), torch.full_like(sums, math.nan))
    return torch.stack([torch.stack([a, b], -1), torch.stack([b, c], -1)], -2)


def _direct_structure_sums(g: Tensor, x0: Tensor, y0: Tensor, x1: Tensor, y1: Tensor) -> Tensor:
    """(3, N) sums of ``gx gx``, ``gx gy``, ``gy gy`` over each box's pixels, box by box (``g``: (2, H, W))."""
    rows = []
    zero = g.new_zeros(2, 2, dtype=torch.float64)
    for a, b, c, d in zip(x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist(), strict=True):
        if c > a and d > b:
            v = g[:, b:d, a:c].reshape(2, -1).to(torch.float64)
            rows.append(v @ v.T)
        else:
            rows.append(zero)
    m = torch.stack(rows) if rows else g.new_zeros(0, 2, 2, dtype=torch.float64)
    return torch.stack([m[:, 0, 0], m[:, 0, 1], m[:, 1, 1]])


def _integral_structure_sums(g: Tensor, x0: Tensor, y0: Tensor, x1: Tensor, y1: Tensor) -> Tensor:
    """(3, N) as :func:`_direct_structure_sums`, from one float64 integral image of the three products, built in a
    single buffer (each full-size temporary costs page faults on the CPU)."""
    integral = g.new_zeros(3, g.shape[1] + 1, g.shape[2] + 1, dtype=torch.float64)
    for k, (i, j) in enumerate(((0, 0), (0, 1), (1, 1))):
        integral[k, 1:, 1:].copy_(g[i]).mul_(g[j])  # the float32 product, exact in float64
    integral.cumsum_(1).cumsum_(2)
    return integral[:, y1, x1] - integral[:, y0, x1] - integral[:, y1, x0] + integral[:, y0, x0]


def box_texture(gradients: Tensor, boxes: Tensor) -> Tensor:
    """How firmly each box's pixels pin its motion in its weakest direction: the smaller eigenvalue of
    :func:`box_structure` (near zero on a flat box and on a box crossed by a single straight edge).

    Args:
        gradients: (1, 2, H, W) :func:`image_gradients` of the grey image (levels in [0, 1]).
        boxes: (N, 4) xyxy pixels, as :func:`box_structure`.

    Returns:
        (N,) float64 (>= 0); ``inf`` for a box with no whole pixel inside the image.

    Raises:
        ValueError: shapes that do not match.

    Example:
        >>> xx = torch.arange(64.0).view(1, 1, 1, 64).expand(1, 1, 48, 64)
        >>> box_texture(image_gradients(xx / 64), torch.tensor([[8.0, 8.0, 40.0, 40.0]])).tolist()
        [0.0]
    """
    tensor = box_structure(gradients, boxes)
    a, b, c = tensor[:, 0, 0], tensor[:, 0, 1], tensor[:, 1, 1]
    smaller = ((a + c) / 2 - torch.sqrt(((a - c) / 2) ** 2 + b * b)).clamp(min=0.0)
    return torch.where(torch.isnan(a), torch.full_like(a, math.inf), smaller)


def _box_residual(
    image1: Tensor, image2: Tensor, boxes: Tensor, displacements: Tensor, affine: Tensor | None, samples: int
) -> Tensor:
    """:func:`box_residual` without the argument checks."""
    dtype = torch.float32
    points, offsets = _box_offsets(boxes.to(torch.float64), samples)
    linear = None if affine is None else affine.to(torch.float64)
    moved = _moved(points, offsets, displacements.to(torch.float64), linear)
    s1, in1 = _sample(image1.to(dtype), points.to(dtype))
    return _residual(s1[0], in1, image2.to(dtype), moved.to(dtype))


def _moved(points: Tensor, offsets: Tensor, displacements: Tensor, affine: Tensor | None) -> Tensor:
    """Where an affine box motion takes each sample point: ``points + t + A @ X``, (N, P, 2)."""
    moved = points + displacements[:, None, :]
    if affine is not None:
        moved = moved + offsets[..., :1] * affine[:, None, :, 0] + offsets[..., 1:] * affine[:, None, :, 1]
    return moved


def _residual(grey1: Tensor, inside1: Tensor, image2: Tensor, moved: Tensor) -> Tensor:
    """:func:`box_residual` from frame t-1's samples (N, P) and their inside mask, frame t's (1, 1, H, W) grey image
    and where the motion takes the samples."""
    s2, in2 = _sample(image2, moved)
    valid = inside1 * in2
    diff = s2[0] - grey1
    count = valid.sum(dim=1).clamp(min=1.0)
    mean = (diff * valid).sum(dim=1) / count
    var = ((diff - mean[:, None]) ** 2 * valid).sum(dim=1) / count
    return torch.where(valid.mean(dim=1) >= _BOX_MIN_VALID, var, torch.full_like(var, math.inf))


@_without_autocast
@torch.no_grad()
def refine_boxes(
    image1: Tensor,
    image2: Tensor,
    boxes: Tensor,
    displacements: Tensor,
    *,
    affine: Tensor | None = None,
    steps: tuple[int, ...] = BOX_STEPS,
    samples: int = BOX_SAMPLES,
    lam: float = LAMBDA,
    lam_affine: float = LAMBDA_AFFINE,
    max_step: float = MAX_STEP,
    pyramid1: Sequence[Tensor] | None = None,
    pyramid2: Sequence[Tensor] | None = None,
) -> BoxFit:
    """Fit each box's motion to the frames: affine Lucas-Kanade over the box, coarse to fine, from a starting value.

    A box's displacement is the mean motion of its pixels; where the motion varies over the box (zoom, rotation,
    perspective of a large box) a translation fitted to the pixels weights them by their texture, so texture on one
    side biases it toward that side's motion. Fitting an affine motion about the box centre removes that bias: the
    mean of an affine field over a rectangle is its value at the centre. Each step solves, over ``samples x
    samples`` points spanning the box (bilinear), for the update of the centre displacement, of the 2x2 linear part
    and of a brightness offset (eliminated exactly), with the gradient of the efficient second-order minimisation,
    a Tikhonov weight ``lam`` on the displacement and ``lam_affine`` on the linear part, and each component clipped
    to ``max_step`` pixels. ``steps[k]`` steps run at level ``k`` of a pyramid of 2x2 averages, coarsest first
    (the default (2, 3): two at half resolution, where a start a few pixels off is within reach, then three at full
    resolution).

    Args:
        image1: frame t-1, (1, 1, H, W) grey, levels in [0, 1] (:func:`grey_image`).
        image2: frame t, same shape.
        boxes: (N, 4) xyxy pixels of frame t-1 (clip them to the image first: samples outside count for nothing).
        displacements: (N, 2) starting ``(dx, dy)`` of each box (e.g. the box average of a head's field), pixels.
        affine: (N, 2, 2) starting linear part, or None for zero.
        steps: Gauss-Newton steps per pyramid level, coarsest first; ``(3,)`` is three steps at full resolution only.
        samples: sample points per box side.
        lam: Tikhonov weight per sample on the displacement update (> 0).
        lam_affine: Tikhonov weight per sample on the linear part's update (> 0).
        max_step: per-step clip of each component, pixels of the level (> 0).
        pyramid1: :func:`box_pyramid` of ``image1`` with at least ``len(steps)`` levels, when already computed (a
            video's frame is the current frame of one pair and the previous frame of the next).
        pyramid2: the same for ``image2``.

    Returns:
        :class:`BoxFit`: displacements (N, 2) in the dtype of ``displacements`` (float32 for half types), affine
        (N, 2, 2) and residual (N,) (:func:`box_residual` of the result). A box with fewer than a quarter of its
        samples inside both frames keeps its starting value. No gradient flows through the fit (run under
        ``torch.no_grad``): inputs that require grad are accepted and the results are detached.

    Raises:
        ValueError: shapes that do not match, or bad ``steps`` / ``samples`` / ``lam`` / ``lam_affine`` /
            ``max_step`` / ``pyramid1`` / ``pyramid2``.

    Example:
        >>> yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(128.0), indexing="ij")
        >>> def frame(sx, sy):  # a texture moved by (sx, sy)
        ...     return (0.5 + 0.2 * torch.sin((xx - sx) / 5) + 0.2 * torch.cos((yy - sy) / 4)).view(1, 1, 96, 128)
        >>> box = torch.tensor([[30.0, 20.0, 90.0, 70.0]])
        >>> fit = refine_boxes(frame(0.0, 0.0), frame(2.5, -1.5), box, torch.zeros(1, 2))
        >>> [round(v, 2) for v in fit.displacements[0].tolist()]
        [2.5, -1.5]
    """
    _check_box_inputs(image1, image2, boxes, displacements, affine)
    ok_steps = (
        isinstance(steps, tuple)
        and len(steps) >= 1
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in steps)
    )
    if not ok_steps:
        raise ValueError(f"steps: expected a non-empty tuple of ints >= 0 (one per pyramid level), got {steps!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples: expected an int >= 2, got {samples!r}")
    for name, value in (("lam", lam), ("lam_affine", lam_affine), ("max_step", max_step)):
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    levels = len(steps)
    pyramids: list[Sequence[Tensor]] = []
    for name, image, given in (("pyramid1", image1, pyramid1), ("pyramid2", image2, pyramid2)):
        if given is None:
            pyramids.append(box_pyramid(image, levels))
        elif len(given) < levels or tuple(given[0].shape) != (1, 3, *image1.shape[2:]):
            shapes = [tuple(level.shape) for level in given]
            raise ValueError(
                f"{name}: expected box_pyramid() of the image with >= {levels} levels, got levels of shapes {shapes}"
            )
        else:
            pyramids.append(given)
    dtype = torch.float32
    n_boxes = boxes.shape[0]
    b64 = boxes.to(torch.float64)
    disp = displacements.to(dtype)
    lin = torch.zeros(n_boxes, 2, 2, dtype=dtype, device=disp.device) if affine is None else affine.to(dtype)
    reg = torch.tensor([lam, lam, lam_affine, lam_affine, lam_affine, lam_affine, 0.0], dtype=dtype, device=disp.device)
    eye = torch.eye(7, dtype=dtype, device=disp.device) * 1e-7  # keeps a box with no valid sample solvable
    for level, count in enumerate(steps):
        if count == 0 or n_boxes == 0:
            continue
        index = levels - 1 - level
        factor = 2**index
        frame1, frame2 = pyramids[0][index].to(dtype), pyramids[1][index].to(dtype)
        points, offsets = _box_offsets(b64 / factor, samples)
        points, offsets = points.to(dtype), offsets.to(dtype)
        s1, in1 = _sample(frame1, points)
        t, a = disp / factor, lin / factor
        # the Jacobian per sample, (N, 7, P): the ESM gradient (gx, gy), its products with the box-normalised
        # offsets (the linear part, row-major) and -1 (the brightness offset)
        jac = points.new_empty(n_boxes, 7, points.shape[1])
        jac[:, 6] = -1.0
        offsets_t = offsets.permute(0, 2, 1)[:, None]  # (N, 1, 2, P)
        for _ in range(count):
            s2, in2 = _sample(frame2, _moved(points, offsets, t, a))
            valid = in1 * in2
            torch.add(s1[1:], s2[1:], out=jac[:, :2].permute(1, 0, 2)).div_(2)  # samples are (C, N, P)
            torch.mul(jac[:, :2, None], offsets_t, out=jac[:, 2:6].view(n_boxes, 2, 2, -1))
            diff = s2[0] - s1[0]
            weighted = jac * valid[:, None]
            frac = valid.mean(dim=1)
            normal = weighted @ jac.transpose(1, 2) / points.shape[1]
            normal = normal + torch.diag_embed(reg[None] * frac[:, None]) + eye
            rhs = -(weighted @ diff[..., None])[..., 0] / points.shape[1]
            update = torch.linalg.solve(normal, rhs)
            move = (frac >= _BOX_MIN_VALID).to(dtype)[:, None]
            t = t + update[:, :2].clamp(-max_step, max_step) * move
            a = a + (update[:, 2:6].clamp(-max_step, max_step) * move).view(-1, 2, 2)
        disp, lin = t * factor, a * factor
    if steps[-1] > 0 and n_boxes:  # frame t-1's full-resolution samples are at hand: sample frame t once more
        residual = _residual(s1[0], in1, pyramids[1][0][:, :1].to(dtype), _moved(points, offsets, disp, lin))
    else:
        residual = _box_residual(pyramids[0][0][:, :1], pyramids[1][0][:, :1], b64, disp, lin, samples)
    out_dtype = dtype if displacements.dtype in (torch.float16, torch.bfloat16) else displacements.dtype
    return BoxFit(disp.to(out_dtype), lin, residual)
