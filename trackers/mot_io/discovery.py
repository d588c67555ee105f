"""Dataset discovery: which sequences a MOTChallenge, VisDrone-MOT or UAVDT folder holds, and where their files are.

A file that is present but unusable (a directory named ``gt.txt``, a FIFO, a dangling symlink or a symlink loop) is
reported by the reader that opens it, never taken for "no ground truth".
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .records import DatasetFormat, MotRecords, PathLike
from .seqinfo import SequenceInfo, read_seqinfo

__all__ = ["SequenceEntry", "detect_format", "discover_sequences", "resolve_info"]

_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def _present(path: Path) -> bool:
    """Something is at ``path`` (even a dangling symlink or a symlink loop)."""
    return os.path.lexists(path)


@dataclass(frozen=True)
class SequenceEntry:
    """One sequence found by :func:`discover_sequences`.

    Attributes:
        name: sequence name.
        format: ``"mot"``, ``"visdrone"`` or ``"uavdt"``.
        root: the sequence folder (MOT) or the dataset folder (VisDrone / UAVDT).
        gt_path: ground-truth file, or None when absent.
        det_path: detection file, or None when absent.
        image_dir: folder of the frames, or None when absent.
        image_pattern: frame file name pattern, formatted with the 1-based frame number (e.g. ``"{:06d}.jpg"``).
        seqinfo_path: the ``seqinfo.ini`` (MOT), or None when absent.
        ignore_path: UAVDT ``*_gt_ignore.txt``, or None.
        info: frame rate / length / size: from ``seqinfo.ini`` (MOT), else None until :func:`resolve_info`.
    """

    name: str
    format: DatasetFormat
    root: Path
    gt_path: Path | None
    det_path: Path | None
    image_dir: Path | None
    image_pattern: str
    seqinfo_path: Path | None = None
    ignore_path: Path | None = None
    info: SequenceInfo | None = None

    def image_path(self, frame: int) -> Path | None:
        """Path of frame ``frame`` (1-based), or None when the sequence has no image folder."""
        if self.image_dir is None:
            return None
        return self.image_dir / self.image_pattern.format(frame)

    def with_info(self, info: SequenceInfo) -> SequenceEntry:
        """A copy with ``info`` set."""
        return dataclasses.replace(self, info=info)


def _first_file(folder: Path, candidates: Sequence[str]) -> Path | None:
    for name in candidates:
        p = folder / name
        if _present(p):
            return p
    return None


def _image_pattern(image_dir: Path | None, default: str, prefix: str = "") -> str:
    """Guess the frame file pattern (zero padding and extension) from the first image in the folder."""
    if image_dir is None or not image_dir.is_dir():
        return default
    names = sorted(n for n in os.listdir(image_dir) if n.lower().endswith(_IMAGE_EXTS) and n.startswith(prefix))
    if not names:
        return default
    stem, ext = os.path.splitext(names[0])
    digits = stem[len(prefix) :]
    if not digits.isdigit():
        return default
    return f"{prefix}{{:0{len(digits)}d}}{ext}"


def _discover_mot(root: Path) -> list[SequenceEntry]:
    def is_seq(d: Path) -> bool:
        return _present(d / "seqinfo.ini") or _present(d / "gt" / "gt.txt") or _present(d / "det" / "det.txt")

    folders = [root] if is_seq(root) else sorted(d for d in root.iterdir() if d.is_dir() and is_seq(d))
    entries = []
    for d in folders:
        seqinfo = d / "seqinfo.ini"
        info = read_seqinfo(seqinfo) if _present(seqinfo) else None
        im_dir = d / (info.im_dir if info else "img1")
        ext = info.im_ext if info else ".jpg"
        entries.append(
            SequenceEntry(
                name=d.name,
                format="mot",
                root=d,
                gt_path=_first_file(d, ["gt/gt.txt"]),
                det_path=_first_file(d, ["det/det.txt"]),
                image_dir=im_dir if im_dir.is_dir() else None,
                image_pattern=f"{{:06d}}{ext}",
                seqinfo_path=seqinfo if _present(seqinfo) else None,
                info=info,
            )
        )
    return entries


def _discover_visdrone(root: Path) -> list[SequenceEntry]:
    seq_dir, ann_dir = root / "sequences", root / "annotations"
    det_dir = root / "detections"
    names: set[str] = set()
    if seq_dir.is_dir():
        names |= {d.name for d in seq_dir.iterdir() if d.is_dir()}
    for folder in (ann_dir, det_dir):
        if folder.is_dir():
            names |= {p.stem for p in folder.glob("*.txt")}
    entries = []
    for name in sorted(names):
        im_dir = seq_dir / name
        im_dir_opt = im_dir if im_dir.is_dir() else None
        entries.append(
            SequenceEntry(
                name=name,
                format="visdrone",
                root=root,
                gt_path=_first_file(ann_dir, [f"{name}.txt"]) if ann_dir.is_dir() else None,
                det_path=_first_file(det_dir, [f"{name}.txt"]) if det_dir.is_dir() else None,
                image_dir=im_dir_opt,
                image_pattern=_image_pattern(im_dir_opt, "{:07d}.jpg"),
            )
        )
    return entries


def _discover_uavdt(root: Path) -> list[SequenceEntry]:
    gt_dirs = [d for d in (root / "GT", root / "gt", root / "UAV-benchmark-MOTD_v1.0" / "GT") if d.is_dir()]
    img_roots = [d for d in (root / "UAV-benchmark-M", root / "sequences") if d.is_dir()]
    det_dir = root / "detections"
    names: set[str] = set()
    for g in gt_dirs:
        names |= {p.name[: -len("_gt_whole.txt")] for p in g.glob("*_gt_whole.txt")}
    for r in img_roots:
        names |= {d.name for d in r.iterdir() if d.is_dir()}
    if det_dir.is_dir():
        names |= {p.stem for p in det_dir.glob("*.txt")}
    entries = []
    for name in sorted(names):
        gt = next((g / f"{name}_gt_whole.txt" for g in gt_dirs if _present(g / f"{name}_gt_whole.txt")), None)
        ign = next((g / f"{name}_gt_ignore.txt" for g in gt_dirs if _present(g / f"{name}_gt_ignore.txt")), None)
        im_dir = next((r / name for r in img_roots if (r / name).is_dir()), None)
        entries.append(
            SequenceEntry(
                name=name,
                format="uavdt",
                root=root,
                gt_path=gt,
                det_path=_first_file(det_dir, [f"{name}.txt"]) if det_dir.is_dir() else None,
                image_dir=im_dir,
                image_pattern=_image_pattern(im_dir, "img{:06d}.jpg", prefix="img"),
                ignore_path=ign,
            )
        )
    return entries


def detect_format(root: PathLike) -> DatasetFormat:
    """Guess a dataset folder's layout: VisDrone (``sequences/`` or ``annotations/``), UAVDT (``GT/*_gt_whole.txt``
    or ``UAV-benchmark-M/``), else MOTChallenge.

    Example:
        >>> detect_format(tempfile.mkdtemp())
        'mot'
    """
    r = Path(root)
    if (r / "annotations").is_dir() or (r / "sequences").is_dir():
        return "visdrone"
    if (r / "UAV-benchmark-M").is_dir() or any(
        (r / g).is_dir() and any((r / g).glob("*_gt_whole.txt")) for g in ("GT", "gt", "UAV-benchmark-MOTD_v1.0/GT")
    ):
        return "uavdt"
    return "mot"


def discover_sequences(root: PathLike, format: DatasetFormat | None = None) -> list[SequenceEntry]:
    """Find the sequences of a dataset folder.

    Accepted layouts:

    - ``"mot"`` (MOTChallenge): every subfolder holding ``seqinfo.ini``, ``gt/gt.txt`` or ``det/det.txt`` is a
      sequence (or ``root`` itself if it holds one of them). Images: ``<seq>/<imDir>/<frame:06d><imExt>``.
    - ``"visdrone"``: ``sequences/<seq>/`` (frames ``0000001.jpg``), ``annotations/<seq>.txt`` and, for tracking
      from public detections, ``detections/<seq>.txt`` (VisDrone layout, id -1).
    - ``"uavdt"``: ground truth ``GT/<seq>_gt_whole.txt`` and optional ``GT/<seq>_gt_ignore.txt`` (``GT`` may also
      be ``gt`` or ``UAV-benchmark-MOTD_v1.0/GT``), frames ``UAV-benchmark-M/<seq>/img000001.jpg`` (or
      ``sequences/<seq>/``), detections ``detections/<seq>.txt`` in the MOTChallenge det layout.

    Args:
        root: dataset folder.
        format: layout, or None to guess with :func:`detect_format`.

    Returns:
        Entries sorted by name (MOT entries carry their ``seqinfo.ini`` as ``info``).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: unknown format, or a malformed ``seqinfo.ini``.

    Example:
        >>> discover_sequences(tempfile.mkdtemp())
        []
    """
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"{r}: dataset folder not found")
    fmt = detect_format(r) if format is None else format
    if fmt == "mot":
        return _discover_mot(r)
    if fmt == "visdrone":
        return _discover_visdrone(r)
    if fmt == "uavdt":
        return _discover_uavdt(r)
    raise ValueError(f"format: expected 'mot', 'visdrone' or 'uavdt', got {format!r}")


def _read_image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image file via OpenCV, or None when unreadable."""
    import cv2  # OpenCV is a core dependency; imported here to keep `import trackers.mot_io` light

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    return int(img.shape[1]), int(img.shape[0])


