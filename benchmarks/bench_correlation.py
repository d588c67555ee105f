"""Speed and memory of ``mmtrack_corr.spatial_correlation_sample`` against the original C++ op and a naive unfold.

Prints, for MM-Tracker's three scales and FlowNetC, the median forward and forward+backward times of

* ours (``mmtrack_corr.spatial_correlation_sample``),
* the original ``spatial_correlation_sampler`` 0.5.0, run in its own environment in the same benchmark run through
  ``tests/reference_op.py`` (it cannot be imported here: the checkout's compatibility package has the same name),
* a naive exact version written below (``unfold_correlation``: pad + ``F.unfold`` per displacement),

their ratios (original / ours, unfold / ours), the peak extra memory of ours and of the unfold version as a
multiple of the output size, and the fraction of this machine's measured matrix-multiply throughput that our op's
useful multiply-adds (``B * C * oH * oW * PatchH * PatchW * kH * kW`` per forward; three times that for forward +
backward, whose two gradients are products of the same size) reach.

Timing: ``--warmup`` untimed calls, then the median of ``--repeats`` calls. Forward runs under ``torch.no_grad()``
on inputs that do not require grad; forward + backward runs on leaf inputs that require grad, with a fixed random
``grad_output``. On CUDA the times come from CUDA events around each call (after a synchronize); the original is a
CPU build, so on CUDA its columns are left out and ours is reported in absolute figures.

Peak extra memory, CPU: PyTorch's CPU allocator keeps no peak statistics, so the call runs once more under
``torch.profiler`` with ``profile_memory=True``. The profiler records every allocation and free as a ``[memory]``
event with its signed size and a timestamp; replaying those events in time order gives the running total of bytes
the call holds on top of what existed before it, and its maximum is the peak. From that peak we subtract the bytes
of what the call returns (the output; for forward + backward also the two input gradients, which any
implementation must hold), so "extra" is the transient working memory, and divide by the output's bytes. On CUDA
the same quantity comes from ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.

Host-side cost (the third table), for each ATen path of ours (``correlation_backend("aten")``, the CPU default, and
``"batched"``): the number of ATen calls one forward (under ``no_grad``) and one forward + backward issue, counted
with ``torch.profiler`` as the outermost ``aten::`` events (an ATen call made inside another one is part of it;
autograd's backward nodes are not ATen calls, the ATen calls they make are counted), leaving out calls that do no
work on data: pure view / metadata ops (``view``, ``as_strided``, ``slice``, ``select``, ``expand``, ``permute``,
``transpose``, ``empty``, ...) and composite calls such as ``reshape`` or ``contiguous`` that did not copy. And the
forward time with C=1 (no arithmetic to speak of: the cost of the calls themselves) on one thread, ours against the
original in the same run.

Matrix-multiply throughput: the median time of a float32 ``n x n @ n x n`` product (n = 2048 on CPU, 8192 on CUDA
with TF32 off) in the same run, same threads: ``2 n^3 / t`` FLOP/s.

Usage:
    python benchmarks/bench_correlation.py                         # all configs, all cores, reference if built
    python benchmarks/bench_correlation.py --threads 2 --repeats 5 --markdown
    python benchmarks/bench_correlation.py --configs mmtracker_1/32,flownetc_b1 --no-reference
    python benchmarks/bench_correlation.py --profile                # also torch.profiler top ops of ours

The reference environment is found as in the tests: ``$MMTRACK_CORR_REFERENCE_PYTHON``, else
``<checkout>/.reference-op-venv/bin/python`` (build it with ``bash ../shared/tools/build_reference_op.sh
.reference-op-venv``). Without it the original's columns read "n/a".
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import mmtrack_corr
from mmtrack_corr.correlation import correlation_backend

_TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"
if str(_TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(_TESTS_DIR))

from reference_op import (  # noqa: E402
    ReferenceError,
    TimingCase,
    expected_output_shape,
    pair_params,
    reference_skip_reason,
    time_reference,
)


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark configuration: input shape (B, C, H, W) and the op's arguments."""

    name: str
    shape: tuple[int, int, int, int]
    params: dict[str, Any] = field(default_factory=dict)


