"""Which global-context block earns its place: CPU cost and equal-budget accuracy of scan / attention / conv / none.

Two measurements behind the README's context-block tables:

* ``latency``: CPU time of each block alone at the three levels of a 544x960 frame, and of the light and 3-scale
  heads built with each context kind (random weights: cost does not depend on them). Measured as the calling
  thread's CPU time on ONE torch thread, min over interleaved repeats, so it holds up on a shared machine; compare
  the ratios.
* ``ablation``: a fresh light head and a fresh 3-scale head of each context kind trained for the same steps on the
  same synthetic stream (train photographs) on top of the frozen shipped encoder, then scored on the fixed held-out
  validation set (held-out photographs). Everything but the context kind is identical.

Usage:
    python benchmarks/bench_context.py latency [--repeats 7]
    python benchmarks/bench_context.py ablation [--steps 300 --batch 8 --val-pairs 48]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader

from mmtrack_corr.context import build_context_block
from mmtrack_corr.motion_data import StreamSampler, SyntheticPairs, fixed_validation_pairs
from mmtrack_corr.motion_model import MotionModel, MotionModelConfig, load_motion_model
from mmtrack_corr.train import evaluate, motion_loss

KINDS = ("none", "conv", "attention", "scan", "conv,scan,scan")
# (channels, height, width) of each level's hidden map for a 544x960 frame with the default head widths
LEVELS = {"1/32 (64ch 17x30)": (64, 17, 30), "1/16 (48ch 34x60)": (48, 34, 60), "1/8 (32ch 68x120)": (32, 68, 120)}


def _cpu_ms(fn: Callable[[], object]) -> float:
    start = time.thread_time()
    fn()
    return (time.thread_time() - start) * 1e3


def latency(repeats: int) -> None:
    """Print the CPU cost table (ms, one thread, 544x960)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    calls: dict[tuple[str, ...], Callable[[], object]] = {}
    with torch.inference_mode():
        for kind in KINDS[:4]:
            for level, (c, h, w) in LEVELS.items():
                block, x = build_context_block(kind, c).eval(), torch.randn(1, c, h, w)
                calls[("block", kind, level)] = lambda block=block, x=x: block(x)
        images = torch.rand(1, 3, 544, 960)
        models = {kind: MotionModel(MotionModelConfig(context=kind)).eval() for kind in KINDS}
        feats = models["none"].features(images)
        for kind, model in models.items():
            for head in ("light", "multiscale"):
                calls[(head, kind)] = lambda model=model, head=head: model.forward_features(feats, feats, head)
        calls[("encoder",)] = lambda: models["none"].features(images)
        for fn in calls.values():  # warm-up
            fn()
        best = dict.fromkeys(calls, math.inf)
        for _ in range(repeats):  # interleaved, so a burst of load hits every entry alike
            for key, fn in calls.items():
                best[key] = min(best[key], _cpu_ms(fn))
    print(f"CPU ms per call, one torch thread, 544x960 frame (min of {repeats}, interleaved)\n")
    print("| context | " + " | ".join(f"block at {level}" for level in LEVELS) + " | light head | 3-scale head |")
    print("|---|" + "---|" * (len(LEVELS) + 2))
    for kind in KINDS:
        cells = [f"{best[('block', kind, level)]:.2f}" if ("block", kind, level) in best else "-" for level in LEVELS]
        heads = f"{best[('light', kind)]:.2f} | {best[('multiscale', kind)]:.2f}"
        print(f"| {kind} | " + " | ".join(cells) + f" | {heads} |")
    print(f"\nencoder (one 544x960 frame): {best[('encoder',)]:.2f} ms")


def ablation(steps: int, batch: int, val_pairs: int, workers: int) -> None:
    """Train fresh heads of each context kind on the frozen shipped encoder; print held-out EPE (JSON lines + table)."""
    torch.set_num_threads(1)
    shipped = load_motion_model("default")
    height, width = shipped.config.input_size or (256, 448)
    val = fixed_validation_pairs(val_pairs, height, width)
    rows = []
    for kind in KINDS:
        torch.manual_seed(0)
        model = MotionModel(MotionModelConfig(context=kind))
        model.encoder.load_state_dict(shipped.encoder.state_dict())
        model.encoder.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
        data = SyntheticPairs(height, width, seed=7)
        loader = DataLoader(data, batch_size=batch, sampler=StreamSampler(batch), num_workers=workers)
        wall, cpu = time.time(), time.process_time()
        model.train()
        model.encoder.eval()
        for step, sample in zip(range(steps), loader, strict=False):
            warm = min(1.0, (step + 1) / 30)
            cosine = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps))
            for group in optimizer.param_groups:
                group["lr"] = 1e-3 * warm * cosine
            with torch.no_grad():
                feats = model.encoder(torch.cat([sample["image1"], sample["image2"]]))
            feats1, feats2 = [f[:batch] for f in feats], [f[batch:] for f in feats]
            loss, _ = motion_loss({name: head(feats1, feats2) for name, head in model.heads.items()}, sample)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scores = evaluate(model, val)
        row = {"context": kind, "steps": steps, "batch": batch, "wall_s": round(time.time() - wall)}
        row |= {"cpu_s": round(time.process_time() - cpu), "val": {k: round(v, 3) for k, v in scores.items()}}
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    zero = rows[0]["val"]
    print(f"\nheld-out EPE (px) after {steps} steps x batch {batch}, {val_pairs} pairs {height}x{width};")
    print(f"zero motion {zero['zero/epe']:.2f} dense / {zero['zero/box_epe']:.2f} box\n")
    print("| context | 3-scale EPE | 3-scale box EPE | light EPE | light box EPE | training CPU s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        v = row["val"]
        epes = " | ".join(f"{v[f'{head}/{m}']:.2f}" for head in ("multiscale", "light") for m in ("epe", "box_epe"))
        print(f"| {row['context']} | {epes} | {row['cpu_s']} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency", help="CPU cost of the blocks and heads at 544x960")
    lat.add_argument("--repeats", type=int, default=7)
    abl = sub.add_parser("ablation", help="equal-budget accuracy on the frozen shipped encoder")
    abl.add_argument("--steps", type=int, default=300)
    abl.add_argument("--batch", type=int, default=8)
    abl.add_argument("--val-pairs", type=int, default=48)
    abl.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    for name in ("repeats", "steps", "batch", "val_pairs"):
        if getattr(args, name, 1) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(args, name)}")
    if args.what == "latency":
        latency(args.repeats)
    else:
        ablation(args.steps, args.batch, args.val_pairs, max(args.workers, 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
