"""A quiet, crash-free command line: what the CLI (and the launcher) set up before any work is done.

- `quiet_tensorflow()`: TensorFlow's C++ start-up lines (absl's "All log messages before absl::InitializeLog()",
  oneDNN, "Could not find cuda drivers", cpu_feature_guard, `E0000 ... cuInit`) are silenced. Most are written
  while `import tensorflow` loads its libraries, before TF_CPP_MIN_LOG_LEVEL is read, so the variable alone is
  not enough: the first import of TensorFlow runs with file descriptor 2 sent to a temporary file, and whatever
  it wrote that is not such a start-up line is written back to stderr afterwards. TF_ENABLE_ONEDNN_OPTS is left
  alone (it changes numerics, not logging). Nothing is changed with `-v`.
- `LibraryWarnings`: Python warnings from libraries (e.g. Pillow's "Corrupt EXIF data") go to the log instead of
  stderr; the CLI prints one short note with their count.
- `printable(text)`: names as a terminal can always show them on one line: undecodable bytes in file names
  (surrogate escapes) as \\xNN, control characters (newline, tab, escape) as \\n, \\t, \\x1b.
- `safe_streams()`: stdout and stderr never raise UnicodeEncodeError (backslash escapes instead).
- `silence_broken_pipe()`: the reader of stdout went away (`transferlab runs list | head -1`): Python's
  documented recipe, so the interpreter does not print a traceback while flushing at exit.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any, TextIO

logger = logging.getLogger(__name__)

QUIET_LOG_LEVEL = "3"  # TensorFlow C++ logs: errors hidden too (the cuInit "error" on every CPU-only machine)
# absl-format lines ("I0000 00:00:1795541463.916473    3712 port.cc:153] ...") and absl's preamble
_ABSL_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:[\d.]+\s+\d+ [\w./-]+:\d+\] ")
_START_UP_NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "To enable the following instructions:",  # the second line of cpu_feature_guard's message
    "INFO: Created TensorFlow Lite XNNPACK delegate",  # the TFLite interpreter's own logging, on every load
)


def quiet_tensorflow(verbose: bool = False) -> None:
    """Silence TensorFlow's start-up lines for this process (see the module docstring); a no-op when verbose,
    when TensorFlow is already imported, or when already set up."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LOG_LEVEL)
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietImportFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietImportFinder())


def is_start_up_noise(line: str) -> bool:
    """True for TensorFlow's C++ log lines, absl's preamble and the TFLite interpreter's greeting."""
    return bool(_ABSL_LINE.match(line)) or line.startswith(_START_UP_NOISE)


def native_noise_filtered() -> contextlib.AbstractContextManager[None]:
    """For a block that loads native code which greets on stderr (the TFLite interpreter): its start-up lines
    go to the debug log, everything else still reaches stderr."""
    return _stderr_filtered()


class _QuietImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: on the first `import tensorflow` it wraps the real loader so the package's
    execution runs with stderr captured (see the module docstring), then steps aside."""

    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> Any:
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # the real finders, now that this one stepped aside
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            with _stderr_filtered():
                original(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


@contextlib.contextmanager
def _stderr_filtered() -> Iterator[None]:
    """Run the block with file descriptor 2 captured; afterwards write back every line that is not start-up
    noise (the capture is process-wide: other threads' lines are delayed, not lost)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to keep quiet
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines() if line.strip() and not is_start_up_noise(line)]
            for line in text.splitlines():
                if is_start_up_noise(line):
                    logger.debug("native start-up log: %s", line)
            if kept:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.write("\n".join(kept) + "\n")
                    sys.stderr.flush()


class LibraryWarnings:
    """While active, Python warnings are logged (logger "py.warnings", level INFO) instead of printed; `count`
    and `first` describe them for a one-line note."""

    def __init__(self) -> None:
        self.count = 0
        self.first = ""
        self._previous: Any = None
        self._filters = warnings.catch_warnings()

    def __enter__(self) -> LibraryWarnings:
        self._filters.__enter__()
        # A library's warning is a note, never an exception (whatever -W or a test runner says); what Python
        # hides by default (deprecations and the like, which are for developers) stays hidden.
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        self._previous = warnings.showwarning
        warnings.showwarning = self._show
        return self

    def __exit__(self, *exc: object) -> None:
        warnings.showwarning = self._previous
        self._filters.__exit__(None, None, None)

    def _show(self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
              file: TextIO | None = None, line: str | None = None) -> None:
        text = printable(" ".join(str(message).split()))
        self.count += 1
        self.first = self.first or f"{category.__name__}: {text[:120]}"
        logging.getLogger("py.warnings").info("%s: %s (%s:%d)", category.__name__, text, filename, lineno)

    def note(self) -> str:
        """'' or one line, e.g. "note: 2 library warnings hidden (first: UserWarning: Corrupt EXIF data...)"."""
        if not self.count:
            return ""
        plural = "s" if self.count > 1 else ""
        return f"note: {self.count} library warning{plural} hidden (first: {self.first}); -v shows them"


def printable(text: Any) -> str:
    """`text` on one line, showable by any terminal: undecodable file-name bytes as \\xNN, control characters
    as \\n, \\t, \\r or \\xNN, other unpaired surrogates as \\uNNNN. Everything else is kept as it is."""
    line = str(text)
    if line.isprintable():
        return line
    return "".join(_escape(c) if not c.isprintable() else c for c in line)


_NAMED_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape of an undecodable byte
        return f"\\x{code - 0xDC00:02x}"
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF or code in (0x2028, 0x2029) or code < 0xA0:
        return f"\\u{code:04x}"
    return char  # other non-printable characters (e.g. format characters in names) are shown as they are


def safe_streams() -> None:
    """stdout/stderr with errors="strict" (a UTF-8 terminal) switch to backslash escapes: a name that slipped
    past printable() can never end a command with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            with contextlib.suppress(ValueError, OSError, AttributeError):
                stream.reconfigure(errors="backslashreplace")


def silence_broken_pipe() -> None:
    """After a BrokenPipeError on stdout: point stdout at /dev/null so the interpreter's final flush cannot
    fail again (the recipe in Python's signal module documentation)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
