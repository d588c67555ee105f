"""``mmtrack_corr``'s correlation against the ORIGINAL C++ ``spatial_correlation_sampler`` 0.5.0.

The original runs in its own environment through ``tests/reference_op.py`` (one worker process for the whole
module); the module is skipped with the build command when that environment is absent. Every case runs in float64
and float32: forward output and both input gradients for a fixed random ``grad_output``.

Two kinds of check:

* ``test_original_matches_naive_formula``: the original equals the naive float64 formula written below (documents
  the contract of SPEC.md, independently of our implementation);
* ``test_matches_original`` and friends: ours equals the original (float64 to 1e-10, float32 to 1e-4, both relative
  to the largest magnitude of the expected tensor).

Run: ``pytest -m reference tests/test_correlation_reference.py`` (``MMTRACK_CORR_REFERENCE_PYTHON`` may point at the
reference python; default ``<checkout>/.reference-op-venv/bin/python``). ``MMTRACK_CORR_REQUIRE_REFERENCE=1`` turns
the skip into a failure (CI).
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_op import (  # noqa: E402
    REPO_ROOT,
    ReferenceCase,
    ReferenceResult,
    check_case,
    expected_output_shape,
    pair_params,
    reference_required,
    reference_skip_reason,
    run_reference,
)

import mmtrack_corr  # noqa: E402

pytestmark = pytest.mark.reference

DTYPES = {"float64": torch.float64, "float32": torch.float32}
RTOL = {torch.float64: 1e-10, torch.float32: 1e-4}


@dataclass(frozen=True)
class Spec:
    """One configuration: input shape, the op's arguments as a caller passes them, and the input layout."""

    name: str
    shape: tuple[int, int, int, int]
    params: dict[str, Any] = field(default_factory=dict)
    layout: str = "contiguous"  # or "channels_last" / "transposed" (a non-contiguous view)
    seed: int = 0


def _curated() -> list[Spec]:
    return [
        Spec("mmtracker_k1_p9", (2, 16, 6, 9), {"kernel_size": 1, "patch_size": 9}),
        Spec("defaults", (2, 3, 5, 7)),
        Spec("stride2", (2, 3, 9, 8), {"patch_size": 3, "stride": 2}),
        Spec("stride3", (1, 3, 10, 11), {"patch_size": 5, "stride": 3}),
        Spec("padding1", (2, 3, 5, 6), {"patch_size": 3, "padding": 1}),
        Spec("padding2_k3", (1, 16, 5, 6), {"kernel_size": 3, "patch_size": 3, "padding": 2}),
        Spec("kernel2", (2, 3, 6, 7), {"kernel_size": 2, "patch_size": 3}),
        Spec("kernel3_dilation2", (1, 3, 9, 10), {"kernel_size": 3, "patch_size": 3, "dilation": 2}),
        Spec("kernel_2x3_tuple", (2, 3, 7, 8), {"kernel_size": (2, 3), "patch_size": 3}),
        Spec("patch4_dp1", (2, 3, 7, 8), {"patch_size": 4}),
        Spec("patch4_dp2", (2, 3, 7, 8), {"patch_size": 4, "dilation_patch": 2}),
        Spec("patch4x6_dp1", (1, 16, 7, 9), {"patch_size": (4, 6)}),
        Spec("patch4x6_dp2", (1, 16, 7, 9), {"patch_size": (4, 6), "dilation_patch": 2}),
        Spec("patch4x6_dp_1x2", (2, 1, 6, 8), {"patch_size": (4, 6), "dilation_patch": (1, 2)}),
        Spec(
            "all_tuples_nonsquare",
            (2, 3, 9, 12),
            {
                "kernel_size": (3, 2),
                "patch_size": (5, 4),
                "stride": (2, 3),
                "padding": (1, 2),
                "dilation": (2, 1),
                "dilation_patch": (1, 2),
            },
        ),
        Spec(
            "all_lists_nonsquare",
            (1, 3, 8, 11),
            {
                "kernel_size": [2, 3],
                "patch_size": [3, 5],
                "stride": [2, 1],
                "padding": [1, 2],
                "dilation": [2, 1],
                "dilation_patch": [1, 2],
            },
        ),
        Spec("patch_larger_than_image", (2, 3, 3, 4), {"patch_size": 9}),
        Spec("patch_larger_dp2", (1, 3, 4, 5), {"patch_size": (7, 11), "dilation_patch": 2}),
        Spec("flownetc_small", (1, 8, 10, 12), {"patch_size": 21, "dilation_patch": 2}),
        Spec("batch0", (0, 3, 5, 7), {"kernel_size": 2, "patch_size": 3}),
        Spec("batch0_k1", (0, 16, 4, 4), {"patch_size": 9}),
        Spec("hw1_p3", (2, 3, 1, 1), {"patch_size": 3}),
        Spec("hw1_p1", (1, 16, 1, 1)),
        Spec("h1_wide", (2, 3, 1, 9), {"patch_size": (1, 5)}),
        Spec("truncation_h", (1, 3, 4, 9), {"kernel_size": 3, "stride": 2, "dilation": 2, "patch_size": 3}),
        Spec(
            "truncation_padded",
            (2, 3, 2, 2),
            {"kernel_size": 3, "stride": 2, "dilation": 2, "padding": 1, "patch_size": 3},
        ),
        Spec("kernel_fills_padded_input", (1, 3, 3, 3), {"kernel_size": 5, "padding": 1, "patch_size": 3}),
        Spec("channels1", (2, 1, 6, 7), {"patch_size": 5}),
        Spec("channels3", (2, 3, 6, 7), {"patch_size": 5}),
        Spec("channels16", (2, 16, 6, 7), {"patch_size": 5}),
        Spec("channels_last", (2, 8, 6, 7), {"kernel_size": 2, "patch_size": 5, "stride": 2}, "channels_last"),
        Spec("transposed_view", (2, 3, 7, 6), {"patch_size": 3, "padding": 1}, "transposed"),
    ]


