"""Accuracy and latency of the learned motion heads against zero motion, Kalman, OpenCV DIS flow and GMC.

Accuracy, on images training never saw (``photos="heldout"``), at each camera-speed level (slow / medium / fast):

- *pairs*: ``mmtrack_corr.synthetic.make_pair`` frame pairs with exact motion;
- *sequences*: ``make_sequence`` clips (drone-like camera, world-anchored objects), every consecutive pair.

Per-box end-point error |estimate - truth| (pixels), mean and p90, separately on *moving objects* (the generator's
objects with at least ``--min-visibility`` of their area visible; truth = mean exact flow over their visible pixels)
and on *background boxes* (``background_boxes``: boxes of pure background; truth = the camera motion over them).
Methods: zero motion; Kalman constant velocity (sequences only: ByteTrack's 8-D filter fed the exact boxes of every
earlier frame, its prediction minus the current centre; an object's first pair predicts zero); OpenCV DIS flow
(medium preset) averaged over the box; GMC (``trackers.CameraMotionCompensation``, sparse, the affine camera motion
at the box centre); the light head (1/32) and the 3-scale head through ``MotionEstimator``.

Uncertainty: for each head, boxes sorted by predicted sigma; the error of the flagged (sigma above a threshold) vs the
kept boxes, at the thresholds that flag 5 / 10 / 20 % of all boxes, and at fixed thresholds in pixels.

Latency per stage at 544x960 and 608x1088 (``--sizes``), medians of ``--repeats`` runs after warm-up, and the ratio to
OpenCV DIS (medium) on the same frames measured in the same run: encoder (one frame; the previous frame's features
are cached), correlation (the 9x9 search: 1/32 for the light head, 1/32+1/16+1/8 for the 3-scale head), head
(including its correlation), box read-out (50 boxes), and the whole per-frame ``MotionEstimator`` call a tracker
makes (preprocessing + encoder + head + read-out). Peak memory: extra peak RSS of one per-frame call, measured in a
fresh process (CPU), or ``torch.cuda.max_memory_allocated`` (CUDA).

Usage:
    python benchmarks/bench_motion.py                       # shipped default weights
    python benchmarks/bench_motion.py --weights path/to/model.pt
    python benchmarks/bench_motion.py --checkpoint out/train/ckpt.pt   # a training checkpoint
    python benchmarks/bench_motion.py --pairs 4 --seq-frames 6 --sizes 272x480   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from mmtrack_corr.estimator import DEFAULT_MAX_SIDE, MotionEstimator, box_mean
from mmtrack_corr.motion_head import correlation_volume
from mmtrack_corr.motion_model import MotionModel, MotionModelConfig, load_motion_model
from mmtrack_corr.refine import box_pyramid, grey_image, refine_boxes, refine_flow
from mmtrack_corr.runtime import keep_freed_memory
from mmtrack_corr.synthetic import SPEED_LEVELS, FramePair, background_boxes, make_pair, make_sequence
from trackers import CameraMotionCompensation, KalmanFilterXYAH, displacements_from_flow

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
HEAD_LABELS = {"light": "light head (1/32)", "multiscale": "3-scale head"}
VARIANT_LABELS = {f"{k}+snap": f"{v} + camera snap" for k, v in HEAD_LABELS.items()}
VARIANT_LABELS.update({f"{k}+refine": f"{v} + refine" for k, v in HEAD_LABELS.items()})
VARIANT_LABELS.update({f"{k}+refine+snap": f"{v} + refine + camera snap" for k, v in HEAD_LABELS.items()})
VARIANT_LABELS.update({f"{k}+refine+box": f"{v} + refine + box fit" for k, v in HEAD_LABELS.items()})
VARIANT_LABELS.update({f"{k}+refine+box+snap": f"{v} + refine + box fit + camera snap" for k, v in HEAD_LABELS.items()})
VARIANT_LABELS.update(
    {f"{k}+refine+box+fallback": f"{v} + refine + box fit + camera fallback" for k, v in HEAD_LABELS.items()}
)
PAIR_METHODS = ("zero", "dis", "gmc", *HEAD_LABELS, *VARIANT_LABELS)
SEQ_METHODS = ("zero", "kalman", "dis", "gmc", *HEAD_LABELS, *VARIANT_LABELS)
LABELS = {"zero": "zero motion", "kalman": "Kalman (const. velocity)", "dis": "OpenCV DIS (box mean)", "gmc": "GMC"}
LABELS.update(HEAD_LABELS)
LABELS.update(VARIANT_LABELS)


# ---------------------------------------------------------------------------------------------------- methods
def dis_flow(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """OpenCV DIS optical flow (medium preset) from ``prev`` to ``cur``, (H, W, 2) float32."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    g1, g2 = cv2.cvtColor(prev, cv2.COLOR_BGR2GRAY), cv2.cvtColor(cur, cv2.COLOR_BGR2GRAY)
    return dis.calc(g1, g2, None)


