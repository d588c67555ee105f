"""Tests for the mmtrack-eval CLI: the MOT15 headline against official ByteTrack, outputs, and bad input."""

from __future__ import annotations

import json
import shutil
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from official_bytetrack import OFFICIAL_COMBINED, OFFICIAL_PER_SEQUENCE, SHARED_MOT15

pytest.importorskip("trackeval", reason="TrackEval (the 'eval' extra) is not installed")

from trackers.bytetrack import ByteTracker  # noqa: E402
from trackers.cli import main  # noqa: E402
from trackers.evaluation import evaluate_mot_challenge  # noqa: E402
from trackers.mot_io import read_mot_detections, read_mot_results, read_visdrone  # noqa: E402

DATA = Path(__file__).parent / "data" / "mot15"


def zero_motion_source() -> Callable[[np.ndarray | None, np.ndarray | None, np.ndarray], np.ndarray]:
    """A MotionSource factory (given to --motion-source as ``test_cli:zero_motion_source``): no motion."""

    def source(prev_frame: np.ndarray | None, frame: np.ndarray | None, boxes_xyxy: np.ndarray) -> np.ndarray:
        if frame is None or frame.ndim != 3:
            raise ValueError("frame: expected the (H, W, 3) image read by the CLI")
        return np.zeros((len(boxes_xyxy), 2))

    return source


def _copy_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(DATA, root)
    return root


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("mmtrack-eval: error: ")
    return lines[0]


# ---------------------------------------------------------------------------------------------------------- headline


