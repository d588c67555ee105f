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
