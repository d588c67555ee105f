"""Per-frame ``update`` time of our trackers, optionally against roboflow's ``trackers`` ByteTrack.

Scenes, each at 10, 50 and 200 boxes per frame (``--counts``):

- ``mot15``: the public detections of the six MOT15 sequences in shared/data/mot15, frame by frame (frames without
  detections skipped, tracker reset per sequence). A frame with fewer boxes than wanted is padded with copies of its
  own boxes shifted right by whole image widths (so the copies form consistent tracks); a frame with more keeps the
  first ones.
- ``crowd``: seeded random walkers (noisy boxes, 10% missed detections, scores spread over [0.05, 1]).

Trackers: ours ``ByteTracker`` and ``MotionTracker`` with a zero-motion source (same association, plus the motion
hook), and roboflow's ``ByteTrackTracker`` (PyPI ``trackers``; import name clashes with ours, so it runs in its own
interpreter, ``--roboflow-python``, from a temporary directory, reading the same detections from an .npz file).

Only the ``update`` call is timed (roboflow's ``sv.Detections`` are built outside the timed region). The first
5 frames of each run are warm-up and not counted.

Usage:
    python benchmarks/bench_tracker.py [--roboflow-python /work/rf-venv/bin/python] [--frames 300]
"""

from __future__ import annotations

import argparse
import configparser
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from trackers import ByteTracker, MotionTracker

WARMUP = 5
DEFAULT_MOT15 = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mot15"

_WORKER = textwrap.dedent(
    """
    import sys, time, warnings
    import numpy as np
    try:
        import supervision as sv
        import trackers
        from trackers import ByteTrackTracker
    except Exception as exc:  # report instead of crashing
        np.savez(sys.argv[2], error=np.array(f"{type(exc).__name__}: {exc}"))
        sys.exit(0)
    data = np.load(sys.argv[1])
    boxes, scores, starts, seq_of_frame = data["boxes"], data["scores"], data["starts"], data["seq_of_frame"]
    fps = data["fps"]
    times = np.zeros(len(starts) - 1)
    tracker = None
    last_seq = -1
    for f in range(len(starts) - 1):
        if seq_of_frame[f] != last_seq:
            last_seq = seq_of_frame[f]
            tracker = ByteTrackTracker(lost_track_buffer=30, frame_rate=float(fps[last_seq]),
                                       track_activation_threshold=0.7, minimum_iou_threshold=0.1,
                                       high_conf_det_threshold=0.6)
        a, b = starts[f], starts[f + 1]
        det = sv.Detections(xyxy=boxes[a:b].astype(np.float32), confidence=scores[a:b].astype(np.float32),
                            class_id=np.zeros(b - a, dtype=int))
        t0 = time.perf_counter()
        tracker.update(det)
        times[f] = time.perf_counter() - t0
    from importlib.metadata import version as _v
    version = _v("trackers")
    np.savez(sys.argv[2], times=times, version=np.array(str(version)), path=np.array(trackers.__file__))
    """
)


