"""Motion heads on the 9x9 kernel-search cost volume of two frames' features (MM-Tracker's motion module).

Conventions, stated once: features come as three maps at strides 8, 16 and 32 of the input image (any channel
counts, fixed at construction); motion is (dx, dy) from frame t-1 to frame t in INPUT-IMAGE pixels, positive
right/down. Internally each decoder predicts in cells of its own level (feature pixels) and the head multiplies by
the level's stride; the uncertainty is a Laplace log-scale, in pixels as well (``log b_pixels = log b_cells +
log stride``).

The cost volumes are :func:`mmtrack_corr.kernel_search_correlation` with ``max_displacement=4`` (81 channels, reach
+-4 cells = +-128 px at stride 32) of the L2-normalised features (cosine similarity, so any detector's feature
magnitudes give volumes in [-1, 1]).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmtrack_corr.context import build_context_block, context_per_level
from mmtrack_corr.correlation import _pixel_volume, _validate_inputs
from mmtrack_corr.kernel_search import kernel_search_correlation

__all__ = [
    "MAX_DISPLACEMENT",
    "LightMotionHead",
    "MotionOutput",
    "MultiScaleMotionHead",
    "SoftArgmax",
    "correlation_volume",
    "warp_features",
]

MAX_DISPLACEMENT = 4
_VOLUME = (2 * MAX_DISPLACEMENT + 1) ** 2
_STRIDES = (8, 16, 32)


@dataclass
class MotionOutput:
    """Dense motion predicted by a head.

    Attributes:
        flow: (dx, dy) from frame t-1 to frame t in input-image pixels, shape (B, 2, h, w); cell (i, j) covers the
            input pixels [i*stride, (i+1)*stride) x [j*stride, (j+1)*stride).
        log_scale: log of the Laplace scale b (pixels) of each flow component, shape (B, 2, h, w); the expected
            absolute error of a component is b.
        stride: input pixels per cell of ``flow`` (8 for the 3-scale head, 32 for the light head).
        aux: coarser outputs (strides 32 and 16 for the 3-scale head) returned in training mode only, for the
            auxiliary losses; empty in eval mode.
    """

    flow: Tensor
    log_scale: Tensor
    stride: int
    aux: list[MotionOutput] = field(default_factory=list)


def correlation_volume(feat1: Tensor, feat2: Tensor) -> Tensor:
    """The 81-channel cost volume the heads use: 9x9 kernel search of the L2-normalised features.

    Args:
        feat1: features of frame t-1, shape (B, C, H, W).
        feat2: features of frame t, same shape.

    Returns:
        Cosine similarities, shape (B, 81, H, W); channel (dy + 4) * 9 + (dx + 4) holds displacement (dx, dy) cells.

    Example:
        >>> correlation_volume(torch.randn(1, 32, 4, 6), torch.randn(1, 32, 4, 6)).shape
        torch.Size([1, 81, 4, 6])
    """
    f1, f2 = _unit(feat1), _unit(feat2)
    if _checking():
        f1, f2 = _validate_inputs(f1, f2)
        volume = _pixel_volume(f1, f2, 2 * MAX_DISPLACEMENT + 1)  # inference on CPU: channels-last, no copy
        if volume is not None:
            return volume
    return kernel_search_correlation(f1, f2, MAX_DISPLACEMENT, normalize=False)


def _unit(feat: Tensor) -> Tensor:
    """L2-normalised over channels; half-precision features are normalised in float32 (in float16 the norm's eps
    underflows, so the zero vectors a warp leaves outside the map became NaN, and large features overflow)."""
    if feat.dtype == torch.float16 or feat.dtype == torch.bfloat16:
        return F.normalize(feat.float(), dim=1).to(feat.dtype)
    return F.normalize(feat, dim=1)


def warp_features(feat: Tensor, flow: Tensor) -> Tensor:
    """Sample ``feat`` at each cell displaced by ``flow`` (backward warp, bilinear, zeros outside the map).

    Args:
        feat: frame t's features, shape (B, C, H, W).
        flow: displacement from frame t-1 to frame t in cells of ``feat``, shape (B, 2, H, W), (dx, dy).

    Returns:
        (B, C, H, W) in ``feat``'s dtype (under autocast too, where the sampling itself runs in float32):
        ``out[..., y, x] = feat[..., y + dy, x + dx]``, so a cost volume of frame t-1's features against it measures
        the motion left over after ``flow``.

    Example:
        >>> f = torch.arange(4.0).view(1, 1, 1, 4)
        >>> warp_features(f, torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 1, 4)).flatten().tolist()
        [1.0, 2.0, 3.0, 0.0]
    """
    _, _, height, width = feat.shape
    xs = torch.arange(width, dtype=flow.dtype, device=flow.device).view(1, 1, width)
    ys = torch.arange(height, dtype=flow.dtype, device=flow.device).view(1, height, 1)
    # align_corners=False: cell centre x maps to (2x + 1) / W - 1
    grid_x = (2.0 * (xs + flow[:, 0]) + 1.0) / width - 1.0
    grid_y = (2.0 * (ys + flow[:, 1]) + 1.0) / height - 1.0
    grid = torch.stack([grid_x, grid_y], dim=-1)
    return F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=False).to(feat.dtype)


class SoftArgmax(nn.Module):
    """The cost volume's expected displacement and peak probability per cell (3 channels, parameter-free but for a
    learned temperature).

    ``p = softmax(beta * volume)`` over the 81 displacements; outputs ``sum_k p_k * (dx_k, dy_k)`` in cells and
    ``max_k p_k``. A small decoder cannot compute an argmax from 81 raw similarities with a few convolutions; this
    hands it the best local match directly (for a small moving object, its own displacement rather than the
    background's), and the peak probability says how distinct that match is.

    Args:
        beta: initial inverse temperature (cosine similarities in [-1, 1]: 10 makes a 0.3 lead ~20x more likely).

    Example:
        >>> v = torch.full((1, 81, 1, 1), -1.0)
        >>> v[0, 4 * 9 + 6] = 1.0  # the match is 2 cells right, 0 down
        >>> SoftArgmax(beta=50.0)(v).flatten().round(decimals=3).tolist()
        [2.0, 0.0, 1.0]
    """

    out_channels = 3

    def __init__(self, beta: float = 10.0) -> None:
        super().__init__()
        self.log_beta = nn.Parameter(torch.tensor(math.log(beta)))
        size = 2 * MAX_DISPLACEMENT + 1
        offsets = torch.arange(size, dtype=torch.float32) - MAX_DISPLACEMENT
        dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")  # channel (dy + 4) * 9 + (dx + 4)
        self.offsets: Tensor
        self.register_buffer("offsets", torch.stack([dx.reshape(-1), dy.reshape(-1)]), persistent=False)

    def forward(self, volume: Tensor) -> Tensor:
        """(B, 81, H, W) volume -> (B, 3, H, W): expected (dx, dy) in cells and the peak probability."""
        if not torch.jit.is_scripting() and volume.permute(0, 2, 3, 1).is_contiguous() and volume.shape[1] > 1:
            # a channels-last volume (the pixel path's): the same sums over contiguous memory, channels-last out
            p_last = torch.softmax(volume.permute(0, 2, 3, 1) * self.log_beta.exp(), dim=-1)
            expected_last = p_last @ self.offsets.to(p_last.dtype).t()
            return torch.cat([expected_last, p_last.amax(dim=-1, keepdim=True)], dim=-1).permute(0, 3, 1, 2)
        p = torch.softmax(volume * self.log_beta.exp(), dim=1)
        expected = torch.einsum("bkhw,ck->bchw", p, self.offsets.to(p.dtype))
        return torch.cat([expected, p.amax(dim=1, keepdim=True)], dim=1)


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=False)


def _conv1(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), _act())


def _conv3(channels: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=groups), _act())


class _Decoder(nn.Module):
    """Light grouped-conv decoder: features -> (flow in cells, log-scale in cells), 2 + 2 channels."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.body = _conv3(channels, groups)
        self.out = nn.Conv2d(channels, 4, 3, padding=1)
        # start from zero motion and unit scale: the first steps do not fight a random initial flow
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.out(self.body(x))
        return out[:, :2], out[:, 2:]


def _check_channels(name: str, channels: Sequence[int]) -> tuple[int, int, int]:
    values = tuple(channels)
    if len(values) != 3 or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in values):
        raise ValueError(f"{name}: expected 3 positive ints (channels at strides 8, 16, 32), got {values!r}")
    return values  # type: ignore[return-value]


