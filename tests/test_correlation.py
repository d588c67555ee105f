"""Tests of mmtrack_corr.correlation against a naive float64 transcription of the original op's formula.

The comparison with the original C++ op itself lives in test_correlation_reference.py.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from naive_correlation import assert_close_to, inputs, naive_correlation, output_extent
from torch.autograd import gradcheck, gradgradcheck

from mmtrack_corr import SpatialCorrelationSampler, correlation_output_size, spatial_correlation_sample

# (shape, kernel_size, patch_size, stride, padding, dilation, dilation_patch)
CONFIGS = [
    pytest.param((2, 3, 6, 7), 1, 1, 1, 0, 1, 1, id="identity_window"),
    pytest.param((2, 3, 6, 7), 1, 5, 1, 0, 1, 1, id="flownet_style_p5"),
    pytest.param((1, 4, 9, 11), 1, 9, 1, 0, 1, 1, id="mmtracker_p9"),
    pytest.param((2, 3, 8, 9), 1, 7, 1, 0, 1, 2, id="dilation_patch_2"),
    pytest.param((2, 3, 8, 9), 1, 4, 1, 0, 1, 1, id="even_patch_4"),
    pytest.param((2, 3, 8, 9), 1, 4, 1, 0, 1, 2, id="even_patch_4_dp2"),
    pytest.param((2, 3, 8, 9), 1, (4, 6), 1, 0, 1, (2, 1), id="even_nonsquare_patch"),
    pytest.param((2, 3, 8, 9), 2, 3, 1, 0, 1, 1, id="kernel_2"),
    pytest.param((2, 3, 8, 9), 3, 3, 1, 1, 1, 1, id="kernel_3_pad_1"),
    pytest.param((2, 3, 8, 9), 3, 3, 2, 2, 2, 1, id="kernel_3_stride_2_dilation_2"),
    pytest.param((1, 2, 7, 10), (2, 3), (3, 5), (2, 3), (1, 2), (2, 1), (1, 2), id="nonsquare_everything"),
    pytest.param((1, 2, 7, 10), [2, 3], [3, 5], [2, 1], [0, 2], [1, 2], [2, 1], id="list_arguments"),
    pytest.param((2, 3, 8, 9), 1, 3, 3, 2, 1, 1, id="stride_3_pad_2"),
    pytest.param((1, 2, 3, 4), 1, 11, 1, 0, 1, 1, id="patch_larger_than_image"),
    pytest.param((1, 2, 3, 4), 1, 9, 1, 0, 1, 3, id="dilated_patch_outside_image"),
    pytest.param((2, 3, 1, 1), 1, 3, 1, 0, 1, 1, id="one_pixel"),
    pytest.param((2, 3, 1, 1), 2, 3, 1, 1, 1, 1, id="one_pixel_kernel_2_pad_1"),
    # H + 2p - ((k-1)d + 1) = 4 + 0 - 5 = -1 with stride 2: C truncation gives oH = 1 (floor would give 0)
    pytest.param((1, 2, 4, 4), 5, 3, 2, 0, 1, 1, id="truncation_edge_case"),
    pytest.param((2, 16, 5, 6), 2, (5, 3), 1, 3, 1, 1, id="padding_larger_than_kernel"),
]


@pytest.mark.parametrize(("shape", "k", "p", "s", "pad", "d", "dp"), CONFIGS)
def test_forward_matches_naive_formula(device, shape, k, p, s, pad, d, dp):
    x1, x2 = inputs(shape, device)
    out = spatial_correlation_sample(x1, x2, k, p, s, pad, d, dp)
    assert out.is_contiguous() and out.device == x1.device and out.dtype == x1.dtype
    assert_close_to(out, naive_correlation(x1, x2, k, p, s, pad, d, dp))


def test_smoke_shapes_and_keywords(device):
    x1, x2 = inputs((2, 8, 19, 34), device, torch.float32)
    out = spatial_correlation_sample(x1, x2, kernel_size=1, patch_size=9, stride=1, padding=0, dilation_patch=1)
    assert out.shape == (2, 9, 9, 19, 34)
    # MM-Tracker's call: positional (kernel_size, patch_size, stride, padding, dilation) then view to channels
    assert SpatialCorrelationSampler(1, 9, 1, 0, 1)(x1, x2).view(2, 81, 19, 34).shape == (2, 81, 19, 34)


@pytest.mark.parametrize("batch", [0, 1, 2])
def test_batch_sizes(device, batch):
    x1, x2 = inputs((batch, 3, 5, 6), device)
    out = spatial_correlation_sample(x1, x2, 1, 3)
    assert out.shape == (batch, 3, 3, 5, 6)
    assert_close_to(out, naive_correlation(x1, x2, 1, 3))


def test_zero_channels_and_empty_output_grid(device):
    x1, x2 = inputs((2, 0, 5, 6), device)
    assert torch.equal(spatial_correlation_sample(x1, x2, 1, 3), torch.zeros(2, 3, 3, 5, 6, device=device).double())
    # H + 2p - dk = -2 with stride 2 -> oH = 0: an empty grid, not an error
    x1, x2 = inputs((1, 2, 3, 3), device)
    assert spatial_correlation_sample(x1, x2, 5, 1, 2, 0).shape == (1, 1, 1, 0, 0)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation"),
    [(19, 1, 1, 0, 1), (4, 5, 2, 0, 1), (3, 5, 2, 0, 1), (10, 3, 3, 1, 2), (1, 2, 1, 1, 1), (7, 4, 4, 3, 1)],
)
def test_output_size_formula(size, kernel, stride, padding, dilation):
    expected = math.trunc((size + 2 * padding - ((kernel - 1) * dilation + 1)) / stride) + 1
    assert correlation_output_size(size, size, kernel, stride, padding, dilation) == (expected, expected)
    assert output_extent(size, kernel, stride, padding, dilation) == expected


def test_kernel_window_is_anchored_top_left(device):
    # One non-zero pixel of x1 at (0, 0): a 2x2 kernel at output (0, 0) covers it, the centred reading would not.
    x1 = torch.zeros(1, 1, 3, 3, device=device)
    x1[0, 0, 0, 0] = 1.0
    x2 = torch.ones(1, 1, 3, 3, device=device)
    out = spatial_correlation_sample(x1, x2, kernel_size=2, patch_size=1)
    assert out.shape == (1, 1, 1, 2, 2)
    assert out[0, 0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_displacement_sign_and_channel_order(device):
    # input2 is input1 moved 2 px right and 1 px down: the peak sits at dy=+1, dx=+2, flat channel dy-major
    x1 = torch.zeros(1, 1, 9, 9, device=device)
    x1[0, 0, 3, 3] = 1.0
    x2 = torch.roll(x1, shifts=(1, 2), dims=(2, 3))
    out = spatial_correlation_sample(x1, x2, 1, 5).view(1, 25, 9, 9)
    assert out[0, :, 3, 3].argmax().item() == (1 + 2) * 5 + (2 + 2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"kernel_size": 0}, ValueError, r"kernel_size: expected values >= 1, got 0", id="kernel_0"),
        pytest.param({"patch_size": -1}, ValueError, r"patch_size: expected values >= 1, got -1", id="patch_neg"),
        pytest.param({"stride": 0}, ValueError, r"stride: expected values >= 1, got 0", id="stride_0"),
        pytest.param({"stride": (1, 0)}, ValueError, r"stride: expected values >= 1, got \(1, 0\)", id="stride_0_w"),
        pytest.param({"padding": -1}, ValueError, r"padding: expected values >= 0, got -1", id="padding_neg"),
        pytest.param({"dilation": 0}, ValueError, r"dilation: expected values >= 1, got 0", id="dilation_0"),
        pytest.param({"dilation_patch": 0}, ValueError, r"dilation_patch: expected values >= 1", id="dp_0"),
        pytest.param({"patch_size": (1, 2, 3)}, ValueError, r"patch_size: expected an int or a pair", id="triple"),
        pytest.param({"patch_size": 2.5}, TypeError, r"patch_size: expected an int or a pair of ints", id="float"),
        pytest.param({"stride": True}, TypeError, r"stride: expected an int or a pair of ints", id="bool"),
        pytest.param({"kernel_size": "3"}, TypeError, r"kernel_size: expected an int", id="string"),
        pytest.param({"kernel_size": 9}, ValueError, r"the dilated kernel \(9, 9\) does not fit", id="big"),
    ],
)
def test_bad_arguments(device, kwargs, error, match):
    x1, x2 = inputs((1, 2, 5, 5), device, torch.float32)
    with pytest.raises(error, match=match):
        spatial_correlation_sample(x1, x2, **kwargs)
    if "kernel_size" in kwargs and kwargs["kernel_size"] == 9:
        return  # a valid argument that only fails against this input size
    with pytest.raises(error, match=match):
        SpatialCorrelationSampler(**kwargs)


def test_bad_inputs(device):
    x = torch.randn(1, 2, 5, 5, device=device)
    cases = [
        ((x.numpy() if device.type == "cpu" else x.tolist(), x), TypeError, r"input1: expected a torch.Tensor"),
        ((x, x[0]), ValueError, r"input2: expected a 4-D tensor \(B, C, H, W\), got shape \(2, 5, 5\)"),
        ((x[None], x[None]), ValueError, r"input1: expected a 4-D tensor"),
        ((x.long(), x.long()), TypeError, r"input1: expected a floating-point tensor, got dtype torch.int64"),
        ((x, x.double()), TypeError, r"input2: expected the same dtype as input1 \(torch.float32\), got torch.float64"),
        ((x, x.half()), TypeError, r"input2: expected the same dtype as input1"),
        ((x, x[..., :4]), ValueError, r"input2: expected the same shape as input1 \(1, 2, 5, 5\), got \(1, 2, 5, 4\)"),
        ((x.to(torch.complex64), x.to(torch.complex64)), TypeError, r"input1: expected a floating-point tensor"),
    ]
    if device.type != "cpu":
        cases.append(((x, x.cpu()), ValueError, r"input2: expected the same device as input1"))
    for args, error, match in cases:
        with pytest.raises(error, match=match):
            spatial_correlation_sample(*args, 1, 3)
        with pytest.raises(error, match=match):
            SpatialCorrelationSampler(1, 3)(*args)


def test_mismatched_devices_name_the_argument():
    meta = torch.empty(1, 2, 5, 5, device="meta")
    with pytest.raises(ValueError, match=r"input2: expected the same device as input1 \(cpu\), got meta"):
        spatial_correlation_sample(torch.randn(1, 2, 5, 5), meta)


def test_memory_layouts(device):
    base1, base2 = inputs((2, 6, 10, 12), device)
    expected = naive_correlation(base1, base2, 2, 5, 1, 1, 1, 2)
    layouts = {
        "channels_last": (
            base1.contiguous(memory_format=torch.channels_last),
            base2.contiguous(memory_format=torch.channels_last),
        ),
        "transposed_view": (base1.transpose(2, 3).contiguous().transpose(2, 3), base2),
        "strided_slices": (
            torch.zeros(2, 12, 20, 24, device=device, dtype=base1.dtype)[:, ::2, ::2, ::2].copy_(base1),
            base2,
        ),
    }
    for name, (x1, x2) in layouts.items():
        out = spatial_correlation_sample(x1, x2, 2, 5, 1, 1, 1, 2)
        assert out.is_contiguous(), name
        assert_close_to(out, expected)
    # expanded (stride 0) batch and the same tensor as both inputs
    one1, one2 = base1[:1], base2[:1]
    out = spatial_correlation_sample(one1.expand(3, -1, -1, -1), one2.expand(3, -1, -1, -1), 1, 3)
    assert_close_to(out, naive_correlation(one1, one2, 1, 3).expand(3, -1, -1, -1, -1))
    assert_close_to(spatial_correlation_sample(base1, base1, 1, 3), naive_correlation(base1, base1, 1, 3))


@pytest.mark.parametrize(
    ("k", "p", "s", "pad", "d", "dp"),
    [
        pytest.param(1, 5, 1, 0, 1, 1, id="k1_p5"),
        pytest.param(1, 4, 2, 1, 1, 2, id="even_patch_stride_2"),
        pytest.param(3, 3, 1, 1, 1, 1, id="k3"),
        pytest.param((2, 3), (3, 4), (2, 1), (1, 2), (2, 1), (1, 2), id="nonsquare"),
    ],
)
def test_gradcheck_float64(device, k, p, s, pad, d, dp):
    x1, x2 = inputs((2, 3, 5, 6), device)
    x1.requires_grad_(True)
    x2.requires_grad_(True)

    def op(a, b):
        return spatial_correlation_sample(a, b, k, p, s, pad, d, dp)

    assert gradcheck(op, (x1, x2))
    assert gradgradcheck(op, (x1, x2))  # double backward is supported


@pytest.mark.parametrize(
    ("shape", "k", "p", "s", "pad", "d", "dp"),
    [
        pytest.param((2, 4, 7, 8), 1, (5, 3), 1, 0, 1, (1, 2), id="small_channels"),
        # many channels against a small output: the backward accumulates in blocks of one row
        pytest.param((2, 96, 7, 8), 1, 3, 1, 0, 1, 1, id="row_blocks"),
        pytest.param((1, 96, 9, 8), 1, (3, 2), (2, 3), (1, 2), 1, (2, 1), id="row_blocks_strided"),
        pytest.param((1, 64, 9, 10), 2, 4, 2, 1, 2, 2, id="row_blocks_kernel_2"),
    ],
)
def test_gradient_matches_naive_autograd(device, shape, k, p, s, pad, d, dp):
    x1, x2 = inputs(shape, device)
    expected = naive_correlation(x1, x2, k, p, s, pad, d, dp)
    grad = torch.randn(expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).to(device)
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    spatial_correlation_sample(a, b, k, p, s, pad, d, dp).backward(grad)
    na, nb = x1.cpu().clone().requires_grad_(True), x2.cpu().clone().requires_grad_(True)
    naive_correlation(na, nb, k, p, s, pad, d, dp).backward(grad.cpu())
    assert_close_to(a.grad, na.grad)
    assert_close_to(b.grad, nb.grad)


def test_one_input_without_grad_and_same_tensor_twice(device):
    x1, x2 = inputs((1, 3, 6, 6), device)
    a = x1.clone().requires_grad_(True)
    assert gradcheck(lambda t: spatial_correlation_sample(t, x2, 1, 3), (a,))
    assert gradcheck(lambda t: spatial_correlation_sample(x1, t, 2, 3, 1, 1), (x2.clone().requires_grad_(True),))
    # the same tensor as both inputs: both gradient paths add up
    assert gradcheck(lambda t: spatial_correlation_sample(t, t, 1, 3, 1, 0, 1, 2), (a,))


def test_backward_saves_only_the_inputs(device):
    x1, x2 = inputs((1, 8, 9, 10), device, torch.float32)
    a, b = x1.requires_grad_(True), x2.requires_grad_(True)
    out = spatial_correlation_sample(a, b, 1, 9)
    saved = out.grad_fn.saved_tensors if hasattr(out.grad_fn, "saved_tensors") else ()
    for tensor in saved:
        assert tensor.untyped_storage().data_ptr() in (a.untyped_storage().data_ptr(), b.untyped_storage().data_ptr())


def test_empty_batch_has_gradients(device):
    x1, x2 = inputs((0, 3, 4, 5), device)
    a = x1.requires_grad_(True)
    spatial_correlation_sample(a, x2, 1, 3).sum().backward()
    assert a.grad is not None and a.grad.shape == a.shape


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_float32(device, dtype):
    x1, x2 = inputs((2, 32, 6, 7), device, dtype)
    out = spatial_correlation_sample(x1, x2, 1, 5, 1, 0, 1, 2)
    assert out.dtype == dtype
    assert_close_to(out, naive_correlation(x1, x2, 1, 5, 1, 0, 1, 2), dtype)
    # C=512 where a half-precision running sum would pass 65504: 300 products of +256 then 212 of -256.
    a = torch.full((1, 512, 2, 2), 16.0, device=device, dtype=dtype)
    b = a.clone()
    b[:, 300:] = -16.0
    result = spatial_correlation_sample(a, b, 1, 1)
    assert result.dtype == dtype and torch.isfinite(result).all()
    assert result.float().unique().tolist() == [88 * 256.0]


def test_half_precision_gradients(device):
    x1, x2 = inputs((1, 16, 5, 6), device, torch.float16)
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    spatial_correlation_sample(a, b, 1, 3).sum().backward()
    assert a.grad.dtype == torch.float16
    na, nb = x1.double().requires_grad_(True), x2.double().requires_grad_(True)
    naive_correlation(na, nb, 1, 3).sum().backward()
    assert_close_to(a.grad, na.grad, torch.float16)
    assert_close_to(b.grad, nb.grad, torch.float16)


def test_module_equals_function_and_keeps_arguments(device):
    sampler = SpatialCorrelationSampler([2, 1], (3, 5), 1, [1, 0], 1, 2)
    assert sampler.kernel_size == [2, 1] and sampler.patch_size == (3, 5) and sampler.dilation_patch == 2
    assert list(sampler.parameters()) == [] and list(sampler.buffers()) == [] and sampler.state_dict() == {}
    x1, x2 = inputs((2, 3, 6, 7), device)
    assert torch.equal(sampler(x1, x2), spatial_correlation_sample(x1, x2, [2, 1], (3, 5), 1, [1, 0], 1, 2))
    assert "patch_size=(3, 5)" in repr(sampler)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    data=st.data(),
    batch=st.integers(0, 2),
    channels=st.integers(1, 4),
    height=st.integers(1, 8),
    width=st.integers(1, 8),
)
def test_random_configurations_match_naive_formula(data, batch, channels, height, width):
    pairs = {
        name: (data.draw(st.integers(lo, hi), label=name + "_h"), data.draw(st.integers(lo, hi), label=name + "_w"))
        for name, lo, hi in [
            ("kernel_size", 1, 3),
            ("patch_size", 1, 7),
            ("stride", 1, 3),
            ("padding", 0, 2),
            ("dilation", 1, 2),
            ("dilation_patch", 1, 3),
        ]
    }
    oh, ow = correlation_output_size(
        height, width, pairs["kernel_size"], pairs["stride"], pairs["padding"], pairs["dilation"]
    )
    x1, x2 = inputs((batch, channels, height, width), "cpu", seed=height * 31 + width)
    if oh < 0 or ow < 0:
        with pytest.raises(ValueError, match="kernel_size: the dilated kernel"):
            spatial_correlation_sample(x1, x2, **pairs)
        return
    assert_close_to(spatial_correlation_sample(x1, x2, **pairs), naive_correlation(x1, x2, **pairs))


def test_torch_compile_equals_eager(device):
    sampler = SpatialCorrelationSampler(1, 5, 1, 0, 1, 2)
    compiled = torch.compile(sampler, fullgraph=True)  # fullgraph: a graph break would raise
    x1, x2 = inputs((1, 4, 6, 7), device, torch.float32)
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    out = compiled(a, b)
    expected = sampler(x1, x2)
    assert_close_to(out, expected, torch.float32)
    out.sum().backward()
    a2, b2 = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    sampler(a2, b2).sum().backward()
    assert_close_to(a.grad, a2.grad, torch.float32)
    assert_close_to(b.grad, b2.grad, torch.float32)


def test_torchscript_script_save_load_and_trace(device, tmp_path):
    sampler = SpatialCorrelationSampler(2, (3, 4), 1, 1, 1, 2)
    x1, x2 = inputs((2, 3, 6, 7), device, torch.float32)
    expected = sampler(x1, x2)
    scripted = torch.jit.script(sampler)
    assert torch.equal(scripted(x1, x2), expected)
    torch.jit.save(scripted, tmp_path / "scripted.pt")
    assert torch.equal(torch.jit.load(tmp_path / "scripted.pt", map_location=device)(x1, x2), expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # a trace is specific to the input's size
        traced = torch.jit.trace(sampler, (x1, x2))
    assert torch.equal(traced(x1, x2), expected)
    # scripted modules differentiate through plain ops
    a = x1.clone().requires_grad_(True)
    scripted(a, x2).sum().backward()
    a2 = x1.clone().requires_grad_(True)
    sampler(a2, x2).sum().backward()
    assert_close_to(a.grad, a2.grad, torch.float32)


def test_onnx_export_matches_eager(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    sampler = SpatialCorrelationSampler(1, 5, 1, 0, 1, 2)
    x1, x2 = inputs((1, 4, 6, 7), "cpu", torch.float32)
    path = tmp_path / "corr.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(sampler, (x1, x2), dynamo=True, opset_version=17, verbose=False)
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    (result,) = session.run(None, {names[0]: x1.numpy(), names[1]: x2.numpy()})
    assert_close_to(torch.from_numpy(result), sampler(x1, x2), torch.float32)


# The pixel path (kernel-size-1 grid, stride 1, no padding, dilation_patch 1, extra memory within 3x the output; the
# backward copies both inputs, so it runs for C up to about the patch area, and every configuration below fits both):
# (shape, kernel_size, patch_size); shapes smaller than the patch make windows leave the map on every side.
PIXEL_CONFIGS = [
    pytest.param((1, 4, 9, 11), 1, 9, id="mmtracker_p9"),
    pytest.param((3, 5, 6, 7), 1, 5, id="batch_3"),
    pytest.param((2, 3, 8, 9), 1, 4, id="even_patch"),
    pytest.param((2, 3, 8, 9), 1, (4, 7), id="nonsquare_patch"),
    pytest.param((2, 3, 2, 3), 1, 9, id="map_smaller_than_patch"),
    pytest.param((2, 1, 1, 1), 1, 3, id="one_pixel"),
    pytest.param((2, 1, 9, 11), 1, 9, id="one_channel_p9"),  # C = 1: one broadcast product, no batched products
    pytest.param((3, 1, 6, 7), 1, (4, 7), id="one_channel_nonsquare"),
    pytest.param((2, 3, 7, 8), 2, 3, id="kernel_2_dense_grid"),
]


@pytest.fixture
def pixel_calls(monkeypatch):
    """Counts the calls of the pixel path, so that a test shows it ran (or did not)."""
    from mmtrack_corr import correlation

    calls = []
    original, original_backward = correlation._correlate_pixels, correlation._correlate_pixels_backward

    def spy(*args):
        calls.append(args[0].shape)
        return original(*args)

    def spy_backward(*args):
        calls.append("backward")
        return original_backward(*args)

    monkeypatch.setattr(correlation, "_correlate_pixels", spy)
    monkeypatch.setattr(correlation, "_correlate_pixels_backward", spy_backward)
    return calls


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("shape", "k", "p"), PIXEL_CONFIGS)
def test_pixel_path_matches_naive_formula(device, pixel_calls, shape, k, p, channels_last):
    x1, x2 = inputs(shape, device)
    if channels_last:
        x1, x2 = (x.contiguous(memory_format=torch.channels_last) for x in (x1, x2))
    out = spatial_correlation_sample(x1, x2, k, p)
    assert pixel_calls, "the pixel path did not run"
    assert out.is_contiguous()
    assert_close_to(out, naive_correlation(x1, x2, k, p))
    # gradients: the pixel forward under autograd, the transposed products of the loop path backward
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    na, nb = x1.detach().cpu().clone().requires_grad_(True), x2.detach().cpu().clone().requires_grad_(True)
    grad = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(1))
    spatial_correlation_sample(a, b, k, p).backward(grad.to(device))
    assert "backward" in pixel_calls, "the pixel backward did not run"
    naive_correlation(na, nb, k, p).backward(grad)
    assert_close_to(a.grad, na.grad)
    assert_close_to(b.grad, nb.grad)


def test_pixel_forward_with_the_tiled_backward_where_only_the_forward_fits(device, pixel_calls):
    # channels-last input1 with C between the patch area and twice it: the forward's one copy fits the memory
    # bound, the backward's two do not, so autograd runs the tiled backward on the pixel forward's saved inputs
    x1, x2 = (x.contiguous(memory_format=torch.channels_last) for x in inputs((1, 12, 20, 20), device))
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    out = spatial_correlation_sample(a, b, 1, 3)
    grad = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(2)).to(device)
    out.backward(grad)
    assert pixel_calls and "backward" not in pixel_calls
    na, nb = x1.detach().cpu().clone().requires_grad_(True), x2.detach().cpu().clone().requires_grad_(True)
    naive_correlation(na, nb, 1, 3).backward(grad.cpu())
    assert_close_to(out, naive_correlation(x1, x2, 1, 3))
    assert_close_to(a.grad, na.grad)
    assert_close_to(b.grad, nb.grad)


@pytest.mark.parametrize("p", [3, (4, 3), 5])
def test_pixel_path_gradcheck_and_gradgradcheck(device, pixel_calls, p):
    x1, x2 = inputs((2, 2, 4, 5), device)
    x1.requires_grad_(True)
    x2.requires_grad_(True)

    def op(a, b):
        return spatial_correlation_sample(a, b, 1, p)

    assert gradcheck(op, (x1, x2), eps=1e-6, atol=1e-8)
    assert gradgradcheck(op, (x1, x2), eps=1e-6, atol=1e-8)
    assert "backward" in pixel_calls


def test_pixel_path_float32_and_half(device, pixel_calls):
    x1, x2 = inputs((2, 8, 9, 10), device, torch.float32)
    assert_close_to(spatial_correlation_sample(x1, x2, 1, 9), naive_correlation(x1, x2, 1, 9), torch.float32)
    h1, h2 = x1.to(torch.bfloat16), x2.to(torch.bfloat16)
    out = spatial_correlation_sample(h1, h2, 1, 9)
    assert out.dtype == torch.bfloat16
    assert_close_to(out, naive_correlation(h1, h2, 1, 9), torch.bfloat16)
    assert len(pixel_calls) == 2


@pytest.mark.parametrize(
    ("shape", "kwargs"),
    [
        pytest.param((1, 200, 6, 7), {"patch_size": 9}, id="channels_beyond_the_memory_bound"),
        pytest.param((1, 3, 6, 7), {"patch_size": 5, "padding": 1}, id="padding"),
        pytest.param((1, 3, 6, 7), {"patch_size": 5, "stride": 2}, id="stride"),
        pytest.param((1, 3, 6, 7), {"patch_size": 5, "dilation_patch": 2}, id="dilation_patch"),
    ],
)
def test_pixel_path_only_where_it_fits(device, pixel_calls, shape, kwargs):
    x1, x2 = inputs(shape, device)
    assert_close_to(spatial_correlation_sample(x1, x2, **kwargs), naive_correlation(x1, x2, **kwargs))
    assert not pixel_calls
