"""Tracking metrics (HOTA, CLEAR MOT, identity) computed by TrackEval, for MOTChallenge, VisDrone-MOT and UAVDT.

TrackEval (PyPI ``trackeval`` >= 1.3.0, the ``eval`` extra) does all metric arithmetic here; this module only
prepares its inputs and collects its outputs. It is imported lazily, so ``import trackers`` works without it.

Numbers are reported the way TrackEval prints them: rates (HOTA, DetA, AssA, MOTA, MOTP, IDF1, ...) in percent,
HOTA-family values averaged over its 19 localisation thresholds (alpha = 0.05 ... 0.95); counts (IDSW, CLR_FP,
CLR_FN, IDTP, ...) as integers. For convenience ``FP``, ``FN`` and ``TP`` repeat ``CLR_FP``, ``CLR_FN`` and
``CLR_TP``.

Protocols:

- **MOTChallenge** (:func:`evaluate_mot_challenge`): TrackEval's own ``MotChallenge2DBox`` dataset class and
  ``Evaluator`` run on a temporary folder (symlinks, or copies where links are not allowed, of each ``gt.txt``,
  ``seqinfo.ini`` and result file), so all preprocessing is the official one: for MOT16/17/20, tracker boxes
  matched (IoU >= 0.5) to distractor classes are removed and only class-1 gt with flag 1 is kept; for MOT15 no
  class preprocessing, only gt with flag 0 is dropped. ``COMBINED`` is TrackEval's ``combine_sequences``.
- **VisDrone-MOT** (:func:`evaluate_visdrone`): the official VisDrone2018-MOT toolkit's Task 4B protocol,
  re-implemented for TrackEval's metric classes (see :func:`prepare_visdrone_sequence` for each step).
- **UAVDT** (:func:`evaluate_uavdt`): common practice: one class (every vehicle category together), the same
  ignore-area rule as VisDrone with the areas of ``*_gt_ignore.txt`` (see :func:`prepare_uavdt_sequence`).

Example:
    >>> import trackers.evaluation as ev
    >>> ev.HEADLINE_METRICS
    ('HOTA', 'DetA', 'AssA', 'MOTA', 'IDF1', 'IDSW', 'FP', 'FN')
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .mot_io import (
    DatasetFormat,
    MotRecords,
    SequenceEntry,
    check_result_complete,
    discover_sequences,
    read_mot_gt,
    read_mot_results,
    read_uavdt_gt,
    read_uavdt_ignore,
    read_visdrone,
    resolve_info,
    resolve_mot_variant,
)
from .mot_io.parsing import parse_table

__all__ = [
    "HEADLINE_METRICS",
    "VISDRONE_EVAL_CLASSES",
    "EvaluationResult",
    "evaluate_mot_challenge",
    "evaluate_uavdt",
    "evaluate_visdrone",
    "ignore_region_keep_mask",
    "prepare_uavdt_sequence",
    "prepare_visdrone_sequence",
    "summarize_metrics",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: The columns of the CLI table, in order.
HEADLINE_METRICS = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW", "FP", "FN")

#: The five classes the VisDrone-MOT toolkit evaluates (its order), name -> category id.
VISDRONE_EVAL_CLASSES: Mapping[str, int] = {"car": 4, "bus": 9, "truck": 6, "pedestrian": 1, "van": 5}

_VISDRONE_IGNORED = (0, 11)  # ignored region, others
_OVERLAP_THRESH = 0.5  # VisDrone toolkit: a box with >= 50 % of its area in ignored regions is dropped
_IOU_THRESH = 0.5


def _import_trackeval() -> ModuleType:
    try:
        import trackeval
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "trackers.evaluation needs TrackEval: pip install 'mmtrack-corr[eval]' (or pip install trackeval)"
        ) from err
    return trackeval


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence TrackEval's prints (config dumps, progress, tracebacks) and log them at debug level."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            yield
    finally:
        text = buf.getvalue().strip()
        if text:
            logger.debug("TrackEval output:\n%s", text)


def _metrics(trackeval: ModuleType) -> list[Any]:
    cfg = {"THRESHOLD": _IOU_THRESH, "PRINT_CONFIG": False}
    with _quiet():
        return [
            trackeval.metrics.HOTA(),
            trackeval.metrics.CLEAR(dict(cfg)),
            trackeval.metrics.Identity(dict(cfg)),
            trackeval.metrics.Count(),
        ]


def summarize_metrics(metric_res: Mapping[str, Mapping[str, Any]]) -> dict[str, float | int]:
    """Flatten one TrackEval result (``{metric_name: {field: value}}``) into ``{field: number}``.

    Rates are in percent (HOTA-family arrays averaged over alpha, as TrackEval's summary does), counts are ints;
    ``FP``, ``FN``, ``TP`` alias ``CLR_FP``, ``CLR_FN``, ``CLR_TP``. ``FP_per_frame`` stays a plain ratio.

    Args:
        metric_res: e.g. ``res[seq]["pedestrian"]`` from ``trackeval.Evaluator.evaluate``.

    Returns:
        A flat dict of floats and ints.

    Example:
        >>> summarize_metrics({"Identity": {"IDF1": 0.5, "IDR": 0.5, "IDP": 0.5, "IDTP": 1, "IDFN": 1, "IDFP": 1}})
        {'IDF1': 50.0, 'IDR': 50.0, 'IDP': 50.0, 'IDTP': 1, 'IDFN': 1, 'IDFP': 1}
    """
    out: dict[str, float | int] = {}
    hota = metric_res.get("HOTA")
    if hota is not None:
        for key in ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA", "OWTA"):
            out[key] = float(100.0 * np.mean(hota[key]))
        for key in ("HOTA(0)", "LocA(0)", "HOTALocA(0)"):
            out[key] = float(100.0 * float(hota[key]))
    clear = metric_res.get("CLEAR")
    if clear is not None:
        for key in ("MOTA", "MOTP", "MODA", "CLR_Re", "CLR_Pr", "MTR", "PTR", "MLR", "sMOTA", "CLR_F1", "MOTAL"):
            out[key] = float(100.0 * float(clear[key]))
        out["FP_per_frame"] = float(clear["FP_per_frame"])
        for key in ("CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MT", "PT", "ML", "Frag", "CLR_Frames"):
            out[key] = int(clear[key])
        out["TP"], out["FP"], out["FN"] = out["CLR_TP"], out["CLR_FP"], out["CLR_FN"]
    ident = metric_res.get("Identity")
    if ident is not None:
        for key in ("IDF1", "IDR", "IDP"):
            out[key] = float(100.0 * float(ident[key]))
        for key in ("IDTP", "IDFN", "IDFP"):
            out[key] = int(ident[key])
    count = metric_res.get("Count")
    if count is not None:
        for key in ("Dets", "GT_Dets", "IDs", "GT_IDs"):
            out[key] = int(count[key])
    return out


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of one evaluation (see the module docstring for units).

    Attributes:
        benchmark: ``"MOT15"``, ``"MOT16"``, ``"MOT17"``, ``"MOT20"``, ``"VisDrone"`` or ``"UAVDT"``.
        sequences: per sequence name, the flat metrics (VisDrone: its evaluated classes pooled).
        combined: all sequences (and, for VisDrone, all classes) pooled the TrackEval way
            (``combine_sequences``: counts summed, association scores weighted by true positives).
        classes: VisDrone only: per class, pooled over sequences.
        class_average: VisDrone only: TrackEval's class average (``combine_classes_class_averaged``) of ``classes``.
        sequence_classes: VisDrone only: per sequence, per class.
        raw: TrackEval's nested results: ``raw[seq][class][metric_name][field]`` plus ``raw["COMBINED_SEQ"]``.
    """

    benchmark: str
    sequences: dict[str, dict[str, float | int]]
    combined: dict[str, float | int]
    classes: dict[str, dict[str, float | int]] = field(default_factory=dict)
    class_average: dict[str, float | int] | None = None
    sequence_classes: dict[str, dict[str, dict[str, float | int]]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (without ``raw``).

        Example:
            >>> EvaluationResult("MOT15", {}, {"HOTA": 1.0}).to_dict()["combined"]
            {'HOTA': 1.0}
        """
        out: dict[str, Any] = {"benchmark": self.benchmark, "sequences": self.sequences, "combined": self.combined}
        if self.classes:
            out["classes"] = self.classes
            out["class_average"] = self.class_average
            out["sequence_classes"] = self.sequence_classes
        return out


# --------------------------------------------------------------------------------------------------------------------
# MOTChallenge
# --------------------------------------------------------------------------------------------------------------------


def _write_canonical(src: Path, dst: Path, allowed: Sequence[int]) -> None:
    """Copy a gt / result table for TrackEval in the one layout it reads without surprises.

    Our readers accept more than TrackEval's text loader (blank lines, whitespace separators, a BOM, a trailing
    comma); rather than let such a file fail inside TrackEval with no line number, TrackEval gets a canonical copy:
    every row as read, comma-separated, frame and id as integers and every other value as the shortest text that
    parses back to the same float64, so TrackEval sees exactly the numbers we validated.
    """
    data, _, _ = parse_table(src, allowed)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "w", encoding="ascii", newline="\n") as fh:
        for row in data.tolist():
            fh.write(f"{int(row[0])},{int(row[1])}," + ",".join(map(repr, row[2:])) + "\n")


def _sequences_with_gt(
    root: Path, fmt: DatasetFormat, sequences: Sequence[str] | None, argument: str, expected: str
) -> list[tuple[SequenceEntry, Path]]:
    """The sequences of ``root`` that have ground truth (those named in ``sequences``), with their gt paths."""
    entries = _select([e for e in discover_sequences(root, fmt) if e.gt_path is not None], sequences, root)
    found = [(e, e.gt_path) for e in entries if e.gt_path is not None]
    if not found:
        raise ValueError(f"{argument}: expected {expected} in {root}, found none")
    return found


def _select(entries: list[SequenceEntry], sequences: Sequence[str] | None, where: Path) -> list[SequenceEntry]:
    if sequences is None:
        return entries
    by_name = {e.name: e for e in entries}
    missing = [s for s in sequences if s not in by_name]
    if missing:
        raise ValueError(
            f"sequences: {', '.join(missing)} not found in {where} (found: {', '.join(sorted(by_name)) or 'none'})"
        )
    return [by_name[s] for s in sequences]


def _check_result_frames(res: MotRecords, path: Path, length: int, what: str) -> None:
    if len(res) and res.max_frame > length:
        r = int(np.argmax(res.frames > length))
        raise ValueError(
            f"{path}:{res.line_numbers[r]}: frame {res.frames[r]} is beyond the sequence length {length} ({what})"
        )


def evaluate_mot_challenge(
    gt_root: PathLike,
    results_dir: PathLike,
    *,
    sequences: Sequence[str] | None = None,
    variant: str = "auto",
    seq_lengths: Mapping[str, int] | None = None,
) -> EvaluationResult:
    """Evaluate MOTChallenge results with TrackEval's ``MotChallenge2DBox`` and ``Evaluator``.

    Args:
        gt_root: folder of sequences ``<SEQ>/gt/gt.txt`` (+ ``<SEQ>/seqinfo.ini``), as found by
            :func:`trackers.mot_io.discover_sequences`.
        results_dir: folder with one ``<SEQ>.txt`` result file per sequence.
        sequences: names to evaluate (default: every sequence of ``gt_root`` that has a gt file).
        variant: gt layout / TrackEval BENCHMARK: ``"auto"`` (10 values per gt row -> ``"MOT15"``, else
            ``"MOT17"``), ``"MOT15"``, ``"MOT16"``, ``"MOT17"`` or ``"MOT20"``. All sequences must agree.
        seq_lengths: per sequence, the number of frames; required for a sequence without ``seqinfo.ini`` and
            overriding the file otherwise.

    Returns:
        Per-sequence and combined metrics (``raw`` holds TrackEval's nested dict).

    Raises:
        ImportError: TrackEval is not installed.
        FileNotFoundError: ``gt_root``, a result file, or a needed ``seqinfo.ini`` is missing (path named).
        ValueError: malformed gt/result file (file and line named), a result frame beyond the sequence length,
            unknown sequence names, mixed gt variants, or a TrackEval error.

    Example:
        >>> evaluate_mot_challenge("../shared/data/mot15", "out").combined["HOTA"]  # doctest: +SKIP
        38.9...
    """
    trackeval = _import_trackeval()
    root, res_dir = Path(gt_root), Path(results_dir)
    entries = _sequences_with_gt(root, "mot", sequences, "gt_root", "sequences with gt/gt.txt")
    lengths = dict(seq_lengths or {})
    benchmarks: dict[str, str] = {}
    seq_info: dict[str, int] = {}
    for e, gt_path in entries:
        gt = read_mot_gt(gt_path, variant)
        ncols = 10 if "world_x" in gt.extras else 9
        benchmarks[e.name] = resolve_mot_variant(variant, ncols if len(gt) else None)
        if e.name in lengths:
            length = int(lengths[e.name])
        elif e.info is not None:
            length = e.info.seq_length
        else:
            raise FileNotFoundError(f"{e.root / 'seqinfo.ini'}: seqinfo.ini not found (needed for the sequence length)")
        _check_result_frames(gt, gt_path, length, "gt")
        res_path = check_result_complete(res_dir, e.name)
        res = read_mot_results(res_path)
        _check_result_frames(res, res_path, length, "seqinfo.ini seqLength")
        # Frames after the last gt / result row add nothing to any metric; TrackEval still allocates per frame,
        # so a seqLength of millions would exhaust memory for nothing.
        seq_info[e.name] = max(1, min(length, max(gt.max_frame, res.max_frame)))
    kinds = sorted(set(benchmarks.values()))
    if len(kinds) > 1:
        detail = ", ".join(f"{s}: {b}" for s, b in benchmarks.items())
        raise ValueError(f"variant: gt files of different layouts ({detail}); evaluate them separately")
    benchmark = kinds[0]

    with tempfile.TemporaryDirectory(prefix="mmtrack-eval-") as tmp:
        t = Path(tmp)
        for e, gt_path in entries:
            _write_canonical(gt_path, t / "gt" / e.name / "gt" / "gt.txt", (9, 10))
            _write_canonical(
                res_dir / f"{e.name}.txt", t / "trackers" / "tracker" / "data" / f"{e.name}.txt", (6, 7, 8, 9, 10)
            )
        dataset_config = {
            "GT_FOLDER": str(t / "gt"),
            "TRACKERS_FOLDER": str(t / "trackers"),
            "OUTPUT_FOLDER": str(t / "output"),
            "TRACKERS_TO_EVAL": ["tracker"],
            "CLASSES_TO_EVAL": ["pedestrian"],
            "BENCHMARK": benchmark,
            "SPLIT_TO_EVAL": "train",
            "SKIP_SPLIT_FOL": True,
            "SEQ_INFO": dict(seq_info),
            "PRINT_CONFIG": False,
        }
        eval_config = {
            "USE_PARALLEL": False,
            "BREAK_ON_ERROR": True,
            "RETURN_ON_ERROR": False,
            "LOG_ON_ERROR": None,
            "PRINT_RESULTS": False,
            "PRINT_ONLY_COMBINED": False,
            "PRINT_CONFIG": False,
            "TIME_PROGRESS": False,
            "DISPLAY_LESS_PROGRESS": True,
            "OUTPUT_SUMMARY": False,
            "OUTPUT_EMPTY_CLASSES": False,
            "OUTPUT_DETAILED": False,
            "PLOT_CURVES": False,
        }
        try:
            with _quiet():
                evaluator = trackeval.Evaluator(eval_config)
                dataset = trackeval.datasets.MotChallenge2DBox(dataset_config)
                metrics = _metrics(trackeval)[:3]
                output, _ = evaluator.evaluate([dataset], metrics)
        except trackeval.utils.TrackEvalException as err:
            raise ValueError(f"TrackEval: {err}") from None
    res = output["MotChallenge2DBox"]["tracker"]
    per_seq = {name: summarize_metrics(res[name]["pedestrian"]) for name in seq_info}
    combined = summarize_metrics(res["COMBINED_SEQ"]["pedestrian"])
    return EvaluationResult(benchmark=benchmark, sequences=per_seq, combined=combined, raw=res)


# --------------------------------------------------------------------------------------------------------------------
# Ignore regions (VisDrone toolkit rule)
# --------------------------------------------------------------------------------------------------------------------


def _matlab_round(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """MATLAB ``round``: halves away from zero (numpy rounds halves to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def ignore_region_keep_mask(
    tlwh: NDArray[np.float64], regions_tlwh: NDArray[np.float64], width: int, height: int
) -> NDArray[np.bool_]:
    """Which boxes survive the VisDrone toolkit's ignored-region rule (``dropObjects.m``), for one frame.

    The toolkit rasterises the ignored regions into a ``height x width`` mask and keeps a box when less than half
    of its area lies inside the mask. Its pixel conventions are reproduced exactly: region values are rounded
    (MATLAB ``round``) and clamped to >= 1, each region ``(x, y, w, h)`` covers the 1-based inclusive pixel
    ranges ``x..min(W, x+w)`` and ``y..min(H, y+h)``; a box is rounded and clamped the same way (its ``w, h`` to
    >= 1), its corner clamped into the image, and its covered count read from the integral image over rows
    ``y+1..min(H, y+h)`` and columns ``x+1..min(W, x+w)`` then divided by the unclipped ``w*h``.

    Args:
        tlwh: boxes (left, top, width, height), shape (N, 4).
        regions_tlwh: ignored regions of the same frame, shape (R, 4).
        width: image width in pixels.
        height: image height in pixels.

    Returns:
        Boolean mask, shape (N,): True = keep (covered fraction < 0.5).

    Raises:
        ValueError: non-positive image size or wrongly shaped arrays.

    Example:
        >>> ignore_region_keep_mask(np.array([[10.0, 10, 10, 10], [60, 60, 10, 10]]), np.array([[0.0, 0, 40, 40]]),
        ...                         100, 100).tolist()
        [False, True]
    """
    boxes = np.asarray(tlwh, dtype=np.float64).reshape(-1, 4)
    regions = np.asarray(regions_tlwh, dtype=np.float64).reshape(-1, 4)
    if int(width) < 1 or int(height) < 1:
        raise ValueError(f"width, height: expected positive image size, got {width} x {height}")
    W, H = int(width), int(height)
    if regions.shape[0] == 0 or boxes.shape[0] == 0:
        return np.ones(boxes.shape[0], dtype=bool)
    # mask[y, x] for 1-based pixel (x, y); row/column 0 stay zero so the integral image has a zero border
    mask = np.zeros((H + 1, W + 1), dtype=np.int32)
    for x, y, w, h in np.maximum(1, _matlab_round(regions)).astype(np.int64):
        mask[y : min(H, y + h) + 1, x : min(W, x + w) + 1] = 1
    integral = mask.cumsum(axis=0, dtype=np.int64).cumsum(axis=1)
    pos = np.maximum(1, _matlab_round(boxes)).astype(np.int64)
    x = np.clip(pos[:, 0], 1, W)
    y = np.clip(pos[:, 1], 1, H)
    w, h = pos[:, 2], pos[:, 3]
    x2 = np.minimum(W, x + w)
    y2 = np.clip(y + h, 1, H)
    covered = integral[y, x] + integral[y2, x2] - integral[y, x2] - integral[y2, x]
    return covered / (w * h) < _OVERLAP_THRESH


def _drop_ignored(recs: MotRecords, regions: MotRecords, width: int, height: int) -> NDArray[np.bool_]:
    """Per-frame :func:`ignore_region_keep_mask` over a whole table (regions matched by frame)."""
    keep = np.ones(len(recs), dtype=bool)
    if len(regions) == 0 or len(recs) == 0:
        return keep
    reg_slices = regions.frame_slices()
    for frame, sl in recs.frame_slices().items():
        rs = reg_slices.get(frame)
        if rs is not None:
            keep[sl] = ignore_region_keep_mask(recs.tlwh[sl], regions.tlwh[rs], width, height)
    return keep


# --------------------------------------------------------------------------------------------------------------------
# TrackEval data dicts from records
# --------------------------------------------------------------------------------------------------------------------


def _sequence_data(trackeval: ModuleType, gt: MotRecords, res: MotRecords, num_timesteps: int, seq: str) -> dict:
    """The dict TrackEval's metrics' ``eval_sequence`` expects, with IoU similarities (TrackEval's box IoU)."""
    iou = trackeval.datasets.MotChallenge2DBox._calculate_box_ious
    gt_u, gt_ids = np.unique(gt.ids, return_inverse=True)
    tr_u, tr_ids = np.unique(res.ids, return_inverse=True)
    gt_sl, tr_sl = gt.frame_slices(), res.frame_slices()
    empty = slice(0, 0)
    # Frames after the last gt / result row add nothing to any metric: a huge sequence length costs no memory.
    num_timesteps = max(1, min(num_timesteps, max(gt.max_frame, res.max_frame)))
    data: dict[str, Any] = {k: [] for k in ("gt_ids", "tracker_ids", "gt_dets", "tracker_dets", "similarity_scores")}
    data["tracker_confidences"] = []
    for t in range(num_timesteps):
        gs, ts = gt_sl.get(t + 1, empty), tr_sl.get(t + 1, empty)
        g_box, t_box = gt.tlwh[gs], res.tlwh[ts]
        data["gt_ids"].append(gt_ids[gs].astype(int))
        data["tracker_ids"].append(tr_ids[ts].astype(int))
        data["gt_dets"].append(g_box)
        data["tracker_dets"].append(t_box)
        data["tracker_confidences"].append(res.scores[ts])
        data["similarity_scores"].append(iou(g_box.copy(), t_box.copy(), box_format="xywh"))
    data.update(
        num_timesteps=num_timesteps,
        num_gt_ids=int(gt_u.size),
        num_tracker_ids=int(tr_u.size),
        num_gt_dets=len(gt),
        num_tracker_dets=len(res),
        seq=seq,
    )
    return data


def prepare_visdrone_sequence(
    gt: MotRecords,
    res: MotRecords,
    width: int,
    height: int,
    classes: Mapping[str, int] = VISDRONE_EVAL_CLASSES,
) -> dict[str, tuple[MotRecords, MotRecords, int]]:
    """Apply the VisDrone2018-MOT toolkit's Task 4B preparation to one sequence and split it per class.

    Steps (as ``evaluateTrackB.m`` / ``dropObjects.m`` / ``classSplit.m`` / ``classEval.m`` do):

    1. Ignored regions of a frame are the gt boxes of category 0 (ignored region) and 11 (others).
    2. Ground truth: rows of categories 0 and 11 are dropped, then every gt box with >= 50 % of its area inside
       that frame's ignored regions (:func:`ignore_region_keep_mask`). The gt "score" column (0 = ignored) is not
       consulted, as in the toolkit, which relies on the categories.
    3. Results: rows of categories 0 and 11 are dropped, then boxes with >= 50 % inside the ignored regions, then
       rows in frames after the last frame of the cleaned gt (the toolkit clips results to the gt's last frame).
    4. Each class keeps the gt and result rows of its category; a class with no gt box left in this sequence is not
       evaluated for it (its result boxes are then not counted, as in ``classEval.m``). The toolkit's
       ``breakGts.m`` (new ids where one gt id changes category) has no effect on per-class evaluation and is
       not needed.

    Matching is then TrackEval's at IoU 0.5 (CLEAR, Identity; HOTA over its alpha range).

    Args:
        gt: VisDrone annotations of the sequence (:func:`trackers.mot_io.read_visdrone`).
        res: results of the sequence, categories in ``classes``.
        width: image width in pixels.
        height: image height in pixels.
        classes: evaluated classes, name -> category id (default: the toolkit's five).

    Returns:
        ``{class_name: (gt_rows, result_rows, num_timesteps)}`` for each class with gt; ``num_timesteps`` is the
        cleaned gt's last frame.

    Example:
        >>> from trackers.mot_io import _records_from_arrays as rec
        >>> gt = rec([1, 1], [1, 2], [[0, 0, 10, 10], [50, 50, 10, 10]], [1, 1], [4, 9])
        >>> sorted(prepare_visdrone_sequence(gt, rec([], [], np.zeros((0, 4)), []), 100, 100))
        ['bus', 'car']
    """
    gt_ign = (gt.classes == 0) | (gt.classes == 11)
    regions = gt.select(gt_ign)
    gt_obj = gt.select(~gt_ign)
    gt_clean = gt_obj.select(_drop_ignored(gt_obj, regions, width, height))
    res_obj = res.select((res.classes != 0) & (res.classes != 11))
    res_clean = res_obj.select(_drop_ignored(res_obj, regions, width, height))
    last = gt_clean.max_frame
    res_clean = res_clean.select(res_clean.frames <= last)
    out: dict[str, tuple[MotRecords, MotRecords, int]] = {}
    for name, cat in classes.items():
        g = gt_clean.select(gt_clean.classes == cat)
        if len(g) == 0:
            continue
        out[name] = (g, res_clean.select(res_clean.classes == cat), last)
    return out


def prepare_uavdt_sequence(
    gt: MotRecords,
    res: MotRecords,
    ignore: MotRecords | None,
    width: int,
    height: int,
    num_timesteps: int,
) -> tuple[MotRecords, MotRecords, int]:
    """Prepare one UAVDT sequence: a single "vehicle" class, ignore areas applied.

    Common practice for UAVDT MOT (single-class vehicle tracking): every gt row of ``*_gt_whole.txt`` is a
    vehicle whatever its category (car, truck, bus) and every result row counts whatever its class column. When
    ``*_gt_ignore.txt`` areas are given, gt and result boxes with >= 50 % of their area inside a frame's ignore
    areas are dropped, with the same rule and pixel conventions as VisDrone (:func:`ignore_region_keep_mask`).
    Result rows after ``num_timesteps`` are an error (raised by the caller).

    Args:
        gt: ``*_gt_whole.txt`` records.
        res: result records.
        ignore: ``*_gt_ignore.txt`` records, or None.
        width: image width in pixels.
        height: image height in pixels.
        num_timesteps: sequence length in frames.

    Returns:
        ``(gt_rows, result_rows, num_timesteps)``.

    Example:
        >>> from trackers.mot_io import _records_from_arrays as rec
        >>> g, r, n = prepare_uavdt_sequence(rec([1], [1], [[0, 0, 9, 9]], [1]), rec([1], [3], [[0, 0, 9, 9]], [1]),
        ...                                  rec([1], [-1], [[0, 0, 20, 20]], [1]), 50, 50, 1)
        >>> (len(g), len(r))
        (0, 0)
    """
    if ignore is None or len(ignore) == 0:
        return gt, res, num_timesteps
    return (
        gt.select(_drop_ignored(gt, ignore, width, height)),
        res.select(_drop_ignored(res, ignore, width, height)),
        num_timesteps,
    )


def _evaluate_prepared(
    trackeval: ModuleType, prepared: Mapping[str, Mapping[str, tuple[MotRecords, MotRecords, int]]], benchmark: str
) -> EvaluationResult:
    """Run TrackEval's metrics per (sequence, class) and combine the TrackEval way."""
    metrics = _metrics(trackeval)
    names = [m.get_name() for m in metrics]
    raw: dict[str, Any] = {}
    with _quiet():
        for seq, per_class in prepared.items():
            raw[seq] = {}
            for cls, (g, r, n) in per_class.items():
                data = _sequence_data(trackeval, g, r, n, f"{seq}({cls})")
                raw[seq][cls] = {name: m.eval_sequence(data) for m, name in zip(metrics, names, strict=True)}

        def combine(items: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
            return {
                name: m.combine_sequences({k: v[name] for k, v in items.items()})
                for m, name in zip(metrics, names, strict=True)
            }

        class_names = sorted({c for per_class in raw.values() for c in per_class})
        pairs = {f"{s}/{c}": raw[s][c] for s in raw for c in raw[s]}
        per_seq_raw = {s: combine(raw[s]) for s in raw if raw[s]}
        per_class_raw = {c: combine({s: raw[s][c] for s in raw if c in raw[s]}) for c in class_names}
        combined_raw = combine(pairs) if pairs else None
        class_avg_raw = (
            {
                name: m.combine_classes_class_averaged({c: per_class_raw[c][name] for c in class_names})
                for m, name in zip(metrics, names, strict=True)
            }
            if len(class_names) > 1
            else None
        )
    if combined_raw is None:
        raise ValueError("no sequence has ground truth left to evaluate after preparation")
    raw["COMBINED_SEQ"] = {**per_class_raw, "all": combined_raw}
    sequences = {s: summarize_metrics(v) for s, v in per_seq_raw.items()}
    classes = {c: summarize_metrics(v) for c, v in per_class_raw.items()}
    seq_classes = {s: {c: summarize_metrics(v) for c, v in raw[s].items()} for s in per_seq_raw}
    single = len(class_names) == 1 and benchmark == "UAVDT"
    return EvaluationResult(
        benchmark=benchmark,
        sequences=sequences,
        combined=summarize_metrics(combined_raw),
        classes={} if single else classes,
        class_average=None if class_avg_raw is None else summarize_metrics(class_avg_raw),
        sequence_classes={} if single else seq_classes,
        raw=raw,
    )


def _image_size(
    entry: SequenceEntry, records: Sequence[MotRecords], image_sizes: Mapping[str, tuple[int, int]] | None
) -> tuple[int, int]:
    if image_sizes and entry.name in image_sizes:
        w, h = image_sizes[entry.name]
        return int(w), int(h)
    info = resolve_info(entry, records=records)
    if info.im_width is None or info.im_height is None:
        return 1, 1
    return info.im_width, info.im_height


def evaluate_visdrone(
    data_dir: PathLike,
    results_dir: PathLike,
    *,
    sequences: Sequence[str] | None = None,
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
    classes: Mapping[str, int] = VISDRONE_EVAL_CLASSES,
) -> EvaluationResult:
    """Evaluate VisDrone-MOT results (the official toolkit's protocol; see :func:`prepare_visdrone_sequence`).

    ``combined`` pools every (sequence, class) pair, as the toolkit's overall score does (it sums the raw counts
    of all pairs); ``classes`` pools each class over sequences; ``class_average`` is the plain mean over classes
    (TrackEval's class average); ``sequences`` pools each sequence's classes.

    Args:
        data_dir: VisDrone folder with ``annotations/<seq>.txt`` (and ``sequences/<seq>/`` images, used for the
            image size).
        results_dir: folder of ``<seq>.txt`` results in the VisDrone layout.
        sequences: names to evaluate (default: all with annotations).
        image_sizes: per sequence ``(width, height)``; default: the first image's size, else the extent of the
            annotation and result boxes.
        classes: evaluated classes, name -> category id.

    Returns:
        The metrics.

    Raises:
        ImportError: TrackEval is not installed.
        FileNotFoundError: missing folder or result file.
        ValueError: malformed files (file and line named), unknown sequences, nothing left to evaluate.

    Example:
        >>> evaluate_visdrone("VisDrone2019-MOT-val", "out").combined["MOTA"]  # doctest: +SKIP
        31.4...
    """
    trackeval = _import_trackeval()
    root, res_dir = Path(data_dir), Path(results_dir)
    entries = _sequences_with_gt(root, "visdrone", sequences, "data_dir", "annotations/<seq>.txt files")
    prepared: dict[str, dict[str, tuple[MotRecords, MotRecords, int]]] = {}
    for e, gt_path in entries:
        gt = read_visdrone(gt_path, "annotations")
        res = read_visdrone(check_result_complete(res_dir, e.name), "results")
        w, h = _image_size(e, [gt, res], image_sizes)
        prepared[e.name] = prepare_visdrone_sequence(gt, res, w, h, classes)
    return _evaluate_prepared(trackeval, prepared, "VisDrone")


def evaluate_uavdt(
    data_dir: PathLike,
    results_dir: PathLike,
    *,
    sequences: Sequence[str] | None = None,
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
    seq_lengths: Mapping[str, int] | None = None,
) -> EvaluationResult:
    """Evaluate UAVDT results (single vehicle class, ignore areas; see :func:`prepare_uavdt_sequence`).

    Args:
        data_dir: UAVDT folder (``GT/<seq>_gt_whole.txt``, optional ``GT/<seq>_gt_ignore.txt``, images in
            ``UAV-benchmark-M/<seq>/``; see :func:`trackers.mot_io.discover_sequences`).
        results_dir: folder of ``<seq>.txt`` results in the MOTChallenge result layout.
        sequences: names to evaluate (default: all with gt).
        image_sizes: per sequence ``(width, height)``; default: first image, else the boxes' extent.
        seq_lengths: per sequence frame count; default: number of images, else the last gt / result frame.

    Returns:
        The metrics (one class, so ``classes`` is empty).

    Raises:
        ImportError: TrackEval is not installed.
        FileNotFoundError: missing folder or result file.
        ValueError: malformed files (file and line named), result frames beyond the sequence, unknown sequences.

    Example:
        >>> evaluate_uavdt("UAVDT", "out").combined["IDF1"]  # doctest: +SKIP
        60.1...
    """
    trackeval = _import_trackeval()
    root, res_dir = Path(data_dir), Path(results_dir)
    entries = _sequences_with_gt(root, "uavdt", sequences, "data_dir", "GT/<seq>_gt_whole.txt files")
    prepared: dict[str, dict[str, tuple[MotRecords, MotRecords, int]]] = {}
    for e, gt_path in entries:
        gt = read_uavdt_gt(gt_path)
        res_path = check_result_complete(res_dir, e.name)
        res = read_mot_results(res_path)
        ignore = read_uavdt_ignore(e.ignore_path) if e.ignore_path is not None else None
        explicit = (seq_lengths or {}).get(e.name)
        info = resolve_info(e, seq_length=explicit, records=[gt, res])
        length = max(info.seq_length, gt.max_frame)
        _check_result_frames(res, res_path, length, "sequence length")
        w, h = _image_size(e, [gt, res], image_sizes)
        prepared[e.name] = {"vehicle": prepare_uavdt_sequence(gt, res, ignore, w, h, length)}
    return _evaluate_prepared(trackeval, prepared, "UAVDT")
