"""Start the desktop app: QApplication, the main window, the event loop."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from PySide6.QtWidgets import QApplication

    from transferlab.gui.main_window import MainWindow
    from transferlab.gui.settings import APPLICATION, ORGANIZATION
    from transferlab.gui.worker import wait_for_tasks

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(list(argv) if argv is not None
                                                                          else sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("Transferlab")
    app.aboutToQuit.connect(wait_for_tasks)
    window = MainWindow()
    window.show()
    return int(app.exec())
