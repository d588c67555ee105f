"""``mmtrack-synth``: MOTChallenge folders that trackers.mot_io reads and mmtrack-eval scores as they are."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmtrack_corr.synth_cli import main, sequence_name
from mmtrack_corr.synthetic import make_sequence
from trackers import cli as eval_cli
from trackers.mot_io import discover_sequences, read_mot_detections, read_mot_gt, read_seqinfo

ARGS = ["--sequences", "2", "--frames", "6", "--height", "96", "--width", "160", "--seed", "3", "--max-objects", "6"]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert main([str(out), *ARGS, "--flow"]) == 0
    return out


def test_writes_motchallenge_sequences(written: Path) -> None:
    names = sorted(p.name for p in written.iterdir())
    assert names == [sequence_name("medium", 3, 1), sequence_name("medium", 3, 2)]
    entries = discover_sequences(written)
    assert [e.name for e in entries] == names
    for i, name in enumerate(names, start=1):
        folder = written / name
        info = read_seqinfo(folder / "seqinfo.ini")
        assert (info.name, info.seq_length, info.im_width, info.im_height, info.im_ext) == (name, 6, 160, 96, ".jpg")
        assert info.frame_rate == 30.0
        images = sorted((folder / "img1").iterdir())
        assert [p.name for p in images] == [f"{t:06d}.jpg" for t in range(1, 7)]
        first = cv2.imread(str(images[0]))
        assert first is not None and first.shape == (96, 160, 3)
        # the files hold the sequence that make_sequence gives for (seed, index)
        seq = make_sequence(np.random.default_rng([3, i]), 6, height=96, width=160, max_objects=6)
        gt = read_mot_gt(folder / "gt" / "gt.txt")
        np.testing.assert_array_equal(gt.frames, seq.gt.frames)
        np.testing.assert_array_equal(gt.ids, seq.gt.ids)
        np.testing.assert_allclose(gt.tlwh, seq.gt.tlwh, atol=0.006)
        np.testing.assert_allclose(gt.extras["visibility"], seq.gt.visibility, atol=6e-5)
        assert np.all(gt.classes == 1) and np.all(gt.scores == 1)
        det = read_mot_detections(folder / "det" / "det.txt")
        np.testing.assert_array_equal(det.frames, seq.detections.frames)
        np.testing.assert_allclose(det.tlwh, seq.detections.tlwh, atol=0.006)
        np.testing.assert_allclose(det.scores, seq.detections.scores, atol=6e-5)


def test_flow_files_hold_the_exact_motion(written: Path) -> None:
    folder = written / sequence_name("medium", 3, 1)
    files = sorted((folder / "flow").iterdir())
    assert [p.name for p in files] == [f"{t:06d}.npz" for t in range(1, 6)]
    seq = make_sequence(np.random.default_rng([3, 1]), 6, height=96, width=160, max_objects=6)
    pairs = list(seq.pairs())
    for t in (1, 5):
        with np.load(files[t - 1]) as data:
            assert data["flow"].dtype == np.float16 and data["flow"].shape == (96, 160, 2)
            np.testing.assert_allclose(data["flow"], pairs[t - 1].flow, rtol=1e-3, atol=1e-2)
            np.testing.assert_array_equal(data["valid"], pairs[t - 1].valid)
        np.testing.assert_array_equal(pairs[t - 1].flow, seq.pair(t).flow)  # pairs() == pair(t)


def test_same_command_same_files(written: Path, tmp_path: Path) -> None:
    assert main([str(tmp_path), *ARGS]) == 0
    name = sequence_name("medium", 3, 2)
    for rel in ("gt/gt.txt", "det/det.txt", "seqinfo.ini", "img1/000004.jpg"):
        assert (tmp_path / name / rel).read_bytes() == (written / name / rel).read_bytes(), rel
    assert not (tmp_path / name / "flow").exists()


@pytest.mark.integration
def test_mmtrack_eval_scores_the_written_sequences(written: Path, tmp_path: Path) -> None:
    assert eval_cli.main([str(written), "--tracker", "bytetrack", "--output", str(tmp_path / "res")]) == 0
    metrics = json.loads((tmp_path / "res" / "metrics.json").read_text())
    text = json.dumps(metrics)
    assert sequence_name("medium", 3, 1) in text and "HOTA" in text


def test_existing_sequences_need_overwrite(written: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(written), *ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--overwrite" in err[0]


def test_overwrite_replaces(tmp_path: Path) -> None:
    small = ["--sequences", "1", "--frames", "2", "--height", "64", "--width", "64"]
    assert main([str(tmp_path), *small]) == 0
    (tmp_path / sequence_name("medium", 0, 1) / "stale.txt").write_text("x")
    assert main([str(tmp_path), *small, "--overwrite"]) == 0
    assert not (tmp_path / sequence_name("medium", 0, 1) / "stale.txt").exists()


def test_unfinished_sequence_is_not_discovered(tmp_path: Path) -> None:
    # what a killed run leaves: a hidden .partial folder with some images and no gt/det/seqinfo
    (tmp_path / ".SYN-medium-0-001.partial" / "img1").mkdir(parents=True)
    assert main([str(tmp_path), "--sequences", "1", "--frames", "2", "--height", "64", "--width", "64"]) == 0
    assert [e.name for e in discover_sequences(tmp_path)] == ["SYN-medium-0-001"]
    assert not (tmp_path / ".SYN-medium-0-001.partial").exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        pytest.param(["--speed", "warp"], "--speed", id="speed"),
        pytest.param(["--frames", "1"], "--frames: expected an integer >= 2, got 1", id="frames"),
        pytest.param(["--height", "10"], "--height: expected an integer >= 64, got 10", id="height"),
        pytest.param(["--photos", "test"], "--photos", id="photos"),
        pytest.param(["--frame-rate", "0"], "--frame-rate: expected a finite number > 0", id="frame_rate"),
        pytest.param(["--jpeg-quality", "101"], r"--jpeg-quality: expected an integer in \[1, 100\]", id="jpeg"),
    ],
)
def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], match: str) -> None:
    assert main([str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mmtrack-synth: error:")
    assert re.search(match, err[0])
    assert not (tmp_path / "out").exists()


def test_out_dir_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert main([str(target)]) == 2
    assert "is not a folder" in capsys.readouterr().err
