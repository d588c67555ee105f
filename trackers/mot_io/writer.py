"""Writers whose files are always whole: result files frame by frame, small files (JSON, ini) all at once.

A result file is written as ``<path>.partial`` and renamed to ``<path>`` only when the writer is closed without
error, so a file at ``<path>`` is always complete; ``<path>.partial`` is what an interrupted or failed run leaves,
and it always ends on a frame boundary: every frame is one ``write``, and a write that fails (ENOSPC, EFBIG, ...)
is cut back to the previous frame before the error is raised. Everything written is checked first against what
the readers accept (finite values within bounds, integral ids unique per frame, increasing frames), so what we
write, we can read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .parsing import MAX_COORD, MAX_FRAME, MAX_ID, MAX_VALUE
from .records import MotRecords, PathLike, ResultLayout

__all__ = ["PARTIAL_SUFFIX", "ResultWriter", "write_results", "write_text_atomic"]

#: Suffix of a result file being written (or left by a run that did not finish).
PARTIAL_SUFFIX = ".partial"

_LAYOUTS = ("mot", "visdrone", "uavdt")


def write_text_atomic(path: PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) so that it is never seen empty or half written.

    The text goes to a temporary file in the same folder, is flushed to disk, then renamed over ``path``. On any
    error the temporary file is removed and an existing ``path`` is left as it was.

    Raises:
        OSError: the folder is not writable, the disk is full, ``path`` is a directory, ...
    """
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(p))
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    data = text.encode("utf-8")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if err.filename is None:  # os.write / fsync errors carry no file name: name the file being written
            raise OSError(err.errno, err.strerror, str(p)) from None
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _as_int_column(values: object, name: str, m: int) -> NDArray[np.int64]:
    arr = np.asarray(values).reshape(-1)
    if arr.shape[0] != m:
        raise ValueError(f"{name}: expected {m} values to match tlwh, got {arr.shape[0]}")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.integer):
        out = arr.astype(np.int64)
        big = np.abs(arr) > MAX_ID
    else:
        f = arr.astype(np.float64)
        bad = ~np.isfinite(f) | (f != np.round(f))
        if bad.any():
            r = int(np.argmax(bad))
            raise ValueError(f"{name}: expected integer values, got {float(f[r])!r} at row {r}")
        big = np.abs(f) > MAX_ID
        out = f.astype(np.int64) if not big.any() else np.zeros(m, np.int64)
    if big.any():
        r = int(np.argmax(big))
        raise ValueError(f"{name}: expected |value| <= {MAX_ID}, got {arr[r]} at row {r}")
    return out


