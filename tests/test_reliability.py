"""Faults and hostile input for mmtrack-eval and the MOT readers/writers, one section per class of failure.

1 numbers out of range, 2 seqinfo.ini, 3 reader/TrackEval contract and unusable files, 4 output errors and full
disks, 5 stale and concurrent outputs, 6 process handling (kill, Ctrl-C, SIGTERM), 7 truncated images,
8 what we write we can read (and failed updates), 9 the sparse association path equals the dense one.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trackeval", reason="TrackEval (the 'eval' extra) is not installed")

from reliability_helpers import image_dataset, sigint_default  # noqa: E402

from trackers import ByteTracker, MotionTracker  # noqa: E402
from trackers.cli import main  # noqa: E402
from trackers.evaluation import evaluate_mot_challenge  # noqa: E402
from trackers.frames import read_frame  # noqa: E402
from trackers.matching import (  # noqa: E402
    iou_matrix,
    iou_pairs,
    linear_assignment,
    overlap_pairs,
    sparse_linear_assignment,
)
from trackers.mot_io import (  # noqa: E402
    ResultWriter,
    read_mot_detections,
    read_mot_gt,
    read_mot_results,
    read_seqinfo,
)

DATA = Path(__file__).parent / "data" / "mot15"
SEQ = "TUD-Campus"
TESTS = Path(__file__).parent
LINUX = sys.platform.startswith("linux") and Path("/proc/self/stat").exists()


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(DATA, root)
    return root


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    # progress ("tracking", "tracked N sequence(s)") may precede the error, which is one line
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("track")]
    assert len(lines) == 1 and lines[0].startswith("mmtrack-eval: error: ") and "Traceback" not in err, err
    return lines[0]


def _frames_whole(path: Path, reference: Path) -> None:
    """``path`` parses and holds exactly the first frames of ``reference`` (whole frames only)."""
    part = read_mot_results(path)
    full = read_mot_results(reference)
    k = len(part)
    assert k <= len(full)
    assert np.array_equal(part.frames, full.frames[:k]) and np.array_equal(part.ids, full.ids[:k])
    assert np.array_equal(part.tlwh, full.tlwh[:k])
    if 0 < k < len(full):
        assert full.frames[k] != part.frames[-1]  # the cut is on a frame boundary


# ------------------------------------------------------------------------------------------------ 1. numbers


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            "1e19,-1,1,1,5,5,0.9", r"det.txt:2: value 1 is 1e\+19, expected a magnitude <= 1e\+15", id="f_1e19"
        ),
        pytest.param("1e12,-1,1,1,5,5,0.9", r"det.txt:2: frame must be in \[1, 1e\+07\], got 1e\+12", id="f_1e12"),
        pytest.param("3,-1,1e308,1,5,5,0.9", r"det.txt:2: value 3 is 1e\+308, expected a magnitude", id="x_1e308"),
        pytest.param("3,-1,5e7,1,5,5,0.9", r"det.txt:2: box position must be within \+-1e\+07", id="x_5e7"),
        pytest.param("3,-1,1,1,1e12,5,0.9", r"det.txt:2: box width and height must be in \[0, 1e\+07\]", id="w_1e12"),
        pytest.param("3,-1,1,1,5,5,1e300", r"det.txt:2: value 7 is 1e\+300, expected a magnitude", id="score"),
        pytest.param("3,-1,1,1,5,5,0.9,-1,1e999", r"det.txt:2: value 9 is 1e999, expected a finite", id="unused_inf"),
        pytest.param("3,5e9,1,1,5,5,0.9", r"det.txt:2: id must be in \[-2\.14748e\+09, 2\.14748e\+09\]", id="id_5e9"),
    ],
)
def test_numbers_out_of_range_name_file_and_line(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "det.txt"
    cols = len(line.split(","))
    first = ",".join(["1", "-1", "1", "1", "5", "5", "0.9"] + ["-1"] * (cols - 7))
    path.write_text(f"{first}\n{line}\n")
    with pytest.raises(ValueError, match=expected):
        read_mot_detections(path)


def test_streaming_parser_blocks_agree_with_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny blocks (every fast/slow path switch, lines cut at block ends) give the same table and line numbers."""
    import trackers.mot_io.parsing as parsing

    rng = np.random.default_rng(2)
    lines = []
    for k in range(400):
        row = f"{k // 7 + 1},-1,{rng.uniform(0, 500):.3f},{rng.uniform(0, 500):.3f},20,40,{rng.random():.4f},-1,-1,-1"
        lines.append(row if k % 37 else row.replace(",", " "))  # some whitespace-separated rows
        if k % 53 == 0:
            lines.append("   ")  # blank lines shift the line numbers
    path = tmp_path / "det.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())  # BOM, no final newline
    whole = read_mot_detections(path)
    for block in (7, 64, 1000):
        monkeypatch.setattr(parsing, "_BLOCK_BYTES", block)
        part = read_mot_detections(path)
        for field in ("frames", "tlwh", "scores", "line_numbers"):
            assert np.array_equal(getattr(whole, field), getattr(part, field)), (block, field)
    assert whole.line_numbers[-1] == len(lines) and len(whole) == 400
    path.write_bytes("\n".join(lines[:300]).encode() + b"\n1,-1,\xff,1,5,5,0.9,-1,-1,-1\n")
    with pytest.raises(ValueError, match=r"det.txt:301: not UTF-8 text \(byte 0xff\)"):
        read_mot_detections(path)


