"""The architecture is enforced, not promised: import-linter's contracts in pyproject.toml (the engine never
imports Qt or the GUI, the engine's layers only import downwards, no import cycles) hold, and `pip install`
puts exactly one import package, `transferlab`, on the path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _package_tree(tmp_path: Path) -> Path:
    """import-linter walks the package's folder; the installed package maps repository folders into it, so
    build the same tree from links."""
    package = tmp_path / "transferlab"
    package.mkdir()
    for name in ("__init__.py", "__main__.py"):
        (package / name).symlink_to(ROOT / "src" / "transferlab" / name)
    (package / "core").symlink_to(ROOT / "core", target_is_directory=True)
    (package / "gui").symlink_to(ROOT / "gui", target_is_directory=True)
    return tmp_path


def test_import_contracts_hold(tmp_path: Path) -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter is a test dependency (pip install -e '.[test]')"
    env = {**os.environ, "PYTHONPATH": str(_package_tree(tmp_path))}
    done = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.mark.slow
def test_the_wheel_holds_only_the_transferlab_package(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("transferlab-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist()}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"transferlab"}
    assert {"transferlab/core/training/loop.py", "transferlab/gui/app.py", "transferlab/__main__.py"} <= set(
        zipfile.ZipFile(wheel).namelist())
