"""The `transferlab` command: the GUI without arguments, the headless CLI (core.cli) with them.

No Qt import at module level, so `transferlab train ...` never loads Qt.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        from transferlab.core.cli import main as cli_main

        return int(cli_main(args) or 0)
    from transferlab.gui.app import main as gui_main

    return gui_main()


if __name__ == "__main__":
    sys.exit(main())
