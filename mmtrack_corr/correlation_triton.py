"""The correlation op as hand-written Triton kernels: one launch for the forward, one per input gradient.

Used by :mod:`mmtrack_corr.correlation` for CUDA tensors when Triton is installed (see ``correlation_backend``).
Same contract as the ATen path (SPEC.md): every kernel size, patch size, stride, padding, dilation and
dilation_patch, even patches included; float16 / bfloat16 are read in their own dtype and summed in float32
(float64 in float64), the result written in the input dtype.

The three kernels are registered as ``torch.library`` custom ops (``mmtrack_corr::triton_correlation`` and its two
adjoints), so ``torch.compile(fullgraph=True)`` treats each as one opaque call, autograd differentiates them to any
order (the op is bilinear: each derivative is again one of the three kernels), and a CUDA graph captures plain
kernel launches. Each program owns the output elements it writes (no atomics), so results are deterministic.

Triton's CPU interpreter (``TRITON_INTERPRET=1`` set before Triton is imported) runs the same kernels on CPU
tensors; the tests use it. The interpreter has no bfloat16, so there bfloat16 is computed in float32.

Kernel layout (forward): one program per (output row h x patch row ph, block of BLOCK_W output columns, batch item).
It computes all PatchW displacements of that patch row, looping over the kernel window and channel blocks: each step
loads a (BLOCK_C, BLOCK_W) tile of ``input1`` once and the (BLOCK_C, BLOCK_P, BLOCK_W) tile of ``input2`` it meets
and adds their products into a float32 (BLOCK_C, BLOCK_P, BLOCK_W) accumulator, reduced over channels once at the
end. Backward: one program per (batch item x channel block, input
row, block of input columns) of the gradient being built, looping over patch rows and the kernel window;
the output position that an input pixel feeds is found by exact division (a pixel between strided positions
feeds none).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised where triton is absent
    triton = None
    tl = None

__all__ = [
    "INTERPRET",
    "TRITON_AVAILABLE",
    "triton_correlation",
    "triton_correlation_grad_input1",
    "triton_correlation_grad_input2",
]

TRITON_AVAILABLE = triton is not None
# Triton reads the variable when it is imported; this records what it saw.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

# params: (kH, kW, PatchH, PatchW, strideH, strideW, padH, padW, dilationH, dilationW, dilation_patchH, dilation_patchW)
_NUM_PARAMS = 12
_TILE_ELEMENTS = 8192  # elements of the register tiles (BLOCK_C x BLOCK_P x BLOCK_W): 32 per thread at 8 warps
_NUM_WARPS = 8


def _next_power_of_2(value: int) -> int:
    return 1 << max(0, value - 1).bit_length()


def _blocks(patch_w: int) -> tuple[int, int, int]:
    """(BLOCK_C, BLOCK_P, BLOCK_W) for a patch width: all displacements of a patch row in one tile."""
    block_p = _next_power_of_2(patch_w)
    block_w = 32 if block_p <= 32 else 16
    room = max(1, min(32, _TILE_ELEMENTS // (block_p * block_w)))
    return 1 << (room.bit_length() - 1), block_p, block_w  # the largest power of two that fits


def _extent(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    span = size + 2 * padding - ((kernel - 1) * dilation + 1)
    return span // stride + 1 if span >= 0 else -((-span) // stride) + 1


def _output_grid(shape: Sequence[int], params: Sequence[int]) -> tuple[int, int]:
    kh, kw, _, _, sh, sw, padh, padw, dh, dw = params[:10]
    return _extent(shape[2], kh, sh, padh, dh), _extent(shape[3], kw, sw, padw, dw)


if triton is not None:

    @triton.jit
    def _forward_kernel(
        x1_ptr,
        x2_ptr,
        out_ptr,
        C,
        H,
        W,
        OH,
        OW,
        s1b,
        s1c,
        s1h,
        s1w,
        s2b,
        s2c,
        s2h,
        s2w,
        KH,
        KW,
        PH,
        PW,
        SH,
        SW,
        PADH,
        PADW,
        DH,
        DW,
        DPH,
        DPW,
        ACC: tl.constexpr,
        BLOCK_C: tl.constexpr,
        BLOCK_P: tl.constexpr,
        BLOCK_W: tl.constexpr,
    ):
        # axis 0 (up to 2**31 - 1 programs) takes the large product oH * PatchH; axes 1 and 2 allow 65535
        pid_hp = tl.program_id(0)
        b = tl.program_id(2).to(tl.int64)
        h = pid_hp // PH
        ph = pid_hp % PH
        w = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
        pw = tl.arange(0, BLOCK_P)
        lanes = tl.arange(0, BLOCK_C)
        dy = (ph - (PH - 1) // 2) * DPH
        dx = (pw - (PW - 1) // 2) * DPW
        x1_base = x1_ptr + b * s1b
        x2_base = x2_ptr + b * s2b
        # element-wise partial sums over channel lanes; one reduction at the end instead of one per step
        acc = tl.zeros((BLOCK_C, BLOCK_P, BLOCK_W), dtype=ACC)
        for i in range(KH):
            y = h * SH - PADH + i * DH
            y2 = y + dy
            row_ok = (y >= 0) & (y < H) & (y2 >= 0) & (y2 < H)
            for j in range(KW):
                x = w * SW - PADW + j * DW
                xx = x[None, :] + dx[:, None]
                ok1 = row_ok & (x >= 0) & (x < W) & (w < OW)
                ok2 = ok1[None, :] & (xx >= 0) & (xx < W) & (pw < PW)[:, None]
                for c0 in range(0, C, BLOCK_C):
                    c = c0 + lanes
                    c_ok = c < C
                    a = tl.load(
                        x1_base + c[:, None] * s1c + y * s1h + x[None, :] * s1w,
                        mask=c_ok[:, None] & ok1[None, :],
                        other=0.0,
                    ).to(ACC)
                    v = tl.load(
                        x2_base + c[:, None, None] * s2c + y2 * s2h + xx[None, :, :] * s2w,
                        mask=c_ok[:, None, None] & ok2[None, :, :],
                        other=0.0,
                    ).to(ACC)
                    acc += a[:, None, :] * v
        out = out_ptr + (((b * PH + ph) * PW + pw[:, None]) * OH + h) * OW + w[None, :]
        tl.store(out, tl.sum(acc, axis=0), mask=(pw < PW)[:, None] & (w < OW)[None, :])

    @triton.jit
    def _backward_kernel(
        grad_ptr,
        other_ptr,
        out_ptr,
        C,
        H,
        W,
        OH,
        OW,
        sgb,
        sgp,
        sgq,
        sgh,
        sgw,
        sob,
        soc,
        soh,
        sow,
        KH,
        KW,
        PH,
        PW,
        SH,
        SW,
        PADH,
        PADW,
        DH,
        DW,
        DPH,
        DPW,
        FIRST: tl.constexpr,
        ACC: tl.constexpr,
        BLOCK_C: tl.constexpr,
        BLOCK_P: tl.constexpr,
        BLOCK_W: tl.constexpr,
    ):
        # FIRST: gradient of input1 at pixel (y, x), pairing with input2 at (y + dy, x + dx);
        # else: gradient of input2 at (y, x), pairing with input1 at (y - dy, x - dx).
        y = tl.program_id(1)
        blocks_c = tl.cdiv(C, BLOCK_C)
        pid_bc = tl.program_id(0)
        b = (pid_bc // blocks_c).to(tl.int64)
        c = (pid_bc % blocks_c) * BLOCK_C + tl.arange(0, BLOCK_C)
        c_ok = c < C
        x = tl.program_id(2) * BLOCK_W + tl.arange(0, BLOCK_W)
        pw = tl.arange(0, BLOCK_P)
        dx = (pw - (PW - 1) // 2) * DPW
        if FIRST:
            xo = x[None, :] + dx[:, None]
            xs = x[None, :] + 0 * dx[:, None]
        else:
            xo = x[None, :] - dx[:, None]
            xs = xo
        col_ok = (xo >= 0) & (xo < W) & (pw < PW)[:, None] & (x < W)[None, :]
        grad_base = grad_ptr + b * sgb + pw[:, None] * sgq
        other_base = other_ptr + b * sob + c[:, None, None] * soc
        acc = tl.zeros((BLOCK_C, BLOCK_P, BLOCK_W), dtype=ACC)
        for ph in range(PH):
            dy = (ph - (PH - 1) // 2) * DPH
            if FIRST:
                yo = y + dy
                ys = y
            else:
                yo = y - dy
                ys = yo
            row_ok = (yo >= 0) & (yo < H)
            for i in range(KH):
                # output row h whose window row i is the input1 row ys: ys = h * SH - PADH + i * DH
                hn = ys + PADH - i * DH
                hn0 = tl.maximum(hn, 0)
                h = hn0 // SH
                h_ok = row_ok & (hn >= 0) & (hn0 % SH == 0) & (h < OH)
                for j in range(KW):
                    wn = xs + PADW - j * DW
                    wn0 = tl.maximum(wn, 0)
                    wq = wn0 // SW
                    ok = h_ok & col_ok & (wn >= 0) & (wn0 % SW == 0) & (wq < OW)
                    g = tl.load(grad_base + ph * sgp + h * sgh + wq * sgw, mask=ok, other=0.0).to(ACC)
                    v = tl.load(
                        other_base + yo * soh + xo[None, :, :] * sow,
                        mask=c_ok[:, None, None] & ok[None, :, :],
                        other=0.0,
                    ).to(ACC)
                    acc += g[None, :, :] * v
        out = out_ptr + ((b * C + c[:, None]) * H + y) * W + x[None, :]
        tl.store(out, tl.sum(acc, axis=1), mask=c_ok[:, None] & (x < W)[None, :])


def _accumulator(dtype: torch.dtype):  # -> tl.dtype
    return tl.float64 if dtype == torch.float64 else tl.float32


def _interpreter_dtype(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The interpreter has no bfloat16 (numpy): compute bfloat16 in float32 there."""
    if INTERPRET and tensors[0].dtype == torch.bfloat16:
        return tuple(t.float() for t in tensors)
    return tensors


