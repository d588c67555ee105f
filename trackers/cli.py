"""``mmtrack-eval``: track every sequence of a dataset from its public detections, then score it with TrackEval.

Usage::

    mmtrack-eval DATA_DIR [--tracker bytetrack|motion|gmc] [--output OUT_DIR] [--format mot|visdrone|uavdt]
                 [--workers N] [--track-thresh 0.6] [--match-thresh 0.9] [--track-buffer 30]
                 [--no-box-filter] [--no-skip-empty-frames] [--motion-source MODULE:ATTR]
                 [--motion-weights PATH] [--motion-uncertainty PX] [--motion-refine STEPS]
                 [--[no-]motion-box-refine] [--[no-]motion-camera-fallback] [--device cpu]
                 [--gmc-method sparse|ecc] [--variant auto|MOT15|MOT16|MOT17|MOT20] [--decimals 1]
                 [--skip-bad-frames] [--sequences NAME ...] [--json PATH]

For each sequence the tracker runs over the detections (MOTChallenge ``<SEQ>/det/det.txt``; VisDrone and UAVDT
``detections/<SEQ>.txt``), given to it at scale 1 as xyxy boxes (``x, y, x + w, y + h`` of the file's tlwh).
Results go to ``OUT_DIR/<SEQ>.txt`` in the dataset's result layout, written frame by frame as
``OUT_DIR/<SEQ>.txt.partial`` and renamed when the sequence is complete: a ``.txt`` is always whole, a
``.partial`` (left by a failure, Ctrl-C or a kill) always ends on a frame boundary. Sequences run in parallel
worker processes. Then every sequence with ground truth is evaluated (:mod:`trackers.evaluation`), a per-sequence
+ COMBINED table (HOTA, DetA, AssA, MOTA, IDF1, IDSW, FP, FN) is printed on stdout, and all metrics are written
as JSON (``OUT_DIR/metrics.json`` unless ``--json`` says otherwise), atomically. Progress goes to stderr.

The output folder belongs to one run at a time: a second run on it is refused (exit 2) while the first holds its
lock (``OUT_DIR/.mmtrack-eval.lock``). A run first removes the outputs it is about to produce again (metrics JSON,
the sequences' result files), then keeps a run record ``OUT_DIR/run.json`` (run id, settings, status, and each
finished sequence's size and sha256); ``metrics.json`` carries the same run id. The evaluators refuse a result with
a ``.partial`` beside it, or one the run record does not list as complete (see :mod:`trackers.mot_io.manifest`).

Processes: workers ignore Ctrl-C (the main process handles it) and exit when the main process dies, even by
SIGKILL. On the first failure, on Ctrl-C (exit 130) or SIGTERM (exit 143) queued sequences are dropped and running
workers stopped; finished sequences stay complete and recorded.

Defaults follow the official ByteTrack MOT evaluation (``yolox/evaluators/mot_evaluator.py``):

- ``--track-thresh 0.6 --match-thresh 0.9 --track-buffer 30``; frame rate from ``seqinfo.ini`` (VisDrone, UAVDT:
  30 fps).
- Box filter (caller side, as ByteTrack's script): keep an output box only if ``w * h > 100`` and
  ``w / h <= 1.6``. On by default for MOTChallenge (pedestrians), off for VisDrone and UAVDT (vehicles, any shape);
  ``--box-filter`` / ``--no-box-filter`` override.
- Empty frames are skipped (``--skip-empty-frames``, the default): like the official script, the tracker is not
  called on a frame without detections, so lost tracks do not age there and nothing is written for it.
  ``--no-skip-empty-frames`` calls the tracker on every frame (lost tracks age on empty frames too).
- Result boxes written with one decimal, scores with two (``--decimals``), as the official script rounds them;
  with these defaults the six MOT15 sequences in ``shared/data/mot15`` reproduce the official ByteTrack figures
  to the printed 0.01.

Trackers: ``bytetrack`` (:class:`trackers.bytetrack.ByteTracker`); ``motion``
(:class:`trackers.motion.MotionTracker` with the motion source built by ``--motion-source MODULE:ATTR``, a
zero-argument factory returning a :class:`trackers.motion.MotionSource`; without ``--motion-source``, the learned
estimator ``mmtrack_corr.estimator.default_motion_source(weights=--motion-weights, device=--device,
uncertainty_thresh=--motion-uncertainty, refine=--motion-refine, box_refine=--motion-box-refine,
camera_fallback=--motion-camera-fallback)``, imported
only then, which needs mmtrack-corr's torch part); ``gmc`` (MotionTracker with
:class:`trackers.gmc.CameraMotionCompensation`, added to the Kalman prediction). ``motion`` and ``gmc`` read each
frame's image, so the sequence's images must be present; a truncated JPEG/PNG or undecodable image stops the
run with its path and frame (``--skip-bad-frames``: that frame is tracked without motion and named in a warning);
``bytetrack`` never reads images.
VisDrone: only detections of the five evaluated categories (car, bus, truck, pedestrian, van) are tracked, per
class (a track only matches detections of its class), and the result rows carry the class.

Exit status: 0 on success; 2 on a user error (one line on stderr naming the file and line where it applies),
including unusable outputs (a folder that is a file or read-only, a full disk: the file is named); 130 on Ctrl-C;
143 on SIGTERM; 1 on an unexpected failure (one line on stderr).

Example:
    >>> main(["--help"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import importlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import numpy as np
from numpy.typing import NDArray

from .mot_io import (
    MotRecords,
    ResultLayout,
    SequenceEntry,
    discover_sequences,
    read_mot_detections,
    read_mot_gt,
    read_uavdt_gt,
    read_visdrone,
    resolve_info,
)
from .spec import resolve_callable

__all__ = ["main"]

_TRACKERS = ("bytetrack", "motion", "gmc")
_FORMATS = ("mot", "visdrone", "uavdt")
_VISDRONE_TRACKED = (1, 4, 5, 6, 9)  # pedestrian, car, van, truck, bus: the classes the toolkit evaluates
_MIN_BOX_AREA = 100.0
_MAX_ASPECT = 1.6


class UserError(Exception):
    """A problem with the command line or the input data: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UserError(message)


