"""Tests of mmtrack_corr.kernel_search: the MM-Tracker search form of the op."""

from __future__ import annotations

import pytest
import torch
from naive_correlation import naive_correlation

from mmtrack_corr import KernelSearchCorrelation, kernel_search_correlation, spatial_correlation_sample


def features(shape, device, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=generator).to(device=device, dtype=dtype) for _ in range(2))


def test_search_shape_mmtracker_scale(device):
    f1, f2 = features((2, 64, 19, 34), device)
    assert kernel_search_correlation(f1, f2).shape == (2, 81, 19, 34)
    assert KernelSearchCorrelation(2)(f1, f2).shape == (2, 25, 19, 34)
    assert kernel_search_correlation(f1[:0], f2[:0]).shape == (0, 81, 19, 34)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize(("d", "dp"), [(4, 1), (2, 2), (0, 1), (3, (1, 2))])
def test_search_equals_the_drop_in_op_viewed_to_channels(device, d, dp, normalize):
    f1, f2 = features((2, 16, 7, 9), device, torch.float64)
    volume = kernel_search_correlation(f1, f2, max_displacement=d, dilation_patch=dp, normalize=normalize)
    patch = 2 * d + 1
    expected = spatial_correlation_sample(f1, f2, 1, patch, 1, 0, 1, dp).view(2, patch * patch, 7, 9)
    if normalize:
        expected = expected / 16
    assert torch.equal(volume, expected)
    reference = naive_correlation(f1, f2, 1, patch, 1, 0, 1, dp).view(2, patch * patch, 7, 9) / (16 if normalize else 1)
    assert torch.allclose(volume.cpu(), reference, rtol=0, atol=1e-12)


def test_channel_holds_the_displacement_dy_major(device):
    f1 = torch.zeros(1, 1, 11, 11, device=device)
    f1[0, 0, 5, 5] = 1.0
    f2 = torch.roll(f1, shifts=(-3, 1), dims=(2, 3))  # moved 3 up, 1 right
    channel = kernel_search_correlation(f1, f2, max_displacement=4)[0, :, 5, 5].argmax().item()
    assert divmod(channel, 9) == (-3 + 4, 1 + 4)


def test_module_equals_function(device):
    f1, f2 = features((1, 8, 5, 6), device)
    module = KernelSearchCorrelation(max_displacement=3, dilation_patch=2, normalize=False)
    assert torch.equal(module(f1, f2), kernel_search_correlation(f1, f2, 3, 2, False))
    assert list(module.parameters()) == []
    assert "max_displacement=3" in repr(module)


def test_gradients_flow(device):
    f1, f2 = features((1, 4, 5, 6), device, torch.float64)
    f1.requires_grad_(True)
    f2.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: kernel_search_correlation(a, b, 2), (f1, f2))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_displacement": -1}, ValueError, r"max_displacement: expected an int >= 0, got -1"),
        ({"max_displacement": 2.0}, TypeError, r"max_displacement: expected an int, got 2.0"),
        ({"dilation_patch": 0}, ValueError, r"dilation_patch: expected values >= 1, got 0"),
    ],
)
def test_bad_arguments(device, kwargs, error, match):
    f1, f2 = features((1, 2, 5, 5), device)
    with pytest.raises(error, match=match):
        kernel_search_correlation(f1, f2, **kwargs)
    with pytest.raises(error, match=match):
        KernelSearchCorrelation(**kwargs)
    with pytest.raises(ValueError, match=r"input2: expected the same shape as input1"):
        kernel_search_correlation(f1, f2[..., :4])


def test_scripted_module(device):
    module = KernelSearchCorrelation(2)
    f1, f2 = features((1, 4, 5, 6), device)
    assert torch.equal(torch.jit.script(module)(f1, f2), module(f1, f2))
