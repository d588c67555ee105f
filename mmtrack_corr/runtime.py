"""Process-wide settings for CPU inference: :func:`keep_freed_memory`.

PyTorch's CPU tensors come from ``malloc``. With glibc's defaults, blocks of a few MB are served by fresh ``mmap``
pages and the top of the heap is returned to the kernel when enough of it is free, so a per-frame pipeline that
allocates and frees tensors of that size on every call (frames, feature maps, cost volumes, pyramids) pays a page
fault for every 4 KiB page it touches, on every frame. Raising glibc's mmap and trim thresholds keeps freed memory
in the process for the next frame - what the ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` environment
variables do at start-up, and the reason PyTorch's CPU tuning guides suggest jemalloc or tcmalloc.

This module imports neither torch nor numpy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # blocks below 1 GiB come from the heap, which is reused instead of mapped afresh
TRIM_THRESHOLD = (1 << 31) - 1  # never give the heap's free top back to the kernel (the largest int mallopt takes)

_applied = False
_OPT_OUT = "MMTRACK_KEEP_FREED_MEMORY"
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")


def _left_alone() -> bool:
    """Whether the user opted out, set glibc's thresholds themselves, or preloads another allocator."""
    if os.environ.get(_OPT_OUT, "").strip() == "0":
        return True
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return True
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "malloc.mmap_threshold" in tunables or "malloc.trim_threshold" in tunables:
        return True
    preload = os.environ.get("LD_PRELOAD", "")
    return any(name in preload for name in _OTHER_ALLOCATORS)


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse instead of returning it to the kernel (whole process).

    Sets glibc's mmap threshold to 1 GiB and its trim threshold to 2 GiB (``mallopt``), so that the tensors of one
    frame reuse the pages the previous frame freed instead of faulting fresh ones in. Measured on a 2-core AMD EPYC,
    alternating processes with and without it: ``mmtrack-demo``'s learned motion 70.6 / 71.1 -> 59.9 / 50.4 ms per
    frame; a ``MotionEstimator`` call (defaults, 544x960 frames, one thread) 73-74 -> 54-55 ms fastest;
    ``mmtrack-train-motion`` 0.69-0.86 -> 0.53-0.63 s per step (batch 8 at 256x448). Peak memory was the same; after
    the run the process kept ~25 MB more (memory freed after a peak stays with it). Where a process has already
    settled into its allocations the gain can be small (``bench_motion.py``'s latency rows: within noise). Both
    settings are needed: either one alone was no faster. ``mmtrack-demo``, ``mmtrack-eval`` (its learned motion
    source) and ``mmtrack-train-motion`` call it; call it once at the start of your own program.

    It leaves the process alone (returns False) where ``MMTRACK_KEEP_FREED_MEMORY=0`` is set (the opt-out, for the
    CLIs too), where the user already chose: ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` set, or
    ``GLIBC_TUNABLES`` naming ``glibc.malloc.mmap_threshold`` / ``trim_threshold``, and where ``LD_PRELOAD`` brings
    another allocator (jemalloc, tcmalloc, mimalloc), which glibc's settings would not reach.

    Returns:
        True where the settings were applied (Linux with glibc); False elsewhere (macOS, Windows, musl) and in the
        cases above, where nothing changes.

    Example:
        At the start of a program (True on Linux with glibc):

        >>> from mmtrack_corr import keep_freed_memory
        >>> keep_freed_memory()  # doctest: +SKIP
        True
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or _left_alone():
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):  # musl's mallopt does nothing
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 or mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return False
    _applied = True
    return True
