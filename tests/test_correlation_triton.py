"""Tests of the op's Triton path (mmtrack_corr.correlation_triton) and of the backend switch.

The kernels need a GPU or Triton's CPU interpreter. The interpreter is chosen by ``TRITON_INTERPRET=1`` when Triton is
first imported, so it cannot be switched on inside a test session that may already have imported Triton (and must not
leak into other modules' tests). On CPU, ``test_kernels_in_triton_interpreter`` therefore runs this same module in a
subprocess with ``TRITON_INTERPRET=1``, where the kernel tests below run on CPU tensors; in the parent process they
are skipped. On a GPU machine (``pytest --device cuda``) they run directly on CUDA tensors.

Run the interpreter tests alone: ``TRITON_INTERPRET=1 python -m pytest -q tests/test_correlation_triton.py``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from naive_correlation import assert_close_to, inputs, naive_correlation

from mmtrack_corr.correlation import SpatialCorrelationSampler, correlation_backend, spatial_correlation_sample

HAS_TRITON = importlib.util.find_spec("triton") is not None
INTERPRETER = os.environ.get("TRITON_INTERPRET") == "1"
FLOAT32_RTOL = 1e-5  # the GPU target, relative to the output's magnitude


@pytest.fixture
def kernel_device(device: torch.device) -> torch.device:
    """The device on which the kernel tests run, or a skip saying where they run instead."""
    if not HAS_TRITON:
        pytest.skip("Triton is not installed (pip install 'triton==3.8.*' on Linux x86_64 for the interpreter)")
    if device.type == "cuda":
        return device
    if not INTERPRETER:
        pytest.skip("runs on CPU only under TRITON_INTERPRET=1: see test_kernels_in_triton_interpreter")
    return device


def triton_sample(*args, **kwargs) -> torch.Tensor:
    with correlation_backend("triton"):
        return spatial_correlation_sample(*args, **kwargs)


# The contract sweep on tiny grids (the interpreter runs each program instance in numpy):
# (shape, kernel_size, patch_size, stride, padding, dilation, dilation_patch)
SWEEP = [
    pytest.param((2, 2, 4, 5), 1, 5, 1, 0, 1, 1, id="flownet_style_p5_batch_2"),
    pytest.param((1, 3, 6, 7), 1, 9, 1, 0, 1, 1, id="mmtracker_p9"),
    pytest.param((1, 3, 6, 7), 1, 5, 1, 0, 1, 2, id="dilation_patch_2"),
    pytest.param((1, 3, 5, 6), 1, 4, 1, 0, 1, 2, id="even_patch_4_dp2"),
    pytest.param((1, 3, 5, 6), 1, (4, 6), 1, 0, 1, (2, 1), id="even_nonsquare_patch"),
    pytest.param((1, 2, 4, 5), 3, 3, 1, 1, 1, 1, id="kernel_3_pad_1"),
    pytest.param((1, 2, 5, 6), 3, 3, 2, 2, 2, 1, id="kernel_3_stride_2_dilation_2"),
    pytest.param((1, 2, 7, 8), (2, 3), (3, 5), (2, 3), (1, 2), (2, 1), (1, 2), id="nonsquare_everything"),
    pytest.param((1, 2, 3, 4), 1, 9, 1, 0, 1, 3, id="dilated_patch_outside_image"),
    # H + 2p - ((k-1)d + 1) = -1 with stride 2: C truncation gives oH = 1
    pytest.param((1, 1, 4, 4), 5, 3, 2, 0, 1, 1, id="truncation_edge_case"),
]


@pytest.mark.parametrize(("shape", "k", "p", "s", "pad", "d", "dp"), SWEEP)
def test_forward_and_gradients_match_naive_formula(kernel_device, shape, k, p, s, pad, d, dp):
    x1, x2 = inputs(shape, kernel_device)
    expected = naive_correlation(x1, x2, k, p, s, pad, d, dp)
    grad = torch.randn(expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    out = triton_sample(a, b, k, p, s, pad, d, dp)
    assert out.is_contiguous() and out.dtype == x1.dtype and out.device == x1.device
    assert_close_to(out, expected)
    out.backward(grad.to(kernel_device))
    na, nb = x1.cpu().clone().requires_grad_(True), x2.cpu().clone().requires_grad_(True)
    naive_correlation(na, nb, k, p, s, pad, d, dp).backward(grad)
    assert_close_to(a.grad, na.grad)
    assert_close_to(b.grad, nb.grad)


def test_float32_within_1e5_of_float64(kernel_device):
    x1, x2 = inputs((1, 48, 5, 7), kernel_device, torch.float32)
    out = triton_sample(x1, x2, 1, 5, 1, 0, 1, 2)
    assert out.dtype == torch.float32
    assert_close_to(out, naive_correlation(x1, x2, 1, 5, 1, 0, 1, 2), torch.float32, FLOAT32_RTOL)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_float32(kernel_device, dtype):
    x1, x2 = inputs((1, 16, 4, 5), kernel_device, dtype)
    out = triton_sample(x1, x2, 1, 3)
    assert out.dtype == dtype
    assert_close_to(out, naive_correlation(x1, x2, 1, 3), dtype)
    # C=512 where a half-precision running sum would pass 65504: 300 products of +256 then 212 of -256.
    a = torch.full((1, 512, 2, 2), 16.0, device=kernel_device, dtype=dtype)
    b = a.clone()
    b[:, 300:] = -16.0
    result = triton_sample(a, b, 1, 1)
    assert result.dtype == dtype and result.float().unique().tolist() == [88 * 256.0]
    a.requires_grad_(True)
    triton_sample(a, x2.new_ones(1, 512, 2, 2), 1, 1).sum().backward()
    assert a.grad.dtype == dtype and a.grad.float().unique().tolist() == [1.0]


def test_memory_layouts_and_same_tensor_twice(kernel_device):
    base1, base2 = inputs((2, 3, 4, 5), kernel_device)
    expected = naive_correlation(base1, base2, 1, 3, 1, 1, 1, 2)
    layouts = {
        "channels_last": (
            base1.contiguous(memory_format=torch.channels_last),
            base2.contiguous(memory_format=torch.channels_last),
        ),
        "strided_slices": (
            torch.zeros(2, 6, 8, 10, device=kernel_device, dtype=base1.dtype)[:, ::2, ::2, ::2].copy_(base1),
            base2,
        ),
    }
    for name, (x1, x2) in layouts.items():
        assert torch.equal(triton_sample(x1, x2, 1, 3, 1, 1, 1, 2), triton_sample(base1, base2, 1, 3, 1, 1, 1, 2)), name
    assert_close_to(triton_sample(base1, base2, 1, 3, 1, 1, 1, 2), expected)
    # an expanded (stride 0) batch, and the same tensor as both inputs (both gradient paths add up)
    out = triton_sample(base1[:1].expand(3, -1, -1, -1), base2[:1].expand(3, -1, -1, -1), 1, 3, 1, 1, 1, 2)
    assert_close_to(out, expected[:1].expand(3, -1, -1, -1, -1))
    a = base1.clone().requires_grad_(True)
    triton_sample(a, a, 1, 3).sum().backward()
    na = base1.cpu().clone().requires_grad_(True)
    naive_correlation(na, na, 1, 3).sum().backward()
    assert_close_to(a.grad, na.grad)


def test_double_backward_matches_aten_path(kernel_device):
    x1, x2 = inputs((1, 2, 5, 6), kernel_device)

    def second_order(backend: str) -> list[torch.Tensor]:
        a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
        with correlation_backend(backend):
            out = spatial_correlation_sample(a, b, 1, (3, 4), 1, 0, 1, (1, 2))
            grad = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).view_as(out)
            grad.requires_grad_(True)
            g1, g2 = torch.autograd.grad(out, (a, b), grad, create_graph=True)
            w = torch.cos(torch.arange(g1.numel(), dtype=g1.dtype, device=g1.device)).view_as(g1)
            loss = (g1 * w).sum() + (g2 * g2 * w).sum()
            return [out, g1, g2, *torch.autograd.grad(loss, (a, b, grad))]

    for ours, reference in zip(second_order("triton"), second_order("aten"), strict=True):
        assert_close_to(ours, reference)


def test_empty_inputs_need_no_kernel(kernel_device):
    x1, x2 = inputs((0, 3, 4, 5), kernel_device)
    assert triton_sample(x1, x2, 1, 3).shape == (0, 3, 3, 4, 5)
    x1, x2 = inputs((1, 0, 4, 5), kernel_device)
    assert triton_sample(x1, x2, 1, 3).abs().sum().item() == 0.0


def test_torch_compile_fullgraph_calls_the_triton_op(kernel_device):
    graphs = []

    def recording_backend(graph_module, example_inputs):
        graphs.append(str(graph_module.graph))
        return graph_module.forward

    sampler = SpatialCorrelationSampler(1, 5, 1, 0, 1, 2)
    x1, x2 = inputs((1, 3, 5, 6), kernel_device, torch.float32)
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    with correlation_backend("triton"):
        compiled = torch.compile(sampler, fullgraph=True, backend=recording_backend)  # a graph break would raise
        out = compiled(a, b)
    assert any("triton_correlation" in graph for graph in graphs), graphs
    assert_close_to(out, naive_correlation(x1, x2, 1, 5, 1, 0, 1, 2), torch.float32)
    out.sum().backward()
    na = x1.double().cpu().requires_grad_(True)
    naive_correlation(na, x2, 1, 5, 1, 0, 1, 2).sum().backward()
    assert_close_to(a.grad, na.grad, torch.float32)


# --- the backend switch (no kernel needed) ---------------------------------------------------------------------


def test_backend_switch_validates_its_argument(monkeypatch):
    with pytest.raises(ValueError, match="backend: expected one of auto, aten, batched, triton, got 'cuda'"):
        with correlation_backend("cuda"):
            pass
    monkeypatch.setenv("MMTRACK_CORR_BACKEND", "fast")
    x1, x2 = inputs((1, 2, 3, 4), "cpu")
    expected = "MMTRACK_CORR_BACKEND: expected one of auto, aten, batched, triton, got 'fast'"
    with pytest.raises(ValueError, match=expected):
        spatial_correlation_sample(x1, x2, 1, 3)
    with correlation_backend("aten"):  # the context manager wins over the environment
        assert_close_to(spatial_correlation_sample(x1, x2, 1, 3), naive_correlation(x1, x2, 1, 3))


def test_auto_and_aten_agree_on_cpu(monkeypatch):
    x1, x2 = inputs((1, 3, 5, 6), "cpu")
    expected = spatial_correlation_sample(x1, x2, 1, 5)
    monkeypatch.setenv("MMTRACK_CORR_BACKEND", "aten")
    assert torch.equal(spatial_correlation_sample(x1, x2, 1, 5), expected)
    with correlation_backend("auto"):
        assert torch.equal(spatial_correlation_sample(x1, x2, 1, 5), expected)


@pytest.mark.skipif(INTERPRETER, reason="the interpreter runs Triton on CPU tensors")
def test_forcing_triton_on_cpu_without_the_interpreter_says_why():
    x1, x2 = inputs((1, 2, 3, 4), "cpu")
    expected = "TRITON_INTERPRET=1" if HAS_TRITON else "pip install triton"
    with pytest.raises((RuntimeError, ImportError), match=expected):
        triton_sample(x1, x2, 1, 3)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_tracing_uses_the_aten_path():
    x1, x2 = inputs((1, 2, 4, 5), "cpu", torch.float32)
    with correlation_backend("auto"):
        traced = torch.jit.trace(SpatialCorrelationSampler(1, 3), (x1, x2), check_trace=False)
    assert "triton" not in str(traced.graph)
    assert torch.equal(traced(x1, x2), spatial_correlation_sample(x1, x2, 1, 3))


@pytest.mark.skipif(INTERPRETER, reason="the interpreter does not compile")
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_kernels_compile_for_sm90_without_a_gpu(dtype):
    """Triton's compiler (with the ptxas its wheel ships) builds every kernel for an H100/H200 on any machine."""
    if not HAS_TRITON:
        pytest.skip("Triton is not installed")
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from mmtrack_corr import correlation_triton as kernels

    for patch_w in (9, 21):
        block_c, block_p, block_w = kernels._blocks(patch_w)
        constants = {"ACC": tl.float32, "BLOCK_C": block_c, "BLOCK_P": block_p, "BLOCK_W": block_w}
        for kernel, pointers, extra in (
            (kernels._forward_kernel, ("x1_ptr", "x2_ptr", "out_ptr"), {}),
            (kernels._backward_kernel, ("grad_ptr", "other_ptr", "out_ptr"), {"FIRST": True}),
            (kernels._backward_kernel, ("grad_ptr", "other_ptr", "out_ptr"), {"FIRST": False}),
        ):
            constexprs = {**constants, **extra}
            signature = {
                name: "*" + dtype if name in pointers else "constexpr" if name in constexprs else "i32"
                for name in kernel.arg_names
            }
            compiled = triton.compile(
                ASTSource(kernel, signature, constexprs), target=GPUTarget("cuda", 90, 32), options={"num_warps": 8}
            )
            assert ".target sm_90" in compiled.asm["ptx"]


# --- the interpreter run from a plain CPU session -------------------------------------------------------------------


@pytest.mark.skipif(INTERPRETER, reason="this is the interpreter subprocess")
def test_kernels_in_triton_interpreter(device):
    if device.type != "cpu":
        pytest.skip("on a GPU the kernel tests run directly")
    if not HAS_TRITON:
        pytest.skip("Triton is not installed (pip install 'triton==3.8.*' on Linux x86_64)")
    env = {**os.environ, "TRITON_INTERPRET": "1", "MMTRACK_CORR_BACKEND": "auto"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", str(Path(__file__))]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    tail = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, tail
    # the kernel tests ran, not skipped (-ra lists skip reasons)
    assert " passed" in result.stdout and "runs on CPU only" not in result.stdout, tail
