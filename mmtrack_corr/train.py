"""Train the motion model: ``mmtrack-train-motion`` (one readable loop, nanoGPT style).

Single process::

    mmtrack-train-motion --out out/train --threads 1 --export weights/motion_default.pt

Several processes (CPU: gloo, one process per core; GPUs: nccl, one per GPU), same code path::

    torchrun --nproc_per_node=2 -m mmtrack_corr.train --out out/train

Any :class:`TrainConfig` field is a ``--flag`` (``--batch_size`` or ``--batch-size``). Each step draws
``batch_size`` samples per process (synthetic pairs generated on the fly, or pairs of a user dataset with
``--data mot --data_root PATH``), runs every head on one shared encoder pass and sums their losses. Rank 0 writes
``log.jsonl`` (losses every ``log_every`` steps, validation end-point error on a fixed held-out set every
``eval_every`` steps) and ``ckpt.pt`` every ``ckpt_every`` steps (atomically: model, optimizer, step, configs and
RNG states); ``--resume out/train/ckpt.pt`` continues exactly where it stopped. ``--export PATH`` writes the final
weights with :func:`mmtrack_corr.motion_model.save_motion_model`.

The loss of one head output (flow ``f`` and Laplace log-scale ``s`` in pixels, at the output's own stride):
``L1 = mean_valid |f - f_gt|_1`` on the exact dense flow averaged over each output cell (cells at least half valid),
plus ``box_weight`` times the L1 error of each ground-truth box's mean predicted motion (over the cells the box
covers) against its displacement (masked to real boxes), plus ``nll_weight`` times the Laplace negative
log-likelihood ``s + |f - f_gt| / exp(s)`` of the same errors with the flow detached (so the scale learns the error
without pulling the flow). The 3-scale head's outputs at 1/32, 1/16 and 1/8 are weighted 0.25 / 0.5 / 1; all heads'
losses are summed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from mmtrack_corr.hooks import FrozenDetectorFeatures, torchvision_fpn_layers, ultralytics_layers, yolox_layers
from mmtrack_corr.motion_data import MotSequencePairs, StreamSampler, SyntheticPairs, fixed_validation_pairs
from mmtrack_corr.motion_head import MotionOutput
from mmtrack_corr.motion_model import (
    SHIPPED_WEIGHTS,
    MotionModel,
    MotionModelConfig,
    atomic_torch_save,
    load_motion_model,
    save_motion_model,
)
from mmtrack_corr.runtime import keep_freed_memory
from trackers.spec import resolve_callable

__all__ = ["TrainConfig", "box_means", "evaluate", "evaluate_weights", "main", "motion_loss", "train"]

_LEVEL_WEIGHTS = {32: 0.25, 16: 0.5}  # aux outputs of the 3-scale head; the final output weighs 1


@dataclass
class TrainConfig:
    """Every knob of a training run (each is a command-line flag of the same name).

    Attributes:
        out: output folder (log.jsonl, ckpt.pt).
        steps: optimizer steps.
        batch_size: samples per process and step.
        height, width: training frame size (multiples of 32); motion scales with the size.
        lr, weight_decay, warmup, grad_clip: AdamW with linear warm-up then cosine decay to lr/20.
        box_weight, nll_weight: loss weights of the box term and the uncertainty term.
        data: "synthetic" (generated on the fly) or "mot" (user sequences under ``data_root``).
        data_root, data_format, gap: user dataset root, layout (mot/visdrone/uavdt/auto) and frame step.
        speeds: comma-separated camera speed levels of the synthetic data.
        sequence_fraction: share of the synthetic samples taken as consecutive frames of generated sequences (drone-like
            camera paths, smooth brightness drift) instead of independent pairs, in [0, 1].
        workers: DataLoader workers per process (0 = generate in the training process).
        seed: seeds the model init, the data stream and every RNG.
        threads: torch intra-op threads per process (0 = leave torch's default).
        device: "cpu", "cuda", "cuda:1"... ("auto": cuda when available; DDP uses the local rank's GPU).
        log_every, eval_every, ckpt_every: intervals in steps (0 = never; a final checkpoint is always written).
        val_pairs: size of the fixed held-out validation set (held-out photographs, fixed seed).
        encoder_widths, heads, context, multiscale_widths, light_width, warp, soft_argmax: the model (see
            MotionModelConfig); lists as comma-separated ints / names.
        detector: train the heads on a frozen detector's features instead of the default encoder: ``MODULE:ATTR``
            of a factory called with no arguments that returns the detector (an ``nn.Module`` taking RGB batches
            (B, 3, H, W) in [0, 1]; wrap yours to add its own normalisation). The weights written hold the heads
            only (``encoder_widths=None``); use them with :class:`mmtrack_corr.DetectorMotion`.
        detector_layers: with ``detector``: the hooked layers, ``"8=SPEC,16=SPEC,32=SPEC"`` (SPEC as
            :class:`mmtrack_corr.FeatureHooks`: ``module.path`` or ``module.path:key``) or a preset:
            ``torchvision_fpn``, ``retinanet``, ``yolox``, ``ultralytics``.
        resume: checkpoint to continue from ("" = start fresh).
        init: start from these weights (a file written by ``--export`` / save_motion_model, or a shipped name such
            as ``default``) with a fresh optimizer and schedule: fine-tuning, e.g. the shipped model on your own
            sequences. The architecture flags must describe the same model ("" = random init).
        export: write the final weights here with save_motion_model ("" = do not).
        max_minutes: stop early (checkpoint written) after this wall time, 0 = no limit.
        stop_at: stop after this step (checkpoint written) as if interrupted; the schedule still spans ``steps``
            (for runs split into several jobs), 0 = run to ``steps``.
        pool: cycle over this many fixed synthetic pairs instead of an endless stream (0 = endless).
        progress: show a tqdm bar on rank 0.
        evaluate: instead of training, evaluate this weights file (or shipped name) on the fixed held-out set of
            ``val_pairs`` pairs at ``height`` x ``width``, overall and per speed level, print JSON and exit.
    """

    out: str = "out/train"
    steps: int = 4000
    batch_size: int = 8
    height: int = 256
    width: int = 448
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    grad_clip: float = 1.0
    box_weight: float = 1.0
    nll_weight: float = 0.5
    data: str = "synthetic"
    data_root: str = ""
    data_format: str = "auto"
    gap: int = 1
    speeds: str = "slow,medium,fast"
    sequence_fraction: float = 0.0
    workers: int = 1
    seed: int = 0
    threads: int = 0
    device: str = "cpu"
    log_every: int = 10
    eval_every: int = 250
    ckpt_every: int = 100
    val_pairs: int = 48
    encoder_widths: str = "16,32,48,64,96"
    heads: str = "multiscale,light"
    context: str = "conv"
    multiscale_widths: str = "32,48,64"
    light_width: int = 64
    warp: bool = True
    soft_argmax: bool = True
    detector: str = ""
    detector_layers: str = ""
    resume: str = ""
    init: str = ""
    export: str = ""
    max_minutes: float = 0.0
    stop_at: int = 0
    pool: int = 0
    progress: bool = True
    evaluate: str = ""

    def model_config(self, in_channels: tuple[int, int, int] | None = None) -> MotionModelConfig:
        """The :class:`MotionModelConfig` these fields describe (head-only on ``in_channels`` if given)."""
        return MotionModelConfig(
            encoder_widths=None if in_channels is not None else _ints("encoder_widths", self.encoder_widths),
            in_channels=in_channels,
            heads=tuple(h.strip() for h in self.heads.split(",") if h.strip()),
            context=self.context,
            multiscale_widths=_ints("multiscale_widths", self.multiscale_widths),  # type: ignore[arg-type]
            light_width=self.light_width,
            input_size=(self.height, self.width),
            warp=self.warp,
            soft_argmax=self.soft_argmax,
        )

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        for name in ("steps", "batch_size", "height", "width", "gap"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)!r}")
        for name in ("height", "width"):
            if getattr(self, name) % 32:
                raise ValueError(f"{name}: expected a multiple of 32, got {getattr(self, name)!r}")
        if self.data not in ("synthetic", "mot"):
            raise ValueError(f"data: expected 'synthetic' or 'mot', got {self.data!r}")
        if self.data == "mot" and not self.data_root:
            raise ValueError("data_root: required with --data mot (a MOTChallenge / VisDrone / UAVDT folder)")
        if self.lr <= 0:
            raise ValueError(f"lr: expected > 0, got {self.lr!r}")
        if not 0.0 <= self.sequence_fraction <= 1.0:
            raise ValueError(f"sequence_fraction: expected a number in [0, 1], got {self.sequence_fraction!r}")
        for name in ("workers", "threads", "warmup", "stop_at", "pool", "log_every", "eval_every", "ckpt_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected an int >= 0, got {getattr(self, name)!r}")
        if bool(self.detector) != bool(self.detector_layers):
            raise ValueError(
                f"detector_layers: --detector and --detector_layers go together, got detector={self.detector!r}, "
                f"detector_layers={self.detector_layers!r}"
            )
        if self.detector_layers and self.detector_layers not in _LAYER_PRESETS:
            _layer_specs(self.detector_layers)
        self.model_config()


def _ints(name: str, text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated ints, got {text!r}") from None


# ----------------------------------------------------------------------------------------------------- the loss


# --detector_layers presets: name -> the {stride: spec} of a detector (only Ultralytics' depend on the model)
_LAYER_PRESET_FNS: dict[str, Any] = {
    "torchvision_fpn": lambda detector: torchvision_fpn_layers(),
    "retinanet": lambda detector: torchvision_fpn_layers(retinanet=True),
    "yolox": lambda detector: yolox_layers(),
    "ultralytics": ultralytics_layers,
}
_LAYER_PRESETS = tuple(_LAYER_PRESET_FNS)


def _layer_specs(text: str) -> dict[int, str]:
    """``"8=a.b,16=c:1,32=d"`` -> {8: "a.b", 16: "c:1", 32: "d"} (ValueError naming detector_layers)."""
    layers: dict[int, str] = {}
    for item in text.split(","):
        stride, sep, spec = item.strip().partition("=")
        if not sep or not stride.strip().isdigit() or not spec.strip():
            raise ValueError(
                f"detector_layers: expected 8=SPEC,16=SPEC,32=SPEC or one of {_LAYER_PRESETS}, got {text!r}"
            )
        layers[int(stride)] = spec.strip()
    if sorted(layers) != [8, 16, 32]:
        raise ValueError(f"detector_layers: expected strides 8, 16 and 32, got {sorted(layers)} in {text!r}")
    return layers


def frozen_detector(cfg: TrainConfig) -> FrozenDetectorFeatures:
    """The frozen detector of ``cfg.detector`` with its ``cfg.detector_layers`` hooked (dry run at the frame size).

    Raises:
        ValueError: the factory cannot be imported or called, returns no ``nn.Module``, or a layer is missing
            (messages name ``detector`` / ``detector_layers``).
    """
    factory = resolve_callable(cfg.detector, "detector", "a factory returning the detector nn.Module")
    try:
        detector = factory()
    except Exception as err:  # the user's code: report it as a bad --detector, not a traceback
        raise ValueError(f"detector: {cfg.detector}() raised {type(err).__name__}: {err}") from err
    if not isinstance(detector, nn.Module):
        raise ValueError(f"detector: {cfg.detector}() returned {type(detector).__name__}, expected a torch nn.Module")
    preset = _LAYER_PRESET_FNS.get(cfg.detector_layers)
    layers: dict[int, str] = preset(detector) if preset is not None else _layer_specs(cfg.detector_layers)
    try:
        return FrozenDetectorFeatures(detector, layers, image_size=(cfg.height, cfg.width))
    except (ValueError, KeyError, AttributeError, RuntimeError, TypeError) as err:
        raise ValueError(f"detector_layers: {cfg.detector_layers!r} on {cfg.detector}: {err}") from None


def _channels(frozen: FrozenDetectorFeatures) -> tuple[int, int, int]:
    return (frozen.channels[8], frozen.channels[16], frozen.channels[32])


def _upsampled(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def box_means(maps: Tensor, boxes: Tensor) -> Tensor:
    """Mean of a dense map over each box, exactly, from a summed-area table.

    Args:
        maps: (B, C, H, W).
        boxes: (B, M, 4) xyxy in pixels of the map; rounded to whole pixels, clipped, at least one pixel.

    Returns:
        (B, M, C).

    Example:
        >>> box_means(torch.ones(1, 2, 4, 4), torch.tensor([[[0.0, 0.0, 2.0, 2.0]]])).tolist()
        [[[1.0, 1.0]]]
    """
    b, c, h, w = maps.shape
    table = F.pad(maps.cumsum(2).cumsum(3), (1, 0, 1, 0))  # (B, C, H+1, W+1), table[y, x] = sum over [0,y)x[0,x)
    x1 = boxes[..., 0].round().clamp(0, w - 1).long()
    y1 = boxes[..., 1].round().clamp(0, h - 1).long()
    x2 = torch.maximum(boxes[..., 2].round().clamp(0, w).long(), x1 + 1)
    y2 = torch.maximum(boxes[..., 3].round().clamp(0, h).long(), y1 + 1)
    flat = table.flatten(2)  # (B, C, (H+1)(W+1))

    def at(y: Tensor, x: Tensor) -> Tensor:
        return flat.gather(2, (y * (w + 1) + x).unsqueeze(1).expand(b, c, -1))

    sums = at(y2, x2) - at(y1, x2) - at(y2, x1) + at(y1, x1)  # (B, C, M)
    area = ((y2 - y1) * (x2 - x1)).unsqueeze(1).to(maps.dtype)
    return (sums / area).transpose(1, 2)


def _targets_at(
    batch: dict[str, Tensor], stride: int, cache: dict[int, tuple[Tensor, Tensor]]
) -> tuple[Tensor, Tensor]:
    """Dense targets averaged over each stride x stride cell (valid pixels only); a cell is valid if half of it is."""
    if stride not in cache:
        valid = batch["valid"].unsqueeze(1).to(batch["flow"].dtype)
        weight = F.avg_pool2d(valid, stride)
        flow = F.avg_pool2d(batch["flow"] * valid, stride) / weight.clamp(min=1e-6)
        cache[stride] = (flow, (weight > 0.5).to(flow.dtype))
    return cache[stride]


def _output_terms(
    out: MotionOutput, batch: dict[str, Tensor], box_weight: float, cache: dict[int, tuple[Tensor, Tensor]]
) -> dict[str, Tensor]:
    # at the output's own resolution: targets pooled to its cells, boxes in its cells (cheap for the 1/8 output)
    flow_gt, valid = _targets_at(batch, out.stride, cache)
    n_valid = valid.sum().clamp(min=1.0)
    err = (out.flow - flow_gt).abs()
    dense_l1 = (err * valid).sum() / n_valid
    dense_nll = ((out.log_scale + err.detach() / out.log_scale.exp()) * valid).sum() / n_valid
    box_valid = batch["box_valid"].unsqueeze(-1).to(out.flow.dtype)
    n_boxes = box_valid.sum().clamp(min=1.0)
    boxes = batch["boxes"] / out.stride
    box_err = (box_means(out.flow, boxes) - batch["box_motion"]).abs()
    box_scale = box_means(out.log_scale, boxes)
    box_l1 = (box_err * box_valid).sum() / n_boxes
    box_nll = ((box_scale + box_err.detach() / box_scale.exp()) * box_valid).sum() / n_boxes
    return {"l1": dense_l1 + box_weight * box_l1, "nll": dense_nll + box_weight * box_nll, "box_l1": box_l1}


def motion_loss(
    outputs: dict[str, MotionOutput], batch: dict[str, Tensor], box_weight: float = 1.0, nll_weight: float = 0.5
) -> tuple[Tensor, dict[str, float]]:
    """Total training loss of every head's outputs (aux outputs weighted 0.25 at 1/32 and 0.5 at 1/16).

    Args:
        outputs: head kind -> :class:`MotionOutput` (training mode: with ``aux``).
        batch: a collated sample dict (:mod:`mmtrack_corr.motion_data`): flow (B, 2, H, W), valid (B, H, W), boxes
            (B, M, 4), box_motion (B, M, 2), box_valid (B, M).
        box_weight: weight of the box terms against the dense terms.
        nll_weight: weight of the Laplace negative log-likelihood terms.

    Returns:
        (loss, stats): the scalar loss and per-head float stats for logging.
    """
    total = batch["flow"].new_zeros(())
    stats: dict[str, float] = {}
    cache: dict[int, tuple[Tensor, Tensor]] = {}
    for kind, out in outputs.items():
        for level in [*out.aux, out]:
            weight = _LEVEL_WEIGHTS.get(level.stride, 1.0) if level is not out else 1.0
            terms = _output_terms(level, batch, box_weight, cache)
            total = total + weight * (terms["l1"] + nll_weight * terms["nll"])
        stats[f"{kind}/l1"] = float(terms["l1"].detach())
        stats[f"{kind}/box_l1"] = float(terms["box_l1"].detach())
        stats[f"{kind}/nll"] = float(terms["nll"].detach())
    stats["loss"] = float(total.detach())
    return total, stats


class _AllHeads(nn.Module):
    """The model's every head on one shared encoder pass, returning the loss: what DDP wraps (its forward)."""

    def __init__(self, model: MotionModel, box_weight: float, nll_weight: float) -> None:
        super().__init__()
        self.model, self.box_weight, self.nll_weight = model, box_weight, nll_weight

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        outputs = self.model.forward_all(batch["image1"], batch["image2"])
        return motion_loss(outputs, batch, self.box_weight, self.nll_weight)


# ----------------------------------------------------------------------------------------------------- validation


@torch.no_grad()
def evaluate(model: MotionModel, samples: Sequence[dict[str, Tensor]], batch_size: int = 8) -> dict[str, float]:
    """End-point errors on a fixed set of pairs, per head, against zero motion.

    Args:
        model: the model (put in eval mode here, restored after).
        samples: sample dicts (see :func:`mmtrack_corr.motion_data.fixed_validation_pairs`).
        batch_size: evaluation batch.

    Returns:
        ``{"<head>/epe": dense EPE (pixels, mean over valid pixels), "<head>/box_epe": mean EPE of the box means,
        "zero/epe", "zero/box_epe": the same for predicting no motion}``.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    counts = {"px": 0.0, "box": 0.0}
    for start in range(0, len(samples), batch_size):
        batch = {k: torch.stack([s[k] for s in samples[start : start + batch_size]]).to(device) for k in samples[0]}
        size = (batch["flow"].shape[-2], batch["flow"].shape[-1])
        valid, box_valid = batch["valid"], batch["box_valid"]
        counts["px"] += float(valid.sum())
        counts["box"] += float(box_valid.sum())
        predictions = {"zero": torch.zeros_like(batch["flow"])}
        for kind, out in model.forward_all(batch["image1"], batch["image2"]).items():
            predictions[kind] = _upsampled(out.flow, size)
        for kind, flow in predictions.items():
            epe = (flow - batch["flow"]).norm(dim=1)
            box_epe = (box_means(flow, batch["boxes"]) - batch["box_motion"]).norm(dim=-1)
            sums[f"{kind}/epe"] = sums.get(f"{kind}/epe", 0.0) + float(epe[valid].sum())
            sums[f"{kind}/box_epe"] = sums.get(f"{kind}/box_epe", 0.0) + float(box_epe[box_valid].sum())
    model.train(was_training)
    return {k: v / max(counts["box" if k.endswith("box_epe") else "px"], 1.0) for k, v in sums.items()}


# ----------------------------------------------------------------------------------------------------- the loop


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}  # noqa: NPY002


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    random.setstate(state["python"])


def _dataset(cfg: TrainConfig) -> SyntheticPairs | MotSequencePairs:
    if cfg.data == "mot":
        fmt = None if cfg.data_format == "auto" else cfg.data_format
        return MotSequencePairs(cfg.data_root, cfg.height, cfg.width, gap=cfg.gap, format=fmt)
    speeds = tuple(s.strip() for s in cfg.speeds.split(",") if s.strip())
    length = cfg.pool if cfg.pool > 0 else 2**31 - 1
    return SyntheticPairs(
        cfg.height,
        cfg.width,
        speeds=speeds,
        photos="train",
        seed=cfg.seed,
        length=length,
        sequence_fraction=cfg.sequence_fraction,
    )


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training as configured; returns the last validation metrics and the step reached.

    Distributed when launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment): gloo on CPU, nccl on CUDA.

    Args:
        cfg: the run's configuration.

    Returns:
        ``{"step": last step, "val": last validation metrics (rank 0; {} elsewhere or if never validated)}``.
    """
    cfg.validate()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else cfg.device)
    if cfg.device == "auto" and device.type != "cuda":
        device = torch.device("cpu")
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    master = rank == 0
    out_dir = Path(cfg.out)
    if master:
        out_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)  # noqa: NPY002 - third-party code may draw from the legacy global RNG
    random.seed(cfg.seed)
    if cfg.detector:  # heads only, on the frozen detector's maps (the detector stays out of the optimizer)
        frozen = frozen_detector(cfg)
        model = MotionModel(cfg.model_config(_channels(frozen)), encoder=frozen).to(device)
    else:
        model = MotionModel(cfg.model_config()).to(device)
    if cfg.init and not cfg.resume:  # a resumed run's checkpoint already holds the fine-tuned weights
        _load_init(model, cfg.init)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    if cfg.resume:
        ckpt = torch.load(cfg.resume, map_location="cpu", weights_only=False)  # our own checkpoint (RNG states)
        if _architecture(ckpt["model_config"]) != _architecture(model.config.to_dict()):
            raise ValueError(f"resume: {cfg.resume} holds a different model config {ckpt['model_config']}")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step = int(ckpt["step"])
        _set_rng_state(ckpt["rng"][rank] if rank < len(ckpt["rng"]) else ckpt["rng"][0])
    wrapped: nn.Module = _AllHeads(model, cfg.box_weight, cfg.nll_weight)
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(wrapped, device_ids=[device] if device.type == "cuda" else None)

    dataset = _dataset(cfg)
    finite = len(dataset) if isinstance(dataset, MotSequencePairs) or cfg.pool > 0 else None
    sampler = StreamSampler(cfg.batch_size, rank, world, start_step=step, length=finite, seed=cfg.seed)
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,
        worker_init_fn=_limit_worker_threads,
        # spawned, not forked: a forked worker inherits the parent's OpenCV / OpenMP thread pools mid-state and
        # can deadlock reconfiguring them (seen: cv2.setNumThreads hanging in pthread_cond_destroy)
        multiprocessing_context="spawn" if cfg.workers > 0 else None,
    )
    val_samples = fixed_validation_pairs(cfg.val_pairs, cfg.height, cfg.width) if master and cfg.eval_every else []
    log = open(out_dir / "log.jsonl", "a") if master else None  # noqa: SIM115 - closed in finally
    progress = _progress(cfg, step) if master else None
    deadline = time.monotonic() + 60 * cfg.max_minutes if cfg.max_minutes > 0 else math.inf
    started, last_val = time.monotonic(), {}
    model.train()
    try:
        batches = iter(loader)
        while step < cfg.steps:
            batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
            lr = _lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, stats = wrapped(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
            optimizer.step()
            step += 1
            if not math.isfinite(stats["loss"]):
                raise FloatingPointError(f"loss became {stats['loss']} at step {step}")
            interrupted = time.monotonic() > deadline or step == cfg.stop_at
            stop = _any_rank(interrupted, device, world)  # every rank stops at the same step
            if master:
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{stats['loss']:.3f}")
                if log is not None and cfg.log_every and (step % cfg.log_every == 0 or step == 1):
                    record = {"step": step, "lr": lr, "grad_norm": grad_norm, "time": time.monotonic() - started}
                    log.write(json.dumps({**record, **stats}) + "\n")
                    log.flush()
                if log is not None and cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps or stop):
                    last_val = evaluate(model, val_samples)
                    log.write(json.dumps({"step": step, "time": time.monotonic() - started, "val": last_val}) + "\n")
                    log.flush()
            if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or step == cfg.steps or stop:
                _checkpoint(model, optimizer, step, cfg, out_dir, world, master)
            if stop:
                break
        if master and cfg.export:
            save_motion_model(model, cfg.export)
    finally:
        if progress is not None:
            progress.close()
        if log is not None:
            log.close()
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return {"step": step, "val": last_val}


