"""Tests for trackers.evaluation: parity with TrackEval run directly, and the VisDrone / UAVDT protocol pieces."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

trackeval = pytest.importorskip("trackeval", reason="TrackEval (the 'eval' extra) is not installed")

from trackers.evaluation import (  # noqa: E402
    HEADLINE_METRICS,
    evaluate_mot_challenge,
    evaluate_uavdt,
    evaluate_visdrone,
    ignore_region_keep_mask,
    prepare_visdrone_sequence,
    summarize_metrics,
)
from trackers.mot_io import (  # noqa: E402
    ResultWriter,
    read_mot_detections,
    read_mot_gt,
    read_visdrone,
)

DATA = Path(__file__).parent / "data"
SEQ = "TUD-Campus"


def _trackeval_direct(gt_seq_dir: Path, result_file: Path, tmp: Path, benchmark: str) -> dict[str, Any]:
    """TrackEval through its documented entry point (as scripts/run_mot_challenge.py does), standard folder layout."""
    split = f"{benchmark}-train"
    gt_root, trk_root = tmp / "direct_gt", tmp / "direct_trackers"
    shutil.copytree(gt_seq_dir, gt_root / split / SEQ)
    (gt_root / "seqmaps").mkdir(parents=True)
    (gt_root / "seqmaps" / f"{split}.txt").write_text(f"name\n{SEQ}\n")
    (trk_root / split / "mine" / "data").mkdir(parents=True)
    shutil.copy(result_file, trk_root / split / "mine" / "data" / f"{SEQ}.txt")
    eval_config = trackeval.Evaluator.get_default_eval_config()
    eval_config.update(PLOT_CURVES=False, LOG_ON_ERROR=None)
    dataset_config = trackeval.datasets.MotChallenge2DBox.get_default_dataset_config()
    dataset_config.update(GT_FOLDER=str(gt_root), TRACKERS_FOLDER=str(trk_root), BENCHMARK=benchmark)
    metrics_config = {"METRICS": ["HOTA", "CLEAR", "Identity"], "THRESHOLD": 0.5}
    evaluator = trackeval.Evaluator(eval_config)
    datasets = [trackeval.datasets.MotChallenge2DBox(dataset_config)]
    metrics = [trackeval.metrics.HOTA(metrics_config), trackeval.metrics.CLEAR(metrics_config)]
    metrics.append(trackeval.metrics.Identity(metrics_config))
    output, messages = evaluator.evaluate(datasets, metrics)
    assert messages["MotChallenge2DBox"]["mine"] == "Success"
    return output["MotChallenge2DBox"]["mine"]


def _assert_same(ours: dict[str, Any], theirs: dict[str, Any]) -> int:
    """Every field of every metric equal to 1e-6; returns how many values were compared."""
    n = 0
    for metric in ("HOTA", "CLEAR", "Identity"):
        for key, value in theirs[metric].items():
            np.testing.assert_allclose(ours[metric][key], value, rtol=0, atol=1e-6, err_msg=f"{metric}.{key}")
            n += np.size(value)
    return n


def _bytetrack_result(path: Path) -> Path:
    bytetrack = pytest.importorskip("trackers.bytetrack")
    det = read_mot_detections(DATA / "mot15" / SEQ / "det" / "det.txt")
    tracker = bytetrack.ByteTracker(frame_rate=25.0)
    with ResultWriter(path) as writer:
        for frame, sl in det.frame_slices().items():
            out = tracker.update(det.xyxy[sl], det.scores[sl])
            tlwh = out.boxes.copy()
            tlwh[:, 2:] -= tlwh[:, :2]
            writer.write_frame(frame, tlwh, out.ids, out.scores)
    return path


@pytest.mark.parametrize("source", ["perturbed_gt", "bytetrack"])
def test_mot15_parity_with_trackeval(tmp_path: Path, source: str) -> None:
    if source == "perturbed_gt":
        results = DATA / "results"
    else:
        results = tmp_path / "bt"
        _bytetrack_result(results / f"{SEQ}.txt")
    ours = evaluate_mot_challenge(DATA / "mot15", results)
    theirs = _trackeval_direct(DATA / "mot15" / SEQ, results / f"{SEQ}.txt", tmp_path, "MOT15")
    assert ours.benchmark == "MOT15"
    for key in (SEQ, "COMBINED_SEQ"):
        assert _assert_same(ours.raw[key]["pedestrian"], theirs[key]["pedestrian"]) > 250
    # the flat numbers are TrackEval's, in percent
    hota, clear, ident = (theirs["COMBINED_SEQ"]["pedestrian"][m] for m in ("HOTA", "CLEAR", "Identity"))
    expected = {
        "HOTA": 100 * np.mean(hota["HOTA"]),
        "DetA": 100 * np.mean(hota["DetA"]),
        "AssA": 100 * np.mean(hota["AssA"]),
        "MOTA": 100 * clear["MOTA"],
        "MOTP": 100 * clear["MOTP"],
        "IDF1": 100 * ident["IDF1"],
        "IDSW": clear["IDSW"],
        "FP": clear["CLR_FP"],
        "FN": clear["CLR_FN"],
    }
    for key, value in expected.items():
        assert ours.combined[key] == pytest.approx(value, abs=1e-6), key
        assert ours.sequences[SEQ][key] == pytest.approx(value, abs=1e-6), key
    assert set(HEADLINE_METRICS) <= set(ours.combined)
    if source == "perturbed_gt":
        assert 0 < ours.combined["IDSW"] and 0 < ours.combined["FP"] and 0 < ours.combined["FN"]
        assert 50 < ours.combined["HOTA"] < 90


def test_mot17_preprocessing_parity(tmp_path: Path) -> None:
    """A MOT17-layout gt with distractor classes and zero-marked rows: TrackEval's preprocessing applies."""
    rng = np.random.default_rng(7)
    gt = read_mot_gt(DATA / "mot15" / SEQ / "gt" / "gt.txt")
    classes = np.where(gt.ids % 4 == 0, 7, 1)  # static_person: a distractor
    classes[gt.ids == 3] = 8  # distractor
    flags = (rng.random(len(gt)) > 0.1).astype(int)
    seq_dir = tmp_path / "mot17" / SEQ
    (seq_dir / "gt").mkdir(parents=True)
    shutil.copy(DATA / "mot15" / SEQ / "seqinfo.ini", seq_dir / "seqinfo.ini")
    rows = [
        f"{f},{i},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{fl},{c},1.0"
        for f, i, (x, y, w, h), fl, c in zip(gt.frames, gt.ids, gt.tlwh, flags, classes, strict=True)
    ]
    (seq_dir / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    ours = evaluate_mot_challenge(tmp_path / "mot17", DATA / "results")
    assert ours.benchmark == "MOT17"
    theirs = _trackeval_direct(seq_dir, DATA / "results" / f"{SEQ}.txt", tmp_path, "MOT17")
    _assert_same(ours.raw["COMBINED_SEQ"]["pedestrian"], theirs["COMBINED_SEQ"]["pedestrian"])
    plain = evaluate_mot_challenge(DATA / "mot15", DATA / "results")
    # result boxes matched to distractor gt are removed before scoring (MOT15 has no such step)
    assert ours.combined["Dets"] < plain.combined["Dets"] == 357


def test_mot_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"TUD-Campus\.txt: result file not found"):
        evaluate_mot_challenge(DATA / "mot15", tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / f"{SEQ}.txt").write_text("1,1,0,0,5,5,1,-1,-1,-1\n72,1,0,0,5,5,1,-1,-1,-1\n")
    with pytest.raises(ValueError, match=r"TUD-Campus\.txt:2: frame 72 is beyond the sequence length 71"):
        evaluate_mot_challenge(DATA / "mot15", bad)
    with pytest.raises(ValueError, match=r"sequences: MOT17-02 not found in .* \(found: TUD-Campus\)"):
        evaluate_mot_challenge(DATA / "mot15", DATA / "results", sequences=["MOT17-02"])
    # no seqinfo.ini: an error naming it, unless the length is given
    seq = tmp_path / "noini" / SEQ
    shutil.copytree(DATA / "mot15" / SEQ / "gt", seq / "gt")
    with pytest.raises(FileNotFoundError, match=r"noini/TUD-Campus/seqinfo\.ini: seqinfo\.ini not found"):
        evaluate_mot_challenge(tmp_path / "noini", DATA / "results")
    with_len = evaluate_mot_challenge(tmp_path / "noini", DATA / "results", seq_lengths={SEQ: 71})
    reference = evaluate_mot_challenge(DATA / "mot15", DATA / "results")
    assert with_len.combined == reference.combined


