"""``mmtrack-demo``: track a video file (or a folder of frames) end to end.

Usage::

    mmtrack-demo [VIDEO] [--output OUT.mp4] [--detector hog|mog2|det:PATH|module:function|ultralytics:PATH.pt|
                 torchvision:NAME] [--weights PATH] [--motion learned|kalman|gmc] [--motion-weights PATH]
                 [--device cpu] [--overlay] [--max-frames N] [--fps F] [--json PATH] [--no-progress]
                 [--frames N] [--seed S] [--speed fast]

Writes the annotated video (``OUT``; ``.mp4`` mp4v, ``.avi`` MJPG, ``.mkv``/``.webm`` VP8, the last two readable up
to the last frame even if the process is killed), a MOTChallenge result file next to it (``OUT`` with ``.txt``),
and a JSON summary (``OUT`` with ``.json``: frames, tracks, seconds and FPS of each stage, where it stopped).

Without VIDEO it runs on a built-in sequence made by the project's generator (held-out photographs, camera motion,
ground truth, simulated detections) and prints HOTA / MOTA / IDF1 against the ground truth for the chosen motion
and for Kalman side by side.

Exit status: 0 done; 2 user error (one line on stderr), before any work where it can be known then; 130 / 143
interrupted by Ctrl-C / SIGTERM (outputs are valid up to the last frame done); 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import numpy as np

from .detectors import DETECTOR_HELP, build_detector
from .drawing import TrackPainter
from .motion import (
    LEARNED_BOX_REFINE,
    LEARNED_CAMERA_FALLBACK,
    LEARNED_REFINE,
    MOTIONS,
    MotionSetup,
    build_motion,
    build_tracker,
    default_motion,
)
from .pipeline import STAGES, Pipeline, StageTimer
from .video import VIDEO_CODECS, FrameSource, SourceError, VideoSink, open_source

__all__ = ["main", "track_to_files"]

PROG = "mmtrack-demo"


class UserError(Exception):
    """A problem with the command line or the input: one line on stderr, exit status 2."""


class _Terminated(Exception):
    """Raised in the main thread by the SIGTERM handler."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UserError(message)


def _build_motion(name: str, args: argparse.Namespace) -> MotionSetup:
    """The motion setup from the command line's --motion-* options."""
    return build_motion(
        name,
        weights=args.motion_weights,
        device=args.device,
        max_side=args.motion_max_side,
        refine=args.motion_refine,
        box_refine=args.motion_box_refine,
        camera_fallback=args.motion_camera_fallback,
    )


