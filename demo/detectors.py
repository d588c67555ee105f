"""Detectors for the demo: a small protocol and the built-in and adapter implementations.

A *detector* is any callable ``detector(frame) -> Detections`` (or a tuple ``(boxes, scores[, classes])``) taking a
BGR ``uint8`` image of shape (H, W, 3). Boxes are xyxy pixels of that image, scores in [0, 1], classes integer ids
(-1 when the detector has none). :func:`as_detections` turns any such output into a checked :class:`Detections`.

Built in (no weights to download; see :func:`build_detector` for the ``--detector`` spellings):

- :class:`HogPeopleDetector`: OpenCV's HOG + linear-SVM people detector (its weights are compiled into OpenCV 4);
  the SVM margins are squashed into [0, 1] with a logistic function.
- :class:`BackgroundSubtractionDetector`: MOG2 background subtraction + connected components (static cameras).
- :class:`DetectionTable`: precomputed detections per frame (a MOTChallenge ``det.txt``, or arrays).
- :func:`load_callable_detector`: ``module:function``, any user callable.
- :class:`UltralyticsDetector` and :class:`TorchvisionDetector`: adapters for detectors users already have; they
  load a local weights file only and never download.

No pretrained general-purpose (COCO) detector ships with this project.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from trackers.spec import resolve_callable

__all__ = [
    "BackgroundSubtractionDetector",
    "DetectionTable",
    "Detections",
    "Detector",
    "HogPeopleDetector",
    "TorchvisionDetector",
    "UltralyticsDetector",
    "as_detections",
    "build_detector",
    "load_callable_detector",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detections:
    """The detections of one frame.

    Attributes:
        boxes: shape (N, 4), float64, xyxy pixels.
        scores: shape (N,), float64, in [0, 1].
        classes: shape (N,), int64 (-1 when the detector gives no classes).
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        """No detections: shapes (0, 4), (0,), (0,)."""
        return cls(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0,), dtype=np.int64))


@runtime_checkable
class Detector(Protocol):
    """``detector(frame) -> Detections`` (or ``(boxes, scores[, classes])``) for a BGR uint8 frame (H, W, 3)."""

    def __call__(self, frame: np.ndarray, /) -> Any: ...


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def as_detections(output: Any, source: str = "detector") -> Detections:
    """Check a detector's output and convert it to :class:`Detections`.

    Args:
        output: a :class:`Detections`, or a tuple ``(boxes, scores)`` / ``(boxes, scores, classes)`` of arrays (or
            tensors) of shapes (N, 4) xyxy, (N,), (N,).
        source: name used in error messages.

    Returns:
        The checked detections (float64 boxes and scores, int64 classes).

    Raises:
        TypeError: the output is not one of the accepted forms.
        ValueError: wrong shapes, non-finite values, x2 < x1 or y2 < y1, or scores outside [0, 1].

    Example:
        >>> as_detections((np.array([[0, 0, 10, 20]]), np.array([0.9]))).boxes.shape
        (1, 4)
    """
    boxes: Any
    scores: Any
    classes: Any
    if isinstance(output, Detections):
        boxes, scores, classes = output.boxes, output.scores, output.classes
    elif isinstance(output, (tuple, list)) and len(output) in (2, 3):
        boxes, scores = output[0], output[1]
        classes = output[2] if len(output) == 3 else None
    else:
        raise TypeError(
            f"{source}: expected Detections or a tuple (boxes, scores[, classes]), got {type(output).__name__}"
        )
    b = _to_numpy(boxes).astype(np.float64, copy=False)
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{source}: expected boxes of shape (N, 4) xyxy, got {b.shape}")
    n = b.shape[0]
    s = _to_numpy(scores).astype(np.float64, copy=False).reshape(-1)
    if s.shape != (n,):
        raise ValueError(f"{source}: expected scores of shape ({n},), got {s.shape}")
    if classes is None:
        c = np.full(n, -1, dtype=np.int64)
    else:
        c = _to_numpy(classes).reshape(-1)
        if c.shape != (n,):
            raise ValueError(f"{source}: expected classes of shape ({n},), got {c.shape}")
        c = c.astype(np.int64)
    if not (np.isfinite(b).all() and np.isfinite(s).all()):
        raise ValueError(f"{source}: expected finite boxes and scores, got NaN or inf")
    if ((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])).any():
        raise ValueError(f"{source}: expected xyxy boxes with x2 >= x1 and y2 >= y1")
    if n and (s.min() < 0.0 or s.max() > 1.0):
        raise ValueError(f"{source}: expected scores in [0, 1], got range [{s.min():.3g}, {s.max():.3g}]")
    return Detections(b, s, c)


