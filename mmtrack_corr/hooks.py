"""Detector feature hooks: feed a detector's own stride-8/16/32 maps to the motion head, one backbone pass per frame.

A *layer spec* names where a feature map comes from: ``"module.path"`` (the module's output, which must be a tensor)
or ``"module.path:key"`` (one entry of a dict output such as torchvision's FPN ``OrderedDict``, or, with an integer
key, one element of a list/tuple output such as YOLOX's PAFPN tuple). Module paths are those of
``model.named_modules()``. Nothing in the detector's code changes: forward hooks copy the references of the
selected outputs as the detector runs.

Layers of common detectors (strides are relative to the tensor the backbone sees; see each preset's docstring):

========================================  =========================================================================
torchvision Faster R-CNN / Mask R-CNN FPN  ``backbone`` keys '0', '1', '2', '3', 'pool' at strides 4, 8, 16, 32, 64
                                           -> :func:`torchvision_fpn_layers`: ``{8: 'backbone:1', 16: 'backbone:2',
                                           32: 'backbone:3'}`` (RetinaNet / FCOS: '0', '1', '2' at 8, 16, 32)
Ultralytics YOLOv8 / YOLO11               inputs of the Detect layer (its ``.f``: 15/18/21, YOLO11 16/19/22) = P3,
                                           P4, P5 -> :func:`ultralytics_layers` reads ``.f`` from the model
YOLOX                                     ``backbone`` (YOLOPAFPN) returns a tuple at strides 8, 16, 32
                                           -> :func:`yolox_layers`: ``{8: 'backbone:0', 16: 'backbone:1',
                                           32: 'backbone:2'}``
========================================  =========================================================================
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mmtrack_corr.estimator import (
    DEFAULT_BOX_REFINE,
    DEFAULT_CAMERA_FALLBACK,
    GreyFrame,
    _check_frame,
    _scale_pair,
    box_motion_on_frames,
    read_box_motion,
)
from mmtrack_corr.motion_head import MotionOutput
from mmtrack_corr.refine import refine_flow

__all__ = [
    "DetectorMotion",
    "DetectorStep",
    "FeatureHooks",
    "FrozenDetectorFeatures",
    "torchvision_fpn_layers",
    "ultralytics_layers",
    "yolox_layers",
]

LayerSpec = str | tuple[str, str | int | None]


# ---------------------------------------------------------------------------------------------------- presets
def torchvision_fpn_layers(prefix: str = "backbone", *, retinanet: bool = False) -> dict[int, str]:
    """Hook layers of a torchvision detector with an FPN backbone (Faster/Mask/Keypoint R-CNN, RetinaNet, FCOS).

    torchvision's ``BackboneWithFPN`` returns an ``OrderedDict``: keys '0'-'3' at strides 4/8/16/32 and 'pool' at
    64 for the R-CNNs; '0', '1', '2', 'p6', 'p7' at 8/16/32/64/128 for RetinaNet and FCOS. The strides are relative
    to the *resized, padded* batch that ``model.transform`` builds (shorter side 800 by default), not to the
    original image: scale the head's displacements by ``original_size / resized_size`` (``resized_size`` is
    ``model.transform(images)[0].image_sizes``), or give the detector a transform that does not resize.

    Args:
        prefix: module path of the backbone inside the model (``"backbone"`` for the torchvision detectors; ``""``
            when hooking a bare ``BackboneWithFPN``).
        retinanet: the RetinaNet / FCOS key layout.

    Returns:
        ``{stride: layer spec}`` for strides 8, 16, 32.

    Example:
        >>> torchvision_fpn_layers()
        {8: 'backbone:1', 16: 'backbone:2', 32: 'backbone:3'}
    """
    keys = ("0", "1", "2") if retinanet else ("1", "2", "3")
    return {stride: f"{prefix}:{key}" for stride, key in zip((8, 16, 32), keys, strict=True)}


def yolox_layers(prefix: str = "backbone") -> dict[int, str]:
    """Hook layers of a YOLOX model: its ``backbone`` (YOLOPAFPN) returns ``(P3, P4, P5)`` at strides 8, 16, 32.

    Args:
        prefix: module path of the PAFPN inside the model.

    Returns:
        ``{stride: layer spec}`` for strides 8, 16, 32.

    Example:
        >>> yolox_layers()
        {8: 'backbone:0', 16: 'backbone:1', 32: 'backbone:2'}
    """
    return {8: f"{prefix}:0", 16: f"{prefix}:1", 32: f"{prefix}:2"}


def ultralytics_layers(model: nn.Module) -> dict[int, str]:
    """Hook layers of an Ultralytics detection model (YOLOv5u/v8/YOLO11...): the Detect layer's inputs P3, P4, P5.

    The Detect layer is the last entry of the model's layer list; its ``.f`` holds the indices of the layers that
    feed it (YOLOv8: 15, 18, 21; YOLO11: 16, 19, 22), at strides 8, 16, 32 of the letterboxed input.

    Args:
        model: the ``DetectionModel`` (``YOLO(...).model``) or the ``YOLO`` wrapper itself.

    Returns:
        ``{stride: layer spec}``, module paths relative to ``model`` (e.g. ``{8: 'model.15', ...}``; with the
        wrapper, ``'model.model.15'``).

    Raises:
        ValueError: the model has no layer list ending in a layer with a three-entry ``.f``.
    """
    prefix = ""
    inner: Any = model
    if not isinstance(getattr(inner, "model", None), (nn.Sequential, nn.ModuleList)):
        inner = getattr(inner, "model", None)  # the YOLO wrapper holds the DetectionModel in .model
        prefix = "model."
    layers = getattr(inner, "model", None)
    if not isinstance(layers, (nn.Sequential, nn.ModuleList)) or len(layers) == 0:
        raise ValueError(
            f"model: expected an Ultralytics DetectionModel with a .model layer list, got {type(model).__name__}"
        )
    sources = getattr(layers[-1], "f", None)
    if not isinstance(sources, (list, tuple)) or len(sources) != 3:
        raise ValueError(
            f"model: expected the last layer (Detect) to have .f with three input indices, got {sources!r}"
        )
    n = len(layers)
    indices = [int(i) % n for i in sources]  # Ultralytics allows negative (relative) indices
    strides = getattr(layers[-1], "stride", None)
    stride_list = [8, 16, 32]
    if isinstance(strides, Tensor) and strides.numel() == 3 and bool((strides > 0).all()):
        stride_list = [int(s) for s in strides.tolist()]
    return {s: f"{prefix}model.{i}" for s, i in zip(stride_list, indices, strict=True)}


# ---------------------------------------------------------------------------------------------------- hooks
def _parse_spec(stride: object, spec: object) -> tuple[int, str, str | None]:
    if isinstance(stride, bool) or not isinstance(stride, (int, str)):
        raise TypeError(f"layers: expected int strides as keys, got {stride!r}")
    try:
        s = int(stride)
    except ValueError:
        raise ValueError(f"layers: expected int strides as keys, got {stride!r}") from None
    if s <= 0:
        raise ValueError(f"layers: expected positive strides, got {stride!r}")
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        name, key = spec
        return s, name, None if key is None else str(key)
    if not isinstance(spec, str):
        raise TypeError(f"layers[{stride!r}]: expected 'module.path' or 'module.path:key', got {spec!r}")
    name, sep, key = spec.partition(":")
    if sep and not key:
        raise ValueError(f"layers[{stride!r}]: expected a key after ':', got {spec!r}")
    return s, name, key if sep else None


def _select(output: object, key: str | None, where: str) -> Tensor:
    if key is None:
        if isinstance(output, Tensor):
            return output
        if isinstance(output, Mapping):
            raise ValueError(f"{where}: the output is a dict; choose a key with ':key' (keys: {list(output.keys())})")
        if isinstance(output, (list, tuple)):
            raise ValueError(f"{where}: the output is a {type(output).__name__} of {len(output)}; choose ':index'")
        raise ValueError(f"{where}: expected a tensor output, got {type(output).__name__}")
    if isinstance(output, Mapping):
        if key in output:
            value = output[key]
        elif key.lstrip("-").isdigit() and int(key) in output:
            value = output[int(key)]
        else:
            raise ValueError(f"{where}: no key {key!r} in the output (keys: {list(output.keys())})")
    elif isinstance(output, (list, tuple)):
        if not key.lstrip("-").isdigit() or not -len(output) <= int(key) < len(output):
            raise ValueError(f"{where}: expected an index below {len(output)} for the {type(output).__name__} output")
        value = output[int(key)]
    else:
        raise ValueError(f"{where}: key {key!r} given but the output is a {type(output).__name__}, not a dict or list")
    if not isinstance(value, Tensor):
        raise ValueError(f"{where}: expected a tensor at key {key!r}, got {type(value).__name__}")
    return value


def _default_run(model: nn.Module, inputs: Any) -> Any:
    return model(inputs)


class FeatureHooks:
    """Capture named feature maps of a model with forward hooks, without changing its code.

    After each forward of the model, :meth:`features` returns the captured maps, ordered by stride. A module called
    several times in one forward keeps its last output. Use as a context manager (hooks removed on exit) or call
    :meth:`remove`.

    Args:
        model: any ``nn.Module`` (a detector, its backbone...).
        layers: ``{stride: spec}``; spec is ``"module.path"``, ``"module.path:key"`` (dict key or list index) or a
            ``(module_path, key)`` pair. See the module docstring and the presets for common detectors.

    Raises:
        TypeError: bad ``model`` or ``layers`` types.
        ValueError: no layers, a stride given twice, or a module path that ``model`` does not have (the message
            lists the closest names).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, 8, 1), nn.Conv2d(8, 16, 3, 2, 1), nn.Conv2d(16, 32, 3, 2, 1))
        >>> with FeatureHooks(net, {8: "0", 16: "1", 32: "2"}) as hooks:
        ...     _ = net(torch.zeros(1, 3, 64, 96))
        ...     [f.shape[1:] for f in hooks.features()]
        [torch.Size([8, 8, 12]), torch.Size([16, 4, 6]), torch.Size([32, 2, 3])]
    """

    def __init__(self, model: nn.Module, layers: Mapping[int, LayerSpec]) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(layers, Mapping) or not layers:
            raise ValueError(f"layers: expected a non-empty mapping {{stride: 'module.path[:key]'}}, got {layers!r}")
        parsed = sorted((_parse_spec(stride, spec) for stride, spec in layers.items()), key=lambda t: t[0])
        strides = [p[0] for p in parsed]
        if len(set(strides)) != len(strides):
            raise ValueError(f"layers: expected each stride once, got {sorted(strides)}")
        modules = dict(model.named_modules())
        for _, name, _ in parsed:
            if name not in modules:
                close = difflib.get_close_matches(name, list(modules), n=5, cutoff=0.5)
                hint = f"; closest: {close}" if close else ""
                raise ValueError(f"layers: {type(model).__name__} has no module {name!r}{hint}")
        self.model = model
        self.strides: tuple[int, ...] = tuple(strides)
        self._specs = [(name, key) for _, name, key in parsed]
        self._outputs: dict[str, object] = {}
        self._handles: list[Any] = []
        for name in dict.fromkeys(name for name, _ in self._specs):
            self._handles.append(modules[name].register_forward_hook(self._make_hook(name)))
        self.calls = 0  # forwards of the hooked modules seen (counted on the first hooked module)
        self._first = self._specs[0][0]

    def _make_hook(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self._outputs[name] = output
            if name == self._first:
                self.calls += 1

        return hook

    def features(self, *, clear: bool = True) -> list[Tensor]:
        """The maps captured by the last forward, ordered by increasing stride.

        Args:
            clear: forget them afterwards, so that a later call without a new forward fails instead of returning
                stale maps.

        Returns:
            One tensor per stride, each shaped as the layer produced it (usually (B, C, H/stride, W/stride)).

        Raises:
            RuntimeError: a hooked module did not run since the last read (or the hooks were removed).
        """
        missing = [name for name, _ in self._specs if name not in self._outputs]
        if missing:
            state = "the hooks were removed" if not self._handles else "run the model first"
            raise RuntimeError(f"FeatureHooks: no output captured from {missing} ({state})")
        feats = [_select(self._outputs[name], key, f"layer {name!r}") for name, key in self._specs]
        if clear:
            self._outputs.clear()
        return feats

    def infer_channels(
        self,
        example: Tensor | None = None,
        *,
        image_size: tuple[int, int] = (256, 256),
        run: Callable[[nn.Module, Any], Any] | None = None,
    ) -> dict[int, int]:
        """Channel count of each hooked map, from a dry run of the model on ``example`` (zeros by default).

        Also checks each map's spatial size against its declared stride (within rounding).

        Args:
            example: model input; default ``zeros(1, 3, *image_size)`` on the model's device.
            image_size: (H, W) of the default input, multiples of the largest stride.
            run: ``run(model, example)`` calls the model; default ``model(example)``.

        Returns:
            ``{stride: channels}``.

        Raises:
            ValueError: a map is not 4-D or its size does not match its stride.
        """
        if example is None:
            param = next(self.model.parameters(), None)
            dev = param.device if param is not None else torch.device("cpu")
            example = torch.zeros(1, 3, *image_size, device=dev)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                (run or _default_run)(self.model, example)
        finally:
            self.model.train(was_training)
        feats = self.features()
        height, width = example.shape[-2:]
        out = {}
        for stride, (name, key), f in zip(self.strides, self._specs, feats, strict=True):
            where = f"{name}:{key}" if key is not None else name
            if f.ndim != 4:
                raise ValueError(f"layer {where!r}: expected a (B, C, H, W) map, got shape {tuple(f.shape)}")
            expected = (-(-height // stride), -(-width // stride))
            if abs(f.shape[2] - expected[0]) > 1 or abs(f.shape[3] - expected[1]) > 1:
                raise ValueError(
                    f"layer {where!r}: expected about {expected} (input {(height, width)} / stride {stride}), "
                    f"got {tuple(f.shape[2:])}"
                )
            out[stride] = int(f.shape[1])
        return out

    def remove(self) -> None:
        """Remove the hooks (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._outputs.clear()

    def __enter__(self) -> FeatureHooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        specs = {s: (n if k is None else f"{n}:{k}") for s, (n, k) in zip(self.strides, self._specs, strict=True)}
        return f"FeatureHooks({type(self.model).__name__}, {specs}, active={bool(self._handles)})"


# ---------------------------------------------------------------------------------------------------- frozen detector
class FrozenDetectorFeatures(nn.Module):
    """A frozen detector as a feature encoder: ``features(images)`` returns its hooked stride-8/16/32 maps.

    The detector is put in eval mode, its parameters stop requiring gradients, and it runs under
    ``torch.no_grad()``, so a motion head can be trained on its features (the same ``features(images) -> list``
    call as :class:`mmtrack_corr.motion_model.MotionModel`). The detector stays an attribute (moved with
    ``.to(device)``) but is kept out of this module's ``parameters()``, so an optimizer built from a head plus
    this module never sees it.

    Args:
        detector: the detector (or its backbone).
        layers: ``{stride: spec}`` as :class:`FeatureHooks`.
        run: ``run(detector, images)`` calls the detector; default ``detector(images)``. Use it for detectors
            that want another input form, e.g. ``lambda m, x: m.backbone(x)`` to skip a detection head.
        image_size: (H, W) of the dry run that finds the channel counts (``channels``, ``{stride: C}``).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, 8, 1), nn.Conv2d(8, 16, 3, 2, 1), nn.Conv2d(16, 32, 3, 2, 1))
        >>> enc = FrozenDetectorFeatures(net, {8: "0", 16: "1", 32: "2"})
        >>> enc.channels
        {8: 8, 16: 16, 32: 32}
        >>> [f.shape[1] for f in enc.features(torch.zeros(2, 3, 64, 64))]
        [8, 16, 32]
    """

    detector: nn.Module

    def __init__(
        self,
        detector: nn.Module,
        layers: Mapping[int, LayerSpec],
        *,
        run: Callable[[nn.Module, Any], Any] | None = None,
        image_size: tuple[int, int] = (256, 256),
    ) -> None:
        super().__init__()
        hooks = FeatureHooks(detector, layers)
        detector.eval()
        detector.requires_grad_(False)
        object.__setattr__(self, "detector", detector)  # not a submodule: never in parameters() / state_dict()
        self.hooks = hooks
        self.run = run or _default_run
        self.channels = hooks.infer_channels(image_size=image_size, run=self.run)

    def _apply(self, fn: Any, recurse: bool = True) -> FrozenDetectorFeatures:
        self.detector._apply(fn, recurse)
        return super()._apply(fn, recurse)  # type: ignore[return-value]

    def train(self, mode: bool = True) -> FrozenDetectorFeatures:
        super().train(mode)
        self.detector.eval()  # frozen: batch-norm statistics never change
        return self

    def features(self, images: Any) -> list[Tensor]:
        """Run the detector once on ``images`` and return its hooked maps, ordered by stride.

        Args:
            images: what the detector takes, typically (B, 3, H, W) float.

        Returns:
            One (B, C_s, H/s, W/s) map per stride, without gradient.
        """
        with torch.no_grad():
            self.run(self.detector, images)
        return self.hooks.features()

    def forward(self, images: Any) -> list[Tensor]:
        return self.features(images)


# ---------------------------------------------------------------------------------------------------- detector + head
class DetectorStep:
    """What :class:`DetectorMotion` returns for one frame.

    Attributes:
        detections: the detector's own output for this frame, untouched.
        motion: the motion head's output from the previous frame to this one (``MotionOutput``: ``flow``
            (B, 2, h, w) in pixels of the detector's input tensor, ``stride``...), or None on the first frame,
            after :meth:`DetectorMotion.reset`, or when the feature shapes changed.
        features: this frame's hooked maps, ordered by stride.
    """

    __slots__ = ("detections", "features", "motion")

    def __init__(self, detections: Any, motion: Any, features: list[Tensor]) -> None:
        self.detections = detections
        self.motion = motion
        self.features = features

    def __iter__(self) -> Iterator[Any]:
        return iter((self.detections, self.motion))


def _check_read_options(box_refine: object, refine: object, camera_fallback: object) -> None:
    if not isinstance(box_refine, bool):
        raise ValueError(f"box_refine: expected True or False, got {box_refine!r}")
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise ValueError(f"refine: expected an int >= 0, got {refine!r}")
    if not isinstance(camera_fallback, bool):
        raise ValueError(f"camera_fallback: expected True or False, got {camera_fallback!r}")


class DetectorMotion:
    """Detector + motion head, one backbone pass per frame: the previous frame's hooked features are cached.

    Call once per frame, in order. Each call runs the detector (which detects as usual), takes its hooked maps and,
    when the previous frame's maps are cached with the same shapes, runs ``head(prev_feats, cur_feats)``. The head
    sees the maps ordered by stride (8, 16, 32 for MM-Tracker's heads); its displacements are in pixels of the
    tensor the detector's backbone saw (see :func:`torchvision_fpn_layers` for detectors that resize internally).
    Read per-box motion with :meth:`box_displacements`, or hand :meth:`motion_source` to ``trackers.MotionTracker``.
    Given the two frames, each box's displacement is also fitted to them (the estimator's box fit,
    :func:`mmtrack_corr.refine.refine_boxes`, at the frames' own resolution).

    Args:
        detector: the detector.
        layers: ``{stride: spec}`` as :class:`FeatureHooks`.
        head: a motion head, ``head(feats1, feats2) -> MotionOutput`` (e.g. ``MotionModel.forward_features`` or a
            ``LightMotionHead``), trained on these features.
        run: ``run(detector, inputs) -> detections``; default ``detector(inputs)``.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, 8, 1), nn.Conv2d(8, 16, 3, 2, 1), nn.Conv2d(16, 32, 3, 2, 1))
        >>> dm = DetectorMotion(net, {8: "0", 16: "1", 32: "2"}, lambda f1, f2: f2[-1] - f1[-1])
        >>> dm(torch.zeros(1, 3, 64, 64)).motion is None, dm(torch.ones(1, 3, 64, 64)).motion.shape
        (True, torch.Size([1, 32, 2, 2]))
    """

    def __init__(
        self,
        detector: nn.Module,
        layers: Mapping[int, LayerSpec],
        head: Callable[[Sequence[Tensor], Sequence[Tensor]], Any],
        *,
        run: Callable[[nn.Module, Any], Any] | None = None,
    ) -> None:
        if not callable(head):
            raise TypeError(f"head: expected a callable (feats1, feats2) -> MotionOutput, got {type(head).__name__}")
        self.detector = detector
        self.hooks = FeatureHooks(detector, layers)
        self.head = head
        self.run = run or _default_run
        self._prev: list[Tensor] | None = None
        self.last: DetectorStep | None = None
        self._images: list[GreyFrame] = []  # the refinements' images of the last two frames

    def reset(self) -> None:
        """Forget the cached frame (call between videos)."""
        self._prev = None
        self.last = None
        self._images.clear()

    def _image(
        self, frame: np.ndarray, device: torch.device, size: tuple[int, int] | None, padded: tuple[int, int] | None
    ) -> GreyFrame:
        """A frame's grey image (at its own resolution, or at the head's input size), its gradients and box-fit
        pyramid - cached: a frame is the current one of a step and the previous one of the next."""
        for seen in self._images:
            if (
                seen.size == size
                and seen.padded == padded
                and seen.frame.shape == frame.shape
                and np.array_equal(seen.frame, frame)
            ):
                return seen
        image = GreyFrame(frame.copy(), device, size, padded)
        self._images.append(image)
        del self._images[:-4]
        return image

    def remove(self) -> None:
        """Remove the hooks from the detector."""
        self.hooks.remove()
        self._prev = None

    def __call__(self, inputs: Any) -> DetectorStep:
        """Run the detector on one frame and the head on (previous, this) frame's features.

        Args:
            inputs: the detector's input for this frame.

        Returns:
            A :class:`DetectorStep` (unpacks as ``detections, motion``).
        """
        with torch.inference_mode():
            detections = self.run(self.detector, inputs)
            feats = self.hooks.features()
            motion = None
            prev = self._prev
            if prev is not None and [f.shape for f in prev] == [f.shape for f in feats]:
                if isinstance(self.head, nn.Module):
                    self.head.eval()
                motion = self.head(prev, feats)
        self._prev = feats
        self.last = DetectorStep(detections, motion, feats)
        return self.last

    def box_displacements(
        self,
        boxes_xyxy: np.ndarray,
        *,
        scale: float | tuple[float, float] = 1.0,
        frame_size: tuple[int, int] | None = None,
        uncertainty_thresh: float | None = None,
        frames: tuple[np.ndarray, np.ndarray] | None = None,
        box_refine: bool = DEFAULT_BOX_REFINE,
        refine: int = 0,
        camera_fallback: bool = DEFAULT_CAMERA_FALLBACK,
    ) -> np.ndarray:
        """Per-box displacements from the last call's motion (previous frame -> last frame).

        Args:
            boxes_xyxy: boxes in the previous frame, (N, 4), xyxy frame pixels.
            scale: frame pixels per detector-input pixel (``original / resized`` when the detector resizes).
            frame_size: (H, W) of the frame, to clip the boxes; None clips to the motion field only (or to
                ``frames``).
            uncertainty_thresh: NaN rows where the box's predicted uncertainty (frame pixels) exceeds this.
            frames: ``(previous, last)`` frames, uint8 (H, W, 3) BGR or (H, W) grey, the images the two steps'
                detector inputs came from: each box's displacement is then fitted to them
                (:func:`mmtrack_corr.refine.refine_boxes`, from the head's box average, at the frames' resolution).
                None reads the head's motion only.
            box_refine: with ``frames``, the box fit (default); False skips it (``refine`` and ``camera_fallback``
                still apply).
            refine: with ``frames``, first refine the head's field with this many Lucas-Kanade steps
                (:func:`mmtrack_corr.refine.refine_flow`) on the frames resized to the detector's input size (frame
                size / ``scale``, the input taken as the frame's resized copy at its top-left corner, padded to the
                field's extent), as ``MotionEstimator(refine=...)`` does; 0 = not.
            camera_fallback: with ``frames``, along the directions the frames cannot pin (a flat box, a single
                edge) a box takes the camera's motion (the homography fitted to the head's field, sharpened on the
                frames), as ``MotionEstimator(camera_fallback=True)`` does; default
                :data:`mmtrack_corr.estimator.DEFAULT_CAMERA_FALLBACK` (True).

        Returns:
            (N, 2) float64 ``(dx, dy)`` in frame pixels; all NaN when there is no motion yet (first frame).

        Raises:
            ValueError: ``boxes_xyxy`` is not (N, 4); ``frames`` of different sizes; bad ``box_refine`` /
                ``refine`` / ``camera_fallback``.
            TypeError: ``frames`` are not numpy images.
        """
        _check_read_options(box_refine, refine, camera_fallback)
        boxes = np.asarray(boxes_xyxy, dtype=np.float64)
        if boxes.size == 0:
            return np.zeros((0, 2))
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes_xyxy: expected shape (N, 4), got {boxes.shape}")
        if self.last is None or self.last.motion is None:
            return np.full((boxes.shape[0], 2), np.nan)
        motion = self.last.motion
        sx, sy = _scale_pair(scale)
        if frames is None:
            disp, sigma = read_box_motion(motion, boxes, scale=(sx, sy), frame_size=frame_size)
            if uncertainty_thresh is not None:
                disp[sigma > uncertainty_thresh] = np.nan
            return disp
        prev, cur = _check_frame(frames[0], "frames[0]"), _check_frame(frames[1], "frames[1]")
        if prev.shape[:2] != cur.shape[:2]:
            raise ValueError(f"frames: expected two frames of one size, got {prev.shape[:2]} and {cur.shape[:2]}")
        frame_size = prev.shape[:2] if frame_size is None else frame_size
        device = motion.flow.device
        if refine:
            field = tuple(motion.flow.shape[-2:])
            padded = (field[0] * motion.stride, field[1] * motion.stride)
            size = (max(1, round(prev.shape[0] / sy)), max(1, round(prev.shape[1] / sx)))
            small = self._image(prev, device, size, padded), self._image(cur, device, size, padded)
            flow = refine_flow(
                small[0].grey(),
                small[1].grey(),
                motion.flow[:1].float(),
                motion.stride,
                iters=refine,
                gradients1=small[0].gradients(),
                gradients2=small[1].gradients(),
            )
            motion = MotionOutput(flow, motion.log_scale[:1], motion.stride, motion.aux)
        images = self._image(prev, device, None, None), self._image(cur, device, None, None)
        disp, _ = box_motion_on_frames(
            motion,
            boxes,
            frame_size,
            (sx, sy),
            images,
            (1.0, 1.0),
            box_refine=box_refine,
            camera_fallback=camera_fallback,
            uncertainty_thresh=uncertainty_thresh,
        )
        return disp

    def motion_source(
        self,
        *,
        scale: float | tuple[float, float] = 1.0,
        uncertainty_thresh: float | None = None,
        box_refine: bool = DEFAULT_BOX_REFINE,
        refine: int = 0,
        camera_fallback: bool = DEFAULT_CAMERA_FALLBACK,
    ) -> Callable[[Any, Any, np.ndarray], np.ndarray]:
        """A ``trackers.MotionSource`` that answers from the last call's motion (and, with ``box_refine``, ``refine``
        or ``camera_fallback``, uses the frames it is given: :meth:`box_displacements`).

        Call the detector on frame t first (``step = dm(inputs)``), then ``tracker.update(..., frame=frame)``: the
        tracker asks for the motion of its tracks' boxes from frame t-1 to frame t, which is this step's motion.

        Args:
            scale: frame pixels per detector-input pixel.
            uncertainty_thresh: as :meth:`box_displacements`.
            box_refine: each box's displacement fitted to the tracker's frames when both are numpy images (default;
                on held-out pairs at 544x960 it lowers the shipped head's own error by 4-31 %, see the README).
            refine: field refinement steps on the frames before the box fit (:meth:`box_displacements`); 0 = not.
            camera_fallback: the camera fallback on the frames (:meth:`box_displacements`).

            With all three off, or without two numpy frames, the head's motion is read as it is.

        Returns:
            ``source(prev_frame, frame, boxes_xyxy) -> (N, 2)``.

        Raises:
            ValueError: ``box_refine`` / ``camera_fallback`` not a bool, ``refine`` not an int >= 0.
        """
        _check_read_options(box_refine, refine, camera_fallback)

        def source(prev_frame: Any, frame: Any, boxes_xyxy: np.ndarray) -> np.ndarray:
            size = frame.shape[:2] if isinstance(frame, np.ndarray) else None
            both = isinstance(prev_frame, np.ndarray) and isinstance(frame, np.ndarray)
            return self.box_displacements(
                boxes_xyxy,
                scale=scale,
                frame_size=size,
                uncertainty_thresh=uncertainty_thresh,
                frames=(prev_frame, frame) if (box_refine or refine or camera_fallback) and both else None,
                box_refine=box_refine,
                refine=refine,
                camera_fallback=camera_fallback,
            )

        return source