def test_summarize_aliases() -> None:
    counts = ("CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MT", "PT", "ML", "Frag", "CLR_Frames")
    res: dict[str, dict[str, float]] = {"CLEAR": dict.fromkeys(counts, 0)}
    res["CLEAR"].update({k: 0.5 for k in ("MOTA", "MOTP", "MODA", "CLR_Re", "CLR_Pr", "MTR", "PTR", "MLR")})
    res["CLEAR"].update({"sMOTA": 0.25, "CLR_F1": 0.5, "MOTAL": 0.5, "FP_per_frame": 0.3})
    res["CLEAR"]["CLR_FP"] = 7
    flat = summarize_metrics(res)
    assert flat["FP"] == 7 and flat["MOTA"] == 50.0 and flat["sMOTA"] == 25.0 and flat["FP_per_frame"] == 0.3


# ---------------------------------------------------------------------------------------------------------- VisDrone


@pytest.mark.parametrize(
    ("box", "keep"),
    [
        pytest.param([10, 10, 10, 10], False, id="inside"),
        pytest.param([36, 10, 10, 10], False, id="exactly_half_dropped"),
        pytest.param([37, 10, 10, 10], True, id="forty_percent_kept"),
        pytest.param([36.5, 10, 10, 10], True, id="matlab_round_half_up"),
        pytest.param([60, 60, 10, 10], True, id="outside"),
    ],
)
def test_ignore_region_rule(box: list[float], keep: bool) -> None:
    # the region (0, 0, 40, 40) covers pixels 1..41 (MATLAB inclusive ranges after max(1, round(.)))
    mask = ignore_region_keep_mask(np.array([box], float), np.array([[0.0, 0.0, 40.0, 40.0]]), 100, 100)
    assert mask.tolist() == [keep]