@dataclass
class Errors:
    """End-point errors per method and box kind, and the heads' predicted sigmas (same order as their errors)."""

    moving: dict[str, list[np.ndarray]] = field(default_factory=dict)
    background: dict[str, list[np.ndarray]] = field(default_factory=dict)
    sigma_moving: dict[str, list[np.ndarray]] = field(default_factory=dict)
    sigma_background: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, kind: str, method: str, est: np.ndarray, truth: np.ndarray) -> None:
        table = self.moving if kind == "moving" else self.background
        table.setdefault(method, []).append(np.linalg.norm(est - truth, axis=1))

    def add_sigma(self, kind: str, method: str, sigma: np.ndarray) -> None:
        table = self.sigma_moving if kind == "moving" else self.sigma_background
        table.setdefault(method, []).append(sigma)

    @staticmethod
    def cat(table: dict[str, list[np.ndarray]], method: str) -> np.ndarray:
        return np.concatenate(table[method]) if table.get(method) else np.zeros(0)


def _evaluate_pair(
    pair: FramePair,
    est: MotionEstimator,
    heads: tuple[str, ...],
    rng: np.random.Generator,
    errors: Errors,
    args: argparse.Namespace,
    kalman: np.ndarray | None = None,
) -> None:
    keep = pair.visibility >= args.min_visibility
    moving, truth = pair.boxes[keep], pair.displacements[keep]
    bg_boxes, bg_truth = background_boxes(rng, pair, args.background_boxes)
    boxes = {"moving": (moving, truth), "background": (bg_boxes, bg_truth)}
    flow = dis_flow(pair.frame1, pair.frame2)
    gmc = CameraMotionCompensation()
    for kind, (b, t) in boxes.items():
        if b.shape[0] == 0:
            continue
        errors.add(kind, "zero", np.zeros_like(t), t)
        errors.add(kind, "dis", displacements_from_flow(flow, b, stride=1), t)
        errors.add(kind, "gmc", gmc(pair.frame1, pair.frame2, b), t)
        if kalman is not None and kind == "moving":
            errors.add(kind, "kalman", kalman[keep], t)

        def score(
            method: str, *, snap: float | None, refine: int, box: bool, fallback: bool = False, kind=kind, b=b, t=t
        ) -> None:
            """One row: the same features (cached), read with these estimator settings."""
            est.camera_snap, est.refine, est.box_refine, est.camera_fallback = snap, refine, box, fallback
            errors.add(kind, method, est.box_displacements(pair.frame1, pair.frame2, b), t)

        for head in heads:
            est.head = head
            est.camera_snap, est.refine, est.box_refine, est.camera_fallback = None, 0, False, False
            d, sigma = est.box_displacements(pair.frame1, pair.frame2, b, return_uncertainty=True)
            errors.add(kind, head, d, t)
            errors.add_sigma(kind, head, sigma)
            snap = args.camera_snap or None
            if snap and not args.box_refine:  # the field read with the camera homography
                score(f"{head}+snap", snap=snap, refine=0, box=False)
            if args.refine:  # the field refined on the frames
                score(f"{head}+refine", snap=None, refine=args.refine, box=False)
                if snap and not args.box_refine:
                    score(f"{head}+refine+snap", snap=snap, refine=args.refine, box=False)
                if args.box_refine:  # then each box fitted to the frames
                    score(f"{head}+refine+box", snap=None, refine=args.refine, box=True)
                    if snap:
                        score(f"{head}+refine+box+snap", snap=snap, refine=args.refine, box=True)
                    if args.camera_fallback:
                        score(f"{head}+refine+box+fallback", snap=None, refine=args.refine, box=True, fallback=True)