def test_cli_frame_1e19_is_exit_2_not_silently_dropped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(tmp_path)
    det = root / SEQ / "det" / "det.txt"
    det.write_text(det.read_text() + "1e19,-1,10,10,20,40,0.9,-1,-1,-1\n")
    assert main([str(root), "--output", str(tmp_path / "o"), "--workers", "1"]) == 2
    assert "det.txt:322: value 1 is 1e+19, expected a magnitude <= 1e+15" in _error_line(capsys)


@pytest.mark.parametrize(
    ("boxes", "scores", "expected"),
    [
        pytest.param([[0, 0, 1e308, 10]], [0.9], "boxes_xyxy: expected coordinates within", id="coord"),
        pytest.param([[0, 0, 10, 10]], [1e300], r"scores: expected \|score\| <= 1e\+15", id="score"),
    ],
)
def test_tracker_input_bounds(boxes: list, scores: list, expected: str) -> None:
    tracker = ByteTracker()
    with pytest.raises(ValueError, match=expected):
        tracker.update(np.array(boxes, dtype=float), np.array(scores))
    assert tracker.frame_id == 0


# ------------------------------------------------------------------------------------------------ 2. seqinfo.ini


def _ini(tmp_path: Path, body: str | bytes, name: str = "s") -> Path:
    path = tmp_path / name / "seqinfo.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body)
    return path