def _int_parser(minimum: int, wording: str) -> Callable[[str], int]:
    """An argparse ``type`` for integers >= ``minimum`` (the message says ``wording``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {wording}, got {text!r}")
        return value

    return parse


_positive_int = _int_parser(1, "a positive integer")
_non_negative_int = _int_parser(0, "an integer >= 0")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Detect, estimate motion and track a video; write an annotated video.")
    p.add_argument("video", metavar="VIDEO", nargs="?", default=None, help="video file or folder of frames "
                   "(default: a built-in generated sequence with camera motion and ground truth)")  # fmt: skip
    p.add_argument("--output", "-o", metavar="OUT", default=None,
                   help=f"annotated video ({', '.join(VIDEO_CODECS)}; default out/demo/<name>.mp4)")  # fmt: skip
    p.add_argument("--detector", default=None, help=f"{DETECTOR_HELP}. Default: hog for a video (people, weights "
                   "built into OpenCV); the generator's simulated detections for the built-in")  # fmt: skip
    p.add_argument("--weights", metavar="PATH", default=None, help="local weights file for --detector torchvision:NAME")
    p.add_argument("--motion", choices=MOTIONS, default=None,
                   help="motion model (default: learned, shipped weights; gmc where they are missing)")  # fmt: skip
    p.add_argument("--motion-weights", metavar="PATH", default=None, help="weights for --motion learned")
    p.add_argument("--motion-max-side", type=_positive_int, default=None, metavar="PIXELS",
                   help="--motion learned: longer side of the network's working size (640)")  # fmt: skip
    p.add_argument("--motion-refine", type=_non_negative_int, default=None, metavar="STEPS",
                   help="--motion learned: Lucas-Kanade steps refining the learned motion on the frames "
                   f"({LEARNED_REFINE}; 0 = off)")  # fmt: skip
    p.add_argument("--motion-box-refine", action=argparse.BooleanOptionalAction, default=None,
                   help="--motion learned: fit each box's motion to the frames after reading it from the learned "
                   f"field ({'on' if LEARNED_BOX_REFINE else 'off'})")  # fmt: skip
    p.add_argument("--motion-camera-fallback", action=argparse.BooleanOptionalAction, default=None,
                   help="--motion learned: along the directions the frames cannot pin (a flat box, a single edge) a "
                   f"box takes the camera's motion ({'on' if LEARNED_CAMERA_FALLBACK else 'off'})")  # fmt: skip
    p.add_argument("--device", default="cpu", help="torch device for learned motion / torch detectors (cpu)")
    p.add_argument("--overlay", action="store_true", help="draw the dense motion as a colour overlay")
    p.add_argument("--max-frames", type=_positive_int, default=None, help="stop after N frames")
    p.add_argument("--fps", type=_positive_float, default=None, help="frame rate of a folder of frames (30)")
    p.add_argument("--json", metavar="PATH", default=None, help="summary JSON (default: OUT with .json)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("built-in sequence (no VIDEO)")
    g.add_argument("--frames", type=_positive_int, default=150, help="frames to generate (150)")
    g.add_argument("--seed", type=int, default=0, help="generator seed (0)")
    g.add_argument("--speed", choices=("slow", "medium", "fast"), default="fast", help="camera speed (fast)")
    return p


def _check_output(path: Path) -> None:
    """Exit-2 problems with the output, found before any work."""
    if path.suffix.lower() not in VIDEO_CODECS:
        raise UserError(f"--output: expected a file ending in {', '.join(VIDEO_CODECS)}, got {str(path)!r}")
    if path.is_dir():
        raise UserError(f"--output: {path} is a folder; expected a video file name")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".mmtrack-demo-", delete=True):
            pass
    except OSError as err:
        raise UserError(f"--output: cannot write to folder {folder} ({err.strerror or err})") from None


def _install_sigterm() -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave SIGTERM alone
        return None


def _progress(total: int | None, disable: bool, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", file=sys.stderr, disable=True if disable else None, desc=desc,
                dynamic_ncols=True)  # fmt: skip


def track_to_files(
    pipeline: Pipeline,
    source: FrameSource,
    video_path: Path | None,
    result_path: Path,
    *,
    max_frames: int | None = None,
    overlay: bool = False,
    caption: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``pipeline`` over ``source``; write the annotated video and the MOTChallenge result file.

    Both files are closed on every exit path (end, broken input, Ctrl-C, SIGTERM, error), so each is valid up to
    the last frame done. An interruption is not re-raised: it is reported in the returned summary (``stopped``).

    Args:
        pipeline: the pipeline to run.
        source: frames.
        video_path: annotated video (None: no video, nothing drawn).
        result_path: MOTChallenge result file (``frame,id,x,y,w,h,score,-1,-1,-1``).
        max_frames: stop after this many frames.
        overlay: draw the pipeline's dense motion field.
        caption: text in the corner of every frame (the frame number and FPS are appended).
        progress: show a tqdm bar with FPS on stderr.

    Returns:
        Summary dict: ``frames``, ``tracks`` (distinct ids), ``detections``, ``stopped`` (None or the reason),
        ``interrupted`` (None, ``"SIGINT"`` or ``"SIGTERM"``), ``time_ms_per_frame`` per stage, ``fps``.
    """
    from trackers import ResultWriter

    timer = StageTimer()
    painter = TrackPainter()
    sink = VideoSink(video_path, fps=source.fps) if video_path is not None else None
    ids: set[int] = set()
    n_dets = 0
    interrupted: str | None = None
    total = source.length if max_frames is None else min(max_frames, source.length or max_frames)
    bar = _progress(total, not progress, source.name)
    writer = ResultWriter(result_path, decimals=2)
    try:
        results: Iterator[Any] = pipeline.run(source, max_frames=max_frames)
        for r in results:
            times = dict(r.times)
            if sink is not None:
                t0 = time.perf_counter()
                fps_now = timer.fps()
                text = f"{caption}  frame {r.frame}" + (f"  {fps_now:.1f} FPS" if timer.frames else "")
                img = painter.draw(r.image, r.tracks.boxes, r.tracks.ids, r.motion, r.flow if overlay else None, text)
                t1 = time.perf_counter()
                sink.write(img)
                times["draw"] = t1 - t0
                times["encode"] = time.perf_counter() - t1
            tlwh = r.tracks.boxes.copy()
            tlwh[:, 2:] -= tlwh[:, :2]
            writer.write_frame(r.frame, tlwh, r.tracks.ids, r.tracks.scores)
            timer.add(times)
            ids.update(int(i) for i in r.tracks.ids)
            n_dets += len(r.detections)
            bar.update(1)
            bar.set_postfix_str(f"{timer.fps():.1f} FPS, {len(r.tracks)} tracks", refresh=False)
    except KeyboardInterrupt:
        interrupted = "SIGINT"
    except _Terminated:
        interrupted = "SIGTERM"
    finally:
        bar.close()
        writer.close()
        if sink is not None:
            sink.close()
        source.close()
    stopped = source.stop_reason
    if interrupted:
        stopped = f"interrupted by {interrupted} after frame {timer.frames}"
    return {
        "frames": timer.frames,
        "tracks": len(ids),
        "detections": n_dets,
        "stopped": stopped,
        "interrupted": interrupted,
        "time_ms_per_frame": {k: round(v, 3) for k, v in timer.per_frame_ms().items()},
        "time_s": {k: round(v, 4) for k, v in timer.seconds.items()},
        "fps": round(timer.fps(), 3),
    }