def _forward(x1: Tensor, x2: Tensor, params: Sequence[int]) -> Tensor:
    batch, channels, height, width = x1.shape
    oh, ow = _output_grid(x1.shape, params)
    out_dtype = x1.dtype
    x1, x2 = _interpreter_dtype(x1, x2)
    out = torch.empty((batch, params[2], params[3], oh, ow), dtype=x1.dtype, device=x1.device)
    if out.numel() == 0:
        return out.to(out_dtype)
    block_c, block_p, block_w = _blocks(params[3])
    grid = (oh * params[2], triton.cdiv(ow, block_w), batch)
    _forward_kernel[grid](
        x1,
        x2,
        out,
        channels,
        height,
        width,
        oh,
        ow,
        *x1.stride(),
        *x2.stride(),
        *params,
        ACC=_accumulator(x1.dtype),
        BLOCK_C=block_c,
        BLOCK_P=block_p,
        BLOCK_W=block_w,
        num_warps=_NUM_WARPS,
    )
    return out.to(out_dtype)


def _backward(grad: Tensor, other: Tensor, params: Sequence[int], first: bool) -> Tensor:
    batch, channels, height, width = other.shape
    oh, ow = _output_grid(other.shape, params)
    out_dtype = other.dtype
    grad, other = _interpreter_dtype(grad.to(other.dtype), other)
    out = torch.empty((batch, channels, height, width), dtype=other.dtype, device=other.device)
    if out.numel() == 0:
        return out.to(out_dtype)
    if grad.numel() == 0:
        return out.zero_().to(out_dtype)
    block_c, block_p, block_w = _blocks(params[3])
    block_c = min(block_c, _next_power_of_2(channels))
    grid = (batch * triton.cdiv(channels, block_c), height, triton.cdiv(width, block_w))
    _backward_kernel[grid](
        grad,
        other,
        out,
        channels,
        height,
        width,
        oh,
        ow,
        *grad.stride(),
        *other.stride(),
        *params,
        FIRST=first,
        ACC=_accumulator(other.dtype),
        BLOCK_C=block_c,
        BLOCK_P=block_p,
        BLOCK_W=block_w,
        num_warps=_NUM_WARPS,
    )
    return out.to(out_dtype)


