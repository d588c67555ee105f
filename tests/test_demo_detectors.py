"""Tests for mmtrack_demo.detectors: the output protocol, the built-in detectors and the adapters.

The Ultralytics and torchvision adapters are tested with stand-in modules of the same interface (PyPI's torchvision
does not import beside the CPU torch used here, and Ultralytics needs it); the tests against the real packages skip
with the reason when they do not import.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from mmtrack_demo.detectors import (
    BackgroundSubtractionDetector,
    Detections,
    DetectionTable,
    HogPeopleDetector,
    TorchvisionDetector,
    UltralyticsDetector,
    as_detections,
    build_detector,
    load_callable_detector,
)


# ---------------------------------------------------------------------------------------------------- protocol
def test_as_detections_forms() -> None:
    boxes = np.array([[0, 0, 10, 20], [5, 5, 6, 6]])
    d = as_detections((boxes, np.array([0.9, 0.2])))
    assert d.boxes.dtype == np.float64 and d.classes.tolist() == [-1, -1]
    d = as_detections((torch.tensor(boxes), torch.tensor([0.9, 0.2]), torch.tensor([3.0, 1.0])))
    assert d.classes.dtype == np.int64 and d.classes.tolist() == [3, 1]
    assert as_detections(d) is not None and len(as_detections(Detections.empty())) == 0
    assert as_detections(([], [])).boxes.shape == (0, 4)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        pytest.param(np.zeros((2, 4)), "expected Detections or a tuple", id="bare_array"),
        pytest.param((np.zeros((2, 5)), np.ones(2)), r"boxes of shape \(N, 4\) xyxy, got \(2, 5\)", id="box_shape"),
        pytest.param((np.zeros((2, 4)), np.ones(3)), r"scores of shape \(2,\), got \(3,\)", id="score_shape"),
        pytest.param((np.zeros((1, 4)), np.array([1.5])), r"scores in \[0, 1\], got range", id="score_range"),
        pytest.param((np.array([[5.0, 0, 1, 1]]), np.ones(1)), "x2 >= x1", id="inverted_box"),
        pytest.param((np.array([[np.nan, 0, 1, 1]]), np.ones(1)), "finite", id="nan_box"),
    ],
)
def test_as_detections_errors(output: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        as_detections(output, "mydet")


def test_detection_table_frames_and_file(tmp_path: Path) -> None:
    det = tmp_path / "det.txt"
    det.write_text("2,-1,10,20,30,40,5.0,-1,-1,-1\n1,-1,0,0,10,10,1.0,-1,-1,-1\n2,-1,1,1,2,2,3.0,-1,-1,-1\n")
    table = DetectionTable.from_mot_file(det)
    frame = np.zeros((8, 8, 3), np.uint8)
    first, second, third = table(frame), table(frame), table(frame)
    assert first.boxes.tolist() == [[0, 0, 10, 10]]
    assert second.boxes.tolist() == [[10, 20, 40, 60], [1, 1, 3, 3]]
    assert len(third) == 0
    # scores outside [0, 1] are min-max scaled over the file
    assert first.scores.tolist() == [0.0] and second.scores.tolist() == [1.0, 0.5]
    table.reset()
    assert table(frame).boxes.tolist() == [[0, 0, 10, 10]]
    with pytest.raises(ValueError, match="frames: expected 1 frame numbers"):
        DetectionTable(np.array([1, 2]), np.zeros((1, 4)), np.ones(1))


def test_callable_detector_spec() -> None:
    assert load_callable_detector("numpy:zeros") is np.zeros
    for spec, message in [
        ("numpy", "expected MODULE:ATTR"),
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("numpy:no_such_attr", "has no attribute 'no_such_attr'"),
        ("numpy:pi", "is not callable"),
    ]:
        with pytest.raises(ValueError, match=message):
            load_callable_detector(spec)


def test_build_detector_spellings(tmp_path: Path) -> None:
    det = tmp_path / "det.txt"
    det.write_text("1,-1,0,0,10,10,0.5,-1,-1,-1\n")
    assert isinstance(build_detector("hog"), HogPeopleDetector)
    assert isinstance(build_detector("mog2"), BackgroundSubtractionDetector)
    assert isinstance(build_detector(f"det:{det}"), DetectionTable)
    assert build_detector("numpy:ones") is np.ones
    with pytest.raises(ValueError, match="--detector: expected one of hog"):
        build_detector("yolo")
    with pytest.raises(ValueError, match="needs --weights PATH"):
        build_detector("torchvision:fasterrcnn_resnet50_fpn")
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        build_detector("ultralytics:yolov8n.pt")  # a bare name is never downloaded
    with pytest.raises(FileNotFoundError):
        build_detector(f"det:{tmp_path / 'missing.txt'}")


# ---------------------------------------------------------------------------------------------------- built-in
def test_hog_matches_opencv_and_squashes_margins() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    image = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)  # 512 x 512, a person
    det = HogPeopleDetector(max_side=0, margin_scale=2.0)
    out = det(image)
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32))
    rects, margins = hog.detectMultiScale(image, winStride=(8, 8), padding=(8, 8), scale=1.05)
    assert len(out) <= len(rects)
    assert np.all((out.scores > 0) & (out.scores < 1))
    for box, score in zip(out.boxes, out.scores, strict=True):
        # every kept box is one of OpenCV's windows, scored by the logistic of its margin
        k = int(np.argmin(np.abs(np.asarray(rects)[:, :2] - box[:2]).sum(axis=1)))
        x, y, w, h = rects[k]
        assert box.tolist() == [x, y, x + w, y + h]
        assert score == pytest.approx(1 / (1 + np.exp(-2.0 * float(np.ravel(margins)[k]))))
    assert len(det(np.zeros((100, 60, 3), np.uint8))) == 0  # smaller than a detection window


def test_hog_downscaling_maps_boxes_back() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    image = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    big = cv2.resize(image, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    small = HogPeopleDetector(max_side=0)(image)
    scaled = HogPeopleDetector(max_side=512)(big)
    assert len(small) == len(scaled)
    np.testing.assert_allclose(scaled.boxes, small.boxes * 2, atol=8)


def test_mog2_finds_a_moving_block() -> None:
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur((rng.random((120, 160, 3)) * 255).astype(np.uint8), (0, 0), 2)
    det = BackgroundSubtractionDetector(min_area=100, warmup_frames=10, max_side=0)
    for _ in range(10):
        assert len(det(background)) == 0
    frame = background.copy()
    frame[40:80, 60:90] = (0, 0, 255)
    out = det(frame)
    assert len(out) == 1
    np.testing.assert_allclose(out.boxes[0], [60, 40, 90, 80], atol=2)
    assert 0.9 <= out.scores[0] <= 1.0
    det.reset()
    assert len(det(frame)) == 0  # warming up again


# ---------------------------------------------------------------------------------------------------- adapters
class _FakeBoxes:
    def __init__(self, xyxy: torch.Tensor, conf: torch.Tensor, cls: torch.Tensor) -> None:
        self.xyxy, self.conf, self.cls = xyxy, conf, cls


class _FakeYOLO:
    """The part of ``ultralytics.YOLO`` the adapter uses: ``YOLO(path)(frame, ...)[0].boxes``."""

    calls: list[dict[str, Any]] = []

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, frame: np.ndarray, **kwargs: Any) -> list[Any]:
        _FakeYOLO.calls.append({"shape": frame.shape, "first_pixel": frame[0, 0].tolist(), **kwargs})
        boxes = _FakeBoxes(torch.tensor([[1.0, 2.0, 30.0, 40.0]]), torch.tensor([0.75]), torch.tensor([2.0]))
        return [types.SimpleNamespace(boxes=boxes)]


def test_ultralytics_adapter_with_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    monkeypatch.setitem(sys.modules, "ultralytics", types.SimpleNamespace(YOLO=_FakeYOLO))
    _FakeYOLO.calls.clear()
    det = build_detector(f"ultralytics:{weights}", device="cpu")
    assert isinstance(det, UltralyticsDetector) and det.model.path == str(weights)
    frame = np.zeros((32, 48, 3), np.uint8)
    frame[0, 0] = (255, 0, 0)  # blue in BGR: given as is (Ultralytics reads BGR numpy images)
    out = det(frame)
    assert out.boxes.tolist() == [[1, 2, 30, 40]] and out.scores.tolist() == [0.75] and out.classes.tolist() == [2]
    call = _FakeYOLO.calls[0]
    assert call["first_pixel"] == [255, 0, 0] and call["verbose"] is False and call["device"] == "cpu"


def test_ultralytics_missing_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # import fails
    with pytest.raises(ImportError, match="pip install ultralytics"):
        UltralyticsDetector(weights)


class _TinyDetector(torch.nn.Module):
    """torchvision-detection-shaped: list of (3, H, W) RGB float images -> list of dicts (boxes, scores, labels)."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = torch.nn.Parameter(torch.zeros(()))

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for img in images:
            red = img[0].mean()  # RGB order: channel 0 is red
            box = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 5.0, 5.0]]) + self.offset
            out.append({"boxes": box, "scores": torch.stack([red, red * 0.01]), "labels": torch.tensor([1, 1])})
        return out


