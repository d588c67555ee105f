"""The parsing core shared by every MOT text reader: one streaming pass, numeric validation, sane bounds.

A file is read in blocks of whole lines (a few MB each). Each block goes through numpy's C text parser; a block it
cannot take as is (blank lines, whitespace separators, trailing commas, a bad value) is re-parsed line by line, which
either accepts it with exact line numbers or raises naming ``file:line``. Only the columns a reader needs are kept,
so memory stays near the size of the numbers kept, never the Python objects of every value.

Bounds (the same for every reader, for :class:`~trackers.mot_io.writer.ResultWriter` and, for coordinates, for
the trackers' input): frames ``1 .. MAX_FRAME``; ids and classes integers with ``|v| <= MAX_ID``; ``x, y`` within
``+-MAX_COORD`` and ``w, h`` in ``[0, MAX_COORD]`` pixels; every other value finite with ``|v| <= MAX_VALUE``.
Numbers outside them are refused with ``file:line`` instead of wrapping (1e19 as int64) or overflowing later.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .records import MotRecords, PathLike

__all__ = ["MAX_COORD", "MAX_FRAME", "MAX_ID", "MAX_VALUE", "require_regular_file"]

#: Largest frame number (and ``seqLength``): 10 million frames is over 3 days of 30 fps video.
MAX_FRAME = 10_000_000
#: Largest ``|id|`` and ``|class|`` (int32 range, what evaluation tools store ids in).
MAX_ID = 2**31 - 1
#: Largest ``|x|``, ``|y|``, ``w``, ``h`` in pixels.
MAX_COORD = 1e7
#: Largest magnitude of any other value (scores, flags, world coordinates...).
MAX_VALUE = 1e15

_BLOCK_BYTES = 1 << 23  # 8 MB of text per block: numpy parses it in C; memory per block stays small
_BOM = b"\xef\xbb\xbf"
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def require_regular_file(path: PathLike, what: str = "file") -> Path:
    """``path`` as a Path if it is (a symlink to) a regular file.

    Raises:
        FileNotFoundError: nothing at ``path`` (message: ``"<path>: <what> not found"``).
        ValueError: something that is not a regular file (a directory, FIFO, device, a dangling symlink or a
            symlink loop), named with the path.
        PermissionError: the file cannot be accessed.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.islink(p):
            raise ValueError(f"{p}: {what} is a dangling symbolic link") from None
        raise FileNotFoundError(f"{p}: {what} not found") from None
    except PermissionError:
        raise
    except OSError as err:  # ELOOP, ENAMETOOLONG, ...
        raise ValueError(f"{p}: cannot access {what} ({err.strerror or err})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise ValueError(f"{p}: expected {what} to be a regular file, got {kind}")
    return p


def _describe_counts(allowed: Sequence[int]) -> str:
    counts = sorted(set(allowed))
    if len(counts) == 1:
        return str(counts[0])
    if counts == list(range(counts[0], counts[-1] + 1)) and len(counts) > 2:
        return f"{counts[0]} to {counts[-1]}"
    return ", ".join(str(c) for c in counts[:-1]) + f" or {counts[-1]}"


def _split_line(line: str) -> list[str]:
    if "," in line:
        parts = line.split(",")
        if parts[-1].strip() == "":
            parts.pop()
        return parts
    return line.split()


class _TableParser:
    """State of one file's parse: expected column count, line of the first row, blocks parsed so far."""

    def __init__(self, path: Path, allowed: Sequence[int], max_cols: int | None) -> None:
        self.path = path
        self.allowed = tuple(allowed)
        self.max_cols = max_cols
        self.ncols = -1
        self.first_line = 0
        self.rows = 0
        # rows are copied into one growing buffer (capacity estimated from the file size), not concatenated at the
        # end: that would need the table twice
        self.data = np.zeros((0, 0))
        self.lines = np.zeros(0, np.int64)
        self.expected_bytes = 0
        self.bytes_seen = 0

    def _decode(self, raw: bytes, start: int) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            line = start + raw.count(b"\n", 0, err.start) + 1
            bad = raw[err.start : err.start + 1].hex()
            raise ValueError(f"{self.path}:{line}: not UTF-8 text (byte 0x{bad})") from None

    def _fast(self, text: str, start: int) -> tuple[NDArray[np.float64], NDArray[np.int64]] | None:
        """numpy's C parser on a block of comma-separated lines without blank ones; None if it cannot take it."""
        n_lines = text.count("\n") + (0 if text.endswith("\n") else 1)
        first = text[: text.find("\n")] if "\n" in text else text
        if "," not in first:
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data" and friends
                data = np.loadtxt(io.StringIO(text), delimiter=",", comments=None, dtype=np.float64, ndmin=2)
        except ValueError:
            return None
        if data.shape[0] != n_lines or (self.ncols >= 0 and data.shape[1] != self.ncols):
            return None  # blank lines (line numbers would shift) or a column count to report precisely
        if self.ncols < 0 and data.shape[1] not in self.allowed:
            return None
        return data, np.arange(start + 1, start + 1 + n_lines, dtype=np.int64)

    def _slow(self, text: str, start: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Line by line: accepts every valid layout, or raises naming the first bad line."""
        rows: list[list[str]] = []
        numbers: list[int] = []
        p = self.path
        for lineno, raw in enumerate(text.split("\n"), start=start + 1):
            line = raw.strip()
            if not line:
                continue
            parts = _split_line(line)
            n = len(parts)
            if self.ncols < 0:
                if n not in self.allowed:
                    raise ValueError(
                        f"{p}:{lineno}: expected {_describe_counts(self.allowed)} comma-separated values, got {n}"
                    )
                self.ncols, self.first_line = n, lineno
            elif n != self.ncols:
                raise ValueError(
                    f"{p}:{lineno}: expected {self.ncols} comma-separated values (as on line {self.first_line}), "
                    f"got {n}"
                )
            for col, value in enumerate(parts, start=1):
                try:
                    float(value)
                except ValueError:
                    raise ValueError(f"{p}:{lineno}: value {col} is not a number: {value.strip()!r}") from None
            rows.append(parts)
            numbers.append(lineno)
        data = np.asarray(rows, dtype=np.float64).reshape(len(rows), max(self.ncols, 0))
        return data, np.asarray(numbers, dtype=np.int64)

    def _raw_value(self, text: str, start: int, lineno: int, col: int) -> str:
        line = text.split("\n")[lineno - start - 1]
        return _split_line(line.strip())[col].strip()

    def add(self, raw: bytes, start: int) -> None:
        """Parse the whole lines ``raw`` (the first is line ``start + 1`` of the file)."""
        text = self._decode(raw, start)
        parsed = self._fast(text, start)
        if parsed is None:
            parsed = self._slow(text, start)
        data, lines = parsed
        if data.shape[0] == 0:
            return
        if self.ncols < 0:
            self.ncols, self.first_line = data.shape[1], int(lines[0])
        sane = np.abs(data) <= MAX_VALUE  # one pass: False for NaN, inf and absurd magnitudes
        if not sane.all():
            r, c = np.argwhere(~sane)[0]
            if np.isfinite(data[r, c]):
                raise ValueError(
                    f"{self.path}:{lines[r]}: value {c + 1} is {data[r, c]:g}, expected a magnitude <= {MAX_VALUE:g}"
                )
            value = self._raw_value(text, start, int(lines[r]), int(c))
            raise ValueError(f"{self.path}:{lines[r]}: value {c + 1} is {value}, expected a finite number")
        self._append(data, lines, len(raw))

    def _append(self, data: NDArray[np.float64], lines: NDArray[np.int64], nbytes: int) -> None:
        keep = data.shape[1] if self.max_cols is None else min(data.shape[1], self.max_cols)
        k = data.shape[0]
        self.bytes_seen += nbytes
        if self.rows + k > self.data.shape[0]:
            # rows per byte so far, times the file size, plus 5 %; at least doubling when the guess falls short
            guess = int((self.rows + k) / max(self.bytes_seen, 1) * max(self.expected_bytes, self.bytes_seen) * 1.05)
            capacity = max(guess, self.rows + k, 2 * self.data.shape[0])
            # column-major: each column the records keep (tlwh, scores, extras) is a view, not another copy
            grown = np.empty((capacity, keep), dtype=np.float64, order="F")
            grown_lines = np.empty(capacity, dtype=np.int64)
            if self.rows:
                grown[: self.rows] = self.data[: self.rows]
                grown_lines[: self.rows] = self.lines[: self.rows]
            self.data, self.lines = grown, grown_lines
        self.data[self.rows : self.rows + k] = data[:, :keep]
        self.lines[self.rows : self.rows + k] = lines
        self.rows += k

    def result(self) -> tuple[NDArray[np.float64], NDArray[np.int64], int]:
        if self.rows == 0:
            width = min(self.allowed) if self.allowed else 0
            if self.max_cols is not None:
                width = min(width, self.max_cols)
            return np.zeros((0, width), dtype=np.float64), np.zeros(0, np.int64), 0
        data, lines = self.data[: self.rows], self.lines[: self.rows]
        self.data, self.lines = np.zeros((0, 0)), np.zeros(0, np.int64)
        return data, lines, self.ncols


def parse_table(
    path: PathLike, allowed: Sequence[int], max_cols: int | None = None
) -> tuple[NDArray[np.float64], NDArray[np.int64], int]:
    """Parse a numeric CSV-like file (UTF-8, optional BOM) into an (N, C) float64 array.

    All non-blank rows must have the same number of values, one of ``allowed``. Values are separated by commas
    (spaces around them allowed, one trailing comma allowed) or, on files whose lines have no comma, by whitespace.

    Args:
        path: the file.
        allowed: accepted numbers of values per row.
        max_cols: keep only the first ``max_cols`` columns (the others are still validated).

    Returns:
        ``(data, line_numbers, ncols)``: data of shape (N, min(ncols, max_cols)), the 1-based line of each row,
        and the number of values per row in the file (0 for a file without rows).

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: not a regular file, not UTF-8, a row with a wrong number of values, a non-numeric, NaN,
            infinite or absurdly large value (file and line named).
    """
    p = require_regular_file(path)
    parser = _TableParser(p, allowed, max_cols)
    parser.expected_bytes = p.stat().st_size
    consumed = 0  # lines before the current block
    carry = b""
    with open(p, "rb") as fh:
        first = True
        while True:
            block = fh.read(_BLOCK_BYTES)
            if first:
                first = False
                if block.startswith(_BOM):
                    block = block[len(_BOM) :]
            if not block:
                break
            buf = carry + block if carry else block
            cut = buf.rfind(b"\n")
            if cut < 0:
                carry = buf
                continue
            whole, carry = buf[: cut + 1], buf[cut + 1 :]
            parser.add(whole, consumed)
            consumed += whole.count(b"\n")
    if carry.strip():
        parser.add(carry, consumed)
    return parser.result()


def _check_integral(
    values: NDArray[np.float64],
    lines: NDArray[np.int64],
    name: str,
    path: PathLike,
    low: float,
    high: float,
    integral: bool = True,
) -> NDArray[np.int64]:
    """``values`` as int64 after checking they are integers in ``[low, high]`` (before any int conversion)."""
    if integral:
        bad = values != np.round(values)
        if bad.any():
            r = int(np.argmax(bad))
            raise ValueError(f"{path}:{lines[r]}: {name} must be an integer, got {values[r]:g}")
    out = (values < low) | (values > high)
    if out.any():
        r = int(np.argmax(out))
        rng = f">= {low:g}" if high >= MAX_VALUE else f"in [{low:g}, {high:g}]"
        raise ValueError(f"{path}:{lines[r]}: {name} must be {rng}, got {values[r]:g}")
    return values.astype(np.int64)


def _check_boxes(data: NDArray[np.float64], lines: NDArray[np.int64], path: PathLike) -> None:
    xy = data[:, 2:4]
    far = (np.abs(xy) > MAX_COORD).any(axis=1)
    if far.any():
        r = int(np.argmax(far))
        raise ValueError(
            f"{path}:{lines[r]}: box position must be within +-{MAX_COORD:g} pixels, got x {data[r, 2]:g}, "
            f"y {data[r, 3]:g}"
        )
    wh = data[:, 4:6]
    bad = ((wh < 0) | (wh > MAX_COORD)).any(axis=1)
    if bad.any():
        r = int(np.argmax(bad))
        raise ValueError(
            f"{path}:{lines[r]}: box width and height must be in [0, {MAX_COORD:g}], got width {data[r, 4]:g}, "
            f"height {data[r, 5]:g}"
        )


def check_unique(
    frames: NDArray[np.int64],
    ids: NDArray[np.int64],
    lines: NDArray[np.int64],
    path: PathLike,
    what: str,
    classes: NDArray[np.int64] | None = None,
    mask: NDArray[np.bool_] | None = None,
) -> None:
    """Raise on a repeated (frame, id) (or (frame, id, class)) pair, naming the line of the repeat."""
    idx = np.arange(frames.shape[0]) if mask is None else np.flatnonzero(mask)
    if idx.size < 2:
        return
    keys = [lines[idx], ids[idx], frames[idx]] if classes is None else [lines[idx], classes[idx], ids[idx], frames[idx]]
    order = np.lexsort(keys)
    cols = [frames[idx][order], ids[idx][order]] + ([] if classes is None else [classes[idx][order]])
    same = np.ones(order.size - 1, dtype=bool)
    for c in cols:
        same &= c[1:] == c[:-1]
    if same.any():
        k = int(np.argmax(same))
        first, second = lines[idx][order][k], lines[idx][order][k + 1]
        extra = "" if classes is None else f" and class {cols[2][k]}"
        raise ValueError(
            f"{path}:{second}: {what} id {cols[1][k]} appears twice in frame {cols[0][k]}{extra} (also on line {first})"
        )


def build_records(
    data: NDArray[np.float64],
    lines: NDArray[np.int64],
    path: PathLike,
    *,
    id_col: int = 1,
    score_col: int | None = 6,
    class_col: int | None = None,
    extras: Mapping[str, int] | None = None,
    check_ids: bool = True,
) -> MotRecords:
    """Validate the common columns (frame, id, box, class: integral and within bounds) and sort by frame."""
    n = data.shape[0]
    if n == 0:
        return MotRecords(
            frames=np.zeros(0, np.int64),
            ids=np.zeros(0, np.int64),
            tlwh=np.zeros((0, 4), np.float64),
            scores=np.zeros(0, np.float64),
            classes=np.zeros(0, np.int64),
            extras={k: np.zeros(0, np.float64) for k in (extras or {})},
            line_numbers=np.zeros(0, np.int64),
            source=str(path),
        )
    frames = _check_integral(data[:, 0], lines, "frame", path, 1, MAX_FRAME)
    # detection files: the id column is not used; bounded (no int64 wrap-around) but not required integral
    ids = _check_integral(data[:, id_col], lines, "id", path, -MAX_ID, MAX_ID, integral=check_ids)
    _check_boxes(data, lines, path)
    classes = (
        np.full(n, -1, np.int64)
        if class_col is None
        else _check_integral(data[:, class_col], lines, "class", path, -MAX_ID, MAX_ID)
    )
    scores = np.ones(n, np.float64) if score_col is None or data.shape[1] <= score_col else data[:, score_col]
    if np.all(frames[1:] >= frames[:-1]):
        order = None  # already sorted (the usual case): columns are views of the parsed table, no copies
    else:
        order = np.argsort(frames, kind="stable")

    def take(a: NDArray) -> NDArray:  # type: ignore[type-arg]
        return a if order is None else a[order]

    return MotRecords(
        frames=take(frames),
        ids=take(ids),
        tlwh=take(data[:, 2:6]),
        scores=take(scores),
        classes=take(classes),
        extras={k: take(data[:, c]) for k, c in (extras or {}).items()},
        line_numbers=take(lines),
        source=str(path),
    )


def doc_file(text: str, name: str = "file.txt") -> Path:
    """Write ``text`` to a fresh temporary file (for the runnable docstring examples)."""
    path = Path(tempfile.mkdtemp()) / name
    path.write_text(text, encoding="utf-8")
    return path
