"""Read and write MOT text files: MOTChallenge, VisDrone-MOT and UAVDT layouts, plus dataset discovery.

Conventions (shared by every reader and writer here):

- Frames are 1-based integers. Boxes in files are ``tlwh`` (left, top, width, height) in pixels; the
  :class:`MotRecords` table keeps them as ``tlwh`` and offers ``xyxy`` on demand.
- Every reader returns records **sorted by frame** (stable, so rows of one frame keep their file order). Files may
  list frames in any order (detections often do); after sorting, :meth:`MotRecords.frame_slices` gives each
  frame's rows without another pass over the data.
- Files are parsed once (one split per line, one vectorised float conversion) and then validated with numpy, so a
  100k-line file reads in a fraction of a second. Every validation error names the file and the 1-based line:
  ``ValueError: seq/gt/gt.txt:17: expected 9 or 10 comma-separated values, got 4``.
- Empty files (or files with only blank lines) are valid and give zero records.
- Values may be separated by commas (with optional spaces, and one optional trailing comma) or, when a line has no
  comma at all, by whitespace.

Layouts:

========================  ========================================================================================
MOTChallenge gt (MOT16+)  ``frame,id,x,y,w,h,flag,class,visibility`` (9 values; MOT16, MOT17, MOT20)
MOTChallenge gt (MOT15)   ``frame,id,x,y,w,h,flag,wx,wy,wz`` (10 values; world coordinates, no class column)
MOTChallenge det          ``frame,-1,x,y,w,h,score[,...]`` (7 to 10 values)
MOTChallenge results      ``frame,id,x,y,w,h,score,-1,-1,-1`` (6 to 10 values read; written with 10)
VisDrone-MOT              ``frame,id,x,y,w,h,score,category,truncation,occlusion`` (annotations, results and
                          detections; 8 to 10 values read, 10 written). Categories: 0 ignored region,
                          1 pedestrian, 2 people, 3 bicycle, 4 car, 5 van, 6 truck, 7 tricycle,
                          8 awning-tricycle, 9 bus, 10 motor, 11 others.
UAVDT ``*_gt_whole.txt``  ``frame,id,x,y,w,h,out-of-view,occlusion,category`` (9 values; 1 car, 2 truck, 3 bus)
UAVDT ``*_gt_ignore.txt`` ignore areas, one box per line; the first six values are read
                          (``frame,id,x,y,w,h``), the rest (6 to 10 values in all) are ignored.
UAVDT results             MOTChallenge results layout (``frame,id,x,y,w,h,score,-1,-1,-1``); the UAVDT MOT
                          toolkit derives from the MOTChallenge devkit and reads the first seven values.
========================  ========================================================================================

Example:
    >>> path = Path(tempfile.mkdtemp()) / "res.txt"
    >>> with ResultWriter(path) as writer:
    ...     writer.write_frame(1, np.array([[10.0, 20.0, 30.0, 60.0]]), np.array([7]), np.array([0.9]))
    >>> read_mot_results(path).tlwh.shape
    (1, 4)
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MOT_VARIANTS",
    "VISDRONE_CATEGORIES",
    "MotRecords",
    "ResultWriter",
    "SequenceEntry",
    "SequenceInfo",
    "discover_sequences",
    "read_mot_detections",
    "read_mot_gt",
    "read_mot_results",
    "read_seqinfo",
    "read_uavdt_gt",
    "read_uavdt_ignore",
    "read_visdrone",
    "write_results",
    "write_seqinfo",
]

PathLike = str | os.PathLike[str]
DatasetFormat = Literal["mot", "visdrone", "uavdt"]
ResultLayout = Literal["mot", "visdrone", "uavdt"]

#: Accepted ``variant`` values of :func:`read_mot_gt`; ``"auto"`` picks MOT15 for 10-value rows, MOT17 for 9.
MOT_VARIANTS = ("auto", "MOT15", "MOT16", "MOT17", "MOT20")

#: VisDrone-MOT category ids and names (0 and 11 are the protocol's ignored categories).
VISDRONE_CATEGORIES: Mapping[int, str] = {
    0: "ignored",
    1: "pedestrian",
    2: "people",
    3: "bicycle",
    4: "car",
    5: "van",
    6: "truck",
    7: "tricycle",
    8: "awning-tricycle",
    9: "bus",
    10: "motor",
    11: "others",
}

_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


# --------------------------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotRecords:
    """A table of boxes read from one MOT text file, sorted by frame.

    Attributes:
        frames: 1-based frame numbers, shape (N,), int64, non-decreasing.
        ids: track / object ids, shape (N,), int64 (``-1`` in detection files).
        tlwh: boxes as (left, top, width, height) in pixels, shape (N, 4), float64.
        scores: confidence (detections, results) or the gt "considered" flag, shape (N,), float64.
        classes: class / category ids, shape (N,), int64; ``-1`` where the layout has no class column.
        extras: further per-row columns by name (``visibility``, ``truncation``, ``occlusion``, ``out_of_view``,
            ``world``), each with N rows.
        line_numbers: 1-based line of each row in its file, shape (N,), int64 (0 for rows not read from a file).
        source: the file the rows came from ("" when built in memory).
    """

    frames: NDArray[np.int64]
    ids: NDArray[np.int64]
    tlwh: NDArray[np.float64]
    scores: NDArray[np.float64]
    classes: NDArray[np.int64]
    extras: Mapping[str, NDArray[np.float64]] = field(default_factory=dict)
    line_numbers: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    source: str = ""

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def xyxy(self) -> NDArray[np.float64]:
        """Boxes as (x1, y1, x2, y2), shape (N, 4)."""
        out = self.tlwh.copy()
        out[:, 2:] += out[:, :2]
        return out

    def select(self, mask: NDArray[np.bool_] | NDArray[np.int64]) -> MotRecords:
        """Rows picked by a boolean mask or index array (order kept), as a new table."""
        lines = self.line_numbers if self.line_numbers.shape[0] == len(self) else np.zeros(len(self), np.int64)
        return MotRecords(
            frames=self.frames[mask],
            ids=self.ids[mask],
            tlwh=self.tlwh[mask],
            scores=self.scores[mask],
            classes=self.classes[mask],
            extras={k: v[mask] for k, v in self.extras.items()},
            line_numbers=lines[mask],
            source=self.source,
        )

    def frame_slices(self) -> dict[int, slice]:
        """Rows of each frame present, as ``{frame: slice}`` into the (frame-sorted) arrays.

        Example:
            >>> recs = _records_from_arrays([3, 1, 1], [-1] * 3, np.ones((3, 4)), [1.0] * 3)
            >>> recs.frame_slices()
            {1: slice(0, 2, None), 3: slice(2, 3, None)}
        """
        if len(self) == 0:
            return {}
        frames, starts = np.unique(self.frames, return_index=True)
        ends = np.append(starts[1:], len(self))
        return {int(f): slice(int(s), int(e)) for f, s, e in zip(frames, starts, ends, strict=True)}

    @property
    def max_frame(self) -> int:
        """Largest frame number, 0 when empty."""
        return int(self.frames[-1]) if len(self) else 0


def _records_from_arrays(
    frames: Iterable[int],
    ids: Iterable[int],
    tlwh: Iterable[Iterable[float]] | NDArray[np.float64],
    scores: Iterable[float],
    classes: Iterable[int] | None = None,
) -> MotRecords:
    """Build a frame-sorted :class:`MotRecords` from in-memory columns (used by tests and doc examples)."""
    f = np.asarray(list(frames), dtype=np.int64)
    order = np.argsort(f, kind="stable")
    n = f.shape[0]
    cls = np.full(n, -1, np.int64) if classes is None else np.asarray(list(classes), dtype=np.int64)
    return MotRecords(
        frames=f[order],
        ids=np.asarray(list(ids), dtype=np.int64)[order],
        tlwh=np.asarray(tlwh, dtype=np.float64).reshape(n, 4)[order],
        scores=np.asarray(list(scores), dtype=np.float64)[order],
        classes=cls[order],
        line_numbers=np.zeros(n, np.int64),
    )


# --------------------------------------------------------------------------------------------------------------------
# Parsing core
# --------------------------------------------------------------------------------------------------------------------


def _describe_counts(allowed: Sequence[int]) -> str:
    counts = sorted(set(allowed))
    if len(counts) == 1:
        return str(counts[0])
    if counts == list(range(counts[0], counts[-1] + 1)) and len(counts) > 2:
        return f"{counts[0]} to {counts[-1]}"
    return ", ".join(str(c) for c in counts[:-1]) + f" or {counts[-1]}"


def _split_line(line: str) -> list[str]:
    if "," in line:
        parts = line.split(",")
        if parts[-1].strip() == "":
            parts.pop()
        return parts
    return line.split()


def _parse_table(path: PathLike, allowed: Sequence[int]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Parse a numeric CSV-like file into an (N, C) float64 array and the 1-based line number of each row.

    All non-blank rows must have the same number of values, which must be one of ``allowed``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a row with a wrong number of values, a non-numeric value, or a NaN / infinite value.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: file not found")
    with open(p, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    ncols = -1
    first_line = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = _split_line(line)
        n = len(parts)
        if ncols < 0:
            if n not in allowed:
                raise ValueError(f"{p}:{lineno}: expected {_describe_counts(allowed)} comma-separated values, got {n}")
            ncols, first_line = n, lineno
        elif n != ncols:
            raise ValueError(
                f"{p}:{lineno}: expected {ncols} comma-separated values (as on line {first_line}), got {n}"
            )
        rows.append(parts)
        line_numbers.append(lineno)
    lines = np.asarray(line_numbers, dtype=np.int64)
    if not rows:
        width = min(allowed) if allowed else 0
        return np.zeros((0, width), dtype=np.float64), lines
    try:
        data = np.asarray(rows, dtype=np.float64)
    except ValueError:
        for parts, lineno in zip(rows, line_numbers, strict=True):
            for col, value in enumerate(parts, start=1):
                try:
                    float(value)
                except ValueError:
                    raise ValueError(f"{p}:{lineno}: value {col} is not a number: {value.strip()!r}") from None
        raise
    bad = ~np.isfinite(data)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{p}:{lines[r]}: value {c + 1} is {rows[r][c].strip()}, expected a finite number")
    return data, lines


def _check_integral(
    data: NDArray[np.float64], lines: NDArray[np.int64], col: int, name: str, path: PathLike, minimum: int | None
) -> NDArray[np.int64]:
    values = data[:, col]
    bad = values != np.round(values)
    if bad.any():
        r = int(np.argmax(bad))
        raise ValueError(f"{path}:{lines[r]}: {name} must be an integer, got {values[r]:g}")
    if minimum is not None:
        low = values < minimum
        if low.any():
            r = int(np.argmax(low))
            raise ValueError(f"{path}:{lines[r]}: {name} must be >= {minimum}, got {values[r]:g}")
    return values.astype(np.int64)


def _check_sizes(data: NDArray[np.float64], lines: NDArray[np.int64], path: PathLike) -> None:
    neg = (data[:, 4] < 0) | (data[:, 5] < 0)
    if neg.any():
        r = int(np.argmax(neg))
        raise ValueError(
            f"{path}:{lines[r]}: box width and height must be >= 0, got width {data[r, 4]:g}, height {data[r, 5]:g}"
        )


def _check_unique(
    frames: NDArray[np.int64],
    ids: NDArray[np.int64],
    lines: NDArray[np.int64],
    path: PathLike,
    what: str,
    classes: NDArray[np.int64] | None = None,
    mask: NDArray[np.bool_] | None = None,
) -> None:
    """Raise on a repeated (frame, id) (or (frame, id, class)) pair, naming the line of the repeat."""
    idx = np.arange(frames.shape[0]) if mask is None else np.flatnonzero(mask)
    if idx.size < 2:
        return
    keys = [lines[idx], ids[idx], frames[idx]] if classes is None else [lines[idx], classes[idx], ids[idx], frames[idx]]
    order = np.lexsort(keys)
    cols = [frames[idx][order], ids[idx][order]] + ([] if classes is None else [classes[idx][order]])
    same = np.ones(order.size - 1, dtype=bool)
    for c in cols:
        same &= c[1:] == c[:-1]
    if same.any():
        k = int(np.argmax(same))
        first, second = lines[idx][order][k], lines[idx][order][k + 1]
        extra = "" if classes is None else f" and class {cols[2][k]}"
        raise ValueError(
            f"{path}:{second}: {what} id {cols[1][k]} appears twice in frame {cols[0][k]}{extra} (also on line {first})"
        )


def _build(
    data: NDArray[np.float64],
    lines: NDArray[np.int64],
    path: PathLike,
    *,
    id_col: int = 1,
    score_col: int | None = 6,
    class_col: int | None = None,
    extras: Mapping[str, int] | None = None,
    check_ids: bool = True,
) -> MotRecords:
    """Validate the common columns and build frame-sorted records."""
    n = data.shape[0]
    if n == 0:
        return MotRecords(
            frames=np.zeros(0, np.int64),
            ids=np.zeros(0, np.int64),
            tlwh=np.zeros((0, 4), np.float64),
            scores=np.zeros(0, np.float64),
            classes=np.zeros(0, np.int64),
            extras={k: np.zeros(0, np.float64) for k in (extras or {})},
            line_numbers=np.zeros(0, np.int64),
            source=str(path),
        )
    frames = _check_integral(data, lines, 0, "frame", path, minimum=1)
    ids = _check_integral(data, lines, id_col, "id", path, None) if check_ids else data[:, id_col].astype(np.int64)
    _check_sizes(data, lines, path)
    classes = (
        np.full(n, -1, np.int64) if class_col is None else _check_integral(data, lines, class_col, "class", path, None)
    )
    scores = np.ones(n, np.float64) if score_col is None or data.shape[1] <= score_col else data[:, score_col].copy()
    order = np.argsort(frames, kind="stable")
    return MotRecords(
        frames=frames[order],
        ids=ids[order],
        tlwh=np.ascontiguousarray(data[order, 2:6]),
        scores=scores[order],
        classes=classes[order],
        extras={k: data[order, c] for k, c in (extras or {}).items()},
        line_numbers=lines[order],
        source=str(path),
    )


# --------------------------------------------------------------------------------------------------------------------
# MOTChallenge
# --------------------------------------------------------------------------------------------------------------------


def resolve_mot_variant(variant: str, ncols: int | None) -> str:
    """Map a gt ``variant`` (see :data:`MOT_VARIANTS`) and the file's column count to a TrackEval BENCHMARK name.

    ``"auto"``: 10 values per row -> ``"MOT15"`` (world coordinates, no class column); otherwise ``"MOT17"``
    (MOT16 and MOT17 share the same preprocessing). An empty file resolves to ``"MOT17"``.

    Raises:
        ValueError: unknown variant.
    """
    if variant not in MOT_VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(MOT_VARIANTS)}, got {variant!r}")
    if variant != "auto":
        return variant
    return "MOT15" if ncols == 10 else "MOT17"


def read_mot_gt(path: PathLike, variant: str = "auto") -> MotRecords:
    """Read a MOTChallenge ground-truth file.

    MOT16/17/20 rows are ``frame,id,x,y,w,h,flag,class,visibility`` (9 values; a 10th value is tolerated and
    ignored); MOT15 rows are ``frame,id,x,y,w,h,flag,wx,wy,wz`` (10 values, no class column). ``flag`` (0 = not
    evaluated) goes to ``scores``.

    Args:
        path: the gt file.
        variant: ``"auto"`` (10 values -> MOT15, 9 -> MOT16-style), ``"MOT15"``, ``"MOT16"``, ``"MOT17"`` or
            ``"MOT20"``.

    Returns:
        Records with ``classes`` (``-1`` for MOT15), ``extras["visibility"]`` (MOT16+) or ``extras["world"]``
        ``extras["world_x"]``, ``["world_y"]``, ``["world_z"]`` (MOT15).

    Raises:
        ValueError: wrong column count, non-numeric / NaN / inf value, non-integer or < 1 frame, non-integer id,
            negative width/height, or an id repeated within a frame; the message names file and line.
        FileNotFoundError: no such file.

    Example:
        >>> gt = read_mot_gt(_doc_file("1,1,10,20,30,60,1,-1,-1,-1\\n"))
        >>> (len(gt), int(gt.classes[0]))
        (1, -1)
    """
    if variant not in MOT_VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(MOT_VARIANTS)}, got {variant!r}")
    allowed = (10,) if variant == "MOT15" else ((9, 10) if variant == "auto" else (9, 10))
    data, lines = _parse_table(path, allowed)
    resolved = resolve_mot_variant(variant, data.shape[1] if data.shape[0] else None)
    if resolved == "MOT15":
        recs = _build(data, lines, path, score_col=6, class_col=None, extras={"world_x": 7, "world_y": 8, "world_z": 9})
    else:
        recs = _build(data, lines, path, score_col=6, class_col=7, extras={"visibility": 8})
    _check_unique(recs.frames, recs.ids, recs.line_numbers, path, "gt")
    return recs


def read_mot_detections(path: PathLike) -> MotRecords:
    """Read a MOTChallenge detection file ``frame,-1,x,y,w,h,score[,...]`` (7 to 10 values per row).

    Detections may come in any frame order; they are sorted by frame (stable). The id column is kept as read
    (normally ``-1``) and may repeat.

    Raises:
        ValueError: malformed row, non-finite value, bad frame, or negative width/height (file and line named).
        FileNotFoundError: no such file.

    Example:
        >>> det = read_mot_detections(_doc_file("2,-1,1,1,5,5,0.9\\n1,-1,0,0,4,4,0.8\\n"))
        >>> det.frames.tolist()
        [1, 2]
    """
    data, lines = _parse_table(path, (7, 8, 9, 10))
    return _build(data, lines, path, score_col=6, check_ids=False)


def read_mot_results(path: PathLike) -> MotRecords:
    """Read a MOTChallenge tracking result file ``frame,id,x,y,w,h[,score,...]`` (6 to 10 values per row).

    A missing score reads as 1.0. A (frame, id) pair may appear only once.

    Raises:
        ValueError: malformed row, non-finite value, bad frame or id, negative size, or a repeated (frame, id).
        FileNotFoundError: no such file.

    Example:
        >>> res = read_mot_results(_doc_file("1,3,0,0,4,4,0.5,-1,-1,-1\\n"))
        >>> res.ids.tolist()
        [3]
    """
    data, lines = _parse_table(path, (6, 7, 8, 9, 10))
    recs = _build(data, lines, path, score_col=6)
    _check_unique(recs.frames, recs.ids, recs.line_numbers, path, "track")
    return recs


# --------------------------------------------------------------------------------------------------------------------
# VisDrone-MOT and UAVDT
# --------------------------------------------------------------------------------------------------------------------


def read_visdrone(path: PathLike, kind: Literal["annotations", "results", "detections"] = "annotations") -> MotRecords:
    """Read a VisDrone-MOT file ``frame,id,x,y,w,h,score,category,truncation,occlusion`` (8 to 10 values).

    Args:
        path: the file.
        kind: ``"annotations"`` (ids unique per frame among categories 1-10; ignored regions (0) and "others" (11)
            may repeat ids), ``"results"`` (ids unique per frame and category, so per-class trackers may reuse an
            id across classes) or ``"detections"`` (ids not checked).

    Returns:
        Records with ``classes`` = category, ``scores`` = score column (annotations: 1 = evaluated, 0 = ignored),
        ``extras["truncation"]`` and ``extras["occlusion"]`` (``-1`` where absent).

    Raises:
        ValueError: bad ``kind``, malformed row, non-finite value, bad frame / id / category, negative size, or a
            repeated id (file and line named).
        FileNotFoundError: no such file.

    Example:
        >>> ann = read_visdrone(_doc_file("1,1,10,10,20,20,1,4,0,0\\n1,0,0,0,50,50,0,0,0,0\\n"))
        >>> ann.classes.tolist()
        [4, 0]
    """
    if kind not in ("annotations", "results", "detections"):
        raise ValueError(f"kind: expected 'annotations', 'results' or 'detections', got {kind!r}")
    data, lines = _parse_table(path, (8, 9, 10))
    if data.shape[0] and data.shape[1] < 10:
        data = np.concatenate([data, np.full((data.shape[0], 10 - data.shape[1]), -1.0)], axis=1)
    recs = _build(
        data,
        lines,
        path,
        score_col=6,
        class_col=7,
        extras={"truncation": 8, "occlusion": 9},
        check_ids=kind != "detections",
    )
    if kind == "annotations":
        evaluated = (recs.classes != 0) & (recs.classes != 11)
        _check_unique(recs.frames, recs.ids, recs.line_numbers, path, "object", mask=evaluated)
    elif kind == "results":
        _check_unique(recs.frames, recs.ids, recs.line_numbers, path, "track", classes=recs.classes)
    return recs


def read_uavdt_gt(path: PathLike) -> MotRecords:
    """Read a UAVDT ``*_gt_whole.txt`` file ``frame,id,x,y,w,h,out-of-view,occlusion,category`` (9 values).

    Returns:
        Records with ``classes`` = category (1 car, 2 truck, 3 bus), ``scores`` all 1.0,
        ``extras["out_of_view"]`` and ``extras["occlusion"]``.

    Raises:
        ValueError: malformed row, non-finite value, bad frame / id / category, negative size, repeated (frame, id).
        FileNotFoundError: no such file.

    Example:
        >>> gt = read_uavdt_gt(_doc_file("1,1,10,10,20,20,1,1,1\\n"))
        >>> gt.classes.tolist()
        [1]
    """
    data, lines = _parse_table(path, (9,))
    recs = _build(data, lines, path, score_col=None, class_col=8, extras={"out_of_view": 6, "occlusion": 7})
    _check_unique(recs.frames, recs.ids, recs.line_numbers, path, "object")
    return recs


def read_uavdt_ignore(path: PathLike) -> MotRecords:
    """Read a UAVDT ``*_gt_ignore.txt`` file: one ignore area per row, ``frame,id,x,y,w,h[,...]`` (6 to 10 values).

    Only frame and box are used; ids are not checked (ignore areas usually carry ``-1``).

    Raises:
        ValueError: malformed row, non-finite value, bad frame, negative size.
        FileNotFoundError: no such file.

    Example:
        >>> read_uavdt_ignore(_doc_file("1,-1,0,0,100,50,-1,-1,-1\\n")).tlwh.tolist()
        [[0.0, 0.0, 100.0, 50.0]]
    """
    data, lines = _parse_table(path, (6, 7, 8, 9, 10))
    return _build(data, lines, path, score_col=None, check_ids=False)


# --------------------------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------------------------


_LAYOUTS = ("mot", "visdrone", "uavdt")


class ResultWriter:
    """Write tracking results frame by frame, line-buffered, so a crash leaves a valid partial file.

    Layouts: ``"mot"`` and ``"uavdt"`` write ``frame,id,x,y,w,h,score,-1,-1,-1``; ``"visdrone"`` writes
    ``frame,id,x,y,w,h,score,category,-1,-1``. Each call to :meth:`write_frame` writes whole lines and flushes.

    Args:
        path: output file (parent folders are created). An existing file is replaced.
        layout: ``"mot"``, ``"visdrone"`` or ``"uavdt"``.
        decimals: digits after the point for box coordinates (scores get ``max(decimals, 2)``).

    Raises:
        ValueError: unknown layout or negative decimals.

    Example:
        >>> path = Path(tempfile.mkdtemp()) / "a.txt"
        >>> with ResultWriter(path, layout="visdrone") as w:
        ...     w.write_frame(3, np.array([[0.0, 0.0, 4.0, 4.0]]), np.array([1]), np.array([0.5]), np.array([4]))
        >>> path.read_text()
        '3,1,0.00,0.00,4.00,4.00,0.50,4,-1,-1\\n'
    """

    def __init__(self, path: PathLike, layout: ResultLayout = "mot", decimals: int = 2) -> None:
        if layout not in _LAYOUTS:
            raise ValueError(f"layout: expected one of {', '.join(_LAYOUTS)}, got {layout!r}")
        if not isinstance(decimals, int) or decimals < 0:
            raise ValueError(f"decimals: expected an int >= 0, got {decimals!r}")
        self.path = Path(path)
        self.layout = layout
        self._box_fmt = f"{{:.{decimals}f}}"
        self._score_fmt = f"{{:.{max(decimals, 2)}f}}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = open(self.path, "w", buffering=1, encoding="utf-8", newline="\n")  # noqa: SIM115
        self.lines_written = 0

    def write_frame(
        self,
        frame: int,
        tlwh: NDArray[np.floating] | Sequence[Sequence[float]],
        ids: NDArray[np.integer] | Sequence[int],
        scores: NDArray[np.floating] | Sequence[float],
        classes: NDArray[np.integer] | Sequence[int] | None = None,
    ) -> None:
        """Write one frame's boxes.

        Args:
            frame: 1-based frame number.
            tlwh: boxes (left, top, width, height), shape (M, 4).
            ids: track ids, shape (M,).
            scores: scores, shape (M,).
            classes: categories, shape (M,) (VisDrone layout; required there, ignored otherwise).

        Raises:
            ValueError: frame < 1, mismatched lengths, missing classes for the VisDrone layout, or a closed writer.
        """
        if self._fh is None:
            raise ValueError(f"{self.path}: writer is closed")
        if int(frame) != frame or frame < 1:
            raise ValueError(f"frame: expected an integer >= 1, got {frame!r}")
        boxes = np.asarray(tlwh, dtype=np.float64).reshape(-1, 4)
        id_arr = np.asarray(ids).reshape(-1)
        score_arr = np.asarray(scores, dtype=np.float64).reshape(-1)
        m = boxes.shape[0]
        if id_arr.shape[0] != m or score_arr.shape[0] != m:
            raise ValueError(
                f"ids, scores: expected {m} values to match tlwh, got {id_arr.shape[0]} and {score_arr.shape[0]}"
            )
        if self.layout == "visdrone":
            if classes is None:
                raise ValueError("classes: required for the 'visdrone' layout, got None")
            cls_arr = np.asarray(classes).reshape(-1)
            if cls_arr.shape[0] != m:
                raise ValueError(f"classes: expected {m} values to match tlwh, got {cls_arr.shape[0]}")
        if m == 0:
            return
        bf, sf = self._box_fmt, self._score_fmt
        out = []
        for i in range(m):
            x, y, w, h = boxes[i]
            tail = f"{int(cls_arr[i])},-1,-1" if self.layout == "visdrone" else "-1,-1,-1"
            out.append(
                f"{int(frame)},{int(id_arr[i])},{bf.format(x)},{bf.format(y)},{bf.format(w)},{bf.format(h)},"
                f"{sf.format(score_arr[i])},{tail}\n"
            )
        self._fh.write("".join(out))
        self._fh.flush()
        self.lines_written += m

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_results(path: PathLike, records: MotRecords, layout: ResultLayout = "mot", decimals: int = 2) -> None:
    """Write a whole result table (rows in frame order) with :class:`ResultWriter`.

    Example:
        >>> recs = _records_from_arrays([1], [5], [[1.0, 2.0, 3.0, 4.0]], [0.5])
        >>> path = Path(tempfile.mkdtemp()) / "r.txt"
        >>> write_results(path, recs)
        >>> read_mot_results(path).ids.tolist()
        [5]
    """
    with ResultWriter(path, layout=layout, decimals=decimals) as writer:
        for frame, sl in records.frame_slices().items():
            writer.write_frame(frame, records.tlwh[sl], records.ids[sl], records.scores[sl], records.classes[sl])


# --------------------------------------------------------------------------------------------------------------------
# seqinfo.ini
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceInfo:
    """The ``[Sequence]`` section of a MOTChallenge ``seqinfo.ini``.

    Attributes:
        name: sequence name.
        frame_rate: frames per second.
        seq_length: number of frames (frames are 1..seq_length).
        im_width: image width in pixels (None when unknown).
        im_height: image height in pixels (None when unknown).
        im_dir: image folder relative to the sequence folder.
        im_ext: image file extension, with the dot.
    """

    name: str
    frame_rate: float
    seq_length: int
    im_width: int | None = None
    im_height: int | None = None
    im_dir: str = "img1"
    im_ext: str = ".jpg"


def read_seqinfo(path: PathLike) -> SequenceInfo:
    """Read a ``seqinfo.ini`` (``[Sequence]`` name, imDir, frameRate, seqLength, imWidth, imHeight, imExt).

    ``frameRate`` and ``seqLength`` are required; the others default (name: the folder name, imDir ``img1``,
    imExt ``.jpg``, sizes None).

    Raises:
        FileNotFoundError: the file is missing (message names the path).
        ValueError: no ``[Sequence]`` section, a required key missing, or a value of the wrong type.

    Example:
        >>> info = read_seqinfo(_doc_file("[Sequence]\\nname=A\\nframeRate=25\\nseqLength=71\\n", "seqinfo.ini"))
        >>> (info.frame_rate, info.seq_length)
        (25.0, 71)
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: seqinfo.ini not found")
    parser = configparser.ConfigParser()
    try:
        parser.read(p, encoding="utf-8")
    except configparser.Error as err:
        raise ValueError(f"{p}: cannot parse as an ini file ({type(err).__name__})") from None
    if "Sequence" not in parser:
        raise ValueError(f"{p}: expected a [Sequence] section")
    sec = parser["Sequence"]

    def _num(key: str, kind: type, required: bool) -> float | int | None:
        if key not in sec:
            if required:
                raise ValueError(f"{p}: [Sequence] {key} is missing")
            return None
        try:
            value = kind(float(sec[key])) if kind is float else int(sec[key])
        except ValueError:
            raise ValueError(f"{p}: [Sequence] {key}: expected {kind.__name__}, got {sec[key]!r}") from None
        if value <= 0:
            raise ValueError(f"{p}: [Sequence] {key}: expected a positive value, got {sec[key]!r}")
        return value

    frame_rate = _num("frameRate", float, True)
    seq_length = _num("seqLength", int, True)
    width = _num("imWidth", int, False)
    height = _num("imHeight", int, False)
    return SequenceInfo(
        name=sec.get("name", p.parent.name),
        frame_rate=float(frame_rate or 0),
        seq_length=int(seq_length or 0),
        im_width=None if width is None else int(width),
        im_height=None if height is None else int(height),
        im_dir=sec.get("imDir", "img1"),
        im_ext=sec.get("imExt", ".jpg"),
    )


