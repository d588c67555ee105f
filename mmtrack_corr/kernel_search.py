"""The "9x9 kernel search" cost volume of MM-Tracker, as channels: the search form of the seed's shape table."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmtrack_corr.correlation import _pair, _sample, _validate_inputs

__all__ = ["KernelSearchCorrelation", "kernel_search_correlation"]


def _checked_displacement(max_displacement: object) -> int:
    if isinstance(max_displacement, bool) or not isinstance(max_displacement, int):
        raise TypeError(f"max_displacement: expected an int, got {max_displacement!r}")
    if max_displacement < 0:
        raise ValueError(f"max_displacement: expected an int >= 0, got {max_displacement!r}")
    return max_displacement


def kernel_search_correlation(
    feat1: Tensor,
    feat2: Tensor,
    max_displacement: int = 4,
    dilation_patch: int | tuple[int, int] | list[int] = 1,
    normalize: bool = True,
) -> Tensor:
    """Cost volume of every displacement within ``max_displacement`` feature pixels, one channel each.

    Equal to ``spatial_correlation_sample(feat1, feat2, 1, 2 * d + 1, 1, 0, 1, dilation_patch)`` viewed as
    ``(B, (2d+1)^2, H, W)`` and, when ``normalize``, divided by C - MM-Tracker's
    ``SpatialCorrelationSampler(1, 9, 1, 0, 1)(f1, f2).view(B, 81, H, W) / C`` at the default d = 4.
    Channel ``(dy + d) * (2d + 1) + (dx + d)`` (dy-major) holds displacement (dx, dy) * dilation_patch, positive
    when ``feat2`` lies below / right of ``feat1``; displacements reaching outside the map correlate with zeros.

    Args:
        feat1: features of frame t-1, shape (B, C, H, W).
        feat2: features of frame t, same shape, dtype and device.
        max_displacement: search radius d in feature pixels (before dilation); 4 gives the 9x9 search.
        dilation_patch: spacing of the searched displacements, an int or (dy, dx) pair.
        normalize: divide by the channel count C, as MM-Tracker and FlowNetC do.

    Returns:
        Tensor of shape (B, (2d+1)^2, H, W), dtype and device of the inputs.

    Raises:
        TypeError, ValueError: as :func:`spatial_correlation_sample`, and for a negative or non-int
            ``max_displacement``.

    Example:
        >>> f1, f2 = torch.randn(1, 512, 19, 34), torch.randn(1, 512, 19, 34)
        >>> kernel_search_correlation(f1, f2, max_displacement=4).shape
        torch.Size([1, 81, 19, 34])
    """
    x1, x2 = _validate_inputs(feat1, feat2)
    d = _checked_displacement(max_displacement)
    dilation = _pair("dilation_patch", dilation_patch, 1)
    return _search(x1, x2, d, dilation, bool(normalize))


def _search(x1: Tensor, x2: Tensor, d: int, dilation_patch: tuple[int, int], normalize: bool) -> Tensor:
    batch, channels, height, width = x1.shape
    patch = 2 * d + 1
    volume = _sample(x1, x2, (1, 1), (patch, patch), (1, 1), (0, 0), (1, 1), dilation_patch)
    volume = volume.view(batch, patch * patch, height, width)
    if normalize and channels > 0:
        volume = volume / channels
    return volume


class KernelSearchCorrelation(nn.Module):
    """Module form of :func:`kernel_search_correlation`; no parameters.

    Args:
        max_displacement: search radius d in feature pixels; (2d+1)^2 output channels.
        dilation_patch: spacing of the searched displacements.
        normalize: divide by the channel count C.

    Example:
        >>> KernelSearchCorrelation(4)(torch.randn(1, 64, 19, 34), torch.randn(1, 64, 19, 34)).shape
        torch.Size([1, 81, 19, 34])
    """

    def __init__(
        self, max_displacement: int = 4, dilation_patch: int | tuple[int, int] | list[int] = 1, normalize: bool = True
    ) -> None:
        super().__init__()
        self.max_displacement = _checked_displacement(max_displacement)
        self.dilation_patch = _pair("dilation_patch", dilation_patch, 1)
        self.normalize = bool(normalize)

    def forward(self, feat1: Tensor, feat2: Tensor) -> Tensor:
        if not torch.jit.is_scripting():
            feat1, feat2 = _validate_inputs(feat1, feat2)
        return _search(feat1, feat2, self.max_displacement, self.dilation_patch, self.normalize)

    def extra_repr(self) -> str:
        return (
            f"max_displacement={self.max_displacement}, dilation_patch={self.dilation_patch}, "
            f"normalize={self.normalize}"
        )
