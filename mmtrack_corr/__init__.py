"""mmtrack_corr: exact, fast, pure-PyTorch spatial correlation and MM-Tracker-style motion estimation.

Public names are loaded on first use (PEP 562), so ``import mmtrack_corr.synthetic`` (numpy + OpenCV only) does not
pay for importing torch; ``from mmtrack_corr import spatial_correlation_sample`` works as before.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("mmtrack-corr")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

# public name -> submodule that defines it
_EXPORTS = {
    "yolox_layers": "hooks",
    "ultralytics_layers": "hooks",
    "torchvision_fpn_layers": "hooks",
    "default_motion_source": "estimator",
    "SpatialCorrelationSampler": "correlation",
    "correlation_backend": "correlation",
    "correlation_output_size": "correlation",
    "spatial_correlation_sample": "correlation",
    "KernelSearchCorrelation": "kernel_search",
    "kernel_search_correlation": "kernel_search",
    "FeatureEncoder": "encoder",
    "LightMotionHead": "motion_head",
    "MotionOutput": "motion_head",
    "MultiScaleMotionHead": "motion_head",
    "MotionModel": "motion_model",
    "MotionModelConfig": "motion_model",
    "load_motion_model": "motion_model",
    "save_motion_model": "motion_model",
    "MotionEstimator": "estimator",
    "DetectorMotion": "hooks",
    "FeatureHooks": "hooks",
    "FrozenDetectorFeatures": "hooks",
    "FramePair": "synthetic",
    "SyntheticSequence": "synthetic",
    "background_boxes": "synthetic",
    "make_pair": "synthetic",
    "make_sequence": "synthetic",
    "keep_freed_memory": "runtime",
}

__all__ = [
    "DetectorMotion",
    "FeatureEncoder",
    "FeatureHooks",
    "FramePair",
    "FrozenDetectorFeatures",
    "KernelSearchCorrelation",
    "LightMotionHead",
    "MotionEstimator",
    "MotionModel",
    "MotionModelConfig",
    "MotionOutput",
    "MultiScaleMotionHead",
    "SpatialCorrelationSampler",
    "SyntheticSequence",
    "__version__",
    "background_boxes",
    "correlation_backend",
    "correlation_output_size",
    "default_motion_source",
    "keep_freed_memory",
    "kernel_search_correlation",
    "load_motion_model",
    "make_pair",
    "make_sequence",
    "save_motion_model",
    "spatial_correlation_sample",
    "torchvision_fpn_layers",
    "ultralytics_layers",
    "yolox_layers",
]

if TYPE_CHECKING:
    from mmtrack_corr.correlation import (
        SpatialCorrelationSampler,
        correlation_backend,
        correlation_output_size,
        spatial_correlation_sample,
    )
    from mmtrack_corr.encoder import FeatureEncoder
    from mmtrack_corr.estimator import MotionEstimator, default_motion_source
    from mmtrack_corr.hooks import (
        DetectorMotion,
        FeatureHooks,
        FrozenDetectorFeatures,
        torchvision_fpn_layers,
        ultralytics_layers,
        yolox_layers,
    )
    from mmtrack_corr.kernel_search import KernelSearchCorrelation, kernel_search_correlation
    from mmtrack_corr.motion_head import LightMotionHead, MotionOutput, MultiScaleMotionHead
    from mmtrack_corr.motion_model import MotionModel, MotionModelConfig, load_motion_model, save_motion_model
    from mmtrack_corr.synthetic import FramePair, SyntheticSequence, background_boxes, make_pair, make_sequence


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mmtrack_corr' has no attribute {name!r}")
    value = getattr(import_module(f"mmtrack_corr.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
