"""Whole synthetic MOT sequences: a drone-like camera over a photographed ground, objects that enter, leave, turn and
occlude, ground truth with visibility, simulated detections, and the exact motion of every frame pair on request.

The scene lives in *world* coordinates: pixels of one pyramid level of the background photograph, seen as an
infinite mirrored plane (OpenCV's ``BORDER_REFLECT_101``), so the camera can travel any distance. Frame ``t`` is the
view ``G_t`` (frame pixel -> world pixel): ``G_t = Tr(c_t) R(theta_t) s_t Tr(-frame centre)``.

Camera trajectory (smooth but never constant, drone-like): the image-centre speed (frame pixels per frame) varies
smoothly between 35 % and 100 % of the level's limit (:class:`~mmtrack_corr.synthetic.CameraSpeed`), its heading
turns with a smoothly varying rate (an Ornstein-Uhlenbeck turn rate, up to about 0.15 rad per frame); the yaw rate
and the zoom are sums of two slow sinusoids (periods 40-240 frames) bounded by the level's rotation and zoom limits,
and the zoom stays within x0.7-x1.4 of the start. Sequences have no perspective part (pairs from
:func:`~mmtrack_corr.synthetic.make_pair` do).

Objects are sprites cut from other photographs of the same split (aspect w/h in 0.4-1.6, so ``mmtrack-eval``'s
default pedestrian box filter keeps them), anchored to the world: each moves with its own speed (a quarter parked,
the others up to half the pair limit, i.e. 10 / 20 / 30 px per frame at width 960) and a heading that turns smoothly;
it rotates with its heading. About ``max_objects`` are kept near the view: new ones enter from just outside the
view, heading inwards, and those that drift far outside are dropped (ids are never reused). Depth order is fixed per
object, so they occlude each other consistently.

Ground truth (MOTChallenge gt semantics): one row per frame for every object with at least one visible pixel: its
amodal box clipped to the image (``tlwh``), ``visibility`` = visible pixels / full area (occlusion by other objects
and by the image border). Detections: each gt box is missed with probability ``0.03 + 0.5 (1 - visibility)**2``,
otherwise reported with its centre jittered by N(0, 4 % of w/h) and its size by a factor exp(N(0, 6 %)), score
``clip(0.95 - 0.6 (1 - visibility) + N(0, 0.07), 0.05, 1)``; plus Poisson(1) false positives per frame with scores
U(0.1, 0.7) and object-like sizes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from mmtrack_corr.photos import resolve_photos
from mmtrack_corr.synthetic import (
    REFERENCE_SIZE,
    FramePair,
    PhotometricEffects,
    _check_int,
    _check_rng,
    assemble_pair,
    camera_speed,
    pick_sprite_photo,
    sample_sprite_size,
    size_scale,
    visible_fraction,
)
from mmtrack_corr.synthetic_photometric import ColorState, photometric_frame, random_color, resolve_photometric
from mmtrack_corr.synthetic_render import (
    Layer,
    Sprite,
    apply_h,
    make_sprite,
    photo_pyramid,
    render,
    similarity,
    sprite_box,
    translation,
)

__all__ = ["SequenceBoxes", "SyntheticSequence", "make_sequence"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class SequenceBoxes:
    """A table of boxes over a sequence, sorted by frame (the fields of ``trackers.mot_io.MotRecords``).

    Attributes:
        frames: 1-based frame numbers, (N,) int64, non-decreasing.
        ids: object ids (``-1`` for detections), (N,) int64.
        tlwh: boxes (left, top, width, height) in pixels, (N, 4) float64.
        scores: detection scores in [0, 1] (1 for ground truth), (N,) float64.
        visibility: visible fraction of each object (ground truth; -1 for detections), (N,) float64.
    """

    frames: NDArray[np.int64]
    ids: NDArray[np.int64]
    tlwh: NDArray[np.float64]
    scores: NDArray[np.float64]
    visibility: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def frame_rows(self, frame: int) -> NDArray[np.int64]:
        """Row indices of one frame."""
        lo, hi = np.searchsorted(self.frames, [frame, frame + 1])
        return np.arange(lo, hi)


@dataclass
class _Track:
    id: int
    sprite: Sprite
    depth: float
    pos: FloatArray  # world position of the sprite centre
    heading: float
    turn: float
    speed: float  # world pixels per frame
    scale: float  # world pixels per sprite pixel
    orientation0: float
    heading0: float
    first: int  # first frame index (0-based) it exists in
    poses: list[FloatArray] = field(default_factory=list)  # sprite -> world, from ``first`` on

    def world_pose(self) -> FloatArray:
        scx, scy = self.sprite.centre
        angle = self.orientation0 + 0.5 * (self.heading - self.heading0)
        return translation(*self.pos) @ similarity(angle, self.scale) @ translation(-scx, -scy)


# a clean rendered frame: image, (labels, mixed, layers), sprites, frame poses, ids
_Rendered = tuple[
    np.ndarray,
    tuple[np.ndarray, NDArray[np.bool_], list[Layer | None]],
    list[Sprite],
    list[FloatArray],
    NDArray[np.int64],
]


def _smooth_signal(rng: np.random.Generator, n: int) -> FloatArray:
    """Sum of two sinusoids with random periods (40-240 frames) and phases, in [-1, 1]."""
    t = np.arange(n + 1, dtype=np.float64)
    out = np.zeros(n + 1)
    for _ in range(2):
        period = rng.uniform(40.0, 240.0)
        out += np.sin(2.0 * math.pi * t / period + rng.uniform(0.0, 2.0 * math.pi))
    return out / 2.0


class SyntheticSequence:
    """A rendered-on-demand synthetic MOT sequence (from :func:`make_sequence`).

    The geometry, ground truth and detections are computed when the sequence is made (small arrays); images are
    rendered when asked for, so a 300-frame 544x960 sequence holds a few MB, not GBs. Frames are 1-based.

    Attributes:
        height, width: frame size.
        n_frames: number of frames.
        frame_rate: frames per second (for ``seqinfo.ini``).
        speed: the camera speed level.
        background_photo: the photograph the ground is rendered from.
        gt: ground truth, a :class:`SequenceBoxes` (scores 1).
        detections: simulated detections, a :class:`SequenceBoxes` (ids and visibility -1).
    """

    def __init__(
        self,
        *,
        size: tuple[int, int],
        frame_rate: float,
        speed: str,
        background_photo: str,
        world: np.ndarray,
        views: list[FloatArray],
        tracks: list[_Track],
        gt: SequenceBoxes,
        detections: SequenceBoxes,
        effects: PhotometricEffects,
        colors: list[ColorState],
        frame_seed: int,
    ) -> None:
        self.height, self.width = size
        self.n_frames = len(views)
        self.frame_rate = frame_rate
        self.speed = speed
        self.background_photo = background_photo
        self.gt = gt
        self.detections = detections
        self._world = world
        self._views = views
        self._tracks = tracks
        self._effects = effects
        self._colors = colors
        self._frame_seed = frame_seed
        self._by_id = {tr.id: tr for tr in tracks}
        self._period = np.array([2.0 * (world.shape[1] - 1), 2.0 * (world.shape[0] - 1)])

    def __len__(self) -> int:
        return self.n_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    def _check_frame(self, frame: object, last: int | None = None) -> int:
        last = self.n_frames if last is None else last
        return _check_int(frame, "frame", 1, last)

    def _scene(self, index: int) -> tuple[list[Sprite], list[FloatArray], NDArray[np.int64]]:
        """Sprites, frame poses and ids of the objects that exist at 0-based frame ``index``, back to front."""
        inv_view = np.linalg.inv(self._views[index])
        present = [tr for tr in self._tracks if tr.first <= index < tr.first + len(tr.poses)]
        present.sort(key=lambda tr: tr.depth)
        poses = [inv_view @ tr.poses[index - tr.first] for tr in present]
        return [tr.sprite for tr in present], poses, np.array([tr.id for tr in present], dtype=np.int64)

    def camera(self, frame: int) -> FloatArray:
        """Camera homography frame ``frame`` pixel -> frame ``frame + 1`` pixel, (3, 3) float64."""
        t = self._check_frame(frame, self.n_frames - 1) - 1
        return np.linalg.inv(self._views[t + 1]) @ self._views[t]

    def _clean(self, index: int) -> _Rendered:
        sprites, poses, ids = self._scene(index)
        # the ground is periodic (mirrored plane): render it through the view moved back by whole periods, which
        # keeps coordinates small without changing a pixel or any motion
        view = self._views[index]
        wrap = np.floor(view[:2, 2] / self._period) * self._period
        ground_view = translation(-wrap[0], -wrap[1]) @ view
        image, labels, mixed, layers = render(self._world, ground_view, (self.height, self.width), sprites, poses)
        assert image is not None
        return image, (labels, mixed, layers), sprites, poses, ids

    def _finish(self, index: int, image: np.ndarray) -> np.ndarray:
        if not self._effects.any:
            return image
        rng = np.random.default_rng([self._frame_seed, index])
        centre = np.array([(self.width - 1) / 2.0, (self.height - 1) / 2.0])
        j = min(index, self.n_frames - 2)
        if j >= 0:
            cam = np.linalg.inv(self._views[j + 1]) @ self._views[j]
            motion = tuple(apply_h(cam, centre)[0] - centre)
        else:
            motion = (0.0, 0.0)
        return photometric_frame(rng, image, self._effects, self._colors[index], (motion[0], motion[1]))

    def frame(self, frame: int) -> np.ndarray:
        """Render one frame.

        Args:
            frame: 1-based frame number.

        Returns:
            (H, W, 3) uint8 BGR image (identical on every call).

        Raises:
            ValueError: frame out of range.
        """
        t = self._check_frame(frame) - 1
        return self._finish(t, self._clean(t)[0])

    def frames(self) -> Iterator[np.ndarray]:
        """Render the frames in order, one at a time (frame 1 first)."""
        for t in range(self.n_frames):
            yield self._finish(t, self._clean(t)[0])

    def pair(self, frame: int) -> FramePair:
        """Frames ``frame`` and ``frame + 1`` with their exact motion, boxes and displacements (track ids).

        Args:
            frame: 1-based number of the first frame, at most ``n_frames - 1``.

        Returns:
            A :class:`~mmtrack_corr.synthetic.FramePair` whose frames equal :meth:`frame` of both numbers and whose
            ids are the sequence's track ids; objects entering at ``frame + 1`` appear in ``labels`` of neither.

        Raises:
            ValueError: frame out of range.
        """
        t = self._check_frame(frame, self.n_frames - 1) - 1
        first, second = self._clean(t), self._clean(t + 1)
        return self._pair(t, first, second, (self._finish(t, first[0]), self._finish(t + 1, second[0])))

    def pairs(self) -> Iterator[FramePair]:
        """``pair(1)``, ``pair(2)``, ... ``pair(n_frames - 1)``, rendering and finishing each frame once."""
        previous = self._clean(0)
        previous_image = self._finish(0, previous[0])
        for t in range(self.n_frames - 1):
            current = self._clean(t + 1)
            current_image = self._finish(t + 1, current[0])
            yield self._pair(t, previous, current, (previous_image, current_image))
            previous, previous_image = current, current_image

    def _pair(self, t: int, first: _Rendered, second: _Rendered, images: tuple[np.ndarray, np.ndarray]) -> FramePair:
        _, rendered1, sprites1, poses1, ids1 = first
        rendered2 = second[1]
        inv2 = np.linalg.inv(self._views[t + 1])
        poses2 = []
        for obj in ids1:
            tr = self._by_id[int(obj)]
            k = t + 1 - tr.first
            # an object dropped at t + 1 lay far outside the view at t (no pixels, so no motion is read from it)
            poses2.append(inv2 @ (tr.poses[k] if k < len(tr.poses) else tr.poses[-1]))
        return assemble_pair(
            images,
            inv2 @ self._views[t],
            sprites1,
            poses1,
            poses2,
            ids1,
            rendered1,
            (rendered2[0], rendered2[1]),
            self.background_photo,
        )


def make_sequence(
    rng: np.random.Generator,
    n_frames: int,
    height: int = 544,
    width: int = 960,
    speed: str = "medium",
    photos: str | Sequence[str] = "train",
    photometric: bool | PhotometricEffects = True,
    *,
    max_objects: int = 12,
    frame_rate: float = 30.0,
) -> SyntheticSequence:
    """Simulate a synthetic MOT sequence (see the module docstring for the camera, objects, gt and detections).

    Args:
        rng: the only source of randomness (same generator state -> identical geometry, gt, detections and frames).
        n_frames: number of frames, >= 2.
        height: frame height, >= 64.
        width: frame width, >= 64.
        speed: camera speed level, one of :data:`~mmtrack_corr.synthetic.SPEED_LEVELS`.
        photos: ``"train"``, ``"heldout"`` or a sequence of photo names; ground and objects come only from these.
        photometric: True (all effects), False (none) or a :class:`PhotometricEffects`. Brightness, contrast and
            colour drift smoothly over the sequence; blur, noise and JPEG are drawn per frame.
        max_objects: about this many objects are kept in or near the view (1 to 100; at most 254 exist at once).
        frame_rate: frames per second written to ``seqinfo.ini`` (> 0).

    Returns:
        A :class:`SyntheticSequence`.

    Raises:
        TypeError: wrong argument type.
        ValueError: argument out of range, unknown speed level or photo.

    Example:
        >>> seq = make_sequence(np.random.default_rng(0), 3, height=64, width=96, max_objects=2)
        >>> seq.frame(2).shape
        (64, 96, 3)
    """
    _check_rng(rng)
    n_frames = _check_int(n_frames, "n_frames", 2)
    height = _check_int(height, "height", 64)
    width = _check_int(width, "width", 64)
    limits = camera_speed(speed)
    names = resolve_photos(photos)
    effects = resolve_photometric(photometric)
    max_objects = _check_int(max_objects, "max_objects", 1, 100)
    if isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float)) or not frame_rate > 0:
        raise ValueError(f"frame_rate: expected a number > 0, got {frame_rate!r}")

    size = (height, width)
    fcx, fcy = (width - 1) / 2.0, (height - 1) / 2.0
    width_scale = width / REFERENCE_SIZE[1]
    obj_scale = size_scale(height, width)

    # ---- ground and camera -----------------------------------------------------------------------------------------
    bg_name = names[int(rng.integers(len(names)))]
    pyramid = photo_pyramid(bg_name)
    ph, pw = pyramid[0].shape[:2]
    scale0 = rng.uniform(0.4, 1.0) * min(pw / width, ph / height)  # level-0 photo pixels per frame pixel
    level = max(0, min(len(pyramid) - 1, int(math.ceil(math.log2(max(scale0, 1e-6)) - 1e-9))))
    world = pyramid[level]
    wh, ww = world.shape[:2]
    s0 = scale0 / 2.0**level

    speed_mod = _smooth_signal(rng, n_frames)
    yaw = _smooth_signal(rng, n_frames)
    zoom_phase = rng.uniform(0.0, 2.0 * math.pi)
    zoom_omega = 2.0 * math.pi / rng.uniform(80.0, 240.0)
    zoom_amp = min(math.log(1.4), math.log1p(limits.zoom) / zoom_omega) * rng.uniform(0.3, 1.0)
    max_move = limits.translation * width
    max_yaw = math.radians(limits.rotation_deg)

    centre = np.array([rng.uniform(0, ww - 1), rng.uniform(0, wh - 1)])
    theta = rng.uniform(-math.pi, math.pi)
    direction = rng.uniform(-math.pi, math.pi)
    turn = 0.0
    views: list[FloatArray] = []
    headings: list[float] = []  # direction of the camera's travel in frame axes (content flows the other way)
    for t in range(n_frames):
        s = s0 * math.exp(zoom_amp * (math.sin(zoom_omega * t + zoom_phase) - math.sin(zoom_phase)))
        views.append(translation(*centre) @ similarity(theta, s) @ translation(-fcx, -fcy))
        move = max_move * (0.675 + 0.325 * speed_mod[t])  # 35-100 % of the limit
        turn = float(np.clip(0.95 * turn + rng.normal(0.0, 0.02), -0.15, 0.15))
        direction += turn
        headings.append(direction)
        step = np.array([math.cos(direction), math.sin(direction)]) * move
        centre = centre + s * (similarity(theta, 1.0)[:2, :2] @ step)
        theta += max_yaw * 0.5 * yaw[t]

    # ---- objects ---------------------------------------------------------------------------------------------------
    max_own = 0.5 * limits.object_speed * width_scale
    tracks: list[_Track] = []
    alive: list[_Track] = []
    next_id = 1
    margin = 0.25 * max(height, width)

    def frame_position(t: int, pos: FloatArray) -> FloatArray:
        return apply_h(np.asarray(np.linalg.inv(views[t]), dtype=np.float64), pos)[0]

    def spawn(t: int, inside: bool) -> None:
        nonlocal next_id
        sw, sh = sample_sprite_size(rng, obj_scale, max_aspect=1.6)
        sprite = make_sprite(rng, pick_sprite_photo(rng, names, bg_name), sw, sh)
        if inside:
            fpos = np.array([rng.uniform(0, width - 1), rng.uniform(0, height - 1)])
            heading_frame = rng.uniform(-math.pi, math.pi)
        else:  # just outside an edge, mostly the one the camera travels towards, heading inwards
            travel = np.array([math.cos(headings[t]), math.sin(headings[t])])
            normals = np.array([[0.0, -1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
            weights = 0.25 + 2.0 * np.maximum(0.0, normals @ travel)
            side = int(rng.choice(4, p=weights / weights.sum()))
            u = rng.random()
            extent = 0.5 * max(sw, sh) + rng.uniform(0.0, 0.5) * margin
            fpos = [
                np.array([u * width, -extent]),
                np.array([width + extent, u * height]),
                np.array([u * width, height + extent]),
                np.array([-extent, u * height]),
            ][side]
            to_centre = np.array([fcx, fcy]) - fpos
            heading_frame = math.atan2(to_centre[1], to_centre[0]) + rng.uniform(-1.0, 1.0)
        view = views[t]
        pos = apply_h(view, fpos)[0]
        scale = float(math.sqrt(abs(np.linalg.det(view[:2, :2]))))
        frame_angle = math.atan2(view[1, 0], view[0, 0])
        heading = heading_frame + frame_angle
        own = 0.0 if rng.random() < 0.25 else max_own * rng.uniform(0.2, 1.0)
        track = _Track(
            id=next_id,
            sprite=sprite,
            depth=float(rng.random()),
            pos=pos,
            heading=heading,
            turn=0.0,
            speed=own * scale,
            scale=scale,
            orientation0=frame_angle + math.radians(rng.uniform(-20, 20)),
            heading0=heading,
            first=t,
        )
        next_id += 1
        tracks.append(track)
        alive.append(track)

    target = int(rng.integers(max(1, max_objects // 2), max_objects + 1))
    for _ in range(target):
        spawn(0, inside=True)
    for t in range(n_frames):
        if t > 0:
            for tr in alive:  # move, then turn smoothly
                tr.pos = tr.pos + tr.speed * np.array([math.cos(tr.heading), math.sin(tr.heading)])
                tr.turn = float(np.clip(0.9 * tr.turn + rng.normal(0.0, 0.015), -0.08, 0.08))
                tr.heading += tr.turn
            # drop objects far outside the view (they never come back: ids are not reused)
            keep = []
            for tr in alive:
                fx, fy = frame_position(t, tr.pos)
                if -2 * margin <= fx <= width + 2 * margin and -2 * margin <= fy <= height + 2 * margin:
                    keep.append(tr)
            alive[:] = keep
            near = sum(
                1
                for tr in alive
                if -margin <= (fp := frame_position(t, tr.pos))[0] <= width + margin
                and -margin <= fp[1] <= height + margin
            )
            for _ in range(2):
                # (render labels are uint8: never more than 254 objects at once)
                if near < target and len(alive) < 254 and rng.random() < 0.5:
                    spawn(t, inside=False)
                    near += 1
        for tr in alive:
            tr.poses.append(tr.world_pose())

    # ---- ground truth and detections -------------------------------------------------------------------------------
    seq = SyntheticSequence(
        size=size,
        frame_rate=float(frame_rate),
        speed=speed,
        background_photo=bg_name,
        world=world,
        views=views,
        tracks=tracks,
        gt=_empty_boxes(),
        detections=_empty_boxes(),
        effects=effects,
        colors=[],
        frame_seed=int(rng.integers(0, 2**63)),
    )
    gt_rows: list[tuple[int, int, float, float, float, float, float]] = []
    for t in range(n_frames):
        sprites, poses, ids = seq._scene(t)
        _, labels, _, _ = render(None, views[t], size, sprites, poses)
        counts = np.bincount(labels.ravel(), minlength=len(sprites) + 1)[1:]
        for k in np.flatnonzero(counts > 0):
            box = _clip_box(sprite_box(sprites[k], poses[k]), width, height)
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            vis = visible_fraction(sprites[k], poses[k], int(counts[k]))
            gt_rows.append((t + 1, int(ids[k]), box[0], box[1], box[2] - box[0], box[3] - box[1], vis))
    gt = _boxes_from_rows(gt_rows)
    seq.gt = gt
    seq.detections = _simulate_detections(rng, gt, n_frames, width, height, obj_scale)
    colors: list[ColorState] = []
    if effects.color:
        state = random_color(rng)
        for _ in range(n_frames):
            colors.append(state)
            state = state.drifted(rng)
    else:
        colors = [None] * n_frames  # type: ignore[list-item]
    seq._colors = colors
    return seq


def _clip_box(box: FloatArray, width: int, height: int) -> FloatArray:
    return np.array([max(box[0], 0.0), max(box[1], 0.0), min(box[2], float(width)), min(box[3], float(height))])


def _empty_boxes() -> SequenceBoxes:
    return SequenceBoxes(
        frames=np.zeros(0, np.int64),
        ids=np.zeros(0, np.int64),
        tlwh=np.zeros((0, 4)),
        scores=np.zeros(0),
        visibility=np.zeros(0),
    )


def _boxes_from_rows(rows: list[tuple[int, int, float, float, float, float, float]]) -> SequenceBoxes:
    if not rows:
        return _empty_boxes()
    arr = np.array(rows, dtype=np.float64)
    return SequenceBoxes(
        frames=arr[:, 0].astype(np.int64),
        ids=arr[:, 1].astype(np.int64),
        tlwh=arr[:, 2:6].copy(),
        scores=np.ones(arr.shape[0]),
        visibility=arr[:, 6].copy(),
    )


def _simulate_detections(
    rng: np.random.Generator, gt: SequenceBoxes, n_frames: int, width: int, height: int, obj_scale: float
) -> SequenceBoxes:
    n = len(gt)
    vis = gt.visibility
    detected = rng.random(n) >= 0.03 + 0.5 * (1.0 - vis) ** 2
    w, h = gt.tlwh[:, 2], gt.tlwh[:, 3]
    cx = gt.tlwh[:, 0] + w / 2 + rng.normal(0.0, 0.04, n) * w
    cy = gt.tlwh[:, 1] + h / 2 + rng.normal(0.0, 0.04, n) * h
    dw = w * np.exp(rng.normal(0.0, 0.06, n))
    dh = h * np.exp(rng.normal(0.0, 0.06, n))
    scores = np.clip(0.95 - 0.6 * (1.0 - vis) + rng.normal(0.0, 0.07, n), 0.05, 1.0)
    frames = [gt.frames[detected]]
    boxes = [np.stack([cx - dw / 2, cy - dh / 2, dw, dh], axis=1)[detected]]
    score_list = [scores[detected]]
    n_fp = rng.poisson(1.0, n_frames)
    fp_frames = np.repeat(np.arange(1, n_frames + 1), n_fp)
    fp_boxes = []
    for _ in range(fp_frames.size):
        bw, bh = sample_sprite_size(rng, obj_scale, max_aspect=1.6)
        bw, bh = min(bw, width), min(bh, height)
        fp_boxes.append([rng.uniform(0, width - bw), rng.uniform(0, height - bh), float(bw), float(bh)])
    frames.append(fp_frames)
    boxes.append(np.array(fp_boxes, dtype=np.float64).reshape(-1, 4))
    score_list.append(rng.uniform(0.1, 0.7, fp_frames.size))
    all_frames = np.concatenate(frames).astype(np.int64)
    order = np.argsort(all_frames, kind="stable")
    tlwh = np.concatenate(boxes)[order]
    # clip to the image, as a detector's boxes are
    x1 = np.clip(tlwh[:, 0], 0, width)
    y1 = np.clip(tlwh[:, 1], 0, height)
    x2 = np.clip(tlwh[:, 0] + tlwh[:, 2], 0, width)
    y2 = np.clip(tlwh[:, 1] + tlwh[:, 3], 0, height)
    tlwh = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    keep = (tlwh[:, 2] >= 1) & (tlwh[:, 3] >= 1)
    m = int(keep.sum())
    return SequenceBoxes(
        frames=all_frames[order][keep],
        ids=np.full(m, -1, np.int64),
        tlwh=tlwh[keep],
        scores=np.concatenate(score_list)[order][keep],
        visibility=np.full(m, -1.0),
    )