# --------------------------------------------------------------------------------------------------------------------
# Jobs (top-level, picklable: they cross into spawned worker processes)
# --------------------------------------------------------------------------------------------------------------------


# The learned estimator (mmtrack_corr, needs torch): imported by name, lazily, only for --tracker motion without
# --motion-source, so that the trackers package never imports torch or mmtrack_corr on its own.
_DEFAULT_MOTION_SOURCE = "mmtrack_corr.estimator:default_motion_source"


@dataclass(frozen=True)
class _TrackerSpec:
    name: str
    kwargs: dict[str, Any]
    motion_source: str | None = None
    gmc_method: str = "sparse"
    motion_weights: str | None = None
    device: str = "cpu"
    motion_uncertainty: float | None = None
    motion_refine: int | None = None
    motion_box_refine: bool | None = None
    motion_camera_fallback: bool | None = None


@dataclass(frozen=True)
class _Job:
    name: str
    frames: NDArray[np.int64]
    tlwh: NDArray[np.float64]
    scores: NDArray[np.float64]
    classes: NDArray[np.int64] | None
    seq_length: int
    frame_rate: float
    image_dir: str | None
    image_pattern: str
    out_path: str
    layout: ResultLayout
    tracker: _TrackerSpec
    box_filter: bool
    skip_empty: bool
    decimals: int = 1
    skip_bad_frames: bool = False


@dataclass(frozen=True)
class _JobResult:
    name: str
    frames_tracked: int
    lines: int
    seconds: float
    error: str | None = None
    user_error: bool = field(default=False)
    skipped: tuple[str, ...] = ()  # unreadable frames skipped under --skip-bad-frames, one message each
    size: int = 0  # bytes of the finished result file
    sha256: str = ""


def _load_factory(spec: str, what: str = "--motion-source") -> Callable[..., Any]:
    """Import ``MODULE:ATTR`` and return the attribute (must be callable); ``what`` names it in errors."""
    try:
        return resolve_callable(spec, what, "a factory returning a MotionSource")
    except ValueError as err:
        raise UserError(str(err)) from None


_LEARNED = (
    f"--tracker motion without --motion-source (the learned estimator {_DEFAULT_MOTION_SOURCE}, "
    "needs mmtrack-corr with torch; or pass --motion-source MODULE:ATTR)"
)


def _learned_options(args: argparse.Namespace) -> tuple[tuple[str, Any], ...]:
    """The options that configure the learned estimator (each only valid with --tracker motion alone)."""
    return (
        ("--motion-weights", args.motion_weights),
        ("--motion-uncertainty", args.motion_uncertainty),
        ("--motion-refine", args.motion_refine),
        ("--motion-box-refine", args.motion_box_refine),
        ("--motion-camera-fallback", args.motion_camera_fallback),
        ("--device", args.device),
    )


def _build_motion_source(spec: _TrackerSpec) -> Any:
    """The MotionSource of ``--tracker motion``: the user's factory, or the learned estimator's."""
    if spec.motion_source is not None:
        name = spec.motion_source
        source = _load_factory(name)()
    else:
        name = _DEFAULT_MOTION_SOURCE
        factory = _load_factory(name, _LEARNED)
        try:
            extra: dict[str, Any] = {}
            if spec.motion_uncertainty is not None:
                extra["uncertainty_thresh"] = spec.motion_uncertainty
            if spec.motion_refine is not None:
                extra["refine"] = spec.motion_refine
            if spec.motion_box_refine is not None:
                extra["box_refine"] = spec.motion_box_refine
            if spec.motion_camera_fallback is not None:
                extra["camera_fallback"] = spec.motion_camera_fallback
            source = factory(weights=spec.motion_weights, device=spec.device, **extra)
        except (ValueError, TypeError, OSError, RuntimeError) as err:
            raise UserError(
                f"{name}(weights={spec.motion_weights!r}, device={spec.device!r}) failed: {type(err).__name__}: {err}"
            ) from None
    if not callable(source):
        raise UserError(f"--motion-source: {name}() returned {type(source).__name__}, not a MotionSource")
    return source


