"""``mmtrack-synth``: write synthetic MOTChallenge sequences with exact ground truth (and, on request, exact motion).

Usage::

    mmtrack-synth OUT_DIR [--sequences 4] [--frames 150] [--speed slow|medium|fast] [--seed 0]
                  [--height 544] [--width 960] [--photos train|heldout] [--max-objects 12] [--frame-rate 30]
                  [--no-photometric] [--jpeg-quality 95] [--flow] [--overwrite]

Each sequence ``OUT_DIR/SYN-<speed>-<seed>-<i>`` (``i`` = 001, 002, ...) is MOTChallenge-shaped and read as it is by
``mmtrack-eval OUT_DIR``:

- ``img1/000001.jpg ...``: the frames (JPEG at ``--jpeg-quality``);
- ``gt/gt.txt``: ``frame,id,x,y,w,h,1,1,visibility`` (MOT17 layout, class 1; see
  :mod:`mmtrack_corr.synthetic_sequence` for what is annotated);
- ``det/det.txt``: ``frame,-1,x,y,w,h,score,-1,-1,-1`` (simulated detections);
- ``seqinfo.ini``: name, imDir, frameRate, seqLength, imWidth, imHeight, imExt;
- with ``--flow``: ``flow/000001.npz ...``, one per frame pair t -> t + 1, holding ``flow`` (H, W, 2) float16 (dx, dy)
  and ``valid`` (H, W) bool, compressed.

Sequence ``i`` depends only on ``(--seed, i)`` and the other options: the same command writes the same files. A
sequence is written into ``OUT_DIR/.SYN-....partial`` and renamed when complete, so a killed run leaves every
finished sequence valid (and no half-written one under a sequence name). Existing sequence folders are an error
unless ``--overwrite``.

Exit status: 0 on success, 2 on a user error (one line on stderr), 1 on an unexpected failure.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import cv2
import numpy as np

from mmtrack_corr.synthetic import SPEED_LEVELS
from mmtrack_corr.synthetic_sequence import SequenceBoxes, SyntheticSequence, make_sequence

__all__ = ["main", "sequence_name", "write_sequence"]


class _UserError(Exception):
    """A command-line problem: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UserError(message)


def _bounded_int(low: int, high: int | None = None):  # type: ignore[no-untyped-def]
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"expected an integer {bound}, got {value}")
        return value

    return convert


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mmtrack-synth", description="Write synthetic MOTChallenge sequences with exact motion.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder (created if missing)")
    p.add_argument("--sequences", type=_bounded_int(1, 9999), default=4, help="number of sequences (default 4)")
    p.add_argument("--frames", type=_bounded_int(2), default=150, help="frames per sequence (default 150)")
    p.add_argument("--speed", choices=SPEED_LEVELS, default="medium", help="camera speed level (default medium)")
    p.add_argument("--seed", type=_bounded_int(0), default=0, help="random seed (default 0)")
    p.add_argument("--height", type=_bounded_int(64), default=544, help="frame height (default 544)")
    p.add_argument("--width", type=_bounded_int(64), default=960, help="frame width (default 960)")
    p.add_argument("--photos", choices=("train", "heldout"), default="train", help="photo set (default train)")
    p.add_argument("--max-objects", type=_bounded_int(1, 100), default=12, help="objects kept near the view (12)")
    p.add_argument("--frame-rate", type=_positive_float, default=30.0, help="frames per second (default 30)")
    p.add_argument("--no-photometric", action="store_true", help="clean frames (no colour, blur, noise, JPEG)")
    p.add_argument("--jpeg-quality", type=_bounded_int(1, 100), default=95, help="JPEG quality of img1 (95)")
    p.add_argument("--flow", action="store_true", help="also write flow/NNNNNN.npz (float16) for every frame pair")
    p.add_argument("--overwrite", action="store_true", help="replace existing sequence folders")
    return p


def sequence_name(speed: str, seed: int, index: int) -> str:
    """Folder name of sequence ``index`` (1-based): ``SYN-<speed>-<seed>-<index:03d>``.

    Example:
        >>> sequence_name("fast", 7, 2)
        'SYN-fast-7-002'
    """
    return f"SYN-{speed}-{seed}-{index:03d}"


