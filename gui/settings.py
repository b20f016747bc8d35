"""What the app remembers between starts (QSettings, INI format): window geometry, splitter positions,
the data source and recent folders. Tests point QSettings.setPath(IniFormat, UserScope, tmp) elsewhere."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow, QSplitter

ORGANIZATION = "transferlab"
APPLICATION = "transferlab"
MAX_RECENT = 8


def open_settings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


class AppSettings:
    """Typed access to the few things the GUI remembers."""

    def __init__(self, settings: QSettings | None = None) -> None:
        self.qsettings = settings if settings is not None else open_settings()

    # ---- data source ----

    def recent_folders(self) -> list[str]:
        value = self.qsettings.value("data/recent_folders", [])
        if isinstance(value, str):  # INI files store a one-item list as a plain string
            value = [value]
        return [str(v) for v in (value if isinstance(value, list) else []) if v]

    def add_recent_folder(self, folder: str) -> list[str]:
        folders = [folder] + [f for f in self.recent_folders() if f != folder]
        self.qsettings.setValue("data/recent_folders", folders[:MAX_RECENT])
        return folders[:MAX_RECENT]

    def data_source(self) -> str:
        return str(self.qsettings.value("data/source", "mnist"))

    def set_data_source(self, source: str) -> None:
        self.qsettings.setValue("data/source", source)

    # ---- window ----

    def save_window(self, window: QMainWindow) -> None:
        self.qsettings.setValue("window/geometry", window.saveGeometry())
        self.qsettings.setValue("window/state", window.saveState())
        for splitter in window.findChildren(QSplitter):
            if splitter.objectName():
                self.qsettings.setValue(f"splitters/{splitter.objectName()}", splitter.saveState())
        self.qsettings.sync()

    def restore_window(self, window: QMainWindow) -> bool:
        geometry = self.qsettings.value("window/geometry")
        restored = isinstance(geometry, QByteArray | bytes) and window.restoreGeometry(geometry)
        state = self.qsettings.value("window/state")
        if isinstance(state, QByteArray | bytes):
            window.restoreState(state)
        for splitter in window.findChildren(QSplitter):
            value = self.qsettings.value(f"splitters/{splitter.objectName()}") if splitter.objectName() else None
            if isinstance(value, QByteArray | bytes):
                splitter.restoreState(value)
        return bool(restored)

    def value(self, key: str, default: object = None) -> object:
        return self.qsettings.value(key, default)

    def set_value(self, key: str, value: object) -> None:
        self.qsettings.setValue(key, value)

