"""mmtrack_demo: the end-to-end demo (detectors, pipeline, drawing, video I/O, the ``mmtrack-demo`` CLI).

Installed from the folder ``demo/`` under the import name ``mmtrack_demo`` (no package called plain ``demo`` is
installed). It wires ``mmtrack_corr`` (learned motion) and ``trackers`` (association) through their public APIs.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from .detectors import (
    BackgroundSubtractionDetector,
    Detections,
    DetectionTable,
    Detector,
    HogPeopleDetector,
    TorchvisionDetector,
    UltralyticsDetector,
    as_detections,
    build_detector,
    load_callable_detector,
)
from .drawing import TrackPainter, flow_to_color, id_color
from .motion import MOTIONS, MotionSetup, build_motion, build_tracker, default_motion
from .pipeline import STAGES, FrameResult, Pipeline, StageTimer
from .video import ArraySource, FolderSource, FrameSource, SourceError, VideoFileSource, VideoSink, open_source

try:
    __version__ = _version("mmtrack-corr")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "MOTIONS",
    "STAGES",
    "ArraySource",
    "BackgroundSubtractionDetector",
    "DetectionTable",
    "Detections",
    "Detector",
    "FolderSource",
    "FrameResult",
    "FrameSource",
    "HogPeopleDetector",
    "MotionSetup",
    "Pipeline",
    "SourceError",
    "StageTimer",
    "TorchvisionDetector",
    "TrackPainter",
    "UltralyticsDetector",
    "VideoFileSource",
    "VideoSink",
    "__version__",
    "as_detections",
    "build_detector",
    "build_motion",
    "build_tracker",
    "default_motion",
    "flow_to_color",
    "id_color",
    "load_callable_detector",
    "open_source",
]
