"""Global-context blocks: the parallel scan against a sequential recurrence, row/column reach, shapes, errors."""

from __future__ import annotations

import pytest
import torch

from mmtrack_corr.context import (
    AxialAttentionBlock,
    ConvContextBlock,
    SelectiveScanBlock,
    build_context_block,
    context_per_level,
    selective_scan,
)


def _sequential_scan(x: torch.Tensor, log_decay: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The recurrence itself, one position at a time: h_t = exp(a_t) h_{t-1} + b_t x_t, y_t = c_t . h_t."""
    n, t, k = x.shape
    h = x.new_zeros(n, b.shape[-1], k)
    ys = []
    for i in range(t):
        h = log_decay[:, i].exp().unsqueeze(1) * h + b[:, i].unsqueeze(-1) * x[:, i].unsqueeze(1)
        ys.append((c[:, i].unsqueeze(-1) * h).sum(1))
    return torch.stack(ys, 1)


def _scan_inputs(n: int, t: int, k: int, s: int, total_decay: float, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, k, generator=g, dtype=torch.float64)
    log_decay = -torch.rand(n, t, k, generator=g, dtype=torch.float64) * (2 * total_decay / t)
    b = torch.randn(n, t, s, generator=g, dtype=torch.float64)
    c = torch.randn(n, t, s, generator=g, dtype=torch.float64)
    return x, log_decay, b, c


@pytest.mark.parametrize("length", [1, 2, 9, 40])
def test_selective_scan_equals_the_recurrence(length: int) -> None:
    x, a, b, c = _scan_inputs(3, length, 5, 4, total_decay=10.0)
    torch.testing.assert_close(selective_scan(x, a, b, c), _sequential_scan(x, a, b, c), rtol=1e-10, atol=1e-10)


def test_reverse_scan_is_the_scan_of_the_reversed_sequence() -> None:
    x, a, b, c = _scan_inputs(2, 11, 3, 4, total_decay=8.0)
    expected = _sequential_scan(x.flip(1), a.flip(1), b.flip(1), c.flip(1)).flip(1)
    torch.testing.assert_close(selective_scan(x, a, b, c, reverse=True), expected, rtol=1e-10, atol=1e-10)


def test_selective_scan_float32_at_the_decay_bound_stays_accurate() -> None:
    # a 136-long row (1/8 of 1088) decaying by the full e^-60 the blocks allow: float32 must stay finite and close
    x, a, b, c = _scan_inputs(2, 136, 8, 16, total_decay=60.0, seed=1)
    a = a / a.sum(1, keepdim=True) * -60.0  # exactly -60 in total
    expected = _sequential_scan(x, a, b, c)
    got = selective_scan(x.float(), a.float(), b.float(), c.float())
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max()))


def test_selective_scan_is_causal() -> None:
    x, a, b, c = _scan_inputs(1, 12, 2, 3, total_decay=5.0)
    y = selective_scan(x, a, b, c)
    x2 = x.clone()
    x2[:, 7:] += 1.0
    y2 = selective_scan(x2, a, b, c)
    torch.testing.assert_close(y[:, :7], y2[:, :7])
    assert not torch.allclose(y[:, 7:], y2[:, 7:])


BLOCKS = [
    pytest.param(lambda c: SelectiveScanBlock(c), id="scan"),
    pytest.param(lambda c: AxialAttentionBlock(c), id="attention"),
    pytest.param(lambda c: ConvContextBlock(c), id="conv"),
]


@pytest.mark.parametrize("make", BLOCKS)
@pytest.mark.parametrize("shape", [(1, 16, 1, 1), (2, 16, 5, 7), (1, 32, 17, 30), (0, 16, 4, 4)])
def test_blocks_keep_the_shape(make, shape) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    block = make(shape[1])
    x = torch.randn(*shape)
    y = block(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def _influence(block: torch.nn.Module, h: int = 9, w: int = 11, at: tuple[int, int] = (4, 5)) -> torch.Tensor:
    """Which output positions change when one input position changes: (H, W) bool."""
    torch.manual_seed(0)
    x = torch.randn(1, 16, h, w)
    x2 = x.clone()
    x2[0, :, at[0], at[1]] += 3.0 * torch.randn(16)  # not a constant: the channel norm would remove that
    with torch.no_grad():
        return (block(x2) - block(x)).abs().amax(1)[0] > 1e-6


def test_scan_reaches_exactly_its_row_and_column() -> None:
    # permute before reshape: a sequence is an image row / column, so one pixel reaches exactly its cross
    changed = _influence(SelectiveScanBlock(16))
    expected = torch.zeros(9, 11, dtype=torch.bool)
    expected[4, :] = True
    expected[:, 5] = True
    assert torch.equal(changed, expected)


def test_attention_reaches_rows_and_columns_through_its_positional_conv() -> None:
    changed = _influence(AxialAttentionBlock(16))
    expected = torch.zeros(9, 11, dtype=torch.bool)
    expected[3:6, :] = True  # the depthwise 3x3 spreads the pixel to rows 3..5 and columns 4..6 first
    expected[:, 4:7] = True
    assert torch.equal(changed, expected)


def test_conv_block_is_local() -> None:
    changed = _influence(ConvContextBlock(16))
    expected = torch.zeros(9, 11, dtype=torch.bool)
    expected[1:8, 2:9] = True  # 7x7 depthwise neighbourhood
    assert torch.equal(changed, expected)


@pytest.mark.parametrize("kind", ["scan", "attention", "conv"])
def test_blocks_backpropagate_finite_gradients(kind: str) -> None:
    torch.manual_seed(0)
    block = build_context_block(kind, 16)
    x = torch.randn(2, 16, 6, 40, requires_grad=True)
    block(x).square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in block.parameters())


def test_none_is_identity() -> None:
    x = torch.randn(1, 8, 3, 3)
    assert build_context_block("none", 8)(x) is x


@pytest.mark.parametrize(
    ("kind", "channels", "match"),
    [
        pytest.param("mamba", 16, "context: expected one of", id="unknown_kind"),
        pytest.param("scan", 10, "channels: expected a positive int divisible by 4, got 10", id="indivisible"),
        pytest.param("attention", 0, "channels: expected a positive int", id="zero"),
    ],
)
def test_bad_arguments(kind: str, channels: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_context_block(kind, channels)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("scan", ("scan", "scan", "scan"), id="one_kind"),
        pytest.param("conv, scan,attention", ("conv", "scan", "attention"), id="per_level"),
    ],
)
def test_context_per_level(spec: str, expected: tuple[str, str, str]) -> None:
    assert context_per_level(spec) == expected


@pytest.mark.parametrize("spec", ["conv,scan", "conv,scan,scan,scan", "conv,,scan", "Scan"])
def test_context_per_level_refuses_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError, match=r"context: expected one of .* or three of them comma-separated"):
        context_per_level(spec)