def test_seqinfo_bom_and_percent_are_fine(tmp_path: Path) -> None:
    info = read_seqinfo(_ini(tmp_path, b"\xef\xbb\xbf[Sequence]\nname=50%crowd\nframeRate=25\nseqLength=7\n"))
    assert (info.name, info.frame_rate, info.seq_length) == ("50%crowd", 25.0, 7)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "[Sequence]\nframeRate=nan\nseqLength=5\n", r"frameRate: expected a number in \(0, 10000\]", id="nan"
        ),
        pytest.param("[Sequence]\nframeRate=inf\nseqLength=5\n", "frameRate: expected a number in", id="inf"),
        pytest.param("[Sequence]\nframeRate=0\nseqLength=5\n", "frameRate: expected a number in", id="zero"),
        pytest.param(
            "[Sequence]\nframeRate=30\nseqLength=99999999999\n", r"seqLength: expected an integer in", id="len"
        ),
        pytest.param("[Sequence]\nframeRate=30\nseqLength=5.5\n", "seqLength: expected an integer, got '5.5'", id="f"),
        pytest.param("[Sequence]\nframeRate=30\nseqLength=5\nimExt={}\n", "imExt: expected a file extension", id="ext"),
        pytest.param("[Sequence]\nframeRate=30\nseqLength=5\nimDir=../x\n", "imDir: expected a folder name", id="dir"),
        pytest.param("[Sequence]\nframeRate=30\nframeRate=31\nseqLength=5\n", "DuplicateOptionError", id="dup_key"),
        pytest.param("frameRate=30\n", "MissingSectionHeaderError", id="no_header"),
        pytest.param(b"[Sequence]\nname=\xff\xfe\nframeRate=30\nseqLength=5\n", r"seqinfo.ini:2: not UTF-8", id="utf8"),
    ],
)
def test_seqinfo_bad_values_are_value_errors_naming_the_file(tmp_path: Path, body: str | bytes, expected: str) -> None:
    path = _ini(tmp_path, body)
    with pytest.raises(ValueError, match=expected) as info:
        read_seqinfo(path)
    assert str(path) in str(info.value)


def test_seqinfo_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "s" / "seqinfo.ini").mkdir(parents=True)
    with pytest.raises(ValueError, match="seqinfo.ini: expected seqinfo.ini to be a regular file, got a directory"):
        read_seqinfo(tmp_path / "s" / "seqinfo.ini")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_seqinfo_unreadable_is_a_permission_error(tmp_path: Path) -> None:
    path = _ini(tmp_path, "[Sequence]\nframeRate=30\nseqLength=5\n")
    path.chmod(0)
    with pytest.raises(PermissionError, match="seqinfo.ini"):
        read_seqinfo(path)


@pytest.mark.parametrize("skip_empty", [True, False], ids=["skip_empty", "every_frame"])
def test_huge_seqlength_costs_nothing(tmp_path: Path, skip_empty: bool, capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(tmp_path)
    ref = tmp_path / "ref"
    flag = [] if skip_empty else ["--no-skip-empty-frames"]
    assert main([str(root), "--output", str(ref), "--workers", "1", *flag]) == 0
    ini = root / SEQ / "seqinfo.ini"
    ini.write_text(ini.read_text().replace("seqLength=71", "seqLength=9000000"))
    out = tmp_path / "out"
    t0 = time.perf_counter()
    assert main([str(root), "--output", str(out), "--workers", "1", *flag]) == 0, capsys.readouterr().err
    assert time.perf_counter() - t0 < 60  # a real 9M-frame pass would take hours (and TrackEval, gigabytes)
    a = json.loads((ref / "metrics.json").read_text())["combined"]
    b = json.loads((out / "metrics.json").read_text())["combined"]
    assert a == b  # frames past the data add nothing to any metric
    assert (ref / f"{SEQ}.txt").read_bytes() == (out / f"{SEQ}.txt").read_bytes()


# ------------------------------------------------------------------------------------------------ 3. contract


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t.replace("\n", "\n\n"), id="blank_lines"),
        pytest.param(lambda t: "\ufeff" + t, id="bom"),
        pytest.param(lambda t: t.replace("\n", ",\n"), id="trailing_commas"),
        pytest.param(lambda t: t.replace(",", " "), id="whitespace"),
        pytest.param(lambda t: t.replace("\n", "\r\n"), id="crlf"),
    ],
)
def test_what_we_accept_trackeval_evaluates(tmp_path: Path, mangle: object) -> None:
    root = _copy(tmp_path)
    res = tmp_path / "res"
    res.mkdir()
    # results: the gt boxes themselves, ids shifted (a perfect tracker)
    gt = read_mot_gt(root / SEQ / "gt" / "gt.txt")
    rows = [
        f"{f},{i + 100},{x},{y},{w},{h},1,-1,-1,-1"
        for f, i, (x, y, w, h) in zip(gt.frames, gt.ids, gt.tlwh, strict=True)
    ]
    (res / f"{SEQ}.txt").write_text("\n".join(rows) + "\n")
    clean = evaluate_mot_challenge(root, res).combined
    gt_path = root / SEQ / "gt" / "gt.txt"
    gt_path.write_text(mangle(gt_path.read_text()), encoding="utf-8", newline="")  # type: ignore[operator]
    res_path = res / f"{SEQ}.txt"
    res_path.write_text(mangle(res_path.read_text()), encoding="utf-8", newline="")  # type: ignore[operator]
    assert evaluate_mot_challenge(root, res).combined == clean