def _xyah(boxes: np.ndarray) -> np.ndarray:
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, w / h, h], axis=1)


class _KalmanBaseline:
    """ByteTrack's constant-velocity filter per object id, fed the exact box of every frame."""

    def __init__(self) -> None:
        self.kf = KalmanFilterXYAH()
        self.state: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def step(self, boxes: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Observe frame t's boxes; return the predicted displacement t -> t+1 of each, (N, 2)."""
        out = np.zeros((boxes.shape[0], 2))
        for row, (z, i) in enumerate(zip(_xyah(boxes), ids.tolist(), strict=True)):
            if i in self.state:
                mean, cov = self.kf.predict(*self.state[i])
                mean, cov = self.kf.update(mean, cov, z)
            else:
                mean, cov = self.kf.initiate(z)
            self.state[i] = (mean, cov)
            pred, _ = self.kf.predict(mean, cov)
            out[row] = pred[:2] - z[:2]
        return out


def run_accuracy(est: MotionEstimator, heads: tuple[str, ...], args: argparse.Namespace) -> dict[str, dict]:
    """Errors per speed level on held-out pairs and sequences."""
    results: dict[str, dict] = {}
    for level, speed in enumerate(SPEED_LEVELS):
        rng = np.random.default_rng([args.seed, level])
        pair_errors = Errors()
        t0 = time.perf_counter()
        for _ in range(args.pairs):
            pair = make_pair(rng, args.height, args.width, speed, photos=args.photos)
            _evaluate_pair(pair, est, heads, rng, pair_errors, args)
            est.reset()
        seq_errors = Errors()
        for _ in range(args.sequences):
            seq = make_sequence(rng, args.seq_frames, args.height, args.width, speed, photos=args.photos)
            kalman = _KalmanBaseline()
            for pair in seq.pairs():
                _evaluate_pair(pair, est, heads, rng, seq_errors, args, kalman.step(pair.boxes, pair.ids))
            est.reset()
        print(f"  {speed}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        results[speed] = {"pairs": pair_errors, "sequences": seq_errors}
    return results


# ---------------------------------------------------------------------------------------------------- latency
def _median_ms(
    fn: Callable[[], object], repeats: int, sync: Callable[[], None], ref: Callable[[], object] | None = None
) -> tuple[float, float, float]:
    """(fastest, median) milliseconds - on a shared machine the fastest run is the better estimate of the cost - and
    the paired ratio against ``ref``: ``ref`` runs right before each run of ``fn`` and the median of the per-run
    ratios is returned (1.0 without ``ref``), so that slow phases of a busy machine weigh on both alike."""
    for _ in range(2):
        fn()
        if ref is not None:
            ref()
    sync()
    times, ratios = [], []
    for _ in range(repeats):
        if ref is not None:
            t0 = time.perf_counter()
            ref()
            reference = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
        if ref is not None:
            ratios.append(times[-1] / reference)
    return 1000.0 * min(times), 1000.0 * float(np.median(times)), float(np.median(ratios)) if ratios else 1.0


def run_latency(
    model: MotionModel, args: argparse.Namespace, size: tuple[int, int]
) -> dict[str, tuple[float, float, float]]:
    """(fastest, median) milliseconds per stage at one frame size, and the median ratio to DIS, paired run by run."""
    height, width = size
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rng = np.random.default_rng(args.seed)
    pair = make_pair(rng, height, width, "medium", photos="heldout")
    boxes = np.concatenate([pair.boxes, background_boxes(rng, pair, 50)[0]])[:50]
    est = MotionEstimator(model, device=device, working_size=size, camera_fallback=False)
    x = est._to_tensor(pair.frame1)
    out: dict[str, tuple[float, float, float]] = {}
    g1, g2 = (cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in (pair.frame1, pair.frame2))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def dis_call() -> None:
        dis.calc(g1, g2, None)

    def timed(fn: Callable[[], object]) -> tuple[float, float, float]:
        """A stage's times and its ratio to DIS, paired run by run."""
        return _median_ms(fn, args.repeats, sync, ref=dis_call)

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    with torch.inference_mode(), autocast:
        f1, f2 = model.features(x), model.features(est._to_tensor(pair.frame2))
        out["encoder"] = timed(lambda: model.features(x))
        if args.compile_encoder:  # MotionEstimator(compile_encoder=True); the warm-up calls compile it
            compiled = torch.compile(model.features, dynamic=False)
            out["encoder (torch.compile)"] = timed(lambda: compiled(x))
        out["corr light"] = timed(lambda: correlation_volume(f1[2], f2[2]))
        out["corr 3-scale"] = timed(lambda: [correlation_volume(a, b) for a, b in zip(f1, f2, strict=True)])
        for head in model.heads:
            out[f"head {head}"] = timed(lambda h=head: model.forward_features(f1, f2, h))
        motion = model.forward_features(f1, f2, "multiscale" if "multiscale" in model.heads else None)
        grey1, grey2 = grey_image(x), grey_image(est._to_tensor(pair.frame2))  # for the refinements
        # the refinement, gradients of both frames included (the estimator caches the previous frame's: an upper bound)
        if args.refine:

            def refine() -> Tensor:
                return refine_flow(grey1, grey2, motion.flow, motion.stride, iters=args.refine)

            out[f"refine ({args.refine} steps, {motion.stride}-px cells)"] = timed(refine)
        if args.box_refine:  # the box fit: one frame's pyramid (the estimator builds one per frame), then the fit
            out["box pyramid (one frame)"] = timed(lambda: box_pyramid(grey2))
            pyr1, pyr2 = box_pyramid(grey1), box_pyramid(grey2)
            start = torch.zeros(len(boxes), 2, dtype=torch.float64)
            for n in (1, 10, 50):
                work = torch.from_numpy(boxes[:n])

                def fit(work: Tensor = work, n: int = n) -> Tensor:
                    return refine_boxes(grey1, grey2, work, start[:n], pyramid1=pyr1, pyramid2=pyr2).displacements

                out[f"box fit ({n} box{'es' if n > 1 else ''})"] = timed(fit)
        field = torch.cat([motion.flow[0], motion.log_scale[0].exp()], 0).float()
        tb = torch.from_numpy(boxes)
        out["read-out"] = timed(lambda: box_mean(field, tb, motion.stride).cpu().numpy())
    frames = [pair.frame1, pair.frame2]
    # a new frame per call (one pixel differs), so the estimator's cache holds the previous frame only, as in a tracker
    stream = []
    for t in range(args.repeats + 3):
        f = frames[t % 2].copy()
        f[0, 0, 0] = t % 256
        stream.append(f)
    default_est = MotionEstimator(model, device=device)  # the default working size (max_side DEFAULT_MAX_SIDE)
    variants = [("", est, 0, False, False), (" (default working size, no refine)", default_est, 0, False, False)]
    if args.compile_encoder:
        compiled_est = MotionEstimator(model, device=device, working_size=size, compile_encoder=True)
        variants.insert(1, (" (compiled encoder)", compiled_est, 0, False, False))
    if args.refine:
        variants.append((f" (default working size, refine {args.refine})", default_est, args.refine, False, False))
        if args.box_refine:
            name = f" (default working size, refine {args.refine} + box fit)"
            variants.append((name, default_est, args.refine, True, False))
            if args.camera_fallback:
                name = f" (default working size, refine {args.refine} + box fit + camera fallback)"
                variants.append((name, default_est, args.refine, True, True))
    for name, estimator, steps, box, fallback in variants:
        if "default working size" in name and default_est.working_size_for(height, width) == (height, width):
            continue
        estimator.refine, estimator.box_refine, estimator.camera_fallback = steps, box, fallback
        for head in model.heads:
            estimator.head = head
            estimator.reset()
            tick = iter(range(10**9))

            def call(tick: object = tick, e: MotionEstimator = estimator) -> None:
                t = next(tick)  # type: ignore[call-overload]
                e(stream[t], stream[t + 1], boxes)  # the previous frame is cached, the current one is new

            with autocast:
                out[f"frame {head}{name}"] = timed(call)
    out["DIS (reference)"] = _median_ms(dis_call, args.repeats, lambda: None)
    return out


def _memory_probe(args: argparse.Namespace) -> int:
    """Child process: print the extra peak memory (MB) of one per-frame estimator call.

    Random frames (the content does not change the memory) keep the set-up's own high-water mark low, so that the
    process's peak RSS after the call minus its RSS before it is the call's peak.
    """
    model = _load_model(args)
    height, width = args.probe_size
    rng = np.random.default_rng(args.seed)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2)]
    boxes = np.array([[16.0, 16.0, 80.0, 160.0]] * 50)
    est = MotionEstimator(model, device=args.device, head=args.probe_head, working_size=(height, width))
    est(None, frames[0], boxes)  # the previous frame's features are cached, as in a tracker
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.bf16):
            est(frames[0], frames[1], boxes)
        torch.cuda.synchronize()
        print(json.dumps({"peak_mb": (torch.cuda.max_memory_allocated() - base) / 2**20, "bound": False}))
        return 0
    with open("/proc/self/statm") as fh:
        rss_now = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    est(frames[0], frames[1], boxes)
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    # if the call never rose above the set-up's high-water mark, only an upper bound is known
    print(json.dumps({"peak_mb": (peak_after - rss_now) / 2**20, "bound": peak_after <= peak_before}))
    return 0


