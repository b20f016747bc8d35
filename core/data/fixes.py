"""Fixes on a folder data set, safely: move an image to another class folder, exclude it, undo.

    record_check(root, {"cat/1.jpg": "<content hash>", ...})   # what the data check saw
    move_file(root, "cat/1.jpg", "dog")     # → dog/1.jpg (never over an existing file: "1 (2).jpg")
    exclude_file(root, "cat/2.jpg")         # → _excluded/cat/2.jpg (never deleted; scans ignore _excluded/)
    undo_last(root)                         # puts the last moved/excluded file back where it was

Rules: nothing outside `root` is touched (paths with "..", absolute paths and links are refused); a file whose
content changed since the check (its hash differs from the one recorded by record_check) is refused; every
change is appended to the journal `root/.transferlab-journal.json` (written atomically) before the next one,
and undo checks the file is still the one that was moved. Errors are DataError with one line.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from pathlib import Path, PurePosixPath
from typing import Any

from transferlab.core.atomic import write_json_atomic
from transferlab.core.data.folders import EXCLUDED_DIR, content_hash
from transferlab.core.errors import DataError, TransferlabError

logger = logging.getLogger(__name__)

JOURNAL_NAME = ".transferlab-journal.json"
JOURNAL_FORMAT = 1


def journal_path(root: str | os.PathLike[str]) -> Path:
    return Path(root) / JOURNAL_NAME


def read_journal(root: str | os.PathLike[str]) -> dict[str, Any]:
    """{"format", "checked": {path: hash}, "changes": [...]}; an absent journal is an empty one."""
    path = journal_path(root)
    if not path.exists():
        return {"format": JOURNAL_FORMAT, "checked": {}, "changes": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("changes"), list):
            raise ValueError("not a journal object")
    except (OSError, ValueError) as exc:
        raise DataError(f"expected a readable journal at {path}, got {type(exc).__name__}: {exc}") from exc
    data.setdefault("checked", {})
    return data


def _write_journal(root: Path, journal: dict[str, Any]) -> None:
    try:
        write_json_atomic(journal_path(root), journal)
    except TransferlabError as exc:
        raise DataError(f"expected to write the journal in {root}, got: {exc}") from exc


def record_check(root: str | os.PathLike[str], hashes: dict[str, str]) -> None:
    """Remember the content hash of every file the check saw (fixes refuse files changed since)."""
    root = _root(root)
    journal = read_journal(root)
    journal["checked"] = dict(hashes)
    _write_journal(root, journal)


def move_file(root: str | os.PathLike[str], file: str, class_name: str) -> dict[str, Any]:
    """Move root/file into the existing class folder root/class_name; returns the journal entry."""
    root = _root(root)
    source = _inside(root, file, "FILE")
    target_class = _inside(root, class_name, "CLASS")
    if len(PurePosixPath(class_name).parts) != 1 or class_name.startswith(".") or class_name == EXCLUDED_DIR:
        raise DataError(f"expected a class folder name of {root}, got {class_name!r}")
    if not target_class.is_dir():
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                         and p.name != EXCLUDED_DIR)
        raise DataError(f"expected one of the class folders {', '.join(classes)}, got {class_name!r}")
    if _class_of(root, source) == class_name:
        raise DataError(f"expected a class other than {class_name!r} for {file}, got the class it is already in")
    return _apply(root, source, _free_name(target_class / source.name), "move")


def exclude_file(root: str | os.PathLike[str], file: str) -> dict[str, Any]:
    """Move root/file to root/_excluded/file (keeping its class folder in the path); returns the entry."""
    root = _root(root)
    source = _inside(root, file, "FILE")
    relative = source.relative_to(root)
    if relative.parts[0] == EXCLUDED_DIR:
        raise DataError(f"expected a file outside {EXCLUDED_DIR}/, got {file} (already excluded)")
    return _apply(root, source, _free_name(root / EXCLUDED_DIR / relative), "exclude")


def undo_last(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Put back the file of the last change in the journal; returns the change undone."""
    root = _root(root)
    journal = read_journal(root)
    if not journal["changes"]:
        raise DataError(f"expected a change to undo in {root}, got an empty journal")
    change: dict[str, Any] = journal["changes"][-1]
    moved = _inside(root, change["to"], "journal entry")
    back = _inside(root, change["from"], "journal entry")
    if not moved.is_file():
        raise DataError(f"expected {change['to']} to undo the {change['action']}, got no such file")
    if content_hash(moved) != change["hash"]:
        raise DataError(f"expected {change['to']} unchanged since it was moved, got different content; not undone")
    if back.exists():
        raise DataError(f"expected {change['from']} to be free to put the file back, got an existing file")
    back.parent.mkdir(parents=True, exist_ok=True)
    _move_no_overwrite(moved, back)
    _remove_empty_parents(moved.parent, root / EXCLUDED_DIR)
    journal["changes"].pop()
    if change["from"] not in journal["checked"] and change["to"] in journal["checked"]:
        journal["checked"][change["from"]] = journal["checked"].pop(change["to"])
    _write_journal(root, journal)
    logger.info("undid %s of %s", change["action"], change["from"])
    return change