def _make_unusable(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink_loop":
        path.symlink_to(path.name)
    else:
        path.symlink_to("does-not-exist.txt")


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink_loop", "dangling_symlink"])
@pytest.mark.parametrize("which", ["gt/gt.txt", "det/det.txt"])
def test_present_but_unusable_files_are_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, which: str
) -> None:
    if kind == "fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    root = _copy(tmp_path)
    _make_unusable(root / SEQ / which, kind)
    assert main([str(root), "--output", str(tmp_path / "o"), "--workers", "1"]) == 2
    line = _error_line(capsys)
    assert f"{SEQ}/{which}" in line and ("regular file" in line or "symbolic link" in line or "cannot access" in line)


# ------------------------------------------------------------------------------------------------ 4. outputs


def test_output_path_errors_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    assert main([str(DATA), "--output", str(tmp_path / "file"), "--workers", "1"]) == 2
    line = _error_line(capsys)
    assert "--output: " in line and "exists and is not a folder" in line
    (tmp_path / "jsondir").mkdir()
    assert (
        main([str(DATA), "--output", str(tmp_path / "o"), "--json", str(tmp_path / "jsondir"), "--workers", "1"]) == 2
    )
    line = _error_line(capsys)
    assert "--json: " in line and "jsondir is a folder" in line
    assert main([str(DATA), "--output", str(tmp_path / "file" / "sub"), "--workers", "1"]) == 2
    assert "file/sub: Not a directory" in _error_line(capsys)


@contextlib.contextmanager
def _tmpfs(path: Path, size: str, readonly: bool = False) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"cannot mount a tmpfs here ({err})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode(errors='replace').strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=20)


def test_full_disk_keeps_files_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(tmp_path)
    ref = tmp_path / "ref"
    assert main([str(root), "--output", str(ref), "--workers", "1"]) == 0
    capsys.readouterr()
    full = (ref / f"{SEQ}.txt").stat().st_size
    with _tmpfs(tmp_path / "small", f"{full // 2}") as out:
        rc = main([str(root), "--output", str(out), "--workers", "1"])
        line = _error_line(capsys)
        assert rc == 2 and f"{SEQ}.txt.partial: No space left on device" in line
        assert not (out / f"{SEQ}.txt").exists() and not (out / "metrics.json").exists()
        _frames_whole(out / f"{SEQ}.txt.partial", ref / f"{SEQ}.txt")
        # the run record could not always be updated on the full disk, but it is whole and vouches for nothing
        assert json.loads((out / "run.json").read_text())["sequences"] == {}
    # metrics.json on a full disk: never left empty or half written
    with _tmpfs(tmp_path / "tiny", "8k") as jdir:
        (jdir / "filler").write_bytes(b"\0" * 8000)
        rc = main([str(root), "--output", str(tmp_path / "o2"), "--json", str(jdir / "m.json"), "--workers", "1"])
        assert rc == 2 and "m.json: No space left on device" in _error_line(capsys)
        assert sorted(p.name for p in jdir.iterdir()) == ["filler"]


def test_readonly_output_folder_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _tmpfs(tmp_path / "ro", "1m", readonly=True) as out:
        assert main([str(DATA), "--output", str(out / "x"), "--workers", "1"]) == 2
        assert "Read-only file system" in _error_line(capsys)