def _write_table(path: Path, boxes: SequenceBoxes, gt: bool) -> None:
    lines = []
    for f, i, (x, y, w, h), s, v in zip(
        boxes.frames, boxes.ids, boxes.tlwh, boxes.scores, boxes.visibility, strict=True
    ):
        if gt:
            lines.append(f"{f},{i},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,1,{v:.4f}\n")
        else:
            lines.append(f"{f},-1,{x:.2f},{y:.2f},{w:.2f},{h:.2f},{s:.4f},-1,-1,-1\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")


def _write_seqinfo(path: Path, name: str, seq: SyntheticSequence) -> None:
    rate = int(seq.frame_rate) if float(seq.frame_rate).is_integer() else seq.frame_rate
    path.write_text(
        "[Sequence]\n"
        f"name={name}\nimDir=img1\nframeRate={rate}\nseqLength={seq.n_frames}\n"
        f"imWidth={seq.width}\nimHeight={seq.height}\nimExt=.jpg\n\n",
        encoding="utf-8",
    )


def write_sequence(seq: SyntheticSequence, folder: Path, *, jpeg_quality: int = 95, flow: bool = False) -> None:
    """Write one sequence as a MOTChallenge folder (images, gt, det, seqinfo.ini; flow when asked).

    The folder is built as ``<folder parent>/.<name>.partial`` and renamed to ``folder`` at the end.

    Args:
        seq: the sequence.
        folder: the sequence folder to create (must not exist).
        jpeg_quality: JPEG quality of the frames, 1-100.
        flow: also write ``flow/NNNNNN.npz`` for every frame pair.

    Raises:
        FileExistsError: ``folder`` exists.
        OSError: the files cannot be written.
    """
    if folder.exists():
        raise FileExistsError(f"{folder}: already exists")
    partial = folder.parent / f".{folder.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    (partial / "img1").mkdir(parents=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]

    def save(t: int, image: np.ndarray) -> None:
        path = partial / "img1" / f"{t:06d}.jpg"
        if not cv2.imwrite(str(path), image, params):
            raise OSError(f"{path}: cannot write the image")

    if flow:
        (partial / "flow").mkdir()
        pair = None
        for t, pair in enumerate(seq.pairs(), start=1):
            save(t, pair.frame1)
            np.savez_compressed(partial / "flow" / f"{t:06d}.npz", flow=pair.flow.astype(np.float16), valid=pair.valid)
        assert pair is not None  # a sequence has at least two frames
        save(seq.n_frames, pair.frame2)
    else:
        for t, image in enumerate(seq.frames(), start=1):
            save(t, image)
    _write_table(partial / "gt" / "gt.txt", seq.gt, gt=True)
    _write_table(partial / "det" / "det.txt", seq.detections, gt=False)
    _write_seqinfo(partial / "seqinfo.ini", folder.name, seq)
    partial.rename(folder)


def _run(argv: Sequence[str] | None) -> int:
    args = _build_parser().parse_args(argv)
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise _UserError(f"OUT_DIR: {out} exists and is not a folder")
    names = [sequence_name(args.speed, args.seed, i) for i in range(1, args.sequences + 1)]
    existing = [n for n in names if (out / n).exists()]
    if existing and not args.overwrite:
        raise _UserError(f"{out / existing[0]} already exists ({len(existing)} of the sequences); pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names, start=1):
        start = time.perf_counter()
        seq = make_sequence(
            np.random.default_rng([args.seed, i]),
            args.frames,
            height=args.height,
            width=args.width,
            speed=args.speed,
            photos=args.photos,
            photometric=not args.no_photometric,
            max_objects=args.max_objects,
            frame_rate=args.frame_rate,
        )
        if (out / name).exists():
            shutil.rmtree(out / name)
        write_sequence(seq, out / name, jpeg_quality=args.jpeg_quality, flow=args.flow)
        print(
            f"{out / name}: {seq.n_frames} frames, {len(seq.gt)} gt boxes ({np.unique(seq.gt.ids).size} ids), "
            f"{len(seq.detections)} detections, {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mmtrack-synth``.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 2 on a user error, 1 on an unexpected failure (one line on stderr, no traceback).

    Example:
        >>> main(["--help"])  # doctest: +SKIP
        0
    """
    try:
        return _run(argv)
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 2
    except _UserError as err:
        print(f"mmtrack-synth: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"mmtrack-synth: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmtrack-synth: interrupted; finished sequences are complete", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the CLI reports one line, never a traceback
        print(f"mmtrack-synth: unexpected {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
