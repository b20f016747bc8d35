"""A thread-safe stop flag: the GUI (or Ctrl-C in the CLI) sets it, training checks it every batch."""

from __future__ import annotations

import threading


class StopFlag:
    """Set from any thread; checked by the training loop after every batch."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reason = ""
        self._skip_evaluation = False

    def request(self, reason: str = "stopped by user", evaluate: bool = True) -> None:
        """Stop at the next check. `evaluate=False` (the app is closing): keep the finished epochs and the model
        but skip the evaluation on the test set, which can take seconds; it sticks until `clear()`."""
        self._reason = reason
        self._skip_evaluation = self._skip_evaluation or not evaluate
        self._event.set()

    @property
    def skip_evaluation(self) -> bool:
        return self._event.is_set() and self._skip_evaluation

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
        self._skip_evaluation = False
