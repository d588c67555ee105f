"""Training data for the motion heads: synthetic pairs on the fly, and user MOT / VisDrone / UAVDT sequences.

Every sample is a dict of tensors of fixed shapes (so the default collate stacks them):

- ``image1``, ``image2``: RGB frames in [0, 1], (3, H, W) float32;
- ``flow``: dense motion frame 1 -> frame 2 in pixels, (2, H, W) float32 (zeros where unknown);
- ``valid``: (H, W) bool, where ``flow`` is a target (all False for user sequences: no dense targets);
- ``boxes``: (M, 4) float32 xyxy in frame 1, padded to ``max_boxes`` rows; ``box_motion``: (M, 2) float32 (dx, dy)
  of each box; ``box_valid``: (M,) bool, which rows are real boxes.

A sample depends only on its index and the dataset's seed (``numpy.random.default_rng([seed, index])``), so a data
stream is reproducible across worker counts and restarts: training resumes at the sample it stopped at.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from torch.utils.data import Dataset, Sampler

__all__ = [
    "SEQUENCE_FRAMES",
    "MotSequencePairs",
    "StreamSampler",
    "SyntheticPairs",
    "box_motion_from_ids",
    "fixed_validation_pairs",
    "sample_from_arrays",
]

if TYPE_CHECKING:
    from trackers.mot_io import SequenceEntry

logger = logging.getLogger(__name__)

Sample = dict[str, Tensor]


def sample_from_arrays(
    frame1: NDArray[np.uint8],
    frame2: NDArray[np.uint8],
    boxes: NDArray[np.floating],
    box_motion: NDArray[np.floating],
    max_boxes: int,
    flow: NDArray[np.floating] | None = None,
    valid: NDArray[np.bool_] | None = None,
) -> Sample:
    """Pack one pair of BGR frames and its targets into the sample dict (see the module docstring).

    Args:
        frame1, frame2: (H, W, 3) uint8 BGR.
        boxes: (N, 4) xyxy in frame 1; rows beyond ``max_boxes`` are dropped.
        box_motion: (N, 2) (dx, dy) of each box.
        max_boxes: padded box count M.
        flow: (H, W, 2) dense motion, or None (no dense target).
        valid: (H, W) bool where ``flow`` holds, or None.

    Returns:
        The sample dict.
    """
    height, width = frame1.shape[:2]
    n = min(len(boxes), max_boxes)
    padded = np.zeros((max_boxes, 4), np.float32)
    motion = np.zeros((max_boxes, 2), np.float32)
    padded[:n] = boxes[:n]
    motion[:n] = box_motion[:n]
    box_valid = np.zeros(max_boxes, bool)
    box_valid[:n] = True
    if flow is None:
        flow = np.zeros((height, width, 2), np.float32)
        valid = np.zeros((height, width), bool)
    elif valid is None:
        valid = np.ones((height, width), bool)
    return {
        "image1": _to_rgb_tensor(frame1),
        "image2": _to_rgb_tensor(frame2),
        "flow": torch.from_numpy(np.ascontiguousarray(flow, np.float32)).permute(2, 0, 1).contiguous(),
        "valid": torch.from_numpy(np.ascontiguousarray(valid, bool)),
        "boxes": torch.from_numpy(padded),
        "box_motion": torch.from_numpy(motion),
        "box_valid": torch.from_numpy(box_valid),
    }


def _to_rgb_tensor(frame: NDArray[np.uint8]) -> Tensor:
    rgb = np.ascontiguousarray(frame[..., ::-1])
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)


#: Frames of each generated sequence :class:`SyntheticPairs` samples a pair from (``sequence_fraction``).
SEQUENCE_FRAMES = 30


class SyntheticPairs(Dataset[Sample]):
    """Generated pairs (:func:`mmtrack_corr.synthetic.make_pair`) with exact dense flow and box motion.

    Sample ``i`` is rendered from ``default_rng([seed, i])`` at a speed level cycling through ``speeds``, so any
    index range is reproducible and the dataset is effectively infinite (``length`` only bounds ``len``). With
    ``sequence_fraction`` > 0, that share of the samples (drawn per sample) are instead two consecutive frames of a
    generated sequence (:func:`mmtrack_corr.synthetic.make_sequence`, :data:`SEQUENCE_FRAMES` frames, a random
    frame): a drone-like camera path over the photo as an endless mirrored plane, with smooth brightness drift, and
    the slower own motion of ground objects - the kind of frames the sequence benchmarks and a tracker see.

    Args:
        height, width: frame size (multiples of 32 for the model).
        speeds: camera speed levels to cycle through.
        photos: "train" or "heldout" photographs.
        seed: data seed.
        max_boxes: padded box count per sample.
        photometric: photometric effects on (blur, noise, brightness...).
        length: ``len`` of the dataset.
        sequence_fraction: share of the samples taken from generated sequences, in [0, 1] (0: pairs only, the
            stream of earlier versions).

    Example:
        >>> ds = SyntheticPairs(64, 96, seed=0)
        >>> tuple(ds[0]["flow"].shape)
        (2, 64, 96)
    """

    def __init__(
        self,
        height: int = 256,
        width: int = 448,
        speeds: Sequence[str] = ("slow", "medium", "fast"),
        photos: str = "train",
        seed: int = 0,
        max_boxes: int = 16,
        photometric: bool = True,
        length: int = 2**31 - 1,
        sequence_fraction: float = 0.0,
    ) -> None:
        from mmtrack_corr.synthetic import SPEED_LEVELS

        if not speeds or any(s not in SPEED_LEVELS for s in speeds):
            raise ValueError(f"speeds: expected levels from {SPEED_LEVELS}, got {tuple(speeds)!r}")
        if not (isinstance(sequence_fraction, (int, float)) and 0.0 <= sequence_fraction <= 1.0):
            raise ValueError(f"sequence_fraction: expected a number in [0, 1], got {sequence_fraction!r}")
        self.sequence_fraction = float(sequence_fraction)
        self.height, self.width = int(height), int(width)
        self.speeds = tuple(speeds)
        self.photos = photos
        self.seed = int(seed)
        self.max_boxes = int(max_boxes)
        self.photometric = bool(photometric)
        self.length = int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Sample:
        from mmtrack_corr.synthetic import make_pair, make_sequence

        rng = np.random.default_rng([self.seed, int(index)])
        speed = self.speeds[int(index) % len(self.speeds)]
        if self.sequence_fraction > 0.0 and rng.random() < self.sequence_fraction:  # no draw at 0: same stream
            sequence = make_sequence(
                rng, SEQUENCE_FRAMES, self.height, self.width, speed, photos=self.photos, photometric=self.photometric
            )
            pair = sequence.pair(int(rng.integers(1, SEQUENCE_FRAMES)))
        else:
            pair = make_pair(
                rng, self.height, self.width, speed=speed, photos=self.photos, photometric=self.photometric
            )
        return sample_from_arrays(
            pair.frame1, pair.frame2, pair.boxes, pair.displacements, self.max_boxes, pair.flow, pair.valid
        )


def fixed_validation_pairs(
    count: int = 48, height: int = 256, width: int = 448, seed: int = 12345, max_boxes: int = 16
) -> list[Sample]:
    """The fixed held-out validation set: ``count`` pairs from the held-out photographs, speeds cycling.

    Args:
        count: number of pairs.
        height, width: frame size.
        seed: data seed (fixed, so every run validates on the same pairs).
        max_boxes: padded box count per sample.

    Returns:
        List of sample dicts.
    """
    ds = SyntheticPairs(height, width, photos="heldout", seed=seed, max_boxes=max_boxes, length=count)
    return [ds[i] for i in range(count)]


class StreamSampler(Sampler[int]):
    """Endless sample indices for one rank: step s of rank r reads indices ``(s * world + r) * batch + [0, batch)``.

    Starting at ``start_step`` continues a stream exactly where a checkpoint stopped; ranks never share indices.

    Args:
        batch_size: samples per rank and step.
        rank, world_size: this process and the number of processes.
        start_step: first step to produce.
        length: dataset length; indices wrap modulo it (finite user datasets), ``None`` for no wrap.
        seed: permutation seed for wrapped (finite) datasets, so epochs visit samples in a shuffled order.
    """

    def __init__(
        self,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        length: int | None = None,
        seed: int = 0,
    ) -> None:
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.start_step, self.length, self.seed = start_step, length, seed

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            first = (step * self.world_size + self.rank) * self.batch_size
            for i in range(first, first + self.batch_size):
                yield i if self.length is None else self._wrapped(i)
            step += 1

    def _wrapped(self, i: int) -> int:
        assert self.length is not None  # only called for finite datasets
        epoch, offset = divmod(i, self.length)
        return int(np.random.default_rng([self.seed, epoch]).permutation(self.length)[offset])


def box_motion_from_ids(
    ids1: NDArray[np.int64], boxes1: NDArray[np.floating], ids2: NDArray[np.int64], boxes2: NDArray[np.floating]
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Box displacement of every object present in both frames: the motion of its box centre.

    Args:
        ids1: (N,) ids in frame 1; boxes1: (N, 4) xyxy.
        ids2: (K,) ids in frame 2; boxes2: (K, 4) xyxy.

    Returns:
        (boxes, motion): frame-1 boxes (M, 4) of the ids found in both frames, and their (dx, dy) (M, 2).

    Example:
        >>> b, m = box_motion_from_ids(np.array([1, 2]), np.array([[0, 0, 2, 2], [5, 5, 6, 6.]]),
        ...                            np.array([2]), np.array([[7, 4, 8, 5.]]))
        >>> m.tolist()
        [[2.0, -1.0]]
    """
    pos2 = {int(i): k for k, i in enumerate(ids2)}
    keep = [k for k, i in enumerate(ids1) if int(i) in pos2]
    if not keep:
        return np.zeros((0, 4), np.float32), np.zeros((0, 2), np.float32)
    b1 = np.asarray(boxes1, np.float64)[keep]
    b2 = np.asarray(boxes2, np.float64)[[pos2[int(ids1[k])] for k in keep]]
    motion = (b2[:, :2] + b2[:, 2:]) / 2 - (b1[:, :2] + b1[:, 2:]) / 2
    return b1.astype(np.float32), motion.astype(np.float32)