def run_memory(args: argparse.Namespace, size: tuple[int, int], head: str) -> float:
    cmd = [sys.executable, __file__, "--_probe", f"{size[0]}x{size[1]}", "--_probe-head", head]
    cmd += ["--device", args.device, "--threads", str(args.threads), "--seed", str(args.seed)]
    cmd += _model_args(args)
    if args.bf16:
        cmd.append("--bf16")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"memory probe failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return float("nan")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return -float(result["peak_mb"]) if result["bound"] else float(result["peak_mb"])


# ---------------------------------------------------------------------------------------------------- report
def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _head_of(method: str) -> str | None:
    """The head a method row belongs to ("multiscale+snap" -> "multiscale"), None for a baseline."""
    base = method.split("+")[0]
    return base if base in HEAD_LABELS else None


def _stats(e: np.ndarray) -> str:
    return f"{e.mean():.2f} / {np.percentile(e, 90):.2f}" if e.size else "-"


def accuracy_tables(results: dict[str, dict], heads: tuple[str, ...], photos: str = "heldout") -> str:
    parts = []
    for source, methods in (("pairs", PAIR_METHODS), ("sequences", SEQ_METHODS)):
        header = ["method"] + [f"{s} {k}" for s in results for k in ("moving", "background")]
        rows = []
        for m in methods:
            if _head_of(m) not in (None, *heads):
                continue
            if m in VARIANT_LABELS and not Errors.cat(results[next(iter(results))][source].moving, m).size:  # not run
                continue
            row = [LABELS[m]]
            for speed in results:
                err: Errors = results[speed][source]
                row += [_stats(Errors.cat(err.moving, m)), _stats(Errors.cat(err.background, m))]
            rows.append(row)
        n_mov = sum(Errors.cat(results[s][source].moving, "zero").size for s in results)
        n_bg = sum(Errors.cat(results[s][source].background, "zero").size for s in results)
        data = "Held-out" if photos == "heldout" else "TRAINING-photo"
        title = f"**{data} {source}**: end-point error, mean / p90 (px); {n_mov} object boxes, {n_bg} background boxes"
        parts.append(title + "\n\n" + _table(header, rows))
    return "\n\n".join(parts)


