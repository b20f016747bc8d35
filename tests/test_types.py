"""mypy, configured in pyproject.toml ([tool.mypy]: strict on the engine, lighter on the GUI), finds no errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


CACHE = ROOT / ".mypy_cache"


def _package_view(folder: Path) -> Path:
    """The `transferlab` package as it is installed (src/transferlab + core/ + gui/), made of links to the
    repository's folders, so mypy checks these files under their installed module names. It stays in mypy's
    cache folder, so later runs reuse the cache."""
    package = folder / "transferlab"
    package.mkdir(parents=True, exist_ok=True)
    links = {"__init__.py": ROOT / "src" / "transferlab" / "__init__.py",
             "__main__.py": ROOT / "src" / "transferlab" / "__main__.py", "core": ROOT / "core", "gui": ROOT / "gui"}
    for name, target in links.items():
        link = package / name
        if not (link.is_symlink() and link.resolve() == target.resolve()):
            link.unlink(missing_ok=True)
            link.symlink_to(target, target_is_directory=target.is_dir())
    return folder


@pytest.mark.slow  # ~70 s with a cold cache on a 2-core CPU (the PySide6 stubs are large); ~5 s when warm
def test_mypy_finds_no_errors() -> None:
    pytest.importorskip("mypy")
    view = _package_view(CACHE / "package-view")
    env = {**os.environ, "MYPYPATH": str(view)}
    done = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                           "--cache-dir", str(CACHE), "-p", "transferlab.core", "-p", "transferlab.gui"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Success: no issues found" in done.stdout
