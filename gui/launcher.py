"""The `transferlab` command: the GUI without arguments, the headless CLI (core.cli) with them.

No Qt import at module level, so `transferlab train ...` never loads Qt. Nothing here imports TensorFlow:
the CLI silences its start-up logs before its first import (unless -v), and so does the GUI path.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        from transferlab.core.cli import main as cli_main

        return int(cli_main(args) or 0)
    from transferlab.core.console import quiet_tensorflow

    quiet_tensorflow()  # the app imports TensorFlow on a worker thread later; its start-up lines stay hidden
    from transferlab.gui.app import main as gui_main

    return gui_main()


if __name__ == "__main__":
    sys.exit(main())
