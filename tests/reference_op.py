"""Harness that runs the ORIGINAL C++ ``spatial_correlation_sampler`` 0.5.0 in its own environment.

The original extension has the same import name as the project's compatibility package
(``spatial_correlation_sampler/`` at the checkout root), so it is never imported in a process that can see the
checkout. Instead this module starts ``tests/reference_worker.py`` with the reference environment's python,
isolated (``-I -s``) and from a temporary working directory outside the checkout, and exchanges tensors with it
through ``torch.save`` / ``torch.load`` files. Many cases go into one worker invocation, so a whole test module
costs one interpreter start.

Where the reference python comes from, first match wins:

1. the environment variable ``MMTRACK_CORR_REFERENCE_PYTHON`` (path to that python);
2. ``<checkout root>/.reference-op-venv/bin/python``, which ``.ci/run`` builds with
   ``bash ../shared/tools/build_reference_op.sh .reference-op-venv``.

Without it the comparison tests skip, naming the build command; with ``MMTRACK_CORR_REQUIRE_REFERENCE=1`` (set by
``.ci/run``) they fail instead.

Users: ``tests/test_correlation_reference.py`` (imports this module from the tests folder) and
``benchmarks/bench_correlation.py`` (puts the tests folder on ``sys.path`` and imports it the same way).

The original aborts the whole process (no exception) on half precision or mixed dtypes, on stride 0 and on
mismatched input shapes; :func:`check_case` screens those out before anything reaches the worker.

Example:
    >>> import torch
    >>> from reference_op import ReferenceCase, reference_python, run_reference
    >>> if reference_python() is not None:
    ...     x = torch.randn(1, 2, 5, 6, dtype=torch.float64)
    ...     (result,) = run_reference([ReferenceCase(x, x, {"patch_size": 3})])
    ...     print(tuple(result.output.shape))
    (1, 3, 3, 5, 6)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

REFERENCE_PYTHON_ENV = "MMTRACK_CORR_REFERENCE_PYTHON"
# set (to anything but "" or "0") where a missing reference must fail the tests instead of skipping them (CI)
REQUIRE_REFERENCE_ENV = "MMTRACK_CORR_REQUIRE_REFERENCE"
REPO_ROOT = Path(__file__).resolve().parent.parent
# the checkout's own compatibility package: the reference worker must never import it
_COMPAT_PACKAGE = REPO_ROOT / "spatial_correlation_sampler"
DEFAULT_REFERENCE_PYTHON = REPO_ROOT / ".reference-op-venv" / "bin" / "python"
WORKER = Path(__file__).resolve().with_name("reference_worker.py")
BUILD_HINT = "run ../shared/tools/build_reference_op.sh .reference-op-venv"
PARAM_NAMES = ("kernel_size", "patch_size", "stride", "padding", "dilation", "dilation_patch")
_MINIMUM = {"kernel_size": 1, "patch_size": 1, "stride": 1, "padding": 0, "dilation": 1, "dilation_patch": 1}
_SAFE_DTYPES = (torch.float32, torch.float64)


class ReferenceError(RuntimeError):
    """The reference worker failed or imported something other than the original op."""


@dataclass(frozen=True)
class ReferenceCase:
    """One call of the original op.

    Args:
        input1: first input, shape (B, C, H, W), float32 or float64, on the CPU.
        input2: second input, same shape and dtype as ``input1``.
        params: keyword arguments of ``spatial_correlation_sample`` (any of ``PARAM_NAMES``), passed as given
            (int, tuple or list).
        grad_output: when given, gradient of the output, shape (B, PatchH, PatchW, oH, oW); the result then
            also holds both input gradients.
    """

    input1: torch.Tensor
    input2: torch.Tensor
    params: dict[str, Any] = field(default_factory=dict)
    grad_output: torch.Tensor | None = None


@dataclass(frozen=True)
class ReferenceResult:
    """What the original op returned for one :class:`ReferenceCase`.

    Args:
        output: forward output, shape (B, PatchH, PatchW, oH, oW).
        grad_input1: gradient of ``input1`` (``None`` unless the case had a ``grad_output``).
        grad_input2: gradient of ``input2`` (``None`` unless the case had a ``grad_output``).
    """

    output: torch.Tensor
    grad_input1: torch.Tensor | None = None
    grad_input2: torch.Tensor | None = None


@dataclass(frozen=True)
class TimingCase:
    """One configuration to time in the reference environment (inputs drawn there from ``seed``).

    Args:
        shape: input shape (B, C, H, W), the same for both inputs.
        params: keyword arguments of ``spatial_correlation_sample``.
        dtype: ``"float32"`` or ``"float64"``.
        repeats: timed runs of each kind.
        warmup: untimed runs before them.
        seed: seed of the inputs' random generator.
        backward: also time forward + backward (random ``grad_output``).
    """

    shape: tuple[int, int, int, int]
    params: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"
    repeats: int = 5
    warmup: int = 1
    seed: int = 0
    backward: bool = True


@dataclass(frozen=True)
class TimingResult:
    """Wall-clock seconds of each timed run of one :class:`TimingCase`.

    Args:
        forward_s: forward only, under ``torch.no_grad()``.
        forward_backward_s: forward + backward (empty when the case did not ask for it).
    """

    forward_s: list[float]
    forward_backward_s: list[float]

    @property
    def forward_median_s(self) -> float:
        """Median forward time in seconds."""
        return statistics.median(self.forward_s)

    @property
    def forward_backward_median_s(self) -> float:
        """Median forward + backward time in seconds (``nan`` when not timed)."""
        return statistics.median(self.forward_backward_s) if self.forward_backward_s else float("nan")


def reference_python() -> str | None:
    """Path of the python that has the original op installed, or ``None`` when there is none.

    Returns:
        ``$MMTRACK_CORR_REFERENCE_PYTHON`` when set (``None`` if it is not an executable file), else
        ``<checkout root>/.reference-op-venv/bin/python`` when it exists, else ``None``.

    Example:
        >>> path = reference_python()
        >>> path is None or os.access(path, os.X_OK)
        True
    """
    configured = os.environ.get(REFERENCE_PYTHON_ENV)
    candidate = Path(configured) if configured else DEFAULT_REFERENCE_PYTHON
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return None


def reference_skip_reason() -> str | None:
    """Why the original op cannot be used here, or ``None`` when it can.

    Returns:
        A one-line reason naming the build command, or ``None``.

    Example:
        >>> reason = reference_skip_reason()
        >>> reason is None or reason.startswith("original op not built")
        True
    """
    if reference_python() is not None:
        return None
    configured = os.environ.get(REFERENCE_PYTHON_ENV)
    if configured:
        return f"original op not built: {REFERENCE_PYTHON_ENV}={configured} is not an executable file; {BUILD_HINT}"
    return f"original op not built: {BUILD_HINT} (or set {REFERENCE_PYTHON_ENV})"


def reference_required() -> bool:
    """Whether ``$MMTRACK_CORR_REQUIRE_REFERENCE`` asks for a missing reference to be an error, not a skip.

    Returns:
        True when the variable is set to anything but ``""`` or ``"0"``.

    Example:
        >>> isinstance(reference_required(), bool)
        True
    """
    return os.environ.get(REQUIRE_REFERENCE_ENV, "") not in ("", "0")


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length along one axis, the original's formula with C-style truncation toward zero.

    Args:
        size: input length (H or W).
        kernel: kernel size along that axis.
        stride: stride along that axis.
        padding: padding along that axis.
        dilation: kernel dilation along that axis.

    Returns:
        ``trunc((size + 2*padding - ((kernel-1)*dilation + 1)) / stride) + 1``.

    Example:
        >>> output_size(4, 3, 2, 0, 2)  # 4 - 5 = -1, truncated to 0, not floored to -1
        1
    """
    span = size + 2 * padding - ((kernel - 1) * dilation + 1)
    quotient = abs(span) // stride
    return (quotient if span >= 0 else -quotient) + 1