def _fake_torchvision(monkeypatch: pytest.MonkeyPatch, seen: dict[str, Any]) -> None:
    def get_model(name: str, **kwargs: Any) -> torch.nn.Module:
        seen["name"], seen["kwargs"] = name, kwargs
        if name != "tiny":
            raise ValueError(f"Unknown model {name}")
        return _TinyDetector()

    detection = types.ModuleType("torchvision.models.detection")
    detection.get_model = get_model  # type: ignore[attr-defined]
    models = types.ModuleType("torchvision.models")
    models.detection = detection  # type: ignore[attr-defined]
    tv = types.ModuleType("torchvision")
    tv.models = models  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    monkeypatch.setitem(sys.modules, "torchvision.models.detection", detection)


def test_torchvision_adapter_with_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    _fake_torchvision(monkeypatch, seen)
    weights = tmp_path / "tiny.pth"
    torch.save({"offset": torch.tensor(2.0)}, weights)
    det = build_detector("torchvision:tiny", weights=str(weights))
    assert isinstance(det, TorchvisionDetector)
    assert seen["kwargs"] == {"weights": None, "weights_backbone": None}  # nothing downloaded
    frame = np.zeros((16, 16, 3), np.uint8)
    frame[..., 2] = 255  # red in BGR -> channel 0 of the RGB tensor, scaled to 1.0
    out = det(frame)
    assert out.boxes.tolist() == [[2, 2, 12, 12]]  # the loaded offset, and the 0.01 box under score_thresh
    assert out.scores.tolist() == [1.0] and out.classes.tolist() == [1]
    with pytest.raises(ValueError, match="torchvision:nope: unknown model"):
        TorchvisionDetector("nope", weights)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        TorchvisionDetector("tiny", tmp_path / "missing.pth")


def test_real_ultralytics_if_installed(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics", reason="Ultralytics is not installed (it needs torchvision)")
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        UltralyticsDetector(tmp_path / "yolov8n.pt")


def test_real_torchvision_if_importable(tmp_path: Path) -> None:
    try:
        from torchvision.models import detection
    except Exception as err:  # noqa: BLE001 - PyPI's CUDA torchvision raises RuntimeError/OSError here
        pytest.skip(f"torchvision does not import beside torch {torch.__version__} ({type(err).__name__})")
    model = detection.get_model("fasterrcnn_mobilenet_v3_large_320_fpn", weights=None, weights_backbone=None)
    weights = tmp_path / "frcnn.pth"
    torch.save(model.state_dict(), weights)
    det = TorchvisionDetector("fasterrcnn_mobilenet_v3_large_320_fpn", weights)
    out = det(np.zeros((240, 320, 3), np.uint8))
    assert out.boxes.shape[1] == 4
