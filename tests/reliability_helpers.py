"""Helpers for test_reliability.py that worker processes import (so they live in a module, not the test file).

``slow_source`` is a MotionSource factory for ``mmtrack-eval --motion-source reliability_helpers:slow_source``: no
motion, but each call sleeps ``MMTRACK_TEST_SLEEP`` seconds (default 0.05), so a run lasts long enough to be
interrupted, killed or raced by a second run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def slow_source() -> Callable[[np.ndarray | None, np.ndarray | None, np.ndarray], np.ndarray]:
    delay = float(os.environ.get("MMTRACK_TEST_SLEEP", "0.05"))

    def source(prev_frame: np.ndarray | None, frame: np.ndarray | None, boxes_xyxy: np.ndarray) -> np.ndarray:
        time.sleep(delay)
        return np.zeros((len(boxes_xyxy), 2))

    return source


def image_dataset(root: Path, names: tuple[str, ...] = ("A", "B", "C"), frames: int = 30, ext: str = ".png") -> Path:
    """A MOTChallenge-layout dataset with small images, two walkers per frame and ground truth."""
    import cv2

    for k, name in enumerate(names):
        seq = root / name
        (seq / "img1").mkdir(parents=True)
        (seq / "det").mkdir()
        (seq / "gt").mkdir()
        (seq / "seqinfo.ini").write_text(
            f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={frames}\nimWidth=64\nimHeight=48\n"
            f"imExt={ext}\n"
        )
        image = np.random.default_rng(k).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        det, gt = [], []
        for f in range(1, frames + 1):
            cv2.imwrite(str(seq / "img1" / f"{f:06d}{ext}"), image)
            for i, (x, y) in enumerate(((10 + f, 20), (300 - 2 * f, 40))):
                det.append(f"{f},-1,{x},{y},20,50,0.9,-1,-1,-1")
                gt.append(f"{f},{i + 1},{x},{y},20,50,1,1,1")
        (seq / "det" / "det.txt").write_text("\n".join(det) + "\n")
        (seq / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    return root


def sigint_default() -> None:
    """``preexec_fn`` for interrupted-run tests: SIGINT back to its default in the child.

    A shell that starts a job in the background (``cmd &`` without job control, ``nohup``) makes SIGINT ignored, the
    child inherits that, and Python then installs no KeyboardInterrupt handler: Ctrl-C tests would see the run finish.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