def write_seqinfo(path: PathLike, info: SequenceInfo) -> None:
    """Write ``info`` as a MOTChallenge ``seqinfo.ini``.

    Example:
        >>> path = Path(tempfile.mkdtemp()) / "seqinfo.ini"
        >>> write_seqinfo(path, SequenceInfo("A", 30.0, 10, 640, 480))
        >>> read_seqinfo(path).im_width
        640
    """
    rate = int(info.frame_rate) if float(info.frame_rate).is_integer() else info.frame_rate
    lines = [
        "[Sequence]",
        f"name={info.name}",
        f"imDir={info.im_dir}",
        f"frameRate={rate}",
        f"seqLength={info.seq_length}",
    ]
    if info.im_width is not None:
        lines.append(f"imWidth={info.im_width}")
    if info.im_height is not None:
        lines.append(f"imHeight={info.im_height}")
    lines.append(f"imExt={info.im_ext}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------------------------------
# Dataset discovery
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceEntry:
    """One sequence found by :func:`discover_sequences`.

    Attributes:
        name: sequence name.
        format: ``"mot"``, ``"visdrone"`` or ``"uavdt"``.
        root: the sequence folder (MOT) or the dataset folder (VisDrone / UAVDT).
        gt_path: ground-truth file, or None when absent.
        det_path: detection file, or None when absent.
        image_dir: folder of the frames, or None when absent.
        image_pattern: frame file name pattern, formatted with the 1-based frame number (e.g. ``"{:06d}.jpg"``).
        seqinfo_path: the ``seqinfo.ini`` (MOT), or None when absent.
        ignore_path: UAVDT ``*_gt_ignore.txt``, or None.
        info: frame rate / length / size: from ``seqinfo.ini`` (MOT), else None until :func:`resolve_info`.
    """

    name: str
    format: DatasetFormat
    root: Path
    gt_path: Path | None
    det_path: Path | None
    image_dir: Path | None
    image_pattern: str
    seqinfo_path: Path | None = None
    ignore_path: Path | None = None
    info: SequenceInfo | None = None

    def image_path(self, frame: int) -> Path | None:
        """Path of frame ``frame`` (1-based), or None when the sequence has no image folder."""
        if self.image_dir is None:
            return None
        return self.image_dir / self.image_pattern.format(frame)

    def with_info(self, info: SequenceInfo) -> SequenceEntry:
        """A copy with ``info`` set."""
        return dataclasses.replace(self, info=info)


def _first_file(folder: Path, candidates: Sequence[str]) -> Path | None:
    for name in candidates:
        p = folder / name
        if p.is_file():
            return p
    return None


def _image_pattern(image_dir: Path | None, default: str, prefix: str = "") -> str:
    """Guess the frame file pattern (zero padding and extension) from the first image in the folder."""
    if image_dir is None or not image_dir.is_dir():
        return default
    names = sorted(n for n in os.listdir(image_dir) if n.lower().endswith(_IMAGE_EXTS) and n.startswith(prefix))
    if not names:
        return default
    stem, ext = os.path.splitext(names[0])
    digits = stem[len(prefix) :]
    if not digits.isdigit():
        return default
    return f"{prefix}{{:0{len(digits)}d}}{ext}"


def _discover_mot(root: Path) -> list[SequenceEntry]:
    def is_seq(d: Path) -> bool:
        return (d / "seqinfo.ini").is_file() or (d / "gt" / "gt.txt").is_file() or (d / "det" / "det.txt").is_file()

    folders = [root] if is_seq(root) else sorted(d for d in root.iterdir() if d.is_dir() and is_seq(d))
    entries = []
    for d in folders:
        seqinfo = d / "seqinfo.ini"
        info = read_seqinfo(seqinfo) if seqinfo.is_file() else None
        im_dir = d / (info.im_dir if info else "img1")
        ext = info.im_ext if info else ".jpg"
        entries.append(
            SequenceEntry(
                name=d.name,
                format="mot",
                root=d,
                gt_path=_first_file(d, ["gt/gt.txt"]),
                det_path=_first_file(d, ["det/det.txt"]),
                image_dir=im_dir if im_dir.is_dir() else None,
                image_pattern=f"{{:06d}}{ext}",
                seqinfo_path=seqinfo if seqinfo.is_file() else None,
                info=info,
            )
        )
    return entries


def _discover_visdrone(root: Path) -> list[SequenceEntry]:
    seq_dir, ann_dir = root / "sequences", root / "annotations"
    det_dir = root / "detections"
    names: set[str] = set()
    if seq_dir.is_dir():
        names |= {d.name for d in seq_dir.iterdir() if d.is_dir()}
    for folder in (ann_dir, det_dir):
        if folder.is_dir():
            names |= {p.stem for p in folder.glob("*.txt")}
    entries = []
    for name in sorted(names):
        im_dir = seq_dir / name
        im_dir_opt = im_dir if im_dir.is_dir() else None
        entries.append(
            SequenceEntry(
                name=name,
                format="visdrone",
                root=root,
                gt_path=_first_file(ann_dir, [f"{name}.txt"]) if ann_dir.is_dir() else None,
                det_path=_first_file(det_dir, [f"{name}.txt"]) if det_dir.is_dir() else None,
                image_dir=im_dir_opt,
                image_pattern=_image_pattern(im_dir_opt, "{:07d}.jpg"),
            )
        )
    return entries


def _discover_uavdt(root: Path) -> list[SequenceEntry]:
    gt_dirs = [d for d in (root / "GT", root / "gt", root / "UAV-benchmark-MOTD_v1.0" / "GT") if d.is_dir()]
    img_roots = [d for d in (root / "UAV-benchmark-M", root / "sequences") if d.is_dir()]
    det_dir = root / "detections"
    names: set[str] = set()
    for g in gt_dirs:
        names |= {p.name[: -len("_gt_whole.txt")] for p in g.glob("*_gt_whole.txt")}
    for r in img_roots:
        names |= {d.name for d in r.iterdir() if d.is_dir()}
    if det_dir.is_dir():
        names |= {p.stem for p in det_dir.glob("*.txt")}
    entries = []
    for name in sorted(names):
        gt = next((g / f"{name}_gt_whole.txt" for g in gt_dirs if (g / f"{name}_gt_whole.txt").is_file()), None)
        ign = next((g / f"{name}_gt_ignore.txt" for g in gt_dirs if (g / f"{name}_gt_ignore.txt").is_file()), None)
        im_dir = next((r / name for r in img_roots if (r / name).is_dir()), None)
        entries.append(
            SequenceEntry(
                name=name,
                format="uavdt",
                root=root,
                gt_path=gt,
                det_path=_first_file(det_dir, [f"{name}.txt"]) if det_dir.is_dir() else None,
                image_dir=im_dir,
                image_pattern=_image_pattern(im_dir, "img{:06d}.jpg", prefix="img"),
                ignore_path=ign,
            )
        )
    return entries


def detect_format(root: PathLike) -> DatasetFormat:
    """Guess a dataset folder's layout: VisDrone (``sequences/`` or ``annotations/``), UAVDT (``GT/*_gt_whole.txt``
    or ``UAV-benchmark-M/``), else MOTChallenge.

    Example:
        >>> detect_format(tempfile.mkdtemp())
        'mot'
    """
    r = Path(root)
    if (r / "annotations").is_dir() or (r / "sequences").is_dir():
        return "visdrone"
    if (r / "UAV-benchmark-M").is_dir() or any(
        (r / g).is_dir() and any((r / g).glob("*_gt_whole.txt")) for g in ("GT", "gt", "UAV-benchmark-MOTD_v1.0/GT")
    ):
        return "uavdt"
    return "mot"


def discover_sequences(root: PathLike, format: DatasetFormat | None = None) -> list[SequenceEntry]:
    """Find the sequences of a dataset folder.

    Accepted layouts:

    - ``"mot"`` (MOTChallenge): every subfolder holding ``seqinfo.ini``, ``gt/gt.txt`` or ``det/det.txt`` is a
      sequence (or ``root`` itself if it holds one of them). Images: ``<seq>/<imDir>/<frame:06d><imExt>``.
    - ``"visdrone"``: ``sequences/<seq>/`` (frames ``0000001.jpg``), ``annotations/<seq>.txt`` and, for tracking
      from public detections, ``detections/<seq>.txt`` (VisDrone layout, id -1).
    - ``"uavdt"``: ground truth ``GT/<seq>_gt_whole.txt`` and optional ``GT/<seq>_gt_ignore.txt`` (``GT`` may also
      be ``gt`` or ``UAV-benchmark-MOTD_v1.0/GT``), frames ``UAV-benchmark-M/<seq>/img000001.jpg`` (or
      ``sequences/<seq>/``), detections ``detections/<seq>.txt`` in the MOTChallenge det layout.

    Args:
        root: dataset folder.
        format: layout, or None to guess with :func:`detect_format`.

    Returns:
        Entries sorted by name (MOT entries carry their ``seqinfo.ini`` as ``info``).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: unknown format, or a malformed ``seqinfo.ini``.

    Example:
        >>> discover_sequences(tempfile.mkdtemp())
        []
    """
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"{r}: dataset folder not found")
    fmt = detect_format(r) if format is None else format
    if fmt == "mot":
        return _discover_mot(r)
    if fmt == "visdrone":
        return _discover_visdrone(r)
    if fmt == "uavdt":
        return _discover_uavdt(r)
    raise ValueError(f"format: expected 'mot', 'visdrone' or 'uavdt', got {format!r}")


