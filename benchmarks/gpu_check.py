"""One command for a GPU machine without network: build the original op for CUDA, run the op tests on CUDA, time
ours (Triton path and ATen path) against the original, check CUDA-graph capture, write a markdown report.

Beforehand, on a machine with network, fetch the original's source distribution into a folder and copy it over::

    pip download spatial-correlation-sampler==0.5.0 --no-binary :all: --no-deps -d sdist/
    # if pip fails preparing its metadata (it imports torch), add --no-build-isolation, or fetch the file
    # spatial_correlation_sampler-0.5.0.tar.gz from the registry by hand: only the .tar.gz is needed

Then, from the checkout, with the GPU machine's python (torch with CUDA, Triton, nvcc on PATH)::

    python benchmarks/gpu_check.py --sdist sdist/ --out gpu-out/

Steps (about 5-7 minutes on one H200, 16 cores; each has its own time limit so the whole stays under 8 minutes):

1. build: in the background, ``pip install --no-build-isolation --no-deps --no-index`` of the sdist with
   ``TORCH_CUDA_ARCH_LIST=9.0`` into the site-packages of a small virtual environment under ``--out``
   (``ref-venv``, no pip, a ``.pth`` line pointing at this python's site-packages for torch). It is imported only
   from that environment's python, isolated (``-I``) and from ``/``, so the checkout's compatibility package of the
   same name never shadows it; the reference comparison tests use it through ``MMTRACK_CORR_REFERENCE_PYTHON``.
2. tests: ``python -m pytest -q --device cuda`` on the op's test modules (TF32 off in the ``device`` fixture),
   while the build runs.
3. timing: MM-Tracker's three scales (B1, C512/256/128, patch 9) and FlowNetC B1/B8 (C256 48x64, patch 21,
   dilation_patch 2), float32, forward under ``no_grad`` and forward+backward, median of CUDA-event times per call
   after a warm-up; ours with ``correlation_backend("triton")`` and ``("aten")`` in this process, the original in
   its environment's python. TF32 off everywhere. Also: the Triton path's float32 error against a float64 run of
   the ATen path on the GPU, and its largest difference from the original's output.
4. CUDA graphs: the Triton path's forward and forward+backward captured with ``torch.cuda.graph`` and replayed on
   new inputs, compared with eager calls; replay time reported.

Writes ``gpu_check.md`` (the tables), ``gpu_check.json``, ``build.log`` and ``tests.log`` into ``--out`` and prints
the markdown. Exit status 0 when the tests passed, the original built and the graph checks passed, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mmtrack_corr.correlation import correlation_backend, spatial_correlation_sample  # noqa: E402

CONFIGS: dict[str, tuple[tuple[int, int, int, int], dict[str, int]]] = {
    "mmtracker_1/32": ((1, 512, 19, 34), {"kernel_size": 1, "patch_size": 9}),
    "mmtracker_1/16": ((1, 256, 38, 68), {"kernel_size": 1, "patch_size": 9}),
    "mmtracker_1/8": ((1, 128, 76, 136), {"kernel_size": 1, "patch_size": 9}),
    "flownetc_b1": ((1, 256, 48, 64), {"kernel_size": 1, "patch_size": 21, "dilation_patch": 2}),
    "flownetc_b8": ((8, 256, 48, 64), {"kernel_size": 1, "patch_size": 21, "dilation_patch": 2}),
}
TEST_MODULES = [
    "tests/test_correlation.py",
    "tests/test_correlation_triton.py",
    "tests/test_correlation_batched.py",
    "tests/test_kernel_search.py",
]
REFERENCE_TEST = "tests/test_correlation_reference.py"
BACKENDS = ("triton", "aten", "batched")  # ours, timed each

# Runs in the original's environment (python -I from /): times it on the same configs, prints JSON.
_ORIGINAL_TIMER = r"""
import json, statistics, sys
import torch
import spatial_correlation_sampler as scs
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
configs, warmup, repeats = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def timed(fn):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record(); fn(); end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)

