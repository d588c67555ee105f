"""Tests for trackers.mot_io: readers, writers, seqinfo, discovery, and every error message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trackers.mot_io import (
    ResultWriter,
    SequenceEntry,
    SequenceInfo,
    detect_format,
    discover_sequences,
    read_mot_detections,
    read_mot_gt,
    read_mot_results,
    read_seqinfo,
    read_uavdt_gt,
    read_uavdt_ignore,
    read_visdrone,
    resolve_info,
    resolve_mot_variant,
    write_results,
    write_seqinfo,
)

DATA = Path(__file__).parent / "data" / "mot15" / "TUD-Campus"


def _write(tmp_path: Path, text: str, name: str = "file.txt") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------------------- reading


def test_real_mot15_gt_and_det() -> None:
    gt = read_mot_gt(DATA / "gt" / "gt.txt")
    det = read_mot_detections(DATA / "det" / "det.txt")
    assert len(gt) == 359 and len(det) == 321
    assert gt.tlwh.shape == (359, 4) and gt.tlwh.dtype == np.float64
    assert (gt.classes == -1).all() and "world_x" in gt.extras
    assert gt.frames.min() == 1 and gt.max_frame == 71
    assert np.all(np.diff(det.frames) >= 0)
    np.testing.assert_allclose(det.tlwh[0], [281.931, 187.466, 79.93, 209.537])
    np.testing.assert_allclose(det.xyxy[0], [281.931, 187.466, 281.931 + 79.93, 187.466 + 209.537])


def test_gt_variants(tmp_path: Path) -> None:
    mot17 = _write(tmp_path, "1,1,10,20,30,40,1,1,0.8\n1,2,50,20,30,40,0,7,0.1\n")
    gt = read_mot_gt(mot17)
    assert gt.classes.tolist() == [1, 7] and gt.scores.tolist() == [1.0, 0.0]
    np.testing.assert_allclose(gt.extras["visibility"], [0.8, 0.1])
    assert resolve_mot_variant("auto", 9) == "MOT17" and resolve_mot_variant("auto", 10) == "MOT15"
    assert resolve_mot_variant("MOT20", 10) == "MOT20"
    mot15 = _write(tmp_path, "1,1,10,20,30,40,1,-1,-1,-1\n", "m15.txt")
    assert read_mot_gt(mot15, "MOT15").classes.tolist() == [-1]
    # a 10-value file read as MOT17 takes column 8 as the class
    assert read_mot_gt(mot15, "MOT17").classes.tolist() == [-1]
    with pytest.raises(ValueError, match=r"m15.txt:1: expected 10 comma-separated values, got 9"):
        read_mot_gt(mot17.rename(tmp_path / "m15.txt"), "MOT15")
    with pytest.raises(ValueError, match="variant: expected one of auto, MOT15"):
        read_mot_gt(mot15, "MOT99")


def test_detections_unsorted_are_sorted_stably(tmp_path: Path) -> None:
    path = _write(tmp_path, "3,-1,0,0,1,1,0.1\n1,-1,5,5,1,1,0.2\n3,-1,9,9,1,1,0.3\n1,-1,7,7,1,1,0.4\n")
    det = read_mot_detections(path)
    assert det.frames.tolist() == [1, 1, 3, 3]
    assert det.scores.tolist() == [0.2, 0.4, 0.1, 0.3]
    assert det.line_numbers.tolist() == [2, 4, 1, 3]
    assert det.frame_slices() == {1: slice(0, 2), 3: slice(2, 4)}


@pytest.mark.parametrize(
    "reader",
    [read_mot_gt, read_mot_detections, read_mot_results, read_visdrone, read_uavdt_gt, read_uavdt_ignore],
)
def test_empty_file_is_valid(tmp_path: Path, reader) -> None:
    recs = reader(_write(tmp_path, "\n  \n"))
    assert len(recs) == 0 and recs.tlwh.shape == (0, 4) and recs.frame_slices() == {}


def test_separators_spaces_and_trailing_comma(tmp_path: Path) -> None:
    res = read_mot_results(_write(tmp_path, "1, 2, 3.5, 4, 5, 6, 0.9,\n2 3 1 1 2 2 0.5\n"))
    assert res.ids.tolist() == [2, 3]
    np.testing.assert_allclose(res.tlwh, np.array([[3.5, 4, 5, 6], [1, 1, 2, 2]]))
    six = read_mot_results(_write(tmp_path, "1,1,0,0,2,2\n", "six.txt"))
    assert six.scores.tolist() == [1.0]


def test_large_file_single_pass(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    frames = rng.integers(1, 2000, n)
    boxes = rng.uniform(0, 100, (n, 4))
    pairs = zip(frames, boxes, strict=True)
    rows = (f"{f},-1,{x:.2f},{y:.2f},{w:.2f},{h:.2f},0.5,-1,-1,-1\n" for f, (x, y, w, h) in pairs)
    text = "".join(rows)
    det = read_mot_detections(_write(tmp_path, text))
    assert len(det) == n
    assert np.array_equal(det.frames, np.sort(frames, kind="stable"))
    assert sum(s.stop - s.start for s in det.frame_slices().values()) == n


def test_visdrone_and_uavdt(tmp_path: Path) -> None:
    ann = read_visdrone(_write(tmp_path, "1,1,10,10,20,20,1,4,0,1\n1,0,0,0,5,5,0,0,0,0\n1,0,9,9,5,5,0,0,0,0\n"))
    assert ann.classes.tolist() == [4, 0, 0]  # ignored regions may share id 0
    np.testing.assert_allclose(ann.extras["occlusion"], [1, 0, 0])
    res = read_visdrone(_write(tmp_path, "1,1,0,0,5,5,0.9,4,-1,-1\n1,1,0,0,5,5,0.8,9,-1,-1\n", "r.txt"), "results")
    assert res.classes.tolist() == [4, 9]  # one id in two classes: per-class trackers
    eight = read_visdrone(_write(tmp_path, "1,-1,0,0,5,5,0.9,4\n", "d.txt"), "detections")
    assert eight.extras["truncation"].tolist() == [-1.0]
    with pytest.raises(ValueError, match="kind: expected 'annotations', 'results' or 'detections', got 'gt'"):
        read_visdrone(tmp_path / "d.txt", "gt")  # type: ignore[arg-type]
    gt = read_uavdt_gt(_write(tmp_path, "1,1,10,10,20,20,1,2,3\n", "g.txt"))
    assert gt.classes.tolist() == [3] and gt.extras["out_of_view"].tolist() == [1.0]
    ign = read_uavdt_ignore(_write(tmp_path, "1,-1,0,0,50,50,-1,-1,-1\n1,-1,60,0,5,5,-1,-1,-1\n", "i.txt"))
    assert len(ign) == 2


# ---------------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("reader", "text", "message"),
    [
        pytest.param(
            read_mot_gt,
            "1,1,0,0,1,1,1,1,1\n" * 16 + "1,2,3,4\n",
            r"gt.txt:17: expected 9 comma-separated values \(as on line 1\), got 4",
            id="column_count_change",
        ),
        pytest.param(
            read_mot_gt, "1,2,3,4\n", r"gt.txt:1: expected 9 or 10 comma-separated values, got 4", id="gt_cols"
        ),
        pytest.param(
            read_mot_detections, "\n1,-1,0,0,1\n", r"gt.txt:2: expected 7 to 10 comma-separated values, got 5", id="det"
        ),
        pytest.param(
            read_mot_results, "1,1,0,0,1,abc,1\n", r"gt.txt:1: value 6 is not a number: 'abc'", id="not_a_number"
        ),
        pytest.param(
            read_mot_results,
            "1,1,0,0,1,1,1\n2,1,0,nan,1,1,1\n",
            r"gt.txt:2: value 4 is nan, expected a finite",
            id="nan",
        ),
        pytest.param(read_mot_detections, "1,-1,0,0,inf,1,1\n", r"gt.txt:1: value 5 is inf", id="inf"),
        pytest.param(
            read_mot_results,
            "1,1,0,0,1,1,1\n1,2,0,0,-3,1,1\n",
            r"gt.txt:2: box width and height must be in \[0, 1e\+07\], got width -3, height 1",
            id="negative_width",
        ),
        pytest.param(
            read_mot_detections,
            "1,-1,0,0,1,-0.5,1\n",
            r"gt.txt:1: box width and height must be in \[0, 1e\+07\], got width 1, height -0.5",
            id="negative_height",
        ),
        pytest.param(
            read_mot_results, "1.5,1,0,0,1,1,1\n", r"gt.txt:1: frame must be an integer, got 1.5", id="frac_frame"
        ),
        pytest.param(
            read_mot_results, "1,1.25,0,0,1,1,1\n", r"gt.txt:1: id must be an integer, got 1.25", id="frac_id"
        ),
        pytest.param(
            read_mot_detections, "0,-1,0,0,1,1,1\n", r"gt.txt:1: frame must be in \[1, 1e\+07\], got 0", id="frame_zero"
        ),
        pytest.param(
            read_mot_gt,
            "2,1,0,0,1,1,1,1,1\n1,1,0,0,1,1,1,1,1\n2,1,5,5,1,1,1,1,1\n",
            r"gt.txt:3: gt id 1 appears twice in frame 2 \(also on line 1\)",
            id="duplicate_gt",
        ),
        pytest.param(
            read_mot_results,
            "1,4,0,0,1,1,1\n1,4,5,5,1,1,1\n",
            r"gt.txt:2: track id 4 appears twice in frame 1 \(also on line 1\)",
            id="duplicate_result",
        ),
        pytest.param(
            lambda p: read_visdrone(p, "results"),
            "1,4,0,0,1,1,1,4,-1,-1\n1,4,5,5,1,1,1,4,-1,-1\n",
            r"gt.txt:2: track id 4 appears twice in frame 1 and class 4 \(also on line 1\)",
            id="duplicate_visdrone_result",
        ),
        pytest.param(
            read_uavdt_gt, "1,1,0,0,1,1,1,1,2.5\n", r"gt.txt:1: class must be an integer, got 2.5", id="uavdt_class"
        ),
    ],
)
def test_error_messages_name_file_and_line(tmp_path: Path, reader, text: str, message: str) -> None:
    path = _write(tmp_path, text, "gt.txt")
    with pytest.raises(ValueError, match=message) as info:
        reader(path)
    assert str(info.value).startswith(str(path) + ":")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.txt: file not found"):
        read_mot_results(tmp_path / "nope.txt")


# ---------------------------------------------------------------------------------------------------------- seqinfo


def test_seqinfo_roundtrip_and_errors(tmp_path: Path) -> None:
    info = read_seqinfo(DATA / "seqinfo.ini")
    assert info == SequenceInfo("TUD-Campus", 25.0, 71, 640, 480, "img1", ".jpg")
    write_seqinfo(tmp_path / "a" / "seqinfo.ini", info)
    assert read_seqinfo(tmp_path / "a" / "seqinfo.ini") == info
    with pytest.raises(FileNotFoundError, match=r"b/seqinfo.ini: seqinfo.ini not found"):
        read_seqinfo(tmp_path / "b" / "seqinfo.ini")
    with pytest.raises(ValueError, match=r"seqinfo.ini: expected a \[Sequence\] section"):
        read_seqinfo(_write(tmp_path, "[Other]\nx=1\n", "c/seqinfo.ini"))
    with pytest.raises(ValueError, match=r"seqinfo.ini: \[Sequence\] seqLength is missing"):
        read_seqinfo(_write(tmp_path, "[Sequence]\nframeRate=30\n", "d/seqinfo.ini"))
    with pytest.raises(ValueError, match=r"\[Sequence\] frameRate: expected a number, got 'fast'"):
        read_seqinfo(_write(tmp_path, "[Sequence]\nframeRate=fast\nseqLength=3\n", "e/seqinfo.ini"))


# ---------------------------------------------------------------------------------------------------------- writing


@pytest.mark.parametrize("layout", ["mot", "visdrone", "uavdt"])
def test_results_roundtrip(tmp_path: Path, layout: str) -> None:
    rng = np.random.default_rng(1)
    n = 50
    frames = np.sort(rng.integers(1, 20, n))
    ids = np.arange(n) + 1
    tlwh = np.round(rng.uniform(0, 300, (n, 4)), 2)
    scores = np.round(rng.uniform(0, 1, n), 2)
    classes = rng.choice([1, 4, 9], n)
    path = tmp_path / f"{layout}.txt"
    with ResultWriter(path, layout=layout) as writer:  # type: ignore[arg-type]
        for f in np.unique(frames):
            m = frames == f
            writer.write_frame(int(f), tlwh[m], ids[m], scores[m], classes[m])
    back = read_visdrone(path, "results") if layout == "visdrone" else read_mot_results(path)
    assert back.frames.tolist() == frames.tolist() and back.ids.tolist() == ids.tolist()
    np.testing.assert_allclose(back.tlwh, tlwh, atol=1e-9)
    np.testing.assert_allclose(back.scores, scores, atol=1e-9)
    if layout == "visdrone":
        assert back.classes.tolist() == classes.tolist()
    assert all(len(line.split(",")) == 10 for line in path.read_text().splitlines())
    # write_results writes the same table again
    write_results(tmp_path / "again.txt", back, layout=layout)  # type: ignore[arg-type]
    assert (tmp_path / "again.txt").read_text() == path.read_text()


def test_writer_flushes_each_frame(tmp_path: Path) -> None:
    path = tmp_path / "partial.txt"
    writer = ResultWriter(path)
    writer.write_frame(1, [[0, 0, 5, 5]], [1], [0.5])
    writer.write_frame(2, np.zeros((0, 4)), [], [])
    # not closed, as after a crash: what is on disk is the .partial file, complete frames only, valid
    partial = tmp_path / "partial.txt.partial"
    assert not path.exists() and read_mot_results(partial).ids.tolist() == [1]
    writer.close()
    assert not partial.exists() and read_mot_results(path).ids.tolist() == [1]
    with pytest.raises(ValueError, match="writer is closed"):
        writer.write_frame(3, [[0, 0, 5, 5]], [1], [0.5])


def test_writer_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="layout: expected one of mot, visdrone, uavdt, got 'kitti'"):
        ResultWriter(tmp_path / "x.txt", layout="kitti")  # type: ignore[arg-type]
    with ResultWriter(tmp_path / "y.txt", layout="visdrone") as w:
        with pytest.raises(ValueError, match="classes: required for the 'visdrone' layout"):
            w.write_frame(1, [[0, 0, 1, 1]], [1], [1.0])
        with pytest.raises(ValueError, match="ids: expected 1 values to match tlwh, got 2"):
            w.write_frame(1, [[0, 0, 1, 1]], [1, 2], [1.0], [4])
        with pytest.raises(ValueError, match=r"frame: expected an integer in \[1, 10000000\], got 0"):
            w.write_frame(0, [[0, 0, 1, 1]], [1], [1.0], [4])


# ---------------------------------------------------------------------------------------------------------- discovery


def test_discover_mot(tmp_path: Path) -> None:
    entries = discover_sequences(DATA.parent)
    assert [e.name for e in entries] == ["TUD-Campus"]
    e = entries[0]
    assert e.format == "mot" and e.gt_path == DATA / "gt" / "gt.txt" and e.det_path == DATA / "det" / "det.txt"
    assert e.info is not None and e.info.seq_length == 71 and e.image_dir is None
    assert e.image_pattern.format(7) == "000007.jpg"
    assert discover_sequences(DATA)[0].name == "TUD-Campus"  # a sequence folder itself
    # no seqinfo: found through det/, the info needs explicit values
    _write(tmp_path, "1,-1,0,0,1,1,1\n", "SEQ/det/det.txt")
    bare = discover_sequences(tmp_path)[0]
    assert bare.info is None and bare.seqinfo_path is None
    with pytest.raises(FileNotFoundError, match=r"SEQ/seqinfo.ini: seqinfo.ini not found"):
        resolve_info(bare)
    assert resolve_info(bare, frame_rate=10, seq_length=5) == SequenceInfo("SEQ", 10.0, 5)
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        discover_sequences(tmp_path / "missing")


def test_discover_visdrone_and_uavdt(tmp_path: Path) -> None:
    import cv2

    vd = tmp_path / "vd"
    (vd / "sequences" / "uav0001").mkdir(parents=True)
    cv2.imwrite(str(vd / "sequences" / "uav0001" / "0000001.jpg"), np.zeros((48, 64, 3), np.uint8))
    _write(vd, "1,1,0,0,5,5,1,4,0,0\n", "annotations/uav0001.txt")
    _write(vd, "1,-1,0,0,5,5,0.9,4,-1,-1\n", "detections/uav0001.txt")
    assert detect_format(vd) == "visdrone"
    (e,) = discover_sequences(vd)
    assert (e.format, e.name, e.image_pattern) == ("visdrone", "uav0001", "{:07d}.jpg")
    assert e.gt_path is not None and e.det_path is not None and e.image_dir is not None
    assert e.image_path(3) == e.image_dir / "0000003.jpg"
    info = resolve_info(e)
    assert (info.frame_rate, info.seq_length, info.im_width, info.im_height) == (30.0, 1, 64, 48)

    ua = tmp_path / "ua"
    _write(ua, "1,1,0,0,5,5,1,1,1\n", "GT/M0101_gt_whole.txt")
    _write(ua, "1,-1,0,0,5,5,-1,-1,-1\n", "GT/M0101_gt_ignore.txt")
    (ua / "UAV-benchmark-M" / "M0101").mkdir(parents=True)
    assert detect_format(ua) == "uavdt"
    (u,) = discover_sequences(ua)
    assert u.ignore_path is not None and u.image_pattern == "img{:06d}.jpg" and u.det_path is None
    # no images: size from the boxes' extent, length from the records
    gt = read_uavdt_gt(ua / "GT" / "M0101_gt_whole.txt")
    info = resolve_info(u, records=[gt])
    assert (info.seq_length, info.im_width, info.im_height) == (1, 5, 5)


def test_sequence_entry_without_images() -> None:
    e = SequenceEntry("s", "mot", Path("."), None, None, None, "{:06d}.jpg")
    assert e.image_path(1) is None
