"""labels.txt beside an exported model: the class names, one a line, in the model's output order."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from transferlab.core.atomic import write_text_atomic

logger = logging.getLogger(__name__)

LABELS_NAME = "labels.txt"


def labels_text(class_names: Sequence[str]) -> str:
    return "".join(f"{name}\n" for name in class_names)


def write_labels(export_path: str | os.PathLike[str], class_names: Sequence[str]) -> Path:
    """Write labels.txt in the folder of `export_path` (inside it for a SavedModel folder). A labels.txt that
    is already there with other content is not overwritten: `<export name>.labels.txt` is written instead."""
    target = Path(export_path)
    folder = target if target.is_dir() else target.parent
    text = labels_text(class_names)
    path = folder / LABELS_NAME
    if path.exists() and not _holds(path, text):
        path = folder / f"{target.name}.labels.txt"
    write_text_atomic(path, text)
    logger.info("wrote %d class names to %s", len(class_names), path)
    return path


def _holds(path: Path, text: str) -> bool:
    try:
        return path.is_file() and path.stat().st_size < 1_000_000 and path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False
