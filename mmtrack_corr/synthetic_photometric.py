"""Photometric effects for the synthetic motion data: colour/brightness/contrast, blur, motion blur, noise, JPEG.

Each frame gets its own draw of every enabled effect; the colour transform of frame 2 is frame 1's perturbed, so the
pair differs in brightness, contrast and colour as consecutive real frames do under auto-exposure and white balance.
None of the effects moves content: the exact flow stays the flow of the clean frames (blur and JPEG change what a
pixel looks like, not where it goes).
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["ColorState", "PhotometricEffects", "photometric_frame", "random_color", "resolve_photometric"]


@dataclass(frozen=True)
class PhotometricEffects:
    """Which photometric effects are on (all on by default).

    Attributes:
        color: per-frame contrast (x exp(U(-0.2, 0.2))), brightness (+U(-20, 20) levels) and per-channel gain
            (x exp(U(-0.08, 0.08))); frame 2 changes them by x exp(U(-0.08, 0.08)), +U(-10, 10) and
            x exp(U(-0.04, 0.04)).
        blur: with probability 0.3 per frame, Gaussian defocus blur, sigma U(0.3, 1.5) pixels.
        motion_blur: with probability 0.5 per frame, a line blur along the camera's motion at the image centre, as
            long as U(0, 0.5) of that motion (an exposure of up to half the frame interval); skipped under 1.5 px.
        noise: per-pixel, per-channel Gaussian sensor noise, sigma U(0, 6) levels (256-level quantised normal
            draws, taken from a fixed 8 MiB bank of random bytes at a random offset per frame).
        jpeg: with probability 0.7 per frame, JPEG compression at quality U(40, 95).
    """

    color: bool = True
    blur: bool = True
    motion_blur: bool = True
    noise: bool = True
    jpeg: bool = True

    @property
    def any(self) -> bool:
        """True when at least one effect is on."""
        return self.color or self.blur or self.motion_blur or self.noise or self.jpeg


def resolve_photometric(photometric: object) -> PhotometricEffects:
    """``True`` -> all effects, ``False`` -> none, a :class:`PhotometricEffects` as given.

    Raises:
        TypeError: anything else.
    """
    if isinstance(photometric, PhotometricEffects):
        return photometric
    if isinstance(photometric, (bool, np.bool_)):
        flag = bool(photometric)
        return PhotometricEffects(flag, flag, flag, flag, flag)
    raise TypeError(f"photometric: expected a bool or PhotometricEffects, got {type(photometric).__name__}")


@dataclass(frozen=True)
class ColorState:
    """Contrast, brightness and per-channel gain of one frame (applied as one lookup table)."""

    contrast: float
    brightness: float
    gains: tuple[float, float, float]

    def perturbed(self, rng: np.random.Generator) -> ColorState:
        g = rng.uniform(-0.04, 0.04, 3)
        return ColorState(
            contrast=self.contrast * math.exp(rng.uniform(-0.08, 0.08)),
            brightness=self.brightness + rng.uniform(-10.0, 10.0),
            gains=(self.gains[0] * math.exp(g[0]), self.gains[1] * math.exp(g[1]), self.gains[2] * math.exp(g[2])),
        )

    def drifted(self, rng: np.random.Generator) -> ColorState:
        """The next frame's state in a sequence: a small step of a mean-reverting random walk."""
        g = rng.normal(0.0, 0.006, 3)
        return ColorState(
            contrast=math.exp(0.98 * math.log(self.contrast) + rng.normal(0.0, 0.01)),
            brightness=0.98 * self.brightness + rng.normal(0.0, 0.8),
            gains=(
                math.exp(0.98 * math.log(self.gains[0]) + g[0]),
                math.exp(0.98 * math.log(self.gains[1]) + g[1]),
                math.exp(0.98 * math.log(self.gains[2]) + g[2]),
            ),
        )

    def lut(self) -> np.ndarray:
        levels = np.arange(256, dtype=np.float64)
        base = (levels - 128.0) * self.contrast + 128.0 + self.brightness
        table = np.stack([base * g for g in self.gains], axis=-1)
        return np.clip(np.round(table), 0, 255).astype(np.uint8).reshape(1, 256, 3)


def random_color(rng: np.random.Generator) -> ColorState:
    g = rng.uniform(-0.08, 0.08, 3)
    return ColorState(
        contrast=math.exp(rng.uniform(-0.2, 0.2)),
        brightness=rng.uniform(-20.0, 20.0),
        gains=(math.exp(g[0]), math.exp(g[1]), math.exp(g[2])),
    )


_NOISE_BANK_SIZE = 1 << 23  # 8 MiB of random bytes, more than two 1080p BGR frames


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    # fixed random bytes, drawn once from a fixed seed; a frame's noise is a slice at a random offset (no per-frame
    # draw of millions of values, ~3x cheaper). Offsets differ between frames, so noise never follows the motion.
    return np.frombuffer(np.random.default_rng(20261202).bytes(_NOISE_BANK_SIZE), np.uint8)