def _apply(root: Path, source: Path, target: Path, action: str) -> dict[str, Any]:
    relative = source.relative_to(root).as_posix()
    journal = read_journal(root)
    checked = journal["checked"].get(relative)
    if checked is None:
        raise DataError(f"expected {relative} to be seen by a data check first (transferlab doctor {root}), "
                        "got a file the check did not see")
    current = content_hash(source)
    if current != checked:
        raise DataError(f"expected {relative} unchanged since the check, got a file changed on disk; "
                        "check the data again")
    target.parent.mkdir(parents=True, exist_ok=True)
    entry = {"action": action, "from": relative, "to": target.relative_to(root).as_posix(), "hash": current,
             "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    _move_no_overwrite(source, target)
    journal["changes"].append(entry)
    journal["checked"][entry["to"]] = journal["checked"].pop(relative)
    try:
        _write_journal(root, journal)
    except DataError:
        _move_no_overwrite(target, source)  # no unjournaled change stays on disk
        raise
    logger.info("%s %s -> %s", action, entry["from"], entry["to"])
    return entry


def _root(root: str | os.PathLike[str]) -> Path:
    path = Path(root)
    if not path.is_dir():
        raise DataError(f"expected a data set folder, got {path} ({'a file' if path.exists() else 'no such folder'})")
    return path.resolve()


def _inside(root: Path, relative: str, what: str) -> Path:
    """root/relative, refusing anything that could reach outside root (absolute, "..", links)."""
    text = str(relative).replace(os.sep, "/")
    parts = PurePosixPath(text).parts
    if not text or text.startswith("/") or os.path.isabs(relative) or ".." in parts or not parts:
        raise DataError(f"{what}: expected a path relative to {root} without '..', got {relative!r}")
    path = root.joinpath(*parts)
    probe = root
    for part in parts:
        probe = probe / part
        if probe.is_symlink():
            raise DataError(f"{what}: expected a plain file or folder inside {root}, got a link: {relative}")
    if what == "FILE" and not path.is_file():
        found = "a folder" if path.exists() else "no such file"
        raise DataError(f"{what}: expected an image file inside {root}, got {found}: {relative}")
    return path


def _class_of(root: Path, path: Path) -> str:
    return path.relative_to(root).parts[0]


def _free_name(target: Path) -> Path:
    """target, or "name (2).ext", "name (3).ext"... whichever does not exist yet."""
    candidate, n = target, 2
    while candidate.exists() or candidate.is_symlink():
        candidate = target.with_name(f"{target.stem} ({n}){target.suffix}")
        n += 1
    return candidate


def _move_no_overwrite(source: Path, target: Path) -> None:
    """Move within one folder tree; fails rather than replace an existing target."""
    try:
        os.link(source, target)  # fails if target exists
    except FileExistsError as exc:
        raise DataError(f"expected {target.name} to be free, got an existing file; nothing moved") from exc
    except OSError:  # no hard links here (some file systems): check, then rename
        if target.exists():
            raise DataError(f"expected {target.name} to be free, got an existing file; nothing moved") from None
        os.rename(source, target)
        return
    os.unlink(source)


def _remove_empty_parents(folder: Path, stop_at: Path) -> None:
    """Remove the empty folders the app created under _excluded/ (never the class folders)."""
    if stop_at not in (folder, *folder.parents):
        return
    while folder != stop_at.parent and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        if folder == stop_at:
            break
        folder = folder.parent