CONFIGS = {
    config.name: config
    for config in (
        BenchConfig("mmtracker_1/32", (1, 512, 19, 34), {"kernel_size": 1, "patch_size": 9}),
        BenchConfig("mmtracker_1/16", (1, 256, 38, 68), {"kernel_size": 1, "patch_size": 9}),
        BenchConfig("mmtracker_1/8", (1, 128, 76, 136), {"kernel_size": 1, "patch_size": 9}),
        BenchConfig("flownetc_b1", (1, 256, 48, 64), {"kernel_size": 1, "patch_size": 21, "dilation_patch": 2}),
        BenchConfig("flownetc_b8", (8, 256, 48, 64), {"kernel_size": 1, "patch_size": 21, "dilation_patch": 2}),
    )
}
# Reported, not asserted: (forward, forward + backward) speed-ups over the original that we aim for.
TARGETS = {"mmtracker_1/32": (15.0, 20.0), "flownetc_b1": (25.0, 25.0)}
TARGET_MEMORY = 3.0  # peak extra memory of ours, in output sizes


def unfold_correlation(
    input1: torch.Tensor,
    input2: torch.Tensor,
    kernel_size: int | Sequence[int] = 1,
    patch_size: int | Sequence[int] = 1,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    dilation_patch: int | Sequence[int] = 1,
) -> torch.Tensor:
    """Naive exact correlation: zero-pad, ``F.unfold`` the windows, multiply and sum, one displacement at a time.

    Same contract as ``spatial_correlation_sample`` (see SPEC.md): output (B, PatchH, PatchW, oH, oW).

    Args:
        input1: first input, shape (B, C, H, W).
        input2: second input, same shape.
        kernel_size: window (kH, kW) summed at each output position.
        patch_size: displacements (PatchH, PatchW).
        stride: output stride.
        padding: zero padding of the output grid.
        dilation: spacing of the window.
        dilation_patch: spacing of the displacements.

    Returns:
        Tensor of shape (B, PatchH, PatchW, oH, oW).

    Example:
        >>> x = torch.randn(1, 4, 6, 7)
        >>> unfold_correlation(x, x, patch_size=3).shape
        torch.Size([1, 3, 3, 6, 7])
    """
    params = {
        "kernel_size": kernel_size,
        "patch_size": patch_size,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "dilation_patch": dilation_patch,
    }
    pairs = pair_params(params)
    (kh, kw), (patch_h, patch_w) = pairs["kernel_size"], pairs["patch_size"]
    (pad_h, pad_w), (dph, dpw) = pairs["padding"], pairs["dilation_patch"]
    batch, _, height, width = input1.shape
    _, _, _, out_h, out_w = expected_output_shape(input1.shape, params)
    # rows / columns of the padded image that the (dilated, strided) windows touch, starting at -padding
    extent_h = (out_h - 1) * pairs["stride"][0] + (kh - 1) * pairs["dilation"][0] + 1
    extent_w = (out_w - 1) * pairs["stride"][1] + (kw - 1) * pairs["dilation"][1] + 1
    extra_h, extra_w = max(0, extent_h - pad_h - height), max(0, extent_w - pad_w - width)

    def windows(image: torch.Tensor) -> torch.Tensor:
        return F.unfold(image, (kh, kw), dilation=pairs["dilation"], stride=pairs["stride"])  # (B, C*kh*kw, L)

    first1 = F.pad(input1, (pad_w, extra_w, pad_h, extra_h))[:, :, :extent_h, :extent_w]
    a = windows(first1)
    top, left = (patch_h - 1) // 2 * dph, (patch_w - 1) // 2 * dpw
    bottom, right = (patch_h - 1) * dph - top, (patch_w - 1) * dpw - left
    second = F.pad(input2, (pad_w + left, extra_w + right, pad_h + top, extra_h + bottom))
    channels = []
    for ph in range(patch_h):
        for pw in range(patch_w):
            y0, x0 = ph * dph, pw * dpw
            shifted = second[:, :, y0 : y0 + extent_h, x0 : x0 + extent_w]
            channels.append((a * windows(shifted)).sum(1))
    return torch.stack(channels, 1).view(batch, patch_h, patch_w, out_h, out_w)