def test_mot15_reproduces_official_bytetrack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not SHARED_MOT15.is_dir():
        pytest.skip(f"shared MOT15 data not found at {SHARED_MOT15} (expected beside the repository)")
    out = tmp_path / "out"
    rc = main([str(SHARED_MOT15), "--tracker", "bytetrack", "--output", str(out), "--workers", "2"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    metrics = json.loads((out / "metrics.json").read_text())
    seen = {k: round(metrics["combined"][k], 2) for k in OFFICIAL_COMBINED}
    per_seq = {
        s: tuple(round(metrics["sequences"][s][k], 2) for k in ("HOTA", "MOTA", "IDF1")) for s in metrics["sequences"]
    }
    print(captured.out, f"\ncombined {seen}\nper sequence {per_seq}")
    for key, official in OFFICIAL_COMBINED.items():
        assert abs(metrics["combined"][key] - official) <= 0.3, f"{key}: {metrics['combined'][key]:.2f} vs {official}"
    assert set(metrics["sequences"]) == set(OFFICIAL_PER_SEQUENCE)
    for name, official_seq in OFFICIAL_PER_SEQUENCE.items():
        for key, official in zip(("HOTA", "MOTA", "IDF1"), official_seq, strict=True):
            value = metrics["sequences"][name][key]
            assert abs(value - official) <= 0.3, f"{name} {key}: {value:.2f} vs {official}"
    assert metrics["settings"]["box_filter"] is True and metrics["settings"]["skip_empty_frames"] is True
    assert "COMBINED" in captured.out


# ---------------------------------------------------------------------------------------------------------- outputs


def test_outputs_table_json_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc = main([str(DATA), "--output", str(out), "--workers", "1", "--json", str(tmp_path / "m.json")])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    header, *rows = captured.out.strip().splitlines()
    assert header.split() == ["Sequence", "HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW", "FP", "FN"]
    assert [r.split()[0] for r in rows] == ["TUD-Campus", "COMBINED"]
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["benchmark"] == "MOT15" and metrics["tracker"] == "bytetrack"
    again = evaluate_mot_challenge(DATA, out)
    assert metrics["combined"] == pytest.approx(again.combined)
    assert rows[-1].split()[1] == f"{again.combined['HOTA']:.2f}"
    res = read_mot_results(out / "TUD-Campus.txt")
    w, h = res.tlwh[:, 2], res.tlwh[:, 3]
    assert len(res) > 100 and np.all(w * h > 100) and np.all(w / h <= 1.6 + 1e-9)  # box filter on for MOT


def _manual_run(det_path: Path, seq_length: int, skip_empty: bool) -> list[tuple[int, int, tuple[float, ...]]]:
    det = read_mot_detections(det_path)
    slices = det.frame_slices()
    tracker = ByteTracker(frame_rate=25.0)
    rows: list[tuple[int, int, tuple[float, ...]]] = []
    for frame in range(1, seq_length + 1):
        sl = slices.get(frame, slice(0, 0))
        if skip_empty and sl.stop == sl.start:
            continue
        out = tracker.update(det.xyxy[sl], det.scores[sl])
        for box, tid in zip(out.boxes, out.ids, strict=True):
            rows.append((frame, int(tid), (box[0], box[1], box[2] - box[0], box[3] - box[1])))
    return rows


@pytest.mark.parametrize("skip", [True, False], ids=["skip_empty", "no_skip_empty"])
def test_empty_and_unsorted_frames(tmp_path: Path, capsys: pytest.CaptureFixture[str], skip: bool) -> None:
    root = _copy_dataset(tmp_path)
    det_path = root / "TUD-Campus" / "det" / "det.txt"
    lines = det_path.read_text().splitlines()
    kept = [ln for ln in lines if not 20 <= int(ln.split(",")[0]) <= 24]  # five empty frames
    rng = np.random.default_rng(3)
    det_path.write_text("\n".join(kept[i] for i in rng.permutation(len(kept))) + "\n")  # frames out of order
    flag = "--skip-empty-frames" if skip else "--no-skip-empty-frames"
    out = tmp_path / "out"
    rc = main([str(root), "--output", str(out), "--workers", "1", "--no-box-filter", flag])
    assert rc == 0, capsys.readouterr().err
    res = read_mot_results(out / "TUD-Campus.txt")
    expected = _manual_run(det_path, 71, skip)
    assert [(int(f), int(i)) for f, i in zip(res.frames, res.ids, strict=True)] == [(f, i) for f, i, _ in expected]
    np.testing.assert_allclose(res.tlwh, np.array([b for _, _, b in expected]), atol=0.051)  # one decimal
    assert not np.isin(res.frames, np.arange(20, 25)).any()


# ---------------------------------------------------------------------------------------------------------- bad input


def _edit_line(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("malformed_det", r"det/det.txt:17: expected 10 comma-separated values (as on line 1), got 4"),
        pytest.param("nan_det", r"det/det.txt:9: value 5 is nan, expected a finite number"),
        pytest.param("negative_det", r"det/det.txt:5: box width and height must be in [0, 1e+07], got width -4"),
        pytest.param("bad_frame_det", r"det/det.txt:3: frame must be an integer, got 2.5"),
        pytest.param("frame_beyond_seq", r"det/det.txt:321: frame 99 is beyond the sequence length 71"),
        pytest.param("malformed_gt", r"gt/gt.txt:4: expected 10 comma-separated values (as on line 1), got 3"),
        pytest.param("duplicate_gt", r"gt/gt.txt:2: gt id 1 appears twice in frame 1 (also on line 1)"),
        pytest.param("missing_seqinfo", r"TUD-Campus/seqinfo.ini: seqinfo.ini not found"),
        pytest.param("missing_det", r"TUD-Campus/det/det.txt: detections not found for sequence TUD-Campus"),
        pytest.param("missing_data_dir", r"DATA_DIR not found"),
        pytest.param("unknown_tracker", r"argument --tracker: invalid choice: 'sort'"),
        pytest.param("unknown_sequence", r"--sequences: MOT17-02 not in"),
        pytest.param("bad_motion_source", r"--motion-source: cannot import module 'no_such_module_xyz'"),
        pytest.param("motion_source_attr", r"--motion-source: module 'trackers.motion' has no attribute 'nope'"),
        pytest.param("motion_without_images", r"img1: images of sequence TUD-Campus not found"),
        pytest.param("bad_workers", r"argument --workers: expected a positive integer, got '0'"),
        pytest.param("bad_thresh", r"argument --track-thresh: expected a number in [0, 1], got '1.5'"),
    ],
)
def test_bad_input_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, expected: str
) -> None:
    root = _copy_dataset(tmp_path)
    seq = root / "TUD-Campus"
    args = [str(root), "--output", str(tmp_path / "out"), "--workers", "1"]
    if case == "malformed_det":
        _edit_line(seq / "det" / "det.txt", 17, "5,-1,1,2")
    elif case == "nan_det":
        _edit_line(seq / "det" / "det.txt", 9, "2,-1,10,20,nan,40,0.9,-1,-1,-1")
    elif case == "negative_det":
        _edit_line(seq / "det" / "det.txt", 5, "1,-1,10,20,-4,40,0.9,-1,-1,-1")
    elif case == "bad_frame_det":
        _edit_line(seq / "det" / "det.txt", 3, "2.5,-1,10,20,4,40,0.9,-1,-1,-1")
    elif case == "frame_beyond_seq":
        _edit_line(seq / "det" / "det.txt", 321, "99,-1,10,20,4,40,0.9,-1,-1,-1")
    elif case == "malformed_gt":
        _edit_line(seq / "gt" / "gt.txt", 4, "1,2,3")
    elif case == "duplicate_gt":
        _edit_line(seq / "gt" / "gt.txt", 2, "1,1,282,201,92,184,1,-1,-1,-1")
    elif case == "missing_seqinfo":
        (seq / "seqinfo.ini").unlink()
    elif case == "missing_det":
        (seq / "det" / "det.txt").unlink()
    elif case == "missing_data_dir":
        args[0] = str(tmp_path / "nowhere")
    elif case == "unknown_tracker":
        args += ["--tracker", "sort"]
    elif case == "unknown_sequence":
        args += ["--sequences", "MOT17-02"]
    elif case == "bad_motion_source":
        args += ["--tracker", "motion", "--motion-source", "no_such_module_xyz:make"]
    elif case == "motion_source_attr":
        args += ["--tracker", "motion", "--motion-source", "trackers.motion:nope"]
    elif case == "motion_without_images":
        args += ["--tracker", "motion", "--motion-source", f"{__name__}:zero_motion_source"]
    elif case == "bad_workers":
        args[-1] = "0"
    elif case == "bad_thresh":
        args += ["--track-thresh", "1.5"]
    rc = main(args)
    line = _one_error_line(capsys)
    assert rc == 2
    assert expected in line, line
    if "det.txt:" in expected or "gt.txt:" in expected:
        assert str(seq) in line  # the full path of the offending file


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--skip-empty-frames" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------- images


