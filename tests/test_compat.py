"""The compatibility package: code written for the C++ extension imports and runs unchanged."""

from __future__ import annotations

import torch

import mmtrack_corr
import spatial_correlation_sampler
from spatial_correlation_sampler import SpatialCorrelationSampler, spatial_correlation_sample


def test_same_objects_as_mmtrack_corr():
    assert SpatialCorrelationSampler is mmtrack_corr.SpatialCorrelationSampler
    assert spatial_correlation_sample is mmtrack_corr.spatial_correlation_sample
    assert sorted(spatial_correlation_sampler.__all__) == ["SpatialCorrelationSampler", "spatial_correlation_sample"]


def test_flownetc_style_usage():
    # FlowNetC / PWC-Net: patch 21 with dilation_patch 2, output viewed to 441 channels and divided by C
    correlation = SpatialCorrelationSampler(kernel_size=1, patch_size=21, stride=1, padding=0, dilation_patch=2)
    f1, f2 = torch.randn(1, 8, 12, 16), torch.randn(1, 8, 12, 16)
    out = correlation(f1, f2)
    assert out.shape == (1, 21, 21, 12, 16)
    assert out.view(1, 441, 12, 16).div(8).shape == (1, 441, 12, 16)


def test_mmtracker_style_usage():
    correlation = SpatialCorrelationSampler(1, 9, 1, 0, 1)
    f1, f2 = torch.randn(1, 16, 19, 34), torch.randn(1, 16, 19, 34)
    volume = correlation(f1, f2).view(1, 81, 19, 34) / 16
    assert torch.equal(volume, mmtrack_corr.kernel_search_correlation(f1, f2, 4))