@pytest.mark.skipif(not LINUX, reason="RLIMIT_FSIZE / EFBIG checked on Linux")
def test_file_too_large_cuts_back_to_a_frame(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    ref = tmp_path / "ref"
    assert main([str(root), "--output", str(ref), "--workers", "1"]) == 0
    limit = (ref / f"{SEQ}.txt").stat().st_size // 3

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "trackers.cli", str(root), "--output", str(out), "--workers", "1"],
        preexec_fn=cap,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "File too large" in done.stderr and "Traceback" not in done.stderr, done.stderr
    partial = out / f"{SEQ}.txt.partial"
    assert 0 < partial.stat().st_size <= limit
    _frames_whole(partial, ref / f"{SEQ}.txt")


# ------------------------------------------------------------------------------------------------ 5. stale outputs


def test_failed_rerun_leaves_no_stale_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = image_dataset(tmp_path / "ds", names=("A", "B"), frames=8)
    out = tmp_path / "out"
    args = [str(root), "--tracker", "gmc", "--output", str(out), "--workers", "1"]
    assert main(args) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and set(record["sequences"]) == {"A", "B"}
    assert json.loads((out / "metrics.json").read_text())["run_id"] == record["run_id"]
    # a re-run refused up front (bad input) does not touch the folder: old results and metrics stay consistent
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main([*args, "--track-thresh", "2"]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # a re-run failing half-way: the old metrics go, A is new and recorded, B is only a .partial
    _truncate(root / "B" / "img1" / "000004.png")
    assert main([*args, "--track-thresh", "0.5"]) == 2
    capsys.readouterr()
    assert not (out / "metrics.json").exists() and not (out / "B.txt").exists()
    again = json.loads((out / "run.json").read_text())
    assert again["run_id"] != record["run_id"] and again["status"] == "failed"
    assert again["settings"]["track_thresh"] == 0.5 and set(again["sequences"]) == {"A"}
    assert len(read_mot_results(out / "B.txt.partial")) == 2 * 3  # frames 1-3, whole
    with pytest.raises(ValueError, match="unfinished result of sequence B"):
        evaluate_mot_challenge(root, out)


def test_evaluator_refuses_incomplete_or_changed_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(tmp_path)
    out = tmp_path / "out"
    assert main([str(root), "--output", str(out), "--workers", "1"]) == 0
    capsys.readouterr()
    evaluate_mot_challenge(root, out)  # complete and recorded: fine
    res = out / f"{SEQ}.txt"
    text = res.read_text()
    res.write_text(text.replace(",", ", ", 1))
    with pytest.raises(ValueError, match=r"changed since run .* wrote it"):
        evaluate_mot_challenge(root, out)
    res.write_text(text)
    (out / f"{SEQ}.txt.partial").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="unfinished result of sequence TUD-Campus"):
        evaluate_mot_challenge(root, out)
    (out / f"{SEQ}.txt.partial").unlink()
    record = json.loads((out / "run.json").read_text())
    record["sequences"] = {}
    (out / "run.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="not recorded as a complete result of run"):
        evaluate_mot_challenge(root, out)


# ------------------------------------------------------------------------------------------------ 6. processes


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start(root: Path, out: Path, *extra: str, sleep: float = 0.05) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    env["MMTRACK_TEST_SLEEP"] = str(sleep)
    cmd = [sys.executable, "-m", "trackers.cli", str(root), "--tracker", "motion"]
    cmd += ["--motion-source", "reliability_helpers:slow_source", "--output", str(out), *extra]
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=sigint_default,  # noqa: PLW1509 - resets one signal, no locks taken
    )


def _wait_for_workers(proc: subprocess.Popen[str], count: int, timeout: float = 60.0) -> list[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        # spawn start: a resource tracker plus the workers
        kids = [k for k in _children(proc.pid) if _alive(k)]
        if len(kids) >= count:
            return kids
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"workers did not start: {proc.communicate()}")


