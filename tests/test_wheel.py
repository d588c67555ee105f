"""The built wheel, installed into a fresh virtual environment and used from another directory, carries the shipped
motion weights, which load and pass their sha256 check (and a tampered copy is refused).

About 15 s (a wheel build and a venv), so it runs in the default test run. The fresh venv gets the wheel with
``--no-deps``; its dependencies (torch, numpy, OpenCV...) come from the running interpreter's site-packages, appended
to ``sys.path`` by a ``.pth`` line *after* the venv's own site-packages - a ``.pth`` line does not run that folder's
own ``.pth`` files, so this checkout's editable install stays invisible, and no PYTHONPATH is set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from mmtrack_corr.motion_model import shipped_weights

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _source_copy(dest: Path) -> Path:
    """Tracked and untracked-but-not-ignored files (what a clean clone plus the change holds), so that building
    writes nothing into the checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=False
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot list the source files to build")
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


_CHECK = textwrap.dedent(
    """
    import json, sys
    import mmtrack_corr, trackers
    from mmtrack_corr.estimator import MotionEstimator
    from mmtrack_corr.motion_model import SHIPPED_WEIGHTS, WeightsIntegrityError, load_motion_model, shipped_weights

    path = shipped_weights("default")
    est = MotionEstimator.from_pretrained("default")
    result = {"package": mmtrack_corr.__file__, "trackers": trackers.__file__, "weights": str(path),
              "heads": sorted(est.model.heads), "sha256": SHIPPED_WEIGHTS["default"][1]}
    if sys.argv[1:] == ["tamper"]:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            load_motion_model("default")
        except WeightsIntegrityError as exc:
            result["refused"] = str(exc)
    print(json.dumps(result))
    """
)


def test_wheel_ships_loadable_weights(tmp_path: Path) -> None:
    try:
        shipped_weights("default")
    except (ValueError, FileNotFoundError) as exc:
        pytest.skip(f"no shipped default weights in this checkout yet ({exc})")
    src = _source_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    # the running interpreter's setuptools when it has one (offline); else pip's isolated build environment
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(dist), "."], src)
    wheels = list(dist.glob("mmtrack_corr-*.whl"))
    assert len(wheels) == 1, wheels

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheels[0])], tmp_path)
    site = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).stdout.strip()
    )
    (site / "zz_outer_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = json.loads(_run([str(python), "-c", _CHECK], elsewhere, env).stdout.strip().splitlines()[-1])
    for key in ("package", "trackers", "weights"):
        assert Path(result[key]).resolve().is_relative_to(venv.resolve()), (key, result[key])
    assert result["heads"] == ["light", "multiscale"]
    tampered = json.loads(_run([str(python), "-c", _CHECK, "tamper"], elsewhere, env).stdout.strip().splitlines()[-1])
    assert "sha256 mismatch" in tampered.get("refused", ""), tampered
    _run([str(venv / "bin" / "mmtrack-eval"), "--help"], elsewhere, env)
