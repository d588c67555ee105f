"""Tests of the op's "batched" ATen path: a fixed handful of ATen calls whatever the batch, patch size and width.

The whole of test_correlation.py also passes with ``MMTRACK_CORR_BACKEND=batched`` (checked while developing it);
here: the contract sweep against the naive float64 formula and the loop path, gradients, double backward, and the
number of ATen calls counted the way the benchmark counts them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from naive_correlation import assert_close_to, inputs, naive_correlation
from test_correlation import CONFIGS
from torch.autograd import gradcheck, gradgradcheck

from mmtrack_corr.correlation import correlation_backend, spatial_correlation_sample

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from bench_correlation import count_aten_calls  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny float64 products: one thread avoids thread-pool waits on a busy machine (the tests' time, not results)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def batched(*args, **kwargs) -> torch.Tensor:
    with correlation_backend("batched"):
        return spatial_correlation_sample(*args, **kwargs)


@pytest.mark.parametrize(("shape", "k", "p", "s", "pad", "d", "dp"), CONFIGS)
def test_forward_and_gradients_match_naive_formula(device, shape, k, p, s, pad, d, dp):
    x1, x2 = inputs(shape, device)
    expected = naive_correlation(x1, x2, k, p, s, pad, d, dp)
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    out = batched(a, b, k, p, s, pad, d, dp)
    assert out.is_contiguous() and out.dtype == x1.dtype
    assert_close_to(out, expected)
    with torch.no_grad():
        assert_close_to(batched(x1, x2, k, p, s, pad, d, dp), expected)  # inference skips autograd
    grad = torch.randn(expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    out.backward(grad.to(device))
    na, nb = x1.cpu().clone().requires_grad_(True), x2.cpu().clone().requires_grad_(True)
    naive_correlation(na, nb, k, p, s, pad, d, dp).backward(grad)
    assert_close_to(a.grad, na.grad)
    assert_close_to(b.grad, nb.grad)


@pytest.mark.parametrize(
    ("s", "dp"),
    [
        pytest.param(1, 2, id="flownetc_like"),  # columns in 2 residue groups, one band step each
        pytest.param(2, 3, id="stride_2_dp_3"),  # lcm 6: 3 groups, outputs 2 band columns apart
        pytest.param(3, 2, id="stride_3_dp_2"),  # lcm 6: 2 groups, outputs 3 band columns apart
        pytest.param(2, 4, id="stride_2_dp_4"),  # lcm 4: 2 groups, outputs 1 band column apart
        pytest.param(4, 2, id="stride_4_dp_2"),  # lcm 4: 1 group, outputs 2 band columns apart
    ],
)
def test_column_groups_of_dilated_patches_on_wide_maps(device, s, dp):
    """Maps wide enough for several tiles per column group, every group count, padding on both sides."""
    x1, x2 = inputs((2, 3, 5, 150), device)
    args = (1, (3, 5), (1, s), (0, 3), 1, (1, dp))
    expected = naive_correlation(x1, x2, *args)
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    out = batched(a, b, *args)
    assert_close_to(out, expected)
    grad = torch.randn(expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    out.backward(grad.to(device))
    na, nb = x1.cpu().clone().requires_grad_(True), x2.cpu().clone().requires_grad_(True)
    naive_correlation(na, nb, *args).backward(grad)
    assert_close_to(a.grad, na.grad)
    assert_close_to(b.grad, nb.grad)


@pytest.mark.parametrize(
    ("k", "p", "s", "pad", "d", "dp"),
    [
        pytest.param(1, 5, 1, 0, 1, 1, id="k1_p5"),
        pytest.param(1, 4, 2, 1, 1, 2, id="even_patch_stride_2"),
        pytest.param((2, 3), (3, 4), (2, 1), (1, 2), (2, 1), (1, 2), id="nonsquare"),
    ],
)
def test_gradcheck_and_double_backward(device, k, p, s, pad, d, dp):
    x1, x2 = inputs((1, 2, 4, 5), device)
    x1.requires_grad_(True)
    x2.requires_grad_(True)

    def op(a, b):
        return batched(a, b, k, p, s, pad, d, dp)

    assert gradcheck(op, (x1, x2))
    if k == 1 and p == 5:  # the double backward is the same code for every configuration: one small check
        small1, small2 = x1[:, :1, :3].detach().requires_grad_(True), x2[:, :1, :3].detach().requires_grad_(True)
        assert gradgradcheck(op, (small1, small2))


def test_same_numbers_as_the_loop_path_in_float32(device):
    x1, x2 = inputs((2, 64, 19, 34), device, torch.float32)
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    out = batched(a, b, 1, 9)
    with correlation_backend("aten"):
        expected = spatial_correlation_sample(x1, x2, 1, 9)
    assert_close_to(out, expected, torch.float32)
    out.sum().backward()
    a2, b2 = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    with correlation_backend("aten"):
        spatial_correlation_sample(a2, b2, 1, 9).sum().backward()
    assert_close_to(a.grad, a2.grad, torch.float32)
    assert_close_to(b.grad, b2.grad, torch.float32)


@pytest.mark.parametrize(
    ("shape", "params"),
    [
        pytest.param((1, 8, 19, 34), {"patch_size": 9}, id="mmtracker_1/32_shape"),
        pytest.param((3, 8, 19, 34), {"patch_size": 9}, id="batch_3"),
        pytest.param((1, 8, 19, 97), {"patch_size": 9}, id="wide"),
        pytest.param((1, 8, 24, 32), {"patch_size": 21, "dilation_patch": 2}, id="flownetc_patch"),
        pytest.param((2, 8, 24, 32), {"patch_size": 5, "stride": 2, "padding": 1}, id="strided_padded"),
    ],
)
def test_aten_call_count_is_fixed(shape, params):
    x1, x2 = inputs(shape, "cpu", torch.float32)
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)

    def forward() -> None:
        with torch.no_grad():
            batched(x1, x2, **params)

    def forward_backward() -> None:
        batched(a, b, **params).sum().backward()

    forward_backward()
    # the same figures for every batch, patch size and width (measured: 9 and 34, autograd's own calls included)
    assert count_aten_calls(forward) == 9
    assert count_aten_calls(forward_backward) == 34


def test_default_path_call_count_is_fixed_where_the_pixel_products_run():
    # the default ("aten") forward and backward of a 9x9 search with small C run the pixel products: patch rows
    # + a few calls, the same for every batch and width (edge masks cached per map size after the first call; C=1
    # would skip the channels-last copy of input1, which is then a view)
    counts, both = set(), set()
    for shape in ((1, 4, 19, 34), (3, 4, 19, 97), (2, 4, 40, 20), (1, 2, 76, 136)):
        x1, x2 = inputs(shape, "cpu", torch.float32)
        with torch.no_grad():
            counts.add(count_aten_calls(lambda x1=x1, x2=x2: spatial_correlation_sample(x1, x2, 1, 9)))
        a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
        both.add(count_aten_calls(lambda a=a, b=b: spatial_correlation_sample(a, b, 1, 9).sum().backward()))
    assert len(counts) == 1 and counts.pop() <= 24
    assert len(both) == 1 and both.pop() <= 64  # forward + backward (the pixel backward: 2 x 9 products)


def test_one_channel_forward_is_one_product_whatever_the_patch():
    # C = 1: every output is a single product, computed as one broadcast multiply over all patch rows, written in
    # the op's layout: the same few calls for every batch, width and patch size (no batched products, no stacking)
    counts = set()
    for shape, p in (((1, 1, 19, 34), 9), ((2, 1, 76, 136), 9), ((1, 1, 40, 50), 21), ((3, 1, 20, 30), (5, 7))):
        x1, x2 = inputs(shape, "cpu", torch.float32)
        with torch.no_grad():
            counts.add(count_aten_calls(lambda x1=x1, x2=x2, p=p: spatial_correlation_sample(x1, x2, 1, p)))
            out = spatial_correlation_sample(x1, x2, 1, p)
        assert out.is_contiguous()
        torch.testing.assert_close(out, naive_correlation(x1, x2, 1, p).to(out.dtype), rtol=0, atol=0)
    assert len(counts) == 1 and counts.pop() <= 12