result = {"module_file": scs.__file__, "torch": torch.__version__, "times": {}, "outputs": {}}
for name, (shape, params) in configs.items():
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(shape, generator=g).cuda(); x2 = torch.randn(shape, generator=g).cuda()
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    out = scs.spatial_correlation_sample(x1, x2, **params)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).cuda()
    def fwd():
        with torch.no_grad():
            scs.spatial_correlation_sample(x1, x2, **params)
    def fwd_bwd():
        a.grad = b.grad = None
        scs.spatial_correlation_sample(a, b, **params).backward(grad)
    result["times"][name] = [timed(fwd), timed(fwd_bwd)]
    torch.save(out.cpu(), sys.argv[4] + "/" + name.replace("/", "_") + ".pt")
print(json.dumps(result))
"""


def cuda_median_ms(fn: Callable[[], Any], warmup: int, repeats: int) -> float:
    """Median milliseconds of ``fn`` per call (CUDA events, synchronized around each call)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def start_build(sdist_dir: Path, out: Path) -> tuple[subprocess.Popen[bytes] | None, Path, str]:
    """Starts building the original into ``out/ref-venv`` in the background; returns (process, python, note)."""
    venv = out / "ref-venv"
    python = venv / "bin" / "python"
    sources = sorted(sdist_dir.glob("spatial_correlation_sampler-0.5.0*.tar.gz")) + sorted(
        sdist_dir.glob("spatial-correlation-sampler-0.5.0*.tar.gz")
    )
    if not sources:
        return None, python, f"no spatial_correlation_sampler-0.5.0 .tar.gz in {sdist_dir}"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # torch (and Triton) come from this python's site-packages; .pth files there are not processed, so an
    # editable install of the checkout stays invisible to the reference environment
    torch_site = str(Path(torch.__file__).resolve().parent.parent)
    Path(site, "gpu_check_base.pth").write_text(torch_site + "\n")
    # TORCH_CUDA_ARCH_LIST for torch's extension builder; GPU_ARCH is the sdist's own -gencode switch
    env = {**os.environ, "TORCH_CUDA_ARCH_LIST": "9.0", "GPU_ARCH": "90", "MAX_JOBS": str(os.cpu_count() or 8)}
    env.pop("PYTHONPATH", None)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-build-isolation",
        "--no-deps",
        "--no-index",
        "--target",
        site,
        str(sources[-1]),
    ]
    log = (out / "build.log").open("wb")
    return subprocess.Popen(command, cwd="/", env=env, stdout=log, stderr=subprocess.STDOUT), python, ""


