"""Compatibility package: ``from spatial_correlation_sampler import ...`` runs mmtrack_corr's pure-PyTorch op.

Code written for the C++/CUDA extension ``spatial_correlation_sampler`` (FlowNetC, PWC-Net, MM-Tracker) runs
unchanged: same names, same arguments in the same order, same 5-D output. Do not install the original extension
in the same environment: both use this import name.
"""

from mmtrack_corr.correlation import SpatialCorrelationSampler, spatial_correlation_sample

__all__ = ["SpatialCorrelationSampler", "spatial_correlation_sample"]
