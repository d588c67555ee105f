"""Scale: ``ByteTracker.update`` with thousands of boxes per frame, and reading a large detection file.

Tracker scene (seeded): N pedestrian-shaped boxes (width 15-45 px, height 2-3x the width) at constant velocities
plus noise, in a frame sized so that the boxes cover half its area (a dense crowd: each box overlaps a few others),
scores spread over [0.3, 1] (some go through stage 2), 5 % missed per frame. Measured per N: the median ``update``
time over the frames after a warm-up, the peak memory numpy allocates during one ``update`` (tracemalloc, a
separate pass), and the same for the dense path (``ByteTracker._dense_limit`` raised so every cost is an (N, M)
matrix) as the reference measured in this run. The two paths' outputs are compared frame by frame.

Reader: a MOTChallenge det file of ``--file-mb`` MB is generated under /tmp (not kept), then read with
``read_mot_detections``; reported: time, peak memory (tracemalloc, and the process's peak RSS growth measured in a
child process) and their ratio to the file size; reference: ``np.loadtxt`` of the same file, in the same run.

Usage:
    python benchmarks/bench_scale.py [--counts 2000 10000] [--frames 12] [--dense-max 10000] [--file-mb 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

from trackers import ByteTracker
from trackers.mot_io import read_mot_detections

WARMUP = 3


def crowd(n: int, frames: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per frame: (boxes xyxy (K, 4), scores (K,)) of a dense crowd of n walkers."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(15, 45, n)
    h = w * rng.uniform(2, 3, n)
    side = np.sqrt(2 * float((w * h).sum()) * 16 / 9)  # boxes cover half of a 16:9 frame
    width, height = side, side * 9 / 16
    pos = rng.uniform(0, 1, (n, 2)) * [width, height]
    vel = rng.normal(0, 3, (n, 2))
    scores = rng.uniform(0.3, 1.0, n)
    out = []
    for _ in range(frames):
        pos = pos + vel
        keep = rng.random(n) > 0.05
        x1 = pos[:, 0] + rng.normal(0, 1, n)
        y1 = pos[:, 1] + rng.normal(0, 1, n)
        boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1)[keep]
        out.append((boxes, np.clip(scores[keep] + rng.normal(0, 0.05, int(keep.sum())), 0.05, 1.0)))
    return out


def run_tracker(scene: list[tuple[np.ndarray, np.ndarray]], dense: bool) -> tuple[float, float, list]:
    """(median update seconds after warm-up, peak traced MB of one update, outputs)."""
    tracker = ByteTracker()
    if dense:
        tracker._dense_limit = 1 << 62
    times, outs = [], []
    for boxes, scores in scene:
        t0 = time.perf_counter()
        out = tracker.update(boxes, scores)
        times.append(time.perf_counter() - t0)
        outs.append(out)
    tracker.reset()
    tracemalloc.start()
    peak = 0
    for boxes, scores in scene[: WARMUP + 2]:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        tracker.update(boxes, scores)
        peak = max(peak, tracemalloc.get_traced_memory()[1] - base)
    tracemalloc.stop()
    return float(np.median(times[WARMUP:])), peak / 2**20, outs


def same(a: list, b: list) -> bool:
    return all(
        np.array_equal(x.ids, y.ids)
        and np.array_equal(x.boxes, y.boxes)
        and np.array_equal(x.det_indices, y.det_indices)
        for x, y in zip(a, b, strict=True)
    )


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far (VmHWM on Linux, else ru_maxrss)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_tracker(counts: list[int], frames: int, dense_max: int) -> None:
    print(f"## ByteTracker.update, dense crowd, median over {frames - WARMUP} frames after {WARMUP} warm-up")
    print("peak memory: numpy allocations during one update (tracemalloc); process peak RSS after the sparse run")
    print(
        "| boxes/frame | update (sparse) | peak memory | process RSS | dense reference | dense peak | speed-up | same |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in counts:
        scene = crowd(n, frames)
        t_s, m_s, out_s = run_tracker(scene, dense=False)
        rss = _peak_rss_mb()
        if n <= dense_max:
            t_d, m_d, out_d = run_tracker(scene, dense=True)
            ref = f"{t_d * 1e3:.1f} ms | {m_d:.0f} MB | {t_d / t_s:.1f}x | {same(out_s, out_d)}"
        else:
            ref = "not run | - | - | -"
        print(f"| {n} | {t_s * 1e3:.1f} ms | {m_s:.0f} MB | {rss:.0f} MB | {ref} |", flush=True)


_CHILD = """
import sys, time, numpy as np
from trackers.mot_io import read_mot_detections

def status(key):  # kB -> bytes; VmHWM is this process's own peak (ru_maxrss also counts the parent's at fork)
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise SystemExit("needs Linux /proc")

path, how = sys.argv[1], sys.argv[2]
before = status("VmRSS")
t0 = time.perf_counter()
n = len(read_mot_detections(path)) if how == "ours" else np.loadtxt(path, delimiter=",").shape[0]
t = time.perf_counter() - t0
print(n, t, status("VmHWM") - before)
"""


def bench_reader(file_mb: int) -> None:
    rng = np.random.default_rng(0)
    fd, path = tempfile.mkstemp(suffix=".txt", prefix="bench-det-")
    try:
        with os.fdopen(fd, "w") as fh:
            frame = 1
            while fh.tell() < file_mb * 2**20:
                k = 5000
                xy = rng.uniform(0, 1900, (k, 2))
                wh = rng.uniform(10, 200, (k, 2))
                sc = rng.uniform(0, 1, k)
                fr = frame + np.arange(k) // 50
                frame = int(fr[-1]) + 1
                fh.write(
                    "".join(
                        f"{f},-1,{x:.1f},{y:.1f},{w:.1f},{h:.1f},{s:.4f},-1,-1,-1\n"
                        for f, (x, y), (w, h), s in zip(fr, xy, wh, sc, strict=True)
                    )
                )
        size = os.path.getsize(path)
        print(f"\n## read_mot_detections on a generated {size / 2**20:.0f} MB det file")
        print("| reader | rows | time | peak RSS growth | / file size |")
        print("|---|---|---|---|---|")
        rows = {}
        for how in ("ours", "np.loadtxt"):
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, path, "ours" if how == "ours" else "loadtxt"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            n, t, rss = int(out[0]), float(out[1]), float(out[2])
            rows[how] = t
            print(f"| {how} | {n} | {t:.2f} s | {rss / 2**20:.0f} MB | {rss / size:.2f}x |", flush=True)
        print(f"time ours / np.loadtxt: {rows['ours'] / rows['np.loadtxt']:.2f}")
        tracemalloc.start()
        read_mot_detections(path)
        print(f"tracemalloc peak (ours, in process): {tracemalloc.get_traced_memory()[1] / size:.2f}x the file")
        tracemalloc.stop()
    finally:
        os.unlink(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--counts", type=int, nargs="+", default=[2000, 10000])
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--dense-max", type=int, default=10000, help="largest N also run with the dense reference")
    p.add_argument("--file-mb", type=int, default=200, help="size of the generated det file (0: skip)")
    args = p.parse_args()
    print(f"max RSS at start: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    bench_tracker(args.counts, args.frames, args.dense_max)
    if args.file_mb:
        bench_reader(args.file_mb)


if __name__ == "__main__":
    main()