def _build_tracker(spec: _TrackerSpec, frame_rate: float) -> Any:
    kwargs = dict(spec.kwargs, frame_rate=frame_rate)
    if spec.name == "bytetrack":
        from .bytetrack import ByteTracker

        return ByteTracker(**kwargs)
    from .motion import MotionTracker

    if spec.name == "gmc":
        try:
            from .gmc import CameraMotionCompensation
        except ImportError as err:
            raise UserError(f"--tracker gmc: camera-motion compensation is not available ({err})") from None
        return MotionTracker(CameraMotionCompensation(method=spec.gmc_method), kalman_weight=1.0, **kwargs)
    return MotionTracker(_build_motion_source(spec), **kwargs)


def _keep_boxes(tlwh: NDArray[np.float64]) -> NDArray[np.bool_]:
    """ByteTrack's caller-side filter: area > 100 and w / h <= 1.6."""
    w, h = tlwh[:, 2], tlwh[:, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        vertical_ok = np.where(h > 0, w / np.where(h > 0, h, 1.0) <= _MAX_ASPECT, False)
    return (w * h > _MIN_BOX_AREA) & vertical_ok


def _frame_order(job: _Job) -> tuple[list[int], dict[int, slice], int]:
    """Frames to call the tracker on, each frame's detection rows, and the last frame with detections."""
    slices: dict[int, slice] = {}
    if job.frames.size:
        uniq, starts = np.unique(job.frames, return_index=True)
        ends = np.append(starts[1:], job.frames.size)
        slices = {int(f): slice(int(s), int(e)) for f, s, e in zip(uniq, starts, ends, strict=True)}
    last = max(slices, default=0)
    # skipping empty frames: only frames with detections (a huge seqLength costs nothing)
    frames = sorted(slices) if job.skip_empty else list(range(1, job.seq_length + 1))
    return frames, slices, last


def _track_sequence(job: _Job) -> _JobResult:
    """Run one sequence and write its result file frame by frame (worker entry point).

    The file appears at ``job.out_path`` only when the sequence is complete; until then (and after a failure or an
    interruption) it is ``<out_path>.partial``, holding whole frames.
    """
    from .frames import read_frame
    from .mot_io import ResultWriter, file_digest

    start = time.perf_counter()
    frames_tracked = 0
    skipped: list[str] = []
    try:
        tracker = _build_tracker(job.tracker, job.frame_rate)
        needs_images = job.tracker.name in ("motion", "gmc")
        frames, slices, last_det = _frame_order(job)
        empty = slice(0, 0)
        size: tuple[int, int] | None = None
        with ResultWriter(job.out_path, layout=job.layout, decimals=job.decimals) as writer:
            for frame in frames:
                if frame > last_det and tracker.track_count == 0:
                    break  # no tracks and no detections left: the remaining frames produce nothing
                sl = slices.get(frame, empty)
                tlwh = job.tlwh[sl]
                boxes = tlwh.copy()
                boxes[:, 2:] += boxes[:, :2]
                classes = None if job.classes is None else job.classes[sl]
                if needs_images:
                    image = None
                    if job.image_dir is None:
                        raise UserError(f"images of sequence {job.name} not found")
                    path = os.path.join(job.image_dir, job.image_pattern.format(frame))
                    try:
                        image = read_frame(path, size)
                        size = (image.shape[1], image.shape[0])
                    except (OSError, ValueError) as err:
                        msg = f"{err} (frame {frame} of {job.name})"
                        if isinstance(err, FileNotFoundError):
                            msg = f"{path}: cannot read image (frame {frame} of {job.name})"
                        if not job.skip_bad_frames:
                            raise UserError(msg) from None
                        skipped.append(msg)
                    out = tracker.update(boxes, job.scores[sl], classes, frame=image)
                else:
                    out = tracker.update(boxes, job.scores[sl], classes)
                frames_tracked += 1
                if len(out) == 0:
                    continue
                out_tlwh = np.asarray(out.boxes, dtype=np.float64).copy()
                out_tlwh[:, 2:] -= out_tlwh[:, :2]
                keep = _keep_boxes(out_tlwh) if job.box_filter else np.ones(len(out), dtype=bool)
                writer.write_frame(frame, out_tlwh[keep], out.ids[keep], out.scores[keep], out.classes[keep])
            lines = writer.lines_written
        nbytes, digest = file_digest(job.out_path)
    except (UserError, ValueError, TypeError, OSError) as err:
        msg = f"{job.name}: {_os_message(err) if isinstance(err, OSError) else err}"
        return _JobResult(job.name, frames_tracked, 0, time.perf_counter() - start, msg, True, tuple(skipped))
    except Exception as err:  # noqa: BLE001 - reported as one line by main(), never a traceback
        msg = f"{job.name}: unexpected {type(err).__name__}: {err}"
        return _JobResult(job.name, frames_tracked, 0, time.perf_counter() - start, msg, False, tuple(skipped))
    return _JobResult(
        job.name, frames_tracked, lines, time.perf_counter() - start, None, False, tuple(skipped), nbytes, digest
    )


def _os_message(err: OSError) -> str:
    """One line for an OSError: ``<file>: <reason>`` (the file is what users need to act)."""
    reason = err.strerror or str(err)
    if err.filename is not None:
        return f"{err.filename}: {reason}"
    return reason


# --------------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------------


_Number = TypeVar("_Number", int, float)


def _bounded(
    parse: Callable[[str], _Number], low: _Number, high: _Number | None, expected: str
) -> Callable[[str], _Number]:
    """An argparse ``type`` that parses a number and checks ``low <= value <= high`` (NaN fails)."""

    def convert(text: str) -> _Number:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not (low <= value and (high is None or value <= high)):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return convert


_positive_int = _bounded(int, 1, None, "a positive integer")
_non_negative_int = _bounded(int, 0, None, "an integer >= 0")
_unit_float = _bounded(float, 0.0, 1.0, "a number in [0, 1]")


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="mmtrack-eval",
        description="Track every sequence of a MOT dataset from its public detections and evaluate with TrackEval.",
    )
    p.add_argument("data_dir", metavar="DATA_DIR", help="dataset folder (MOTChallenge, VisDrone-MOT or UAVDT layout)")
    p.add_argument("--tracker", choices=_TRACKERS, default="bytetrack", help="tracker (default: bytetrack)")
    p.add_argument("--output", metavar="OUT_DIR", default=None, help="result folder (default: out/<tracker>)")
    p.add_argument("--format", choices=_FORMATS, default=None, help="dataset layout (default: guessed)")
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=min(4, os.cpu_count() or 1),
        help="parallel worker processes (default: min(4, CPUs))",
    )
    p.add_argument("--track-thresh", type=_unit_float, default=0.6, help="high-score threshold (default 0.6)")
    p.add_argument("--match-thresh", type=_unit_float, default=0.9, help="stage-1 cost threshold (default 0.9)")
    p.add_argument("--track-buffer", type=_non_negative_int, default=30, help="frames to keep lost tracks (30)")
    p.add_argument(
        "--box-filter",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep output boxes with w*h > 100 and w/h <= 1.6 (default: on for mot, off for visdrone/uavdt)",
    )
    p.add_argument(
        "--skip-empty-frames",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="do not call the tracker on frames without detections, as the official ByteTrack script (default: on)",
    )
    p.add_argument(
        "--motion-source", metavar="MODULE:ATTR", default=None, help="MotionSource factory (--tracker motion)"
    )
    p.add_argument(
        "--motion-weights",
        metavar="PATH",
        default=None,
        help="weights of the learned estimator (--tracker motion without --motion-source; default: its own)",
    )
    p.add_argument(
        "--motion-uncertainty",
        metavar="PX",
        type=float,
        default=None,
        help="learned estimator: a box whose predicted uncertainty (Laplace scale, px) exceeds PX gets no learned "
        "displacement and the tracker uses its Kalman prediction (default: never)",
    )
    p.add_argument(
        "--motion-refine",
        metavar="STEPS",
        type=int,
        default=None,
        help="learned estimator: Lucas-Kanade steps refining its motion field on the frames (default: the "
        "estimator's, 0 = off)",
    )
    p.add_argument(
        "--motion-box-refine",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="learned estimator: fit each box's own motion to the frames after reading it from the field (default: "
        "the estimator's, on)",
    )
    p.add_argument(
        "--motion-camera-fallback",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="learned estimator: along the directions the frames cannot pin (a flat box, a single edge) a box takes "
        "the camera's motion (default: the estimator's, on)",
    )
    p.add_argument(
        "--device",
        default=None,
        help="device of the learned estimator, e.g. cpu, cuda, cuda:1 (--tracker motion without --motion-source; "
        "default cpu)",
    )
    p.add_argument(
        "--gmc-method", choices=("sparse", "ecc"), default="sparse", help="camera-motion method (--tracker gmc)"
    )
    p.add_argument(
        "--skip-bad-frames",
        action="store_true",
        help="--tracker motion|gmc: track a truncated or unreadable image's frame without motion (warned) instead "
        "of stopping",
    )
    p.add_argument("--sequences", nargs="+", metavar="NAME", default=None, help="only these sequences")
    p.add_argument(
        "--decimals",
        type=_non_negative_int,
        default=1,
        help="digits after the point for result boxes (default 1, as the official ByteTrack script writes them)",
    )
    p.add_argument("--json", metavar="PATH", default=None, help="metrics JSON (default: OUT_DIR/metrics.json)")
    p.add_argument(
        "--variant",
        choices=("auto", "MOT15", "MOT16", "MOT17", "MOT20"),
        default="auto",
        help="MOTChallenge gt layout / TrackEval benchmark (default: auto, 10-value gt rows = MOT15)",
    )
    return p


