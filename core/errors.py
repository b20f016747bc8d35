"""Errors the engine raises for bad input. Each message is one line: what was expected, what was received."""

from __future__ import annotations


class TransferlabError(Exception):
    """Base class: a problem the user can fix; its message is shown as is (one line)."""


class DataError(TransferlabError):
    """A data set could not be loaded or does not look like what it should be."""


class ImageError(TransferlabError):
    """One image file could not be used (empty, truncated, not an image, too small, too large)."""


class ModelError(TransferlabError):
    """A model, backbone or weights file could not be built or loaded."""


class RunStoreError(TransferlabError):
    """A run could not be found, read or written."""


class ConfigError(TransferlabError):
    """A configuration value is out of range or inconsistent."""


class WriteFailed(TransferlabError):
    """Writing an output failed part way (a full disk, an I/O error), not because the input was bad: the CLI
    exits with 1, not 2. Whatever was there before is unchanged and nothing half-written is left."""


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's message reduced to its first line (optionally cut to `limit` characters), for one-line
    reasons; the exception's type name when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
