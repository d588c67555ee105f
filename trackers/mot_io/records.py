"""The table every MOT reader returns: :class:`MotRecords` (boxes sorted by frame, with their file lines)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = ["DatasetFormat", "MotRecords", "PathLike", "ResultLayout"]

PathLike = str | os.PathLike[str]
DatasetFormat = Literal["mot", "visdrone", "uavdt"]
ResultLayout = Literal["mot", "visdrone", "uavdt"]


@dataclass(frozen=True)
class MotRecords:
    """A table of boxes read from one MOT text file, sorted by frame.

    Attributes:
        frames: 1-based frame numbers, shape (N,), int64, non-decreasing.
        ids: track / object ids, shape (N,), int64 (``-1`` in detection files).
        tlwh: boxes as (left, top, width, height) in pixels, shape (N, 4), float64.
        scores: confidence (detections, results) or the gt "considered" flag, shape (N,), float64.
        classes: class / category ids, shape (N,), int64; ``-1`` where the layout has no class column.
        extras: further per-row columns by name (``visibility``, ``truncation``, ``occlusion``, ``out_of_view``,
            ``world``), each with N rows.
        line_numbers: 1-based line of each row in its file, shape (N,), int64 (0 for rows not read from a file).
        source: the file the rows came from ("" when built in memory).
    """

    frames: NDArray[np.int64]
    ids: NDArray[np.int64]
    tlwh: NDArray[np.float64]
    scores: NDArray[np.float64]
    classes: NDArray[np.int64]
    extras: Mapping[str, NDArray[np.float64]] = field(default_factory=dict)
    line_numbers: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    source: str = ""

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def xyxy(self) -> NDArray[np.float64]:
        """Boxes as (x1, y1, x2, y2), shape (N, 4)."""
        out = self.tlwh.copy()
        out[:, 2:] += out[:, :2]
        return out

    def select(self, mask: NDArray[np.bool_] | NDArray[np.int64]) -> MotRecords:
        """Rows picked by a boolean mask or index array (order kept), as a new table."""
        lines = self.line_numbers if self.line_numbers.shape[0] == len(self) else np.zeros(len(self), np.int64)
        return MotRecords(
            frames=self.frames[mask],
            ids=self.ids[mask],
            tlwh=self.tlwh[mask],
            scores=self.scores[mask],
            classes=self.classes[mask],
            extras={k: v[mask] for k, v in self.extras.items()},
            line_numbers=lines[mask],
            source=self.source,
        )

    def frame_slices(self) -> dict[int, slice]:
        """Rows of each frame present, as ``{frame: slice}`` into the (frame-sorted) arrays.

        Example:
            >>> recs = _records_from_arrays([3, 1, 1], [-1] * 3, np.ones((3, 4)), [1.0] * 3)
            >>> recs.frame_slices()
            {1: slice(0, 2, None), 3: slice(2, 3, None)}
        """
        if len(self) == 0:
            return {}
        frames, starts = np.unique(self.frames, return_index=True)
        ends = np.append(starts[1:], len(self))
        return {int(f): slice(int(s), int(e)) for f, s, e in zip(frames, starts, ends, strict=True)}

    @property
    def max_frame(self) -> int:
        """Largest frame number, 0 when empty."""
        return int(self.frames[-1]) if len(self) else 0


def _records_from_arrays(
    frames: Iterable[int],
    ids: Iterable[int],
    tlwh: Iterable[Iterable[float]] | NDArray[np.float64],
    scores: Iterable[float],
    classes: Iterable[int] | None = None,
) -> MotRecords:
    """Build a frame-sorted :class:`MotRecords` from in-memory columns (used by tests and doc examples)."""
    f = np.asarray(list(frames), dtype=np.int64)
    order = np.argsort(f, kind="stable")
    n = f.shape[0]
    cls = np.full(n, -1, np.int64) if classes is None else np.asarray(list(classes), dtype=np.int64)
    return MotRecords(
        frames=f[order],
        ids=np.asarray(list(ids), dtype=np.int64)[order],
        tlwh=np.asarray(tlwh, dtype=np.float64).reshape(n, 4)[order],
        scores=np.asarray(list(scores), dtype=np.float64)[order],
        classes=cls[order],
        line_numbers=np.zeros(n, np.int64),
    )