def _ours(input1: torch.Tensor, input2: torch.Tensor, **params: Any) -> torch.Tensor:
    return mmtrack_corr.spatial_correlation_sample(input1, input2, **params)


def _timer(device: torch.device) -> Callable[[Callable[[], Any]], float]:
    if device.type == "cuda":

        def cuda_time(fn: Callable[[], Any]) -> float:
            torch.cuda.synchronize(device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            return start.elapsed_time(end) / 1000.0

        return cuda_time

    def cpu_time(fn: Callable[[], Any]) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return cpu_time


def median_time(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    timer = _timer(device)
    for _ in range(warmup):
        fn()
    return statistics.median(timer(fn) for _ in range(repeats))


def peak_extra_bytes(fn: Callable[[], Sequence[torch.Tensor]], device: torch.device) -> int:
    """Peak bytes ``fn`` holds during the call beyond what it returns (see the module docstring for the method)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        kept = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            kept = fn()
        events = [event for event in prof.profiler.kineto_results.events() if event.name() == "[memory]"]
        running = peak = 0
        for event in sorted(events, key=lambda event: event.start_ns()):
            if event.device_type() == torch.autograd.DeviceType.CPU:
                running += event.nbytes()
                peak = max(peak, running)
    return peak - sum(tensor.numel() * tensor.element_size() for tensor in kept)


def matmul_flops(device: torch.device, repeats: int) -> float:
    """Measured float32 matrix-multiply throughput in FLOP/s (TF32 off on CUDA)."""
    n = 8192 if device.type == "cuda" else 2048
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(device)
    b = torch.randn(n, n, generator=generator).to(device)
    return 2.0 * n**3 / median_time(lambda: torch.mm(a, b), device, warmup=2, repeats=max(repeats, 3))


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 1024**3


def _unfold_estimate(config: BenchConfig, element_size: int, backward: bool) -> int:
    """Rough bytes the unfold version needs: its saved per-displacement windows dominate with autograd."""
    batch, channels, _, _ = config.shape
    _, patch_h, patch_w, out_h, out_w = expected_output_shape(config.shape, config.params)
    kh, kw = pair_params(config.params)["kernel_size"]
    window = batch * channels * kh * kw * out_h * out_w * element_size
    return window * (patch_h * patch_w + 2) if backward else 4 * window


@dataclass
class Row:
    """Measurements of one configuration (seconds, multiples of the output size, fractions)."""

    config: BenchConfig
    ours_fwd: float
    ours_fwdbwd: float
    unfold_fwd: float | None
    unfold_fwdbwd: float | None
    ref_fwd: float | None
    ref_fwdbwd: float | None
    ours_mem_fwd: float
    ours_mem_fwdbwd: float
    unfold_mem_fwd: float | None
    unfold_mem_fwdbwd: float | None
    output_bytes: int
    macs: int
    max_error_vs_unfold: float | None


class _Calls:
    """One configuration's seeded inputs (x1, x2, then ``grad_output``, drawn from ``generator`` in that order) and
    the calls the benchmark times: a forward under ``no_grad`` and a forward + backward on leaf inputs, each
    returning what it produced (the tensors that ``peak_extra_bytes`` does not count as working memory)."""

    def __init__(self, config: BenchConfig, device: torch.device, dtype: torch.dtype, generator: torch.Generator):
        self.params = config.params
        self.x1 = torch.randn(config.shape, generator=generator, dtype=dtype).to(device)
        self.x2 = torch.randn(config.shape, generator=generator, dtype=dtype).to(device)
        self.out_shape = expected_output_shape(config.shape, config.params)
        self.grad_output = torch.randn(self.out_shape, generator=generator, dtype=dtype).to(device)
        self.leaf1, self.leaf2 = self.x1.clone().requires_grad_(True), self.x2.clone().requires_grad_(True)
        self.output_bytes = self.grad_output.numel() * self.grad_output.element_size()

    def forward_of(self, op: Callable[..., torch.Tensor]) -> Callable[[], list[torch.Tensor]]:
        def run() -> list[torch.Tensor]:
            with torch.no_grad():
                return [op(self.x1, self.x2, **self.params)]

        return run

    def forward_backward_of(self, op: Callable[..., torch.Tensor]) -> Callable[[], list[torch.Tensor]]:
        def run() -> list[torch.Tensor]:
            self.free_grads()
            output = op(self.leaf1, self.leaf2, **self.params)
            output.backward(self.grad_output)
            assert self.leaf1.grad is not None and self.leaf2.grad is not None
            return [output.detach(), self.leaf1.grad, self.leaf2.grad]

        return run

    def free_grads(self) -> None:
        self.leaf1.grad = self.leaf2.grad = None

    def peak_memory(self, op: Callable[..., torch.Tensor], device: torch.device) -> tuple[float, float]:
        """Peak extra memory of ``op``'s forward and forward + backward, in output sizes."""
        forward = peak_extra_bytes(self.forward_of(op), device) / self.output_bytes
        self.free_grads()  # freed here, not inside the measured call
        return forward, peak_extra_bytes(self.forward_backward_of(op), device) / self.output_bytes


def measure(
    config: BenchConfig, device: torch.device, dtype: torch.dtype, warmup: int, repeats: int, with_unfold: bool
) -> Row:
    """Times and memory of ours and of the unfold version for one configuration."""
    calls = _Calls(config, device, dtype, torch.Generator().manual_seed(0))
    x1, x2, params, out_shape, output_bytes = calls.x1, calls.x2, calls.params, calls.out_shape, calls.output_bytes
    forward_of, forward_backward_of = calls.forward_of, calls.forward_backward_of
    ours_fwd = median_time(forward_of(_ours), device, warmup, repeats)
    ours_fwdbwd = median_time(forward_backward_of(_ours), device, warmup, repeats)
    ours_mem_fwd, ours_mem_fwdbwd = calls.peak_memory(_ours, device)
    budget = 0.4 * (torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else _available_bytes())
    unfold_fwd = unfold_fwdbwd = unfold_mem_fwd = unfold_mem_fwdbwd = error = None
    if with_unfold and _unfold_estimate(config, x1.element_size(), False) < budget:
        unfold_fwd = median_time(forward_of(unfold_correlation), device, warmup, repeats)
        unfold_mem_fwd = peak_extra_bytes(forward_of(unfold_correlation), device) / output_bytes
        with torch.no_grad():
            expected = unfold_correlation(x1, x2, **params)
            scale = max(expected.abs().max().item(), 1e-30)
            error = (_ours(x1, x2, **params) - expected).abs().max().item() / scale
        del expected
        if _unfold_estimate(config, x1.element_size(), True) < budget:
            unfold_fwdbwd = median_time(forward_backward_of(unfold_correlation), device, warmup, repeats)
            calls.free_grads()
            unfold_mem_fwdbwd = peak_extra_bytes(forward_backward_of(unfold_correlation), device) / output_bytes
    batch, channels, _, _ = config.shape
    kh, kw = pair_params(params)["kernel_size"]
    macs = batch * channels * out_shape[1] * out_shape[2] * out_shape[3] * out_shape[4] * kh * kw
    return Row(
        config,
        ours_fwd,
        ours_fwdbwd,
        unfold_fwd,
        unfold_fwdbwd,
        None,
        None,
        ours_mem_fwd,
        ours_mem_fwdbwd,
        unfold_mem_fwd,
        unfold_mem_fwdbwd,
        output_bytes,
        macs,
        error,
    )


# ATen calls that only make views or read metadata (or allocate without writing): not counted as host-side work
_VIEW_OPS = frozenset(
    "aten::" + name
    for name in (
        "view as_strided slice select expand expand_as permute transpose t unsqueeze squeeze _unsafe_view alias "
        "detach lift_fresh empty empty_strided empty_like unfold _reshape_alias reshape view_as contiguous to "
        "resolve_conj resolve_neg narrow split chunk unbind diagonal numpy_T movedim result_type is_nonzero "
        "size stride dim is_floating_point"
    ).split()
)


def _does_work(event: Any) -> bool:
    """An ATen event that is not a view / metadata op, or that made such a call (e.g. a reshape that copied)."""
    if event.name not in _VIEW_OPS:
        return True
    return any(child.name.startswith("aten::") and _does_work(child) for child in event.cpu_children)


def count_aten_calls(fn: Callable[[], Any]) -> int:
    """Outermost non-view ``aten::`` calls that ``fn`` makes in a steady state (see the module docstring): one
    call first, uncounted, so that per-shape caches (the pixel path's edge masks) are warm, as in a video loop."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    count = 0
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if parent is None and _does_work(event):
            count += 1
    return count


@dataclass
class HostCost:
    """Per backend ("aten", "batched"): ATen calls per forward / forward + backward, the C=1 forward seconds on
    one thread, the forward / forward + backward seconds at the config's own channels (the run's threads) and the
    peak extra memory of forward / forward + backward in output sizes; and the original's C=1 forward seconds."""

    config: BenchConfig
    calls: dict[str, tuple[int, int]]
    c1: dict[str, float]
    times: dict[str, tuple[float, float]]
    memory: dict[str, tuple[float, float]]
    ref_c1: float | None = None


HOST_BACKENDS = ("aten", "batched")


def _c1_config(config: BenchConfig) -> BenchConfig:
    batch, _, height, width = config.shape
    return BenchConfig(config.name, (batch, 1, height, width), config.params)


def measure_host_cost(
    config: BenchConfig, device: torch.device, dtype: torch.dtype, warmup: int, repeats: int
) -> HostCost:
    """For each ATen backend: call counts of ours at ``config``, its C=1 forward time on one thread, and its times
    and peak extra memory at the config's channels (forward; forward + backward with a fixed ``grad_output``)."""
    generator = torch.Generator().manual_seed(0)
    inputs = _Calls(config, device, dtype, generator)
    small = _c1_config(config)
    c1_a = torch.randn(small.shape, generator=generator, dtype=dtype).to(device)
    c1_b = torch.randn(small.shape, generator=generator, dtype=dtype).to(device)
    forward, forward_backward = inputs.forward_of(_ours), inputs.forward_backward_of(_ours)

    def forward_c1() -> None:
        with torch.no_grad():
            _ours(c1_a, c1_b, **small.params)

    calls, c1, times, memory = {}, {}, {}, {}
    threads = torch.get_num_threads()
    for backend in HOST_BACKENDS:
        with correlation_backend(backend):
            forward_backward()  # warm-up
            calls[backend] = (count_aten_calls(forward), count_aten_calls(forward_backward))
            times[backend] = (
                median_time(forward, device, warmup, repeats),
                median_time(forward_backward, device, warmup, repeats),
            )
            memory[backend] = inputs.peak_memory(_ours, device)
            torch.set_num_threads(1)
            try:
                c1[backend] = median_time(forward_c1, device, max(warmup, 2), repeats)
            finally:
                torch.set_num_threads(threads)
    inputs.free_grads()
    return HostCost(config, calls, c1, times, memory)


def render_host_cost(costs: list[HostCost], markdown: bool) -> str:
    header = ["config"]
    for backend in HOST_BACKENDS:
        header += [f"{backend} calls fwd", f"{backend} calls f+b", f"{backend} C=1 fwd ms"]
    header += ["orig C=1 fwd ms"] + [f"orig/{backend} C=1" for backend in HOST_BACKENDS]
    rows = []
    for cost in costs:
        row = [cost.config.name]
        for backend in HOST_BACKENDS:
            fwd, fwdbwd = cost.calls[backend]
            row += [str(fwd), str(fwdbwd), f"{cost.c1[backend] * 1000:.2f}"]
        row.append("n/a" if cost.ref_c1 is None else f"{cost.ref_c1 * 1000:.2f}")
        row += ["n/a" if cost.ref_c1 is None else f"{cost.ref_c1 / cost.c1[backend]:.2f}x" for backend in HOST_BACKENDS]
        rows.append(row)
    return _table(header, rows, markdown)


def render_backend_speed(costs: list[HostCost], markdown: bool) -> str:
    """Each ATen backend at the configs' own channels: times, the batched path against the default, memory."""
    header = ["config"]
    for backend in HOST_BACKENDS:
        header += [f"{backend} fwd ms", f"{backend} f+b ms"]
    header += ["aten/batched fwd", "aten/batched f+b"]
    for backend in HOST_BACKENDS:
        header += [f"{backend} extra/out fwd", f"{backend} extra/out f+b"]
    rows = []
    for cost in costs:
        row = [cost.config.name]
        for backend in HOST_BACKENDS:
            row += [f"{t * 1000:.1f}" for t in cost.times[backend]]
        row += [f"{a / b:.2f}x" for a, b in zip(cost.times["aten"], cost.times["batched"], strict=True)]
        for backend in HOST_BACKENDS:
            row += [f"{m:.2f}" for m in cost.memory[backend]]
        rows.append(row)
    return _table(header, rows, markdown)


def profile_ours(config: BenchConfig, device: torch.device, dtype: torch.dtype, rows: int = 12) -> str:
    """torch.profiler tables of one forward and one forward + backward of ours: top ops by self time, and (forward +
    backward) top ops by memory they allocated themselves."""
    from torch.profiler import ProfilerActivity, profile

    generator = torch.Generator().manual_seed(0)
    x1 = torch.randn(config.shape, generator=generator, dtype=dtype).to(device).requires_grad_(True)
    x2 = torch.randn(config.shape, generator=generator, dtype=dtype).to(device).requires_grad_(True)
    _ours(x1, x2, **config.params).sum().backward()  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sort_key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    tables = []
    for label, with_backward in (("forward", False), ("forward+backward", True)):
        x1.grad = x2.grad = None
        with profile(activities=activities, profile_memory=True) as prof:
            if with_backward:
                _ours(x1, x2, **config.params).sum().backward()
            else:
                with torch.no_grad():
                    _ours(x1, x2, **config.params)
        averages = prof.key_averages()
        tables.append(f"--- {config.name} {label}: time ---\n" + averages.table(sort_by=sort_key, row_limit=rows))
        if with_backward:
            memory_key = "self_device_memory_usage" if device.type == "cuda" else "self_cpu_memory_usage"
            tables.append(
                f"--- {config.name} {label}: memory ---\n" + averages.table(sort_by=memory_key, row_limit=rows)
            )
    return "\n".join(tables)


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f}"


