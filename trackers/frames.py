"""Reading sequence frames strictly: a truncated or corrupt image is an error, never a half-grey frame.

OpenCV decodes a truncated JPEG without failing: libjpeg prints "Premature end of JPEG file" on stderr and fills
the missing rows with grey, so a tracker would run on a frame that is partly invented. :func:`read_frame` checks the
file's structure before decoding: a JPEG must start with SOI and end with EOI (``FF D9``, trailing zero bytes or
whitespace allowed), a PNG must end with its ``IEND`` chunk; then the decoded image must exist and match the
expected size when one is given.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["read_frame"]

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"


def _structure_problem(data: bytes) -> str | None:
    """Why ``data`` is not a whole JPEG / PNG file, or None (other formats are left to the decoder)."""
    if data.startswith(_JPEG_SOI):
        if not data.rstrip(b"\x00 \t\r\n").endswith(_JPEG_EOI):
            return "truncated JPEG (no end-of-image marker)"
    elif data.startswith(_PNG_SIGNATURE):
        if not data.endswith(_PNG_IEND):
            return "truncated PNG (no IEND chunk)"
    return None


def read_frame(path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> np.ndarray:
    """Read one frame as a BGR image, refusing truncated or undecodable files.

    Args:
        path: image file (JPEG, PNG, BMP, or anything OpenCV decodes).
        size: expected ``(width, height)``, or None to accept any size.

    Returns:
        The image, shape (H, W, 3), uint8, BGR (OpenCV order).

    Raises:
        FileNotFoundError: no such file.
        ValueError: truncated JPEG/PNG, undecodable data, or a size other than ``size`` (the path is named).

    Example:
        >>> import cv2, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "f.png")
        >>> _ = cv2.imwrite(p, np.zeros((4, 6, 3), np.uint8))
        >>> read_frame(p).shape
        (4, 6, 3)
    """
    import cv2  # OpenCV is a core dependency; imported here to keep `import trackers` light

    p = os.fspath(path)
    with open(p, "rb") as fh:
        data = fh.read()
    problem = _structure_problem(data)
    if problem is not None:
        raise ValueError(f"{p}: {problem}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise ValueError(f"{p}: cannot decode image ({len(data)} bytes)")
    if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
        raise ValueError(f"{p}: expected a {size[0]}x{size[1]} image, got {image.shape[1]}x{image.shape[0]}")
    return image
