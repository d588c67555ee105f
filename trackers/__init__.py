"""trackers: ByteTrack-style multi-object tracking with pluggable motion (numpy + scipy + lap + OpenCV, no torch).

Not to be confused with the unrelated PyPI package also imported as ``trackers``: the two cannot be installed in one
environment.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from trackers.bytetrack import ByteTracker, Tracks
from trackers.evaluation import EvaluationResult, evaluate_mot_challenge, evaluate_uavdt, evaluate_visdrone
from trackers.gmc import CameraMotionCompensation
from trackers.kalman import KalmanFilterXYAH
from trackers.matching import fuse_score, iou_matrix, linear_assignment
from trackers.mot_io import (
    MotRecords,
    ResultWriter,
    SequenceEntry,
    SequenceInfo,
    discover_sequences,
    read_mot_detections,
    read_mot_gt,
    read_mot_results,
    read_seqinfo,
    read_uavdt_gt,
    read_uavdt_ignore,
    read_visdrone,
    write_results,
    write_seqinfo,
)
from trackers.motion import DenseMotionSource, MotionSource, MotionTracker, displacements_from_flow

try:
    __version__ = _version("mmtrack-corr")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "ByteTracker",
    "CameraMotionCompensation",
    "DenseMotionSource",
    "EvaluationResult",
    "KalmanFilterXYAH",
    "MotRecords",
    "MotionSource",
    "MotionTracker",
    "ResultWriter",
    "SequenceEntry",
    "SequenceInfo",
    "Tracks",
    "__version__",
    "discover_sequences",
    "displacements_from_flow",
    "evaluate_mot_challenge",
    "evaluate_uavdt",
    "evaluate_visdrone",
    "fuse_score",
    "iou_matrix",
    "linear_assignment",
    "read_mot_detections",
    "read_mot_gt",
    "read_mot_results",
    "read_seqinfo",
    "read_uavdt_gt",
    "read_uavdt_ignore",
    "read_visdrone",
    "write_results",
    "write_seqinfo",
]
