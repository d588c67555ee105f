"""MOTChallenge ``seqinfo.ini``: :class:`SequenceInfo`, read strictly and written atomically."""

from __future__ import annotations

import configparser
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .parsing import MAX_COORD, MAX_FRAME, require_regular_file
from .records import PathLike
from .writer import write_text_atomic

__all__ = ["MAX_FRAME_RATE", "SequenceInfo", "read_seqinfo", "write_seqinfo"]

#: Largest accepted ``frameRate`` (frames per second).
MAX_FRAME_RATE = 10_000.0

_EXT = re.compile(r"\.[A-Za-z0-9]{1,10}")


@dataclass(frozen=True)
class SequenceInfo:
    """The ``[Sequence]`` section of a MOTChallenge ``seqinfo.ini``.

    Attributes:
        name: sequence name.
        frame_rate: frames per second.
        seq_length: number of frames (frames are 1..seq_length).
        im_width: image width in pixels (None when unknown).
        im_height: image height in pixels (None when unknown).
        im_dir: image folder relative to the sequence folder.
        im_ext: image file extension, with the dot.
    """

    name: str
    frame_rate: float
    seq_length: int
    im_width: int | None = None
    im_height: int | None = None
    im_dir: str = "img1"
    im_ext: str = ".jpg"


def _decode_ini(p: Path) -> str:
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig")  # a UTF-8 BOM (Windows editors) is fine
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(f"{p}:{line}: not UTF-8 text (byte 0x{data[err.start : err.start + 1].hex()})") from None


def read_seqinfo(path: PathLike) -> SequenceInfo:
    """Read a ``seqinfo.ini`` (``[Sequence]`` name, imDir, frameRate, seqLength, imWidth, imHeight, imExt).

    ``frameRate`` and ``seqLength`` are required; the others default (name: the folder name, imDir ``img1``,
    imExt ``.jpg``, sizes None). Values are taken literally (no ``%`` interpolation); UTF-8 with or without BOM.
    Checked: ``0 < frameRate <= 10000`` (finite), ``1 <= seqLength <= 10,000,000``, ``1 <= imWidth, imHeight <=
    1e7``, ``imExt`` a dot and 1-10 letters/digits, ``imDir`` a relative folder name inside the sequence folder.

    Raises:
        FileNotFoundError: the file is missing (message names the path).
        PermissionError: the file cannot be read.
        ValueError: not a regular file, not UTF-8, not an ini file, no ``[Sequence]`` section, a required key
            missing, or a value of the wrong type or out of range; the message names the file.

    Example:
        >>> path = Path(tempfile.mkdtemp()) / "seqinfo.ini"
        >>> _ = path.write_text("[Sequence]\\nname=A\\nframeRate=25\\nseqLength=71\\n")
        >>> info = read_seqinfo(path)
        >>> (info.frame_rate, info.seq_length)
        (25.0, 71)
    """
    p = require_regular_file(path, "seqinfo.ini")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(_decode_ini(p), source=str(p))
    except configparser.Error as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{p}: cannot parse as an ini file ({type(err).__name__}: {first})") from None
    if "Sequence" not in parser:
        raise ValueError(f"{p}: expected a [Sequence] section")
    sec = parser["Sequence"]

    def _int(key: str, high: float, required: bool) -> int | None:
        if key not in sec:
            if required:
                raise ValueError(f"{p}: [Sequence] {key} is missing")
            return None
        text = sec[key].strip()
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{p}: [Sequence] {key}: expected an integer, got {sec[key]!r}") from None
        if not 1 <= value <= high:
            raise ValueError(f"{p}: [Sequence] {key}: expected an integer in [1, {high:g}], got {sec[key]!r}")
        return value

    if "frameRate" not in sec:
        raise ValueError(f"{p}: [Sequence] frameRate is missing")
    try:
        frame_rate = float(sec["frameRate"])
    except ValueError:
        raise ValueError(f"{p}: [Sequence] frameRate: expected a number, got {sec['frameRate']!r}") from None
    if not (math.isfinite(frame_rate) and 0 < frame_rate <= MAX_FRAME_RATE):
        raise ValueError(
            f"{p}: [Sequence] frameRate: expected a number in (0, {MAX_FRAME_RATE:g}], got {sec['frameRate']!r}"
        )
    seq_length = _int("seqLength", MAX_FRAME, True)
    width = _int("imWidth", MAX_COORD, False)
    height = _int("imHeight", MAX_COORD, False)
    im_ext = sec.get("imExt", ".jpg").strip()
    if not _EXT.fullmatch(im_ext):
        raise ValueError(f"{p}: [Sequence] imExt: expected a file extension such as .jpg, got {im_ext!r}")
    im_dir = sec.get("imDir", "img1").strip()
    parts = Path(im_dir).parts
    if not parts or Path(im_dir).is_absolute() or ".." in parts or any(c in im_dir for c in "{}\0"):
        raise ValueError(f"{p}: [Sequence] imDir: expected a folder name inside the sequence folder, got {im_dir!r}")
    return SequenceInfo(
        name=sec.get("name", p.parent.name).strip() or p.parent.name,
        frame_rate=frame_rate,
        seq_length=int(seq_length or 0),
        im_width=width,
        im_height=height,
        im_dir=im_dir,
        im_ext=im_ext,
    )


def write_seqinfo(path: PathLike, info: SequenceInfo) -> None:
    """Write ``info`` as a MOTChallenge ``seqinfo.ini``.

    Example:
        >>> path = Path(tempfile.mkdtemp()) / "seqinfo.ini"
        >>> write_seqinfo(path, SequenceInfo("A", 30.0, 10, 640, 480))
        >>> read_seqinfo(path).im_width
        640
    """
    rate = int(info.frame_rate) if float(info.frame_rate).is_integer() else info.frame_rate
    lines = [
        "[Sequence]",
        f"name={info.name}",
        f"imDir={info.im_dir}",
        f"frameRate={rate}",
        f"seqLength={info.seq_length}",
    ]
    if info.im_width is not None:
        lines.append(f"imWidth={info.im_width}")
    if info.im_height is not None:
        lines.append(f"imHeight={info.im_height}")
    lines.append(f"imExt={info.im_ext}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines) + "\n\n")
