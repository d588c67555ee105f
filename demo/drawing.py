"""Drawing tracks on frames: boxes coloured by track id, id labels, short trails, motion arrows, a motion overlay.

Conventions: boxes are xyxy pixels; a displacement is ``(dx, dy)`` in pixels from the previous frame to this one,
positive right/down; a dense motion field is ``(2, H, W)`` with channel 0 = dx, channel 1 = dy.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

__all__ = ["TrackPainter", "flow_to_color", "id_color"]


def id_color(track_id: int) -> tuple[int, int, int]:
    """A bright BGR colour for a track id, far from its neighbours' (golden-ratio hue steps).

    Example:
        >>> id_color(1) != id_color(2)
        True
    """
    hue = (int(track_id) * 0.618033988749895) % 1.0
    hsv = np.array([[[hue * 179.0, 220.0, 255.0]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code a motion field: hue = direction, brightness = speed (the usual optical-flow colouring).

    Args:
        flow: motion field, shape (2, H, W), ``(dx, dy)`` in pixels; NaN cells are drawn black.
        max_magnitude: speed drawn at full brightness (default: the field's 99th percentile, at least 1 pixel).

    Returns:
        BGR uint8 image, shape (H, W, 3).

    Raises:
        ValueError: ``flow`` is not (2, H, W).

    Example:
        >>> flow_to_color(np.ones((2, 4, 5))).shape
        (4, 5, 3)
    """
    f = np.asarray(flow, dtype=np.float32)
    if f.ndim != 3 or f.shape[0] != 2:
        raise ValueError(f"flow: expected shape (2, H, W), got {f.shape}")
    valid = np.isfinite(f).all(axis=0)
    dx = np.where(valid, f[0], 0.0)
    dy = np.where(valid, f[1], 0.0)
    mag, ang = cv2.cartToPolar(dx, dy, angleInDegrees=True)
    if max_magnitude is None:
        max_magnitude = max(float(np.percentile(mag, 99)) if mag.size else 1.0, 1.0)
    hsv = np.empty((*mag.shape, 3), dtype=np.uint8)
    hsv[..., 0] = (ang / 2.0).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(mag / max_magnitude * 255.0, 0, 255).astype(np.uint8)
    hsv[~valid] = 0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


class TrackPainter:
    """Draws one frame's tracks; keeps each id's recent centres for the trails.

    Args:
        trail_frames: centres kept per id for its trail.
        arrow_scale: motion arrows are drawn this many times longer than the displacement (small per-frame motion
            would otherwise be invisible), at most an eighth of the image's shorter side.
        overlay_alpha: weight of the motion colour overlay when a field is given.

    Example:
        >>> painter = TrackPainter()
        >>> img = painter.draw(np.zeros((64, 64, 3), np.uint8), np.array([[8.0, 8.0, 30.0, 40.0]]), np.array([3]))
        >>> img.shape
        (64, 64, 3)
    """

    def __init__(self, trail_frames: int = 12, arrow_scale: float = 3.0, overlay_alpha: float = 0.45) -> None:
        if trail_frames < 0:
            raise ValueError(f"trail_frames: expected an int >= 0, got {trail_frames!r}")
        self.trail_frames = int(trail_frames)
        self.arrow_scale = float(arrow_scale)
        self.overlay_alpha = float(overlay_alpha)
        self._trails: dict[int, deque[tuple[int, int]]] = {}
        self._last_seen: dict[int, int] = {}
        self._frame = 0

    def reset(self) -> None:
        """Forget all trails."""
        self._trails.clear()
        self._last_seen.clear()
        self._frame = 0

    def draw(
        self,
        image: np.ndarray,
        boxes: np.ndarray,
        ids: np.ndarray,
        motion: np.ndarray | None = None,
        flow: np.ndarray | None = None,
        caption: str | None = None,
    ) -> np.ndarray:
        """Draw tracks on a copy of ``image``.

        Args:
            image: BGR uint8 frame, shape (H, W, 3).
            boxes: track boxes, shape (M, 4), xyxy pixels.
            ids: track ids, shape (M,).
            motion: per-track displacement used for the arrows, shape (M, 2); NaN rows get no arrow.
            flow: optional dense motion, shape (2, h, w) (resized to the frame), blended in as colour.
            caption: text drawn in the top-left corner.

        Returns:
            The annotated BGR image, shape (H, W, 3).
        """
        self._frame += 1
        out = image.copy()
        if flow is not None:
            color = cv2.resize(flow_to_color(flow), (out.shape[1], out.shape[0]), interpolation=cv2.INTER_LINEAR)
            out = cv2.addWeighted(out, 1.0 - self.overlay_alpha, color, self.overlay_alpha, 0.0)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ids = np.asarray(ids).reshape(-1)
        h, w = out.shape[:2]
        thick = max(1, round(min(h, w) / 300))
        max_arrow = min(h, w) / 8.0
        for k in range(ids.shape[0]):
            tid = int(ids[k])
            col = id_color(tid)
            x1, y1, x2, y2 = (int(round(v)) for v in boxes[k])
            cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
            trail = self._trails.setdefault(tid, deque(maxlen=max(self.trail_frames, 1)))
            trail.append((cx, cy))
            self._last_seen[tid] = self._frame
            if self.trail_frames > 1 and len(trail) > 1:
                cv2.polylines(out, [np.array(trail, dtype=np.int32)], False, col, thick, cv2.LINE_AA)
            cv2.rectangle(out, (x1, y1), (x2, y2), col, thick + 1)
            if motion is not None and np.isfinite(motion[k]).all():
                dx, dy = motion[k] * self.arrow_scale
                length = float(np.hypot(dx, dy))
                if length > max_arrow:  # fast motion: keep the direction, bound the length
                    dx, dy = dx * max_arrow / length, dy * max_arrow / length
                if length >= 2.0:
                    tip = (int(round(cx + dx)), int(round(cy + dy)))
                    cv2.arrowedLine(out, (cx, cy), tip, (255, 255, 255), thick + 2, cv2.LINE_AA, tipLength=0.3)
                    cv2.arrowedLine(out, (cx, cy), tip, col, thick, cv2.LINE_AA, tipLength=0.3)
            label = str(tid)
            scale = 0.4 + 0.1 * thick
            (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            ty = y1 - 3 if y1 - th - base - 3 >= 0 else y1 + th + 3
            cv2.rectangle(out, (x1, ty - th - 2), (x1 + tw + 4, ty + base - 1), col, -1)
            cv2.putText(out, label, (x1 + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
        # Trails of ids not seen for a while are dropped (bounded memory on long videos).
        stale = [t for t, f in self._last_seen.items() if self._frame - f > self.trail_frames]
        for t in stale:
            del self._last_seen[t], self._trails[t]
        if caption:
            (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
            cv2.rectangle(out, (0, 0), (tw + 10, th + base + 8), (0, 0, 0), -1)
            cv2.putText(out, caption, (5, th + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        return out
