"""Read and write MOT text files: MOTChallenge, VisDrone-MOT and UAVDT layouts, plus dataset discovery.

Conventions (shared by every reader and writer here):

- Frames are 1-based integers. Boxes in files are ``tlwh`` (left, top, width, height) in pixels; the
  :class:`MotRecords` table keeps them as ``tlwh`` and offers ``xyxy`` on demand.
- Every reader returns records **sorted by frame** (stable, so rows of one frame keep their file order). Files may
  list frames in any order (detections often do); after sorting, :meth:`MotRecords.frame_slices` gives each
  frame's rows without another pass over the data.
- Files are parsed once (one split per line, one vectorised float conversion) and then validated with numpy, so a
  100k-line file reads in a fraction of a second. Every validation error names the file and the 1-based line:
  ``ValueError: seq/gt/gt.txt:17: expected 9 or 10 comma-separated values, got 4``.
- Empty files (or files with only blank lines) are valid and give zero records.
- Values may be separated by commas (with optional spaces, and one optional trailing comma) or, when a line has no
  comma at all, by whitespace.

Modules: :mod:`~trackers.mot_io.records` (the table), :mod:`~trackers.mot_io.parsing` (streaming parser, bounds),
:mod:`~trackers.mot_io.formats` (the readers), :mod:`~trackers.mot_io.writer` (result files and atomic small files),
:mod:`~trackers.mot_io.seqinfo`, :mod:`~trackers.mot_io.discovery`, :mod:`~trackers.mot_io.manifest` (the run
record that says which result files are complete).

Guarantees: every value read is bounded (frames ``1..1e7``, ids ``|id| < 2**31``, coordinates ``|x|, |y|, w, h <=
1e7``, anything else ``|v| <= 1e15``) or refused with ``file:line``; a path that exists but is not a regular file is
an error, never "absent"; a file is read in blocks (memory about 2-3x the file); the writer refuses what the readers
would refuse, and a result file is published only when complete (``.partial`` until then, always frame-aligned).

Layouts:

========================  ========================================================================================
MOTChallenge gt (MOT16+)  ``frame,id,x,y,w,h,flag,class,visibility`` (9 values; MOT16, MOT17, MOT20)
MOTChallenge gt (MOT15)   ``frame,id,x,y,w,h,flag,wx,wy,wz`` (10 values; world coordinates, no class column)
MOTChallenge det          ``frame,-1,x,y,w,h,score[,...]`` (7 to 10 values)
MOTChallenge results      ``frame,id,x,y,w,h,score,-1,-1,-1`` (6 to 10 values read; written with 10)
VisDrone-MOT              ``frame,id,x,y,w,h,score,category,truncation,occlusion`` (annotations, results and
                          detections; 8 to 10 values read, 10 written). Categories: 0 ignored region,
                          1 pedestrian, 2 people, 3 bicycle, 4 car, 5 van, 6 truck, 7 tricycle,
                          8 awning-tricycle, 9 bus, 10 motor, 11 others.
UAVDT ``*_gt_whole.txt``  ``frame,id,x,y,w,h,out-of-view,occlusion,category`` (9 values; 1 car, 2 truck, 3 bus)
UAVDT ``*_gt_ignore.txt`` ignore areas, one box per line; the first six values are read
                          (``frame,id,x,y,w,h``), the rest (6 to 10 values in all) are ignored.
UAVDT results             MOTChallenge results layout (``frame,id,x,y,w,h,score,-1,-1,-1``); the UAVDT MOT
                          toolkit derives from the MOTChallenge devkit and reads the first seven values.
========================  ========================================================================================

Example:
    >>> path = Path(tempfile.mkdtemp()) / "res.txt"
    >>> with ResultWriter(path) as writer:
    ...     writer.write_frame(1, np.array([[10.0, 20.0, 30.0, 60.0]]), np.array([7]), np.array([0.9]))
    >>> read_mot_results(path).tlwh.shape
    (1, 4)
"""

from .discovery import SequenceEntry, detect_format, discover_sequences, resolve_info
from .formats import (
    MOT_VARIANTS,
    VISDRONE_CATEGORIES,
    read_mot_detections,
    read_mot_gt,
    read_mot_results,
    read_uavdt_gt,
    read_uavdt_ignore,
    read_visdrone,
    resolve_mot_variant,
)
from .manifest import RUN_MANIFEST, check_result_complete, file_digest, read_manifest
from .parsing import MAX_COORD, MAX_FRAME, MAX_ID, MAX_VALUE, require_regular_file
from .records import DatasetFormat, MotRecords, PathLike, ResultLayout, _records_from_arrays
from .seqinfo import SequenceInfo, read_seqinfo, write_seqinfo
from .writer import PARTIAL_SUFFIX, ResultWriter, write_results, write_text_atomic

__all__ = [
    "MAX_COORD",
    "MAX_FRAME",
    "MAX_ID",
    "MAX_VALUE",
    "MOT_VARIANTS",
    "PARTIAL_SUFFIX",
    "RUN_MANIFEST",
    "VISDRONE_CATEGORIES",
    "DatasetFormat",
    "MotRecords",
    "PathLike",
    "ResultLayout",
    "ResultWriter",
    "SequenceEntry",
    "SequenceInfo",
    "_records_from_arrays",
    "check_result_complete",
    "detect_format",
    "discover_sequences",
    "file_digest",
    "read_mot_detections",
    "read_mot_gt",
    "read_manifest",
    "read_mot_results",
    "read_seqinfo",
    "read_uavdt_gt",
    "read_uavdt_ignore",
    "read_visdrone",
    "require_regular_file",
    "resolve_info",
    "resolve_mot_variant",
    "write_results",
    "write_seqinfo",
    "write_text_atomic",
]