def _pad(boxes: np.ndarray, scores: np.ndarray, n: int, width: float) -> tuple[np.ndarray, np.ndarray]:
    if len(boxes) >= n:
        return boxes[:n], scores[:n]
    reps = -(-n // len(boxes))
    shift = np.repeat(np.arange(reps), len(boxes)) * (width + 100.0)
    b = np.tile(boxes, (reps, 1))
    b[:, [0, 2]] += shift[:, None]
    return b[:n], np.tile(scores, reps)[:n]


def mot15_scene(root: Path, n: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[int], list[float]]:
    """Frames (boxes, scores), the sequence index of each frame and each sequence's frame rate."""
    frames, seq_of_frame, fps = [], [], []
    for k, seq in enumerate(sorted(p for p in root.iterdir() if (p / "det" / "det.txt").is_file())):
        info = configparser.ConfigParser()
        info.read(seq / "seqinfo.ini")
        fps.append(float(info["Sequence"]["frameRate"]))
        width = float(info["Sequence"]["imWidth"])
        det = np.loadtxt(seq / "det" / "det.txt", delimiter=",", ndmin=2)
        for fr in np.unique(det[:, 0]):
            d = det[det[:, 0] == fr]
            boxes = d[:, 2:6].copy()
            boxes[:, 2:] += boxes[:, :2]
            frames.append(_pad(boxes, d[:, 6].copy(), n, width))
            seq_of_frame.append(k)
    return frames, seq_of_frame, fps


def crowd_scene(n: int, n_frames: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded random walkers in a 1920x1080 view."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform([0, 0], [1920, 1080], (n, 2))
    vel = rng.normal(0, 3, (n, 2))
    size = rng.uniform([20, 50], [60, 160], (n, 2))
    conf = rng.uniform(0.05, 1.0, n)
    frames = []
    for _ in range(n_frames):
        vel = 0.9 * vel + rng.normal(0, 0.7, (n, 2))
        pos = np.mod(pos + vel, [1920, 1080])
        seen = rng.random(n) > 0.1
        boxes = np.concatenate([pos - size / 2, pos + size / 2], axis=1) + rng.normal(0, 1.5, (n, 4))
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 2)
        scores = np.clip(conf + rng.normal(0, 0.1, n), 0.01, 1.0)
        frames.append((boxes[seen], scores[seen]))
    return frames


def _zero_motion(prev: np.ndarray | None, frame: np.ndarray | None, boxes: np.ndarray) -> np.ndarray:
    return np.zeros((len(boxes), 2))


def time_ours(kind: str, frames: list, seq_of_frame: list[int], fps: list[float]) -> np.ndarray:
    times = np.zeros(len(frames))
    tracker: ByteTracker | None = None
    last = -1
    for f, (boxes, scores) in enumerate(frames):
        if seq_of_frame[f] != last:
            last = seq_of_frame[f]
            rate = fps[last]
            tracker = ByteTracker(frame_rate=rate) if kind == "byte" else MotionTracker(_zero_motion, frame_rate=rate)
        assert tracker is not None
        t0 = time.perf_counter()
        tracker.update(boxes, scores)
        times[f] = time.perf_counter() - t0
    return times


def time_roboflow(
    python: str, frames: list, seq_of_frame: list[int], fps: list[float]
) -> tuple[np.ndarray | None, str]:
    with tempfile.TemporaryDirectory(prefix="bench_rf_") as tmp:
        worker = Path(tmp) / "rf_worker.py"
        worker.write_text(_WORKER)
        starts = np.cumsum([0] + [len(b) for b, _ in frames])
        np.savez(
            Path(tmp) / "in.npz",
            boxes=np.concatenate([b for b, _ in frames]) if frames else np.zeros((0, 4)),
            scores=np.concatenate([s for _, s in frames]) if frames else np.zeros(0),
            starts=starts,
            seq_of_frame=np.asarray(seq_of_frame),
            fps=np.asarray(fps),
        )
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        proc = subprocess.run(
            [python, str(worker), "in.npz", "out.npz"], cwd=tmp, env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0 or not (Path(tmp) / "out.npz").is_file():
            return None, f"worker failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}"
        out = np.load(Path(tmp) / "out.npz")
        if "error" in out:
            return None, f"roboflow trackers unavailable ({out['error']})"
        return out["times"], f"roboflow trackers {out['version']} ({out['path']})"


def _stats(times: np.ndarray) -> tuple[float, float]:
    t = times[WARMUP:] * 1e3
    return float(np.median(t)), float(np.percentile(t, 90))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roboflow-python", default=None, help="interpreter of a venv with PyPI 'trackers' installed")
    parser.add_argument("--frames", type=int, default=300, help="frames of the synthetic crowd")
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--mot15", type=Path, default=DEFAULT_MOT15)
    args = parser.parse_args(argv)

    scenes = []
    for n in args.counts:
        if args.mot15.is_dir():
            frames, seq, fps = mot15_scene(args.mot15, n)
            scenes.append(("mot15", n, frames, seq, fps))
        scenes.append(("crowd", n, crowd_scene(n, args.frames, seed=n), [0] * args.frames, [30.0]))
    if not args.mot15.is_dir():
        print(f"note: {args.mot15} not found, MOT15 scenes skipped")

    rf_note = "roboflow: not run (no --roboflow-python)"
    rows = []
    for name, n, frames, seq, fps in scenes:
        byte = _stats(time_ours("byte", frames, seq, fps))
        motion = _stats(time_ours("motion", frames, seq, fps))
        rf = None
        if args.roboflow_python:
            rf_times, rf_note = time_roboflow(args.roboflow_python, frames, seq, fps)
            rf = None if rf_times is None else _stats(rf_times)
        rows.append((name, n, len(frames), byte, motion, rf))

    print(f"python {sys.version.split()[0]}, numpy {np.__version__}; {rf_note}")
    print("per-frame update time in ms, median / p90 (first 5 frames of each run excluded)")
    header = (
        "| scene | boxes | frames | ByteTracker | MotionTracker (zero motion) | roboflow ByteTrack | roboflow / ours |"
    )
    print(header)
    print("|" + "---|" * 7)
    for name, n, nf, byte, motion, rf in rows:
        rf_txt = "n/a" if rf is None else f"{rf[0]:.3f} / {rf[1]:.3f}"
        ratio = "n/a" if rf is None else f"{rf[0] / byte[0]:.1f}x"
        print(
            f"| {name} | {n} | {nf} | {byte[0]:.3f} / {byte[1]:.3f} | {motion[0]:.3f} / {motion[1]:.3f} "
            f"| {rf_txt} | {ratio} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
