"""transferlab.core is the headless engine: no module in it may import Qt, directly or through what it imports."""

from __future__ import annotations

import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import transferlab.core

QT_PACKAGES = ("PySide6", "PyQt5", "PyQt6", "qtpy", "shiboken6")
CORE_DIR = Path(transferlab.core.__file__).parent


def test_no_core_source_imports_qt():
    pattern = re.compile(rf"^\s*(from|import)\s+({'|'.join(QT_PACKAGES)})\b", re.MULTILINE)
    offenders = [str(p) for p in CORE_DIR.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


@pytest.mark.slow
def test_importing_every_core_module_loads_no_qt():
    modules = sorted(m.name for m in pkgutil.walk_packages([str(CORE_DIR)], prefix="transferlab.core."))
    assert "transferlab.core.training.loop" in modules and "transferlab.core.cli" in modules
    script = (f"import importlib, json, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
              f"print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] in {QT_PACKAGES!r})))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
