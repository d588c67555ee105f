"""Tests for mmtrack_demo.video: frame sources, the video sink, and inputs that cannot be read."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from mmtrack_demo.video import (
    VIDEO_CODECS,
    ArraySource,
    FolderSource,
    SourceError,
    VideoFileSource,
    VideoSink,
    open_source,
)


def _frames(n: int, h: int = 48, w: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (0, 0), 1.5) for _ in range(n)]


def _write(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    with VideoSink(path, fps=fps) as sink:
        for f in frames:
            sink.write(f)
    return path


@pytest.mark.parametrize("ext", sorted(VIDEO_CODECS))
def test_sink_then_source_round_trip(tmp_path: Path, ext: str) -> None:
    frames = _frames(12)
    path = _write(tmp_path / f"clip{ext}", frames, fps=12.0)
    src = open_source(path)
    assert isinstance(src, VideoFileSource)
    assert src.size == (64, 48)
    assert src.fps == pytest.approx(12.0, rel=0.01)
    got = list(src)
    assert len(got) == 12 and src.frames_read == 12
    assert src.stop_reason is None
    # lossy codecs: the decoded frames are close to what was written, and in order
    errors = [[float(np.abs(g.astype(int) - f.astype(int)).mean()) for f in frames] for g in got]
    assert [int(np.argmin(row)) for row in errors] == list(range(12))


def test_sink_rejects_bad_use(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"output: expected a file ending in .*got 'a.gif'"):
        VideoSink(tmp_path / "a.gif")
    with pytest.raises(ValueError, match="fps: expected a positive frame rate"):
        VideoSink(tmp_path / "a.mp4", fps=0)
    sink = VideoSink(tmp_path / "a.mkv")
    sink.write(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match=r"frame: expected size \(16, 16\), got \(20, 16\)"):
        sink.write(np.zeros((16, 20, 3), np.uint8))
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        sink.write(np.zeros((16, 16, 3), np.uint8))


def test_folder_source_natural_order_and_fps(tmp_path: Path) -> None:
    frames = _frames(11)
    for i, f in enumerate(frames, start=1):
        cv2.imwrite(str(tmp_path / f"frame{i}.png"), f)  # frame10 must come after frame9
    (tmp_path / "notes.txt").write_text("not a frame")
    src = open_source(tmp_path, fps=25)
    assert isinstance(src, FolderSource)
    assert src.fps == 25 and src.length == 11
    got = list(src)
    assert all(np.array_equal(g, f) for g, f in zip(got, frames, strict=True))
    assert src.stop_reason is None


def test_folder_source_stops_at_an_unreadable_frame(tmp_path: Path) -> None:
    frames = _frames(6)
    for i, f in enumerate(frames, start=1):
        cv2.imwrite(str(tmp_path / f"{i:06d}.jpg"), f)
    (tmp_path / "000004.jpg").write_bytes(b"broken")
    src = FolderSource(tmp_path)
    got = list(src)
    assert len(got) == 3
    assert src.stop_reason is not None and "000004.jpg" in src.stop_reason and "after frame 3" in src.stop_reason


def test_truncated_video_keeps_frames_before_the_break(tmp_path: Path) -> None:
    full = _write(tmp_path / "full.avi", _frames(40, seed=1))
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    src = VideoFileSource(cut)
    assert src.length == 40  # the container header still announces every frame
    got = list(src)
    assert 5 <= len(got) < 40
    assert src.stop_reason is not None and f"after frame {len(got)} of 40" in src.stop_reason


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda d: d / "missing.mp4", "no such file", id="missing"),
        pytest.param(lambda d: d, "no frames in this folder", id="empty_folder"),
        pytest.param(lambda d: _text(d / "notes.mp4"), "cannot decode a frame", id="text_named_mp4"),
        pytest.param(lambda d: _junk(d / "junk.mkv"), "cannot decode a frame", id="junk_bytes"),
    ],
)
def test_unreadable_inputs_fail_at_open(tmp_path: Path, make: object, message: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(SourceError, match=message) as info:
        open_source(path)
    assert str(path) in str(info.value)


def _text(path: Path) -> Path:
    path.write_text("this is not a video\n" * 50)
    return path


def _junk(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    return path


def test_array_source() -> None:
    frames = np.stack(_frames(3))
    src = ArraySource(frames, fps=5, name="mem")
    assert src.size == (64, 48) and src.length == 3 and src.fps == 5
    assert len(list(src)) == 3
    with pytest.raises(SourceError, match="mem: no frames"):
        ArraySource([], name="mem")
    with pytest.raises(SourceError, match=r"expected BGR uint8 frames of shape \(H, W, 3\), got float64"):
        ArraySource([np.zeros((4, 4, 3))])