def _check_frame(frame: object) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"frame: expected a BGR uint8 image of shape (H, W, 3), got {got}")
    return frame


def _shrink(frame: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Resize so the longer side is at most ``max_side`` (0: never); returns the image and the scale factor."""
    h, w = frame.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return frame, 1.0
    f = max_side / max(h, w)
    return cv2.resize(frame, (max(round(w * f), 1), max(round(h * f), 1)), interpolation=cv2.INTER_AREA), f


# ---------------------------------------------------------------------------------------------------- built-in
class HogPeopleDetector:
    """OpenCV's HOG people detector (Dalal-Triggs linear SVM, weights compiled into OpenCV 4).

    The frame is shrunk so that its longer side is at most ``max_side`` (speed), detected with
    ``detectMultiScale``, overlapping windows merged by non-maximum suppression, and each SVM margin ``m`` is
    mapped to a score ``1 / (1 + exp(-margin_scale * m))`` in [0, 1] (margin 0, the SVM's boundary, gives 0.5).

    Args:
        max_side: longest image side, in pixels, at which detection runs (0: full size).
        win_stride: sliding-window step in pixels.
        scale: pyramid scale step.
        margin_scale: slope of the logistic squashing of the margins.
        nms_iou: overlap above which the weaker of two windows is dropped.

    Example:
        >>> HogPeopleDetector()(np.zeros((128, 96, 3), np.uint8)).boxes.shape
        (0, 4)
    """

    def __init__(
        self,
        max_side: int = 640,
        win_stride: int = 8,
        scale: float = 1.05,
        margin_scale: float = 2.0,
        nms_iou: float = 0.5,
    ) -> None:
        if max_side < 0:
            raise ValueError(f"max_side: expected an int >= 0, got {max_side!r}")
        self.max_side = int(max_side)
        self.win_stride = int(win_stride)
        self.scale = float(scale)
        self.margin_scale = float(margin_scale)
        self.nms_iou = float(nms_iou)
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32))

    def __call__(self, frame: np.ndarray) -> Detections:
        """Detect people in a BGR uint8 frame (H, W, 3)."""
        frame = _check_frame(frame)
        frame, f = _shrink(frame, self.max_side)
        if min(frame.shape[:2]) < 128:  # smaller than one 64x128 detection window
            return Detections.empty()
        found, weights = self._hog.detectMultiScale(
            frame, winStride=(self.win_stride, self.win_stride), padding=(8, 8), scale=self.scale
        )
        if len(found) == 0:
            return Detections.empty()
        rects = np.asarray(found, dtype=np.float64).reshape(-1, 4)
        margins = np.asarray(weights, dtype=np.float64).reshape(-1)
        scores = 1.0 / (1.0 + np.exp(-self.margin_scale * margins))
        kept = cv2.dnn.NMSBoxes(rects.tolist(), scores.tolist(), 0.0, self.nms_iou)
        keep = np.asarray(kept, dtype=np.int64).reshape(-1)
        rects, scores = rects[keep], scores[keep]
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) / f
        return Detections(boxes, scores, np.zeros(len(scores), dtype=np.int64))


class BackgroundSubtractionDetector:
    """Moving blobs from OpenCV's MOG2 background subtractor (static cameras only).

    Foreground pixels (shadows excluded) are cleaned with a morphological opening and closing; each connected
    component of at least ``min_area`` pixels becomes a box, scored ``0.5 + fill / 2`` where ``fill`` is the
    fraction of its box that is foreground (a solid blob scores near 1, a sparse one near 0.5). The first
    ``warmup_frames`` frames only train the background model and return no detections; the very first frame never
    does, whatever ``warmup_frames``: it is what initialises the model, and MOG2 calls all of it foreground.

    Args:
        min_area: smallest blob, in pixels of the full frame.
        history: MOG2 history length in frames.
        var_threshold: MOG2 variance threshold.
        warmup_frames: frames before detections are returned (at least 1 is used: see above).
        max_side: longest side at which subtraction runs (0: full size).

    Example:
        >>> det = BackgroundSubtractionDetector(warmup_frames=0, min_area=50)
        >>> frame = np.zeros((64, 64, 3), np.uint8)
        >>> det(frame).boxes.shape, det(frame).boxes.shape  # the first frame only initialises the model
        ((0, 4), (0, 4))
        >>> frame[20:40, 10:30] = 255  # a bright square appears
        >>> det(frame).boxes.round().tolist()
        [[10.0, 20.0, 30.0, 40.0]]
    """

    def __init__(
        self,
        min_area: int = 400,
        history: int = 200,
        var_threshold: float = 16.0,
        warmup_frames: int = 5,
        max_side: int = 640,
    ) -> None:
        self.min_area = int(min_area)
        self.history = int(history)
        self.var_threshold = float(var_threshold)
        self.warmup_frames = int(warmup_frames)
        self.max_side = int(max_side)
        self.reset()

    def reset(self) -> None:
        """Forget the background model."""
        self._mog = cv2.createBackgroundSubtractorMOG2(
            history=self.history, varThreshold=self.var_threshold, detectShadows=True
        )
        self._seen = 0
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    def __call__(self, frame: np.ndarray) -> Detections:
        """Detect moving blobs in a BGR uint8 frame (H, W, 3)."""
        frame = _check_frame(frame)
        frame, f = _shrink(frame, self.max_side)
        mask = self._mog.apply(frame)
        self._seen += 1
        if self._seen <= max(1, self.warmup_frames):  # the first frame initialises the model: all "foreground"
            return Detections.empty()
        fg: Any = np.where(mask == 255, 255, 0).astype(np.uint8)  # 127 = shadow
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._kernel)
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, self._kernel)
        n, _, cc_stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        stats = np.asarray(cc_stats)[1:n].astype(np.float64)  # row 0 is the background
        area_full = stats[:, cv2.CC_STAT_AREA] / (f * f)
        stats = stats[area_full >= self.min_area]
        if stats.shape[0] == 0:
            return Detections.empty()
        x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
        bw, bh = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
        fill = stats[:, cv2.CC_STAT_AREA] / np.maximum(bw * bh, 1.0)
        boxes = np.stack([x, y, x + bw, y + bh], axis=1) / f
        return Detections(boxes, np.clip(0.5 + fill / 2, 0.0, 1.0), np.zeros(len(fill), dtype=np.int64))


class DetectionTable:
    """Precomputed detections, returned frame by frame (the n-th call gets frame n, 1-based).

    Args:
        frames: frame number of each row, shape (R,), 1-based.
        boxes: shape (R, 4), xyxy pixels.
        scores: shape (R,), in [0, 1].
        classes: shape (R,) or None.

    Raises:
        ValueError: mismatched shapes or scores outside [0, 1].

    Example:
        >>> table = DetectionTable(np.array([1, 2]), np.array([[0, 0, 9, 9], [1, 1, 9, 9]]), np.array([0.9, 0.8]))
        >>> len(table(np.zeros((8, 8, 3), np.uint8))), table.frame
        (1, 1)
    """

    def __init__(
        self, frames: np.ndarray, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray | None = None
    ) -> None:
        fr = np.asarray(frames).reshape(-1).astype(np.int64)
        det = as_detections((boxes, scores, classes), "DetectionTable")
        if fr.shape[0] != len(det):
            raise ValueError(f"frames: expected {len(det)} frame numbers to match boxes, got {fr.shape[0]}")
        order = np.argsort(fr, kind="stable")
        self._frames = fr[order]
        self._det = Detections(det.boxes[order], det.scores[order], det.classes[order])
        self.frame = 0

    @classmethod
    def from_mot_file(cls, path: str | os.PathLike[str]) -> DetectionTable:
        """Read a MOTChallenge ``det.txt`` (``frame,-1,x,y,w,h,score,...``).

        Scores outside [0, 1] (some public detectors write raw logits or confidences above 1) are min-max scaled
        into [0, 1] over the file, with a warning in the log.

        Raises:
            FileNotFoundError: no such file.
            ValueError: malformed file (file and line named).
        """
        from trackers import read_mot_detections

        recs = read_mot_detections(path)
        scores = np.asarray(recs.scores, dtype=np.float64)
        if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
            lo, hi = float(scores.min()), float(scores.max())
            logger.warning("%s: scores in [%.3g, %.3g] rescaled into [0, 1]", path, lo, hi)
            scores = (scores - lo) / (hi - lo) if hi > lo else np.ones_like(scores)
        return cls(recs.frames, recs.xyxy, scores)

    def reset(self) -> None:
        """Start again at frame 1."""
        self.frame = 0

    def __call__(self, frame: np.ndarray) -> Detections:
        """The detections of the next frame (the image itself is not looked at)."""
        self.frame += 1
        lo, hi = np.searchsorted(self._frames, [self.frame, self.frame + 1])
        d = self._det
        return Detections(d.boxes[lo:hi], d.scores[lo:hi], d.classes[lo:hi])


def load_callable_detector(spec: str) -> Callable[[np.ndarray], Any]:
    """Import ``module:function`` (dots allowed in the attribute) and return it as a detector.

    Raises:
        ValueError: ``spec`` is not ``module:function``, the module or attribute is missing, or it is not callable.

    Example:
        >>> load_callable_detector("numpy:zeros") is np.zeros
        True
    """
    return resolve_callable(spec, "detector", "frame -> (boxes, scores[, classes])")


# ---------------------------------------------------------------------------------------------------- adapters
def _local_file(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"{p}: {what} weights file not found (only local files are loaded, nothing is downloaded)"
        )
    return p


class UltralyticsDetector:
    """An Ultralytics YOLO model (``pip install ultralytics``) loaded from a local ``.pt`` file.

    Args:
        weights: path of a local weights file; a bare model name such as ``yolov8n.pt`` that is not a file is
            refused (Ultralytics would try to download it).
        conf: minimum confidence kept (ByteTrack wants low-score boxes too, hence the low default).
        classes: class ids to keep (None: all).
        device: device string passed to the model (``"cpu"``, ``"cuda:0"``...).

    Raises:
        FileNotFoundError: ``weights`` is not a file.
        ImportError: Ultralytics is not installed (message has the install command).
    """

    def __init__(
        self,
        weights: str | os.PathLike[str],
        conf: float = 0.1,
        classes: list[int] | None = None,
        device: str = "cpu",
    ) -> None:
        path = _local_file(weights, "ultralytics")
        try:
            from ultralytics import YOLO
        except ImportError as err:
            raise ImportError("--detector ultralytics needs Ultralytics: pip install ultralytics") from err
        self.model = YOLO(str(path))
        self.conf = float(conf)
        self.classes = classes
        self.device = device

    def __call__(self, frame: np.ndarray) -> Detections:
        """Detect in a BGR uint8 frame (H, W, 3) (Ultralytics takes BGR numpy images as OpenCV gives them)."""
        frame = _check_frame(frame)
        result = self.model(frame, conf=self.conf, classes=self.classes, device=self.device, verbose=False)[0]
        b = result.boxes
        return as_detections((b.xyxy, b.conf, b.cls), "ultralytics")


class TorchvisionDetector:
    """A torchvision detection model (``torchvision.models.detection``) with a local state-dict file.

    The model is built with ``get_model(name, weights=None, weights_backbone=None, **kwargs)`` (so nothing is
    downloaded), the state dict is loaded with ``torch.load(..., weights_only=True)``, and frames are given to it
    as RGB float tensors in [0, 1], as torchvision's detection models expect.

    Args:
        name: model name, e.g. ``"fasterrcnn_resnet50_fpn_v2"``, ``"retinanet_resnet50_fpn"``, ``"fcos_resnet50_fpn"``.
        weights: path of a local state-dict file (``.pth``/``.pt``).
        device: torch device.
        score_thresh: minimum score kept.
        **kwargs: passed to ``get_model`` (for example ``num_classes=``).

    Raises:
        FileNotFoundError: ``weights`` is not a file.
        ImportError: torchvision is not importable (message has the install command).
        ValueError: unknown model name.
    """

    def __init__(
        self,
        name: str,
        weights: str | os.PathLike[str],
        device: str = "cpu",
        score_thresh: float = 0.1,
        **kwargs: Any,
    ) -> None:
        path = _local_file(weights, "torchvision")
        import torch

        try:
            from torchvision.models import detection
        except Exception as err:  # PyPI's CUDA torchvision fails with RuntimeError/OSError beside a CPU torch
            raise ImportError(
                f"--detector torchvision needs a torchvision matching torch {torch.__version__}: "
                f"pip install torchvision (import failed: {type(err).__name__}: {err})"
            ) from err
        try:
            model = detection.get_model(name, weights=None, weights_backbone=None, **kwargs)
        except (ValueError, KeyError) as err:
            raise ValueError(f"--detector torchvision:{name}: unknown model ({err})") from None
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.score_thresh = float(score_thresh)

    def __call__(self, frame: np.ndarray) -> Detections:
        """Detect in a BGR uint8 frame (H, W, 3)."""
        import torch

        frame = _check_frame(frame)
        rgb = torch.from_numpy(np.ascontiguousarray(frame[..., ::-1])).to(self.device)
        image = rgb.permute(2, 0, 1).float().div_(255.0)
        with torch.inference_mode():
            out = self.model([image])[0]
        keep = out["scores"] >= self.score_thresh
        return as_detections((out["boxes"][keep], out["scores"][keep], out["labels"][keep]), "torchvision")


# ---------------------------------------------------------------------------------------------------- factory
DETECTOR_HELP = (
    "hog (OpenCV people detector), mog2 (background subtraction, static cameras), det:PATH (MOT det.txt), "
    "module:function (your callable), ultralytics:PATH.pt, torchvision:NAME (with --weights PATH)"
)


def build_detector(spec: str, *, weights: str | None = None, device: str = "cpu") -> Callable[[np.ndarray], Any]:
    """Build a detector from its ``--detector`` spelling.

    Args:
        spec: ``"hog"``, ``"mog2"``, ``"det:PATH"``, ``"ultralytics:PATH.pt"``, ``"torchvision:NAME"`` (needs
            ``weights``) or ``"module:function"``.
        weights: local weights file for ``torchvision:NAME``.
        device: device for the Ultralytics / torchvision adapters.

    Returns:
        A detector callable.

    Raises:
        ValueError: unknown spelling, or ``torchvision:`` without ``weights``.
        FileNotFoundError: a named file does not exist.
        ImportError: an adapter's package is missing.

    Example:
        >>> type(build_detector("mog2")).__name__
        'BackgroundSubtractionDetector'
    """
    if spec == "hog":
        return HogPeopleDetector()
    if spec == "mog2":
        return BackgroundSubtractionDetector()
    kind, sep, rest = spec.partition(":")
    if sep and rest:
        if kind == "det":
            return DetectionTable.from_mot_file(rest)
        if kind == "ultralytics":
            return UltralyticsDetector(rest, device=device)
        if kind == "torchvision":
            if weights is None:
                raise ValueError(f"--detector {spec}: needs --weights PATH (a local state-dict file)")
            return TorchvisionDetector(rest, weights, device=device)
        return load_callable_detector(spec)
    raise ValueError(f"--detector: expected one of {DETECTOR_HELP}; got {spec!r}")