def resolve_info(
    entry: SequenceEntry,
    *,
    frame_rate: float | None = None,
    seq_length: int | None = None,
    records: Sequence[MotRecords] = (),
) -> SequenceInfo:
    """Frame rate, length and image size of a sequence.

    MOTChallenge: from ``seqinfo.ini``; if it is missing, ``frame_rate`` and ``seq_length`` must both be given
    (the documented fallback), otherwise a ``FileNotFoundError`` names the missing file. Explicit values override
    the file.

    VisDrone / UAVDT (no ini file): frame rate ``frame_rate`` or 30 (both datasets are 30 fps video); length
    ``seq_length``, else the number of frames in the image folder, else the largest frame in ``records``; image
    size from the first frame's image, else the extent of the boxes in ``records`` (rounded up).

    Raises:
        FileNotFoundError: MOT sequence without ``seqinfo.ini`` and without explicit frame rate and length.
        ValueError: non-positive explicit values.

    Example:
        >>> e = SequenceEntry("s", "visdrone", Path("."), None, None, None, "{:07d}.jpg")
        >>> resolve_info(e, seq_length=5).frame_rate
        30.0
    """
    if frame_rate is not None and not frame_rate > 0:
        raise ValueError(f"frame_rate: expected a positive number, got {frame_rate!r}")
    if seq_length is not None and not seq_length > 0:
        raise ValueError(f"seq_length: expected a positive integer, got {seq_length!r}")
    if entry.format == "mot":
        if entry.info is not None:
            info = entry.info
            return dataclasses.replace(
                info,
                frame_rate=float(frame_rate) if frame_rate is not None else info.frame_rate,
                seq_length=int(seq_length) if seq_length is not None else info.seq_length,
            )
        if frame_rate is None or seq_length is None:
            raise FileNotFoundError(
                f"{entry.root / 'seqinfo.ini'}: seqinfo.ini not found (needed for frame rate and sequence length)"
            )
        return SequenceInfo(entry.name, float(frame_rate), int(seq_length))
    n_images = 0
    size: tuple[int, int] | None = None
    if entry.image_dir is not None:
        images = sorted(n for n in os.listdir(entry.image_dir) if n.lower().endswith(_IMAGE_EXTS))
        n_images = len(images)
        if images:
            size = _read_image_size(entry.image_dir / images[0])
    length = seq_length or n_images or max((r.max_frame for r in records), default=0)
    if size is None:
        extent = [np.ceil(r.xyxy.max(axis=0)) for r in records if len(r)]
        if extent:
            m = np.max(np.stack(extent), axis=0)
            size = (max(1, int(m[2])), max(1, int(m[3])))
    return SequenceInfo(
        name=entry.name,
        frame_rate=float(frame_rate) if frame_rate is not None else 30.0,
        seq_length=int(length),
        im_width=None if size is None else size[0],
        im_height=None if size is None else size[1],
        im_dir="" if entry.image_dir is None else entry.image_dir.name,
        im_ext=os.path.splitext(entry.image_pattern)[1] or ".jpg",
    )