def _check_features(
    feats1: Sequence[Tensor], feats2: Sequence[Tensor], in_channels: tuple[int, int, int], levels: Sequence[int]
) -> None:
    for name, feats in (("feats1", feats1), ("feats2", feats2)):
        if isinstance(feats, Tensor) or not isinstance(feats, Sequence) or len(feats) != 3:
            raise TypeError(f"{name}: expected a sequence of 3 feature maps (strides 8, 16, 32), got {type(feats)}")
        for i in levels:
            f = feats[i]
            if not isinstance(f, Tensor) or f.dim() != 4:
                shape = tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__
                raise ValueError(f"{name}[{i}]: expected a (B, C, H, W) tensor, got {shape}")
            if f.shape[1] != in_channels[i]:
                raise ValueError(
                    f"{name}[{i}]: expected {in_channels[i]} channels (stride {_STRIDES[i]}), got {f.shape[1]}"
                )
    batch = feats1[levels[0]].shape[0]
    for i in levels:
        if feats2[i].shape != feats1[i].shape:
            raise ValueError(
                f"feats2[{i}]: expected the same shape as feats1[{i}] {tuple(feats1[i].shape)}, "
                f"got {tuple(feats2[i].shape)}"
            )
        if feats1[i].shape[0] != batch:
            raise ValueError(f"feats1[{i}]: expected batch {batch} like the other levels, got {feats1[i].shape[0]}")
    if len(levels) == 3:
        for fine, coarse in ((0, 1), (1, 2)):
            h, w = feats1[coarse].shape[-2:]
            want = ((2 * h - 1, 2 * h), (2 * w - 1, 2 * w))
            got = tuple(feats1[fine].shape[-2:])
            if not (want[0][0] <= got[0] <= want[0][1] and want[1][0] <= got[1] <= want[1][1]):
                raise ValueError(
                    f"feats1[{fine}]: expected about twice the size of level {coarse} ({2 * h}x{2 * w}), "
                    f"got {got[0]}x{got[1]}"
                )