def _read_detections(entry: SequenceEntry) -> MotRecords:
    assert entry.det_path is not None
    if entry.format == "visdrone":
        det = read_visdrone(entry.det_path, "detections")
        return det.select(np.isin(det.classes, _VISDRONE_TRACKED))
    return read_mot_detections(entry.det_path)


def _read_gt(entry: SequenceEntry, variant: str) -> MotRecords:
    assert entry.gt_path is not None
    if entry.format == "visdrone":
        return read_visdrone(entry.gt_path, "annotations")
    if entry.format == "uavdt":
        return read_uavdt_gt(entry.gt_path)
    return read_mot_gt(entry.gt_path, variant)


def _det_folder_hint(entry: SequenceEntry) -> str:
    if entry.format == "mot":
        return str(entry.root / "det" / "det.txt")
    return str(entry.root / "detections" / f"{entry.name}.txt")


def _prepare_jobs(args: argparse.Namespace, fmt: str, out_dir: Path) -> tuple[list[_Job], list[SequenceEntry]]:
    data_dir = Path(args.data_dir)
    entries = discover_sequences(data_dir, fmt)  # type: ignore[arg-type]
    if not entries:
        raise UserError(f"{data_dir}: no sequences found for format {fmt!r}")
    if args.sequences:
        by_name = {e.name: e for e in entries}
        unknown = [s for s in args.sequences if s not in by_name]
        if unknown:
            raise UserError(
                f"--sequences: {', '.join(unknown)} not in {data_dir} (found: {', '.join(sorted(by_name))})"
            )
        entries = [by_name[s] for s in args.sequences]
    if args.motion_source:
        if args.tracker != "motion":
            raise UserError(f"--motion-source is only used with --tracker motion, got --tracker {args.tracker}")
        for opt, value in _learned_options(args):
            if value is not None:
                raise UserError(
                    f"{opt} configures the learned estimator and cannot be combined with --motion-source "
                    f"(a zero-argument factory), got {opt} {value}"
                )
        _load_factory(args.motion_source)
    elif args.tracker == "motion":
        _load_factory(_DEFAULT_MOTION_SOURCE, _LEARNED)
        if args.motion_weights is not None and not Path(args.motion_weights).is_file():
            raise UserError(f"--motion-weights: {args.motion_weights}: not found (expected a weights file)")
        u = args.motion_uncertainty
        if u is not None and not (np.isfinite(u) and u > 0):
            raise UserError(f"--motion-uncertainty: expected a number of pixels > 0, got {u}")
        if args.motion_refine is not None and args.motion_refine < 0:
            raise UserError(f"--motion-refine: expected a number of steps >= 0, got {args.motion_refine}")
    else:
        for opt, value in _learned_options(args):
            if value is not None:
                raise UserError(f"{opt} is only used with --tracker motion, got --tracker {args.tracker}")
    if args.tracker == "gmc":
        try:
            importlib.import_module("trackers.gmc")
        except ImportError as err:
            raise UserError(f"--tracker gmc: camera-motion compensation is not available ({err})") from None
    box_filter = (fmt == "mot") if args.box_filter is None else bool(args.box_filter)
    spec = _TrackerSpec(
        name=args.tracker,
        kwargs={
            "track_thresh": args.track_thresh,
            "match_thresh": args.match_thresh,
            "track_buffer": args.track_buffer,
            "per_class": fmt == "visdrone",
        },
        motion_source=args.motion_source,
        gmc_method=args.gmc_method,
        motion_weights=args.motion_weights,
        device=args.device or "cpu",
        motion_uncertainty=args.motion_uncertainty,
        motion_refine=args.motion_refine,
        motion_box_refine=args.motion_box_refine,
        motion_camera_fallback=args.motion_camera_fallback,
    )
    layout: ResultLayout = "visdrone" if fmt == "visdrone" else ("uavdt" if fmt == "uavdt" else "mot")
    jobs = []
    for e in entries:
        if e.det_path is None:
            raise UserError(f"{_det_folder_hint(e)}: detections not found for sequence {e.name}")
        det = _read_detections(e)
        gt = _read_gt(e, args.variant) if e.gt_path is not None else None
        info = resolve_info(e, records=[r for r in (det, gt) if r is not None])
        if len(det) and det.max_frame > info.seq_length:
            r = int(np.argmax(det.frames > info.seq_length))
            raise UserError(
                f"{e.det_path}:{det.line_numbers[r]}: frame {det.frames[r]} is beyond the sequence length "
                f"{info.seq_length}"
            )
        if args.tracker in ("motion", "gmc"):
            first = e.image_path(1)
            if e.image_dir is None or first is None or not first.is_file():
                where = e.image_dir if e.image_dir is not None else (e.root / (info.im_dir or "img1"))
                raise UserError(
                    f"{where}: images of sequence {e.name} not found (--tracker {args.tracker} reads frames)"
                )
        jobs.append(
            _Job(
                name=e.name,
                frames=det.frames,
                tlwh=det.tlwh,
                scores=det.scores,
                classes=det.classes if fmt == "visdrone" else None,
                seq_length=info.seq_length,
                frame_rate=info.frame_rate,
                image_dir=None if e.image_dir is None else str(e.image_dir),
                image_pattern=e.image_pattern,
                out_path=str(out_dir / f"{e.name}.txt"),
                layout=layout,
                tracker=spec,
                box_filter=box_filter,
                skip_empty=bool(args.skip_empty_frames),
                decimals=args.decimals,
                skip_bad_frames=bool(args.skip_bad_frames),
            )
        )
    return jobs, entries


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt (so no ``except Exception`` swallows it)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def _watch_parent(parent_pid: int) -> None:
    """Worker thread: end the worker as soon as the main process is gone (SIGKILL leaves no chance to tell it)."""
    while os.getppid() == parent_pid:
        time.sleep(0.1)
    os._exit(1)  # what it was writing stays a .partial file, never a published result


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C back while worker processes are started; raise KeyboardInterrupt after, if it came.

    Two layers: the OS signal is blocked (the mask survives fork and exec, so workers start with SIGINT blocked
    and print nothing while they import), and a Ctrl-C that arrived just before the block (already noted by Python,
    not yet raised) is recorded instead of raised half-way through starting a process, which would leave that
    child without its start-up data.
    """
    if not (_in_main_thread() and hasattr(signal, "pthread_sigmask")):  # pragma: no cover - not POSIX
        yield
        return
    hit: list[int] = []
    previous_handler = signal.signal(signal.SIGINT, lambda signum, frame: hit.append(signum))
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)  # a pending Ctrl-C lands in `hit` now
        signal.signal(signal.SIGINT, previous_handler)
    if hit:
        raise KeyboardInterrupt


def _init_worker(parent_pid: int) -> None:
    # Ctrl-C goes to the whole process group: only the main process handles it (it terminates the workers).
    # The worker was started with SIGINT blocked; ignore it before unblocking, so a pending one is dropped.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()


def _run_jobs(jobs: list[_Job], workers: int, on_done: Callable[[_JobResult], None] | None = None) -> list[_JobResult]:
    """Track every job; stop at the first failure. ``on_done`` sees each result as it arrives.

    With several workers, the jobs run in spawned processes that ignore SIGINT and end when the main process dies.
    On the first failure, Ctrl-C or SIGTERM, queued jobs are dropped and running workers are terminated; their
    result files stay ``.partial``.
    """
    from tqdm import tqdm

    total = sum(j.seq_length for j in jobs)
    results: list[_JobResult] = []
    with tqdm(total=total, unit="frame", file=sys.stderr, disable=None, desc="tracking") as bar:

        def done(job: _JobResult, length: int) -> bool:
            bar.update(length)
            results.append(job)
            if on_done is not None:
                on_done(job)
            return job.error is None

        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                if not done(_track_sequence(job), job.seq_length):
                    break
            return results
        ctx = multiprocessing.get_context("spawn")
        order = sorted(jobs, key=lambda j: -j.frames.size)
        futures: dict[cf.Future[_JobResult], _Job] = {}
        ok = False
        # Workers are started (here and while jobs are submitted) with Ctrl-C held back: each worker ignores
        # SIGINT before unblocking it, and here it raises KeyboardInterrupt once the workers are all started.
        with _sigint_deferred():
            pool = cf.ProcessPoolExecutor(
                max_workers=min(workers, len(jobs)), mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),)
            )
        try:
            with _sigint_deferred():
                futures = {pool.submit(_track_sequence, job): job for job in order}
            ok = True
            for fut in cf.as_completed(futures):
                try:
                    res = fut.result()
                except cf.process.BrokenProcessPool as err:  # a worker was killed (OOM killer, signal...)
                    job = futures[fut]
                    res = _JobResult(job.name, 0, 0, 0.0, f"{job.name}: worker process died ({err})", False)
                if not done(res, futures[fut].seq_length):
                    ok = False
                    break
        except BaseException:
            ok = False
            raise
        finally:
            if not ok:  # a failure, Ctrl-C or SIGTERM: drop queued work and stop the running workers
                for fut in futures:
                    fut.cancel()
                for proc in list(getattr(pool, "_processes", {}).values()):
                    with contextlib.suppress(Exception):
                        proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
    return results


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class _OutputFolder:
    """The result folder of one run: locked against other runs, cleared of stale outputs, with a run record.

    On entry: create the folder, take an exclusive lock on ``OUT_DIR/.mmtrack-eval.lock`` (another run holding it
    is a user error), check that the metrics path can be written, remove the outputs this run will produce again
    (the metrics JSON, the run record, the sequences' result and ``.partial`` files), and write a run record
    ``run.json`` with status ``running``. During the run :meth:`record` adds each finished sequence (size and
    sha256); on exit the status becomes ``complete``, ``failed`` or ``interrupted``.
    """

    LOCK_NAME = ".mmtrack-eval.lock"

    def __init__(self, out_dir: Path, json_path: Path, names: list[str], settings: dict[str, Any]) -> None:
        self.out_dir = out_dir
        self.json_path = json_path
        self.names = names
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        self.record_data: dict[str, Any] = {
            "tool": "mmtrack-eval",
            "run_id": self.run_id,
            "status": "running",
            "pid": os.getpid(),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "settings": settings,
            "sequences": {},
        }
        self._lock_fd: int | None = None

    def __enter__(self) -> _OutputFolder:
        from .mot_io import PARTIAL_SUFFIX, RUN_MANIFEST

        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise UserError(f"--output: {self.out_dir} exists and is not a folder")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            if self.json_path.is_dir():
                raise UserError(f"--json: {self.json_path} is a folder (expected a file path)")
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            stale = [self.json_path, self.out_dir / "metrics.json", self.out_dir / RUN_MANIFEST]
            for name in self.names:
                stale += [self.out_dir / f"{name}.txt", self.out_dir / f"{name}.txt{PARTIAL_SUFFIX}"]
            for path in stale:
                if path.is_file() or path.is_symlink():
                    path.unlink()
            self._save()
            self._probe(self.json_path.parent)
        except BaseException:
            self._unlock()
            raise
        return self

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no advisory locks, run unguarded
            return
        path = self.out_dir / self.LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise UserError(
                f"--output: {self.out_dir} is in use by another mmtrack-eval run (pid {holder}); "
                "wait for it to finish or choose another --output"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    @staticmethod
    def _probe(folder: Path) -> None:
        """Fail now, not after an hour of tracking, if ``folder`` cannot take a new file."""
        probe = folder / f".mmtrack-eval-probe-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.close(fd)
        os.unlink(probe)

    def _save(self) -> None:
        from .mot_io import RUN_MANIFEST, write_text_atomic

        write_text_atomic(self.out_dir / RUN_MANIFEST, json.dumps(self.record_data, indent=2) + "\n")

    def record(self, res: _JobResult) -> None:
        """Add a finished sequence to the run record (failed ones are not recorded as complete)."""
        if res.error is None:
            self.record_data["sequences"][res.name] = {
                "file": f"{res.name}.txt",
                "status": "complete",
                "lines": res.lines,
                "bytes": res.size,
                "sha256": res.sha256,
            }
            self._save()

    def write_metrics(self, summary: dict[str, Any]) -> None:
        from .mot_io import write_text_atomic

        write_text_atomic(self.json_path, json.dumps(dict(summary, run_id=self.run_id), indent=2) + "\n")

    def finish(self, status: str, error: str | None = None) -> None:
        self.record_data["status"] = status
        if error is not None:
            self.record_data["error"] = error
        self._save()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            if exc_type is not None and self.record_data["status"] == "running":
                status = "interrupted" if issubclass(exc_type, (KeyboardInterrupt, _Terminated)) else "failed"
                with contextlib.suppress(OSError):
                    self.finish(status, None if exc is None else str(exc) or type(exc).__name__)
        finally:
            self._unlock()


def _fmt(value: float | int) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _table(rows: list[tuple[str, dict[str, float | int]]], columns: Sequence[str]) -> str:
    width = max([len("Sequence")] + [len(name) for name, _ in rows]) + 2
    lines = ["Sequence".ljust(width) + "".join(c.rjust(9) for c in columns)]
    for name, metrics in rows:
        lines.append(name.ljust(width) + "".join(_fmt(metrics[c]).rjust(9) for c in columns))
    return "\n".join(lines)


def _evaluate(fmt: str, data_dir: Path, out_dir: Path, names: list[str], variant: str) -> Any:
    from . import evaluation

    if fmt == "mot":
        return evaluation.evaluate_mot_challenge(data_dir, out_dir, sequences=names, variant=variant)
    if fmt == "visdrone":
        return evaluation.evaluate_visdrone(data_dir, out_dir, sequences=names)
    return evaluation.evaluate_uavdt(data_dir, out_dir, sequences=names)


def _run(argv: Sequence[str] | None) -> int:
    args = _build_parser().parse_args(argv)
    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        raise UserError(f"{data_dir}: DATA_DIR not found (expected a dataset folder)")
    from .mot_io import detect_format

    fmt = args.format or detect_format(data_dir)
    out_dir = Path(args.output) if args.output else Path("out") / args.tracker
    json_path = Path(args.json) if args.json else out_dir / "metrics.json"
    jobs, entries = _prepare_jobs(args, fmt, out_dir)
    settings = {
        "data_dir": str(data_dir),
        "format": fmt,
        "tracker": args.tracker,
        "sequences": [j.name for j in jobs],
        "track_thresh": args.track_thresh,
        "match_thresh": args.match_thresh,
        "track_buffer": args.track_buffer,
        "box_filter": jobs[0].box_filter,
        "skip_empty_frames": bool(args.skip_empty_frames),
        "skip_bad_frames": bool(args.skip_bad_frames),
        "decimals": args.decimals,
        "variant": args.variant,
        "motion_source": args.motion_source or (_DEFAULT_MOTION_SOURCE if args.tracker == "motion" else None),
        "motion_weights": args.motion_weights,
        "motion_uncertainty": args.motion_uncertainty,
        "motion_refine": args.motion_refine,
        "motion_box_refine": args.motion_box_refine,
        "motion_camera_fallback": args.motion_camera_fallback,
        "device": (args.device or "cpu") if args.tracker == "motion" and not args.motion_source else None,
        "gmc_method": args.gmc_method if args.tracker == "gmc" else None,
        "workers": args.workers,
    }
    with _OutputFolder(out_dir, json_path, [j.name for j in jobs], settings) as folder:
        t0 = time.perf_counter()
        results = _run_jobs(jobs, args.workers, on_done=folder.record)
        track_s = time.perf_counter() - t0
        for res in results:
            for msg in res.skipped:
                print(f"mmtrack-eval: warning: skipped unreadable frame: {msg}", file=sys.stderr)
        failed = next((r for r in results if r.error), None)
        if failed is not None:
            assert failed.error is not None
            with contextlib.suppress(OSError):  # a full disk must not hide the error that matters
                folder.finish("failed", failed.error)
            if failed.user_error:
                raise UserError(failed.error)
            print(f"mmtrack-eval: error: {failed.error}", file=sys.stderr)
            return 1
        frames = sum(r.frames_tracked for r in results)
        print(
            f"tracked {len(results)} sequence(s), {frames} frames in {track_s:.1f} s -> {out_dir}",
            file=sys.stderr,
        )

        with_gt = [e.name for e in entries if e.gt_path is not None]
        summary: dict[str, Any] = {
            "tool": "mmtrack-eval",
            "data_dir": str(data_dir),
            "format": fmt,
            "tracker": args.tracker,
            "settings": {k: v for k, v in settings.items() if k not in ("data_dir", "format", "tracker")},
            "timing": {"tracking_s": track_s, "frames_tracked": frames},
        }
        if not with_gt:
            print("mmtrack-eval: no ground truth found; results written, nothing evaluated", file=sys.stderr)
        else:
            t1 = time.perf_counter()
            result = _evaluate(fmt, data_dir, out_dir, with_gt, args.variant)
            summary["timing"]["evaluation_s"] = time.perf_counter() - t1
            summary.update(result.to_dict())
            rows = [(name, result.sequences[name]) for name in with_gt if name in result.sequences]
            if result.classes:
                rows += [(f"[{c}]", m) for c, m in result.classes.items()]
                if result.class_average is not None:
                    rows.append(("CLASS_AVERAGE", result.class_average))
            rows.append(("COMBINED", result.combined))
            from .evaluation import HEADLINE_METRICS

            print(_table(rows, HEADLINE_METRICS))
        folder.write_metrics(summary)
        folder.finish("complete")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mmtrack-eval``.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 2 on a user error, 1 on an unexpected failure (one line on stderr; never a traceback).

    Example:
        >>> main(["/no/such/folder"])  # doctest: +SKIP
        2
    """
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _in_main_thread() else None
    try:
        return _run(argv)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 2
    except UserError as err:
        print(f"mmtrack-eval: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, ImportError) as err:
        print(f"mmtrack-eval: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a missing input, an unwritable output folder, a full disk...
        print(f"mmtrack-eval: error: {_os_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "mmtrack-eval: interrupted; finished sequences are complete, unfinished ones are .partial", file=sys.stderr
        )
        return 130
    except _Terminated:
        print(
            "mmtrack-eval: terminated; finished sequences are complete, unfinished ones are .partial", file=sys.stderr
        )
        return 143
    except Exception as err:  # noqa: BLE001 - a CLI reports, it does not dump tracebacks
        print(f"mmtrack-eval: error: unexpected {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
