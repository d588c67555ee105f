"""What the estimator's box read-out costs with and without the camera fallback, alternating in one process.

The read-out is everything after the features: the head's box average, the field refinement, the box fit and, when
on, the camera fallback (homography fit, its sharpening on the frames, the boxes' structure tensors, one residual
per flat box). Each timed call runs on a fresh cache after an untimed one-box call on the same frames, which computes
the features, the refined field's inputs and the box pyramids, so that only the read-out of N boxes is timed. The
variants alternate call by call on the same held-out pairs, so that a slow phase of the machine weighs on all of
them; compare the differences, not the absolute times.

Usage:
    python benchmarks/bench_readout.py [--boxes 50 4] [--repeats 10] [--pairs 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np
import torch

from mmtrack_corr import MotionEstimator
from mmtrack_corr.synthetic import background_boxes, make_pair

VARIANTS = {"fallback off": False, "fallback on (default)": True}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boxes", type=_positive, nargs="+", default=[50, 4], help="boxes per call (50 4)")
    parser.add_argument("--repeats", type=_positive, default=10, help="rounds over the pairs (10)")
    parser.add_argument("--pairs", type=_positive, default=4, help="held-out medium 544x960 pairs (4)")
    parser.add_argument("--threads", type=_positive, default=1, help="torch and OpenCV threads (1)")
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    est = MotionEstimator.from_pretrained()
    rng = np.random.default_rng(args.seed)
    pairs = [make_pair(rng, 544, 960, "medium", photos="heldout") for _ in range(args.pairs)]
    most = max(args.boxes)
    boxes = [np.concatenate([p.boxes, background_boxes(rng, p, most)[0]])[:most] for p in pairs]
    print(f"read-out of N boxes, held-out medium 544x960 pairs, working size {est.working_size_for(544, 960)}, "
          f"{args.threads} thread(s), {args.repeats * args.pairs} calls per cell; fastest / median ms")  # fmt: skip
    print("\n| boxes | " + " | ".join(VARIANTS) + " | difference |")
    print("|---" * (len(VARIANTS) + 2) + "|")
    for count in args.boxes:
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(args.repeats):
            for pair, box in zip(pairs, boxes, strict=True):
                for name, fallback in VARIANTS.items():
                    est.camera_fallback = fallback
                    est.reset()
                    est.box_displacements(pair.frame1, pair.frame2, box[:1])
                    start = time.perf_counter()
                    est.box_displacements(pair.frame1, pair.frame2, box[:count])
                    times[name].append(1000 * (time.perf_counter() - start))
        cells = [(min(t), float(np.median(t))) for t in times.values()]
        diff = f"{cells[1][0] - cells[0][0]:+.1f} / {cells[1][1] - cells[0][1]:+.1f}"
        print(f"| {count} | " + " | ".join(f"{a:.1f} / {b:.1f}" for a, b in cells) + f" | {diff} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