def _image_dataset(root: Path, names: tuple[str, ...] = ("A", "B"), frames: int = 6) -> Path:
    import cv2

    for name in names:
        seq = root / name
        (seq / "img1").mkdir(parents=True)
        (seq / "det").mkdir()
        (seq / "seqinfo.ini").write_text(
            f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={frames}\nimWidth=160\nimHeight=120\n"
            "imExt=.jpg\n"
        )
        rng = np.random.default_rng(len(name))
        image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        rows = []
        for f in range(1, frames + 1):
            cv2.imwrite(str(seq / "img1" / f"{f:06d}.jpg"), image)
            rows += [f"{f},-1,{10 + 2 * f},20,20,40,0.9,-1,-1,-1", f"{f},-1,{90 - f},30,18,36,0.8,-1,-1,-1"]
        (seq / "det" / "det.txt").write_text("\n".join(rows) + "\n")
    return root


def test_motion_tracker_partial_results_survive_a_later_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _image_dataset(tmp_path / "ds")
    (root / "B" / "img1" / "000003.jpg").unlink()
    source = f"{__name__}:zero_motion_source"
    out = tmp_path / "out"
    rc = main([str(root), "--tracker", "motion", "--motion-source", source, "--output", str(out), "--workers", "1"])
    line = _one_error_line(capsys)
    assert rc == 2 and "B/img1/000003.jpg: cannot read image (frame 3 of B)" in line
    finished = read_mot_results(out / "A.txt")
    assert len(finished) == 12 and finished.max_frame == 6  # A finished before B failed: complete file
    # no ground truth here: tracking alone succeeds and nothing is evaluated
    rc = main([str(root), "--tracker", "motion", "--motion-source", source, "--output", str(out), "--sequences", "A"])
    assert rc == 0
    assert read_mot_results(out / "A.txt").ids.tolist() == finished.ids.tolist()
    assert "nothing evaluated" in capsys.readouterr().err