def _all_files_parse(out: Path) -> None:
    for path in sorted(out.glob("*.txt*")):
        read_mot_results(path)  # complete files and .partial prefixes alike
    for path in sorted(out.glob("*.json")):
        json.loads(path.read_text())


@pytest.mark.skipif(not LINUX, reason="process checks read /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killing_the_main_process_stops_every_worker(tmp_path: Path, sig: signal.Signals) -> None:
    root = image_dataset(tmp_path / "ds")
    out = tmp_path / "out"
    proc = _start(root, out, "--workers", "2")
    kids = _wait_for_workers(proc, 3)
    time.sleep(0.5)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=30)
    if sig == signal.SIGTERM:
        assert proc.returncode == 143 and "Traceback" not in err, err
        assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    end = time.monotonic() + 10
    while any(_alive(k) for k in kids) and time.monotonic() < end:
        time.sleep(0.05)
    survivors = [k for k in kids if _alive(k)]
    assert not survivors, f"worker processes still running after {sig.name}: {survivors}"
    _all_files_parse(out)


@pytest.mark.skipif(not LINUX, reason="process checks read /proc")
def test_ctrl_c_mid_run_drops_queued_work(tmp_path: Path) -> None:
    root = image_dataset(tmp_path / "ds", names=("A", "B", "C"), frames=40)
    out = tmp_path / "out"
    proc = _start(root, out, "--workers", "2")
    kids = _wait_for_workers(proc, 3)
    time.sleep(0.6)  # A and B are running (40 frames x 50 ms each), C is queued
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    end = time.monotonic() + 10
    while any(_alive(k) for k in kids) and time.monotonic() < end:
        time.sleep(0.05)
    assert not [k for k in kids if _alive(k)]
    assert not (out / "C.txt").exists() and not (out / "C.txt.partial").exists()  # never started
    _all_files_parse(out)
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted" and record["sequences"] == {}


@pytest.mark.skipif(not LINUX, reason="process checks read /proc")
def test_ctrl_c_during_worker_start_up(tmp_path: Path) -> None:
    root = image_dataset(tmp_path / "ds", frames=60)
    out = tmp_path / "out"
    proc = _start(root, out, "--workers", "2")
    kids = _wait_for_workers(proc, 1)  # the first process is up: the workers are still importing
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert len([line for line in err.splitlines() if "mmtrack-eval" in line]) == 1, err
    end = time.monotonic() + 10
    while any(_alive(k) for k in kids) and time.monotonic() < end:
        time.sleep(0.05)
    assert not [k for k in kids if _alive(k)]
    _all_files_parse(out)
    assert not list(out.glob("*.txt")) or json.loads((out / "run.json").read_text())["status"] == "interrupted"


@pytest.mark.skipif(not LINUX, reason="process checks read /proc")
def test_two_runs_on_one_output_folder(tmp_path: Path) -> None:
    root = image_dataset(tmp_path / "ds", names=("A", "B"))
    out = tmp_path / "out"
    first = _start(root, out, "--workers", "1", "--track-thresh", "0.5")
    end = time.monotonic() + 60
    while not (out / "run.json").exists() and time.monotonic() < end:
        time.sleep(0.05)
    second = _start(root, out, "--workers", "1", "--track-thresh", "0.7", sleep=0.0)
    _, err2 = second.communicate(timeout=120)
    _, err1 = first.communicate(timeout=120)
    assert second.returncode == 2 and "is in use by another mmtrack-eval run" in err2, err2
    assert first.returncode == 0, err1
    record = json.loads((out / "run.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert record["status"] == "complete" and metrics["run_id"] == record["run_id"]
    assert metrics["settings"]["track_thresh"] == 0.5 == record["settings"]["track_thresh"]
    evaluate_mot_challenge(root, out)


# ------------------------------------------------------------------------------------------------ 7. images


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_image_is_refused_or_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str], ext: str) -> None:
    root = image_dataset(tmp_path / "ds", names=("A",), frames=8, ext=ext)
    bad = root / "A" / "img1" / f"000005{ext}"
    _truncate(bad)
    with pytest.raises(ValueError, match=f"000005{ext}: truncated"):
        read_frame(bad)
    args = [str(root), "--tracker", "gmc", "--output", str(tmp_path / "o"), "--workers", "1"]
    assert main(args) == 2
    line = _error_line(capsys)
    assert f"000005{ext}: truncated" in line and "(frame 5 of A)" in line
    assert main([*args, "--skip-bad-frames"]) == 0
    err = capsys.readouterr().err
    assert f"warning: skipped unreadable frame: {bad}: truncated" in err and "(frame 5 of A)" in err


