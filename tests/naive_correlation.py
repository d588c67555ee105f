"""A deliberately naive float64 transcription of the op's formula, written from SPEC.md, for the tests.

``out[n, ph, pw, h, w] = sum_c sum_{i<kH, j<kW} x1[n, c, y, x] * x2[n, c, y + dy, x + dx]``, with
``y = h*sH - pH + i*dH``, ``x = w*sW - pW + j*dW``, ``dy = (ph - (PH-1)//2) * dpH``, ``dx = (pw - (PW-1)//2) * dpW``,
zero when either pixel is outside; ``oH = trunc((H + 2pH - ((kH-1)dH + 1)) / sH) + 1`` (C truncation).
"""

from __future__ import annotations

import math

import torch


def pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


def output_extent(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return math.trunc((size + 2 * padding - ((kernel - 1) * dilation + 1)) / stride) + 1


def naive_correlation(x1, x2, kernel_size=1, patch_size=1, stride=1, padding=0, dilation=1, dilation_patch=1):
    (kh, kw), (ph_, pw_), (sh, sw) = pair(kernel_size), pair(patch_size), pair(stride)
    (padh, padw), (dh, dw), (dph, dpw) = pair(padding), pair(dilation), pair(dilation_patch)
    x1, x2 = x1.double().cpu(), x2.double().cpu()
    batch, _, height, width = x1.shape
    oh, ow = output_extent(height, kh, sh, padh, dh), output_extent(width, kw, sw, padw, dw)
    out = torch.zeros(batch, ph_, pw_, max(oh, 0), max(ow, 0), dtype=torch.float64)
    for p in range(ph_):
        dy = (p - (ph_ - 1) // 2) * dph
        for q in range(pw_):
            dx = (q - (pw_ - 1) // 2) * dpw
            for h in range(oh):
                for w in range(ow):
                    for i in range(kh):
                        for j in range(kw):
                            y, x = h * sh - padh + i * dh, w * sw - padw + j * dw
                            if 0 <= y < height and 0 <= x < width and 0 <= y + dy < height and 0 <= x + dx < width:
                                out[:, p, q, h, w] += (x1[:, :, y, x] * x2[:, :, y + dy, x + dx]).sum(1)
    return out


# rtol relative to the output's magnitude, per dtype (STYLE.md)
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 1e-3, torch.bfloat16: 8e-3}


def assert_close_to(actual, expected, dtype=torch.float64, rtol=None):
    """Max abs error <= rtol (default: TOLERANCE[dtype]) times max(1, max |expected|)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    actual, expected = actual.double().cpu(), expected.double().cpu()
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    error = (actual - expected).abs().max().item() if expected.numel() else 0.0
    limit = TOLERANCE[dtype] if rtol is None else rtol
    assert error <= limit * scale, f"max error {error:.3g} at scale {scale:.3g} for {dtype}"


def inputs(shape, device, dtype=torch.float64, seed=0):
    """Two seeded standard-normal tensors of ``shape`` (drawn in float64, then cast)."""
    generator = torch.Generator().manual_seed(seed)
    x1 = torch.randn(shape, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    x2 = torch.randn(shape, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    return x1, x2
