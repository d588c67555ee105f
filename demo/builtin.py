"""The demo's built-in input: a generated sequence with camera motion and ground truth, and its evaluation.

:func:`make_builtin_sequence` renders one sequence with the project's generator
(:func:`mmtrack_corr.synthetic.make_sequence`, photographs held out from training, strong camera motion) and
writes it as a MOTChallenge folder (``img1/`` JPEG frames, ``gt/gt.txt``, ``det/det.txt`` simulated detections,
``seqinfo.ini``), exactly as ``mmtrack-synth`` does. :func:`evaluate_results` scores result files against its
ground truth with TrackEval (:func:`trackers.evaluate_mot_challenge`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["HEADLINE", "BuiltinSequence", "evaluate_results", "make_builtin_sequence"]

#: Metrics the demo prints for the built-in sequence.
HEADLINE = ("HOTA", "MOTA", "IDF1", "IDSW")


@dataclass(frozen=True)
class BuiltinSequence:
    """A generated sequence written as a MOTChallenge folder.

    Attributes:
        root: the dataset folder (holds the sequence folder).
        name: the sequence name (folder name).
        frames: number of frames.
        frame_rate: frames per second.
        speed: camera speed level.
        seed: generator seed.
    """

    root: Path
    name: str
    frames: int
    frame_rate: float
    speed: str
    seed: int

    @property
    def folder(self) -> Path:
        """The sequence folder (``img1/``, ``gt/``, ``det/``, ``seqinfo.ini``)."""
        return self.root / self.name

    @property
    def images(self) -> Path:
        """The frames' folder."""
        return self.folder / "img1"

    @property
    def detections(self) -> Path:
        """The simulated detections, a MOTChallenge ``det.txt``."""
        return self.folder / "det" / "det.txt"


def make_builtin_sequence(
    root: str | os.PathLike[str],
    *,
    frames: int = 150,
    seed: int = 0,
    speed: str = "fast",
    height: int = 544,
    width: int = 960,
) -> BuiltinSequence:
    """Render a held-out sequence with camera motion and write it under ``root``.

    Args:
        root: dataset folder to write into (created if missing).
        frames: number of frames (>= 2).
        seed: generator seed (the sequence is a function of it).
        speed: camera speed level, ``"slow"``, ``"medium"`` or ``"fast"``.
        height: frame height.
        width: frame width.

    Returns:
        The written sequence.

    Raises:
        ImportError: the generator is not available.
        ValueError: bad ``frames``, ``speed`` or size (from the generator).
        FileExistsError: the sequence folder exists already.
    """
    from mmtrack_corr.synth_cli import write_sequence
    from mmtrack_corr.synthetic import make_sequence

    seq = make_sequence(np.random.default_rng(seed), frames, height=height, width=width, speed=speed, photos="heldout")
    name = f"SYN-heldout-{speed}-{seed}"
    write_sequence(seq, Path(root) / name)
    return BuiltinSequence(Path(root), name, seq.n_frames, float(seq.frame_rate), speed, seed)


def evaluate_results(sequence: BuiltinSequence, results: Mapping[str, Path]) -> dict[str, dict[str, float | int]]:
    """Score result files against the sequence's ground truth (TrackEval, MOT17 protocol).

    Args:
        sequence: the built-in sequence.
        results: label -> MOTChallenge result file of that sequence.

    Returns:
        label -> metrics (``HOTA``, ``MOTA``, ``IDF1``, ``IDSW``, ... as :func:`trackers.evaluate_mot_challenge`).

    Raises:
        ImportError: TrackEval is not installed.
    """
    from trackers import evaluate_mot_challenge

    out: dict[str, dict[str, float | int]] = {}
    with tempfile.TemporaryDirectory(prefix="mmtrack-demo-eval-") as tmp:
        for k, (label, path) in enumerate(results.items()):
            res_dir = Path(tmp) / f"run{k}"
            res_dir.mkdir()
            shutil.copyfile(path, res_dir / f"{sequence.name}.txt")
            result = evaluate_mot_challenge(sequence.root, res_dir, sequences=[sequence.name])
            out[label] = dict(result.combined)
    return out