def _stage_table(summary: dict[str, Any]) -> str:
    ms = summary["time_ms_per_frame"]
    head = "".join(f"{s:>9}" for s in (*STAGES, "total"))
    row = "".join(f"{ms.get(s, 0.0):9.1f}" for s in STAGES) + f"{sum(ms.values()):9.1f}"
    return f"ms/frame{head}\n        {row}"


def _print_summary(summary: dict[str, Any], outputs: dict[str, str]) -> None:
    lines = [
        f"{PROG}: {summary['source']} ({summary['size'][0]}x{summary['size'][1]}, {summary['source_fps']:.1f} fps)",
        f"  detector {summary['detector']}, motion {summary['motion']}",
        f"  {summary['frames']} frames, {summary['detections']} detections, {summary['tracks']} track ids, "
        f"{summary['fps']:.1f} FPS end to end",
    ]
    if summary.get("stopped"):
        lines.append(f"  stopped early: {summary['stopped']}")
    lines.append(_stage_table(summary))
    for what, path in outputs.items():
        lines.append(f"  {what:<8} {path}")
    print("\n".join(lines))


def _exit_code(run: dict[str, Any]) -> int:
    return {"SIGINT": 130, "SIGTERM": 143}.get(run["interrupted"] or "", 0)


def _metrics_table(metrics: dict[str, dict[str, float | int]]) -> str:
    from .builtin import HEADLINE

    width = max(len(k) for k in metrics) + 2
    lines = ["motion".ljust(width) + "".join(f"{m:>8}" for m in HEADLINE)]
    for label, m in metrics.items():
        cells = "".join(f"{m[c]:8.2f}" if isinstance(m[c], float) else f"{m[c]:8d}" for c in HEADLINE)
        lines.append(label.ljust(width) + cells)
    return "\n".join(lines)