@dataclass(frozen=True)
class _SequenceFrames:
    name: str
    image_paths: dict[int, Path]
    boxes: dict[int, tuple[NDArray[np.int64], NDArray[np.float64]]]  # frame -> (ids, xyxy)


class MotSequencePairs(Dataset[Sample]):
    """Consecutive-frame pairs of user sequences with images and ground truth, supervised by box motion only.

    Sequences are found by :func:`trackers.mot_io.discover_sequences` (MOTChallenge, VisDrone-MOT or UAVDT
    layouts); a sample is frames (t, t + gap) resized to ``height`` x ``width`` (boxes and motions scaled alike),
    with the displacement of every ground-truth id present in both frames. There is no dense target (``valid`` is
    all False): the loss uses the box term.

    Args:
        root: dataset root (or one sequence folder).
        height, width: training frame size (multiples of 32).
        gap: frame step between the two frames.
        format: "mot", "visdrone", "uavdt" or None to detect.
        max_boxes: padded box count per sample (the largest boxes are kept).
        min_boxes: skip pairs with fewer matched boxes.

    Raises:
        FileNotFoundError: no sequence with both images and ground truth under ``root``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        height: int = 256,
        width: int = 448,
        gap: int = 1,
        format: str | None = None,
        max_boxes: int = 16,
        min_boxes: int = 1,
    ) -> None:
        from trackers.mot_io import discover_sequences

        self.height, self.width, self.gap, self.max_boxes = int(height), int(width), int(gap), int(max_boxes)
        found = discover_sequences(root, format)  # type: ignore[arg-type]
        entries = [e for e in found if e.gt_path is not None and e.image_dir is not None]
        if not entries:
            raise FileNotFoundError(f"root: no sequence with both images and ground truth under {str(root)!r}")
        self.sequences: list[_SequenceFrames] = []
        self.pairs: list[tuple[int, int]] = []  # (sequence index, frame t)
        for entry in entries:
            seq = _read_sequence(entry)
            index = len(self.sequences)
            self.sequences.append(seq)
            for frame in sorted(seq.boxes):
                nxt = frame + self.gap
                if nxt in seq.boxes and frame in seq.image_paths and nxt in seq.image_paths:
                    ids1, _ = seq.boxes[frame]
                    if np.isin(ids1, seq.boxes[nxt][0]).sum() >= min_boxes:
                        self.pairs.append((index, frame))
        if not self.pairs:
            raise FileNotFoundError(f"root: no pair of frames {self.gap} apart with matched boxes under {str(root)!r}")
        logger.info("MotSequencePairs: %d sequences, %d pairs", len(self.sequences), len(self.pairs))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        seq = self.sequences[self.pairs[index][0]]
        frame = self.pairs[index][1]
        images = []
        for f in (frame, frame + self.gap):
            image = cv2.imread(str(seq.image_paths[f]), cv2.IMREAD_COLOR)
            if image is None:
                raise FileNotFoundError(f"{seq.name}: cannot read frame {f} at {seq.image_paths[f]}")
            images.append(image)
        sy, sx = self.height / images[0].shape[0], self.width / images[0].shape[1]
        resized: list[NDArray[np.uint8]] = [
            np.asarray(cv2.resize(im, (self.width, self.height), interpolation=cv2.INTER_AREA), np.uint8)
            for im in images
        ]
        boxes, motion = box_motion_from_ids(*seq.boxes[frame], *seq.boxes[frame + self.gap])
        scale = np.array([sx, sy, sx, sy], np.float32)
        boxes, motion = boxes * scale, motion * scale[:2]
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
        return sample_from_arrays(resized[0], resized[1], boxes[order], motion[order], self.max_boxes)


def _read_sequence(entry: SequenceEntry) -> _SequenceFrames:
    # imported here: mmtrack_corr itself needs only torch/numpy; user datasets need the trackers package's readers
    from trackers.mot_io import read_mot_gt, read_uavdt_gt, read_visdrone

    fmt, gt_path = entry.format, entry.gt_path
    assert gt_path is not None  # callers pass entries with ground truth
    if fmt == "visdrone":
        gt = read_visdrone(gt_path, "annotations")
        gt = gt.select((gt.classes > 0) & (gt.classes < 11))  # 0 and 11 are ignored regions / others
    elif fmt == "uavdt":
        gt = read_uavdt_gt(gt_path)
    else:
        gt = read_mot_gt(gt_path)
        gt = gt.select(gt.scores > 0)  # the "considered" flag
    boxes = {f: (gt.ids[s], gt.xyxy[s]) for f, s in gt.frame_slices().items()}
    images = {}
    for f in boxes:
        path = entry.image_path(f)
        if path is not None and path.is_file():
            images[f] = path
    return _SequenceFrames(entry.name, images, boxes)
