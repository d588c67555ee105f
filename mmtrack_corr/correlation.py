"""Spatial correlation: an exact, pure-PyTorch drop-in for the ``spatial_correlation_sampler`` C++/CUDA op.

Conventions (stated once, used throughout the package):

* Inputs are feature maps of two frames, ``input1`` of frame t-1 and ``input2`` of frame t, shape (B, C, H, W).
* A displacement (dy, dx) is measured in feature pixels, positive when ``input2`` lies below / right of ``input1``.
* Correlation channels are ordered dy-major: flat index ``ph * PatchW + pw``.

How it is computed. For one displacement row dy, every output row h needs the dot products between the C-vectors
of ``input1`` row y and those of ``input2`` row y + dy, at column offsets dx in a narrow band. Those are the
entries near the diagonal of the (W x W) Gram matrix of the two rows, so the op is a batched matrix product over
rows (``torch.bmm`` on strided views of the inputs, no copy) followed by a ``gather`` of the band. Columns are
split into tiles so that the Gram blocks stay close to the band (little wasted arithmetic on wide maps). That is
PatchH x tiles large matrix products instead of PatchH x PatchW small reductions, and nothing of size
C x Patch^2 x H x W is ever materialised. The backward pass is the transpose of the same products, accumulated per
tile in row blocks of at most two outputs' worth; only the inputs are saved for it.

Where the band is a large part of each Gram block - kernel size 1, stride 1, no padding, dilation_patch 1, as in
MM-Tracker's 9x9 search - and C is small next to the patch area, the forward instead takes each output pixel's
C-vector against the PatchW consecutive C-vectors of ``input2`` around it: one batched product per patch row over
every pixel at once, with no Gram entry off the band (see :func:`_pixel_products`; copies of the inputs in
channels-last order, so it runs only where they keep the extra memory within 3x the output). Its backward is the
same kind of product (:func:`_correlate_pixels_backward`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import operator
import os
from collections.abc import Iterator, Sequence
from typing import NamedTuple, cast

import torch
from torch import Tensor, nn

__all__ = [
    "SpatialCorrelationSampler",
    "correlation_backend",
    "correlation_output_size",
    "spatial_correlation_sample",
]

_IntPair = int | Sequence[int]


def _pair(name: str, value: object, minimum: int) -> tuple[int, int]:
    """Validates an int / tuple / list argument and returns it as a (height, width) pair."""
    if isinstance(value, (tuple, list)):
        items = list(value)
        if len(items) != 2:
            raise ValueError(f"{name}: expected an int or a pair (height, width), got {value!r}")
    else:
        items = [value, value]
    pair = []
    for item in items:
        try:
            if isinstance(item, bool):  # an int to Python, but never a size
                raise TypeError
            number = operator.index(item)  # int, numpy and 0-d integer tensors; not floats
        except TypeError:
            raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}") from None
        if number < minimum:
            raise ValueError(f"{name}: expected values >= {minimum}, got {value!r}")
        pair.append(number)
    return pair[0], pair[1]


def _output_extent(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    # C-style division truncates toward zero: the original computes (H + 2p - dk) / s + 1 on ints.
    span = size + 2 * padding - ((kernel - 1) * dilation + 1)
    if span >= 0:
        return span // stride + 1
    return -((-span) // stride) + 1


def correlation_output_size(
    height: int,
    width: int,
    kernel_size: _IntPair = 1,
    stride: _IntPair = 1,
    padding: _IntPair = 0,
    dilation: _IntPair = 1,
) -> tuple[int, int]:
    """Output grid (oH, oW) of :func:`spatial_correlation_sample`.

    ``oH = trunc((H + 2 * padH - ((kH - 1) * dilationH + 1)) / strideH) + 1`` with C-style truncation toward zero,
    and likewise for oW. May be zero or negative when the dilated kernel does not fit the padded input.

    Args:
        height: input height H.
        width: input width W.
        kernel_size: kernel window (kH, kW) or one int for both.
        stride: output stride.
        padding: zero padding of the output grid.
        dilation: spacing of the kernel window.

    Returns:
        (oH, oW).

    Example:
        >>> correlation_output_size(19, 34, kernel_size=1)
        (19, 34)
    """
    k = _pair("kernel_size", kernel_size, 1)
    s = _pair("stride", stride, 1)
    p = _pair("padding", padding, 0)
    d = _pair("dilation", dilation, 1)
    return (
        _output_extent(height, k[0], s[0], p[0], d[0]),
        _output_extent(width, k[1], s[1], p[1], d[1]),
    )


# One axis of a kernel-size-1 correlation, as plain ints so that TorchScript compiles the core:
# (size, origin, step, count, patch, dilation_patch). Output index i sits on input pixel origin + i * step;
# displacement index j is (j - (patch - 1) // 2) * dilation_patch pixels.
_Grid = tuple[int, int, int, int, int, int]
# A run of output columns [w0, w1), the input2 columns [c0, c1) its displacements reach, and for each dx and
# output column, shape (PatchW, w1 - w0), the input2 column inside [c0, c1) (clamped) and whether it exists.
_Tile = tuple[int, int, int, int, Tensor, Tensor]


def _inside(grid: _Grid, shift: int) -> tuple[int, int]:
    """Output range [lo, hi) of ``grid`` whose input pixel plus ``shift`` lies inside [0, size)."""
    size, origin, step, count = grid[0], grid[1], grid[2], grid[3]
    first = origin + shift
    lo = 0
    if first < 0:
        lo = -(first // step)  # ceil(-first / step)
    last = size - 1 - first
    hi = 0
    if last >= 0:
        hi = min(count, last // step + 1)
    return lo, max(lo, hi)


def _rows_for(rows: _Grid, ph: int) -> tuple[int, int, int]:
    """Displacement dy of patch row ``ph`` and the output rows [h0, h1) where both pixels exist."""
    dy = (ph - (rows[4] - 1) // 2) * rows[5]
    h0, h1 = _inside(rows, 0)
    g0, g1 = _inside(rows, dy)
    return dy, max(h0, g0), min(h1, g1)


def _column_tiles(cols: _Grid, device: torch.device) -> list[_Tile]:
    size, origin, step, _, patch, dilation_patch = cols
    lo, hi = _inside(cols, 0)
    span = (patch - 1) * dilation_patch + 1
    # About three band spans per tile: measured on CPU, larger products beat the extra (masked) arithmetic.
    width = max(8, (3 * span) // step)
    first_dx = -((patch - 1) // 2) * dilation_patch
    dx = (torch.arange(patch, device=device) * dilation_patch + first_dx).unsqueeze(1)
    tiles: list[_Tile] = []
    for w0 in range(lo, hi, width):
        w1 = min(hi, w0 + width)
        c0 = max(0, origin + w0 * step + first_dx)
        c1 = min(size, origin + (w1 - 1) * step + first_dx + span)
        if c0 < c1:
            column = origin + torch.arange(w0, w1, device=device).unsqueeze(0) * step + dx
            valid = (column >= 0) & (column < size)
            tiles.append((w0, w1, c0, c1, (column - c0).clamp(0, c1 - c0 - 1), valid))
    return tiles


def _correlate(x1: Tensor, x2: Tensor, rows: _Grid, cols: _Grid) -> Tensor:
    """Kernel-size-1 correlation on the grid ``rows`` x ``cols``: (B, PatchH, PatchW, rows.count, cols.count)."""
    batch = x1.shape[0]
    out = x1.new_zeros(batch, rows[4], cols[4], rows[3], cols[3])
    tiles = _column_tiles(cols, x1.device)
    for ph in range(rows[4]):
        dy, h0, h1 = _rows_for(rows, ph)
        if h0 < h1:
            y0 = rows[1] + h0 * rows[2]
            y1 = y0 + (h1 - h0 - 1) * rows[2] + 1
            for b in range(batch):
                a_rows = x1[b, :, y0 : y1 : rows[2]]  # (C, nh, W)
                b_rows = x2[b, :, y0 + dy : y1 + dy : rows[2]]
                for w0, w1, c0, c1, index, valid in tiles:
                    x0 = cols[1] + w0 * cols[2]
                    a = a_rows[:, :, x0 : x0 + (w1 - w0 - 1) * cols[2] + 1 : cols[2]].permute(1, 0, 2)  # (nh, C, nt)
                    gram = torch.bmm(b_rows[:, :, c0:c1].permute(1, 2, 0), a)  # (nh, nc, nt)
                    # (nh, PatchW, nt): already in the output's (dx, row, column) order, columns contiguous
                    band = torch.gather(gram, 1, index.expand(h1 - h0, -1, -1)).masked_fill(~valid, 0.0)
                    out[b, ph, :, h0:h1, w0:w1] = band.permute(1, 0, 2)
    return out


def _gram_grad(grad: Tensor, b: int, ph: int, lo: int, hi: int, tile: _Tile) -> Tensor:
    """Gradient of the Gram block of output rows [lo, hi), patch row ``ph``, one tile: (hi - lo, nc, nt)."""
    w0, w1, c0, c1, index, valid = tile
    band = grad[b, ph, :, lo:hi, w0:w1].permute(1, 0, 2).masked_fill(~valid, 0.0)  # (nh, PatchW, nt)
    d_gram = band.new_zeros(hi - lo, c1 - c0, w1 - w0)
    return d_gram.scatter_add_(1, index.expand(hi - lo, -1, -1), band)


def _correlate_backward(
    grad: Tensor, x1: Tensor, x2: Tensor, rows: _Grid, cols: _Grid, need1: bool, need2: bool
) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of :func:`_correlate` for both inputs: the transposed products.

    Per column tile, the products of all displacement rows accumulate in a contiguous (row, C, column) buffer
    (``baddbmm_``: one batched GEMM each) that is added to the strided gradient once. Buffers cover blocks of rows
    sized to hold at most two outputs' worth of elements per batch item (measured: larger blocks are barely faster),
    and the two gradients are built one after the other, so the backward's extra memory stays within about twice
    the output's size even when C is large (C=512 against 81 displacements at MM-Tracker's 1/32 scale).
    """
    g1 = torch.zeros_like(x1) if need1 else None
    g2 = torch.zeros_like(x2) if need2 else None
    channels, height = x1.shape[1], x1.shape[2]
    origin, step = rows[1], rows[2]
    first, last = _inside(rows, 0)
    if first >= last:
        return g1, g2
    budget = 2 * rows[4] * cols[4] * rows[3] * cols[3]
    tiles = _column_tiles(cols, x1.device)
    for b in range(x1.shape[0]):
        for tile in tiles:
            w0, w1, c0, c1 = tile[0], tile[1], tile[2], tile[3]
            x0 = cols[1] + w0 * cols[2]
            cs = slice(x0, x0 + (w1 - w0 - 1) * cols[2] + 1, cols[2])
            if g1 is not None:
                # blocks of output rows [ha, hb): g1's rows origin + h * step
                block = max(1, budget // (channels * (w1 - w0)))
                for ha in range(first, last, block):
                    hb = min(last, ha + block)
                    acc1 = x1.new_zeros(hb - ha, channels, w1 - w0)
                    for ph in range(rows[4]):
                        dy, h0, h1 = _rows_for(rows, ph)
                        lo, hi = max(h0, ha), min(h1, hb)
                        if lo < hi:
                            y2 = origin + lo * step + dy
                            m = x2[b, :, y2 : y2 + (hi - lo - 1) * step + 1 : step, c0:c1].permute(1, 0, 2)
                            acc1[lo - ha : hi - ha].baddbmm_(m, _gram_grad(grad, b, ph, lo, hi, tile))
                    y1 = origin + ha * step
                    g1[b, :, y1 : y1 + (hb - ha - 1) * step + 1 : step, cs].add_(acc1.permute(1, 0, 2))
                    del acc1
            if g2 is not None:
                # blocks of input2 rows [ya, yb); output row h reaches input2 row origin + h * step + dy
                block = max(1, budget // (channels * (c1 - c0)))
                for ya in range(0, height, block):
                    yb = min(height, ya + block)
                    acc2 = x2.new_zeros(yb - ya, channels, c1 - c0)
                    for ph in range(rows[4]):
                        dy, h0, h1 = _rows_for(rows, ph)
                        lo = max(h0, -((origin + dy - ya) // step))  # ceil((ya - origin - dy) / step)
                        hi = min(h1, (yb - 1 - origin - dy) // step + 1)
                        if lo < hi:
                            y1 = origin + lo * step
                            a = x1[b, :, y1 : y1 + (hi - lo - 1) * step + 1 : step, cs].permute(1, 0, 2)
                            r = y1 + dy - ya
                            acc2[r : r + (hi - lo - 1) * step + 1 : step].baddbmm_(
                                a, _gram_grad(grad, b, ph, lo, hi, tile).transpose(1, 2)
                            )
                    g2[b, :, ya:yb, c0:c1].add_(acc2.permute(1, 0, 2))
                    del acc2
    return g1, g2


# The batched formulation: the same banded Gram products as above, but all of them in ONE batched matrix product,
# so that the number of ATen calls is fixed (about 10 per forward, 20 per backward) whatever the batch, patch and
# width. Output rows are grouped by their residue s = h mod dilation_patchH; output columns by their residue
# r = w mod G, G = lcm(strideW, dilation_patchW) / strideW, and split into tiles of T columns of one residue. Within a
# (tile, r) group consecutive outputs are lcm(strideW, dilation_patchW) input columns apart, a whole number e of
# displacement steps, so the group's displacements reach input2 columns at a step of dilation_patchW only: a band
# of (T - 1) * e + PatchW columns taken every dilation_patchW-th column, with no column the group never uses (a
# dilated patch such as FlowNetC's would otherwise compute every skipped column too). For each
# (batch item, tile, r, s, q = h div dilation_patchH) the displacement rows that output row h meets are consecutive
# rows u = q * strideH + ph of one block of a copy of input2 laid out (B, tiles, r, s, u, band column, C), so the
# window of all PatchH rows is one (PatchH * band, C) matrix at a constant step from the previous one: a plain
# strided view. Blocks carry PatchH - 1 rows of slack (computed, then dropped) so that the view's batch stride is
# uniform. The price is memory: a copy of input2 (band / T of it) and a Gram of band / PatchW outputs, against
# <= 2x the output for the loop above; see correlation_backend("batched").
class _Layout(NamedTuple):
    tile: int  # output columns T per (tile, residue) group
    tiles: int  # tiles per residue group
    band: int  # input2 columns of one group's window: (T - 1) * band_step + PatchW
    q_rows: int  # q rows per block, slack included
    dy0: int  # first displacement, rows
    dx0: int  # first displacement, columns
    groups: int  # column residue groups G
    band_step: int  # band columns between consecutive outputs of a group (e)


def _batched_layout(rows: _Grid, cols: _Grid) -> _Layout:
    patch_h, dp_h, step_h, count_h = rows[4], rows[5], rows[2], rows[3]
    step_w, count_w, patch_w, dp_w = cols[2], cols[3], cols[4], cols[5]
    lcm = step_w * dp_w // math.gcd(step_w, dp_w)
    groups, band_step = lcm // step_w, lcm // dp_w
    per_group = -(-count_w // groups)
    tile = min(max(16, (2 * patch_w) // band_step), per_group)  # measured on CPU: 16-32 columns balance waste and speed
    tiles = -(-per_group // tile)
    band = (tile - 1) * band_step + patch_w
    q_rows = -(-count_h // dp_h) - 1 + -(-patch_h // step_h)
    dy0, dx0 = -((patch_h - 1) // 2) * dp_h, -((patch_w - 1) // 2) * dp_w
    return _Layout(tile, tiles, band, q_rows, dy0, dx0, groups, band_step)


def _input2_padding(rows: _Grid, cols: _Grid, lay: _Layout) -> tuple[tuple[int, int, int, int], int, int]:
    """F.pad amounts (left, right, top, bottom) so that every window pixel exists, and the first window pixel."""
    tile, tiles, band, q_rows, groups = lay.tile, lay.tiles, lay.band, lay.q_rows, lay.groups
    first_y, first_x = rows[1] + lay.dy0, cols[1] + lay.dx0
    last_y = first_y + (rows[5] - 1) * rows[2] + (q_rows * rows[2] - 1) * rows[5]
    last_x = first_x + ((tiles - 1) * groups * tile + groups - 1) * cols[2] + (band - 1) * cols[5]
    pad = (max(0, -first_x), max(0, last_x - cols[0] + 1), max(0, -first_y), max(0, last_y - rows[0] + 1))
    return pad, first_y, first_x


def _input1_padding(rows: _Grid, cols: _Grid, lay: _Layout) -> tuple[int, int, int, int]:
    tile, tiles, q_rows, groups = lay.tile, lay.tiles, lay.q_rows, lay.groups
    last_y = rows[1] + (q_rows * rows[5] - 1) * rows[2]
    last_x = cols[1] + (tiles * groups * tile - 1) * cols[2]
    return (max(0, -cols[1]), max(0, last_x - cols[0] + 1), max(0, -rows[1]), max(0, last_y - rows[0] + 1))


def _padded(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    return torch.nn.functional.pad(x, pad) if any(pad) else x


def _windows(x2: Tensor, rows: _Grid, cols: _Grid, lay: _Layout) -> Tensor:
    """Every output row's window of input2: (N, PatchH * band, C), N = B * tiles * G * dilation_patchH * q_rows."""
    tile, tiles, band, q_rows, groups = lay.tile, lay.tiles, lay.band, lay.q_rows, lay.groups
    batch, channels = x2.shape[0], x2.shape[1]
    step_h, patch_h, dp_h = rows[2], rows[4], rows[5]
    pad, first_y, first_x = _input2_padding(rows, cols, lay)
    x2p = _padded(x2, pad)
    sb, sc, sy, sx = x2p.stride()
    u_rows = q_rows * step_h
    used = batch * tiles * groups * dp_h * u_rows * band * channels
    slack = max(0, patch_h - step_h) * band * channels  # the last block's slack windows read past its end
    buffer = x2.new_empty(used + slack)
    buffer[used:].zero_()
    source = x2p.as_strided(
        (batch, tiles, groups, dp_h, u_rows, band, channels),
        (sb, groups * tile * cols[2] * sx, cols[2] * sx, step_h * sy, dp_h * sy, cols[5] * sx, sc),
        x2p.storage_offset() + (first_y + pad[2]) * sy + (first_x + pad[0]) * sx,
    )
    buffer[:used].view(batch, tiles, groups, dp_h, u_rows, band, channels).copy_(source)
    count = batch * tiles * groups * dp_h * q_rows
    return buffer.as_strided((count, patch_h * band, channels), (step_h * band * channels, channels, 1))


def _positions_view(x1p: Tensor, rows: _Grid, cols: _Grid, lay: _Layout, pad: tuple[int, int, int, int]) -> Tensor:
    """input1 (padded by ``pad``) at the output positions: (B, tiles, G, dilation_patchH, q_rows, tile, C), a view."""
    tile, tiles, q_rows, groups = lay.tile, lay.tiles, lay.q_rows, lay.groups
    sb, sc, sy, sx = x1p.stride()
    step_h, dp_h, step_w = rows[2], rows[5], cols[2]
    return x1p.as_strided(
        (x1p.shape[0], tiles, groups, dp_h, q_rows, tile, x1p.shape[1]),
        (sb, groups * tile * step_w * sx, step_w * sx, step_h * sy, dp_h * step_h * sy, groups * step_w * sx, sc),
        x1p.storage_offset() + (rows[1] + pad[2]) * sy + (cols[1] + pad[0]) * sx,
    )


def _band_view(gram: Tensor, batch: int, rows: _Grid, cols: _Grid, lay: _Layout) -> Tensor:
    """The Gram (N, PatchH * band, tile) entries that are outputs: (B, tiles, G, s, q, PatchH, PatchW, tile)."""
    tile, tiles, band, q_rows, groups = lay.tile, lay.tiles, lay.band, lay.q_rows, lay.groups
    patch_h, dp_h, patch_w = rows[4], rows[5], cols[4]
    plane = patch_h * band * tile
    return gram.as_strided(
        (batch, tiles, groups, dp_h, q_rows, patch_h, patch_w, tile),
        (
            tiles * groups * dp_h * q_rows * plane,
            groups * dp_h * q_rows * plane,
            dp_h * q_rows * plane,
            q_rows * plane,
            plane,
            band * tile,
            tile,
            lay.band_step * tile + 1,
        ),
    )


def _correlate_batched(x1: Tensor, x2: Tensor, rows: _Grid, cols: _Grid) -> Tensor:
    """:func:`_correlate` with a fixed number of ATen calls (see the comment above :func:`_batched_layout`)."""
    batch = x1.shape[0]
    lay = _batched_layout(rows, cols)
    tile, tiles, q_rows, groups = lay.tile, lay.tiles, lay.q_rows, lay.groups
    pad = _input1_padding(rows, cols, lay)
    positions = _positions_view(_padded(x1, pad), rows, cols, lay, pad).reshape(-1, tile, x1.shape[1])
    gram = torch.bmm(_windows(x2, rows, cols, lay), positions.transpose(1, 2))  # (N, PatchH * band, tile)
    # (B, PH, PW, q, s, tiles, tile, G): output column w = (tile index * tile + t) * G + r
    band = _band_view(gram, batch, rows, cols, lay).permute(0, 5, 6, 4, 3, 1, 7, 2)
    full = band.reshape(batch, rows[4], cols[4], q_rows * rows[5], tiles * tile * groups)
    return full[..., : rows[3], : cols[3]].contiguous()


def _correlate_batched_backward(
    grad: Tensor, x1: Tensor, x2: Tensor, rows: _Grid, cols: _Grid, need1: bool, need2: bool
) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of :func:`_correlate_batched`: the two transposed batched products."""
    batch, channels, height, width = x1.shape
    lay = _batched_layout(rows, cols)
    tile, tiles, band, q_rows, groups = lay.tile, lay.tiles, lay.band, lay.q_rows, lay.groups
    count = batch * tiles * groups * rows[5] * q_rows
    grad_full = torch.nn.functional.pad(grad, (0, tiles * tile * groups - cols[3], 0, q_rows * rows[5] - rows[3]))
    d_gram = grad.new_zeros(count, rows[4] * band, tile)
    _band_view(d_gram, batch, rows, cols, lay).copy_(
        grad_full.view(batch, rows[4], cols[4], q_rows, rows[5], tiles, tile, groups).permute(0, 5, 7, 4, 3, 1, 2, 6)
    )
    g1 = g2 = None
    pad1 = _input1_padding(rows, cols, lay)
    if need1:
        d_positions = torch.bmm(d_gram.transpose(1, 2), _windows(x2, rows, cols, lay))  # (N, tile, C)
        g1p = x1.new_zeros(batch, channels, height + pad1[2] + pad1[3], width + pad1[0] + pad1[1])
        # distinct output positions are distinct pixels: a plain copy, no accumulation
        _positions_view(g1p, rows, cols, lay, pad1).copy_(
            d_positions.view(batch, tiles, groups, rows[5], q_rows, tile, -1)
        )
        g1 = g1p[:, :, pad1[2] : pad1[2] + height, pad1[0] : pad1[0] + width].contiguous()
    if need2:
        positions = _positions_view(_padded(x1, pad1), rows, cols, lay, pad1)
        d_windows = torch.bmm(d_gram, positions.reshape(-1, tile, channels))  # (N, PatchH * band, C)
        # windows overlap (rows and tiles): add every window pixel into its input2 pixel
        pad, first_y, first_x = _input2_padding(rows, cols, lay)
        hp, wp = height + pad[2] + pad[3], width + pad[0] + pad[1]
        size = (batch, tiles, groups, rows[5], q_rows, rows[4], band)
        stride = (
            hp * wp,
            groups * tile * cols[2],
            cols[2],
            rows[2] * wp,
            rows[5] * rows[2] * wp,
            rows[5] * wp,
            cols[5],
        )
        offset = (first_y + pad[2]) * wp + first_x + pad[0]
        end = offset + sum((n - 1) * st for n, st in zip(size, stride, strict=True)) + 1
        index = torch.arange(end, device=x1.device).as_strided(size, stride, offset).reshape(-1)
        g2p = x2.new_zeros(max(end, batch * hp * wp), channels).index_add_(0, index, d_windows.view(-1, channels))
        g2p = g2p[: batch * hp * wp].view(batch, hp, wp, channels).permute(0, 3, 1, 2)
        g2 = g2p[:, :, pad[2] : pad[2] + height, pad[0] : pad[0] + width].contiguous()
    return g1, g2


# The pixel formulation, for the dense grid only (kernel size 1, stride 1, no padding, dilation_patch 1): every
# output pixel's displacements of one patch row are ONE small product, its C-vector of input1 against the PatchW
# consecutive C-vectors of input2 around it, and all pixels' products are ONE batched matrix product on strided
# views of channels-last copies (input2 laid out flat with zero margins, so that a window starting before the first
# pixel or ending after the last stays in memory). A window that crosses the left or right edge of the map reads
# the neighbouring row's pixels, and one that crosses the top or bottom edge the neighbouring batch item's (or the
# margins): those entries are exactly the displacements that leave the map, and are set to zero afterwards. No
# Gram entry off the band is computed, so this beats the tiled Gram products above where the band is a large part
# of each Gram (measured on one CPU thread: 1.3-2.6x faster for the motion heads' 9x9 searches of 48-96 channels;
# also 1.5-2.4x at MM-Tracker's 128-512, whose copies exceed the memory bound, so they keep the tiles; slower for
# FlowNetC's 21x21 search at dilation 2, which is not a dense window anyway). PatchH + a few ATen calls, whatever
# the batch and width (the backward 2 x PatchH + a few; with one channel, the forward is one broadcast product for
# all patch rows, written in the op's layout); extra memory: the channels-last copies (input1's is free when it is
# channels-last already) and the stacked products (1x output).
def _pixels_fit(x1: Tensor, rows: _Grid, cols: _Grid, backward: bool = False) -> bool:
    """Whether :func:`_correlate_pixels` (or, with ``backward``, :func:`_correlate_pixels_backward`) applies to this
    grid and keeps its extra memory within 3x the output: the channels-last copies within 2x, plus the stacked
    products (forward) or the reordered output gradient (backward, which copies both inputs) within 1x."""
    dense = all(g[1] == 0 and g[2] == 1 and g[3] == g[0] and g[5] == 1 for g in (rows, cols))
    if not dense:
        return False
    batch, channels, height, width = x1.shape
    one = channels * (batch * height * width + rows[4] * width + cols[4])
    copies = one
    if backward or not x1.permute(0, 2, 3, 1).is_contiguous():
        copies += one
    return copies <= 2 * batch * rows[4] * cols[4] * height * width


def _pixel_products(x1: Tensor, x2: Tensor, patch_h: int, patch_w: int, patch_first: bool = False) -> Tensor:
    """Kernel-size-1, stride-1 correlation without padding: (B, H, W, PatchH, PatchW), channels-last order (with
    ``patch_first`` and one channel: a view of a contiguous (B, PatchH, PatchW, H, W) tensor, the op's layout)."""
    batch, channels, height, width = x1.shape
    dy0, dx0 = -((patch_h - 1) // 2), -((patch_w - 1) // 2)
    dy1, dx1 = dy0 + patch_h - 1, dx0 + patch_w - 1
    pixels = batch * height * width
    before = (-dy0 * width - dx0) * channels  # margin so that the first window starts inside the buffer
    flat = _flat_channels_last(x2, before, (dy1 * width + dx1) * channels)
    a = x1.permute(0, 2, 3, 1).contiguous().view(pixels, 1, channels)
    if channels == 1:
        # one product per output: a single broadcast multiply over every patch row (the 1 x 1 matrices of the
        # batched products below cost far more per call than their one multiply; the values are the same)
        size = (batch, height, width, patch_h, patch_w)
        windows = flat.as_strided(size, (height * width, width, 1, width, 1), 0)  # first window at the buffer start
        out = x1.new_empty(batch, patch_h, patch_w, height, width).permute(0, 3, 4, 1, 2) if patch_first else None
        out = torch.mul(a.view(batch, height, width, 1, 1), windows, out=out)
    else:
        products = [
            torch.bmm(
                a,
                flat.as_strided(
                    (pixels, channels, patch_w), (channels, 1, channels), before + (dy * width + dx0) * channels
                ),
            )
            for dy in range(dy0, dy1 + 1)
        ]
        out = torch.stack(products, dim=1).view(batch, height, width, patch_h, patch_w)
    _zero_outside(out, dy0, dx0)
    return out


def _flat_channels_last(x: Tensor, before: int, after: int) -> Tensor:
    """``x`` (B, C, H, W) copied in (B, H, W, C) order into a flat buffer with ``before`` / ``after`` zeros around."""
    size = x.numel()
    flat = x.new_empty(before + size + after)
    flat[:before].zero_()
    flat[before + size :].zero_()
    flat[before : before + size].view(x.shape[0], x.shape[2], x.shape[3], x.shape[1]).copy_(x.permute(0, 2, 3, 1))
    return flat


def _zero_outside(out: Tensor, dy0: int, dx0: int) -> None:
    """Zero the entries of ``out`` (B, H, W, PatchH, PatchW) whose displacement leaves the map, in place.

    Windows that left the map read neighbouring rows / batch items / margins. Only the first and last (patch - 1)
    rows / columns have such windows: mask those strips, not the whole map.
    """
    height, width, patch_h, patch_w = out.shape[1:]
    for axis, size, first in ((1, height, dy0), (2, width, dx0)):
        patch = patch_h if axis == 1 else patch_w
        for start, mask in _edge_masks(size, first, patch, out.device):
            shape = (1, mask.shape[0], 1, patch, 1) if axis == 1 else (1, 1, mask.shape[0], 1, patch)
            out.narrow(axis, start, mask.shape[0]).masked_fill_(mask.view(shape), 0.0)


def _correlate_pixels_backward(
    grad: Tensor, x1: Tensor, x2: Tensor, rows: _Grid, cols: _Grid, need1: bool, need2: bool
) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of :func:`_correlate_pixels`: 2 x PatchH batched products, whatever the batch and width.

    With G the output gradient in (pixel, dy, dx) order, zeroed where the displacement leaves the map (those
    outputs are constant zeros): ``g1[p] = sum_ij G[p, i, j] x2[p + o_ij]`` - the forward's windows of ``input2``
    - and ``g2[q] = sum_ij G[q - o_ij, i, j] x1[q - o_ij]``, the same kind of product on windows of ``input1`` and
    of G taken backwards (columns reversed, so that every view has positive strides). A term whose pixel p lies in
    another row or batch item than q is one whose displacement leaves the map, so its G entry is already zero.
    """
    batch, channels, height, width = x1.shape
    patch_h, patch_w = rows[4], cols[4]
    dy0, dx0 = -((patch_h - 1) // 2), -((patch_w - 1) // 2)
    dy1, dx1 = dy0 + patch_h - 1, dx0 + patch_w - 1
    pixels, per = batch * height * width, patch_h * patch_w
    reach = max(-dy0, dy1) * width + max(-dx0, dx1) + 1  # pixels of margin around G
    g_flat = _flat_channels_last(grad.reshape(batch, per, height, width), reach * per, reach * per)
    _zero_outside(g_flat[reach * per : (reach + pixels) * per].view(batch, height, width, patch_h, patch_w), dy0, dx0)
    g1 = g2 = None
    if need1:
        before = (-dy0 * width - dx0) * channels
        x2_flat = _flat_channels_last(x2, before, (dy1 * width + dx1) * channels)
        acc = x1.new_zeros(pixels, 1, channels)
        for i, dy in enumerate(range(dy0, dy1 + 1)):
            g_rows = g_flat.as_strided((pixels, 1, patch_w), (per, patch_w, 1), reach * per + i * patch_w)
            windows = x2_flat.as_strided(
                (pixels, patch_w, channels), (channels, channels, 1), before + (dy * width + dx0) * channels
            )
            acc.baddbmm_(g_rows, windows)
        g1 = acc.view(batch, height, width, channels).permute(0, 3, 1, 2)
    if need2:
        before = max(0, dy1 * width + dx1) * channels
        x1_flat = _flat_channels_last(x1, before, max(0, -dy0 * width - dx0) * channels)
        acc = x2.new_zeros(pixels, 1, channels)
        for i, dy in enumerate(range(dy0, dy1 + 1)):
            # column j' = PatchW - 1 - j: G[q - dy W - dx1 + j', i, PatchW - 1 - j'] and x1[q - dy W - dx1 + j']
            start = (reach - dy * width - dx1) * per + i * patch_w + patch_w - 1
            g_rows = g_flat.as_strided((pixels, 1, patch_w), (per, 1, per - 1), start)
            windows = x1_flat.as_strided(
                (pixels, patch_w, channels), (channels, channels, 1), before + (-dy * width - dx1) * channels
            )
            acc.baddbmm_(g_rows, windows)
        g2 = acc.view(batch, height, width, channels).permute(0, 3, 1, 2)
    return g1, g2


@functools.lru_cache(maxsize=64)
def _edge_masks(size: int, first: int, patch: int, device: torch.device) -> tuple[tuple[int, Tensor], ...]:
    """For one axis of the map: the strips [start, start + reach) at its two ends whose windows leave it, each with
    its (reach, patch) mask of displacements first .. first + patch - 1 that land outside [0, size). Cached: the
    masks depend on the map's size only, so a forward issues one masked fill per strip and no mask arithmetic."""
    last = first + patch - 1
    reach = min(size, max(-first, last, 0))
    strips = []
    for start in sorted({0, size - reach}) if reach else ():
        at = torch.arange(start, start + reach).unsqueeze(1) + torch.arange(first, last + 1)
        strips.append((start, ((at < 0) | (at >= size)).to(device)))
    return tuple(strips)


def _correlate_pixels(x1: Tensor, x2: Tensor, rows: _Grid, cols: _Grid) -> Tensor:
    """:func:`_correlate` on a grid accepted by :func:`_pixels_fit`: (B, PatchH, PatchW, H, W)."""
    return _pixel_products(x1, x2, rows[4], cols[4], patch_first=True).permute(0, 3, 4, 1, 2).contiguous()


@torch.jit.unused
def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()


@torch.jit.unused
def _pixel_volume(x1: Tensor, x2: Tensor, patch: int) -> Tensor | None:
    """The search volume (B, patch^2, H, W) as a channels-last view of the pixel products, or None where they do
    not run: while tracing, under autograd (the op's autograd function, which saves only the inputs), on the
    batched or Triton backends, or beyond their memory bound. For callers that feed the volume to channels-last
    layers (the motion heads): it skips the copy to (B, PatchH, PatchW, H, W) order, and per-position ops over the
    patch read contiguous memory.
    """
    batch, _, height, width = x1.shape
    rows, cols = (height, 0, 1, height, patch, 1), (width, 0, 1, width, patch, 1)
    grad = torch.is_grad_enabled() and (x1.requires_grad or x2.requires_grad)
    if grad or _tracing() or _selected_backend() not in ("auto", "aten") or _use_triton(x1):
        return None
    if x1.numel() == 0 or not _pixels_fit(x1, rows, cols):
        return None
    dtype = x1.dtype
    if dtype == torch.float16 or dtype == torch.bfloat16:
        x1, x2 = x1.float(), x2.float()
    out = _pixel_products(x1, x2, patch, patch).view(batch, height, width, patch * patch).permute(0, 3, 1, 2)
    return out.to(dtype)


@torch.jit.unused
def _correlate_forward(x1: Tensor, x2: Tensor, rows: _Grid, cols: _Grid, batched: bool) -> Tensor:
    """The forward of the eager paths: batched, pixels where they fit (not while tracing: storage offsets), loop."""
    if batched:
        return _correlate_batched(x1, x2, rows, cols)
    if not _tracing() and _pixels_fit(x1, rows, cols):
        return _correlate_pixels(x1, x2, rows, cols)
    return _correlate(x1, x2, rows, cols)


class _Correlation(torch.autograd.Function):
    """Kernel-size-1 correlation with a lean backward: only the two inputs are saved."""

    @staticmethod
    def forward(ctx, x1: Tensor, x2: Tensor, rows: _Grid, cols: _Grid, batched: bool) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x1, x2)
        ctx.grids = (rows, cols, batched)
        return _correlate_forward(x1, x2, rows, cols, batched)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x1, x2 = ctx.saved_tensors
        rows, cols, batched = ctx.grids
        g1, g2 = _CorrelationBackward.apply(grad, x1, x2, rows, cols, ctx.needs_input_grad[:2], batched)
        return g1, g2, None, None, None


class _CorrelationBackward(torch.autograd.Function):
    """The backward of :class:`_Correlation` as a function of its own, so that double backward works.

    Both gradients are bilinear: g1 = A(grad, x2) and g2 = A'(grad, x1), so their derivatives are the forward op
    and the other adjoint, evaluated again.
    """

    @staticmethod
    def forward(ctx, grad, x1, x2, rows, cols, needs, batched):  # type: ignore[override]
        ctx.save_for_backward(grad, x1, x2)
        ctx.grids = (rows, cols, batched)
        ctx.needs = needs
        if batched:
            backward = _correlate_batched_backward
        elif not _tracing() and _pixels_fit(x1, rows, cols, backward=True):
            backward = _correlate_pixels_backward
        else:
            backward = _correlate_backward
        g1, g2 = backward(grad.contiguous(), x1, x2, rows, cols, needs[0], needs[1])
        # autograd.Function outputs must be tensors: return empty placeholders where no gradient is wanted
        empty = x1.new_empty(0)
        return (g1 if g1 is not None else empty), (g2 if g2 is not None else empty)

    @staticmethod
    def backward(ctx, gg1: Tensor, gg2: Tensor):  # type: ignore[override]
        grad, x1, x2 = ctx.saved_tensors
        rows, cols, batched = ctx.grids
        need_grad, need_x1, need_x2 = ctx.needs_input_grad[:3]
        has1, has2 = ctx.needs
        d_grad = d_x1 = d_x2 = None
        # g1 = sum grad * x2(shifted): d/d grad -> corr(gg1, x2); d/d x2 -> adjoint of x2 with (grad, gg1)
        # g2 = sum grad * x1(shifted): d/d grad -> corr(x1, gg2); d/d x1 -> adjoint of x1 with (grad, gg2)
        if need_grad:
            d_grad = torch.zeros_like(grad)
            if has1 and gg1.numel():
                d_grad = d_grad + _Correlation.apply(gg1, x2, rows, cols, batched)
            if has2 and gg2.numel():
                d_grad = d_grad + _Correlation.apply(x1, gg2, rows, cols, batched)
        if need_x2 and has1 and gg1.numel():
            d_x2 = _CorrelationBackward.apply(grad, gg1, x2, rows, cols, (False, True), batched)[1]
        if need_x1 and has2 and gg2.numel():
            d_x1 = _CorrelationBackward.apply(grad, x1, gg2, rows, cols, (True, False), batched)[0]
        return d_grad, d_x1, d_x2, None, None, None, None


def _validate_inputs(input1: object, input2: object) -> tuple[Tensor, Tensor]:
    for name, value in (("input1", input1), ("input2", input2)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
        if value.dim() != 4:
            raise ValueError(f"{name}: expected a 4-D tensor (B, C, H, W), got shape {tuple(value.shape)}")
        if not value.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
    input1, input2 = cast(Tensor, input1), cast(Tensor, input2)
    if input2.dtype != input1.dtype:
        raise TypeError(f"input2: expected the same dtype as input1 ({input1.dtype}), got {input2.dtype}")
    if input2.device != input1.device:
        raise ValueError(f"input2: expected the same device as input1 ({input1.device}), got {input2.device}")
    if input2.shape != input1.shape:
        raise ValueError(f"input2: expected the same shape as input1 {tuple(input1.shape)}, got {tuple(input2.shape)}")
    return input1, input2


def _sample(
    x1: Tensor,
    x2: Tensor,
    kernel_size: tuple[int, int],
    patch_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    dilation_patch: tuple[int, int],
) -> Tensor:
    """The op on validated arguments. TorchScript compiles it; eager mode routes the core through autograd."""
    kh, kw = kernel_size
    sh, sw = stride
    dh, dw = dilation
    batch, channels, height, width = x1.shape
    oh = _output_extent(height, kh, sh, padding[0], dh)
    ow = _output_extent(width, kw, sw, padding[1], dw)
    if oh < 0 or ow < 0:
        raise ValueError(
            "kernel_size: the dilated kernel ("
            + str((kh - 1) * dh + 1)
            + ", "
            + str((kw - 1) * dw + 1)
            + ") does not fit the padded input ("
            + str(height + 2 * padding[0])
            + ", "
            + str(width + 2 * padding[1])
            + ")"
        )
    if not torch.jit.is_scripting():
        if batch > 0 and oh > 0 and ow > 0 and channels > 0 and _use_triton(x1):
            return _sample_triton(x1, x2, [kernel_size, patch_size, stride, padding, dilation, dilation_patch])
    dtype = x1.dtype
    if dtype == torch.float16 or dtype == torch.bfloat16:
        # Accumulate half precision in float32 (the original sums fp16 products in fp16 on CUDA and overflows).
        x1, x2 = x1.float(), x2.float()
    if batch == 0 or oh == 0 or ow == 0 or channels == 0:
        # nothing to sum: zeros of the right shape, still connected to both inputs for autograd
        out = x1.new_zeros(batch, patch_size[0], patch_size[1], oh, ow) + 0.0 * (x1.sum() + x2.sum())
        return out.to(dtype)
    if kh == 1 and kw == 1:
        rows = (height, -padding[0], sh, oh, patch_size[0], dilation_patch[0])
        cols = (width, -padding[1], sw, ow, patch_size[1], dilation_patch[1])
        return _apply(x1, x2, rows, cols).to(dtype)
    # Both pixels of a kernel term move together, so a k x k correlation is the kernel-size-1 correlation on the
    # dense grid of every pixel the windows touch, summed over the (dilated, strided) window.
    rows = (height, -padding[0], 1, (oh - 1) * sh + (kh - 1) * dh + 1, patch_size[0], dilation_patch[0])
    cols = (width, -padding[1], 1, (ow - 1) * sw + (kw - 1) * dw + 1, patch_size[1], dilation_patch[1])
    dense = _apply(x1, x2, rows, cols)
    out = torch.zeros_like(dense[..., :oh, :ow])
    for i in range(kh):
        for j in range(kw):
            out = out + dense[..., i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw]
    return out.to(dtype)


_BACKENDS = ("auto", "aten", "batched", "triton")
_BACKEND_VARIABLE = "MMTRACK_CORR_BACKEND"
_backend_override: list[str] = []  # innermost correlation_backend() last


def _checked_backend(name: object, source: str) -> str:
    if not isinstance(name, str) or name not in _BACKENDS:
        raise ValueError(f"{source}: expected one of {', '.join(_BACKENDS)}, got {name!r}")
    return name


@contextlib.contextmanager
def correlation_backend(backend: str) -> Iterator[None]:
    """Forces the implementation of :func:`spatial_correlation_sample` inside a ``with`` block.

    ``"auto"`` (the default) runs the fused Triton kernels for CUDA tensors when Triton is installed and the plain
    ATen ops otherwise (CPU, TorchScript, tracing, ONNX export). ``"aten"`` always runs the ATen ops: in eager mode,
    for a kernel-size-1, stride-1, unpadded, undilated search whose channel-last copies fit within 3x the output,
    one batched product per patch row (the pixel formulation, e.g. the motion heads' 9x9 volumes); otherwise per
    patch row and column tile (a few hundred small calls, memory <= 2x the output). ``"batched"`` runs the same
    products as a fixed handful of ATen calls (about 10 per forward, 30 per forward + backward, whatever the batch,
    patch and width) at the price of memory (copies of both inputs and a Gram of ~2-3x the output: measured 7-36x the
    output forward, more when C is large against the patch area); it is for devices where each call is costly (a
    GPU without Triton, a busy CPU); TorchScript, tracing, export and ``torch.compile`` keep ``"aten"``.
    ``"triton"`` always runs the Triton kernels (CUDA tensors, or CPU tensors under Triton's interpreter,
    ``TRITON_INTERPRET=1`` set before Triton is imported) and raises where they cannot run. All give the same
    numbers up to float rounding. The environment variable ``MMTRACK_CORR_BACKEND`` sets the default for the whole
    process; an enclosing ``with`` block wins over it.

    Args:
        backend: "auto", "aten", "batched" or "triton".

    Raises:
        ValueError: ``backend`` is not one of these names.

    Example:
        >>> f1, f2 = torch.randn(1, 8, 6, 7), torch.randn(1, 8, 6, 7)
        >>> with correlation_backend("aten"):
        ...     spatial_correlation_sample(f1, f2, patch_size=3).shape
        torch.Size([1, 3, 3, 6, 7])
    """
    _backend_override.append(_checked_backend(backend, "backend"))
    try:
        yield
    finally:
        _backend_override.pop()


@torch.jit.unused
def _selected_backend() -> str:
    if _backend_override:
        return _backend_override[-1]
    return _checked_backend(os.environ.get(_BACKEND_VARIABLE, "auto"), _BACKEND_VARIABLE)


@torch.jit.unused
def _use_triton(x1: Tensor) -> bool:
    backend = _selected_backend()
    if backend in ("aten", "batched"):
        return False
    exporting = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()
    if backend == "auto":
        return x1.device.type == "cuda" and not exporting and importlib.util.find_spec("triton") is not None
    if importlib.util.find_spec("triton") is None:
        raise ImportError("correlation backend 'triton' needs Triton: pip install triton")
    if exporting:
        raise RuntimeError("correlation backend 'triton' cannot be traced or exported; use 'aten' or 'auto'")
    from mmtrack_corr import correlation_triton

    if x1.device.type != "cuda" and not (x1.device.type == "cpu" and correlation_triton.INTERPRET):
        raise RuntimeError(
            f"correlation backend 'triton': expected CUDA tensors (or CPU tensors with TRITON_INTERPRET=1 set "
            f"before Triton is imported), got device {x1.device}"
        )
    return True


@torch.jit.unused
def _sample_triton(x1: Tensor, x2: Tensor, pairs: list[tuple[int, int]]) -> Tensor:
    from mmtrack_corr.correlation_triton import triton_correlation

    return triton_correlation(x1, x2, [value for pair in pairs for value in pair])


def _apply(x1: Tensor, x2: Tensor, rows: _Grid, cols: _Grid) -> Tensor:
    if torch.jit.is_scripting():
        return _correlate(x1, x2, rows, cols)  # TorchScript: plain ops, autograd differentiates them
    return _apply_eager(x1, x2, rows, cols)


@torch.jit.unused
def _apply_eager(x1: Tensor, x2: Tensor, rows: _Grid, cols: _Grid) -> Tensor:
    # torch.compile / export trace the loop path: the batched one needs storage offsets, which Dynamo cannot trace
    tracing = _tracing()
    batched = not tracing and _selected_backend() == "batched"
    if torch.is_grad_enabled() and (x1.requires_grad or x2.requires_grad):
        return _Correlation.apply(x1, x2, rows, cols, batched)
    if tracing:  # the plain loop of ATen ops, no autograd.Function and no storage offsets in the graph
        return _correlate(x1, x2, rows, cols)
    return _correlate_forward(x1, x2, rows, cols, batched)


def spatial_correlation_sample(
    input1: Tensor,
    input2: Tensor,
    kernel_size: _IntPair = 1,
    patch_size: _IntPair = 1,
    stride: _IntPair = 1,
    padding: _IntPair = 0,
    dilation: _IntPair = 1,
    dilation_patch: _IntPair = 1,
) -> Tensor:
    """Correlates two feature maps over a window of displacements, exactly as ``spatial_correlation_sampler``.

    ``out[n, ph, pw, h, w] = sum_c sum_{i<kH, j<kW} input1[n, c, y, x] * input2[n, c, y + dy, x + dx]`` with
    ``y = h * strideH - padH + i * dilationH`` (``x`` likewise), ``dy = (ph - (PatchH - 1) // 2) * dilation_patchH``
    and ``dx = (pw - (PatchW - 1) // 2) * dilation_patchW``. A term with either pixel outside the image is zero.
    The kernel window is anchored at its top-left corner; there is no normalisation (callers divide by C).
    Even patch sizes are asymmetric: PatchW=4, dilation_patch=1 searches dx in {-1, 0, 1, 2}.

    Output size, with C-style truncation toward zero:
    ``oH = trunc((H + 2 * padH - ((kH - 1) * dilationH + 1)) / strideH) + 1``, ``oW`` likewise.

    float16 / bfloat16 inputs are accumulated in float32 and the result is returned in the input dtype.

    Args:
        input1: features of frame t-1, shape (B, C, H, W), floating point.
        input2: features of frame t, same shape, dtype and device as ``input1``.
        kernel_size: correlation window (kH, kW) summed at each output position; an int or a pair.
        patch_size: number of displacements searched (PatchH, PatchW); an int or a pair.
        stride: output stride; displacements are not scaled by it.
        padding: zero padding; moves and enlarges the output grid, does not limit displacements.
        dilation: spacing of the kernel window (no effect at kernel_size 1).
        dilation_patch: spacing of the displacements, in input pixels.

    Returns:
        Contiguous tensor of shape (B, PatchH, PatchW, oH, oW), dtype and device of the inputs.

    Raises:
        TypeError: an input is not a floating-point tensor, dtypes differ, or an argument is not an int / pair.
        ValueError: inputs are not 4-D, differ in shape or device, an argument is out of range, or the dilated
            kernel does not fit the padded input.

    Example:
        >>> f1, f2 = torch.randn(2, 64, 19, 34), torch.randn(2, 64, 19, 34)
        >>> spatial_correlation_sample(f1, f2, kernel_size=1, patch_size=9).shape
        torch.Size([2, 9, 9, 19, 34])
    """
    x1, x2 = _validate_inputs(input1, input2)
    return _sample(x1, x2, *_validate_arguments(kernel_size, patch_size, stride, padding, dilation, dilation_patch))


def _validate_arguments(
    kernel_size: object, patch_size: object, stride: object, padding: object, dilation: object, dilation_patch: object
) -> tuple[tuple[int, int], ...]:
    return (
        _pair("kernel_size", kernel_size, 1),
        _pair("patch_size", patch_size, 1),
        _pair("stride", stride, 1),
        _pair("padding", padding, 0),
        _pair("dilation", dilation, 1),
        _pair("dilation_patch", dilation_patch, 1),
    )


class SpatialCorrelationSampler(nn.Module):
    """Module form of :func:`spatial_correlation_sample`, with the original's six arguments in the same order.

    It keeps its arguments as given (``sampler.patch_size`` is what was passed) and has no parameters or buffers,
    so it can replace the C++ extension's module in existing models, ``state_dict`` included.

    Args:
        kernel_size: correlation window (kH, kW).
        patch_size: number of displacements searched (PatchH, PatchW).
        stride: output stride.
        padding: zero padding of the output grid.
        dilation: spacing of the kernel window.
        dilation_patch: spacing of the displacements.

    Raises:
        TypeError, ValueError: an argument is not an int / pair of ints in its range.

    Example:
        >>> sampler = SpatialCorrelationSampler(1, 9, 1, 0, 1)  # MM-Tracker's call
        >>> sampler(torch.randn(1, 32, 19, 34), torch.randn(1, 32, 19, 34)).shape
        torch.Size([1, 9, 9, 19, 34])
    """

    def __init__(
        self,
        kernel_size: _IntPair = 1,
        patch_size: _IntPair = 1,
        stride: _IntPair = 1,
        padding: _IntPair = 0,
        dilation: _IntPair = 1,
        dilation_patch: _IntPair = 1,
    ) -> None:
        super().__init__()
        checked = _validate_arguments(kernel_size, patch_size, stride, padding, dilation, dilation_patch)
        self.kernel_size = kernel_size
        self.patch_size = patch_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.dilation_patch = dilation_patch
        # the validated pairs, under private names, for TorchScript (which needs fixed types)
        self._kernel_size, self._patch_size, self._stride = checked[0], checked[1], checked[2]
        self._padding, self._dilation, self._dilation_patch = checked[3], checked[4], checked[5]

    def forward(self, input1: Tensor, input2: Tensor) -> Tensor:
        if not torch.jit.is_scripting():
            input1, input2 = _validate_inputs(input1, input2)
        return _sample(
            input1,
            input2,
            self._kernel_size,
            self._patch_size,
            self._stride,
            self._padding,
            self._dilation,
            self._dilation_patch,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, patch_size={self.patch_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, dilation_patch={self.dilation_patch}"
        )