def pair_params(params: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """All six arguments as (H, W) pairs, defaults filled in.

    Args:
        params: keyword arguments as a caller gives them (int, tuple or list of two ints).

    Returns:
        A dict with every name of ``PARAM_NAMES`` mapped to an ``(h, w)`` tuple.

    Raises:
        TypeError: a name is unknown or a value is neither an int nor a pair of ints.
        ValueError: a value is below its minimum (1, or 0 for padding).

    Example:
        >>> pair_params({"patch_size": (4, 6)})["patch_size"]
        (4, 6)
    """
    unknown = sorted(set(params) - set(PARAM_NAMES))
    if unknown:
        raise TypeError(f"params: expected names among {PARAM_NAMES}, got {unknown}")
    pairs = {}
    for name in PARAM_NAMES:
        value = params.get(name, 1 if name != "padding" else 0)
        if isinstance(value, int) and not isinstance(value, bool):
            pair = (value, value)
        elif (
            isinstance(value, (tuple, list))
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            pair = (int(value[0]), int(value[1]))
        else:
            raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")
        if min(pair) < _MINIMUM[name]:
            raise ValueError(f"{name}: expected values >= {_MINIMUM[name]}, got {value!r}")
        pairs[name] = pair
    return pairs


def expected_output_shape(input_shape: Sequence[int], params: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """Shape (B, PatchH, PatchW, oH, oW) that the original returns.

    Args:
        input_shape: (B, C, H, W).
        params: keyword arguments of ``spatial_correlation_sample``.

    Returns:
        The output shape; ``oH`` / ``oW`` may be negative (the original then raises).

    Example:
        >>> expected_output_shape((2, 8, 19, 34), {"patch_size": 9})
        (2, 9, 9, 19, 34)
    """
    pairs = pair_params(params)
    batch, _, height, width = input_shape
    sizes = [
        output_size(size, pairs["kernel_size"][axis], pairs["stride"][axis], pairs["padding"][axis],
                    pairs["dilation"][axis])
        for axis, size in enumerate((height, width))
    ]  # fmt: skip
    return (batch, pairs["patch_size"][0], pairs["patch_size"][1], sizes[0], sizes[1])


def check_case(case: ReferenceCase) -> None:
    """Refuse anything that would crash or abort the original op's process.

    Args:
        case: the call to check.

    Raises:
        TypeError: an input is not a tensor, or a parameter has the wrong type.
        ValueError: dtype other than float32/float64, dtypes or shapes differ, not 4-D, not on the CPU, a
            parameter below its minimum (stride 0 included), an empty output grid, or a ``grad_output`` whose
            shape or dtype differs from the output's.

    Example:
        >>> x = torch.zeros(1, 1, 3, 3)
        >>> check_case(ReferenceCase(x, x, {"stride": 2}))
    """
    for name, tensor in (("input1", case.input1), ("input2", case.input2)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
        if tensor.dtype not in _SAFE_DTYPES:
            raise ValueError(f"{name}: expected float32 or float64 (the original aborts on others), got {tensor.dtype}")
        if tensor.dim() != 4:
            raise ValueError(f"{name}: expected a 4-D tensor (B, C, H, W), got shape {tuple(tensor.shape)}")
        if tensor.device.type != "cpu":
            raise ValueError(f"{name}: expected a CPU tensor (the original is built for the CPU), got {tensor.device}")
    if case.input2.dtype != case.input1.dtype:
        raise ValueError(f"input2: expected dtype {case.input1.dtype} like input1, got {case.input2.dtype}")
    if case.input2.shape != case.input1.shape:
        raise ValueError(
            f"input2: expected the same shape as input1 {tuple(case.input1.shape)}, got {tuple(case.input2.shape)}"
        )
    shape = expected_output_shape(case.input1.shape, case.params)
    if shape[3] < 0 or shape[4] < 0:
        raise ValueError(f"params: expected a non-negative output grid, got {shape[3]} x {shape[4]} for {case.params}")
    if case.grad_output is not None:
        if not isinstance(case.grad_output, torch.Tensor):
            raise TypeError(f"grad_output: expected a torch.Tensor, got {type(case.grad_output).__name__}")
        if tuple(case.grad_output.shape) != shape or case.grad_output.dtype != case.input1.dtype:
            raise ValueError(
                f"grad_output: expected shape {shape} and dtype {case.input1.dtype}, "
                f"got {tuple(case.grad_output.shape)} and {case.grad_output.dtype}"
            )


def _run_worker(request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    python = reference_python()
    if python is None:
        raise ReferenceError(reference_skip_reason() or "original op not built")
    with tempfile.TemporaryDirectory(prefix="mmtrack-corr-reference-") as work:
        request_path = Path(work) / "request.pt"
        result_path = Path(work) / "result.pt"
        torch.save(request, request_path)
        env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
        try:
            completed = subprocess.run(
                [python, "-I", "-s", str(WORKER), str(request_path), str(result_path)],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise ReferenceError(f"reference worker: no answer within {timeout_s:.0f} s") from error
        if completed.returncode != 0 or not result_path.is_file():
            raise ReferenceError(
                f"reference worker ({python}) exited with {completed.returncode}:\n{completed.stderr[-4000:]}"
            )
        result = torch.load(result_path, weights_only=True)
    module_file = Path(result["module_file"])
    if "site-packages" not in module_file.parts or _COMPAT_PACKAGE in module_file.parents:
        raise ReferenceError(f"reference worker imported {module_file}, not the original site-packages build")
    return result


def run_reference(
    cases: Sequence[ReferenceCase], *, threads: int | None = None, timeout_s: float = 600.0
) -> list[ReferenceResult]:
    """Run the original op on every case in one worker process.

    Args:
        cases: the calls to make, in order.
        threads: ``torch.set_num_threads`` in the worker (``None`` keeps its default).
        timeout_s: give up after this many seconds.

    Returns:
        One :class:`ReferenceResult` per case, same order.

    Raises:
        ReferenceError: no reference python, the worker failed, or it did not import the original build.
        TypeError, ValueError: a case would crash the original (see :func:`check_case`).

    Example:
        >>> x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
        >>> if reference_python() is not None:
        ...     (result,) = run_reference([ReferenceCase(x, x, {"patch_size": (4, 6)})])
        ...     print(tuple(result.output.shape))
        (2, 4, 6, 4, 5)
    """
    for case in cases:
        check_case(case)
    request = {
        "mode": "compute",
        "forbidden_package": str(_COMPAT_PACKAGE),
        "threads": threads,
        "cases": [
            {
                "input1": case.input1.detach(),
                "input2": case.input2.detach(),
                "params": dict(case.params),
                **({} if case.grad_output is None else {"grad_output": case.grad_output.detach().contiguous()}),
            }
            for case in cases
        ],
    }
    results = _run_worker(request, timeout_s)["results"]
    return [ReferenceResult(item["output"], item.get("grad_input1"), item.get("grad_input2")) for item in results]


def time_reference(
    cases: Sequence[TimingCase], *, threads: int | None = None, timeout_s: float = 3600.0
) -> tuple[list[TimingResult], dict[str, Any]]:
    """Time the original op on every case in one worker process.

    Args:
        cases: configurations to time.
        threads: ``torch.set_num_threads`` in the worker (``None`` keeps its default).
        timeout_s: give up after this many seconds.

    Returns:
        One :class:`TimingResult` per case, and the worker's facts (``module_file``, ``torch_version``,
        ``num_threads``).

    Raises:
        ReferenceError: no reference python or the worker failed.
        TypeError, ValueError: a configuration would crash the original.

    Example:
        >>> if reference_python() is not None:
        ...     timings, facts = time_reference([TimingCase((1, 8, 10, 12), {"patch_size": 3}, repeats=3)])
        ...     print(len(timings[0].forward_s))
        3
    """
    for case in cases:
        if case.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {case.dtype!r}")
        check_case(ReferenceCase(torch.empty(case.shape), torch.empty(case.shape), case.params))
    request = {
        "mode": "time",
        "forbidden_package": str(_COMPAT_PACKAGE),
        "threads": threads,
        "cases": [
            {
                "shape": list(case.shape),
                "params": dict(case.params),
                "dtype": case.dtype,
                "repeats": case.repeats,
                "warmup": case.warmup,
                "seed": case.seed,
                "backward": case.backward,
            }
            for case in cases
        ],
    }
    result = _run_worker(request, timeout_s)
    timings = [TimingResult(item["forward_s"], item.get("forward_backward_s", [])) for item in result["results"]]
    facts = {key: result[key] for key in ("module_file", "torch_version", "num_threads")}
    return timings, facts


if __name__ == "__main__":
    # Smoke check of the setup: prints where the reference comes from, or why there is none.
    reason = reference_skip_reason()
    if reason is not None:
        print(reason, file=sys.stderr)
        sys.exit(2)
    probe = torch.randn(1, 2, 5, 6, dtype=torch.float64)
    print(reference_python(), tuple(run_reference([ReferenceCase(probe, probe, {"patch_size": 3})])[0].output.shape))