@torch.library.custom_op("mmtrack_corr::triton_correlation", mutates_args=())
def triton_correlation(input1: Tensor, input2: Tensor, params: list[int]) -> Tensor:
    """Correlation of validated inputs by the Triton forward kernel.

    Args:
        input1: features of frame t-1, shape (B, C, H, W), any strides.
        input2: features of frame t, same shape, dtype and device.
        params: the twelve ints (kH, kW, PatchH, PatchW, strideH, strideW, padH, padW, dilationH, dilationW,
            dilation_patchH, dilation_patchW), already validated.

    Returns:
        Contiguous (B, PatchH, PatchW, oH, oW) in the inputs' dtype.
    """
    return _forward(input1, input2, params)


@torch.library.custom_op("mmtrack_corr::triton_correlation_grad_input1", mutates_args=())
def triton_correlation_grad_input1(grad: Tensor, input2: Tensor, params: list[int]) -> Tensor:
    """Gradient of the correlation with respect to input1, given ``grad`` (B, PatchH, PatchW, oH, oW) and input2.

    Returns:
        Contiguous (B, C, H, W) in input2's dtype.
    """
    return _backward(grad, input2, params, True)


@torch.library.custom_op("mmtrack_corr::triton_correlation_grad_input2", mutates_args=())
def triton_correlation_grad_input2(grad: Tensor, input1: Tensor, params: list[int]) -> Tensor:
    """Gradient of the correlation with respect to input2, given ``grad`` (B, PatchH, PatchW, oH, oW) and input1.

    Returns:
        Contiguous (B, C, H, W) in input1's dtype.
    """
    return _backward(grad, input1, params, False)


