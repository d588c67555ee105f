"""MotionModel: config round trip, forward paths agree, save/load with the sha256 check, shipped weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmtrack_corr.motion_model import (
    SHIPPED_WEIGHTS,
    MotionModel,
    MotionModelConfig,
    WeightsIntegrityError,
    load_motion_model,
    save_motion_model,
    sha256_file,
    shipped_weights,
)

SMALL = MotionModelConfig(encoder_widths=(8, 8, 16, 16, 32), multiscale_widths=(16, 16, 16), light_width=16)


def _model(config: MotionModelConfig = SMALL, seed: int = 0) -> MotionModel:
    torch.manual_seed(seed)
    model = MotionModel(config)
    with torch.no_grad():  # decoders start at zero; give them weights so outputs are not trivially equal
        for name, p in model.named_parameters():
            if "decoder" in name:
                p.normal_(0.0, 0.05)
    return model.eval()


def _frames(batch: int = 1, height: int = 64, width: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return torch.rand(batch, 3, height, width, generator=g), torch.rand(batch, 3, height, width, generator=g)


def test_config_round_trips_through_json() -> None:
    cfg = MotionModelConfig(context="conv", heads=("light",), light_width=32)
    again = MotionModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"heads": ("fast",)}, r"heads: expected distinct kinds", id="unknown_head"),
        pytest.param({"heads": ("light", "light")}, r"heads: expected distinct kinds", id="duplicate_head"),
        pytest.param({"heads": ()}, r"heads: expected distinct kinds", id="no_head"),
        pytest.param({"context": "gru"}, r"context: expected one of", id="context"),
        pytest.param({"encoder_widths": None}, r"in_channels: required", id="no_encoder_no_channels"),
    ],
)
def test_bad_config(kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        MotionModelConfig(**kwargs)


@pytest.mark.parametrize("key", ["warp", "soft_argmax"])
def test_config_without_a_newer_key_loads_the_architecture_it_was_trained_with(key: str) -> None:
    data = MotionModelConfig().to_dict()
    assert data[key] is True  # new models have it
    del data[key]  # a file written before the option existed
    cfg = MotionModelConfig.from_dict(data)
    assert getattr(cfg, key) is False
    model = MotionModel(cfg)
    if key == "warp":
        assert model.heads["multiscale"].warp is False
    else:
        assert model.heads["multiscale"].soft_argmax is None and model.heads["light"].soft_argmax is None


def test_unknown_config_key() -> None:
    with pytest.raises(ValueError, match=r"config: unknown keys \['width'\]"):
        MotionModelConfig.from_dict({"width": 3})


def test_forward_paths_agree() -> None:
    model = _model()
    im1, im2 = _frames(2)
    with torch.no_grad():
        out = model(im1, im2)
        f1, f2 = model.features(im1), model.features(im2)
        via_features = model.forward_features(f1, f2)
        every = model.forward_all(im1, im2)
        light = model(im1, im2, head="light")
    assert out.stride == 8 and out.flow.shape == (2, 2, 8, 12)
    torch.testing.assert_close(out.flow, via_features.flow)
    torch.testing.assert_close(out.flow, every["multiscale"].flow)
    torch.testing.assert_close(light.flow, every["light"].flow)
    assert light.stride == 32 and light.flow.shape == (2, 2, 2, 3)


def test_bad_forward_inputs() -> None:
    model = _model()
    im1, im2 = _frames()
    with pytest.raises(ValueError, match=r"images2: expected the same shape as images1 \(1, 3, 64, 96\)"):
        model(im1, im2[..., :64])
    with pytest.raises(ValueError, match=r"head: expected one of \('multiscale', 'light'\), got 'tiny'"):
        model(im1, im2, head="tiny")
    with pytest.raises(ValueError, match=r"images: expected H and W positive multiples of 32, got 64x80"):
        model(im1[..., :80], im2[..., :80])
    with pytest.raises(TypeError, match=r"images: expected a floating-point tensor"):
        model.features((im1 * 255).to(torch.uint8))


def test_head_only_model_on_detector_channels() -> None:
    cfg = MotionModelConfig(encoder_widths=None, in_channels=(128, 256, 512), heads=("light",))
    model = MotionModel(cfg).eval()
    assert model.encoder is None
    f = [torch.randn(1, c, s, s) for c, s in zip((128, 256, 512), (8, 4, 2), strict=True)]
    assert model.forward_features(f, f).flow.shape == (1, 2, 2, 2)
    with pytest.raises(RuntimeError, match="no encoder"):
        model.features(torch.rand(1, 3, 64, 64))


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = _model(MotionModelConfig(**{**SMALL.to_dict(), "context": "attention"}))
    path = tmp_path / "m.pt"
    digest = save_motion_model(model, path)
    assert digest == sha256_file(path) and len(digest) == 64
    loaded = load_motion_model(path, expected_sha256=digest)
    assert not loaded.training and loaded.config == model.config
    im1, im2 = _frames()
    with torch.no_grad():
        assert torch.equal(model(im1, im2).flow, loaded(im1, im2).flow)
    # the file holds only strings and tensors: the safe loader reads it
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"format", "config", "state_dict"}


def test_sha256_mismatch_and_tampering_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    digest = save_motion_model(_model(), path)
    with pytest.raises(WeightsIntegrityError, match=r"sha256 mismatch \(expected 0{64}, got " + digest):
        load_motion_model(path, expected_sha256="0" * 64)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the tensors
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="tampered"):
        load_motion_model(path, expected_sha256=digest)


def test_not_a_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a motion-model weights file"):
        load_motion_model(path)
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable motion-model weights file"):
        load_motion_model(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="no weights file at"):
        load_motion_model(tmp_path / "missing.pt")
    with pytest.raises(TypeError, match="model: expected a MotionModel"):
        save_motion_model(torch.nn.Linear(2, 2), tmp_path / "x.pt")  # type: ignore[arg-type]


def test_unknown_shipped_name() -> None:
    with pytest.raises(ValueError, match="name: expected one of the shipped weights"):
        shipped_weights("nonexistent")


def test_deterministic_construction() -> None:
    a, b = _model(seed=7), _model(seed=7)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(pa, pb)


def test_shipped_default_weights_match_their_recorded_sha256() -> None:
    path = shipped_weights("default")
    assert sha256_file(path) == SHIPPED_WEIGHTS["default"][1]
    model = load_motion_model("default")
    assert not model.training and model.encoder is not None
    assert set(model.heads) == {"multiscale", "light"}


@pytest.fixture(scope="module")
def default_model() -> MotionModel:
    return load_motion_model("default")


@pytest.mark.parametrize("head", ["multiscale", "light"])
@pytest.mark.parametrize(("dx", "dy"), [(7, -4), (-12, 9)])
def test_shipped_weights_recover_a_pure_translation_of_a_held_out_photograph(
    default_model: MotionModel, head: str, dx: int, dy: int
) -> None:
    import numpy as np

    from mmtrack_corr.photos import HELDOUT_PHOTOS, load_photo

    photo = load_photo(HELDOUT_PHOTOS[0])  # never seen in training
    y0, x0 = 60, 80
    frame1 = photo[y0 : y0 + 256, x0 : x0 + 448]
    frame2 = photo[y0 - dy : y0 - dy + 256, x0 - dx : x0 - dx + 448]  # the content moved by (+dx, +dy)

    def tensor(bgr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1).float().div(255).unsqueeze(0)

    with torch.no_grad():
        out = default_model(tensor(frame1), tensor(frame2), head=head)
    margin = 2 if head == "multiscale" else 1  # cells left out at the borders (content entering / leaving)
    flow = out.flow[0, :, margin:-margin, margin:-margin].flatten(1)
    median = flow.median(dim=1).values
    assert abs(float(median[0]) - dx) <= 2.0 and abs(float(median[1]) - dy) <= 2.0, median.tolist()
