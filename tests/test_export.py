"""Export of the correlation + motion heads: ONNX (opset 18) run by onnxruntime equals eager; torch.compile of the
heads captures one graph (fullgraph=True, no graph breaks).

Sizes are tiny so that the exports stay within seconds on 2 cores. The default run checks graph capture with the
``aot_eager`` backend (inductor's C++ code generation takes minutes here); the inductor run is marked slow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from mmtrack_corr import KernelSearchCorrelation
from mmtrack_corr.motion_head import LightMotionHead, MultiScaleMotionHead
from mmtrack_corr.motion_model import MotionModelConfig

onnx = pytest.importorskip("onnx", reason="onnx is in the [test] extra: pip install 'mmtrack-corr[test]'")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the [test] extra: pip install 'mmtrack-corr[test]'")
pytest.importorskip("onnxscript", reason="the torch.onnx exporter needs onnxscript: pip install 'mmtrack-corr[test]'")

# torch's exporter uses a pytree API it deprecates itself; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated:FutureWarning")

_CHANNELS = (8, 12, 16)
_HEADS = {"light": LightMotionHead, "multiscale": MultiScaleMotionHead}


def _features(seed: int, height: int = 64, width: int = 96) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    sizes = zip(_CHANNELS, (8, 16, 32), strict=True)
    return [torch.randn(1, c, height // s, width // s, generator=g) for c, s in sizes]


def _head(kind: str) -> nn.Module:
    torch.manual_seed(0)
    head = _HEADS[kind](_CHANNELS, MotionModelConfig().context).eval()
    with torch.no_grad():  # random weights of a trained-like magnitude: an untrained head's decoder may output zeros
        for p in head.parameters():
            p.normal_(0.0, 0.2)
    return head


class _Flat(nn.Module):
    """Six tensors in, (flow, log_scale) out: the graph signature ONNX needs."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, a: Tensor, b: Tensor, c: Tensor, d: Tensor, e: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
        out = self.head([a, b, c], [d, e, f])
        return out.flow, out.log_scale


def _run_onnx(path: Path, inputs: list[Tensor]) -> list[np.ndarray]:
    onnx.checker.check_model(onnx.load(str(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {n: x.numpy() for n, x in zip(names, inputs, strict=True)})


def _assert_close_to_magnitude(got: np.ndarray, ref: Tensor, rtol: float = 1e-4) -> None:
    ref_np = ref.detach().numpy()
    assert got.shape == ref_np.shape
    scale = max(float(np.abs(ref_np).max()), 1e-6)
    assert float(np.abs(got - ref_np).max()) <= rtol * scale, (np.abs(got - ref_np).max(), scale)


def test_correlation_onnx_equals_eager(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    f1, f2 = torch.randn(2, 16, 6, 9, generator=g), torch.randn(2, 16, 6, 9, generator=g)
    module = KernelSearchCorrelation(4).eval()
    path = tmp_path / "corr.onnx"
    torch.onnx.export(module, (f1, f2), str(path), opset_version=18, dynamo=True, verbose=False)
    (got,) = _run_onnx(path, [f1, f2])
    _assert_close_to_magnitude(got, module(f1, f2))


@pytest.mark.parametrize("kind", list(_HEADS))
def test_head_onnx_equals_eager(kind: str, tmp_path: Path) -> None:
    model = _Flat(_head(kind)).eval()
    inputs = _features(1) + _features(2)
    path = tmp_path / f"{kind}.onnx"
    torch.onnx.export(model, tuple(inputs), str(path), opset_version=18, dynamo=True, verbose=False)
    with torch.no_grad():
        flow, log_scale = model(*inputs)
    got_flow, got_log_scale = _run_onnx(path, inputs)
    assert float(flow.abs().max()) > 1.0  # a non-trivial output is being compared
    _assert_close_to_magnitude(got_flow, flow)
    _assert_close_to_magnitude(got_log_scale, log_scale)


@pytest.mark.parametrize("kind", list(_HEADS))
def test_head_compiles_without_graph_breaks(kind: str) -> None:
    torch._dynamo.reset()
    head = _head(kind)
    compiled = torch.compile(head, fullgraph=True, backend="aot_eager")
    f1, f2 = _features(1), _features(2)
    with torch.no_grad():
        got, ref = compiled(f1, f2), head(f1, f2)
    # the traced graph decomposes grid_sample (the 3-scale head's warp): equal up to float32 rounding, not bitwise
    torch.testing.assert_close(got.flow, ref.flow, rtol=1e-4, atol=1e-5 * float(ref.flow.abs().max()))
    torch.testing.assert_close(got.log_scale, ref.log_scale, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(_HEADS))
def test_head_compiles_with_inductor(kind: str) -> None:
    torch._dynamo.reset()
    head = _head(kind)
    compiled = torch.compile(head, fullgraph=True)
    f1, f2 = _features(1), _features(2)
    with torch.no_grad():
        got, ref = compiled(f1, f2), head(f1, f2)
    scale = float(ref.flow.abs().max())
    torch.testing.assert_close(got.flow, ref.flow, rtol=1e-4, atol=1e-4 * scale)
    torch.testing.assert_close(got.log_scale, ref.log_scale, rtol=1e-4, atol=1e-4 * scale)
