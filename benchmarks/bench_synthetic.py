"""Synthetic motion data: generation speed, and the per-box motion error of the baselines the motion head must beat.

Usage::

    python benchmarks/bench_synthetic.py [--pairs 200] [--repeats 20] [--height 544] [--width 960] [--seed 0]
                                         [--figure docs/images/synthetic.png] [--skip-speed] [--skip-accuracy]

Speed (one OpenCV thread): milliseconds per pair / per sequence frame (wall clock and process CPU time; on a shared
machine the CPU time is the better estimate of one free core), each with its ratio to a reference measured in the
same run: decoding two 544x960 JPEG frames with OpenCV (what a loader reading real frames from disk pays per pair).

Accuracy, on ``--pairs`` held-out pairs per speed level (held-out photographs only, every photometric effect on):
end-point error (EPE, pixels) of each box's displacement, mean and 90th percentile, for objects (each listed object,
true displacement = the mean exact flow over its visible pixels) and for background boxes (10 per pair, no object
pixel, true displacement = mean camera flow over the box). Methods:

- ``zero``: no motion (the error is the motion itself);
- ``DIS``: OpenCV DIS optical flow (``cv2.DISOpticalFlow_create``, preset medium) on the grey frames, averaged over
  the box (clipped to the image);
- ``GMC``: camera-motion compensation (``trackers.gmc.CameraMotionCompensation``, sparse, downscale 2, as
  ``mmtrack-eval --tracker gmc`` uses it): its affine applied to the box centre.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from mmtrack_corr.synthetic import SPEED_LEVELS, FramePair, background_boxes, make_pair, make_sequence
from trackers.gmc import CameraMotionCompensation


def _median_ms(fn, repeats: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median wall-clock and CPU (process) milliseconds of ``fn()``; on a shared machine the CPU time is the better
    estimate of what one free core would take."""
    fn()  # warm caches (photo pyramids, noise bank)
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def bench_speed(repeats: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = make_pair(rng, 544, 960).frame1
    encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
    ref, ref_cpu = _median_ms(
        lambda: (cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.imdecode(encoded, cv2.IMREAD_COLOR)), repeats
    )
    print(f"\nreference: decode two 544x960 JPEG frames = {ref:.2f} ms wall, {ref_cpu:.2f} ms CPU\n")
    print("| what | size | ms wall (median) | ms CPU (median) | x reference (CPU) |")
    print("|---|---|---|---|---|")

    def row(what: str, size: str, wall: float, cpu: float) -> None:
        print(f"| {what} | {size} | {wall:.1f} | {cpu:.1f} | {cpu / ref_cpu:.1f} |")

    for h, w in ((544, 960), (320, 576), (256, 448)):
        for photometric in (True, False):
            wall, cpu = _median_ms(lambda h=h, w=w, p=photometric: make_pair(rng, h, w, "fast", "train", p), repeats)
            row("make_pair, all effects" if photometric else "make_pair, no photometric", f"{h}x{w}", wall, cpu)
    n = 60
    w0, c0 = time.perf_counter(), time.process_time()
    seq = make_sequence(rng, n, 544, 960, "medium")
    row("make_sequence (geometry, gt, detections), per frame", "544x960", *_per(w0, c0, n))
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in seq.frames():
        pass
    row("sequence frame (render + all effects)", "544x960", *_per(w0, c0, n))
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in seq.pairs():
        pass
    row("sequence pair with exact flow (pairs()), per pair", "544x960", *_per(w0, c0, n - 1))


def _per(wall0: float, cpu0: float, n: int) -> tuple[float, float]:
    return 1e3 * (time.perf_counter() - wall0) / n, 1e3 * (time.process_time() - cpu0) / n


def _box_means(flow: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean of a dense (H, W, 2) field over each xyxy box (clipped to the image), via an integral image."""
    h, w = flow.shape[:2]
    integral = cv2.integral(np.ascontiguousarray(flow.astype(np.float64)))
    out = np.zeros((boxes.shape[0], 2))
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        a, b = int(np.clip(np.floor(x1), 0, w - 1)), int(np.clip(np.floor(y1), 0, h - 1))
        c, d = int(np.clip(np.ceil(x2), a + 1, w)), int(np.clip(np.ceil(y2), b + 1, h))
        out[i] = (integral[d, c] - integral[b, c] - integral[d, a] + integral[b, a]) / ((c - a) * (d - b))
    return out


def _centre_motion(affine: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    return centres @ affine[:, :2].T + affine[:, 2] - centres


def bench_accuracy(n_pairs: int, height: int, width: int, seed: int) -> None:
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gmc = CameraMotionCompensation("sparse", downscale=2)
    print(
        f"\nper-box end-point error (px), {n_pairs} held-out pairs per speed level, {height}x{width}, all effects on\n"
    )
    print("| speed | boxes | n | zero mean | zero p90 | DIS mean | DIS p90 | GMC mean | GMC p90 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for level, speed in enumerate(SPEED_LEVELS):
        rng = np.random.default_rng([seed, level])
        errors: dict[str, dict[str, list[np.ndarray]]] = {
            kind: {m: [] for m in ("zero", "DIS", "GMC")} for kind in ("objects", "background")
        }
        for _ in range(n_pairs):
            pair: FramePair = make_pair(rng, height, width, speed, "heldout", True)
            bg_boxes, bg_true = background_boxes(rng, pair, 10)
            g1 = cv2.cvtColor(pair.frame1, cv2.COLOR_BGR2GRAY)
            g2 = cv2.cvtColor(pair.frame2, cv2.COLOR_BGR2GRAY)
            flow = dis.calc(g1, g2, None)
            affine = gmc.estimate(pair.frame1, pair.frame2)
            for kind, boxes, true in (("objects", pair.boxes, pair.displacements), ("background", bg_boxes, bg_true)):
                if boxes.shape[0] == 0:
                    continue
                errors[kind]["zero"].append(np.hypot(true[:, 0], true[:, 1]))
                est = _box_means(flow, boxes)
                errors[kind]["DIS"].append(np.hypot(*(est - true).T))
                est = _centre_motion(affine, boxes)
                errors[kind]["GMC"].append(np.hypot(*(est - true).T))
        for kind in ("objects", "background"):
            cells = []
            n = 0
            for m in ("zero", "DIS", "GMC"):
                e = np.concatenate(errors[kind][m]) if errors[kind][m] else np.zeros(0)
                n = e.size
                cells += [f"{e.mean():.2f}", f"{np.percentile(e, 90):.2f}"] if n else ["-", "-"]
            print(f"| {speed} | {kind} | {n} | " + " | ".join(cells) + " |")


def draw_figure(path: Path, seed: int) -> None:
    """Frame 1 of a slow, a medium and a fast held-out pair: boxes (green), each object's displacement to frame 2
    (yellow) and the camera motion on a grid of background pixels (blue)."""
    panels = []
    # streams picked (with --seed 0) to show three different held-out photographs
    for stream, speed in zip((103, 105, 102), SPEED_LEVELS, strict=True):
        rng = np.random.default_rng([seed, stream])
        # clean frames: sensor noise and JPEG artefacts would triple the PNG's size
        pair = make_pair(rng, 544, 960, speed, "heldout", False, max_objects=8)
        img = pair.frame1.copy()
        h, w = img.shape[:2]
        for y in range(40, h, 80):  # camera motion on a coarse grid (background pixels only)
            for x in range(40, w, 80):
                if pair.labels[y, x] == 0:
                    dx, dy = pair.flow[y, x]
                    cv2.arrowedLine(img, (x, y), (round(x + dx), round(y + dy)), (255, 200, 0), 1, cv2.LINE_AA, 0, 0.2)
        for (x1, y1, x2, y2), (dx, dy) in zip(pair.boxes, pair.displacements, strict=True):
            cv2.rectangle(img, (round(x1), round(y1)), (round(x2), round(y2)), (0, 255, 0), 2, cv2.LINE_AA)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            cv2.arrowedLine(
                img, (round(cx), round(cy)), (round(cx + dx), round(cy + dy)), (0, 255, 255), 2, cv2.LINE_AA, 0, 0.2
            )
        cv2.putText(img, speed, (12, 36), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (255, 255, 255), 2, cv2.LINE_AA)
        panels.append(cv2.resize(img, (400, 227), interpolation=cv2.INTER_AREA))
    path.parent.mkdir(parents=True, exist_ok=True)
    # 5 bits per channel (rounded to the bin centre): the PNG halves in size, the picture looks the same
    picture = np.concatenate(panels, axis=1) // 8 * 8 + 4
    cv2.imwrite(str(path), picture, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"\nfigure: {path} ({path.stat().st_size // 1024} KiB)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=200, help="held-out pairs per speed level (default 200)")
    p.add_argument("--repeats", type=int, default=20, help="timed repeats per speed row (default 20)")
    p.add_argument("--height", type=int, default=544)
    p.add_argument("--width", type=int, default=960)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", type=Path, default=None, help="also draw the README picture to this PNG")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-accuracy", action="store_true")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    print(f"# bench_synthetic: {platform.processor() or platform.machine()}, OpenCV {cv2.__version__}, 1 thread")
    if not args.skip_speed:
        bench_speed(args.repeats, args.seed)
    if not args.skip_accuracy:
        bench_accuracy(args.pairs, args.height, args.width, args.seed)
    if args.figure is not None:
        draw_figure(args.figure, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
