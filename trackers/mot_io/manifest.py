"""The run record of a result folder: which run wrote which result files, with which settings, and whether whole.

``mmtrack-eval`` keeps ``OUT_DIR/run.json`` (:data:`RUN_MANIFEST`)::

    {"tool": "mmtrack-eval", "run_id": "...", "status": "running" | "complete" | "failed" | "interrupted",
     "settings": {...}, "sequences": {"<SEQ>": {"file": "<SEQ>.txt", "status": "complete", "lines": 812,
                                               "bytes": 40112, "sha256": "..."}}}

The evaluators check every result file they score with :func:`check_result_complete`: a ``<SEQ>.txt.partial``
beside it (a run that was killed or is still running) is refused; in a folder with a run record, a result file the
record does not list as complete, or whose size or hash differ from the record, is refused too. A folder without a
run record (results written by other tools) is evaluated as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .records import PathLike
from .writer import PARTIAL_SUFFIX

__all__ = ["RUN_MANIFEST", "check_result_complete", "file_digest", "read_manifest"]

#: File name of the run record in a result folder.
RUN_MANIFEST = "run.json"


def file_digest(path: PathLike) -> tuple[int, str]:
    """``(size in bytes, sha256 hex)`` of a file, read in 1 MB blocks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


def read_manifest(results_dir: PathLike) -> dict[str, Any] | None:
    """The run record of ``results_dir``, or None when it has none.

    Raises:
        ValueError: the record exists but is not a JSON object (named).
    """
    path = Path(results_dir) / RUN_MANIFEST
    if not os.path.lexists(path):
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise ValueError(f"{path}: unreadable run record ({err})") from None
    if not isinstance(record, dict) or not isinstance(record.get("sequences"), dict):
        raise ValueError(f"{path}: expected a run record object with a 'sequences' map")
    return record


def check_result_complete(results_dir: PathLike, name: str, file_name: str | None = None) -> Path:
    """Path of sequence ``name``'s result file after checking that it is complete (see the module doc).

    Args:
        results_dir: the result folder.
        name: sequence name.
        file_name: the result file's name (default ``<name>.txt``).

    Raises:
        FileNotFoundError: no result file.
        ValueError: an unfinished ``.partial`` file beside it, or a run record that does not vouch for it.
    """
    folder = Path(results_dir)
    path = folder / (file_name or f"{name}.txt")
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    if os.path.lexists(partial):
        raise ValueError(
            f"{partial}: unfinished result of sequence {name} (its run was interrupted, failed or is still running); "
            "re-run the tracker before evaluating"
        )
    if not os.path.lexists(path):
        raise FileNotFoundError(f"{path}: result file not found")
    record = read_manifest(folder)
    if record is None:
        return path
    run = record.get("run_id", "?")
    entry = record["sequences"].get(name)
    where = folder / RUN_MANIFEST
    if not isinstance(entry, dict) or entry.get("status") != "complete" or entry.get("file") != path.name:
        raise ValueError(f"{path}: not recorded as a complete result of run {run} in {where}")
    size, digest = file_digest(path)
    if size != entry.get("bytes") or digest != entry.get("sha256"):
        raise ValueError(f"{path}: changed since run {run} wrote it (size or sha256 differ from {where})")
    return path
