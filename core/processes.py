"""Is the process that wrote a run (or a temp file) still that same process?

A pid alone is not enough: after a crash the pid can be reused by an unrelated process, or by the app itself
after a restart. So a run stores, with the pid, a token for the process's start: on Linux the boot id and the
start time from /proc/<pid>/stat (field 22, clock ticks since boot); on Windows the creation time. A live pid
whose start token differs is another process. Where no token can be read (e.g. macOS) only the pid is checked.
Pure standard library (no psutil).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_PROC = Path("/proc")
_HAS_PROC_STAT = (_PROC / "self" / "stat").is_file()


def start_token(pid: int) -> str | None:
    """A token that changes when the pid is given to another process; None if unknown or no such process."""
    if _HAS_PROC_STAT:
        stat = _linux_stat(pid)
        return None if stat is None else f"linux:{_boot_id()}:{stat[1]}"
    if os.name == "nt":
        return _windows_start(pid)
    return None


@functools.cache
def current_token() -> str | None:
    """This process's start token (stored with the pid when a run is created)."""
    return start_token(os.getpid())


def is_running(pid: Any, token: Any = None) -> bool:
    """True if `pid` is a live process and, when a start token was stored with it, the same process."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if _HAS_PROC_STAT:
        stat = _linux_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):  # gone, or a zombie that no longer runs anything
            return False
        return not isinstance(token, str) or token == f"linux:{_boot_id()}:{stat[1]}"
    if os.name == "nt":
        current = _windows_start(pid)
        return current is not None and (not isinstance(token, str) or token == current)
    return _posix_exists(pid)


def _linux_stat(pid: int) -> tuple[str, str] | None:
    """(state, starttime) from /proc/<pid>/stat, or None when there is no such process."""
    try:
        text = (_PROC / str(pid) / "stat").read_bytes().decode("latin-1")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces and ')'.
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], fields[19]  # field 3 (state) and field 22 (starttime)


@functools.cache
def _boot_id() -> str:
    with contextlib.suppress(OSError):
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    return "?"


def _posix_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks (never call this on Windows, where it terminates the process)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _windows_start(pid: int) -> str | None:  # pragma: no cover - exercised on Windows only
    # Called only where os.name == "nt"; the platform check also tells mypy to check this block for Windows
    # only (ctypes.WinDLL exists only there).
    if sys.platform == "win32":
        import ctypes
        from ctypes import wintypes

        query_limited_information, still_active = 0x1000, 259
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(query_limited_information, False, pid)
        if not handle:
            return "windows:?" if ctypes.get_last_error() == 5 else None  # access denied: it exists
        try:
            code = wintypes.DWORD()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value != still_active:
                return None
            times = [wintypes.FILETIME() for _ in range(4)]
            if not kernel32.GetProcessTimes(handle, *(ctypes.byref(t) for t in times)):
                return "windows:?"
            return f"windows:{(times[0].dwHighDateTime << 32) | times[0].dwLowDateTime}"
        finally:
            kernel32.CloseHandle(handle)
    return None
