"""Photometric refinement of a head's coarse motion field: Lucas-Kanade steps per cell, on the working-size frames.

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

Everything is plain PyTorch on the field's device; no parameters, no training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LAMBDA", "MAX_STEP", "WINDOW", "grey_image", "image_gradients", "refine_flow"]

#: Tikhonov weight per pixel (grey levels in [0, 1]): a cell needs gradient energy above ~1e-5 per pixel to move.
LAMBDA = 1e-5
#: Largest update of one step, per axis, in image pixels.
MAX_STEP = 2.0
#: Window side in cells: each cell's update pools the pixels of its ``WINDOW x WINDOW`` neighbourhood of cells.
WINDOW = 3
_MIN_VALID = 0.5  # a cell whose window has less than half its pixels inside the frame after warping keeps its value


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
    mask of pixels whose sample lies inside the image. ``base``: :func:`_base_grid` of the image; ``to_grid``:
    (1, 2, 1, 1) pixels -> grid units, ``(2 / W, 2 / H)``."""
    _, _, height, width = image.shape
    dense = F.interpolate(cells * to_grid, size=(height, width), mode="bilinear", align_corners=False)
    grid = dense.permute(0, 2, 3, 1) + base  # flow in grid units, added to the pixel centres
    inside = (grid.abs().amax(dim=-1) < 1.0).unsqueeze(1)
    warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return warped, inside.to(image.dtype)


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
        The refined field, same shape and dtype as ``flow``.

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
    cells = flow.to(dtype)
    rows, cols, area = height // stride, width // stride, float(stride * stride)
    base = _base_grid(height, width, cells)
    to_grid = torch.tensor([2.0 / width, 2.0 / height], dtype=dtype, device=cells.device).view(1, 2, 1, 1)
    # per pixel v = inside * (Gx, Gy, residual, 1) with G = grad I1 + warped grad I2 (twice the ESM gradient: the
    # factor 2 is undone below), written into one buffer; per cell the sums of v v^T: one batched 4 x 4 product
    v = i1.new_empty(batch, 4, height, width)
    for _ in range(iters):
        warped, inside = _warp(frame2, cells, base, to_grid)
        torch.add(grad1, warped[:, 1:], out=v[:, :2])
        torch.sub(warped[:, :1], i1, out=v[:, 2:3])
        v[:, :3].mul_(inside)
        v[:, 3:].copy_(inside)
        blocks = v.view(batch, 4, rows, stride, cols, stride).permute(0, 2, 4, 3, 5, 1)
        blocks = blocks.reshape(batch * rows * cols, stride * stride, 4)
        sums = torch.bmm(blocks.transpose(1, 2), blocks).view(batch, rows, cols, 16).permute(0, 3, 1, 2) / area
        if window > 1:  # then over the window of cells
            sums = F.avg_pool2d(sums, window, 1, window // 2, count_include_pad=False)
        sxx, sxy, sxt, sx, syy, syt, sy, st, n = (sums[:, k] for k in (0, 1, 2, 3, 5, 6, 7, 11, 15))
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