def _load_init(model: MotionModel, init: str) -> None:
    """Copy the weights of ``init`` (file or shipped name) into ``model``; the architectures must match."""
    source = load_motion_model(init)
    held, built = _architecture(source.config.to_dict()), _architecture(model.config.to_dict())
    if held != built:
        raise ValueError(
            f"init: {init} holds a different model {held}; this run builds {built} (match the architecture flags)"
        )
    weights = source.state_dict()
    if source.encoder is None:  # heads-only weights on a frozen detector: the detector keeps its own
        weights.update({k: v for k, v in model.state_dict().items() if k.startswith("encoder.")})
    model.load_state_dict(weights)


def _architecture(config: dict[str, Any]) -> dict[str, Any]:
    """A model config without its metadata (the training frame size may change between resumed stages)."""
    return {k: v for k, v in config.items() if k != "input_size"}


def _checkpoint(
    model: MotionModel,
    optimizer: torch.optim.Optimizer,
    step: int,
    cfg: TrainConfig,
    out: Path,
    world: int,
    master: bool,
) -> None:
    """Rank 0 writes the checkpoint with every rank's RNG state (gathered), atomically."""
    states = [_rng_state()]
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, states[0])
        states = gathered
    if master:
        ckpt = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "config": dataclasses.asdict(cfg),
            "model_config": model.config.to_dict(),
            "rng": states,
        }
        atomic_torch_save(ckpt, out / "ckpt.pt")


