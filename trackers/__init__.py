"""trackers: ByteTrack-style multi-object tracking with pluggable motion (numpy + scipy + lap + OpenCV, no torch).

Not to be confused with the unrelated PyPI package also imported as ``trackers``: the two cannot be installed in one
environment.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from trackers.bytetrack import ByteTracker, Tracks
from trackers.gmc import CameraMotionCompensation
from trackers.kalman import KalmanFilterXYAH
from trackers.matching import fuse_score, iou_matrix, linear_assignment
from trackers.motion import DenseMotionSource, MotionSource, MotionTracker, displacements_from_flow

try:
    __version__ = _version("mmtrack-corr")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "ByteTracker",
    "CameraMotionCompensation",
    "DenseMotionSource",
    "KalmanFilterXYAH",
    "MotionSource",
    "MotionTracker",
    "Tracks",
    "__version__",
    "displacements_from_flow",
    "fuse_score",
    "iou_matrix",
    "linear_assignment",
]