def run_tests(out: Path, timeout_s: float, extra_env: dict[str, str], modules: list[str]) -> tuple[bool, str]:
    env = {**os.environ, **extra_env, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--device", "cuda", *modules]
    try:
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        text = done.stdout + done.stderr
        ok = done.returncode == 0
    except subprocess.TimeoutExpired as error:
        text = f"timed out after {timeout_s:.0f} s\n{error.stdout or ''}"
        ok = False
    with (out / "tests.log").open("a") as log:
        log.write(f"$ {' '.join(command)}\n{text}\n")
    summary = [line for line in text.strip().splitlines() if " passed" in line or " failed" in line or "error" in line]
    return ok, (summary[-1] if summary else text.strip().splitlines()[-1] if text.strip() else "no output")


def time_ours(name: str, warmup: int, repeats: int) -> dict[str, Any]:
    shape, params = CONFIGS[name]
    generator = torch.Generator().manual_seed(0)
    x1 = torch.randn(shape, generator=generator).cuda()
    x2 = torch.randn(shape, generator=generator).cuda()
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    result: dict[str, Any] = {}
    with correlation_backend("aten"):
        grad = torch.randn(spatial_correlation_sample(x1, x2, **params).shape, generator=generator).cuda()
    for backend in BACKENDS:
        with correlation_backend(backend):
            out = spatial_correlation_sample(x1, x2, **params)

            def fwd() -> None:
                with torch.no_grad():
                    spatial_correlation_sample(x1, x2, **params)

            def fwd_bwd() -> None:
                a.grad = b.grad = None
                spatial_correlation_sample(a, b, **params).backward(grad)

            result[backend] = [cuda_median_ms(fwd, warmup, repeats), cuda_median_ms(fwd_bwd, warmup, repeats)]
            result[backend + "_out"] = out
    with correlation_backend("aten"):
        exact = spatial_correlation_sample(x1.double(), x2.double(), **params)
    scale = exact.abs().max().item()
    result["triton_rel_error"] = (result["triton_out"].double() - exact).abs().max().item() / scale
    result["aten_rel_error"] = (result["aten_out"].double() - exact).abs().max().item() / scale
    return result


def check_cuda_graph(warmup: int, repeats: int) -> dict[str, Any]:
    """Captures the Triton path's forward and forward+backward (MM-Tracker 1/8) and replays them on new inputs."""
    shape, params = CONFIGS["mmtracker_1/8"]
    generator = torch.Generator().manual_seed(2)
    static1 = torch.randn(shape, generator=generator).cuda().requires_grad_(True)
    static2 = torch.randn(shape, generator=generator).cuda().requires_grad_(True)
    report: dict[str, Any] = {}
    with correlation_backend("triton"):
        grad = torch.randn((1, 9, 9, 76, 136), generator=generator).cuda()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside capture (compiles the kernels)
            for _ in range(3):
                with torch.no_grad():
                    spatial_correlation_sample(static1, static2, **params)
                torch.autograd.grad(spatial_correlation_sample(static1, static2, **params), (static1, static2), grad)
        torch.cuda.current_stream().wait_stream(side)
        forward_graph, backward_graph = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        with torch.cuda.graph(forward_graph), torch.no_grad():
            static_out = spatial_correlation_sample(static1, static2, **params)
        with torch.cuda.graph(backward_graph):
            out = spatial_correlation_sample(static1, static2, **params)
            static_g1, static_g2 = torch.autograd.grad(out, (static1, static2), grad)
        new1, new2 = torch.randn(shape, generator=generator).cuda(), torch.randn(shape, generator=generator).cuda()
        with torch.no_grad():
            static1.copy_(new1)
            static2.copy_(new2)
        forward_graph.replay()
        backward_graph.replay()
        torch.cuda.synchronize()
        a, b = new1.clone().requires_grad_(True), new2.clone().requires_grad_(True)
        eager = spatial_correlation_sample(a, b, **params)
        g1, g2 = torch.autograd.grad(eager, (a, b), grad)
        report["forward_equal"] = bool(torch.equal(static_out, eager.detach()))
        report["backward_equal"] = bool(torch.equal(static_g1, g1) and torch.equal(static_g2, g2))
        report["replay_ms"] = [
            cuda_median_ms(forward_graph.replay, warmup, repeats),
            cuda_median_ms(backward_graph.replay, warmup, repeats),
        ]
    return report


def render(facts: dict[str, Any], rows: list[dict[str, Any]], graph: dict[str, Any], warmup: int, repeats: int) -> str:
    """The markdown report."""

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    def ratio(num: float | None, den: float | None) -> str:
        return "n/a" if num is None or den is None else f"{num / den:.2f}x"

    lines = [
        f"GPU check on {facts['device']} (torch {facts['torch']}, CUDA {facts['cuda']}, Triton {facts['triton']}); "
        f"float32, TF32 off, median ms per call of {repeats} after {warmup} warm-up (CUDA events).",
        f"Original op 0.5.0: {facts['build']}. Tests (--device cuda): {facts['tests']}."
        + (f" Reference comparison tests: {facts['reference_tests']}." if "reference_tests" in facts else ""),
        "",
        "| config | "
        + " | ".join(f"{b} fwd" for b in BACKENDS)
        + " | original fwd | "
        + " | ".join(f"orig/{b} fwd" for b in BACKENDS)
        + " | "
        + " | ".join(f"{b} f+b" for b in BACKENDS)
        + " | original f+b | "
        + " | ".join(f"orig/{b} f+b" for b in BACKENDS)
        + " | triton rel. err vs fp64 | triton vs original |",
        "|---" * (4 * len(BACKENDS) + 5) + "|",
    ]
    for row in rows:
        orig = row.get("original", [None, None])
        cells = [row["config"]]
        for kind in (0, 1):
            cells += [ms(row[b][kind]) for b in BACKENDS] + [ms(orig[kind])]
            cells += [ratio(orig[kind], row[b][kind]) for b in BACKENDS]
        cells.append(f"{row['triton_rel_error']:.1e}")
        cells.append(f"{row['triton_vs_original_rel']:.1e}" if "triton_vs_original_rel" in row else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"CUDA graph (Triton path, MM-Tracker 1/8): forward replay equals eager: {graph['forward_equal']}, "
        f"forward+backward replay equals eager: {graph['backward_equal']}; replay "
        f"{graph['replay_ms'][0]:.3f} ms forward, {graph['replay_ms'][1]:.3f} ms forward+backward.",
        f"Total time of this check: {facts['seconds']} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sdist", type=Path, required=True, help="folder holding spatial_correlation_sampler-0.5.0.tar.gz"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the report and logs (created)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--build-timeout", type=float, default=300.0)
    parser.add_argument("--test-timeout", type=float, default=240.0)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: CUDA is not available to this torch", file=sys.stderr)
        return 2
    if not args.sdist.is_dir():
        print(f"gpu_check: --sdist: expected a folder, got {args.sdist}", file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "tests.log").write_text("")
    began = time.monotonic()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    import triton

    facts: dict[str, Any] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": triton.__version__,
        "python": platform.python_version(),
    }

    build, ref_python, build_note = start_build(args.sdist.resolve(), out)
    tests_ok, tests_summary = run_tests(out, args.test_timeout, {}, TEST_MODULES)
    built = False
    if build is not None:
        try:
            build.wait(timeout=max(10.0, args.build_timeout - (time.monotonic() - began)))
            built = build.returncode == 0
            build_note = "built" if built else f"pip exited with {build.returncode} (see build.log)"
        except subprocess.TimeoutExpired:
            build.kill()
            build_note = f"build not finished within {args.build_timeout:.0f} s (see build.log)"
    facts["build"] = build_note

    original: dict[str, Any] = {}
    if built:
        configs = json.dumps({name: [list(shape), params] for name, (shape, params) in CONFIGS.items()})
        done = subprocess.run(
            [str(ref_python), "-I", "-c", _ORIGINAL_TIMER, configs, str(args.warmup), str(args.repeats), str(out)],
            cwd="/",
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if done.returncode == 0:
            original = json.loads(done.stdout.strip().splitlines()[-1])
            facts["original_module"] = original["module_file"]
        else:
            facts["original_error"] = done.stderr[-2000:]
        ref_env = {"MMTRACK_CORR_REFERENCE_PYTHON": str(ref_python), "MMTRACK_CORR_REQUIRE_REFERENCE": "1"}
        reference_ok, reference_summary = run_tests(out, 120.0, ref_env, [REFERENCE_TEST])
        facts["reference_tests"] = reference_summary
        tests_ok = tests_ok and reference_ok
    facts["tests"] = tests_summary

    rows = []
    for name in CONFIGS:
        ours = time_ours(name, args.warmup, args.repeats)
        row: dict[str, Any] = {"config": name, **{k: v for k, v in ours.items() if not k.endswith("_out")}}
        if original:
            row["original"] = original["times"][name]
            theirs = torch.load(out / (name.replace("/", "_") + ".pt"), weights_only=True)
            mine = ours["triton_out"].cpu()
            row["triton_vs_original_rel"] = (mine - theirs).abs().max().item() / max(theirs.abs().max().item(), 1e-30)
        rows.append(row)
    graph = check_cuda_graph(args.warmup, args.repeats)
    facts["seconds"] = round(time.monotonic() - began, 1)

    report = render(facts, rows, graph, args.warmup, args.repeats)
    (out / "gpu_check.md").write_text(report)
    (out / "gpu_check.json").write_text(json.dumps({"facts": facts, "rows": rows, "graph": graph}, indent=2))
    print(report)
    graph_ok = graph["forward_equal"] and graph["backward_equal"]
    return 0 if tests_ok and built and graph_ok else 1


if __name__ == "__main__":
    sys.exit(main())