def _ratio(numerator: float | None, denominator: float) -> str:
    return "n/a" if numerator is None else f"{numerator / denominator:.1f}x"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _describe(config: BenchConfig) -> str:
    batch, channels, height, width = config.shape
    params = ", ".join(f"{key}={value}" for key, value in config.params.items())
    return f"B{batch} C{channels} {height}x{width}, {params}"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def render(rows: list[Row], flops: float, markdown: bool, show_reference: bool) -> str:
    """Time table and memory / efficiency table, plain or markdown."""
    time_header = [
        "config",
        "ours fwd ms",
        "orig fwd ms",
        "unfold fwd ms",
        "orig/ours fwd",
        "unfold/ours fwd",
        "ours f+b ms",
        "orig f+b ms",
        "unfold f+b ms",
        "orig/ours f+b",
        "unfold/ours f+b",
    ]
    memory_header = [
        "config",
        "output MB",
        "ours extra/out fwd",
        "ours extra/out f+b",
        "unfold extra/out fwd",
        "unfold extra/out f+b",
        "ours GFLOP/s fwd",
        "% of matmul fwd",
        "% of matmul f+b",
        "max rel. diff vs unfold",
    ]
    time_rows, memory_rows = [], []
    for row in rows:
        time_rows.append(
            [
                row.config.name,
                _ms(row.ours_fwd),
                _ms(row.ref_fwd),
                _ms(row.unfold_fwd),
                _ratio(row.ref_fwd, row.ours_fwd),
                _ratio(row.unfold_fwd, row.ours_fwd),
                _ms(row.ours_fwdbwd),
                _ms(row.ref_fwdbwd),
                _ms(row.unfold_fwdbwd),
                _ratio(row.ref_fwdbwd, row.ours_fwdbwd),
                _ratio(row.unfold_fwdbwd, row.ours_fwdbwd),
            ]
        )
        gflops = 2 * row.macs / row.ours_fwd / 1e9
        memory_rows.append(
            [
                row.config.name,
                f"{row.output_bytes / 1e6:.2f}",
                _times(row.ours_mem_fwd),
                _times(row.ours_mem_fwdbwd),
                _times(row.unfold_mem_fwd),
                _times(row.unfold_mem_fwdbwd),
                f"{gflops:.1f}",
                f"{100 * 2 * row.macs / row.ours_fwd / flops:.1f}%",
                f"{100 * 6 * row.macs / row.ours_fwdbwd / flops:.1f}%",
                "n/a" if row.max_error_vs_unfold is None else f"{row.max_error_vs_unfold:.1e}",
            ]
        )
    if not show_reference:
        keep = [i for i, name in enumerate(time_header) if "orig" not in name]
        time_header = [time_header[i] for i in keep]
        time_rows = [[line[i] for i in keep] for line in time_rows]
    return _table(time_header, time_rows, markdown) + "\n\n" + _table(memory_header, memory_rows, markdown)


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)) for line in [header, *rows]]
    return "\n".join(lines)


