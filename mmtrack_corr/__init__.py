"""mmtrack_corr: exact, fast, pure-PyTorch spatial correlation and MM-Tracker-style motion estimation."""

from importlib.metadata import PackageNotFoundError, version

from mmtrack_corr.correlation import SpatialCorrelationSampler, correlation_output_size, spatial_correlation_sample
from mmtrack_corr.kernel_search import KernelSearchCorrelation, kernel_search_correlation

try:
    __version__ = version("mmtrack-corr")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    "KernelSearchCorrelation",
    "SpatialCorrelationSampler",
    "__version__",
    "correlation_output_size",
    "kernel_search_correlation",
    "spatial_correlation_sample",
]