def test_ignore_region_image_border_and_empty() -> None:
    # a box half outside the image: only 5 x 5 of its 10 x 10 pixels can be covered -> 25 % -> kept
    regions = np.array([[90.0, 90.0, 50.0, 50.0]])
    assert ignore_region_keep_mask(np.array([[95.0, 95.0, 10.0, 10.0]]), regions, 100, 100).tolist() == [True]
    assert ignore_region_keep_mask(np.array([[91.0, 91.0, 8.0, 8.0]]), regions, 100, 100).tolist() == [False]
    assert ignore_region_keep_mask(np.zeros((2, 4)), np.zeros((0, 4)), 10, 10).tolist() == [True, True]
    with pytest.raises(ValueError, match="width, height: expected positive image size, got 0 x 10"):
        ignore_region_keep_mask(np.zeros((1, 4)), np.ones((1, 4)), 0, 10)


def _visdrone_case(root: Path) -> None:
    """Three frames, 100 x 100 px. Known answers are in test_visdrone_protocol."""
    gt = []
    for f in (1, 2, 3):
        gt += [
            f"{f},1,10,10,20,20,1,4,0,0",  # car
            f"{f},5,30,40,10,10,1,4,0,0",  # car
            f"{f},2,60,10,30,30,1,9,0,0",  # bus
            f"{f},0,0,60,40,40,0,0,0,0",  # ignored region
            f"{f},3,5,65,20,20,1,4,0,0",  # car inside the ignored region: dropped
        ]
    gt.append("1,4,60,60,30,30,1,11,0,0")  # "others": dropped, and an ignored region in frame 1
    res = [
        "1,11,10,10,20,20,0.9,4,-1,-1",
        "2,11,10,10,20,20,0.9,4,-1,-1",  # car 1 missed in frame 3: FN
        "1,17,30,40,10,10,0.9,4,-1,-1",
        "2,17,30,40,10,10,0.9,4,-1,-1",
        "3,17,30,40,10,10,0.9,4,-1,-1",
        "1,12,60,10,30,30,0.8,9,-1,-1",
        "2,12,60,10,30,30,0.8,9,-1,-1",
        "3,12,5,5,8,8,0.8,9,-1,-1",  # bus track off target in frame 3: FP, and bus FN
        "1,13,10,70,15,15,0.7,4,-1,-1",  # in the ignored region: dropped
        "2,13,10,70,15,15,0.7,4,-1,-1",
        "1,14,62,62,20,20,0.7,4,-1,-1",  # in the "others" box of frame 1: dropped
        "1,15,40,40,5,5,0.7,1,-1,-1",  # pedestrian: no pedestrian gt, so not evaluated
        "1,18,80,80,5,5,0.7,11,-1,-1",  # category "others": dropped
        "4,16,10,10,20,20,0.7,4,-1,-1",  # after the last gt frame: clipped
    ]
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "s1.txt").write_text("\n".join(gt) + "\n")
    (root / "results").mkdir()
    (root / "results" / "s1.txt").write_text("\n".join(res) + "\n")


def test_visdrone_preparation(tmp_path: Path) -> None:
    _visdrone_case(tmp_path)
    gt = read_visdrone(tmp_path / "annotations" / "s1.txt")
    res = read_visdrone(tmp_path / "results" / "s1.txt", "results")
    prepared = prepare_visdrone_sequence(gt, res, 100, 100)
    assert sorted(prepared) == ["bus", "car"]  # pedestrian has no gt: not evaluated
    car_gt, car_res, n = prepared["car"]
    assert n == 3
    assert sorted(set(car_gt.ids.tolist())) == [1, 5] and len(car_gt) == 6
    assert sorted(set(car_res.ids.tolist())) == [11, 17] and len(car_res) == 5
    bus_gt, bus_res, _ = prepared["bus"]
    assert len(bus_gt) == 3 and len(bus_res) == 3


