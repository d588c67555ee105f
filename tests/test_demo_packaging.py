"""The demo installs as ``mmtrack_demo`` (never a top-level ``demo``) and the package list covers the source tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

ROOT = Path(__file__).resolve().parent.parent


def _setuptools() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]  # type: ignore[no-any-return]


def test_package_list_covers_every_package_folder() -> None:
    cfg = _setuptools()
    mapping: dict[str, str] = cfg.get("package-dir", {})  # type: ignore[assignment]
    assert mapping.get("mmtrack_demo") == "demo"
    listed = set(cfg["packages"])  # type: ignore[call-overload]
    assert "demo" not in listed and "mmtrack_demo" in listed
    folder_of = {name: mapping.get(name, name.replace(".", "/")) for name in listed}
    for name, folder in folder_of.items():
        assert (ROOT / folder / "__init__.py").is_file(), f"{name}: {folder}/__init__.py missing"
    # every folder with an __init__.py under a listed top-level package must be listed too
    for top, folder in [(n, f) for n, f in folder_of.items() if "." not in n]:
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if "__pycache__" in rel.parts:
                continue
            name = ".".join([top, *rel.parts]) if rel.parts else top
            assert name in listed, f"{init.parent}: package {name} is not in [tool.setuptools] packages"


def test_installed_import_name() -> None:
    import mmtrack_demo
    from mmtrack_demo.cli import main

    assert Path(mmtrack_demo.__file__).parent.name == "demo"  # the source folder, imported under its install name
    assert callable(main)


@pytest.mark.slow
def test_wheel_has_mmtrack_demo_and_no_demo(tmp_path: Path) -> None:
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("mmtrack_corr", "trackers", "spatial_correlation_sampler", "demo", "weights"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp_path),
        str(src),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("mmtrack_corr-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert "mmtrack_demo" in tops and "demo" not in tops
    assert {"mmtrack_demo/cli.py", "mmtrack_demo/pipeline.py", "mmtrack_demo/__init__.py"} <= set(names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mmtrack-demo = mmtrack_demo.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
