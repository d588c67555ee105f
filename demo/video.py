"""Frame sources (a video file, a folder of frames, frames in memory) and the annotated-video writer.

Every source yields BGR ``uint8`` frames of shape (H, W, 3) and records why it stopped: ``stop_reason`` is None
after a clean end and a sentence (``"decoding failed at frame 41 of 120 ..."``) when the input broke off, so callers
keep the frames before the break and report where it stopped. Opening a source reads its first frame, so an input
that cannot be decoded at all (missing file, a text file named ``.mp4``, an unsupported codec, a folder without
frames) fails at once with :class:`SourceError`, before any work.
"""

from __future__ import annotations

import abc
import contextlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_CODECS",
    "ArraySource",
    "FolderSource",
    "FrameSource",
    "SourceError",
    "VideoFileSource",
    "VideoSink",
    "open_source",
]

#: Image files a folder source reads, in natural (human) order of their names.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

#: Output container -> FourCC written by OpenCV 4 (which has no H.264 encoder). ``.mkv`` and ``.webm`` stay
#: readable up to the last frame if the process is killed; an ``.mp4`` only once its writer is closed.
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "VP80", ".webm": "VP80"}


class SourceError(ValueError):
    """The input cannot be read (one sentence naming the path and what is wrong)."""


def _natural_key(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


class FrameSource(abc.ABC):
    """Base class: iterate to get frames; ``fps``, ``size`` (W, H), ``length`` (None if unknown), ``name``.

    Attributes:
        frames_read: frames yielded so far.
        stop_reason: None, or why reading stopped before the announced end.
    """

    fps: float = 30.0
    size: tuple[int, int] = (0, 0)
    length: int | None = None
    name: str = "source"

    def __init__(self) -> None:
        self.frames_read = 0
        self.stop_reason: str | None = None

    @abc.abstractmethod
    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield BGR uint8 frames (H, W, 3) in order, counting ``frames_read``."""

    def close(self) -> None:  # noqa: B027 - a source that holds nothing has nothing to release
        """Release the input (idempotent)."""


class ArraySource(FrameSource):
    """Frames already in memory.

    Args:
        frames: a sequence of BGR uint8 images (H, W, 3), or one array of shape (T, H, W, 3).
        fps: frame rate to report.
        name: sequence name.

    Raises:
        SourceError: no frames, or frames of the wrong dtype / shape.

    Example:
        >>> src = ArraySource(np.zeros((2, 8, 8, 3), np.uint8))
        >>> [f.shape for f in src]
        [(8, 8, 3), (8, 8, 3)]
    """

    def __init__(self, frames: Sequence[np.ndarray] | np.ndarray, fps: float = 30.0, name: str = "frames") -> None:
        super().__init__()
        if len(frames) == 0:
            raise SourceError(f"{name}: no frames")
        first = frames[0]
        if not isinstance(first, np.ndarray) or first.dtype != np.uint8 or first.ndim != 3 or first.shape[2] != 3:
            got = f"{first.dtype} {first.shape}" if isinstance(first, np.ndarray) else type(first).__name__
            raise SourceError(f"{name}: expected BGR uint8 frames of shape (H, W, 3), got {got}")
        self._frames = frames
        self.fps = float(fps)
        self.size = (int(first.shape[1]), int(first.shape[0]))
        self.length = len(frames)
        self.name = name

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame in self._frames:
            self.frames_read += 1
            yield frame


class VideoFileSource(FrameSource):
    """A video file decoded by OpenCV (FFmpeg backend).

    Args:
        path: the video file.

    Raises:
        SourceError: the file is missing, not a file, or OpenCV cannot decode a first frame from it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        p = Path(path)
        if not p.exists():
            raise SourceError(f"{p}: no such file")
        if not p.is_file():
            raise SourceError(f"{p}: not a video file")
        if not os.access(p, os.R_OK):
            raise SourceError(f"{p}: permission denied")
        self.path = p
        self.name = p.stem
        self._cap = cv2.VideoCapture(str(p))
        ok, first = (False, None)
        if self._cap.isOpened():
            ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise SourceError(
                f"{p}: cannot decode a frame (not a video, or a codec this OpenCV/FFmpeg build cannot read)"
            )
        self._first: np.ndarray | None = first
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if np.isfinite(fps) and 0 < fps < 1000 else 30.0
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.length = count if count > 0 else None
        self.size = (int(first.shape[1]), int(first.shape[0]))

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._first is not None:
            first, self._first = self._first, None
            self.frames_read += 1
            yield first
        while True:
            ok, frame = self._cap.read()
            if not ok or frame is None:
                break
            self.frames_read += 1
            yield frame
        # Container frame counts are estimates; only a clear shortfall is reported as a break.
        if self.length is not None and self.frames_read < self.length - max(2, self.length // 100):
            self.stop_reason = (
                f"decoding stopped after frame {self.frames_read} of {self.length} announced by the container "
                "(truncated or corrupt file)"
            )
        self.close()

    def close(self) -> None:
        """Release the capture (idempotent)."""
        self._cap.release()


class FolderSource(FrameSource):
    """A folder of image files (``IMAGE_EXTENSIONS``), read in natural order of their names.

    Args:
        path: the folder.
        fps: frame rate to report (a folder has none).

    Raises:
        SourceError: not a folder, no image files in it, or the first image cannot be decoded.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float = 30.0) -> None:
        super().__init__()
        p = Path(path)
        if not p.is_dir():
            raise SourceError(f"{p}: not a folder")
        try:
            names = [q.name for q in p.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS and q.is_file()]
        except PermissionError:
            raise SourceError(f"{p}: permission denied") from None
        if not names:
            raise SourceError(f"{p}: no frames in this folder (expected image files: {', '.join(IMAGE_EXTENSIONS)})")
        self.files = [p / n for n in sorted(names, key=_natural_key)]
        self._first = cv2.imread(str(self.files[0]), cv2.IMREAD_COLOR)
        if self._first is None:
            raise SourceError(f"{self.files[0]}: cannot decode this image")
        self.path = p
        self.name = p.name if p.name not in ("img1", "images", "frames") else p.parent.name
        self.fps = float(fps)
        self.length = len(self.files)
        self.size = (int(self._first.shape[1]), int(self._first.shape[0]))

    def __iter__(self) -> Iterator[np.ndarray]:
        for i, path in enumerate(self.files):
            frame: np.ndarray | None
            if i == 0 and self._first is not None:
                frame, self._first = self._first, None
            else:
                frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                self.stop_reason = f"{path.name}: cannot decode this image; stopped after frame {self.frames_read}"
                return
            if (frame.shape[1], frame.shape[0]) != self.size:
                self.stop_reason = (
                    f"{path.name}: size {frame.shape[1]}x{frame.shape[0]} differs from the first frame's "
                    f"{self.size[0]}x{self.size[1]}; stopped after frame {self.frames_read}"
                )
                return
            self.frames_read += 1
            yield frame


def open_source(path: str | os.PathLike[str], fps: float | None = None) -> FrameSource:
    """Open a video file or a folder of frames.

    Args:
        path: video file or folder of image files.
        fps: frame rate for a folder (default 30); overrides a video's own rate when given.

    Returns:
        A :class:`FrameSource` whose first frame has been decoded already.

    Raises:
        SourceError: see :class:`VideoFileSource` and :class:`FolderSource`.

    Example:
        >>> open_source("/no/such/video.mp4")  # doctest: +SKIP
        Traceback (most recent call last):
        SourceError: /no/such/video.mp4: no such file
    """
    p = Path(path)
    source: FrameSource = FolderSource(p, fps or 30.0) if p.is_dir() else VideoFileSource(p)
    if fps is not None:
        source.fps = float(fps)
    return source


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C-level stderr (FFmpeg's notes about container tags) for the duration."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (captured by a test runner, ...)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


class VideoSink:
    """Write BGR frames to a video file; the codec follows the extension (:data:`VIDEO_CODECS`).

    The file is opened on the first frame (its size is that frame's). Always :meth:`close` it (or use ``with``):
    an ``.mp4`` that is never closed has no readable frames.

    Args:
        path: output file, ending in ``.mp4``, ``.avi``, ``.mkv`` or ``.webm``.
        fps: frame rate written to the container.

    Raises:
        ValueError: unsupported extension or non-positive fps.

    Example:
        >>> import tempfile
        >>> with VideoSink(Path(tempfile.mkdtemp()) / "a.mkv", fps=10) as sink:
        ...     sink.write(np.zeros((32, 48, 3), np.uint8))
        >>> sink.frames_written
        1
    """

    def __init__(self, path: str | os.PathLike[str], fps: float = 30.0) -> None:
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in VIDEO_CODECS:
            raise ValueError(f"output: expected a file ending in {', '.join(VIDEO_CODECS)}, got {self.path.name!r}")
        if not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps: expected a positive frame rate, got {fps!r}")
        self.fourcc = VIDEO_CODECS[ext]
        self.fps = float(fps)
        self.frames_written = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._closed = False

    def write(self, frame: np.ndarray) -> None:
        """Append one BGR uint8 frame (H, W, 3); all frames must have the first one's size.

        Raises:
            OSError: OpenCV cannot open the output for writing.
            ValueError: the frame's size differs from the first frame's, or the sink is closed.
        """
        if self._closed:
            raise ValueError(f"{self.path}: the video writer is closed")
        size = (int(frame.shape[1]), int(frame.shape[0]))
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _quiet_stderr():
                writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*self.fourcc), self.fps, size)
            if not writer.isOpened():
                raise OSError(f"{self.path}: OpenCV cannot write {self.fourcc} video here")
            self._writer, self._size = writer, size
        elif size != self._size:
            raise ValueError(f"frame: expected size {self._size}, got {size} (width, height)")
        self._writer.write(frame)
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file (idempotent); after this it is a valid video of the frames written."""
        self._closed = True
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
