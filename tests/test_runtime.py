"""keep_freed_memory: glibc keeps freed blocks in the process (observed through the resident set size)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# allocate and touch 64 MiB, free it, and report the resident set (pages) before, with and after
_SCRIPT = """
import sys
from mmtrack_corr.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1])
before = rss()
block = bytearray(64 << 20)
block[:: 4096] = b"x" * len(block[:: 4096])
held = rss()
del block
print(applied, before, held, rss())
"""


def _run(mode: str, **env: str) -> tuple[str, int, int, int]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "MMTRACK_KEEP"))} | env
    out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, check=True, env=environ)
    applied, before, held, after = out.stdout.split()
    return applied, int(before), int(held), int(after)


def test_freed_memory_stays_with_the_process_only_when_asked() -> None:
    # in subprocesses: the setting is process-wide, and this test process should keep glibc's defaults
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/statm (Linux)")
    applied, before, held, after = _run("keep")  # from the heap now, and the heap keeps it once freed
    if applied != "True":
        pytest.skip("not glibc: keep_freed_memory does nothing here")
    pages = (64 << 20) // 4096
    assert held - before > 0.9 * pages and held - after < 0.1 * pages
    _, before, held, after = _run("default")  # glibc maps a 64 MiB block afresh and unmaps it when freed
    assert held - before > 0.9 * pages and held - after > 0.9 * pages


def test_returns_a_bool_and_is_idempotent() -> None:
    code = "from mmtrack_corr.runtime import keep_freed_memory as k; a = k(); print(type(a).__name__, k() is a)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["bool", "True"]


@pytest.mark.parametrize(
    "env",
    [
        {"MMTRACK_KEEP_FREED_MEMORY": "0"},  # the opt-out
        {"MALLOC_TRIM_THRESHOLD_": "131072"},  # the user's own glibc setting wins
        {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072"},
    ],
    ids=["opt_out", "user_trim_threshold", "user_tunables"],
)
def test_leaves_the_process_alone_where_the_user_chose(env: dict[str, str]) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/statm (Linux)")
    applied, before, held, after = _run("keep", **env)
    assert applied == "False"
    pages = (64 << 20) // 4096
    assert held - before > 0.9 * pages and held - after > 0.9 * pages  # glibc gave the freed block back
