"""Worker that runs the ORIGINAL C++ ``spatial_correlation_sampler`` 0.5.0 on a batch of cases.

This script is executed by the reference virtual environment's python (built by
``../shared/tools/build_reference_op.sh``), never imported by the project's own processes. The harness in
``tests/reference_op.py`` starts it as ``python -I -s reference_worker.py REQUEST RESULT`` with the working
directory set to a temporary folder outside the checkout: ``-I`` keeps the script's folder, the working directory,
``PYTHONPATH`` and user site-packages off ``sys.path``, so the project's compatibility package of the same import
name cannot shadow the original. The worker still checks where ``spatial_correlation_sampler`` came from and
refuses to run anything if it is not the site-packages build.

Request file (``torch.save``): a dict with

- ``mode``: ``"compute"`` or ``"time"``;
- ``forbidden_package``: the checkout's compatibility package folder (the imported package must not be it);
- ``threads``: ``torch.set_num_threads`` value, or ``None`` to keep the default;
- ``cases``: a list of dicts.

  For ``compute``: ``input1``, ``input2`` (tensors), ``params`` (dict of the six keyword arguments, values as
  given: int, tuple or list) and optional ``grad_output`` (tensor); the result for each case is a dict with
  ``output`` and, when ``grad_output`` was given, ``grad_input1`` and ``grad_input2``.

  For ``time``: ``shape`` (B, C, H, W), ``dtype`` (``"float32"``/``"float64"``), ``params``, ``repeats``,
  ``warmup``, ``seed`` and ``backward`` (bool); the result is a dict with ``forward_s`` and (when ``backward``)
  ``forward_backward_s``, lists of wall-clock seconds of each timed run.

Result file (``torch.save``): a dict with ``module_file`` (the imported package's ``__file__``), ``torch_version``,
``num_threads`` and ``results`` (one entry per case, same order).

The original aborts the whole process on half precision, stride 0 and mismatched shapes; the harness screens
those out before they reach this script.
"""

import os
import sys
import time
import typing


def _load_original(forbidden_package: str) -> typing.Any:
    import spatial_correlation_sampler

    module_file = os.path.realpath(spatial_correlation_sampler.__file__)
    ours = os.path.realpath(forbidden_package)
    # the reference venv may live inside the checkout (.reference-op-venv): what must never load is our package
    if "site-packages" not in module_file.split(os.sep) or module_file.startswith(ours + os.sep):
        raise RuntimeError(
            f"spatial_correlation_sampler: expected the original site-packages build, got {module_file} "
            f"(the checkout's compatibility package is {ours})"
        )
    import spatial_correlation_sampler_backend  # noqa: F401  # the compiled extension must be importable

    print(f"reference_worker: spatial_correlation_sampler from {module_file}", file=sys.stderr)
    return spatial_correlation_sampler


def _compute(sampler: typing.Any, case: dict[str, typing.Any]) -> dict[str, typing.Any]:
    import torch

    input1 = case["input1"].detach().clone()
    input2 = case["input2"].detach().clone()
    grad_output = case.get("grad_output")
    if grad_output is None:
        with torch.no_grad():
            output = sampler.spatial_correlation_sample(input1, input2, **case["params"])
        return {"output": output.clone()}
    input1.requires_grad_(True)
    input2.requires_grad_(True)
    output = sampler.spatial_correlation_sample(input1, input2, **case["params"])
    output.backward(grad_output)
    return {
        "output": output.detach().clone(),
        "grad_input1": input1.grad.detach().clone(),
        "grad_input2": input2.grad.detach().clone(),
    }


def _time(sampler: typing.Any, case: dict[str, typing.Any]) -> dict[str, list[float]]:
    import torch

    generator = torch.Generator().manual_seed(int(case["seed"]))
    dtype = {"float32": torch.float32, "float64": torch.float64}[case["dtype"]]
    input1 = torch.randn(*case["shape"], generator=generator, dtype=dtype)
    input2 = torch.randn(*case["shape"], generator=generator, dtype=dtype)
    params = case["params"]

    def forward() -> None:
        with torch.no_grad():
            sampler.spatial_correlation_sample(input1, input2, **params)

    forward_times = _repeat(forward, int(case["warmup"]), int(case["repeats"]))
    result = {"forward_s": forward_times}
    if case["backward"]:
        leaf1 = input1.clone().requires_grad_(True)
        leaf2 = input2.clone().requires_grad_(True)
        with torch.no_grad():
            grad_output = torch.randn_like(sampler.spatial_correlation_sample(input1, input2, **params))

        def forward_backward() -> None:
            leaf1.grad = None
            leaf2.grad = None
            sampler.spatial_correlation_sample(leaf1, leaf2, **params).backward(grad_output)

        result["forward_backward_s"] = _repeat(forward_backward, int(case["warmup"]), int(case["repeats"]))
    return result


def _repeat(fn: typing.Callable[[], None], warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -I -s reference_worker.py REQUEST RESULT", file=sys.stderr)
        return 2
    import torch

    request = torch.load(argv[0], weights_only=True)
    sampler = _load_original(request["forbidden_package"])
    if request.get("threads") is not None:
        torch.set_num_threads(int(request["threads"]))
    if request["mode"] == "compute":
        results: list[typing.Any] = [_compute(sampler, case) for case in request["cases"]]
    elif request["mode"] == "time":
        results = [_time(sampler, case) for case in request["cases"]]
    else:
        print(f"reference_worker: unknown mode {request['mode']!r}", file=sys.stderr)
        return 2
    torch.save(
        {
            "module_file": os.path.realpath(sampler.__file__),
            "torch_version": str(torch.__version__),
            "num_threads": torch.get_num_threads(),
            "results": results,
        },
        argv[1],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
