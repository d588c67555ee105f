"""Global-context blocks for the motion head: a selective scan, axial attention and a plain convolutional block.

All three map (B, C, H, W) -> (B, C, H, W) with a residual connection, have no data-dependent Python control flow
(ONNX opset 17 and ``torch.compile(fullgraph=True)`` work) and carry information along whole rows and columns
(the scan and the attention) or over a 7x7 neighbourhood (the convolutional block).

The scan replaces MM-Tracker's bidirectional Mamba blocks (CUDA-only ``mamba_ssm``). The original reshapes a
(B, C, H, W) map to sequences without permuting first, so its "rows" are runs of channels, not image rows; here the
map is permuted to channels-last before the reshape, so a sequence is one image row (or column).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CONTEXT_KINDS",
    "AxialAttentionBlock",
    "ContextKind",
    "ConvContextBlock",
    "SelectiveScanBlock",
    "build_context_block",
    "context_per_level",
    "selective_scan",
]

ContextKind = Literal["scan", "attention", "conv", "none"]
CONTEXT_KINDS: tuple[str, ...] = ("scan", "attention", "conv", "none")


def _rows(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B*H, W, C): one sequence per image row. Permute first, then reshape."""
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b * h, w, c)


def _cols(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B*W, H, C): one sequence per image column."""
    b, c, h, w = x.shape
    return x.permute(0, 3, 2, 1).reshape(b * w, h, c)


def _from_rows(y: Tensor, shape: torch.Size) -> Tensor:
    b, c, h, w = shape
    return y.reshape(b, h, w, c).permute(0, 3, 1, 2)


def _from_cols(y: Tensor, shape: torch.Size) -> Tensor:
    b, c, h, w = shape
    return y.reshape(b, w, h, c).permute(0, 3, 2, 1)


# bound on the total log-decay along one sequence: keeps exp(+-cumulative log-decay) inside float32 (e^60 ~ 1e26)
_MAX_LOG_DECAY = 60.0


def selective_scan(x: Tensor, log_decay: Tensor, b: Tensor, c: Tensor, reverse: bool = False) -> Tensor:
    """Selective state-space scan (diagonal, Mamba-style) in a parallel form: no loop over positions.

    For every sequence and channel k it computes the recurrence ``h_t = exp(log_decay_t) * h_{t-1} + b_t * x_t``
    (a state of size S per channel; ``h_{t+1}`` instead of ``h_{t-1}`` when ``reverse``) and ``y_t = c_t . h_t``.
    Unrolled, ``y_t = sum_{s <= t} (c_t . b_s) exp(L_t - L_s) x_s`` with ``L = cumsum(log_decay)``; the decay factors
    as ``exp(L_t) * exp(-L_s)`` per channel, so the scan is one batched matrix product
    ``y = exp(L) * (tril(c b^T) @ (exp(-L) * x))`` with a (T, T) matrix shared by all channels (reverse: suffix sums
    and ``triu``). This is exact; it is numerically safe while the total ``-sum(log_decay)`` of a sequence stays below
    ~80 in float32 (the blocks bound it by 60, see :class:`SelectiveScanBlock`). Computed in float32 (float64 for
    float64 inputs) whatever the input dtype.

    Args:
        x: inputs, shape (N, T, K): N sequences of length T, K channels.
        log_decay: per-step log decay (<= 0), shape (N, T, K).
        b: input projections, shape (N, T, S).
        c: output projections, shape (N, T, S).
        reverse: scan from the end of the sequence to its start.

    Returns:
        Tensor of shape (N, T, K), dtype of ``x``.

    Example:
        >>> x, b, c = torch.randn(2, 5, 3), torch.randn(2, 5, 4), torch.randn(2, 5, 4)
        >>> selective_scan(x, -torch.rand(2, 5, 3), b, c).shape
        torch.Size([2, 5, 3])
    """
    dtype = x.dtype
    work = torch.promote_types(dtype, torch.float32)  # half precision would overflow exp(-cum)
    x, log_decay, b, c = x.to(work), log_decay.to(work), b.to(work), c.to(work)
    cum = torch.cumsum(log_decay, dim=1)  # (N, T, K)
    if reverse:  # suffix sums: sum_{r >= t} log_decay_r, so the decay from s back to t is exp(cum_t - cum_s)
        cum = log_decay + cum[:, -1:] - cum
    scores = c @ b.transpose(1, 2)  # (N, T, T): [t, s] = c_t . b_s
    mixing = torch.triu(scores) if reverse else torch.tril(scores)
    y = torch.exp(cum) * (mixing @ (torch.exp(-cum) * x))
    return y.to(dtype)


class _BidirectionalScan(nn.Module):
    """One axis of the scan block: selective scans forward and backward along sequences (N, T, C) -> (N, T, C)."""

    def __init__(self, channels: int, state: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(channels, 2 * channels)  # x and gate z
        self.dt_proj = nn.Linear(channels, 2 * channels)  # step sizes per channel and direction
        self.bc_proj = nn.Linear(channels, 4 * state)  # b and c per direction
        # decay rates A = exp(a_log), log-spaced over channels: memories from ~1 step to ~100+ steps at dt ~ 0.7
        self.a_log = nn.Parameter(torch.linspace(math.log(0.01), 0.0, channels).repeat(2))
        self.skip = nn.Parameter(torch.ones(channels))
        self.out_proj = nn.Linear(channels, channels)

    def forward(self, seq: Tensor) -> Tensor:
        length = seq.shape[1]
        x, z = self.in_proj(seq).chunk(2, dim=-1)
        dt = F.softplus(self.dt_proj(seq))  # (N, T, 2C)
        # Mamba's log-decay -dt * A, softly capped at 60/T per step: a whole sequence decays by at most e^-60, which
        # keeps the parallel scan exact in float32
        cap = _MAX_LOG_DECAY / length
        log_decay = -cap * torch.tanh(dt * torch.exp(self.a_log) / cap)
        dt_f, dt_b = dt.chunk(2, dim=-1)
        decay_f, decay_b = log_decay.chunk(2, dim=-1)
        b_f, c_f, b_b, c_b = self.bc_proj(seq).chunk(4, dim=-1)
        forward = selective_scan(x * dt_f, decay_f, b_f, c_f)
        backward = selective_scan(x * dt_b, decay_b, b_b, c_b, reverse=True)
        return self.out_proj((forward + backward + x * self.skip) * F.silu(z))


class SelectiveScanBlock(nn.Module):
    """Bidirectional selective scans along image rows and along image columns, with a residual.

    ``x + scan_rows(norm(x)) + scan_cols(norm(x))`` where each scan runs forward and backward over whole rows
    (columns) with input-dependent decay (Mamba-style, per channel), computed in the parallel form of
    :func:`selective_scan` (one (T, T) matrix product per row). The per-step decay is Mamba's ``-dt * A``, softly
    capped (``-cap * tanh(dt * A / cap)``, ``cap = 60 / T``) so a whole row decays by at most e^-60, which keeps that
    form exact in float32. The norm is per position (over channels), so an output depends only on its own row and
    column.

    Args:
        channels: C (a positive multiple of 4, like the other blocks).
        state: state size S per channel of each scan.

    Example:
        >>> SelectiveScanBlock(32)(torch.randn(2, 32, 5, 7)).shape
        torch.Size([2, 32, 5, 7])
    """

    def __init__(self, channels: int, state: int = 16) -> None:
        super().__init__()
        _check_channels(channels, 4)
        self.norm = nn.LayerNorm(channels)
        self.rows = _BidirectionalScan(channels, state)
        self.cols = _BidirectionalScan(channels, state)

    def forward(self, x: Tensor) -> Tensor:
        rows = self.rows(self.norm(_rows(x)))
        cols = self.cols(self.norm(_cols(x)))
        return x + _from_rows(rows, x.shape) + _from_cols(cols, x.shape)


class _AxisAttention(nn.Module):
    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, seq: Tensor) -> Tensor:
        n, t, ch = seq.shape
        q, k, v = self.qkv(seq).view(n, t, 3, self.heads, ch // self.heads).permute(2, 0, 3, 1, 4)
        # written out rather than F.scaled_dot_product_attention so the ONNX graph is plain MatMul/Softmax
        attn = torch.softmax(q @ k.transpose(-1, -2) * (ch // self.heads) ** -0.5, dim=-1)
        return self.out((attn @ v).transpose(1, 2).reshape(n, t, ch))


class AxialAttentionBlock(nn.Module):
    """Multi-head self-attention along image rows and along image columns, with a residual.

    A depthwise 3x3 convolution before the attention gives the (otherwise permutation-invariant) attention the
    positions.

    Args:
        channels: C, divisible by ``heads``.
        heads: attention heads.

    Example:
        >>> AxialAttentionBlock(32)(torch.randn(2, 32, 5, 7)).shape
        torch.Size([2, 32, 5, 7])
    """

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        _check_channels(channels, heads)
        self.pos = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.rows = _AxisAttention(channels, heads)
        self.cols = _AxisAttention(channels, heads)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos(x)
        rows = self.rows(self.norm(_rows(x)))
        cols = self.cols(self.norm(_cols(x)))
        return x + _from_rows(rows, x.shape) + _from_cols(cols, x.shape)


class ConvContextBlock(nn.Module):
    """A plain convolutional block (ConvNeXt-style): depthwise 7x7, channel norm, pointwise expand/contract, residual.

    Args:
        channels: C.
        expansion: width multiplier of the pointwise layer.

    Example:
        >>> ConvContextBlock(32)(torch.randn(2, 32, 5, 7)).shape
        torch.Size([2, 32, 5, 7])
    """

    def __init__(self, channels: int, expansion: int = 2) -> None:
        super().__init__()
        _check_channels(channels, 1)
        self.dw = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.pw1 = nn.Linear(channels, expansion * channels)
        self.pw2 = nn.Linear(expansion * channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        y = self.dw(x).permute(0, 2, 3, 1)  # channels-last for the per-position layers
        return x + self.pw2(F.gelu(self.pw1(self.norm(y)))).permute(0, 3, 1, 2)


def build_context_block(kind: str, channels: int) -> nn.Module:
    """The global-context block named ``kind`` ("scan", "attention", "conv" or "none" for identity).

    Args:
        kind: one of :data:`CONTEXT_KINDS`.
        channels: C of the (B, C, H, W) map the block runs on.

    Returns:
        A module mapping (B, C, H, W) -> (B, C, H, W).

    Raises:
        ValueError: unknown ``kind``, or ``channels`` not a positive int divisible by the block's heads (4).

    Example:
        >>> build_context_block("scan", 16)(torch.randn(1, 16, 3, 4)).shape
        torch.Size([1, 16, 3, 4])
    """
    if kind == "scan":
        return SelectiveScanBlock(channels)
    if kind == "attention":
        return AxialAttentionBlock(channels)
    if kind == "conv":
        return ConvContextBlock(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"context: expected one of {CONTEXT_KINDS}, got {kind!r}")


def context_per_level(context: str) -> tuple[str, str, str]:
    """The block kind at strides 8, 16 and 32 named by a context spec.

    Args:
        context: one kind for every level ("scan"), or three comma-separated kinds for strides 8, 16, 32
            ("conv,scan,scan").

    Returns:
        (kind at stride 8, at 16, at 32).

    Raises:
        ValueError: an unknown kind or not 1 or 3 kinds.

    Example:
        >>> context_per_level("conv,scan,scan")
        ('conv', 'scan', 'scan')
    """
    kinds = tuple(k.strip() for k in str(context).split(","))
    if len(kinds) not in (1, 3) or any(k not in CONTEXT_KINDS for k in kinds):
        raise ValueError(
            f"context: expected one of {CONTEXT_KINDS} or three of them comma-separated (strides 8,16,32), "
            f"got {context!r}"
        )
    return (kinds[0], kinds[0], kinds[0]) if len(kinds) == 1 else (kinds[0], kinds[1], kinds[2])


def _check_channels(channels: object, heads: int) -> None:
    if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0 or channels % heads:
        raise ValueError(f"channels: expected a positive int divisible by {heads}, got {channels!r}")
