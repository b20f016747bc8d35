"""`python -m transferlab [ARGS]`: the same as the `transferlab` command."""

import sys

from transferlab.gui.launcher import main

if __name__ == "__main__":
    sys.exit(main())
