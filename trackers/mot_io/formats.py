"""Readers of the MOTChallenge, VisDrone-MOT and UAVDT text layouts (see :mod:`trackers.mot_io` for the table)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np

from .parsing import build_records, check_unique, parse_table
from .records import MotRecords, PathLike

__all__ = [
    "MOT_VARIANTS",
    "VISDRONE_CATEGORIES",
    "read_mot_detections",
    "read_mot_gt",
    "read_mot_results",
    "read_uavdt_gt",
    "read_uavdt_ignore",
    "read_visdrone",
    "resolve_mot_variant",
]

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
        FileNotFoundError: no such file (anything else that is not a regular file: ValueError).

    Example:
        >>> path = Path(tempfile.mkdtemp()) / "data.txt"
        >>> _ = path.write_text("1,1,10,20,30,60,1,-1,-1,-1\\n")
        >>> gt = read_mot_gt(path)
        >>> (len(gt), int(gt.classes[0]))
        (1, -1)
    """
    if variant not in MOT_VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(MOT_VARIANTS)}, got {variant!r}")
    allowed = (10,) if variant == "MOT15" else ((9, 10) if variant == "auto" else (9, 10))
    data, lines, ncols = parse_table(path, allowed)
    resolved = resolve_mot_variant(variant, ncols if data.shape[0] else None)
    if resolved == "MOT15":
        recs = build_records(
            data, lines, path, score_col=6, class_col=None, extras={"world_x": 7, "world_y": 8, "world_z": 9}
        )
    else:
        recs = build_records(data, lines, path, score_col=6, class_col=7, extras={"visibility": 8})
    check_unique(recs.frames, recs.ids, recs.line_numbers, path, "gt")
    return recs


def read_mot_detections(path: PathLike) -> MotRecords:
    """Read a MOTChallenge detection file ``frame,-1,x,y,w,h,score[,...]`` (7 to 10 values per row).

    Detections may come in any frame order; they are sorted by frame (stable). The id column is kept as read
    (normally ``-1``) and may repeat.

    Raises:
        ValueError: malformed row, non-finite value, bad frame, or negative width/height (file and line named).
        FileNotFoundError: no such file (anything else that is not a regular file: ValueError).

    Example:
        >>> path = Path(tempfile.mkdtemp()) / "data.txt"
        >>> _ = path.write_text("2,-1,1,1,5,5,0.9\\n1,-1,0,0,4,4,0.8\\n")
        >>> det = read_mot_detections(path)
        >>> det.frames.tolist()
        [1, 2]
    """
    data, lines, _ = parse_table(path, (7, 8, 9, 10), max_cols=7)
    return build_records(data, lines, path, score_col=6, check_ids=False)


def read_mot_results(path: PathLike) -> MotRecords:
    """Read a MOTChallenge tracking result file ``frame,id,x,y,w,h[,score,...]`` (6 to 10 values per row).

    A missing score reads as 1.0. A (frame, id) pair may appear only once.

    Raises:
        ValueError: malformed row, non-finite value, bad frame or id, negative size, or a repeated (frame, id).
        FileNotFoundError: no such file (anything else that is not a regular file: ValueError).

    Example:
        >>> path = Path(tempfile.mkdtemp()) / "data.txt"
        >>> _ = path.write_text("1,3,0,0,4,4,0.5,-1,-1,-1\\n")
        >>> res = read_mot_results(path)
        >>> res.ids.tolist()
        [3]
    """
    data, lines, _ = parse_table(path, (6, 7, 8, 9, 10), max_cols=7)
    recs = build_records(data, lines, path, score_col=6)
    check_unique(recs.frames, recs.ids, recs.line_numbers, path, "track")
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
        FileNotFoundError: no such file (anything else that is not a regular file: ValueError).

    Example:
        >>> path = Path(tempfile.mkdtemp()) / "data.txt"
        >>> _ = path.write_text("1,1,10,10,20,20,1,4,0,0\\n1,0,0,0,50,50,0,0,0,0\\n")
        >>> ann = read_visdrone(path)
        >>> ann.classes.tolist()
        [4, 0]
    """
    if kind not in ("annotations", "results", "detections"):
        raise ValueError(f"kind: expected 'annotations', 'results' or 'detections', got {kind!r}")
    data, lines, _ = parse_table(path, (8, 9, 10))
    if data.shape[0] and data.shape[1] < 10:
        data = np.concatenate([data, np.full((data.shape[0], 10 - data.shape[1]), -1.0)], axis=1)
    recs = build_records(
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
        check_unique(recs.frames, recs.ids, recs.line_numbers, path, "object", mask=evaluated)
    elif kind == "results":
        check_unique(recs.frames, recs.ids, recs.line_numbers, path, "track", classes=recs.classes)
    return recs


def read_uavdt_gt(path: PathLike) -> MotRecords:
    """Read a UAVDT ``*_gt_whole.txt`` file ``frame,id,x,y,w,h,out-of-view,occlusion,category`` (9 values).

    Returns:
        Records with ``classes`` = category (1 car, 2 truck, 3 bus), ``scores`` all 1.0,
        ``extras["out_of_view"]`` and ``extras["occlusion"]``.

    Raises:
        ValueError: malformed row, non-finite value, bad frame / id / category, negative size, repeated (frame, id).
        FileNotFoundError: no such file (anything else that is not a regular file: ValueError).

    Example:
        >>> path = Path(tempfile.mkdtemp()) / "data.txt"
        >>> _ = path.write_text("1,1,10,10,20,20,1,1,1\\n")
        >>> gt = read_uavdt_gt(path)
        >>> gt.classes.tolist()
        [1]
    """
    data, lines, _ = parse_table(path, (9,))
    recs = build_records(data, lines, path, score_col=None, class_col=8, extras={"out_of_view": 6, "occlusion": 7})
    check_unique(recs.frames, recs.ids, recs.line_numbers, path, "object")
    return recs


def read_uavdt_ignore(path: PathLike) -> MotRecords:
    """Read a UAVDT ``*_gt_ignore.txt`` file: one ignore area per row, ``frame,id,x,y,w,h[,...]`` (6 to 10 values).

    Only frame and box are used; ids are not checked (ignore areas usually carry ``-1``).

    Raises:
        ValueError: malformed row, non-finite value, bad frame, negative size.
        FileNotFoundError: no such file (anything else that is not a regular file: ValueError).

    Example:
        >>> path = Path(tempfile.mkdtemp()) / "data.txt"
        >>> _ = path.write_text("1,-1,0,0,100,50,-1,-1,-1\\n")
        >>> read_uavdt_ignore(path).tlwh.tolist()
        [[0.0, 0.0, 100.0, 50.0]]
    """
    data, lines, _ = parse_table(path, (6, 7, 8, 9, 10), max_cols=6)
    return build_records(data, lines, path, score_col=None, check_ids=False)