# ------------------------------------------------------------------------------------------------ 8. write == read


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({"tlwh": [[0, 0, np.nan, 1]]}, "tlwh: expected finite boxes", id="nan"),
        pytest.param({"tlwh": [[0, 0, np.inf, 1]]}, "tlwh: expected finite boxes", id="inf"),
        pytest.param({"tlwh": [[0, 0, -1, 1]]}, "0 <= w, h", id="negative_size"),
        pytest.param({"tlwh": [[1e8, 0, 1, 1]]}, r"\|x\|, \|y\| <= 1e\+07", id="far"),
        pytest.param({"ids": [1.5]}, r"ids: expected integer values, got 1.5", id="float_id"),
        pytest.param({"ids": [2**40]}, r"ids: expected \|value\| <= 2147483647", id="big_id"),
        pytest.param({"tlwh": [[0, 0, 1, 1]] * 2, "ids": [3, 3], "scores": [1, 1]}, "id 3 twice", id="dup"),
        pytest.param({"scores": [np.nan]}, "scores: expected finite values", id="nan_score"),
    ],
)
def test_writer_refuses_what_the_reader_would(tmp_path: Path, kwargs: dict, expected: str) -> None:
    args = {"tlwh": [[0, 0, 1, 1]], "ids": [1], "scores": [0.5], **kwargs}
    with ResultWriter(tmp_path / "r.txt") as w, pytest.raises(ValueError, match=expected):
        w.write_frame(1, args["tlwh"], args["ids"], args["scores"])
    assert read_mot_results(tmp_path / "r.txt").frames.size == 0


def test_writer_frames_in_order_and_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    path = tmp_path / "r.txt"
    with ResultWriter(path, decimals=3) as w:
        for f in range(1, 30):
            k = int(rng.integers(0, 6))
            w.write_frame(f, rng.uniform(0, 1e6, (k, 4)), rng.permutation(1000)[:k].astype(float), rng.random(k))
        with pytest.raises(ValueError, match="frame: expected frames in increasing order, got 3 after 29"):
            w.write_frame(3, [[0, 0, 1, 1]], [1], [1.0])
    assert len(read_mot_results(path)) == w.lines_written


def test_writer_full_disk_cuts_back_to_the_last_frame(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "small", "8k") as out:
        w = ResultWriter(out / "r.txt")
        frame = 0
        with pytest.raises(OSError):  # noqa: PT012 - the write that fills the disk is the point
            while True:
                frame += 1
                w.write_frame(frame, np.tile([[1.0, 2.0, 30.0, 60.0]], (7, 1)), np.arange(1, 8), np.full(7, 0.5))
        w.abort()
        recs = read_mot_results(out / "r.txt.partial")
        assert recs.max_frame == frame - 1 and len(recs) == 7 * (frame - 1)
        assert not (out / "r.txt").exists()