def _any_rank(flag: bool, device: torch.device, world: int) -> bool:
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _limit_worker_threads(_: int) -> None:
    # data workers render with OpenCV / numpy: one thread each, or they oversubscribe the cores the step needs
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _progress(cfg: TrainConfig, step: int) -> Any:
    if not cfg.progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    return tqdm(total=cfg.steps, initial=step, desc="train", dynamic_ncols=True)


# ----------------------------------------------------------------------------------------------------- the CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmtrack-train-motion",
        description="Train the motion model (encoder + heads) on synthetic pairs or a MOT-layout dataset.",
    )
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        default = getattr(defaults, f.name)
        flags = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        if isinstance(default, bool):
            parser.add_argument(*flags, dest=f.name, type=_bool, default=default, metavar="BOOL")
        else:
            parser.add_argument(*flags, dest=f.name, type=type(default), default=default)
    return parser


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def evaluate_weights(cfg: TrainConfig) -> dict[str, Any]:
    """Validation metrics of ``cfg.evaluate`` (a weights file or shipped name): overall and per speed level.

    Args:
        cfg: ``evaluate``, ``val_pairs``, ``height``, ``width``, ``threads`` and ``device`` are read.

    Returns:
        ``{"pairs": n, "size": [H, W], "all": metrics, "slow": ..., "medium": ..., "fast": ...}`` with the metrics
        of :func:`evaluate`.
    """
    from mmtrack_corr.synthetic import SPEED_LEVELS

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model = load_motion_model(cfg.evaluate, device="cpu" if cfg.device == "auto" else cfg.device)
    if cfg.detector:  # head-only weights: their detector gives the features
        model.encoder = frozen_detector(cfg).to(next(model.parameters()).device)
    elif model.encoder is None:
        raise ValueError(f"evaluate: {cfg.evaluate} holds heads only; pass the --detector they were trained on")
    samples = fixed_validation_pairs(cfg.val_pairs, cfg.height, cfg.width)
    result: dict[str, Any] = {"pairs": len(samples), "size": [cfg.height, cfg.width], "all": evaluate(model, samples)}
    for i, speed in enumerate(SPEED_LEVELS):  # the validation pairs cycle through the speed levels in this order
        result[speed] = evaluate(model, samples[i :: len(SPEED_LEVELS)])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``mmtrack-train-motion``: parse flags into a :class:`TrainConfig` and train. Returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    cfg = TrainConfig(**vars(args))
    try:
        cfg.validate()
        if cfg.resume and not Path(cfg.resume).is_file():
            raise ValueError(f"resume: no checkpoint at {cfg.resume!r}")
        if cfg.init and cfg.init not in SHIPPED_WEIGHTS and not Path(cfg.init).is_file():
            raise ValueError(f"init: no weights file at {cfg.init!r} (shipped names: {sorted(SHIPPED_WEIGHTS)})")
    except ValueError as exc:
        print(f"mmtrack-train-motion: error: {exc}", file=sys.stderr)
        return 2
    keep_freed_memory()  # each step's tensors reuse the pages the previous step freed: ~25 % faster steps on CPU
    try:
        if cfg.evaluate:
            print(json.dumps(evaluate_weights(cfg), indent=1))
            return 0
        result = train(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"mmtrack-train-motion: error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0 and result["val"]:
        print(json.dumps({"step": result["step"], "val": result["val"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