@functools.lru_cache(maxsize=1)
def _normal_quantiles() -> NDArray[np.float32]:
    # z-scores of the 256 equiprobable quantiles: one uniform random byte -> one (quantised) standard normal draw
    dist = statistics.NormalDist()
    return np.array([dist.inv_cdf((u + 0.5) / 256.0) for u in range(256)], dtype=np.float32)


def _add_noise(rng: np.random.Generator, frame: np.ndarray, sigma: float) -> np.ndarray:
    table = np.round(_normal_quantiles() * sigma).astype(np.int16).reshape(1, 256)
    bank = _noise_bank()
    if frame.size <= bank.size:
        start = int(rng.integers(0, bank.size - frame.size + 1))
        draws = bank[start : start + frame.size].reshape(frame.shape)
    else:  # larger than the bank: fresh bytes
        draws = np.frombuffer(rng.bytes(frame.size), np.uint8).reshape(frame.shape)
    return cv2.add(frame, cv2.LUT(draws, table), dtype=cv2.CV_8U)


def _tap_shifts(d: float, levels: int) -> list[int]:
    """Integer shifts ``~ d / 2**j`` (j = 1..levels) whose sum is even, so the taps' mean is a whole pixel."""
    shifts = [round(d / 2**j) for j in range(1, levels)]
    last = d / 2**levels
    lo = math.floor(last)
    shifts.append(lo if (sum(shifts) + lo) % 2 == 0 else lo + 1)
    return shifts


def _motion_blur(frame: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Box blur along the segment from ``-(dx, dy) / 2`` to ``(dx, dy) / 2`` (centred: it moves no content).

    ``2**L`` taps (``2**L >= length``) are summed by L doublings, ``A <- A + shift(A, s_j)`` with ``s_j ~ v / 2**j``
    rounded to whole pixels, on a reflect-padded uint16 copy; the sum of the shifts is kept even so that the taps are
    symmetric about a whole pixel. About 5x cheaper than shear-warp-blur-unshear, and needs no interpolation.
    """
    height, width = frame.shape[:2]
    levels = min(8, max(1, math.ceil(math.log2(max(math.hypot(dx, dy), 2.0)))))  # <= 256 taps: fits uint16
    sxs, sys_ = _tap_shifts(dx, levels), _tap_shifts(dy, levels)
    pad = max(sum(abs(v) for v in sxs), sum(abs(v) for v in sys_)) + 1
    acc: np.ndarray = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REFLECT_101).astype(np.uint16)
    ox = oy = 0  # padded-canvas position of acc[0, 0]
    for sx, sy in zip(sxs, sys_, strict=True):
        hh, ww = acc.shape[:2]
        x0, y0 = max(0, -sx), max(0, -sy)
        x1, y1 = ww - max(0, sx), hh - max(0, sy)
        acc = cv2.add(acc[y0:y1, x0:x1], acc[y0 + sy : y1 + sy, x0 + sx : x1 + sx])
        ox, oy = ox + x0, oy + y0
    # acc(p) sums the canvas at p + taps, taps spanning [0, sum(shifts)]: read it half that span back
    r0 = pad - sum(sys_) // 2 - oy
    c0 = pad - sum(sxs) // 2 - ox
    return cv2.convertScaleAbs(acc[r0 : r0 + height, c0 : c0 + width], alpha=1.0 / 2**levels)


def photometric_frame(
    rng: np.random.Generator,
    frame: np.ndarray,
    effects: PhotometricEffects,
    color: ColorState | None,
    camera_motion: tuple[float, float],
) -> np.ndarray:
    """Apply the enabled effects to one clean frame (the input is not modified).

    Args:
        rng: random generator for this frame's draws.
        frame: clean BGR frame, (H, W, 3) uint8.
        effects: which effects are on.
        color: the frame's colour state (used when ``effects.color``).
        camera_motion: the camera's motion (dx, dy) at the image centre around this frame, for the motion blur.

    Returns:
        The processed frame, (H, W, 3) uint8.
    """
    img = frame
    if effects.color and color is not None:
        img = cv2.LUT(img, color.lut())
    if effects.blur and rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.5), borderType=cv2.BORDER_REFLECT_101)
    if effects.motion_blur and rng.random() < 0.5:
        exposure = rng.uniform(0.0, 0.5)
        mdx, mdy = camera_motion
        if math.hypot(mdx, mdy) * exposure >= 1.5:
            img = _motion_blur(img, mdx * exposure, mdy * exposure)
    if effects.noise:
        img = _add_noise(rng, img, rng.uniform(0.0, 6.0))
    if effects.jpeg and rng.random() < 0.7:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            img = decoded
    return np.ascontiguousarray(img)


def apply_photometric(
    rng: np.random.Generator,
    frames: tuple[np.ndarray, np.ndarray],
    effects: PhotometricEffects,
    camera_motion: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Effects for a frame pair: frame 2's colour state is frame 1's perturbed; other effects drawn per frame."""
    color1 = random_color(rng) if effects.color else None
    color2 = color1.perturbed(rng) if color1 is not None else None
    return (
        photometric_frame(rng, frames[0], effects, color1, camera_motion),
        photometric_frame(rng, frames[1], effects, color2, camera_motion),
    )
