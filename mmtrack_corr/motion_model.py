"""Encoder + motion head(s) as one model, its config, and saving / loading weights with a sha256 check.

A weights file is ``torch.save`` of a dict holding only strings and tensors - ``{"format": ..., "config": <JSON of
MotionModelConfig>, "state_dict": {name: tensor}}`` - so it loads with ``torch.load(weights_only=True)`` and the
model is rebuilt from the stored config with no code change when widths change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmtrack_corr.context import context_per_level
from mmtrack_corr.encoder import FeatureEncoder
from mmtrack_corr.motion_head import LightMotionHead, MotionOutput, MultiScaleMotionHead

__all__ = [
    "HEAD_KINDS",
    "SHIPPED_WEIGHTS",
    "MotionModel",
    "MotionModelConfig",
    "WeightsIntegrityError",
    "atomic_torch_save",
    "load_motion_model",
    "save_motion_model",
    "sha256_file",
    "shipped_weights",
]

HEAD_KINDS: tuple[str, ...] = ("multiscale", "light")
_FORMAT = "mmtrack-corr/motion-model/1"

# name -> (file in the mmtrack_corr_weights package, its sha256); the hash is the trust anchor for shipped files
SHIPPED_WEIGHTS: dict[str, tuple[str, str]] = {
    # weights/README.md: how it was trained (mmtrack-train-motion, 4000 steps on synthetic pairs) and what it scores
    "default": ("motion_default.pt", "7b0e92fbc58b2ace04d720a94aa6bbbb12d022cc87ce02cbecd33c80fe8381df"),
}


class WeightsIntegrityError(ValueError):
    """A weights file whose sha256 differs from the expected one (tampered, truncated or the wrong file)."""


@dataclass
class MotionModelConfig:
    """Everything needed to rebuild a :class:`MotionModel`.

    Attributes:
        encoder_widths: widths of the default :class:`FeatureEncoder` (5 ints), or None for a head-only model on
            external (detector) features.
        in_channels: channels of the features the heads read at strides 8/16/32; None = the encoder's outputs
            (required when ``encoder_widths`` is None).
        heads: head kinds, the first is the default one used by ``forward``: "multiscale" and/or "light".
        context: global-context block of the heads: "scan", "attention", "conv" or "none", or per level of the
            3-scale head "k8,k16,k32" (the light head uses the stride-32 kind).
        multiscale_widths: channels of the 3-scale head at strides 8, 16, 32.
        light_width: channels of the light head.
        input_size: (H, W) of the frames the weights were trained on, or None if unknown. Motion in pixels scales
            with the frame size, so a caller should run the model at about this size (resize frames, scale the
            motion back) for the motion range it learned.
        warp: the 3-scale head warps frame t's stride-16 and stride-8 features by the coarser flow before the cost
            volume (see :class:`MultiScaleMotionHead`). A saved config without this key (files written before
            the option existed) loads as False, the architecture those weights were trained with.
        soft_argmax: both heads also feed their decoders the cost volume's expected displacement and peak
            probability (:class:`mmtrack_corr.motion_head.SoftArgmax`); absent from a saved config = False.
    """

    encoder_widths: tuple[int, ...] | None = (16, 32, 48, 64, 96)
    in_channels: tuple[int, int, int] | None = None
    heads: tuple[str, ...] = ("multiscale", "light")
    context: str = "conv"
    multiscale_widths: tuple[int, int, int] = (32, 48, 64)
    light_width: int = 64
    input_size: tuple[int, int] | None = None
    warp: bool = True
    soft_argmax: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # lists (from JSON or callers) become tuples: configs compare equal
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        if not self.heads or any(h not in HEAD_KINDS for h in self.heads) or len(set(self.heads)) != len(self.heads):
            raise ValueError(f"heads: expected distinct kinds from {HEAD_KINDS}, got {self.heads!r}")
        context_per_level(self.context)  # raises ValueError naming the field
        if self.encoder_widths is None and self.in_channels is None:
            raise ValueError("in_channels: required (3 ints) when encoder_widths is None (no encoder)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MotionModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"config: unknown keys {unknown}; expected a subset of {sorted(names)}")
        # files from before these options: the architecture they were trained with
        return cls(**{"warp": False, "soft_argmax": False, **data})


class MotionModel(nn.Module):
    """Feature encoder + motion head(s): two frames in, dense motion (pixels) out.

    Args:
        config: what to build (:class:`MotionModelConfig`); the default has the encoder, the 3-scale head (used by
            ``forward``) and the light head sharing it.
        encoder: for a head-only config (``encoder_widths=None``): a module whose ``forward(images)`` returns the
            three feature maps the heads read, e.g. a frozen detector
            (:class:`mmtrack_corr.hooks.FrozenDetectorFeatures`), so ``forward`` / ``forward_all`` run on images.
            Its parameters and state are the caller's: saved weights hold the heads only.

    Attributes:
        encoder: the :class:`FeatureEncoder`, the given ``encoder``, or None for a head-only model.
        heads: ``nn.ModuleDict`` kind -> head.
        head: the default head (``config.heads[0]``).

    Example:
        >>> model = MotionModel(MotionModelConfig()).eval()
        >>> model(torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)).flow.shape
        torch.Size([1, 2, 8, 12])
    """

    def __init__(self, config: MotionModelConfig | None = None, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else MotionModelConfig()
        cfg = self.config
        if encoder is not None and cfg.encoder_widths is not None:
            raise ValueError(
                f"encoder: only for a head-only config (encoder_widths=None), got encoder_widths={cfg.encoder_widths}"
            )
        own = FeatureEncoder(cfg.encoder_widths) if cfg.encoder_widths is not None else None
        self.encoder = own if own is not None else encoder
        channels: tuple[int, int, int] = (
            cfg.in_channels if cfg.in_channels is not None else own.out_channels  # type: ignore[union-attr]
        )
        heads: dict[str, nn.Module] = {}
        for kind in cfg.heads:
            if kind == "multiscale":
                heads[kind] = MultiScaleMotionHead(
                    channels, cfg.context, cfg.multiscale_widths, cfg.warp, cfg.soft_argmax
                )
            else:
                heads[kind] = LightMotionHead(channels, cfg.context, cfg.light_width, cfg.soft_argmax)
        self.heads = nn.ModuleDict(heads)

    @property
    def head(self) -> nn.Module:
        return self.heads[self.config.heads[0]]

    def features(self, images: Tensor) -> list[Tensor]:
        """Encoder pass (cache the result for the next frame's call).

        Args:
            images: RGB frames in [0, 1], shape (B, 3, H, W), H and W multiples of 32.

        Returns:
            Maps at strides 8, 16, 32: [(B, c8, H/8, W/8), (B, c16, H/16, W/16), (B, c32, H/32, W/32)].

        Raises:
            RuntimeError: the model has no encoder.
        """
        if self.encoder is None:
            raise RuntimeError("features: this model has no encoder (head-only); pass detector features instead")
        return self.encoder(images)

    def forward_features(
        self, feats1: Sequence[Tensor], feats2: Sequence[Tensor], head: str | None = None
    ) -> MotionOutput:
        """Motion from cached features of frame t-1 and frame t.

        Args:
            feats1: frame t-1's maps at strides 8, 16, 32.
            feats2: frame t's maps, same shapes.
            head: head kind to run; None = the default head.

        Returns:
            :class:`MotionOutput` (flow in input pixels).

        Raises:
            ValueError: unknown ``head``; bad features as the heads' ``forward``.
        """
        return self._head(head)(feats1, feats2)

    def forward(self, images1: Tensor, images2: Tensor, head: str | None = None) -> MotionOutput:
        """Motion from frame t-1 to frame t.

        Args:
            images1: frames t-1, RGB in [0, 1], shape (B, 3, H, W), H and W multiples of 32.
            images2: frames t, same shape.
            head: head kind to run; None = the default head.

        Returns:
            :class:`MotionOutput`: flow (B, 2, H/s, W/s) in input pixels, s = 8 (3-scale) or 32 (light).

        Raises:
            ValueError: frames of different shapes, unknown ``head``.
        """
        if images1.shape != images2.shape:
            raise ValueError(
                f"images2: expected the same shape as images1 {tuple(images1.shape)}, got {tuple(images2.shape)}"
            )
        batch = images1.shape[0]
        feats = self.features(torch.cat([images1, images2], dim=0))
        return self.forward_features([f[:batch] for f in feats], [f[batch:] for f in feats], head)

    def forward_all(self, images1: Tensor, images2: Tensor) -> dict[str, MotionOutput]:
        """Every head on one shared encoder pass (training both heads at once).

        Args:
            images1: frames t-1, (B, 3, H, W); images2: frames t, same shape.

        Returns:
            head kind -> :class:`MotionOutput`.
        """
        batch = images1.shape[0]
        feats = self.features(torch.cat([images1, images2], dim=0))
        f1, f2 = [f[:batch] for f in feats], [f[batch:] for f in feats]
        return {kind: head(f1, f2) for kind, head in self.heads.items()}

    def _head(self, head: str | None) -> nn.Module:
        if head is None:
            return self.head
        if head not in self.heads:
            raise ValueError(f"head: expected one of {tuple(self.heads)}, got {head!r}")
        return self.heads[head]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_motion_model(model: MotionModel, path: str | os.PathLike[str]) -> str:
    """Write a model's weights and config to ``path`` (atomically) and return the file's sha256.

    Args:
        model: the model to save.
        path: destination file (conventionally ``.pt``).

    Returns:
        Hex sha256 of the written file (give it to :func:`load_motion_model` as ``expected_sha256``).

    Raises:
        TypeError: ``model`` is not a :class:`MotionModel`.
    """
    if not isinstance(model, MotionModel):
        raise TypeError(f"model: expected a MotionModel, got {type(model).__name__}")
    state = {
        k: v.detach().cpu().clone().contiguous()
        for k, v in model.state_dict().items()
        if model.config.encoder_widths is not None or not k.startswith("encoder.")  # head-only: the caller's encoder
    }
    payload = {"format": _FORMAT, "config": json.dumps(model.config.to_dict(), sort_keys=True), "state_dict": state}
    atomic_torch_save(payload, path)
    return sha256_file(path)


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a crash never leaves a half-written file.

    Args:
        obj: what to save.
        path: destination; its folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a saved model is an ordinary readable file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def shipped_weights(name: str = "default") -> Path:
    """Path of a weights file shipped with the package (the ``mmtrack_corr_weights`` package data).

    Args:
        name: a key of :data:`SHIPPED_WEIGHTS`.

    Returns:
        The file's path.

    Raises:
        ValueError: unknown ``name``.
        FileNotFoundError: the file is missing from the installation.
    """
    if name not in SHIPPED_WEIGHTS:
        raise ValueError(f"name: expected one of the shipped weights {sorted(SHIPPED_WEIGHTS)}, got {name!r}")
    filename = SHIPPED_WEIGHTS[name][0]
    try:
        root = resources.files("mmtrack_corr_weights")
    except ModuleNotFoundError:  # a source checkout that was not installed: the top-level weights/ folder
        root = Path(__file__).resolve().parent.parent / "weights"  # type: ignore[assignment]
    path = Path(str(root.joinpath(filename)))
    if not path.is_file():
        raise FileNotFoundError(f"shipped weights {name!r}: {path} is missing from this installation")
    return path


def load_motion_model(
    path_or_name: str | os.PathLike[str] = "default",
    device: str | torch.device = "cpu",
    expected_sha256: str | None = None,
) -> MotionModel:
    """Load a model written by :func:`save_motion_model` (or a shipped one by name), in eval mode.

    The file's sha256 is checked before anything is unpickled; shipped weights are always checked against the hash
    recorded in :data:`SHIPPED_WEIGHTS`. The file is read with ``torch.load(weights_only=True)``.

    Args:
        path_or_name: a file path, or the name of shipped weights ("default").
        device: where to put the model.
        expected_sha256: hex sha256 the file must have (None: no check for a path).

    Returns:
        The :class:`MotionModel`, in eval mode, on ``device``.

    Raises:
        WeightsIntegrityError: the file's sha256 differs from the expected one.
        FileNotFoundError: no such file.
        ValueError: not a motion-model file.
    """
    if isinstance(path_or_name, str) and path_or_name in SHIPPED_WEIGHTS:
        path = shipped_weights(path_or_name)
        if expected_sha256 is None:
            expected_sha256 = SHIPPED_WEIGHTS[path_or_name][1]
    else:
        path = Path(path_or_name)
        if not path.is_file():
            hint = f" (shipped names: {sorted(SHIPPED_WEIGHTS)})" if isinstance(path_or_name, str) else ""
            raise FileNotFoundError(f"path_or_name: no weights file at {str(path)!r}{hint}")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256.lower():
            raise WeightsIntegrityError(
                f"{path}: sha256 mismatch (expected {expected_sha256}, got {actual}); the file is tampered, "
                "truncated or not the one expected - refusing to load it"
            )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt archive / not a torch file
        raise ValueError(f"{path}: not a readable motion-model weights file ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{path}: not a motion-model weights file (expected format {_FORMAT!r})")
    model = MotionModel(MotionModelConfig.from_dict(json.loads(payload["config"])))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()
