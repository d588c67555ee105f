"""Camera-motion benchmark: Kalman (ByteTrack) vs camera-motion compensation vs learned motion, by camera speed.

Data: ``--seeds`` generated sequences per camera speed level (``slow``, ``medium``, ``fast``; see
:mod:`mmtrack_corr.synthetic_sequence`), rendered from the *held-out* photographs (never seen in training), written
as MOTChallenge folders (``img1/``, ``gt/gt.txt``, ``det/det.txt`` simulated detections, ``seqinfo.ini``) under
``--data`` and reused when present. Sequence ``SYN-<speed>-<seed>`` comes from ``np.random.default_rng([seed, L])``
with ``L`` the level's index, so every level and seed is reproducible.

Tracking and scoring: ``mmtrack-eval`` (its ``main``) runs each tracker over all sequences - ``bytetrack`` (Kalman),
``gmc`` (Kalman + sparse camera-motion compensation) and ``motion`` (learned motion, the shipped weights or
``--motion-weights``) - with its defaults (official ByteTrack thresholds and caller-side box filter); then
:func:`trackers.evaluate_mot_challenge` (TrackEval) scores each speed level's sequences together. The script prints
HOTA, MOTA, IDF1 and IDSW per level and overall, and the IDF1 difference to Kalman, and writes a plot of IDF1 versus
camera speed (``--plot``, needs matplotlib).

Demo: two or three frames of ``mmtrack-demo`` output on a fast sequence (``--pictures``; small PNGs), and the demo's
per-stage time per frame at the sequences' size (544x960: decode, detect, motion, track, draw, encode) and
end-to-end FPS for each motion, with FPS ratios against Kalman measured in the same run (``--timing-frames``).

Usage (one command once the learned weights are present; without them ``motion`` is skipped and said so)::

    python benchmarks/bench_camera_motion.py [--seeds 3] [--frames 150] [--trackers bytetrack gmc motion]
        [--motion-weights PATH] [--motion-uncertainty PX] [--device cpu] [--data out/bench_camera_motion/data]
        [--workers 2]
        [--plot docs/images/camera_motion_idf1.png] [--pictures docs/images] [--timing-frames 150] [--reuse]

``--reuse`` takes the ``bytetrack`` and ``gmc`` results of an earlier run with the same settings from
``OUT/results.json`` (the learned tracker always runs).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from mmtrack_demo import (
    DetectionTable,
    FolderSource,
    Pipeline,
    TrackPainter,
    build_motion,
    build_tracker,
    flow_to_color,
)
from mmtrack_demo.cli import track_to_files
from mmtrack_demo.motion import LEARNED_MAX_SIDE, learned_available

from mmtrack_corr.synth_cli import write_sequence
from mmtrack_corr.synthetic import SPEED_LEVELS, camera_speed, make_sequence
from trackers import evaluate_mot_challenge
from trackers.cli import main as eval_main

TRACKER_LABELS = {"bytetrack": "Kalman (ByteTrack)", "gmc": "GMC (Kalman + camera motion)", "motion": "learned"}
DEMO_MOTION = {"bytetrack": "kalman", "gmc": "gmc", "motion": "learned"}
METRICS = ("HOTA", "MOTA", "IDF1", "IDSW")
ROOT = Path(__file__).resolve().parent.parent


def _generate(data: Path, speeds: list[str], seeds: int, frames: int, photos: str = "heldout") -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for level, speed in enumerate(SPEED_LEVELS):
        if speed not in speeds:
            continue
        names[speed] = []
        for seed in range(seeds):
            name = f"SYN-{speed}-{seed}"
            names[speed].append(name)
            folder = data / name
            if (folder / "seqinfo.ini").is_file() and len(list((folder / "img1").glob("*.jpg"))) == frames:
                continue
            t0 = time.perf_counter()
            # training photographs get other seeds, so the two sets share no sequence layout either
            rng = np.random.default_rng([seed, level] if photos == "heldout" else [seed, level, 1])
            seq = make_sequence(rng, frames, speed=speed, photos=photos)
            if folder.exists():
                raise SystemExit(f"{folder}: exists with a different length; remove it or pass another --data")
            write_sequence(seq, folder)
            print(f"generated {folder} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return names


def learned_source() -> Any:
    """``mmtrack-eval --motion-source`` factory: the learned estimator with this run's weights, device, max side.

    Read from the environment (set by :func:`_track`, inherited by mmtrack-eval's worker processes).
    """
    from mmtrack_corr.estimator import MotionEstimator
    from mmtrack_corr.runtime import keep_freed_memory

    keep_freed_memory()  # as mmtrack-eval's own learned source does
    max_side = os.environ.get("BENCH_MOTION_MAX_SIDE")
    uncertainty = os.environ.get("BENCH_MOTION_UNCERTAINTY")
    snap = os.environ.get("BENCH_MOTION_CAMERA_SNAP")
    refine = os.environ.get("BENCH_MOTION_REFINE")
    box_refine = os.environ.get("BENCH_MOTION_BOX_REFINE")
    fallback = os.environ.get("BENCH_MOTION_CAMERA_FALLBACK")
    return MotionEstimator.from_pretrained(
        os.environ.get("BENCH_MOTION_WEIGHTS") or "default",
        device=os.environ.get("BENCH_DEVICE", "cpu"),
        max_side=int(max_side) if max_side else LEARNED_MAX_SIDE,
        uncertainty_thresh=float(uncertainty) if uncertainty else None,
        camera_snap=(float(snap) or None) if snap else None,  # "" = the estimator's default (off), 0 = off
        **({"refine": int(refine)} if refine else {}),  # "" = the estimator's default
        **({"box_refine": box_refine == "1"} if box_refine else {}),  # "" = the estimator's default
        **({"camera_fallback": fallback == "1"} if fallback else {}),  # "" = the estimator's default
    )


def _track(data: Path, out: Path, tracker: str, args: argparse.Namespace, sequences: list[str]) -> float:
    # only this run's sequences: the data folder may hold more (other --seeds / --speeds of earlier runs)
    argv = [str(data), "--tracker", tracker, "--output", str(out / tracker), "--workers", str(args.workers)]
    argv += ["--sequences", *sequences]
    if tracker == "motion":
        os.environ["BENCH_MOTION_WEIGHTS"] = args.motion_weights or ""
        os.environ["BENCH_MOTION_MAX_SIDE"] = str(args.motion_max_side or "")
        os.environ["BENCH_MOTION_UNCERTAINTY"] = str(args.motion_uncertainty or "")
        os.environ["BENCH_MOTION_CAMERA_SNAP"] = "" if args.motion_camera_snap is None else str(args.motion_camera_snap)
        os.environ["BENCH_MOTION_REFINE"] = "" if args.motion_refine is None else str(args.motion_refine)
        os.environ["BENCH_MOTION_BOX_REFINE"] = "" if args.motion_box_refine is None else str(args.motion_box_refine)
        fallback = args.motion_camera_fallback
        os.environ["BENCH_MOTION_CAMERA_FALLBACK"] = "" if fallback is None else str(fallback)
        os.environ["BENCH_DEVICE"] = args.device
        here = str(Path(__file__).resolve().parent)
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
        if here not in sys.path:
            sys.path.insert(0, here)
        argv += ["--motion-source", "bench_camera_motion:learned_source"]
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # its own per-sequence table; ours is printed below
        rc = eval_main(argv)
    if rc != 0:
        raise SystemExit(f"mmtrack-eval {' '.join(argv)} failed with exit status {rc}")
    return time.perf_counter() - t0


def _table(results: dict[str, dict[str, dict[str, float]]], trackers: list[str], levels: list[str]) -> str:
    lines = []
    head = f"{'speed':<8}{'tracker':<30}" + "".join(f"{m:>8}" for m in METRICS) + f"{'dIDF1':>8}"
    lines.append(head)
    for level in levels:
        base = results["bytetrack"][level]["IDF1"] if "bytetrack" in results else float("nan")
        for t in trackers:
            m = results[t][level]
            cells = "".join(f"{m[k]:8.2f}" if k != "IDSW" else f"{int(m[k]):8d}" for k in METRICS)
            lines.append(f"{level:<8}{TRACKER_LABELS[t]:<30}{cells}{m['IDF1'] - base:+8.2f}")
    return "\n".join(lines)


def _plot(results: dict[str, dict[str, dict[str, float]]], trackers: list[str], speeds: list[str], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no plot written to {path}", file=sys.stderr)
        return
    x = [100 * camera_speed(s).translation for s in speeds]
    fig, ax = plt.subplots(figsize=(5.0, 3.2), dpi=100)
    for t, marker in zip(trackers, "osD", strict=False):
        ax.plot(x, [results[t][s]["IDF1"] for s in speeds], marker=marker, label=TRACKER_LABELS[t])
    ax.set_xticks(x, [f"{s}\n{v:g}%" for s, v in zip(speeds, x, strict=True)])
    ax.set_xlabel("camera speed (largest translation per frame, % of the width)", fontsize=8)
    ax.set_ylabel("IDF1")
    ax.set_title("IDF1 vs camera speed (held-out synthetic sequences)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    print(f"plot: {path}", file=sys.stderr)


def _save_small_png(image: np.ndarray, path: Path, width: int = 480) -> None:
    h, w = image.shape[:2]
    small = cv2.resize(image, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
    try:  # a 256-colour palette keeps each picture around 100 KB
        from PIL import Image

        Image.fromarray(small[..., ::-1]).quantize(256).save(path, optimize=True)
    except ImportError:
        cv2.imwrite(str(path), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def _setup(motion: str, args: argparse.Namespace) -> Any:
    if motion != "learned":
        return build_motion(motion)
    return build_motion(motion, weights=args.motion_weights, device=args.device, max_side=args.motion_max_side)


def _pictures(folder: Path, motion: str, args: argparse.Namespace, out_dir: Path) -> list[Path]:
    """Three demo frames, the busiest of each third of the sequence; the last with the dense-motion overlay."""
    setup = _setup(motion, args)
    source = FolderSource(folder / "img1", fps=30.0)
    pipe = Pipeline(DetectionTable.from_mot_file(folder / "det" / "det.txt"), setup.source,
                    build_tracker(setup, frame_rate=30.0))  # fmt: skip
    painter = TrackPainter()
    n = len(source.files)
    best: list[tuple[int, np.ndarray, np.ndarray | None, np.ndarray]] = []
    prev: np.ndarray | None = None
    for r in pipe.run(source):
        img = painter.draw(r.image, r.tracks.boxes, r.tracks.ids, r.motion, None, f"{motion}  frame {r.frame}")
        third = min(2, 3 * (r.frame - 1) // n)
        if len(best) <= third:
            best.append((-1, img, None, r.image))
        if len(r.tracks) > best[third][0] and prev is not None:
            best[third] = (len(r.tracks), img, prev, r.image)
        prev = r.image
    paths: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for k, (_, img, before, image) in enumerate(best):
        if k == len(best) - 1 and setup.dense is not None and before is not None:
            color = flow_to_color(setup.dense(before, image))
            color = cv2.resize(color, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
            img = cv2.addWeighted(img, 0.6, color, 0.4, 0.0)
        path = out_dir / f"demo_{k + 1}.png"
        _save_small_png(img, path)
        paths.append(path)
    return paths


def _timing(folder: Path, motions: list[str], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for motion in motions:
            setup = _setup(motion, args)
            source = FolderSource(folder / "img1", fps=30.0)
            pipe = Pipeline(DetectionTable.from_mot_file(folder / "det" / "det.txt"), setup.source,
                            build_tracker(setup, frame_rate=30.0))  # fmt: skip
            out[motion] = track_to_files(
                pipe, source, Path(tmp) / f"{motion}.mp4", Path(tmp) / f"{motion}.txt",
                max_frames=args.timing_frames, progress=False,
            )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3, help="sequences per speed level (3)")
    p.add_argument("--frames", type=int, default=150, help="frames per sequence (150)")
    p.add_argument("--speeds", nargs="+", choices=SPEED_LEVELS, default=list(SPEED_LEVELS))
    p.add_argument("--trackers", nargs="+", choices=tuple(TRACKER_LABELS), default=list(TRACKER_LABELS))
    p.add_argument("--motion-weights", default=None, help="learned-motion weights (default: the shipped ones)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--motion-uncertainty", type=float, default=None, metavar="PX",
                   help="learned motion: Kalman fallback for boxes whose predicted uncertainty exceeds PX")  # fmt: skip
    p.add_argument("--motion-camera-snap", type=float, default=None, metavar="PX",
                   help="learned motion: MotionEstimator camera_snap (0 = off; default: the estimator's)")  # fmt: skip
    p.add_argument("--motion-refine", type=int, default=None, metavar="STEPS",
                   help="learned motion: MotionEstimator refine, Lucas-Kanade steps (0 = off; default: the "
                   "estimator's)")  # fmt: skip
    p.add_argument("--motion-box-refine", type=int, choices=(0, 1), default=None,
                   help="learned motion: MotionEstimator box_refine (1 = on, 0 = off; default: the "
                   "estimator's)")  # fmt: skip
    p.add_argument("--motion-camera-fallback", type=int, choices=(0, 1), default=None,
                   help="learned motion: MotionEstimator camera_fallback (1 = on, 0 = off; default: the "
                   "estimator's)")  # fmt: skip
    p.add_argument("--motion-max-side", type=int, default=LEARNED_MAX_SIDE,
                   help=f"learned motion: working-size longer side ({LEARNED_MAX_SIDE}, as the demo)")  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="mmtrack-eval worker processes (2)")
    p.add_argument("--data", type=Path, default=ROOT / "out" / "bench_camera_motion" / "data")
    p.add_argument("--photos", choices=("heldout", "train"), default="heldout",
                   help="photographs of the sequences: heldout (every reported figure) or train (for choosing "
                   "settings such as --motion-uncertainty; use another --data folder)")  # fmt: skip
    p.add_argument("--out", type=Path, default=ROOT / "out" / "bench_camera_motion")
    p.add_argument("--plot", type=Path, default=ROOT / "docs" / "images" / "camera_motion_idf1.png")
    p.add_argument("--pictures", type=Path, default=ROOT / "docs" / "images", help="folder for demo_*.png")
    p.add_argument("--no-pictures", action="store_true")
    p.add_argument("--reuse", action="store_true", help="reuse the Kalman and GMC results of an earlier run")
    p.add_argument("--timing-frames", type=int, default=150, help="frames timed per motion (0: no timing)")
    args = p.parse_args(argv)

    trackers = list(args.trackers)
    if "motion" in trackers and args.motion_weights is None and not learned_available():
        print("learned motion: no shipped weights in this install and no --motion-weights: 'motion' skipped",
              file=sys.stderr)  # fmt: skip
        trackers.remove("motion")
    speeds = [s for s in SPEED_LEVELS if s in args.speeds]
    names = _generate(args.data, speeds, args.seeds, args.frames, args.photos)

    results: dict[str, dict[str, dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    record = args.out / "results.json"
    settings = {"seeds": args.seeds, "frames": args.frames, "speeds": speeds}  # of the Kalman / GMC runs
    old = json.loads(record.read_text()) if args.reuse and record.is_file() else {}
    for t in trackers:
        if old.get("settings") == settings and t in old.get("results", {}) and t != "motion":
            results[t], seconds[t] = old["results"][t], old["seconds"][t]
            print(f"{t}: results reused from {record}", file=sys.stderr)
            continue
        seconds[t] = _track(args.data, args.out, t, args, [n for s in speeds for n in names[s]])
        results[t] = {}
        for s in speeds:
            res = evaluate_mot_challenge(args.data, args.out / t, sequences=names[s])
            results[t][s] = {k: float(res.combined[k]) for k in METRICS}
        every = [n for s in speeds for n in names[s]]
        res = evaluate_mot_challenge(args.data, args.out / t, sequences=every)
        results[t]["all"] = {k: float(res.combined[k]) for k in METRICS}

    frames = args.frames * args.seeds
    photos = "held-out" if args.photos == "heldout" else "TRAINING-photo"
    print(f"\n## Camera-motion benchmark: {args.seeds} {photos} sequences x {args.frames} frames per speed, 544x960")
    if "motion" in trackers:
        snap = "default" if args.motion_camera_snap is None else args.motion_camera_snap or "off"
        refine = "default" if args.motion_refine is None else args.motion_refine or "off"
        switch = {None: "default", 0: "off", 1: "on"}
        box, fallback = switch[args.motion_box_refine], switch[args.motion_camera_fallback]
        print(f"learned motion: weights {args.motion_weights or 'shipped default'}, working-size longer side "
              f"{args.motion_max_side}, uncertainty threshold {args.motion_uncertainty or 'none'}, "
              f"camera snap {snap}, refine {refine}, box refine {box}, camera fallback {fallback}")  # fmt: skip
    print(_table(results, trackers, [*speeds, "all"]))
    print("\ntracking time (mmtrack-eval, all levels): " + ", ".join(
        f"{TRACKER_LABELS[t]} {seconds[t]:.1f} s ({frames * len(speeds) / seconds[t]:.1f} frames/s)" for t in trackers
    ))  # fmt: skip
    _plot(results, trackers, speeds, args.plot)
    record.write_text(json.dumps({"settings": settings, "results": results, "seconds": seconds}, indent=2) + "\n")

    fast = args.data / names[speeds[-1]][0]
    motions = [DEMO_MOTION[t] for t in trackers]
    if not args.no_pictures:
        paths = _pictures(fast, motions[-1], args, args.pictures)
        print("demo pictures: " + ", ".join(str(q) for q in paths), file=sys.stderr)
    if args.timing_frames > 0:
        timing = _timing(fast, motions, args)
        stages = ("decode", "detect", "motion", "track", "draw", "encode")
        print(f"\n## mmtrack-demo time per frame (ms), {fast.name}, 544x960, {args.timing_frames} frames, this CPU")
        print(f"{'motion':<10}" + "".join(f"{s:>9}" for s in stages) + f"{'total':>9}{'FPS':>8}{'vs kalman':>11}")
        ref = timing.get("kalman", {}).get("fps")
        for m, run in timing.items():
            ms = run["time_ms_per_frame"]
            ratio = f"{run['fps'] / ref:10.2f}x" if ref else f"{'-':>11}"
            print(f"{m:<10}" + "".join(f"{ms[s]:9.1f}" for s in stages) + f"{sum(ms.values()):9.1f}"
                  f"{run['fps']:8.1f}{ratio}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
