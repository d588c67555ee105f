"""Tests for the mmtrack-demo CLI: outputs, bad input (exit 2, one line), a broken video, Ctrl-C / SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmtrack_demo.cli import main
from mmtrack_demo.video import VideoFileSource, VideoSink
from reliability_helpers import sigint_default

from trackers import read_mot_results

H, W = 240, 320


def _scene(tmp_path: Path, n: int = 24, name: str = "clip.avi") -> tuple[Path, Path]:
    """A panning textured background with three coloured blocks; their boxes as a MOT det.txt."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur((rng.random((H + 40, W + 4 * n + 40, 3)) * 255).astype(np.uint8), (0, 0), 2)
    rows = []
    video = tmp_path / name
    with VideoSink(video, fps=10) as sink:
        for t in range(n):
            f = background[20 : 20 + H, 4 * t : 4 * t + W].copy()
            for k in range(3):
                x, y = 30 + 90 * k + 2 * t - 4 * t + 4 * n // 2, 60 + 20 * k
                cv2.rectangle(f, (x, y), (x + 30, y + 70), (0, 0, 255 - 60 * k), -1)
                rows.append(f"{t + 1},-1,{x},{y},31,71,0.9,-1,-1,-1")
            sink.write(f)
    det = tmp_path / "det.txt"
    det.write_text("\n".join(rows) + "\n")
    return video, det


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("mmtrack-demo: error: ")
    return lines[0]