def _sweep() -> list[Spec]:
    specs = []
    channels = itertools.cycle((1, 3, 16))
    grid = itertools.product((1, 2, 3), (0, 1, 2), (1, 2), (1, 2, 3, (2, 3)), (3, 4, (4, 6)), (1, 2))
    for index, (stride, padding, dilation, kernel, patch, dilation_patch) in enumerate(grid):
        params = {
            "kernel_size": kernel,
            "patch_size": patch,
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "dilation_patch": dilation_patch,
        }
        if dilation == 2 and kernel == 1:
            continue  # dilation spaces the kernel window only: no effect at kernel_size 1 (curated cases cover it)
        name = f"k{kernel}-P{patch}-s{stride}-pad{padding}-d{dilation}-dp{dilation_patch}".replace(" ", "")
        specs.append(Spec(name, (2, next(channels), 7, 9), params, seed=index + 1))
    return specs


CURATED = _curated()
SWEEP = _sweep()
ALL_SPECS = CURATED + SWEEP


def _inputs(spec: Spec, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Deterministic float64 draws, cast to ``dtype`` (both dtypes see the same numbers), laid out as asked."""
    generator = torch.Generator().manual_seed(1000 + spec.seed)
    batch, channels, height, width = spec.shape
    if spec.layout == "transposed":
        x1 = torch.randn(batch, channels, width, height, generator=generator, dtype=torch.float64)
        x2 = torch.randn(batch, channels, width, height, generator=generator, dtype=torch.float64)
        x1, x2 = x1.to(dtype).transpose(2, 3), x2.to(dtype).transpose(2, 3)
    else:
        x1 = torch.randn(spec.shape, generator=generator, dtype=torch.float64).to(dtype)
        x2 = torch.randn(spec.shape, generator=generator, dtype=torch.float64).to(dtype)
        if spec.layout == "channels_last":
            x1 = x1.contiguous(memory_format=torch.channels_last)
            x2 = x2.contiguous(memory_format=torch.channels_last)
    grad_output = torch.randn(expected_output_shape(spec.shape, spec.params), generator=generator, dtype=torch.float64)
    return x1, x2, grad_output.to(dtype)


def naive_correlation(input1: torch.Tensor, input2: torch.Tensor, **params: Any) -> torch.Tensor:
    """The op's formula, transcribed: loops over displacements and kernel taps, vectorised over n, c, h, w."""
    pairs = pair_params(params)
    (kh, kw), (patch_h, patch_w) = pairs["kernel_size"], pairs["patch_size"]
    (sh, sw), (pad_h, pad_w) = pairs["stride"], pairs["padding"]
    (dh, dw), (dph, dpw) = pairs["dilation"], pairs["dilation_patch"]
    batch, _, height, width = input1.shape
    _, _, _, out_h, out_w = expected_output_shape(input1.shape, params)
    rows, cols = torch.arange(out_h), torch.arange(out_w)

    def taps(pos: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return pos.clamp(0, max(size - 1, 0)), (pos >= 0) & (pos < size)

    channels = []
    for ph in range(patch_h):
        dy = (ph - (patch_h - 1) // 2) * dph
        for pw in range(patch_w):
            dx = (pw - (patch_w - 1) // 2) * dpw
            acc = input1.new_zeros(batch, out_h, out_w)
            for i in range(kh):
                y = rows * sh - pad_h + i * dh
                (y1, in_y1), (y2, in_y2) = taps(y, height), taps(y + dy, height)
                for j in range(kw):
                    x = cols * sw - pad_w + j * dw
                    (x1, in_x1), (x2, in_x2) = taps(x, width), taps(x + dx, width)
                    a = input1[:, :, y1][:, :, :, x1]
                    b = input2[:, :, y2][:, :, :, x2]
                    valid = ((in_y1 & in_y2)[:, None] & (in_x1 & in_x2)[None, :]).to(input1.dtype)
                    acc = acc + (a * b).sum(1) * valid
            channels.append(acc)
    return torch.stack(channels, 1).reshape(batch, patch_h, patch_w, out_h, out_w)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Same shape and dtype, and max |actual - expected| <= rtol(dtype) * max |expected|."""
    assert tuple(actual.shape) == tuple(expected.shape), f"{what}: shape {tuple(actual.shape)} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if expected.numel() == 0:
        return
    scale = expected.abs().max().item()
    error = (actual - expected).abs().max().item()
    assert error <= RTOL[expected.dtype] * scale, f"{what}: max error {error:.3e} vs magnitude {scale:.3e}"


MODULE_SPECS = [
    # MM-Tracker's positional form SpatialCorrelationSampler(1, 9, 1, 0, 1)
    Spec(
        "module_mmtracker",
        (2, 16, 7, 10),
        {"kernel_size": 1, "patch_size": 9, "stride": 1, "padding": 0, "dilation": 1},
        seed=7,
    ),
    Spec(
        "module_flownetc",
        (1, 8, 9, 11),
        {"kernel_size": 1, "patch_size": 21, "stride": 1, "padding": 0, "dilation": 1, "dilation_patch": 2},
        seed=8,
    ),
    Spec(
        "module_lists",
        (2, 3, 8, 9),
        {
            "kernel_size": [2, 1],
            "patch_size": (4, 3),
            "stride": [1, 2],
            "padding": (1, 0),
            "dilation": [2, 1],
            "dilation_patch": (2, 1),
        },
        seed=9,
    ),
]
# kernel_search_correlation(max_displacement, dilation_patch, normalize) and the original call it stands for:
# spatial_correlation_sample(f1, f2, 1, 2 * d + 1, 1, 0, 1, dilation_patch).view(B, (2d+1)^2, H, W) [/ C]
SEARCHES: list[tuple[int, int | tuple[int, int], bool]] = [
    (4, 1, True),
    (4, 1, False),
    (2, 2, True),
    (3, 1, True),
    (1, (1, 2), True),
]


def _search_spec(max_displacement: int, dilation_patch: int | tuple[int, int]) -> Spec:
    patch = 2 * max_displacement + 1
    params = {
        "kernel_size": 1,
        "patch_size": patch,
        "stride": 1,
        "padding": 0,
        "dilation": 1,
        "dilation_patch": dilation_patch,
    }
    return Spec(f"search_d{max_displacement}_dp{dilation_patch}".replace(" ", ""), (2, 12, 6, 11), params, seed=20)


@pytest.fixture(scope="module")
def reference() -> dict[tuple[str, str], ReferenceResult]:
    """The original's output and gradients for every spec and dtype, from one worker process."""
    reason = reference_skip_reason()
    if reason is not None:
        if reference_required():
            pytest.fail(f"{reason} (MMTRACK_CORR_REQUIRE_REFERENCE is set, so this is an error, not a skip)")
        pytest.skip(reason)
    keys, cases = [], []
    for spec in ALL_SPECS:
        for dtype_name, dtype in DTYPES.items():
            x1, x2, grad_output = _inputs(spec, dtype)
            keys.append((spec.name, dtype_name))
            cases.append(ReferenceCase(x1, x2, spec.params, grad_output))
    forward_only = MODULE_SPECS + [_search_spec(d, dp) for d, dp, _ in SEARCHES]
    for spec in {spec.name: spec for spec in forward_only}.values():
        x1, x2, _ = _inputs(spec, torch.float64)
        keys.append((spec.name, "forward"))
        cases.append(ReferenceCase(x1, x2, spec.params))
    return dict(zip(keys, run_reference(cases), strict=True))


def _ours(spec: Spec, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x1, x2, grad_output = _inputs(spec, dtype)
    x1.requires_grad_(True)
    x2.requires_grad_(True)
    output = mmtrack_corr.spatial_correlation_sample(x1, x2, **spec.params)
    output.backward(grad_output)
    assert x1.grad is not None and x2.grad is not None
    return output.detach(), x1.grad, x2.grad


SPEC_PARAMS = [pytest.param(spec, id=spec.name) for spec in ALL_SPECS]


@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_original_matches_naive_formula(reference: dict[tuple[str, str], ReferenceResult], spec: Spec) -> None:
    x1, x2, grad_output = _inputs(spec, torch.float64)
    x1.requires_grad_(True)
    x2.requires_grad_(True)
    output = naive_correlation(x1, x2, **spec.params)
    grad1, grad2 = torch.autograd.grad(output, (x1, x2), grad_output, allow_unused=True)
    original = reference[(spec.name, "float64")]
    assert original.grad_input1 is not None and original.grad_input2 is not None
    assert_close(original.output, output.detach(), "output")
    assert_close(original.grad_input1, grad1 if grad1 is not None else torch.zeros_like(x1), "grad_input1")
    assert_close(original.grad_input2, grad2 if grad2 is not None else torch.zeros_like(x2), "grad_input2")


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_matches_original(reference: dict[tuple[str, str], ReferenceResult], spec: Spec, dtype_name: str) -> None:
    output, grad1, grad2 = _ours(spec, DTYPES[dtype_name])
    original = reference[(spec.name, dtype_name)]
    assert original.grad_input1 is not None and original.grad_input2 is not None
    assert output.is_contiguous()
    assert_close(output, original.output, "output")
    assert_close(grad1, original.grad_input1, "grad_input1")
    assert_close(grad2, original.grad_input2, "grad_input2")


@pytest.mark.parametrize("spec", [pytest.param(spec, id=spec.name) for spec in MODULE_SPECS])
def test_module_matches_original(reference: dict[tuple[str, str], ReferenceResult], spec: Spec) -> None:
    x1, x2, _ = _inputs(spec, torch.float64)
    positional = [
        spec.params.get(name, 1 if name != "padding" else 0)
        for name in ("kernel_size", "patch_size", "stride", "padding", "dilation", "dilation_patch")
    ]
    module = mmtrack_corr.SpatialCorrelationSampler(*positional)
    assert list(module.parameters()) == [] and list(module.buffers()) == []
    assert module.kernel_size == positional[0] and module.patch_size == positional[1]
    assert module.dilation_patch == positional[5]
    assert_close(module(x1, x2), reference[(spec.name, "forward")].output, "module output")


@pytest.mark.parametrize(("max_displacement", "dilation_patch", "normalize"), SEARCHES)
def test_kernel_search_matches_original(
    reference: dict[tuple[str, str], ReferenceResult],
    max_displacement: int,
    dilation_patch: int | tuple[int, int],
    normalize: bool,
) -> None:
    """The named search equals MM-Tracker's ``spatial_correlation_sample(f1, f2, 1, 9, 1, 0, 1).view(B, 81, H, W)
    / C`` on the original (at max_displacement 4; without ``/ C`` when ``normalize`` is false)."""
    spec = _search_spec(max_displacement, dilation_patch)
    f1, f2, _ = _inputs(spec, torch.float64)
    batch, channels, height, width = spec.shape
    patch = 2 * max_displacement + 1
    expected = reference[(spec.name, "forward")].output.view(batch, patch * patch, height, width)
    if normalize:
        expected = expected / channels
    ours = mmtrack_corr.kernel_search_correlation(
        f1, f2, max_displacement=max_displacement, dilation_patch=dilation_patch, normalize=normalize
    )
    assert_close(ours, expected, "kernel_search_correlation")


def test_compat_package_matches_original(reference: dict[tuple[str, str], ReferenceResult]) -> None:
    """The checkout's ``spatial_correlation_sampler`` (same import name) gives the original's numbers."""
    import spatial_correlation_sampler as compat

    location = getattr(compat, "__file__", None)
    assert location is not None, "spatial_correlation_sampler: expected the checkout's package, got a namespace"
    assert REPO_ROOT in Path(location).resolve().parents, location
    spec = MODULE_SPECS[0]
    x1, x2, _ = _inputs(spec, torch.float64)
    expected = reference[(spec.name, "forward")].output
    assert_close(compat.spatial_correlation_sample(x1, x2, 1, 9, 1, 0, 1), expected, "compat function")
    assert_close(compat.SpatialCorrelationSampler(1, 9, 1, 0, 1)(x1, x2), expected, "compat module")


_X = torch.zeros(1, 2, 4, 5)


@pytest.mark.parametrize(
    ("case", "error", "match"),
    [
        pytest.param(ReferenceCase(_X.half(), _X.half()), ValueError, "input1: expected float32", id="float16"),
        pytest.param(ReferenceCase(_X, _X.double()), ValueError, "input2: expected dtype", id="mixed_dtypes"),
        pytest.param(ReferenceCase(_X, _X, {"stride": 0}), ValueError, "stride: expected values >= 1", id="stride0"),
        pytest.param(ReferenceCase(_X, _X[:, :, :3]), ValueError, "input2: expected the same shape", id="shapes"),
        pytest.param(ReferenceCase(_X[0], _X[0]), ValueError, "input1: expected a 4-D tensor", id="3d"),
        pytest.param(ReferenceCase(_X, _X, {"kernel_size": 9}), ValueError, "non-negative output", id="no_grid"),
        pytest.param(ReferenceCase(_X, _X, {"patch": 3}), TypeError, "params: expected names", id="unknown_name"),
        pytest.param(ReferenceCase(_X, _X, {"padding": (1, 2, 3)}), TypeError, "padding: expected an int", id="triple"),
        pytest.param(ReferenceCase(_X, _X, {}, torch.zeros(1, 1, 1, 4, 4)), ValueError, "grad_output", id="grad_shape"),
    ],
)
def test_harness_refuses_cases_that_crash_the_original(case: ReferenceCase, error: type, match: str) -> None:
    """The original aborts its process on these (SPEC.md); the harness must stop them before the worker."""
    with pytest.raises(error, match=match):
        check_case(case)