def test_failed_motion_update_changes_nothing() -> None:
    calls = {"n": 0}

    def source(prev: np.ndarray | None, cur: np.ndarray | None, boxes: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("estimator failed")
        return np.full((len(boxes), 2), 1.5)

    frames = [np.full((8, 8), k, np.uint8) for k in range(8)]
    boxes = [np.array([[10.0 + 2 * k, 10, 30 + 2 * k, 60], [100, 10, 120, 60]]) for k in range(8)]
    scores = np.array([0.9, 0.8])
    good = MotionTracker(lambda p, c, b: np.full((len(b), 2), 1.5))
    bad = MotionTracker(source)
    for k in range(8):
        if k == 3:
            with pytest.raises(RuntimeError, match="estimator failed"):
                bad.update(boxes[k], scores, frame=frames[k])
            assert bad.frame_id == 3
        ref = good.update(boxes[k], scores, frame=frames[k])
        out = bad.update(boxes[k], scores, frame=frames[k])
        assert bad.frame_id == good.frame_id
        assert np.array_equal(ref.ids, out.ids) and np.array_equal(ref.boxes, out.boxes)


# ------------------------------------------------------------------------------------------------ 9. scale


def _boxes(rng: np.random.Generator, k: int, offset: float = 0.0) -> np.ndarray:
    xy = rng.uniform(-50, 500, (k, 2)) + offset
    wh = rng.exponential(30, (k, 2)) * (rng.random((k, 1)) < 0.9) + rng.choice([0, 0, 0, 0, 0, 400], (k, 1))
    return np.concatenate([xy, xy + wh], axis=1)


def test_overlap_pairs_equal_the_dense_matrix() -> None:
    rng = np.random.default_rng(11)
    for trial in range(150):
        n, m = (int(v) for v in rng.integers(0, 60, 2))
        a, b = _boxes(rng, n, float(rng.uniform(-300, 300))), _boxes(rng, m)
        for plus_one in (True, False):
            dense = iou_matrix(a, b, plus_one=plus_one)
            rows, cols = np.nonzero(dense > 0)
            ia, ib = overlap_pairs(a, b, plus_one=plus_one)
            assert np.array_equal(rows, ia) and np.array_equal(cols, ib), trial
            assert np.array_equal(iou_pairs(a, b, ia, ib, plus_one=plus_one), dense[rows, cols])  # bit-identical
        if n and m:
            cost = 1 - iou_matrix(a, b)
            for thresh in (0.3, 0.8):
                d = linear_assignment(cost, thresh)
                s = sparse_linear_assignment(ia, ib, cost[ia, ib], (n, m), thresh)
                assert all(np.array_equal(x, y) for x, y in zip(d, s, strict=True)), trial


@pytest.mark.parametrize("per_class", [False, True])
def test_sparse_tracker_path_equals_dense(per_class: bool) -> None:
    # Continuous random boxes: no two assignments tie exactly. (With exact duplicate detections, several
    # assignments are optimal and the two paths may pick different ones, as documented in linear_assignment.)
    rng = np.random.default_rng(3)
    n = 300
    pos = rng.uniform(0, [900, 500], (n, 2))
    vel = rng.normal(0, 3, (n, 2))
    size = rng.uniform([15, 40], [40, 100], (n, 2))
    cls = rng.integers(0, 3, n)
    sparse, dense = ByteTracker(per_class=per_class), ByteTracker(per_class=per_class)
    sparse._dense_limit, dense._dense_limit = -1, 1 << 62
    for _ in range(25):
        pos += vel
        keep = rng.random(n) > 0.1
        xy = pos[keep] + rng.normal(0, 1, (int(keep.sum()), 2))
        boxes = np.concatenate([xy, xy + size[keep]], axis=1)
        scores = rng.uniform(0.05, 1.0, int(keep.sum()))
        classes = cls[keep]
        a = sparse.update(boxes, scores, classes)
        b = dense.update(boxes, scores, classes)
        assert np.array_equal(a.ids, b.ids) and np.array_equal(a.boxes, b.boxes)
        assert np.array_equal(a.det_indices, b.det_indices)