def uncertainty_table(results: dict[str, dict], heads: tuple[str, ...], fixed: list[float]) -> tuple[str, dict]:
    rows, curves = [], {}
    for head in heads:
        err = np.concatenate(
            [
                Errors.cat(getattr(results[s][src], kind), head)
                for s in results
                for src in ("pairs", "sequences")
                for kind in ("moving", "background")
            ]
        )
        sig = np.concatenate(
            [
                Errors.cat(getattr(results[s][src], "sigma_" + kind), head)
                for s in results
                for src in ("pairs", "sequences")
                for kind in ("moving", "background")
            ]
        )
        if err.size == 0:
            continue
        order = np.argsort(-sig)
        curves[head] = (np.cumsum(err[order]) / np.arange(1, err.size + 1), sig[order], err)
        thresholds = [(f"top {q}%", float(np.percentile(sig, 100 - q))) for q in (5, 10, 20)]
        thresholds += [(f"{t:g} px", t) for t in fixed]
        for name, t in thresholds:
            flagged = sig > t
            rows.append(
                [
                    HEAD_LABELS[head],
                    name,
                    f"{t:.2f}",
                    f"{100 * flagged.mean():.1f}%",
                    f"{err[flagged].mean():.2f}" if flagged.any() else "-",
                    f"{err[~flagged].mean():.2f}" if (~flagged).any() else "-",
                    f"{err.mean():.2f}",
                ]
            )
        rho = _spearman(sig, err)
        rows.append([HEAD_LABELS[head], "Spearman(sigma, error)", "", "", "", "", f"{rho:.2f}"])
    header = ["head", "flag rule", "sigma thresh (px)", "flagged", "EPE flagged", "EPE kept", "EPE all"]
    return "**Uncertainty** (all held-out boxes, pairs + sequences)\n\n" + _table(header, rows), curves


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def latency_table(
    latency: dict[tuple[int, int], dict[str, tuple[float, float, float]]],
    memory: dict[tuple[int, int], dict[str, float]],
    args: argparse.Namespace,
) -> str:
    sizes = list(latency)
    stages = list(dict.fromkeys(k for v in latency.values() for k in v))
    header = ["stage"] + [f"{h}x{w}: fastest / median ms (x DIS, paired)" for h, w in sizes]
    rows = []
    for stage in stages:
        row = [stage]
        for s in sizes:
            if stage not in latency[s]:
                row.append("-")
                continue
            best, med, ratio = latency[s][stage]
            row.append(f"{best:.1f} / {med:.1f} ({ratio:.2f}x)")
        rows.append(row)
    for head in next(iter(memory.values())):
        values = [memory[s][head] for s in sizes]  # negative: only an upper bound was measured
        rows.append([f"peak memory, frame {head} (MB)"] + [f"<= {-v:.0f}" if v < 0 else f"{v:.0f}" for v in values])
    dev = args.device + (" bf16 autocast" if args.bf16 else " fp32")
    note = (
        f"**Latency** on {dev}, {args.threads} threads, {args.repeats} runs; encoder = one frame (the previous "
        "frame's features are cached); 'frame <head>' = the whole per-frame MotionEstimator call with 50 boxes "
        "(preprocessing + encoder + head + read-out; no refinement) at the working size of the column, or, "
        "'(default working size, ...)', on frames of the column's size resized to the default max_side "
        f"{DEFAULT_MAX_SIDE}, without and with --refine steps; x DIS = the median over the runs of the stage's time "
        "divided by that of an OpenCV DIS call (medium preset, the same frames) timed right before it"
    )
    return note + "\n\n" + _table(header, rows)