def test_visdrone_protocol(tmp_path: Path) -> None:
    _visdrone_case(tmp_path)
    result = evaluate_visdrone(tmp_path, tmp_path / "results", image_sizes={"s1": (100, 100)})
    assert result.benchmark == "VisDrone" and sorted(result.classes) == ["bus", "car"]
    car, bus = result.classes["car"], result.classes["bus"]
    assert (car["TP"], car["FP"], car["FN"], car["IDSW"]) == (5, 0, 1, 0)
    assert (bus["TP"], bus["FP"], bus["FN"], bus["IDSW"]) == (2, 1, 1, 0)
    assert car["MOTA"] == pytest.approx(100 * (1 - 1 / 6))
    assert bus["MOTA"] == pytest.approx(100 * (1 - 2 / 3))
    assert car["IDF1"] == pytest.approx(100 * 2 * 5 / (2 * 5 + 0 + 1))
    assert bus["IDF1"] == pytest.approx(100 * 2 * 2 / (2 * 2 + 1 + 1))
    # the toolkit's overall score pools the counts of all (sequence, class) pairs ...
    comb = result.combined
    assert (comb["TP"], comb["FP"], comb["FN"]) == (7, 1, 2)
    assert comb["MOTA"] == pytest.approx(100 * (1 - 3 / 9))
    assert result.sequences["s1"]["MOTA"] == pytest.approx(comb["MOTA"])
    # ... the class average is the plain mean over the classes
    assert result.class_average is not None
    assert result.class_average["MOTA"] == pytest.approx((car["MOTA"] + bus["MOTA"]) / 2)
    assert result.class_average["HOTA"] == pytest.approx((car["HOTA"] + bus["HOTA"]) / 2)
    assert result.sequence_classes["s1"]["car"] == car
    assert 0 < comb["HOTA"] < 100
    # each class's numbers equal TrackEval's own metrics on that class alone
    solo = evaluate_visdrone(tmp_path, tmp_path / "results", image_sizes={"s1": (100, 100)}, classes={"car": 4})
    assert solo.combined == car


def test_visdrone_missing_results(tmp_path: Path) -> None:
    _visdrone_case(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nothing/s1\.txt: result file not found"):
        evaluate_visdrone(tmp_path, tmp_path / "nothing", image_sizes={"s1": (100, 100)})


# ---------------------------------------------------------------------------------------------------------- UAVDT


def test_uavdt_single_class_with_ignore_areas(tmp_path: Path) -> None:
    gt = [
        "1,1,10,10,20,20,1,1,1",  # car
        "2,1,12,10,20,20,1,1,1",
        "1,2,50,10,20,20,1,1,2",  # truck: same single class
        "2,2,50,12,20,20,1,1,2",
        "1,3,5,65,20,20,1,1,3",  # bus inside the ignore area: dropped
    ]
    ignore = ["1,-1,0,60,40,40,-1,-1,-1", "2,-1,0,60,40,40,-1,-1,-1"]
    res = [
        "1,7,10,10,20,20,0.9,-1,-1,-1",
        "2,7,12,10,20,20,0.9,-1,-1,-1",
        "1,8,50,10,20,20,0.9,-1,-1,-1",
        "2,8,50,12,20,20,0.9,-1,-1,-1",
        "1,9,20,82,15,15,0.9,-1,-1,-1",  # inside the ignore area: dropped
        "2,10,80,80,10,10,0.9,-1,-1,-1",  # false positive
    ]
    (tmp_path / "GT").mkdir()
    (tmp_path / "GT" / "M0101_gt_whole.txt").write_text("\n".join(gt) + "\n")
    (tmp_path / "GT" / "M0101_gt_ignore.txt").write_text("\n".join(ignore) + "\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "M0101.txt").write_text("\n".join(res) + "\n")
    result = evaluate_uavdt(tmp_path, tmp_path / "out", image_sizes={"M0101": (100, 100)}, seq_lengths={"M0101": 2})
    c = result.combined
    assert result.benchmark == "UAVDT" and result.classes == {}
    assert (c["TP"], c["FP"], c["FN"], c["IDSW"], c["GT_Dets"]) == (4, 1, 0, 0, 4)
    assert c["MOTA"] == pytest.approx(75.0)
    assert c["IDF1"] == pytest.approx(100 * 8 / 9)
    assert result.sequences["M0101"] == c
    # without the ignore file, the bus counts as missed and the box in the area as a false positive
    (tmp_path / "GT" / "M0101_gt_ignore.txt").unlink()
    plain = evaluate_uavdt(tmp_path, tmp_path / "out", image_sizes={"M0101": (100, 100)}, seq_lengths={"M0101": 2})
    assert (plain.combined["FP"], plain.combined["FN"]) == (2, 1)
