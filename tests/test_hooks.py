"""Detector feature hooks, on detector-shaped test networks (and on the real detectors when they import)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from detector_nets import TinyFasterRCNN, TinyYOLOv8, TinyYOLOX
from torch import Tensor, nn

from mmtrack_corr.hooks import (
    DetectorMotion,
    FeatureHooks,
    FrozenDetectorFeatures,
    torchvision_fpn_layers,
    ultralytics_layers,
    yolox_layers,
)


def _images(n: int = 1, h: int = 64, w: int = 96, seed: int = 0) -> Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _nets() -> list[tuple[nn.Module, dict[int, str], dict[int, int]]]:
    torch.manual_seed(0)
    yolo = TinyYOLOv8()
    return [
        (TinyFasterRCNN(), torchvision_fpn_layers(), {8: 16, 16: 16, 32: 16}),
        (TinyYOLOX(), yolox_layers(), {8: 16, 16: 32, 32: 64}),
        (yolo, ultralytics_layers(yolo), {8: 16, 16: 32, 32: 64}),
    ]


@pytest.mark.parametrize("index", [pytest.param(i, id=n) for i, n in enumerate(["fpn_dict", "yolox_tuple", "yolov8"])])
def test_presets_capture_stride_8_16_32(index: int) -> None:
    net, layers, channels = _nets()[index]
    net.eval()
    with FeatureHooks(net, layers) as hooks:
        assert hooks.infer_channels(image_size=(64, 96)) == channels
        with torch.no_grad():
            net(_images(2))
        feats = hooks.features()
    assert [tuple(f.shape) for f in feats] == [(2, channels[s], 64 // s, 96 // s) for s in (8, 16, 32)]


def test_hooked_maps_are_the_detectors_own_outputs() -> None:
    net = TinyFasterRCNN().eval()
    x = _images()
    with torch.no_grad():
        direct = net.backbone(x)
        with FeatureHooks(net, torchvision_fpn_layers()) as hooks:
            net(x)
            feats = hooks.features()
    for f, key in zip(feats, ("1", "2", "3"), strict=True):
        torch.testing.assert_close(f, direct[key], rtol=0, atol=0)


def test_ultralytics_preset_reads_detect_inputs() -> None:
    net = TinyYOLOv8()
    assert ultralytics_layers(net) == {8: "model.10", 16: "model.13", 32: "model.16"}

    class Wrapper(nn.Module):  # the YOLO object holds the DetectionModel in .model
        def __init__(self) -> None:
            super().__init__()
            self.model = net

    assert ultralytics_layers(Wrapper()) == {8: "model.model.10", 16: "model.model.13", 32: "model.model.16"}
    with pytest.raises(ValueError, match="DetectionModel"):
        ultralytics_layers(nn.Conv2d(1, 1, 1))


def test_tensor_output_and_tuple_spec() -> None:
    net = TinyYOLOX().eval()
    with FeatureHooks(net, {8: "backbone.C3_p3", 32: ("backbone", 2)}) as hooks:
        net(_images())
        feats = hooks.features()
    assert [f.shape[1] for f in feats] == [16, 64]


def test_context_manager_and_remove_detach_hooks() -> None:
    net = TinyYOLOX().eval()
    with FeatureHooks(net, yolox_layers()) as hooks:
        pass
    net(_images())
    with pytest.raises(RuntimeError, match="removed"):
        hooks.features()
    hooks.remove()  # idempotent
    assert "active=False" in repr(hooks)


def test_stale_features_are_refused() -> None:
    net = TinyYOLOX().eval()
    hooks = FeatureHooks(net, yolox_layers())
    net(_images())
    hooks.features()
    with pytest.raises(RuntimeError, match="run the model first"):
        hooks.features()
    hooks.remove()


@pytest.mark.parametrize(
    ("layers", "exc", "match"),
    [
        pytest.param({8: "backbone.fpn.inner_block.0"}, ValueError, "inner_blocks", id="unknown_module_close_names"),
        pytest.param({}, ValueError, "non-empty", id="empty"),
        pytest.param({0: "backbone"}, ValueError, "positive", id="zero_stride"),
        pytest.param({"eight": "backbone"}, ValueError, "int strides", id="text_stride"),
        pytest.param({8: 3}, TypeError, "module.path", id="spec_not_str"),
        pytest.param({8: "backbone:"}, ValueError, "key after", id="empty_key"),
        pytest.param({8: "backbone:1", "8": "backbone:2"}, ValueError, "each stride once", id="duplicate_stride"),
    ],
)
def test_bad_layers(layers: dict, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        FeatureHooks(TinyFasterRCNN(), layers)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        pytest.param("backbone", "choose a key", id="dict_without_key"),
        pytest.param("backbone:7", "no key '7'", id="missing_key"),
        pytest.param("backbone.body.layer2:0", "not a dict or list", id="key_on_tensor"),
    ],
)
def test_bad_output_selection(spec: str, match: str) -> None:
    net = TinyFasterRCNN().eval()
    with FeatureHooks(net, {8: spec}) as hooks:
        net(_images())
        with pytest.raises(ValueError, match=match):
            hooks.features()


def test_bad_tuple_index_and_model_type() -> None:
    net = TinyYOLOX().eval()
    with FeatureHooks(net, {8: "backbone:3"}) as hooks:
        net(_images())
        with pytest.raises(ValueError, match="index below 3"):
            hooks.features()
    with pytest.raises(TypeError, match="torch.nn.Module"):
        FeatureHooks("model", {8: "x"})  # type: ignore[arg-type]


def test_infer_channels_checks_strides() -> None:
    net = TinyFasterRCNN()
    with FeatureHooks(net, {8: "backbone:0"}) as hooks:  # '0' is stride 4, declared 8
        with pytest.raises(ValueError, match="stride 8"):
            hooks.infer_channels(image_size=(64, 64))
    assert net.training  # the dry run restores the mode


class _RecordingHead:
    def __init__(self) -> None:
        self.calls: list[tuple[list[Tensor], list[Tensor]]] = []

    def __call__(self, feats1: list[Tensor], feats2: list[Tensor]) -> Tensor:
        self.calls.append((list(feats1), list(feats2)))
        return feats2[-1] - feats1[-1]


def test_detector_motion_one_backbone_pass_per_frame() -> None:
    net = TinyFasterRCNN().eval()
    head = _RecordingHead()
    dm = DetectorMotion(net, torchvision_fpn_layers(), head)
    frames = [_images(seed=i) for i in range(4)]
    steps = [dm(f) for f in frames]
    assert net.backbone_calls == len(frames)
    assert steps[0].motion is None and all(s.motion is not None for s in steps[1:])
    assert len(head.calls) == 3
    for t, (prev, cur) in enumerate(head.calls, start=1):
        assert all(a is b for a, b in zip(prev, steps[t - 1].features, strict=True))  # cached, not recomputed
        assert all(a is b for a, b in zip(cur, steps[t].features, strict=True))
    detections, motion = steps[1]
    assert isinstance(detections, list) and motion.shape == (1, 16, 2, 3)
    dm.reset()
    assert dm(frames[0]).motion is None
    dm(_images(h=96))  # a new frame size: no motion across the change
    assert len(head.calls) == 3
    dm.remove()


def test_detector_motion_head_must_be_callable() -> None:
    with pytest.raises(TypeError, match="head"):
        DetectorMotion(TinyYOLOX(), yolox_layers(), None)  # type: ignore[arg-type]


def test_frozen_detector_features_for_training() -> None:
    net = TinyYOLOX()
    enc = FrozenDetectorFeatures(net, yolox_layers(), image_size=(64, 64))
    assert enc.channels == {8: 16, 16: 32, 32: 64}
    assert list(enc.parameters()) == [] and not any(p.requires_grad for p in net.parameters())
    enc.train()
    assert not net.training  # batch-norm statistics stay frozen
    x = _images(2)
    feats = enc.features(x)
    assert all(not f.requires_grad for f in feats)
    with torch.no_grad():
        direct = net.backbone(x)
    for a, b in zip(feats, direct, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # a head trained on these features: gradients reach the head only
    head = nn.Conv2d(64, 2, 1)
    head(feats[-1]).square().mean().backward()
    assert head.weight.grad is not None and all(p.grad is None for p in net.parameters())


def test_frozen_detector_with_custom_run() -> None:
    net = TinyYOLOX()
    enc = FrozenDetectorFeatures(net, {16: "backbone:1"}, run=lambda m, x: m.backbone(x), image_size=(64, 64))
    assert enc.channels == {16: 32}
    assert net.head[0].weight.grad is None


# ---------------------------------------------------------------------------------------------------- real detectors
def _import_or_skip(name: str) -> object:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # PyPI torchvision is a CUDA build that fails to import beside the CPU torch here
        pytest.skip(f"{name} does not import here ({type(exc).__name__}: {exc}); the stand-in tests cover the hooks")


def test_real_torchvision_faster_rcnn() -> None:
    detection = _import_or_skip("torchvision.models.detection")
    model = detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=256, max_size=256).eval()
    with FeatureHooks(model, torchvision_fpn_layers()) as hooks, torch.no_grad():
        model([torch.rand(3, 256, 256)])
        feats = hooks.features()
    assert [tuple(f.shape) for f in feats] == [(1, 256, 256 // s, 256 // s) for s in (8, 16, 32)]


def test_real_ultralytics_yolov8() -> None:
    tasks = _import_or_skip("ultralytics.nn.tasks")
    model = tasks.DetectionModel("yolov8n.yaml", verbose=False).eval()
    layers = ultralytics_layers(model)
    assert list(layers.values()) == ["model.15", "model.18", "model.21"]
    with FeatureHooks(model, layers) as hooks:
        channels = hooks.infer_channels(image_size=(256, 256))
    assert sorted(channels) == [8, 16, 32]


# ---------------------------------------------------------------------------------------------------- with the heads
def test_motion_model_head_on_hooked_detector_features() -> None:
    from mmtrack_corr.motion_model import MotionModel, MotionModelConfig

    net = TinyYOLOX().eval()
    channels = FrozenDetectorFeatures(net, yolox_layers(), image_size=(64, 96)).channels
    torch.manual_seed(0)
    model = MotionModel(MotionModelConfig(encoder_widths=None, in_channels=tuple(channels.values()), context="none"))
    dm = DetectorMotion(net, yolox_layers(), model.eval().forward_features)
    assert dm(_images(seed=1)).motion is None
    motion = dm(_images(seed=2)).motion
    assert motion.stride == 8 and motion.flow.shape == (1, 2, 8, 12)
    assert net.backbone_calls == 2 + 1  # + the channel-inference dry run


def test_head_trains_on_a_frozen_detector() -> None:
    """A few optimiser steps of a head-only model on a frozen detector's hooked features reduce the training loss."""
    from mmtrack_corr.motion_data import SyntheticPairs
    from mmtrack_corr.motion_model import MotionModel, MotionModelConfig
    from mmtrack_corr.train import motion_loss

    torch.manual_seed(0)
    net = TinyYOLOX()
    frozen = [p.detach().clone() for p in net.parameters()]
    enc = FrozenDetectorFeatures(net, yolox_layers(), image_size=(64, 96))
    config = MotionModelConfig(
        encoder_widths=None, in_channels=tuple(enc.channels.values()), heads=("light",), context="none", light_width=16
    )
    model = MotionModel(config)
    data = SyntheticPairs(64, 96, speeds=("slow",), seed=0)
    batch = {k: torch.stack([data[i][k] for i in range(2)]) for k in data[0]}
    f1, f2 = enc.features(batch["image1"]), enc.features(batch["image2"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(20):
        loss, _ = motion_loss({kind: head(f1, f2) for kind, head in model.heads.items()}, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.85 * losses[0], losses
    assert all(torch.equal(a, b) for a, b in zip(frozen, net.parameters(), strict=True))  # the detector is frozen


def test_detector_motion_box_displacements_and_motion_source() -> None:
    from mmtrack_corr.motion_head import MotionOutput
    from trackers import MotionTracker

    def head(f1: list[Tensor], f2: list[Tensor]) -> MotionOutput:  # (3, -2) input px everywhere, b = 1 px
        h, w = f2[0].shape[-2:]
        flow = torch.tensor([3.0, -2.0]).view(1, 2, 1, 1).expand(1, 2, h, w)
        return MotionOutput(flow, torch.zeros(1, 2, h, w), 8)

    net = TinyYOLOX().eval()
    dm = DetectorMotion(net, yolox_layers(), head)
    boxes = np.array([[8.0, 8.0, 40.0, 40.0], [-30.0, 10.0, 5.0, 50.0]])
    dm(_images(seed=0))
    assert np.isnan(dm.box_displacements(boxes)).all()  # first frame: no motion yet
    dm(_images(seed=1))
    np.testing.assert_allclose(dm.box_displacements(boxes), [[3.0, -2.0], [3.0, -2.0]])
    np.testing.assert_allclose(dm.box_displacements(boxes, scale=(2.0, 0.5)), [[6.0, -1.0], [6.0, -1.0]])
    assert np.isnan(dm.box_displacements(boxes, uncertainty_thresh=0.5)).all()  # b = 1 px > 0.5
    assert dm.box_displacements(np.zeros((0, 4))).shape == (0, 2)
    with pytest.raises(ValueError, match="boxes_xyxy"):
        dm.box_displacements(np.zeros((2, 3)))

    dm.reset()
    tracker = MotionTracker(dm.motion_source(scale=1.0))
    frame = np.zeros((64, 96, 3), np.uint8)
    box = np.array([[20.0, 20.0, 40.0, 50.0]])
    for t in range(4):  # the object moves by exactly the head's motion: one track throughout
        dm(_images(seed=t))
        out = tracker.update(box + t * np.array([3.0, -2.0, 3.0, -2.0]), np.array([0.9]), frame=frame)
    assert out.ids.tolist() == [1]


def test_detector_motion_fits_boxes_to_the_frames() -> None:
    """With the frames, a head 1.5 px off comes back to a held-out photograph's true translation."""
    import cv2

    from mmtrack_corr.motion_head import MotionOutput
    from mmtrack_corr.photos import HELDOUT_PHOTOS, load_photo

    def head(f1: list[Tensor], f2: list[Tensor]) -> MotionOutput:  # (-5.5, 3.5): 1.5 px off the truth on each axis
        h, w = f2[0].shape[-2:]
        flow = torch.tensor([-5.5, 3.5]).view(1, 2, 1, 1).expand(1, 2, h, w)
        return MotionOutput(flow, torch.zeros(1, 2, h, w), 8)

    photo = load_photo(HELDOUT_PHOTOS[1])
    y0, x0 = (photo.shape[0] - 128) // 2, (photo.shape[1] - 192) // 2
    frames = [
        cv2.warpAffine(photo, np.float32([[1, 0, -x0 - 7.0 * t], [0, 1, -y0 + 5.0 * t]]), (192, 128)) for t in range(2)
    ]  # the scene moves by (-7, 5) per frame
    dm = DetectorMotion(TinyYOLOX().eval(), yolox_layers(), head)
    for frame in frames:
        dm(torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255)
    boxes = np.array([[30.0, 20.0, 100.0, 90.0], [110.0, 40.0, 170.0, 110.0]])
    np.testing.assert_allclose(dm.box_displacements(boxes), [[-5.5, 3.5]] * 2)  # the head's own
    fitted = dm.box_displacements(boxes, frames=(frames[0], frames[1]))
    np.testing.assert_allclose(fitted, [[-7.0, 5.0]] * 2, atol=0.1)
    source = dm.motion_source()  # box_refine by default
    np.testing.assert_allclose(source(frames[0], frames[1], boxes), fitted)
    np.testing.assert_allclose(dm.motion_source(box_refine=False)(frames[0], frames[1], boxes), [[-5.5, 3.5]] * 2)
    grey = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    np.testing.assert_allclose(dm.box_displacements(boxes, frames=(grey[0], grey[1])), fitted, atol=1e-3)
    with pytest.raises(ValueError, match=r"frames: expected two frames of one size"):
        dm.box_displacements(boxes, frames=(frames[0], frames[1][:64]))
    with pytest.raises(TypeError, match=r"frames\[1\]: expected a numpy uint8 image"):
        dm.box_displacements(boxes, frames=(frames[0], "frame"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"box_refine: expected True or False"):
        dm.motion_source(box_refine=1)  # type: ignore[arg-type]


def test_detector_motion_equals_the_estimator_at_native_size() -> None:
    """The shipped encoder as the "detector": DetectorMotion's read-out (field refinement, box fit, camera fallback)
    is the estimator's at native size, on a held-out generated pair."""
    from mmtrack_corr.estimator import MotionEstimator
    from mmtrack_corr.synthetic import background_boxes, make_pair

    est = MotionEstimator.from_pretrained(max_side=None)
    model = est.model
    assert model.encoder is not None
    dm = DetectorMotion(model.encoder, {8: "level8", 16: "level16", 32: "level32"}, model.forward_features)
    rng = np.random.default_rng(4)
    pair = make_pair(rng, 192, 320, "medium", photos="heldout")
    boxes = np.concatenate([pair.boxes, background_boxes(rng, pair, 6)[0]])
    for frame in (pair.frame1, pair.frame2):
        dm(torch.from_numpy(np.ascontiguousarray(frame[..., ::-1])).permute(2, 0, 1)[None].float() / 255)
    frames = (pair.frame1, pair.frame2)
    want = {}
    for refine, box_refine, fallback in ((0, False, False), (0, True, False), (2, True, False), (2, True, True)):
        est.refine, est.box_refine, est.camera_fallback = refine, box_refine, fallback
        want[refine, box_refine, fallback] = est.box_displacements(*frames, boxes)
        got = dm.box_displacements(boxes, frames=frames, refine=refine, box_refine=box_refine, camera_fallback=fallback)
        np.testing.assert_allclose(got, want[refine, box_refine, fallback], atol=2e-3, err_msg=str((refine, fallback)))
    source = dm.motion_source(refine=2, camera_fallback=True)
    np.testing.assert_allclose(source(*frames, boxes), want[2, True, True], atol=2e-3)
    # with no options, the read-out is the estimator's defaults (field refinement aside: 0 at native size)
    from mmtrack_corr.estimator import DEFAULT_BOX_REFINE, DEFAULT_CAMERA_FALLBACK

    est.refine, est.box_refine, est.camera_fallback = 0, DEFAULT_BOX_REFINE, DEFAULT_CAMERA_FALLBACK
    defaults = est.box_displacements(*frames, boxes)
    np.testing.assert_allclose(dm.box_displacements(boxes, frames=frames), defaults, atol=2e-3)
    np.testing.assert_allclose(dm.motion_source()(*frames, boxes), defaults, atol=2e-3)
    assert np.abs(defaults - want[0, True, False]).max() > 0.1  # the fallback's default is seen on this pair
    # each setting changed the result on this pair by far more than the 2e-3 px tolerance above, so the comparisons
    # above saw each one run
    assert np.abs(want[0, True, False] - want[0, False, False]).max() > 0.1
    assert np.abs(want[2, True, False] - want[0, True, False]).max() > 0.1
    assert np.abs(want[2, True, True] - want[2, True, False]).max() > 0.1


def test_detector_motion_refines_the_field_at_the_detectors_input_size() -> None:
    """A detector fed frames at half size (scale 2): the field refinement runs on the frames resized to its input,
    and the head's motion 1 input px off comes back to the true translation in frame pixels."""
    import cv2

    from mmtrack_corr.motion_head import MotionOutput
    from mmtrack_corr.photos import HELDOUT_PHOTOS, load_photo

    def head(f1: list[Tensor], f2: list[Tensor]) -> MotionOutput:  # truth (-3.5, 2.5) input px; the head 1 px off
        h, w = f2[0].shape[-2:]
        return MotionOutput(torch.tensor([-2.5, 1.5]).view(1, 2, 1, 1).expand(1, 2, h, w), torch.zeros(1, 2, h, w), 8)

    photo = load_photo(HELDOUT_PHOTOS[1])
    y0, x0 = (photo.shape[0] - 128) // 2, (photo.shape[1] - 192) // 2
    frames = [
        cv2.warpAffine(photo, np.float32([[1, 0, -x0 - 7.0 * t], [0, 1, -y0 + 5.0 * t]]), (192, 128)) for t in range(2)
    ]  # the scene moves by (-7, 5) frame px per frame
    dm = DetectorMotion(TinyYOLOX().eval(), yolox_layers(), head)
    for frame in frames:
        small = cv2.resize(frame, (96, 64), interpolation=cv2.INTER_AREA)
        dm(torch.from_numpy(small).permute(2, 0, 1)[None].float() / 255)
    boxes = np.array([[30.0, 20.0, 100.0, 90.0], [110.0, 40.0, 170.0, 110.0]])
    pair = (frames[0], frames[1])
    np.testing.assert_allclose(dm.box_displacements(boxes, scale=2.0), [[-5.0, 3.0]] * 2)  # the head's own
    refined = dm.box_displacements(boxes, scale=2.0, frames=pair, refine=3, box_refine=False)
    np.testing.assert_allclose(refined, [[-7.0, 5.0]] * 2, atol=0.25)
    np.testing.assert_allclose(dm.box_displacements(boxes, scale=2.0, frames=pair, box_refine=False), [[-5.0, 3.0]] * 2)
    source = dm.motion_source(scale=2.0, box_refine=False, refine=3)
    np.testing.assert_allclose(source(frames[0], frames[1], boxes), refined)
    with pytest.raises(ValueError, match=r"refine: expected an int >= 0, got -1"):
        dm.box_displacements(boxes, frames=pair, refine=-1)
    with pytest.raises(ValueError, match=r"camera_fallback: expected True or False, got 1"):
        dm.box_displacements(boxes, frames=pair, camera_fallback=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"box_refine: expected True or False, got None"):
        dm.box_displacements(boxes, frames=pair, box_refine=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"refine: expected an int >= 0, got 1.5"):
        dm.motion_source(refine=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"camera_fallback: expected True or False"):
        dm.motion_source(camera_fallback="yes")  # type: ignore[arg-type]


def test_grey_frame_resizes_and_pads_like_a_detector_input() -> None:
    from mmtrack_corr.estimator import GreyFrame
    from mmtrack_corr.refine import grey_image

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    rgb = torch.from_numpy(frame[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    grey = GreyFrame(frame, torch.device("cpu")).grey()
    assert torch.equal(grey, grey_image(rgb))  # the estimator's luma, bit for bit
    assert torch.equal(GreyFrame(frame[..., 1], torch.device("cpu")).grey(), rgb[:, 1:2])  # a grey frame as it is
    small = GreyFrame(frame, torch.device("cpu"), size=(15, 25), padded=(16, 32)).grey()
    want = torch.nn.functional.interpolate(grey, size=(15, 25), mode="bilinear", antialias=True)
    assert small.shape == (1, 1, 16, 32)
    assert torch.equal(small[..., :15, :25], want)
    assert torch.equal(small[..., 15, :25], want[..., 14, :]) and torch.equal(small[..., :15, 31], want[..., :, 24])
