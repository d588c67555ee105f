"""Training: the loss, box means, a few steps reduce the loss, exact resume, DDP on gloo, user datasets, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mmtrack_corr.motion_data import MotSequencePairs, StreamSampler, SyntheticPairs, box_motion_from_ids
from mmtrack_corr.motion_head import MotionOutput
from mmtrack_corr.motion_model import load_motion_model
from mmtrack_corr.train import TrainConfig, box_means, evaluate, main, motion_loss, train

TINY = {
    "encoder_widths": "8,8,16,16,32",
    "multiscale_widths": "16,16,16",
    "light_width": 16,
    "height": 64,
    "width": 96,
    "batch_size": 2,
    "workers": 0,
    "threads": 1,
    "progress": False,
    "val_pairs": 2,
    "warmup": 0,
}


def _cfg(tmp_path: Path, **kwargs) -> TrainConfig:  # type: ignore[no-untyped-def]
    return TrainConfig(**{**TINY, "out": str(tmp_path), **kwargs})


def _log(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (path / "log.jsonl").read_text().splitlines()]


def test_box_means_equal_the_naive_mean() -> None:
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(2, 3, 10, 13, generator=g)
    boxes = torch.tensor([[[0, 0, 13, 10], [2.2, 3.4, 7.6, 8.0]], [[12.0, 9.0, 20.0, 30.0], [-5.0, 4.0, 3.0, 4.2]]])
    got = box_means(maps, boxes)
    for b in range(2):
        for m in range(2):
            x1, y1, x2, y2 = boxes[b, m].round().long().tolist()
            x1, y1 = min(max(x1, 0), 12), min(max(y1, 0), 9)
            x2, y2 = max(min(x2, 13), x1 + 1), max(min(y2, 10), y1 + 1)
            expected = maps[b, :, y1:y2, x1:x2].mean(dim=(1, 2))
            torch.testing.assert_close(got[b, m], expected, rtol=1e-5, atol=1e-5)


def _batch(height: int = 32, width: int = 64) -> dict[str, torch.Tensor]:
    flow = torch.zeros(1, 2, height, width)
    flow[:, 0] = 8.0  # everything moves 8 px right
    return {
        "flow": flow,
        "valid": torch.ones(1, height, width, dtype=torch.bool),
        "boxes": torch.tensor([[[8.0, 8.0, 24.0, 24.0], [0.0, 0.0, 0.0, 0.0]]]),
        "box_motion": torch.tensor([[[8.0, 0.0], [99.0, 99.0]]]),
        "box_valid": torch.tensor([[True, False]]),
    }


def test_loss_is_zero_l1_for_the_exact_flow_and_ignores_padding_boxes() -> None:
    batch = _batch()
    exact = MotionOutput(
        torch.full((1, 2, 4, 8), 8.0) * torch.tensor([1.0, 0.0]).view(1, 2, 1, 1), torch.zeros(1, 2, 4, 8), 8
    )
    _, stats = motion_loss({"multiscale": exact}, batch)
    assert stats["multiscale/l1"] == pytest.approx(0.0, abs=1e-6)
    assert stats["multiscale/box_l1"] == pytest.approx(0.0, abs=1e-6)
    zero = MotionOutput(torch.zeros(1, 2, 1, 2), torch.zeros(1, 2, 1, 2), 32)
    _, stats = motion_loss({"light": zero}, batch, box_weight=1.0)
    # dense L1 = 8 px (x only), box L1 = 8 px: l1 = 8 + 1 * 8; the padded box (motion 99) does not count
    assert stats["light/l1"] == pytest.approx(16.0)
    assert stats["light/box_l1"] == pytest.approx(8.0)


def test_laplace_scale_is_minimised_at_the_mean_absolute_error() -> None:
    batch = _batch()
    flow = torch.zeros(1, 2, 1, 2)
    nll = []
    for log_b in (np.log(2.0), np.log(4.0), np.log(8.0)):
        out = MotionOutput(flow, torch.full((1, 2, 1, 2), float(log_b)), 32)
        nll.append(motion_loss({"light": out}, batch)[1]["light/nll"])
    # |err| is 8 on x and 0 on y: per-component optimum b = |err|; mean over components favours b ~ 4 among these
    assert nll[1] < nll[0] and nll[1] < nll[2]


def test_aux_levels_weighted_quarter_and_half() -> None:
    batch = _batch()
    zero = MotionOutput(torch.zeros(1, 2, 4, 8), torch.zeros(1, 2, 4, 8), 8)
    aux = [MotionOutput(torch.zeros(1, 2, 1, 2), torch.zeros(1, 2, 1, 2), 32)]
    aux.append(MotionOutput(torch.zeros(1, 2, 2, 4), torch.zeros(1, 2, 2, 4), 16))
    single, _ = motion_loss({"multiscale": zero}, batch)
    total, _ = motion_loss({"multiscale": MotionOutput(zero.flow, zero.log_scale, 8, aux)}, batch)
    # every output has the same loss here (zero flow against uniform motion): total = (1 + 0.25 + 0.5) * single
    torch.testing.assert_close(total, single * 1.75)


def test_stream_sampler_partitions_steps_and_ranks() -> None:
    first = list(zip(range(8), StreamSampler(2, rank=0, world_size=2), strict=False))
    second = list(zip(range(8), StreamSampler(2, rank=1, world_size=2), strict=False))
    assert [i for _, i in first] == [0, 1, 4, 5, 8, 9, 12, 13]
    assert [i for _, i in second] == [2, 3, 6, 7, 10, 11, 14, 15]
    resumed = list(zip(range(4), StreamSampler(2, rank=0, world_size=2, start_step=2), strict=False))
    assert [i for _, i in resumed] == [8, 9, 12, 13]
    wrapped = [i for _, i in zip(range(10), StreamSampler(2, length=5, seed=1), strict=False)]
    assert sorted(wrapped[:5]) == [0, 1, 2, 3, 4] and sorted(wrapped[5:]) == [0, 1, 2, 3, 4]


def test_synthetic_samples_are_reproducible_and_well_formed() -> None:
    ds = SyntheticPairs(64, 96, seed=3, max_boxes=4)
    a, b = ds[7], ds[7]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["image1"].shape == (3, 64, 96) and a["image1"].dtype == torch.float32
    assert 0.0 <= float(a["image1"].min()) and float(a["image1"].max()) <= 1.0
    assert a["flow"].shape == (2, 64, 96) and a["valid"].dtype == torch.bool
    assert a["boxes"].shape == (4, 4) and a["box_motion"].shape == (4, 2) and a["box_valid"].shape == (4,)
    assert not torch.equal(ds[8]["image1"], a["image1"])


def test_sequence_fraction_mixes_in_consecutive_sequence_frames_and_leaves_the_pair_stream_alone() -> None:
    from mmtrack_corr.motion_data import SEQUENCE_FRAMES, sample_from_arrays
    from mmtrack_corr.synthetic import make_pair, make_sequence

    def as_sample(pair):  # noqa: ANN001, ANN202
        return sample_from_arrays(pair.frame1, pair.frame2, pair.boxes, pair.displacements, 4, pair.flow, pair.valid)

    def equal(a, b) -> bool:  # noqa: ANN001
        return all(torch.equal(a[k], b[k]) for k in b)

    # fraction 0 draws nothing extra: sample i is still make_pair on default_rng([seed, i]) (earlier runs' stream)
    pairs = SyntheticPairs(64, 96, speeds=("medium",), seed=3, max_boxes=4)
    assert equal(pairs[5], as_sample(make_pair(np.random.default_rng([3, 5]), 64, 96, speed="medium")))
    # otherwise one uniform draw per sample picks a sequence (below the fraction) or an independent pair
    mixed = SyntheticPairs(64, 96, speeds=("medium",), seed=3, max_boxes=4, sequence_fraction=0.5)
    kinds = []
    for i in range(12):
        rng = np.random.default_rng([3, i])
        from_sequence = rng.random() < 0.5
        kinds.append(from_sequence)
        if from_sequence:  # two consecutive frames of a generated sequence, with their exact flow
            sequence = make_sequence(rng, SEQUENCE_FRAMES, 64, 96, "medium", photos="train")
            want = as_sample(sequence.pair(int(rng.integers(1, SEQUENCE_FRAMES))))
        else:
            want = as_sample(make_pair(rng, 64, 96, speed="medium"))
        assert equal(mixed[i], want)
    assert 0 < sum(kinds) < 12
    everything = SyntheticPairs(64, 96, speeds=("medium",), seed=3, max_boxes=4, sequence_fraction=1.0)
    assert not equal(everything[5], pairs[5]) and equal(everything[5], everything[5])
    for bad in (-0.1, 1.5, "half"):
        with pytest.raises(ValueError, match="sequence_fraction"):
            SyntheticPairs(64, 96, sequence_fraction=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sequence_fraction"):
        TrainConfig(sequence_fraction=2.0).validate()


def test_a_few_steps_reduce_the_loss(tmp_path: Path) -> None:
    # overfit a pool of 2 fixed pairs: the loss must fall by more than 10% within 25 steps
    cfg = _cfg(tmp_path, steps=25, pool=2, lr=3e-3, log_every=1, eval_every=0, ckpt_every=0, context="conv")
    train(cfg)
    losses = [r["loss"] for r in _log(tmp_path) if "loss" in r]
    assert len(losses) == 25
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5])


def test_resume_gives_the_same_steps_as_an_uninterrupted_run(tmp_path: Path) -> None:
    common = {"steps": 4, "log_every": 1, "eval_every": 0, "ckpt_every": 0, "seed": 5}
    full = tmp_path / "full"
    train(_cfg(full, export=str(full / "w.pt"), **common))
    part = tmp_path / "part"
    train(_cfg(part, stop_at=2, **common))
    assert torch.load(part / "ckpt.pt", weights_only=False)["step"] == 2
    train(_cfg(part, resume=str(part / "ckpt.pt"), export=str(part / "w.pt"), **common))
    full_log = [r for r in _log(full) if "loss" in r]
    part_log = [r for r in _log(part) if "loss" in r]
    assert [r["step"] for r in part_log] == [1, 2, 3, 4]
    assert [r["loss"] for r in part_log] == [r["loss"] for r in full_log]
    a, b = load_motion_model(full / "w.pt"), load_motion_model(part / "w.pt")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name


def test_init_starts_from_the_given_weights_with_a_fresh_schedule(tmp_path: Path) -> None:
    common = {"log_every": 1, "eval_every": 0, "ckpt_every": 0}
    first = tmp_path / "first"
    train(_cfg(first, steps=3, seed=1, export=str(first / "w.pt"), **common))
    tuned = tmp_path / "tuned"  # a negligible step from the loaded weights leaves them as they were
    train(_cfg(tuned, steps=1, seed=2, lr=1e-12, init=str(first / "w.pt"), export=str(tuned / "w.pt"), **common))
    a, b = load_motion_model(first / "w.pt"), load_motion_model(tuned / "w.pt")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pb, pa, rtol=0, atol=1e-8, msg=name)
    fresh = tmp_path / "fresh"  # the same run from a random init starts elsewhere
    train(_cfg(fresh, steps=1, seed=2, lr=1e-12, **common))
    assert _log(fresh)[0]["loss"] != _log(tuned)[0]["loss"]
    with pytest.raises(ValueError, match="init: .* different model"):
        train(_cfg(tmp_path / "other", steps=1, light_width=8, init=str(first / "w.pt"), **common))


def test_validation_reports_every_head_and_zero_motion(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, steps=1, eval_every=1, ckpt_every=0)
    result = train(cfg)
    val = result["val"]
    assert set(val) == {f"{h}/{m}" for h in ("zero", "multiscale", "light") for m in ("epe", "box_epe")}
    assert all(np.isfinite(v) and v >= 0 for v in val.values())
    # the zero-motion EPE is the mean motion magnitude of the fixed held-out pairs, independent of the model
    from mmtrack_corr.motion_data import fixed_validation_pairs

    samples = fixed_validation_pairs(2, 64, 96)
    mags = torch.cat([s["flow"].norm(dim=0)[s["valid"]] for s in samples])
    assert val["zero/epe"] == pytest.approx(float(mags.mean()), rel=1e-5)
    model = load_motion_model_from_ckpt(tmp_path / "ckpt.pt")
    again = evaluate(model, samples)
    assert again["zero/epe"] == pytest.approx(val["zero/epe"])


def load_motion_model_from_ckpt(path: Path):  # type: ignore[no-untyped-def]
    from mmtrack_corr.motion_model import MotionModel, MotionModelConfig

    ckpt = torch.load(path, weights_only=False)
    model = MotionModel(MotionModelConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model


def _write_mot_sequence(root: Path, frames: int = 3) -> None:
    seq = root / "SEQ-01"
    (seq / "img1").mkdir(parents=True)
    (seq / "gt").mkdir()
    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)
    rows = []
    for f in range(1, frames + 1):
        cv2.imwrite(str(seq / "img1" / f"{f:06d}.jpg"), background)
        rows.append(f"{f},1,{10 + 4 * f},20,30,40,1,1,1.0")  # id 1 moves 4 px right per frame
        rows.append(f"{f},2,100,{50 - 2 * f},20,20,1,1,1.0")  # id 2 moves 2 px up per frame
    rows.append("2,3,5,5,10,10,0,1,1.0")  # not considered (flag 0): ignored
    (seq / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname=SEQ-01\nimDir=img1\nframeRate=30\nseqLength={frames}\nimWidth=200\nimHeight=120\n"
        "imExt=.jpg\n"
    )


def test_mot_sequence_pairs_give_box_motion_scaled_to_the_training_size(tmp_path: Path) -> None:
    _write_mot_sequence(tmp_path)
    ds = MotSequencePairs(tmp_path, height=64, width=96, max_boxes=4)
    assert len(ds) == 2
    s = ds[0]
    assert s["image1"].shape == (3, 64, 96) and not s["valid"].any()
    n = int(s["box_valid"].sum())
    assert n == 2
    motion = {tuple(np.round(m, 4)) for m in s["box_motion"][:n].tolist()}
    assert motion == {(round(4 * 96 / 200, 4), 0.0), (0.0, round(-2 * 64 / 120, 4))}


def test_box_motion_from_ids_keeps_only_matched_ids() -> None:
    boxes, motion = box_motion_from_ids(
        np.array([5, 6]), np.array([[0, 0, 2, 2], [0, 0, 4, 4.0]]), np.array([7]), np.array([[0, 0, 1, 1.0]])
    )
    assert boxes.shape == (0, 4) and motion.shape == (0, 2)


def test_training_on_a_user_dataset(tmp_path: Path) -> None:
    _write_mot_sequence(tmp_path / "data", frames=4)
    cfg = _cfg(tmp_path / "out", steps=2, data="mot", data_root=str(tmp_path / "data"), eval_every=0, log_every=1)
    assert train(cfg)["step"] == 2
    losses = [r for r in _log(tmp_path / "out") if "loss" in r]
    assert all(np.isfinite(r["loss"]) and r["multiscale/box_l1"] > 0 for r in losses)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--height", "100"], "height: expected a multiple of 32, got 100", id="height"),
        pytest.param(["--data", "coco"], "data: expected 'synthetic' or 'mot'", id="data"),
        pytest.param(["--data", "mot"], "data_root: required with --data mot", id="no_root"),
        pytest.param(["--context", "lstm"], "context: expected one of", id="context"),
        pytest.param(["--resume", "/nonexistent/ckpt.pt"], "resume: no checkpoint at", id="resume"),
        pytest.param(["--init", "/nonexistent/w.pt"], "init: no weights file at", id="init"),
        pytest.param(["--steps", "ten"], "invalid int value", id="not_an_int"),
    ],
)
def test_cli_user_errors_exit_2_with_one_line(argv, message, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err


def test_cli_trains_and_exports(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = ["--out", str(tmp_path), "--steps", "1", "--export", str(tmp_path / "w.pt"), "--eval-every", "1"]
    argv += [f"--{k}={v}" for k, v in TINY.items()]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["step"] == 1 and "multiscale/epe" in printed["val"]
    model = load_motion_model(tmp_path / "w.pt")
    assert model.config.encoder_widths == (8, 8, 16, 16, 32) and model.config.input_size == (64, 96)
    evaluate_argv = ["--evaluate", str(tmp_path / "w.pt"), "--val_pairs", "3", "--height", "64", "--width", "96"]
    assert main(evaluate_argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 3 and set(report) >= {"all", "slow", "medium", "fast"}
    assert report["all"]["zero/epe"] > 0 and "light/box_epe" in report["fast"]


@pytest.mark.integration  # ~20 s: kept in the default run, CI must exercise DDP (issue 7)
def test_torchrun_ddp_on_gloo(tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    if not Path(torchrun).exists():
        pytest.skip("torchrun not found next to the interpreter")
    args = [f"--{k}={v}" for k, v in TINY.items()] + ["--steps=3", "--log_every=1", "--eval_every=3"]
    args += [f"--out={tmp_path}", f"--export={tmp_path / 'w.pt'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "mmtrack_corr.train", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert ckpt["step"] == 3 and len(ckpt["rng"]) == 2  # both ranks' RNG states gathered
    log = _log(tmp_path)
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3]
    assert any("val" in r for r in log)
    assert load_motion_model(tmp_path / "w.pt") is not None


def tiny_yolox() -> torch.nn.Module:
    """Factory for ``--detector test_train:tiny_yolox`` (a YOLOX-shaped network from tests/detector_nets.py)."""
    from detector_nets import TinyYOLOX

    torch.manual_seed(0)
    return TinyYOLOX()


def not_a_module() -> str:
    return "a string"


def test_cli_trains_heads_on_a_frozen_detector(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    detector = tiny_yolox()
    before = {k: v.clone() for k, v in detector.state_dict().items()}
    argv = ["--out", str(tmp_path), "--steps", "2", "--export", str(tmp_path / "w.pt"), "--eval-every", "2"]
    argv += ["--detector", "test_train:tiny_yolox", "--detector-layers", "yolox", "--context", "conv"]
    argv += [f"--{k}={v}" for k, v in TINY.items()]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["step"] == 2 and np.isfinite(printed["val"]["multiscale/box_epe"])
    model = load_motion_model(tmp_path / "w.pt")  # heads only, on the detector's channel counts
    assert model.encoder is None and model.config.in_channels == (16, 32, 64)
    assert not any(k.startswith("encoder.") for k in model.state_dict())
    # the detector was frozen: a fresh one from the factory equals the one before training (same seed)
    after = tiny_yolox().state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # explicit layer specs are the same as the preset
    argv2 = [a if a != "yolox" else "8=backbone:0,16=backbone:1,32=backbone:2" for a in argv]
    argv2[argv2.index(str(tmp_path))] = str(tmp_path / "explicit")
    argv2[argv2.index(str(tmp_path / "w.pt"))] = str(tmp_path / "explicit" / "w.pt")
    assert main(argv2) == 0
    again = load_motion_model(tmp_path / "explicit" / "w.pt")
    for (name, pa), pb in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    # evaluating head-only weights needs their detector
    evaluate_argv = ["--evaluate", str(tmp_path / "w.pt"), "--val_pairs", "3", "--height", "64", "--width", "96"]
    assert main(evaluate_argv) == 2
    assert "holds heads only; pass the --detector" in capsys.readouterr().err
    evaluate_argv += ["--detector", "test_train:tiny_yolox", "--detector_layers", "yolox"]
    assert main(evaluate_argv) == 0
    assert json.loads(capsys.readouterr().out)["all"]["multiscale/box_epe"] > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--detector", "test_train:tiny_yolox"], "detector_layers: --detector and", id="no_layers"),
        pytest.param(["--detector_layers", "yolox"], "detector_layers: --detector and", id="no_detector"),
        pytest.param(
            ["--detector", "x:y", "--detector_layers", "8=a,16=b"], "expected strides 8, 16 and 32", id="strides"
        ),
        pytest.param(["--detector", "x:y", "--detector_layers", "p3,p4"], "expected 8=SPEC", id="syntax"),
        pytest.param(
            ["--detector", "no_such_mod_z:f", "--detector_layers", "yolox", "--steps", "1"],
            "detector: cannot import module 'no_such_mod_z'",
            id="import",
        ),
        pytest.param(
            ["--detector", "test_train:not_a_module", "--detector_layers", "yolox", "--steps", "1"],
            "returned str, expected a torch nn.Module",
            id="not_module",
        ),
        pytest.param(
            ["--detector", "test_train:tiny_yolox", "--detector_layers", "8=nope,16=backbone:1,32=backbone:2"],
            "detector_layers:",
            id="missing_layer",
        ),
    ],
)
def test_cli_detector_errors_exit_2(argv, message, capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert main([*argv, "--out", str(tmp_path), *[f"--{k}={v}" for k, v in TINY.items()]]) == 2
    assert message in capsys.readouterr().err