@triton_correlation.register_fake
def _(input1: Tensor, input2: Tensor, params: list[int]) -> Tensor:
    oh, ow = _output_grid(input1.shape, params)
    return input1.new_empty((input1.shape[0], params[2], params[3], oh, ow))


@triton_correlation_grad_input1.register_fake
def _(grad: Tensor, input2: Tensor, params: list[int]) -> Tensor:
    return torch.empty_like(input2, memory_format=torch.contiguous_format)


@triton_correlation_grad_input2.register_fake
def _(grad: Tensor, input1: Tensor, params: list[int]) -> Tensor:
    return torch.empty_like(input1, memory_format=torch.contiguous_format)


# Autograd. out = F(x1, x2) is bilinear, G1(grad, x2) = dF/dx1^T grad and G2(grad, x1) = dF/dx2^T grad, so
# <gg, G1(grad, x2)> = <F(gg, x2), grad> = <G2(grad, gg), x2>, and likewise for G2: every derivative is one of the
# three kernels again, which gives double (and higher) backward.


def _save_inputs(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    first, second, params = inputs
    ctx.save_for_backward(first, second)
    ctx.params = params


def _forward_backward(ctx, grad: Tensor):  # type: ignore[no-untyped-def]
    x1, x2 = ctx.saved_tensors
    g1 = triton_correlation_grad_input1(grad, x2, ctx.params) if ctx.needs_input_grad[0] else None
    g2 = triton_correlation_grad_input2(grad, x1, ctx.params) if ctx.needs_input_grad[1] else None
    return g1, g2, None


def _grad_input1_backward(ctx, gg: Tensor):  # type: ignore[no-untyped-def]
    grad, x2 = ctx.saved_tensors
    d_grad = triton_correlation(gg, x2, ctx.params) if ctx.needs_input_grad[0] else None
    d_x2 = triton_correlation_grad_input2(grad, gg, ctx.params) if ctx.needs_input_grad[1] else None
    return d_grad, d_x2, None


def _grad_input2_backward(ctx, gg: Tensor):  # type: ignore[no-untyped-def]
    grad, x1 = ctx.saved_tensors
    d_grad = triton_correlation(x1, gg, ctx.params) if ctx.needs_input_grad[0] else None
    d_x1 = triton_correlation_grad_input1(grad, gg, ctx.params) if ctx.needs_input_grad[1] else None
    return d_grad, d_x1, None


triton_correlation.register_autograd(_forward_backward, setup_context=_save_inputs)
triton_correlation_grad_input1.register_autograd(_grad_input1_backward, setup_context=_save_inputs)
triton_correlation_grad_input2.register_autograd(_grad_input2_backward, setup_context=_save_inputs)