def _checking() -> bool:
    return not torch.jit.is_scripting() and not torch.compiler.is_compiling()


class LightMotionHead(nn.Module):
    """The design card's light head: the 1/32 cost volume only, a few convolutions and a global-context block.

    Input: the 81-channel volume of the stride-32 maps, concatenated with a 1x1 projection of frame t-1's
    stride-32 features (appearance context). Output: dense motion at stride 32.

    Args:
        in_channels: channels of the three feature levels (strides 8, 16, 32); only the last is used, the others
            are kept so both heads share one signature.
        context: global-context block: "scan", "attention", "conv" or "none" (see :mod:`mmtrack_corr.context`);
            a per-level spec "k8,k16,k32" uses its stride-32 kind.
        width: channels of the head.
        soft_argmax: also feed the decoder the volume's expected displacement and peak probability
            (:class:`SoftArgmax`); False for weights files whose config has no ``soft_argmax`` key.

    Example:
        >>> head = LightMotionHead((48, 64, 96)).eval()
        >>> f1 = [torch.randn(1, c, 4 * s, 6 * s) for c, s in zip((48, 64, 96), (4, 2, 1), strict=True)]
        >>> head(f1, f1).flow.shape
        torch.Size([1, 2, 4, 6])
    """

    stride = 32

    def __init__(
        self, in_channels: Sequence[int], context: str = "conv", width: int = 64, soft_argmax: bool = True
    ) -> None:
        super().__init__()
        self.in_channels = _check_channels("in_channels", in_channels)
        self.context_kind = context_per_level(context)[2]
        self.appearance = _conv1(self.in_channels[2], width // 2)
        self.soft_argmax = SoftArgmax() if soft_argmax else None
        self.fuse = _conv1(_VOLUME + width // 2 + (SoftArgmax.out_channels if soft_argmax else 0), width)
        self.conv = _conv3(width)
        self.context = build_context_block(self.context_kind, width)
        self.decoder = _Decoder(width, groups=4)

    def forward(self, feats1: Sequence[Tensor], feats2: Sequence[Tensor]) -> MotionOutput:
        """Dense motion at stride 32.

        Args:
            feats1: frame t-1's maps at strides 8, 16, 32, shapes (B, c_i, H_i, W_i); only the last is read.
            feats2: frame t's maps, same shapes.

        Returns:
            :class:`MotionOutput` with flow and log_scale of shape (B, 2, H_32, W_32), stride 32, no aux.

        Raises:
            TypeError, ValueError: not 3 maps, wrong channel counts, or frame t's map shaped unlike frame t-1's.
        """
        if _checking():
            _check_features(feats1, feats2, self.in_channels, (2,))
        f1, f2 = feats1[2], feats2[2]
        volume = correlation_volume(f1, f2)
        inputs = [volume, self.appearance(f1)]
        if self.soft_argmax is not None:
            inputs.append(self.soft_argmax(volume))
        x = self.fuse(torch.cat(inputs, dim=1))
        x = self.context(self.conv(x))
        flow, log_scale = self.decoder(x)
        return MotionOutput(flow * self.stride, log_scale + math.log(self.stride), self.stride)


class MultiScaleMotionHead(nn.Module):
    """MM-Tracker's 3-scale head: 1/32, 1/16 and 1/8 cost volumes, coarse to fine, dense motion at 1/8.

    At each level: the level's 81-channel volume, a 1x1 projection of frame t-1's features, the upsampled hidden
    state and flow of the coarser level -> 1x1 fuse -> grouped 3x3 conv -> global-context block -> light grouped-conv
    decoder predicting a flow residual (cells) on the upsampled coarser flow, and a log-scale. The 1/32 and 1/16
    decoders are the auxiliary outputs (returned in training mode).

    Args:
        in_channels: channels of the three feature levels (strides 8, 16, 32).
        context: global-context block kind at every level ("scan", "attention", "conv", "none"), or per level as
            "k8,k16,k32". Default: convolutional blocks (as accurate as the scans in the equal-budget ablation, and
            cheaper: a scan at stride 8 costs ~20 ms of CPU at 544x960).
        widths: channels of the head at strides 8, 16, 32.
        warp: at strides 16 and 8, correlate frame t-1's features with frame t's warped by the upsampled coarser
            flow (PWC-Net style), so the +-4-cell search is centred on the coarse estimate and the fine levels
            refine motions beyond their own reach (+-32 px at stride 8). False = MM-Tracker's unwarped volumes
            (and weights files whose config has no ``warp`` key).
        soft_argmax: at every level also feed the decoder the volume's expected displacement and peak probability
            (:class:`SoftArgmax`); False for weights files whose config has no ``soft_argmax`` key.

    Example:
        >>> head = MultiScaleMotionHead((48, 64, 96)).eval()
        >>> f1 = [torch.randn(1, c, 4 * s, 6 * s) for c, s in zip((48, 64, 96), (4, 2, 1), strict=True)]
        >>> head(f1, f1).flow.shape
        torch.Size([1, 2, 16, 24])
    """

    stride = 8

    def __init__(
        self,
        in_channels: Sequence[int],
        context: str = "conv",
        widths: Sequence[int] = (32, 48, 64),
        warp: bool = True,
        soft_argmax: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = _check_channels("in_channels", in_channels)
        self.warp = bool(warp)
        self.widths = _check_channels("widths", widths)
        self.context_kinds = context_per_level(context)
        w8, w16, w32 = self.widths
        self.appearance = nn.ModuleList(_conv1(c, w // 2) for c, w in zip(self.in_channels, self.widths, strict=True))
        extra = SoftArgmax.out_channels if soft_argmax else 0
        self.soft_argmax = nn.ModuleList(SoftArgmax() for _ in range(3)) if soft_argmax else None
        self.fuse32 = _conv1(_VOLUME + w32 // 2 + extra, w32)
        self.fuse16 = _conv1(_VOLUME + w16 // 2 + w32 + 2 + extra, w16)
        self.fuse8 = _conv1(_VOLUME + w8 // 2 + w16 + 2 + extra, w8)
        self.conv = nn.ModuleList([_conv3(w8, 4), _conv3(w16, 4), _conv3(w32, 4)])
        self.context = nn.ModuleList(
            build_context_block(k, w) for k, w in zip(self.context_kinds, self.widths, strict=True)
        )
        self.decoder = nn.ModuleList(_Decoder(w, groups=4) for w in self.widths)

    def _level(self, i: int, f1: Tensor, f2: Tensor, coarse: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        prior = None
        coarse_inputs: list[Tensor] = []
        if coarse:
            hidden, prior = (F.interpolate(t, size=f1.shape[-2:], mode="bilinear", align_corners=False) for t in coarse)
            prior_cells = prior / _STRIDES[i]  # the prior is in pixels; the volume and the decoder work in cells
            coarse_inputs = [hidden, prior_cells]
            if self.warp:  # the search is centred on the coarse estimate; no gradient through the sampling grid
                f2 = warp_features(f2, prior_cells.detach())
        volume = correlation_volume(f1, f2)
        inputs = [volume, self.appearance[i](f1), *coarse_inputs]
        if self.soft_argmax is not None:
            inputs.append(self.soft_argmax[i](volume))
        fuse = (self.fuse8, self.fuse16, self.fuse32)[i]
        x = self.context[i](self.conv[i](fuse(torch.cat(inputs, dim=1))))
        delta, log_scale = self.decoder[i](x)
        flow = delta * _STRIDES[i] if prior is None else prior + delta * _STRIDES[i]
        return x, flow, log_scale + math.log(_STRIDES[i])

    def forward(self, feats1: Sequence[Tensor], feats2: Sequence[Tensor]) -> MotionOutput:
        """Dense motion at stride 8 (plus strides 32 and 16 as ``aux`` in training mode).

        Args:
            feats1: frame t-1's maps at strides 8, 16, 32, shapes (B, c_i, H_i, W_i), each level twice the size of
                the next (+-1 for odd sizes).
            feats2: frame t's maps, same shapes.

        Returns:
            :class:`MotionOutput` with flow and log_scale of shape (B, 2, H_8, W_8), stride 8.

        Raises:
            TypeError, ValueError: not 3 maps, wrong channel counts, levels of inconsistent sizes, or frame t's maps
                shaped unlike frame t-1's.
        """
        if _checking():
            _check_features(feats1, feats2, self.in_channels, (0, 1, 2))
        x32, flow32, scale32 = self._level(2, feats1[2], feats2[2], [])
        x16, flow16, scale16 = self._level(1, feats1[1], feats2[1], [x32, flow32])
        _, flow8, scale8 = self._level(0, feats1[0], feats2[0], [x16, flow16])
        aux = [MotionOutput(flow32, scale32, 32), MotionOutput(flow16, scale16, 16)] if self.training else []
        return MotionOutput(flow8, scale8, 8, aux)
