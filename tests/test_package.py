"""The package's public surface: every exported name resolves, and the torch-free parts stay torch-free."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module

import pytest

import mmtrack_corr


def test_all_lists_exactly_the_lazy_exports() -> None:
    assert mmtrack_corr.__all__ == sorted(mmtrack_corr.__all__)
    assert set(mmtrack_corr.__all__) == {*mmtrack_corr._EXPORTS, "__version__"}


@pytest.mark.parametrize("name", sorted(mmtrack_corr._EXPORTS))
def test_every_export_resolves_to_its_module(name: str) -> None:
    value = getattr(mmtrack_corr, name)
    assert value is getattr(import_module(f"mmtrack_corr.{mmtrack_corr._EXPORTS[name]}"), name)
    assert name in dir(mmtrack_corr)


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mmtrack_corr.nope  # noqa: B018


def test_synthetic_data_imports_without_torch() -> None:
    code = "import sys, mmtrack_corr, mmtrack_corr.synthetic; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _modules() -> list[str]:
    import pkgutil

    import mmtrack_demo

    import trackers

    names = []
    for package in (mmtrack_corr, trackers, mmtrack_demo):
        names.append(package.__name__)
        names += [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return sorted(names)


_FIRST_IMPORTS = """
import sys
from importlib import import_module
failed = {}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("mmtrack_corr", "trackers", "mmtrack_demo")]:
        del sys.modules[loaded]
    try:
        import_module(name)
    except Exception as exc:
        failed[name] = repr(exc)
print(failed)
"""


def test_every_module_imports_first() -> None:
    # every module must import as the first of the project's modules in a process, whatever the test run imported
    # before (a module that re-exported a later one at its bottom once made ``import mmtrack_corr.synthetic_sequence``
    # fail): one process, the project's modules dropped from sys.modules before each import (third-party ones stay)
    modules = _modules()
    assert "mmtrack_corr.synthetic_sequence" in modules and "trackers.mot_io" in modules
    out = subprocess.run([sys.executable, "-c", _FIRST_IMPORTS, *modules], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "{}", out.stdout