def _read_image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image file via OpenCV, or None when unreadable."""
    import cv2  # OpenCV is a core dependency; imported here to keep `import trackers.mot_io` light

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    return int(img.shape[1]), int(img.shape[0])


def resolve_info(
    entry: SequenceEntry,
    *,
    frame_rate: float | None = None,
    seq_length: int | None = None,
    records: Sequence[MotRecords] = (),
) -> SequenceInfo:
    """Frame rate, length and image size of a sequence.

    MOTChallenge: from ``seqinfo.ini``; if it is missing, ``frame_rate`` and ``seq_length`` must both be given
    (the documented fallback), otherwise a ``FileNotFoundError`` names the missing file. Explicit values override
    the file.

    VisDrone / UAVDT (no ini file): frame rate ``frame_rate`` or 30 (both datasets are 30 fps video); length
    ``seq_length``, else the number of frames in the image folder, else the largest frame in ``records``; image
    size from the first frame's image, else the extent of the boxes in ``records`` (rounded up).

    Raises:
        FileNotFoundError: MOT sequence without ``seqinfo.ini`` and without explicit frame rate and length.
        ValueError: non-positive explicit values.

    Example:
        >>> e = SequenceEntry("s", "visdrone", Path("."), None, None, None, "{:07d}.jpg")
        >>> resolve_info(e, seq_length=5).frame_rate
        30.0
    """
    if frame_rate is not None and not frame_rate > 0:
        raise ValueError(f"frame_rate: expected a positive number, got {frame_rate!r}")
    if seq_length is not None and not seq_length > 0:
        raise ValueError(f"seq_length: expected a positive integer, got {seq_length!r}")
    if entry.format == "mot":
        if entry.info is not None:
            info = entry.info
            return dataclasses.replace(
                info,
                frame_rate=float(frame_rate) if frame_rate is not None else info.frame_rate,
                seq_length=int(seq_length) if seq_length is not None else info.seq_length,
            )
        if frame_rate is None or seq_length is None:
            raise FileNotFoundError(
                f"{entry.root / 'seqinfo.ini'}: seqinfo.ini not found (needed for frame rate and sequence length)"
            )
        return SequenceInfo(entry.name, float(frame_rate), int(seq_length))
    n_images = 0
    size: tuple[int, int] | None = None
    if entry.image_dir is not None:
        images = sorted(n for n in os.listdir(entry.image_dir) if n.lower().endswith(_IMAGE_EXTS))
        n_images = len(images)
        if images:
            size = _read_image_size(entry.image_dir / images[0])
    length = seq_length or n_images or max((r.max_frame for r in records), default=0)
    if size is None:
        extent = [np.ceil(r.xyxy.max(axis=0)) for r in records if len(r)]
        if extent:
            m = np.max(np.stack(extent), axis=0)
            size = (max(1, int(m[2])), max(1, int(m[3])))
    return SequenceInfo(
        name=entry.name,
        frame_rate=float(frame_rate) if frame_rate is not None else 30.0,
        seq_length=int(length),
        im_width=None if size is None else size[0],
        im_height=None if size is None else size[1],
        im_dir="" if entry.image_dir is None else entry.image_dir.name,
        im_ext=os.path.splitext(entry.image_pattern)[1] or ".jpg",
    )


def _doc_file(text: str, name: str = "file.txt") -> Path:
    """Write ``text`` to a fresh temporary file (for the runnable docstring examples)."""
    path = Path(tempfile.mkdtemp()) / name
    path.write_text(text, encoding="utf-8")
    return path
