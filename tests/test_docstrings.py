"""Every docstring example of the installed packages runs and shows what it says (doctest).

Each module's examples run in the module's own namespace plus the imports the docs take for granted: ``np``
(numpy), ``torch`` where torch imports, ``tempfile`` and ``Path``; the submodules of ``trackers.mot_io`` also see
the package's names (their examples read back what they write with its readers). Examples marked
``# doctest: +SKIP`` (platform-dependent results, long runs) are not run.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

PACKAGES = ("mmtrack_corr", "trackers", "mmtrack_demo", "spatial_correlation_sampler")


def _module_names() -> list[str]:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            if not info.name.endswith("__main__"):
                names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _module_names())
def test_docstring_examples_run(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(name)
    extra: dict[str, object] = {"np": np, "tempfile": tempfile, "Path": Path}
    try:
        import torch

        extra["torch"] = torch
    except ImportError:  # trackers and the demo's tests run without torch too
        pass
    if name.startswith("trackers.mot_io."):
        extra.update(vars(importlib.import_module("trackers.mot_io")))
    globs = {**extra, **vars(module)}
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs=globs):
        runner.run(test)
    result = runner.summarize(verbose=False)
    report = capsys.readouterr().out
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed:\n{report}"
