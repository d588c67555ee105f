"""Motion heads: units and signs of the cost volume and the outputs, shapes, bad inputs, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from mmtrack_corr.encoder import FeatureEncoder
from mmtrack_corr.motion_head import (
    MAX_DISPLACEMENT,
    LightMotionHead,
    MotionOutput,
    MultiScaleMotionHead,
    SoftArgmax,
    correlation_volume,
    warp_features,
)

CHANNELS = (48, 64, 96)


def _feats(batch: int, h32: int, w32: int, channels=CHANNELS, seed: int = 0) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, h32 * s, w32 * s, generator=g) for c, s in zip(channels, (4, 2, 1), strict=True)]


def _peak_displacement(volume: torch.Tensor) -> tuple[int, int]:
    """(dx, dy) in cells of the channel with the largest mean response (dy-major channel order)."""
    k = int(volume.mean(dim=(0, 2, 3)).argmax())
    size = 2 * MAX_DISPLACEMENT + 1
    return k % size - MAX_DISPLACEMENT, k // size - MAX_DISPLACEMENT


@pytest.mark.parametrize(("dx", "dy"), [(2, 1), (-3, 0), (0, -4), (1, 3)])
def test_volume_peak_is_the_shift_of_frame_t_right_and_down_positive(dx: int, dy: int) -> None:
    f1 = torch.randn(1, 32, 12, 16, generator=torch.Generator().manual_seed(1))
    f2 = torch.roll(f1, shifts=(dy, dx), dims=(2, 3))  # frame t = frame t-1 moved right by dx, down by dy
    volume = correlation_volume(f1, f2)
    assert volume.shape == (1, 81, 12, 16)
    assert _peak_displacement(volume[..., 4:-4, 4:-4]) == (dx, dy)
    assert float(volume.max()) == pytest.approx(1.0, abs=1e-5)  # cosine similarity of identical vectors


@pytest.mark.parametrize("channels_last", [False, True])
def test_inference_volume_is_channels_last_and_equals_the_op(channels_last: bool) -> None:
    # without autograd the heads' volume comes from the op's pixel path as a channels-last view (no copy); with
    # autograd, from the op's autograd path; both equal kernel_search_correlation of the normalised features
    from mmtrack_corr.kernel_search import kernel_search_correlation

    g = torch.Generator().manual_seed(3)
    f1, f2 = torch.randn(2, 24, 7, 11, generator=g), torch.randn(2, 24, 7, 11, generator=g)
    if channels_last:
        f1, f2 = (f.contiguous(memory_format=torch.channels_last) for f in (f1, f2))
    expected = kernel_search_correlation(
        torch.nn.functional.normalize(f1.double(), dim=1),
        torch.nn.functional.normalize(f2.double(), dim=1),
        4,
        normalize=False,
    )
    with torch.no_grad():
        fast = correlation_volume(f1, f2)
    assert fast.is_contiguous(memory_format=torch.channels_last) and not fast.is_contiguous()
    torch.testing.assert_close(fast.double(), expected, rtol=0, atol=1e-6)
    graded = correlation_volume(f1.requires_grad_(True), f2)
    assert graded.is_contiguous() and graded.requires_grad
    torch.testing.assert_close(graded.detach().double(), expected, rtol=0, atol=1e-6)
    soft = SoftArgmax(beta=7.0)
    torch.testing.assert_close(soft(fast), soft(fast.contiguous()), rtol=0, atol=1e-5)  # cells, float32 sums
    assert soft(fast).is_contiguous(memory_format=torch.channels_last)


def test_encoder_folds_its_normalisation_into_the_first_convolution_exactly() -> None:
    # the eager encoder folds (x - mean) / std into its first convolution and adds back the zero padding's taps on
    # the top row and left column; in float64 it equals the plain formula (normalise, then the stem) everywhere,
    # borders included, and a traced encoder (which runs the plain formula) agrees with it in float32
    torch.manual_seed(0)
    encoder = FeatureEncoder(widths=(8, 8, 16, 16, 16)).double().eval()
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(0.3 * torch.randn_like(p))  # biases and weights far from their init
    images = torch.rand(2, 3, 64, 96, dtype=torch.float64)

    def plain(x: torch.Tensor) -> list[torch.Tensor]:
        f = encoder.stem((x - encoder.mean.double()) / encoder.std.double())
        f8 = encoder.level8(f)
        f16 = encoder.level16(f8)
        return [f8, f16, encoder.level32(f16)]

    with torch.no_grad():
        first = encoder._normalised_first_conv(images)
        want_first = encoder.stem[0]((images - encoder.mean.double()) / encoder.std.double())
        torch.testing.assert_close(first, want_first, rtol=0, atol=1e-12)
        assert (first[:, :, 0] - want_first[:, :, 0]).abs().max() < 1e-12  # the padded row itself
        for got, want in zip(encoder(images), plain(images), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        encoder.float()
        traced = torch.jit.trace(encoder, images.float())
        for got, want in zip(encoder(images.float()), traced(images.float()), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


@pytest.mark.parametrize(("shift_x", "shift_y"), [(16, 8), (-24, 16)])
def test_shifted_image_through_the_untrained_encoder_peaks_at_the_pixel_shift(shift_x: int, shift_y: int) -> None:
    # a translated random image: the stride-8 volume peaks at the channel of (shift / 8) cells, i.e. the head's
    # input says "moved right/down" in the same sign convention as its output
    torch.manual_seed(0)
    encoder = FeatureEncoder().eval()
    g = torch.Generator().manual_seed(2)
    big = torch.rand(1, 3, 192, 256, generator=g)
    image1 = big[..., 32:160, 32:224]
    image2 = big[..., 32 - shift_y : 160 - shift_y, 32 - shift_x : 224 - shift_x]  # content moved by (+x, +y)
    with torch.no_grad():
        f1, f2 = encoder(torch.cat([image1, image2]))[0].split(1)
    volume = correlation_volume(f1, f2)[..., 3:-3, 4:-4]
    assert _peak_displacement(volume) == (shift_x // 8, shift_y // 8)


@pytest.mark.parametrize("head_cls", [LightMotionHead, MultiScaleMotionHead])
def test_outputs_are_cells_times_stride(head_cls) -> None:  # type: ignore[no-untyped-def]
    # decoders predict in cells of their level; the head reports pixels: set the final decoder to a constant
    # (1, -0.5) cells and unit log-scale, read (stride, -stride/2) pixels and log(stride)
    head = head_cls(CHANNELS).eval()
    decoder = head.decoder if isinstance(head, LightMotionHead) else head.decoder[0]
    with torch.no_grad():
        decoder.out.bias.copy_(torch.tensor([1.0, -0.5, 0.0, 0.0]))
    out = head(_feats(1, 2, 3), _feats(1, 2, 3, seed=1))
    stride = head_cls.stride
    assert out.stride == stride
    flow = out.flow  # the 3-scale head's coarser decoders start at zero, so its flow is the 1/8 residual alone
    torch.testing.assert_close(flow[:, 0], torch.full_like(flow[:, 0], float(stride)))
    torch.testing.assert_close(flow[:, 1], torch.full_like(flow[:, 1], -stride / 2))
    torch.testing.assert_close(out.log_scale, torch.full_like(out.log_scale, math.log(stride)))


@pytest.mark.parametrize(
    ("channels", "batch", "h32", "w32"),
    [
        pytest.param(CHANNELS, 1, 1, 1, id="1x1_at_stride32"),
        pytest.param(CHANNELS, 2, 3, 5, id="batch2"),
        pytest.param((128, 256, 512), 1, 2, 3, id="mmtracker_channels"),
        pytest.param((8, 8, 8), 0, 2, 2, id="batch0"),
    ],
)
def test_shapes(channels, batch, h32, w32) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    f1, f2 = _feats(batch, h32, w32, channels), _feats(batch, h32, w32, channels, seed=1)
    light = LightMotionHead(channels).eval()(f1, f2)
    assert light.flow.shape == light.log_scale.shape == (batch, 2, h32, w32) and light.aux == []
    multi = MultiScaleMotionHead(channels).eval()(f1, f2)
    assert multi.flow.shape == multi.log_scale.shape == (batch, 2, 4 * h32, 4 * w32) and multi.aux == []
    assert multi.stride == 8 and light.stride == 32


def test_odd_level_sizes_like_a_detector_at_608x1088_plus_one() -> None:
    # detectors on sizes that are not multiples of 32 give levels of 2n or 2n-1 cells; the head follows the maps
    channels = (8, 8, 8)
    f = [torch.randn(1, 8, 37, 67), torch.randn(1, 8, 19, 34), torch.randn(1, 8, 10, 17)]
    out = MultiScaleMotionHead(channels).eval()(f, f)
    assert out.flow.shape == (1, 2, 37, 67)


@pytest.mark.parametrize(("dx", "dy"), [(2, 1), (-3, 0), (0, -4), (4, 4)])
def test_soft_argmax_reads_the_shift_in_cells_from_the_volume(dx: int, dy: int) -> None:
    f1 = torch.randn(1, 64, 12, 16, generator=torch.Generator().manual_seed(1))
    f2 = torch.roll(f1, shifts=(dy, dx), dims=(2, 3))
    with torch.no_grad():  # the temperature is a parameter: outputs carry grad otherwise
        out = SoftArgmax(beta=30.0)(correlation_volume(f1, f2))[..., 4:-4, 4:-4]
        flat = SoftArgmax(beta=30.0)(torch.zeros(1, 81, 2, 2))  # no information: centre, uniform probability
    assert out.shape[1] == 3
    torch.testing.assert_close(out[:, 0], torch.full_like(out[:, 0], float(dx)), atol=0.05, rtol=0)
    torch.testing.assert_close(out[:, 1], torch.full_like(out[:, 1], float(dy)), atol=0.05, rtol=0)
    assert float(out[:, 2].min()) > 0.9  # a distinct peak
    torch.testing.assert_close(flat[:, :2], torch.zeros(1, 2, 2, 2))
    torch.testing.assert_close(flat[:, 2], torch.full((1, 2, 2), 1 / 81))


def test_warp_samples_frame_t_at_the_displaced_cell_with_zeros_outside() -> None:
    feat = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(4))
    flow = torch.zeros(2, 2, 5, 7)
    torch.testing.assert_close(warp_features(feat, flow), feat)  # zero flow: the identity, exactly at cell centres
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # (dx, dy) = (2, -1): out[y, x] = feat[y - 1, x + 2]
    out = warp_features(feat, flow)
    torch.testing.assert_close(out[..., 1:, :-2], feat[..., :-1, 2:])
    assert out[..., 0, :].abs().max() == 0 and out[..., -2:].abs().max() == 0
    flow[:, 0], flow[:, 1] = 0.25, 0.0  # a quarter cell: linear interpolation between neighbours
    torch.testing.assert_close(warp_features(feat, flow)[..., :-1], 0.75 * feat[..., :-1] + 0.25 * feat[..., 1:])


def test_warping_by_the_motion_brings_a_shift_beyond_the_reach_back_to_zero() -> None:
    # frame t moved 6 cells right, 5 down: outside the +-4-cell search; warped by that motion the volume peaks at 0
    f1 = torch.randn(1, 16, 24, 32, generator=torch.Generator().manual_seed(6))
    f2 = torch.roll(f1, shifts=(5, 6), dims=(2, 3))
    flow = torch.tensor([6.0, 5.0]).view(1, 2, 1, 1).expand(1, 2, 24, 32)
    volume = correlation_volume(f1, warp_features(f2, flow))[..., 4:-9, 4:-10]
    assert _peak_displacement(volume) == (0, 0)
    assert float(volume[:, 40].mean()) == pytest.approx(1.0, abs=1e-5)


def test_warp_switch_changes_only_the_refined_levels() -> None:
    torch.manual_seed(0)
    warped = MultiScaleMotionHead(CHANNELS, warp=True).eval()
    plain = MultiScaleMotionHead(CHANNELS, warp=False).eval()
    plain.load_state_dict(warped.state_dict())
    with torch.no_grad():  # a coarse (1/32) flow of 1.5 cells: the finer volumes of the two heads now differ
        warped.decoder[2].out.bias.copy_(torch.tensor([1.5, 0.0, 0.0, 0.0]))
        plain.decoder[2].out.bias.copy_(torch.tensor([1.5, 0.0, 0.0, 0.0]))
        for head in (warped, plain):
            torch.nn.init.normal_(head.decoder[0].out.weight, std=0.1, generator=torch.Generator().manual_seed(1))
    f1, f2 = _feats(1, 2, 3), _feats(1, 2, 3, seed=1)
    out_w, out_p = warped(f1, f2), plain(f1, f2)
    assert not torch.allclose(out_w.flow, out_p.flow)
    with torch.no_grad():
        warped.decoder[2].out.bias.zero_()
        plain.decoder[2].out.bias.zero_()
    torch.testing.assert_close(warped(f1, f2).flow, plain(f1, f2).flow)  # zero coarse flow: warping is the identity


def test_training_mode_returns_the_aux_outputs() -> None:
    head = MultiScaleMotionHead(CHANNELS).train()
    out = head(_feats(2, 2, 3), _feats(2, 2, 3, seed=1))
    assert [a.stride for a in out.aux] == [32, 16]
    assert [tuple(a.flow.shape) for a in out.aux] == [(2, 2, 2, 3), (2, 2, 4, 6)]
    assert all(isinstance(a, MotionOutput) and a.aux == [] for a in out.aux)


@pytest.mark.parametrize("head_cls", [LightMotionHead, MultiScaleMotionHead])
@pytest.mark.parametrize("context", ["scan", "attention", "conv", "none"])
def test_every_context_kind_runs_and_backpropagates(head_cls, context: str) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    head = head_cls(CHANNELS, context=context).train()
    f1 = [f.requires_grad_() for f in _feats(1, 2, 2)]
    out = head(f1, _feats(1, 2, 2, seed=1))
    (out.flow.sum() + out.log_scale.sum() + sum(a.flow.sum() for a in out.aux)).backward()
    assert all(torch.isfinite(f.grad).all() for f in f1 if f.grad is not None)
    assert f1[2].grad is not None


def test_deterministic() -> None:
    torch.manual_seed(3)
    a = MultiScaleMotionHead(CHANNELS).eval()
    torch.manual_seed(3)
    b = MultiScaleMotionHead(CHANNELS).eval()
    f1, f2 = _feats(1, 2, 3), _feats(1, 2, 3, seed=1)
    for p in a.parameters():  # non-trivial decoders, so equality is not 0 == 0
        torch.nn.init.normal_(p, std=0.1, generator=torch.Generator().manual_seed(p.numel()))
    b.load_state_dict(a.state_dict())
    out_a, out_b, out_a2 = a(f1, f2), b(f1, f2), a(f1, f2)
    assert out_a.flow.abs().sum() > 0
    assert torch.equal(out_a.flow, out_b.flow) and torch.equal(out_a.flow, out_a2.flow)
    assert torch.equal(out_a.log_scale, out_b.log_scale)


BAD = [
    pytest.param(lambda f: (f[:2], f), TypeError, r"feats1: expected a sequence of 3 feature maps", id="two_levels"),
    pytest.param(lambda f: (f[2], f), TypeError, r"feats1: expected a sequence of 3", id="a_tensor"),
    pytest.param(
        lambda f: ([f[0], f[1], f[2][:, :90]], f),
        ValueError,
        r"feats1\[2\]: expected 96 channels.*got 90",
        id="channels",
    ),
    pytest.param(
        lambda f: (f, [f[0], f[1], f[2][..., :2]]),
        ValueError,
        r"feats2\[2\]: expected the same shape as feats1\[2\] \(1, 96, 2, 3\), got \(1, 96, 2, 2\)",
        id="mismatched_shapes",
    ),
    pytest.param(
        lambda f: ([f[0][0], f[1], f[2]], f), ValueError, r"feats1\[0\]: expected a \(B, C, H, W\) tensor", id="3d"
    ),
]


@pytest.mark.parametrize(("make", "error", "match"), BAD)
def test_bad_features(make, error, match) -> None:  # type: ignore[no-untyped-def]
    f1, f2 = make(_feats(1, 2, 3))
    with pytest.raises(error, match=match):
        MultiScaleMotionHead(CHANNELS)(f1, f2)


def test_inconsistent_level_sizes() -> None:
    f = _feats(1, 2, 3)
    f[0] = f[0][..., :5, :]  # stride-8 map of 5 rows under a 2-row stride-32 map (expects 7 or 8 at stride 16 x2)
    with pytest.raises(ValueError, match=r"feats1\[0\]: expected about twice the size of level 1"):
        MultiScaleMotionHead(CHANNELS)(f, f)


def test_light_head_reads_only_stride_32_and_checks_it() -> None:
    f = _feats(1, 2, 3)
    with pytest.raises(ValueError, match=r"feats1\[2\]: expected 96 channels"):
        LightMotionHead(CHANNELS)([f[0], f[1], f[2][:, :8]], f)
    assert LightMotionHead(CHANNELS).eval()([f[0][..., :3, :3], f[1], f[2]], f).flow.shape == (1, 2, 2, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"in_channels": (8, 8)}, r"in_channels: expected 3 positive ints", id="two_channels"),
        pytest.param({"in_channels": (8, 0, 8)}, r"in_channels: expected 3 positive ints", id="zero_channels"),
        pytest.param({"in_channels": CHANNELS, "context": "lstm"}, r"context: expected one of", id="context"),
    ],
)
def test_bad_construction(kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        MultiScaleMotionHead(**kwargs)


def test_per_level_context_spec_builds_those_blocks() -> None:
    from mmtrack_corr.context import ConvContextBlock, SelectiveScanBlock

    head = MultiScaleMotionHead(CHANNELS, context="conv,scan,scan")
    assert [type(b) for b in head.context] == [ConvContextBlock, SelectiveScanBlock, SelectiveScanBlock]
    assert isinstance(LightMotionHead(CHANNELS, context="conv,conv,scan").context, SelectiveScanBlock)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_volume_of_zero_and_large_features(dtype: torch.dtype) -> None:
    # the features are normalised in float32: in float16 a zero vector (what a warp leaves outside the map) gave
    # 0 / 0 = NaN, and features of magnitude ~300 overflowed the norm to inf (an all-zero volume)
    g = torch.Generator().manual_seed(3)
    f1, f2 = torch.randn(1, 16, 6, 8, generator=g), torch.randn(1, 16, 6, 8, generator=g)
    f2[..., :2] = 0.0  # an empty border
    for scale in (1.0, 300.0):
        want = correlation_volume(f1 * scale, f2 * scale)
        got = correlation_volume((f1 * scale).to(dtype), (f2 * scale).to(dtype))
        assert got.dtype == dtype and bool(torch.isfinite(got).all())
        torch.testing.assert_close(got.float(), want, rtol=0, atol=2e-2)