def _run_builtin(args: argparse.Namespace, motion_name: str) -> int:
    """No VIDEO: generate a held-out sequence, track it, and score the chosen motion and Kalman against its gt."""
    from trackers import ByteTracker

    from .builtin import evaluate_results, make_builtin_sequence
    from .video import FolderSource

    out = Path(args.output) if args.output else Path("out") / "demo" / f"builtin-{args.speed}-{args.seed}.mp4"
    _check_output(out)
    setup = _build_motion(motion_name, args)
    if args.overlay and setup.dense is None:
        raise UserError(f"--overlay: --motion {motion_name} has no dense motion field to draw")
    result_path = out.with_suffix(".txt")
    json_path = Path(args.json) if args.json else out.with_suffix(".json")
    with tempfile.TemporaryDirectory(prefix="mmtrack-demo-") as tmp:
        if not args.no_progress:
            print(f"{PROG}: generating {args.frames} frames ({args.speed} camera, held-out photographs)...",
                  file=sys.stderr)  # fmt: skip
        t0 = time.perf_counter()
        try:
            seq = make_builtin_sequence(Path(tmp), frames=args.frames, seed=args.seed, speed=args.speed)
        except ImportError as err:
            raise UserError(f"no VIDEO given and the sequence generator is not available ({err})") from None
        generate_s = time.perf_counter() - t0
        det_spec = args.detector or f"det:{seq.detections}"
        detector = build_detector(det_spec, weights=args.weights, device=args.device)
        source = FolderSource(seq.images, fps=seq.frame_rate)
        source.name = seq.name
        tracker = build_tracker(setup, frame_rate=seq.frame_rate)
        pipeline = Pipeline(detector, setup.source, tracker, dense=setup.dense if args.overlay else None)
        run = track_to_files(
            pipeline, source, out, result_path, max_frames=args.max_frames, overlay=args.overlay,
            caption=motion_name, progress=not args.no_progress,
        )  # fmt: skip
        metrics: dict[str, dict[str, float | int]] = {}
        results = {motion_name: result_path}
        if run["interrupted"] is None:
            if motion_name != "kalman":
                kalman_path = Path(tmp) / "kalman.txt"
                kalman = Pipeline(
                    build_detector(det_spec, weights=args.weights), None, ByteTracker(frame_rate=seq.frame_rate)
                )
                track_to_files(kalman, FolderSource(seq.images), None, kalman_path, max_frames=args.max_frames,
                               progress=False)  # fmt: skip
                results["kalman"] = kalman_path
            metrics = evaluate_results(seq, results)
    summary: dict[str, Any] = {
        "tool": PROG,
        "source": f"built-in: {seq.name} ({seq.frames} frames, {seq.speed} camera, held-out photographs, "
        f"seed {seq.seed})",
        "size": list(source.size),
        "source_fps": source.fps,
        "detector": args.detector or "simulated detections (det.txt of the generator)",
        "motion": motion_name,
        "motion_description": setup.description,
        "generate_s": round(generate_s, 3),
        **run,
        "metrics": metrics,
        "outputs": {"video": str(out), "results": str(result_path), "json": str(json_path)},
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    _print_summary(summary, summary["outputs"])
    if metrics:
        print(f"against ground truth ({seq.name}):\n{_metrics_table(metrics)}")
    return _exit_code(run)


def _run(argv: Sequence[str] | None) -> int:
    args = _build_parser().parse_args(argv)
    motion_name = args.motion or ("learned" if args.motion_weights is not None else default_motion())
    if args.motion_weights is not None and motion_name != "learned":
        raise UserError(f"--motion-weights: only used with --motion learned, got --motion {motion_name}")
    if args.motion_weights is not None and not Path(args.motion_weights).is_file():
        raise UserError(f"--motion-weights: {args.motion_weights}: no such file")
    if args.weights is not None and not Path(args.weights).is_file():
        raise UserError(f"--weights: {args.weights}: no such file")

    if args.video is None:
        return _run_builtin(args, motion_name)

    try:
        source = open_source(args.video, fps=args.fps)
    except SourceError as err:
        raise UserError(str(err)) from None
    out = Path(args.output) if args.output else Path("out") / "demo" / f"{source.name}.mp4"
    try:
        if out.exists() and out.resolve() == Path(args.video).resolve():
            raise UserError(f"--output: {out} is the input video; choose another file")
        _check_output(out)
        detector = build_detector(args.detector or "hog", weights=args.weights, device=args.device)
        setup = _build_motion(motion_name, args)
    except BaseException:
        source.close()
        raise
    tracker = build_tracker(setup, frame_rate=source.fps)
    if args.overlay and setup.dense is None:
        raise UserError(f"--overlay: --motion {motion_name} has no dense motion field to draw")
    pipeline = Pipeline(detector, setup.source, tracker, dense=setup.dense if args.overlay else None)
    result_path = out.with_suffix(".txt")
    json_path = Path(args.json) if args.json else out.with_suffix(".json")
    run = track_to_files(
        pipeline, source, out, result_path, max_frames=args.max_frames, overlay=args.overlay,
        caption=f"{motion_name}", progress=not args.no_progress,
    )  # fmt: skip
    summary: dict[str, Any] = {
        "tool": PROG,
        "source": str(args.video),
        "size": list(source.size),
        "source_fps": source.fps,
        "detector": args.detector or "hog",
        "motion": motion_name,
        "motion_description": setup.description,
        **run,
        "outputs": {"video": str(out), "results": str(result_path), "json": str(json_path)},
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    _print_summary(summary, summary["outputs"])
    return _exit_code(run)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mmtrack-demo``.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 2 on a user error, 130 / 143 when interrupted (outputs kept), 1 on an unexpected failure.

    Example:
        >>> main(["/no/such/video.mp4"])  # doctest: +SKIP
        2
    """
    # FFmpeg prints its own diagnostics ("moov atom not found") on top of our one-line errors; the CLI reports
    # every read failure itself, so keep FFmpeg quiet unless the user asked for its log level
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    previous = _install_sigterm()
    try:
        return _run(argv)
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 2
    except (UserError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError, ImportError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"{PROG}: terminated", file=sys.stderr)
        return 143
    except Exception as err:  # noqa: BLE001 - a CLI reports, it does not dump tracebacks
        print(f"{PROG}: error: unexpected {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