def stand_in_detector(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A ``module:function`` detector (``test_demo_cli:stand_in_detector``): the red-dominant blobs."""
    mask = ((frame[..., 2].astype(int) - frame[..., :2].max(axis=2)) > 100).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    s = stats[1:n][stats[1:n, cv2.CC_STAT_AREA] > 200].astype(float)
    boxes = np.stack([s[:, 0], s[:, 1], s[:, 0] + s[:, 2], s[:, 1] + s[:, 3]], axis=1) if len(s) else np.zeros((0, 4))
    return boxes, np.full(len(boxes), 0.9)


@pytest.mark.parametrize("motion", ["kalman", "gmc"])
def test_video_to_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str], motion: str) -> None:
    video, det = _scene(tmp_path)
    out = tmp_path / "out" / "result.mkv"
    extra = ["--overlay"] if motion == "gmc" else []
    rc = main([str(video), "--detector", f"det:{det}", "--motion", motion, "-o", str(out), "--no-progress", *extra])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "24 frames" in printed and "ms/frame" in printed
    frames = list(VideoFileSource(out))
    assert len(frames) == 24 and frames[0].shape == (H, W, 3)
    res = read_mot_results(out.with_suffix(".txt"))
    assert set(res.ids.tolist()) == {1, 2, 3} and res.max_frame == 24
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["frames"] == 24 and summary["tracks"] == 3 and summary["stopped"] is None
    assert set(summary["time_ms_per_frame"]) == {"decode", "detect", "motion", "track", "draw", "encode"}
    assert summary["fps"] > 0 and summary["motion"] == motion


def test_folder_input_and_callable_detector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video, _ = _scene(tmp_path, n=8)
    folder = tmp_path / "img1"
    folder.mkdir()
    for i, f in enumerate(VideoFileSource(video), start=1):
        cv2.imwrite(str(folder / f"{i:06d}.png"), f)
    out = tmp_path / "folder.mp4"
    rc = main([str(folder), "--detector", "test_demo_cli:stand_in_detector", "--motion", "kalman", "--fps", "5",
               "-o", str(out), "--no-progress", "--max-frames", "6"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["frames"] == 6 and summary["source_fps"] == 5 and summary["detections"] >= 12
    assert len(list(VideoFileSource(out))) == 6


def test_truncated_video_keeps_frames_and_says_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video, det = _scene(tmp_path, n=40)
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "cut_out.mkv"
    rc = main([str(cut), "--detector", f"det:{det}", "--motion", "kalman", "-o", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    n = summary["frames"]
    assert 5 <= n < 40 and f"after frame {n} of 40" in summary["stopped"]
    assert "stopped early" in printed
    assert len(list(VideoFileSource(out))) == n
    assert read_mot_results(out.with_suffix(".txt")).max_frame == n


def _errors(tmp_path: Path) -> list[tuple[list[str], str]]:
    video, det = _scene(tmp_path, n=3)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 20)
    empty = tmp_path / "empty"
    empty.mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    common = ["--detector", f"det:{det}", "--no-progress"]
    out = str(tmp_path / "o.mp4")
    return [
        ([str(tmp_path / "missing.mp4"), *common, "-o", out], "missing.mp4: no such file"),
        ([str(empty), *common, "-o", out], "no frames in this folder"),
        ([str(text), *common, "-o", out], "notes.mp4: cannot decode a frame"),
        ([str(video), *common, "-o", str(blocker / "sub" / "o.mp4")], "--output: cannot write to folder"),
        ([str(video), *common, "-o", str(tmp_path / "o.gif")], "--output: expected a file ending in .mp4"),
        ([str(video), *common, "-o", out, "--motion", "kalman", "--overlay"], "--overlay: --motion kalman has no"),
        ([str(video), *common, "-o", out, "--motion", "gmc", "--motion-weights", str(det)], "only used with --motion"),
        ([str(video), "--detector", "yolo", "-o", out], "--detector: expected one of hog"),
        ([str(video), "--detector", "torchvision:fasterrcnn_resnet50_fpn", "-o", out], "needs --weights PATH"),
        ([str(video), "--detector", "no_such_module_q:f", "-o", out], "cannot import module 'no_such_module_q'"),
        ([str(video), *common, "-o", out, "--max-frames", "0"], "--max-frames: expected a positive integer"),
        ([str(video), *common, "-o", str(video)], "is the input video"),
        ([str(video), *common, "-o", out, "--motion", "gmc", "--motion-max-side", "320"], "only used with --motion"),
        ([str(video), *common, "-o", out, "--motion", "kalman", "--motion-refine", "2"], "--motion-refine: only used"),
        ([str(video), *common, "-o", out, "--motion", "gmc", "--no-motion-box-refine"], "--motion-box-refine: only"),
        ([str(video), *common, "-o", out, "--motion", "kalman", "--motion-camera-fallback"], "fallback: only used"),
        ([str(video), *common, "-o", out, "--motion-refine", "-1"], "--motion-refine: expected an integer >= 0"),
        ([str(video), *common, "-o", out, "--motion-weights", str(tmp_path / "none.pt")], "none.pt: no such file"),
    ]


def test_user_errors_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in _errors(tmp_path):
        assert main(argv) == 2, argv
        line = _one_error_line(capsys)
        assert message in line, (argv, line)
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o.txt").exists()


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--motion" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_interrupted_run_leaves_valid_outputs(tmp_path: Path, sig: int, code: int) -> None:
    video, det = _scene(tmp_path, n=120)
    (tmp_path / "slowdet.py").write_text(
        textwrap.dedent(
            """
            import time
            import numpy as np

            def detect(frame):
                time.sleep(0.05)
                return np.array([[10.0, 10.0, 40.0, 80.0]]), np.array([0.9])
            """
        )
    )
    out = tmp_path / "run.mp4"  # an .mp4 is unreadable unless its writer is closed
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    cmd = [sys.executable, "-m", "mmtrack_demo.cli", str(video), "--detector", "slowdet:detect", "--motion", "kalman",
           "-o", str(out), "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,  # noqa: PLW1509 - resets one signal, no locks taken
    )
    results = out.with_suffix(".txt")
    partial = results.with_name(results.name + ".partial")  # the writer's file until it is closed
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not partial.exists() or partial.read_text().count("\n") < 5):
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    summary = json.loads(out.with_suffix(".json").read_text())
    n = summary["frames"]
    assert 5 <= n < 120 and summary["stopped"] == f"interrupted by {signal.Signals(sig).name} after frame {n}"
    assert len(list(VideoFileSource(out))) == n
    assert read_mot_results(results).max_frame == n


# ---------------------------------------------------------------------------------------------------- built-in
def test_builtin_sequence_scores_motion_and_kalman(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("trackeval", reason="TrackEval (the 'eval' extra) is not installed")
    from mmtrack_demo.builtin import evaluate_results, make_builtin_sequence

    out = tmp_path / "builtin.mkv"
    rc = main(["-o", str(out), "--frames", "12", "--seed", "3", "--motion", "gmc", "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "against ground truth (SYN-heldout-fast-3)" in printed
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["frames"] == 12 and summary["size"] == [960, 544]
    assert set(summary["metrics"]) == {"gmc", "kalman"}
    for metrics in summary["metrics"].values():
        assert {"HOTA", "MOTA", "IDF1", "IDSW"} <= set(metrics)
    assert len(list(VideoFileSource(out))) == 12
    # the same seed renders the same sequence: scoring the written result file again gives the printed numbers
    seq = make_builtin_sequence(tmp_path / "again", frames=12, seed=3, speed="fast")
    again = evaluate_results(seq, {"gmc": out.with_suffix(".txt")})
    assert again["gmc"]["HOTA"] == pytest.approx(summary["metrics"]["gmc"]["HOTA"], abs=1e-9)
    assert again["gmc"]["IDF1"] == pytest.approx(summary["metrics"]["gmc"]["IDF1"], abs=1e-9)


def test_learned_motion_with_a_weights_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The learned path end to end with an untrained small model saved the way trained weights are."""
    motion_model = pytest.importorskip("mmtrack_corr.motion_model")
    import torch

    torch.manual_seed(0)
    cfg = motion_model.MotionModelConfig(
        encoder_widths=(8, 8, 8, 8, 8), multiscale_widths=(8, 8, 8), light_width=8, context="conv"
    )
    weights = tmp_path / "tiny.pt"
    motion_model.save_motion_model(motion_model.MotionModel(cfg), weights)
    video, det = _scene(tmp_path, n=6)
    out = tmp_path / "learned.webm"
    argv = [str(video), "--detector", f"det:{det}", "--motion-weights", str(weights), "--overlay", "-o", str(out),
            "--motion-max-side", "160", "--motion-refine", "2", "--no-motion-box-refine",
            "--motion-camera-fallback"]  # fmt: skip
    assert main([*argv, "--no-progress"]) == 0, capsys.readouterr().err
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["motion"] == "learned" and summary["frames"] == 6  # --motion-weights implies --motion learned
    assert (
        "working size (96, 160) at 544x960, refine 2, box fit off, camera fallback on" in summary["motion_description"]
    )
    assert summary["time_ms_per_frame"]["motion"] > 0
    assert len(list(VideoFileSource(out))) == 6


def test_builtin_default_motion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's first command, shortened: no VIDEO, no --motion (learned where the shipped weights exist)."""
    pytest.importorskip("trackeval", reason="TrackEval (the 'eval' extra) is not installed")
    from mmtrack_demo.motion import default_motion

    out = tmp_path / "first.mp4"
    assert main(["-o", str(out), "--frames", "5", "--no-progress"]) == 0, capsys.readouterr().err
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["motion"] == default_motion() and summary["frames"] == 5
    assert set(summary["metrics"]) == {default_motion(), "kalman"}


def test_text_file_named_mp4_prints_exactly_one_line_in_a_real_process(tmp_path: Path) -> None:
    """FFmpeg writes its own diagnostics to fd 2 (invisible to capsys): the CLI keeps them off the user's screen."""
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 20)
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    code = "import sys; from mmtrack_demo.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(text), "-o", str(tmp_path / "o.mp4")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "notes.mp4: cannot decode a frame" in lines[0], proc.stderr
