"""A thread-safe stop flag: the GUI (or Ctrl-C in the CLI) sets it, training checks it every batch."""

from __future__ import annotations

import threading


class StopFlag:
    """Set from any thread; checked by the training loop after every batch."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reason = ""

    def request(self, reason: str = "stopped by user") -> None:
        self._reason = reason
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str:
        return self._reason

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested (or the timeout passes); True when it was requested."""
        return self._event.wait(timeout)

    def clear(self) -> None:
        self._event.clear()
        self._reason = ""