class ResultWriter:
    """Write tracking results frame by frame; the file appears at ``path`` only once it is complete.

    Layouts: ``"mot"`` and ``"uavdt"`` write ``frame,id,x,y,w,h,score,-1,-1,-1``; ``"visdrone"`` writes
    ``frame,id,x,y,w,h,score,category,-1,-1``. Rows go to ``<path>.partial``, one ``write`` per frame;
    :meth:`close` (or leaving the ``with`` block normally) flushes it to disk and renames it to ``path``. Leaving
    the ``with`` block by an exception, or :meth:`abort`, leaves ``<path>.partial``: a valid result file holding the
    frames written so far. A failed write (disk full, file too large) is cut back to the last whole frame.

    Args:
        path: output file (parent folders are created). An existing file (and an old ``.partial``) is removed
            when the writer opens, so a stale file never sits beside a new one.
        layout: ``"mot"``, ``"visdrone"`` or ``"uavdt"``.
        decimals: digits after the point for box coordinates (scores get ``max(decimals, 2)``).

    Raises:
        ValueError: unknown layout or bad decimals.
        OSError: the file cannot be created (message names it).

    Example:
        >>> path = Path(tempfile.mkdtemp()) / "a.txt"
        >>> with ResultWriter(path, layout="visdrone") as w:
        ...     w.write_frame(3, np.array([[0.0, 0.0, 4.0, 4.0]]), np.array([1]), np.array([0.5]), np.array([4]))
        >>> path.read_text()
        '3,1,0.00,0.00,4.00,4.00,0.50,4,-1,-1\\n'
    """

    def __init__(self, path: PathLike, layout: ResultLayout = "mot", decimals: int = 2) -> None:
        if layout not in _LAYOUTS:
            raise ValueError(f"layout: expected one of {', '.join(_LAYOUTS)}, got {layout!r}")
        if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 15:
            raise ValueError(f"decimals: expected an int in [0, 15], got {decimals!r}")
        self.path = Path(path)
        self.partial_path = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self.layout = layout
        self._box_fmt = f"{{:.{decimals}f}}"
        self._score_fmt = f"{{:.{max(decimals, 2)}f}}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(self.path))
        self._fd: int | None = os.open(self.partial_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self.path.unlink(missing_ok=True)
        except BaseException:
            self.abort()
            raise
        self._size = 0
        self._last_frame = 0
        self.lines_written = 0

    @property
    def closed(self) -> bool:
        """True after :meth:`close` or :meth:`abort`."""
        return self._fd is None

    def write_frame(
        self,
        frame: int,
        tlwh: NDArray[np.floating] | Sequence[Sequence[float]],
        ids: NDArray[np.integer] | Sequence[int],
        scores: NDArray[np.floating] | Sequence[float],
        classes: NDArray[np.integer] | Sequence[int] | None = None,
    ) -> None:
        """Write one frame's boxes (all of them in one write).

        Args:
            frame: 1-based frame number, larger than the previous frame written.
            tlwh: boxes (left, top, width, height), shape (M, 4): finite, ``|x|, |y| <= MAX_COORD``,
                ``0 <= w, h <= MAX_COORD``.
            ids: track ids, shape (M,): integers (integral floats accepted), unique within the frame (per class for
                the VisDrone layout).
            scores: scores, shape (M,), finite.
            classes: categories, shape (M,) (VisDrone layout; required there, ignored otherwise).

        Raises:
            ValueError: a value the readers would refuse (named argument and row), frames out of order, or a
                closed writer.
            TypeError: non-numeric ids or classes.
            OSError: the write failed; the file is cut back to the previous frame first.
        """
        if self._fd is None:
            raise ValueError(f"{self.path}: writer is closed")
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or not 1 <= frame <= MAX_FRAME:
            raise ValueError(f"frame: expected an integer in [1, {MAX_FRAME}], got {frame!r}")
        if frame <= self._last_frame:
            raise ValueError(f"frame: expected frames in increasing order, got {frame} after {self._last_frame}")
        boxes = np.asarray(tlwh, dtype=np.float64).reshape(-1, 4)
        m = boxes.shape[0]
        id_arr = _as_int_column(ids, "ids", m)
        score_arr = np.asarray(scores, dtype=np.float64).reshape(-1)
        if score_arr.shape[0] != m:
            raise ValueError(f"scores: expected {m} values to match tlwh, got {score_arr.shape[0]}")
        cls_arr = None
        if self.layout == "visdrone":
            if classes is None:
                raise ValueError("classes: required for the 'visdrone' layout, got None")
            cls_arr = _as_int_column(classes, "classes", m)
        if m == 0:
            return
        self._check_values(boxes, id_arr, score_arr, cls_arr)
        bf, sf = self._box_fmt, self._score_fmt
        out = []
        for i in range(m):
            x, y, w, h = boxes[i]
            tail = f"{cls_arr[i]},-1,-1" if cls_arr is not None else "-1,-1,-1"
            out.append(
                f"{int(frame)},{id_arr[i]},{bf.format(x)},{bf.format(y)},{bf.format(w)},{bf.format(h)},"
                f"{sf.format(score_arr[i])},{tail}\n"
            )
        self._write("".join(out).encode("ascii"))
        self._last_frame = int(frame)
        self.lines_written += m

    @staticmethod
    def _check_values(
        boxes: NDArray[np.float64],
        ids: NDArray[np.int64],
        scores: NDArray[np.float64],
        classes: NDArray[np.int64] | None,
    ) -> None:
        bad = ~np.isfinite(boxes).all(axis=1) | (np.abs(boxes[:, :2]) > MAX_COORD).any(axis=1)
        bad |= ((boxes[:, 2:] < 0) | (boxes[:, 2:] > MAX_COORD)).any(axis=1)
        if bad.any():
            r = int(np.argmax(bad))
            raise ValueError(
                f"tlwh: expected finite boxes with |x|, |y| <= {MAX_COORD:g} and 0 <= w, h <= {MAX_COORD:g}, "
                f"got {boxes[r].tolist()} at row {r}"
            )
        bad = ~np.isfinite(scores) | (np.abs(scores) > MAX_VALUE)
        if bad.any():
            r = int(np.argmax(bad))
            raise ValueError(
                f"scores: expected finite values with |score| <= {MAX_VALUE:g}, got {scores[r]} at row {r}"
            )
        keys = ids if classes is None else np.stack([classes, ids], axis=1)
        uniq, counts = np.unique(keys, axis=0, return_counts=True)
        if (counts > 1).any():
            dup = uniq[int(np.argmax(counts > 1))]
            what = f"id {dup}" if classes is None else f"id {dup[1]} of class {dup[0]}"
            raise ValueError(f"ids: expected each track once per frame, got {what} twice")

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except BaseException as err:
            # cut a torn frame off, so the file stays a valid frame-aligned prefix
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            if isinstance(err, OSError) and err.filename is None:
                raise OSError(err.errno, err.strerror, str(self.partial_path)) from None
            raise
        self._size += len(data)

    def close(self) -> None:
        """Flush the file to disk and move it to ``path`` (idempotent).

        Raises:
            OSError: flushing or renaming failed; the ``.partial`` file is then left in place.
        """
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(self.partial_path)) from None
        finally:
            os.close(fd)
        os.replace(self.partial_path, self.path)

    def abort(self) -> None:
        """Close without publishing: ``<path>.partial`` stays, holding the whole frames written (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_results(path: PathLike, records: MotRecords, layout: ResultLayout = "mot", decimals: int = 2) -> None:
    """Write a whole result table (rows in frame order) with :class:`ResultWriter`.

    Example:
        >>> recs = _records_from_arrays([1], [5], [[1.0, 2.0, 3.0, 4.0]], [0.5])
        >>> path = Path(tempfile.mkdtemp()) / "r.txt"
        >>> write_results(path, recs)
        >>> read_mot_results(path).ids.tolist()
        [5]
    """
    with ResultWriter(path, layout=layout, decimals=decimals) as writer:
        for frame, sl in records.frame_slices().items():
            writer.write_frame(frame, records.tlwh[sl], records.ids[sl], records.scores[sl], records.classes[sl])