def test_motion_tracker_defaults_to_the_learned_estimator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --motion-source the CLI imports mmtrack_corr.estimator:default_motion_source by name (here a fake)."""
    calls: list[dict[str, object]] = []

    def default_motion_source(
        weights: str | None = None,
        device: str = "cpu",
        uncertainty_thresh: float | None = None,
        refine: int = 0,
        box_refine: bool = True,
        camera_fallback: bool = False,
    ) -> object:
        calls.append({"weights": weights, "device": device})
        if uncertainty_thresh is not None:
            calls[-1]["uncertainty_thresh"] = uncertainty_thresh
        if refine:
            calls[-1]["refine"] = refine
        if not box_refine:
            calls[-1]["box_refine"] = box_refine
        if camera_fallback:
            calls[-1]["camera_fallback"] = camera_fallback
        return zero_motion_source()

    fake = types.ModuleType("mmtrack_corr.estimator")
    fake.default_motion_source = default_motion_source  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mmtrack_corr.estimator", fake)
    root = _image_dataset(tmp_path / "ds", names=("A",))
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"fake")
    out = tmp_path / "out"
    args = [str(root), "--tracker", "motion", "--output", str(out), "--workers", "1"]
    assert main([*args, "--motion-weights", str(weights), "--device", "cuda:1"]) == 0
    assert calls == [{"weights": str(weights), "device": "cuda:1"}]
    assert len(read_mot_results(out / "A.txt")) == 12
    summary = json.loads((out / "metrics.json").read_text())["settings"]
    assert summary["motion_source"] == "mmtrack_corr.estimator:default_motion_source"
    assert summary["motion_weights"] == str(weights) and summary["device"] == "cuda:1"
    assert main(args) == 0
    assert calls[-1] == {"weights": None, "device": "cpu"}
    assert main([*args, "--motion-uncertainty", "7.5"]) == 0
    assert calls[-1] == {"weights": None, "device": "cpu", "uncertainty_thresh": 7.5}
    assert json.loads((out / "metrics.json").read_text())["settings"]["motion_uncertainty"] == 7.5
    assert main([*args, "--motion-refine", "3"]) == 0
    assert calls[-1] == {"weights": None, "device": "cpu", "refine": 3}
    assert json.loads((out / "metrics.json").read_text())["settings"]["motion_refine"] == 3
    assert main([*args, "--no-motion-box-refine"]) == 0
    assert calls[-1] == {"weights": None, "device": "cpu", "box_refine": False}
    assert json.loads((out / "metrics.json").read_text())["settings"]["motion_box_refine"] is False
    assert main([*args, "--motion-camera-fallback"]) == 0
    assert calls[-1] == {"weights": None, "device": "cpu", "camera_fallback": True}
    assert json.loads((out / "metrics.json").read_text())["settings"]["motion_camera_fallback"] is True
    capsys.readouterr()

    # the factory's own failure (bad weights, unknown device) is a user error naming the call
    def failing(weights: str | None = None, device: str = "cpu") -> object:
        raise RuntimeError(f"unknown device {device}")

    fake.default_motion_source = failing  # type: ignore[attr-defined]
    assert main([*args, "--device", "tpu"]) == 2
    assert "default_motion_source(weights=None, device='tpu') failed: RuntimeError: unknown device tpu" in (
        _one_error_line(capsys)
    )


@pytest.mark.parametrize(
    ("extra", "module", "expected"),
    [
        pytest.param([], None, "mmtrack_corr.estimator:default_motion_source", id="estimator_missing"),
        pytest.param(
            ["--motion-weights", "/no/such.pt"], "fake", "--motion-weights: /no/such.pt: not found", id="weights"
        ),
        pytest.param(["--motion-source", "x:y", "--device", "cpu"], "fake", "cannot be combined", id="with_source"),
        pytest.param(
            ["--motion-uncertainty", "0"], "fake", "--motion-uncertainty: expected a number of pixels > 0", id="unc"
        ),
        pytest.param(
            ["--motion-source", "x:y", "--motion-uncertainty", "3"], "fake", "cannot be combined", id="unc_source"
        ),
        pytest.param(["--motion-refine", "-1"], "fake", "--motion-refine: expected a number of steps >= 0", id="ref"),
        pytest.param(["--motion-source", "x:y", "--motion-refine", "2"], "fake", "cannot be combined", id="refine_src"),
    ],
)
def test_learned_estimator_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    module: str | None,
    expected: str,
) -> None:
    fake = None
    if module is not None:
        fake = types.ModuleType("mmtrack_corr.estimator")
        fake.default_motion_source = lambda weights=None, device="cpu": zero_motion_source()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mmtrack_corr.estimator", fake)  # None: the import fails
    root = _image_dataset(tmp_path / "ds", names=("A",))
    rc = main([str(root), "--tracker", "motion", "--output", str(tmp_path / "o"), *extra])
    line = _one_error_line(capsys)
    assert rc == 2 and expected in line
    if module is None:
        assert "--motion-source" in line


def test_estimator_options_need_tracker_motion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(DATA), "--device", "cpu", "--output", "/nonexistent/never"]) == 2
    assert "--device is only used with --tracker motion" in _one_error_line(capsys)


def test_gmc_tracker_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("trackers.gmc")
    root = _image_dataset(tmp_path / "ds", names=("A",))
    out = tmp_path / "out"
    rc = main([str(root), "--tracker", "gmc", "--output", str(out), "--workers", "1", "--no-box-filter"])
    assert rc == 0, capsys.readouterr().err
    res = read_mot_results(out / "A.txt")
    assert sorted(set(res.ids.tolist())) == [1, 2] and res.max_frame == 6


# ------------------------------------------------------------------------------------------------------ VisDrone, UAVDT


def _moving_objects(frames: int = 20) -> list[tuple[int, int, int, float, float, float, float]]:
    """(frame, id, category, x, y, w, h) of four objects moving at constant speed."""
    objects = [(4, 10, 10, 30, 20, 3), (9, 200, 50, 60, 40, -2), (1, 100, 150, 8, 20, 1), (3, 50, 200, 10, 10, 0)]
    return [
        (f, oid, cat, float(x0 + vx * f), float(y0), float(w), float(h))
        for f in range(1, frames + 1)
        for oid, (cat, x0, y0, w, h, vx) in enumerate(objects, start=1)
    ]


def test_visdrone_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "vd"
    (root / "annotations").mkdir(parents=True)
    (root / "detections").mkdir()
    rng = np.random.default_rng(0)
    ann, det = [], []
    for f, oid, cat, x, y, w, h in _moving_objects():
        ann.append(f"{f},{oid},{x},{y},{w},{h},1,{cat},0,0")
        if (f, oid) != (7, 1):  # the car is missed once
            det.append(f"{f},-1,{x + rng.normal(0, 1):.2f},{y + rng.normal(0, 1):.2f},{w},{h},0.9,{cat},-1,-1")
    for f in range(1, 21):
        ann.append(f"{f},0,0,250,100,50,0,0,0,0")  # ignored region
        det.append(f"{f},-1,10,260,20,20,0.9,4,-1,-1")  # a "car" inside it: not counted
    (root / "annotations" / "s1.txt").write_text("\n".join(ann) + "\n")
    (root / "detections" / "s1.txt").write_text("\n".join(det) + "\n")
    out = tmp_path / "out"
    assert main([str(root), "--output", str(out), "--workers", "1"]) == 0
    table = capsys.readouterr().out
    assert [r.split()[0] for r in table.strip().splitlines()[1:]] == [
        "s1",
        "[bus]",
        "[car]",
        "[pedestrian]",
        "CLASS_AVERAGE",
        "COMBINED",
    ]
    res = read_visdrone(out / "s1.txt", "results")
    assert set(res.classes.tolist()) == {1, 4, 9}  # bicycles (3) are not tracked; classes kept per track
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["format"] == "visdrone" and metrics["settings"]["box_filter"] is False
    car = metrics["classes"]["car"]
    assert (car["FP"], car["FN"], car["IDSW"]) == (0, 1, 0)
    assert metrics["classes"]["bus"]["MOTA"] == pytest.approx(100.0)


def test_uavdt_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "uavdt"
    (root / "GT").mkdir(parents=True)
    (root / "detections").mkdir()
    objs = [o for o in _moving_objects() if o[2] in (4, 9)]
    gt = [f"{f},{oid},{x},{y},{w},{h},1,1,{1 if cat == 4 else 3}" for f, oid, cat, x, y, w, h in objs]
    det = [f"{f},-1,{x},{y},{w},{h},0.9,-1,-1,-1" for f, oid, cat, x, y, w, h in objs]
    (root / "GT" / "M0101_gt_whole.txt").write_text("\n".join(gt) + "\n")
    (root / "detections" / "M0101.txt").write_text("\n".join(det) + "\n")
    out = tmp_path / "out"
    assert main([str(root), "--output", str(out), "--workers", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["format"] == "uavdt" and metrics["benchmark"] == "UAVDT"
    c = metrics["combined"]
    assert (c["MOTA"], c["IDF1"], c["IDSW"]) == (100.0, 100.0, 0)
    assert "COMBINED" in capsys.readouterr().out


def test_cli_module_imports_neither_torch_nor_mmtrack_corr() -> None:
    """The learned estimator is imported by name only when --tracker motion runs without --motion-source."""
    import subprocess

    code = "import sys, trackers.cli; print(sorted(m for m in ('torch', 'mmtrack_corr') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