def target_report(rows: list[Row]) -> list[str]:
    """One line per target (speed-ups over the original, peak memory): met or missed by how much."""
    lines = []
    for row in rows:
        if row.config.name in TARGETS and row.ref_fwd is not None and row.ref_fwdbwd is not None:
            for label, target, ref, ours in (
                ("forward", TARGETS[row.config.name][0], row.ref_fwd, row.ours_fwd),
                ("forward+backward", TARGETS[row.config.name][1], row.ref_fwdbwd, row.ours_fwdbwd),
            ):
                speedup = ref / ours
                verdict = (
                    "met"
                    if speedup >= target
                    else f"MISSED by {target / speedup:.2f}x (ours would need {ref / target * 1000:.1f} ms)"
                )
                lines.append(f"{row.config.name} {label}: {speedup:.1f}x vs target {target:.0f}x: {verdict}")
        for label, value in (("forward", row.ours_mem_fwd), ("forward+backward", row.ours_mem_fwdbwd)):
            if value > TARGET_MEMORY:
                lines.append(f"{row.config.name} {label}: peak extra memory {value:.2f}x output > {TARGET_MEMORY}x")
    return lines


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads (all cores)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, among {', '.join(CONFIGS)}")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--no-reference", action="store_true", help="do not run the original op")
    parser.add_argument("--no-unfold", action="store_true", help="do not run the naive unfold version")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables (for the README)")
    parser.add_argument("--profile", action="store_true", help="also print torch.profiler top ops of ours")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0, or 2 on a user error (one line on stderr)."""
    args = _parse(argv)
    names = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown or not names:
        print(f"--configs: expected names among {', '.join(CONFIGS)}, got {args.configs!r}", file=sys.stderr)
        return 2
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        print(
            f"--threads/--repeats/--warmup: expected >= 1, >= 1, >= 0, got {args.threads}, {args.repeats}, "
            f"{args.warmup}",
            file=sys.stderr,
        )
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device: expected a CUDA device to be available, got none", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    configs = [CONFIGS[name] for name in names]

    load_before = os.getloadavg()[0]
    use_reference = not args.no_reference and device.type == "cpu"
    reference_note = "skipped (--no-reference)" if args.no_reference else "skipped (CPU build; --device cuda)"
    reference_timings = reference_c1 = None
    if use_reference:
        reason = reference_skip_reason()
        if reason is not None:
            reference_note, use_reference = f"n/a: {reason}", False
        else:
            cases = [
                TimingCase(config.shape, config.params, args.dtype, args.repeats, args.warmup) for config in configs
            ]
            try:
                reference_timings, facts = time_reference(cases, threads=args.threads)
            except ReferenceError as error:
                print(f"reference: the original op failed to run: {error}", file=sys.stderr)
                return 2
            reference_note = f"{facts['module_file']} (torch {facts['torch_version']}, {facts['num_threads']} threads)"
            small_cases = [
                TimingCase(_c1_config(c).shape, c.params, args.dtype, args.repeats, max(args.warmup, 2), backward=False)
                for c in configs
            ]
            reference_c1, _ = time_reference(small_cases, threads=1)

    flops = matmul_flops(device, args.repeats)
    rows = []
    for index, config in enumerate(configs):
        row = measure(config, device, dtype, args.warmup, args.repeats, not args.no_unfold)
        if reference_timings is not None:
            row.ref_fwd = reference_timings[index].forward_median_s
            row.ref_fwdbwd = reference_timings[index].forward_backward_median_s
        rows.append(row)
    costs = [measure_host_cost(config, device, dtype, args.warmup, args.repeats) for config in configs]
    if reference_c1 is not None:
        for cost, timing in zip(costs, reference_c1, strict=True):
            cost.ref_c1 = timing.forward_median_s

    where = cpu_model() if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(
        f"device: {args.device} ({where}); torch {torch.__version__}; torch.get_num_threads() = "
        f"{torch.get_num_threads()}; dtype {args.dtype}; median of {args.repeats} after {args.warmup} warm-up"
    )
    print(
        f"matmul throughput (float32): {flops / 1e9:.1f} GFLOP/s; load average before / after: "
        f"{load_before:.2f} / {os.getloadavg()[0]:.2f} (other work on the machine skews every column)"
    )
    print(f"original op: {reference_note}")
    for config in configs:
        print(f"  {config.name}: {_describe(config)}")
    print()
    print(render(rows, flops, args.markdown, reference_timings is not None))
    print()
    print('host-side cost of the ATen paths ("aten": the default on CPU; "batched": correlation_backend("batched")):')
    print("ATen calls per call (profiler) and the C=1 forward on one thread")
    print(render_host_cost(costs, args.markdown))
    print()
    print("the same backends at the configs' own channels (this run's threads): median ms and peak extra memory")
    print("(output sizes); aten/batched > 1 means the batched path is faster")
    print(render_backend_speed(costs, args.markdown))
    print()
    for line in target_report(rows):
        print(line)
    if args.profile:
        for config in configs:
            print()
            print(profile_ours(config, device, dtype))
    return 0


if __name__ == "__main__":
    sys.exit(main())