def plot(results: dict[str, dict], heads: tuple[str, ...], curves: dict, out_dir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots (pip install matplotlib)", file=sys.stderr)
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    speed0 = results[next(iter(results))]
    methods = [
        m
        for m in SEQ_METHODS
        if _head_of(m) is None or (_head_of(m) in heads and Errors.cat(speed0["pairs"].moving, m).size)
    ]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4), sharey=False)
    speeds = list(results)
    width = 0.8 / len(methods)
    for ax, kind in zip(axes, ("moving", "background"), strict=True):
        for i, m in enumerate(methods):
            means = []
            for s in speeds:
                e = np.concatenate([Errors.cat(getattr(results[s][src], kind), m) for src in ("pairs", "sequences")])
                means.append(e.mean() if e.size else np.nan)
            x = np.arange(len(speeds)) + (i - (len(methods) - 1) / 2) * width
            ax.bar(x, means, width, label=LABELS[m], color=plt.get_cmap("tab20")(i % 20))
        ax.set_xticks(np.arange(len(speeds)), speeds)
        ax.set_yscale("log")
        ax.set_ylabel("mean end-point error (px, log)")
        ax.set_title(f"{'moving objects' if kind == 'moving' else 'background boxes'} (held-out pairs + sequences)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.035 * ((len(methods) + 3) // 4), 1, 1))
    paths = [out_dir / "motion_accuracy.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    if curves:
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for head, (cum_err, _, err) in curves.items():
            frac = np.arange(1, err.size + 1) / err.size
            # error of the kept boxes when the fraction `frac` with the highest sigma is flagged
            kept = (err.sum() - cum_err * np.arange(1, err.size + 1)) / np.maximum(
                err.size - np.arange(1, err.size + 1), 1
            )
            (line,) = ax.plot(frac[:-1] * 100, kept[:-1], label=HEAD_LABELS[head])
            oracle = np.sort(err)
            ax.plot(
                frac[:-1] * 100,
                np.cumsum(oracle)[::-1][1:] / np.arange(err.size - 1, 0, -1),
                "--",
                color=line.get_color(),
                label=f"{HEAD_LABELS[head]}, oracle order",
            )
        ax.set_xlabel("boxes flagged by predicted sigma (%)")
        ax.set_ylabel("mean EPE of the kept boxes (px)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(out_dir / "motion_uncertainty.png")
        fig.savefig(paths[1], dpi=110)
        plt.close(fig)
    return paths


# ---------------------------------------------------------------------------------------------------- entry point
def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 544x960, got {text!r}") from None
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise argparse.ArgumentTypeError(f"expected HxW, multiples of 32, got {text!r}")
    return h, w


def _model_args(args: argparse.Namespace) -> list[str]:
    if args.checkpoint:
        return ["--checkpoint", args.checkpoint]
    if args.random_init:
        return ["--random-init"]
    return ["--weights", args.weights]


def _load_model(args: argparse.Namespace) -> MotionModel:
    if args.random_init:
        torch.manual_seed(args.seed)
        return MotionModel(MotionModelConfig()).to(args.device).eval()
    if args.checkpoint:
        # a training checkpoint of ours (it holds RNG states, so it is not a weights_only file)
        ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        model = MotionModel(MotionModelConfig.from_dict(ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
        return model.to(args.device).eval()
    return load_motion_model(args.weights, device=args.device)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--weights", default="default", help="shipped weights name or a weights file (default: default)")
    src.add_argument("--checkpoint", default="", help="a training checkpoint (mmtrack-train-motion's ckpt.pt)")
    src.add_argument("--random-init", action="store_true", help="an untrained model (to check the script runs)")
    parser.add_argument("--pairs", type=int, default=8, help="held-out pairs per speed level (default 8)")
    parser.add_argument("--sequences", type=int, default=1, help="held-out sequences per speed level (default 1)")
    parser.add_argument("--seq-frames", type=int, default=10, help="frames per sequence (default 10)")
    parser.add_argument("--height", type=int, default=544)
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument(
        "--max-side",
        type=int,
        default=DEFAULT_MAX_SIDE,
        help=f"MotionEstimator max_side in the accuracy runs (default {DEFAULT_MAX_SIDE}, the estimator's; 0 = native)",
    )
    parser.add_argument(
        "--camera-snap",
        type=float,
        default=0.0,
        metavar="PX",
        help="also score each head with MotionEstimator(camera_snap=PX) (rows '+ camera snap'; 0 = not)",
    )
    parser.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="STEPS",
        help="also score each head with MotionEstimator(refine=STEPS) (rows '+ refine', and '+ refine + camera snap' "
        "with --camera-snap), and time the refinement (0 = not)",
    )
    parser.add_argument(
        "--box-refine",
        action="store_true",
        help="with --refine: also score MotionEstimator(box_refine=True) (rows '+ refine + box fit', and '+ refine + "
        "box fit + camera snap' with --camera-snap, which then replace the rows of camera snap without the box fit), "
        "and time the box fit",
    )
    parser.add_argument(
        "--compile-encoder",
        action="store_true",
        help="latency: also time the encoder under torch.compile (MotionEstimator(compile_encoder=True)), alone and "
        "in the whole call at the column's size (rows '... torch.compile' / '... compiled encoder')",
    )
    parser.add_argument(
        "--camera-fallback",
        action="store_true",
        help="with --box-refine: also score MotionEstimator(camera_fallback=True) (row '+ refine + box fit + camera "
        "fallback': flat boxes, and a box's flat direction, take the camera's motion) and time it",
    )
    parser.add_argument(
        "--photos",
        choices=("heldout", "train"),
        default="heldout",
        help="photographs of the generated data: heldout (every reported figure) or train (tuning only)",
    )
    parser.add_argument("--background-boxes", type=int, default=8, help="background boxes per pair (default 8)")
    parser.add_argument("--min-visibility", type=float, default=0.5, help="objects evaluated (default 0.5)")
    parser.add_argument("--uncertainty-px", type=float, nargs="*", default=[2.0, 4.0, 8.0])
    parser.add_argument(
        "--sizes", type=_size, nargs="*", default=[(544, 960), (608, 1088), (256, 448)], help="latency working sizes"
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast in the latency runs")
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="call mmtrack_corr.keep_freed_memory() first, as mmtrack-demo and mmtrack-eval do (default: glibc's "
        "malloc settings, as a program using MotionEstimator without it gets)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--plots", default=str(IMAGES), help="folder for the PNG plots ('' = none)")
    parser.add_argument("--json", default="", help="also write the summary figures to this JSON file")
    parser.add_argument("--_probe", type=_size, dest="probe_size", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_probe-head", dest="probe_head", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("--device: expected a CUDA device to be available, got none", file=sys.stderr)
        return 2
    if args.probe_size is not None:
        return _memory_probe(args)
    kept = keep_freed_memory() if args.keep_freed_memory else False
    try:
        model = _load_model(args)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"weights: {exc} (pass --weights PATH, --checkpoint ckpt.pt or --random-init)", file=sys.stderr)
        return 2
    heads = tuple(h for h in ("light", "multiscale") if h in model.heads)
    source = args.checkpoint or ("untrained (random init)" if args.random_init else args.weights)
    print(
        f"model: {source}; heads {heads}; context {model.config.context}; max_side {args.max_side}; "
        f"torch {torch.__version__}; "
        f"opencv {cv2.__version__}; {args.threads} threads; keep_freed_memory {'on' if kept else 'off'}"
    )
    summary: dict[str, object] = {"model": str(source)}
    if not args.skip_accuracy:
        est = MotionEstimator(model, working_size=None, max_side=args.max_side or None)
        print(
            f"accuracy: {args.pairs} pairs + {args.sequences}x{args.seq_frames}-frame sequences per speed, "
            f"{args.height}x{args.width}, {args.photos} photos",
            file=sys.stderr,
        )
        results = run_accuracy(est, heads, args)
        print()
        print(accuracy_tables(results, heads, args.photos))
        table, curves = uncertainty_table(results, heads, args.uncertainty_px)
        print()
        print(table)
        summary["accuracy"] = {
            s: {
                src: {
                    kind: {
                        m: [
                            float(Errors.cat(getattr(results[s][src], kind), m).mean()),
                            float(np.percentile(Errors.cat(getattr(results[s][src], kind), m), 90)),
                        ]
                        for m in SEQ_METHODS
                        if Errors.cat(getattr(results[s][src], kind), m).size
                    }
                    for kind in ("moving", "background")
                }
                for src in ("pairs", "sequences")
            }
            for s in results
        }
        if args.plots:
            for p in plot(results, heads, curves, Path(args.plots)):
                print(f"\nplot: {p}")
    if not args.skip_latency:
        latency, memory = {}, {}
        for size in args.sizes:
            latency[size] = run_latency(model, args, size)
            memory[size] = {h: run_memory(args, size, h) for h in model.heads}
        print()
        print(latency_table(latency, memory, args))
        summary["latency_ms"] = {f"{h}x{w}": v for (h, w), v in latency.items()}
        summary["peak_memory_mb"] = {f"{h}x{w}": v for (h, w), v in memory.items()}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
