"""Small widgets and image helpers shared by the panels: the inline message bar, numpy → QImage,
a clickable image mosaic and probability bars."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QMouseEvent, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

_LEVEL_STYLE = {
    "info": "background:#e8f1fb;border:1px solid #8fb3de;color:#123;",
    "success": "background:#e7f6ea;border:1px solid #7cc08b;color:#123;",
    "warning": "background:#fff6dd;border:1px solid #e0b84c;color:#321;",
    "error": "background:#fde8e8;border:1px solid #d77;color:#400;",
}


class MessageBar(QFrame):
    """A non-blocking, closable message line (errors never open a modal dialog), with an optional action
    button ("Show in folder"). It lives in a StatusArea, so showing or clearing it never moves the layout."""

    changed = Signal(bool)  # True when a message is shown, False when cleared

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.level = ""
        self._action: Callable[[], None] | None = None
        self._label = QLabel()
        self._label.setWordWrap(True)
        self._label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.action_button = QPushButton()
        self.action_button.hide()
        self.action_button.clicked.connect(self._on_action)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.clear)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 2, 4, 2)
        layout.addWidget(self._label, 1)
        layout.addWidget(self.action_button)
        layout.addWidget(close)
        self.hide()

    @property
    def text(self) -> str:
        return self._label.text()

    def show_message(self, text: str, level: str = "info", action: tuple[str, Callable[[], None]] | None = None,
                     ) -> None:
        self.level = level
        self._label.setText(text)
        self._label.setToolTip(text)
        self._action = action[1] if action else None
        self.action_button.setText(action[0] if action else "")
        self.action_button.setVisible(action is not None)
        self.setStyleSheet(f"MessageBar{{{_LEVEL_STYLE.get(level, _LEVEL_STYLE['info'])}border-radius:4px;}}")
        self.show()
        self.changed.emit(True)

    def clear(self) -> None:
        self.level = ""
        self._label.setText("")
        self._action = None
        self.hide()
        self.changed.emit(False)

    def _on_action(self) -> None:
        if self._action is not None:
            self._action()


class StatusArea(QStackedWidget):
    """A fixed-height line under the run bar: the data source, or a message over it. Its height never changes,
    so a message appearing or going never shifts the tabs (clicks land where the user aimed)."""

    LINES = 2

    def __init__(self, idle: QWidget, message_bar: MessageBar, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.idle, self.message_bar = idle, message_bar
        self.addWidget(idle)
        self.addWidget(message_bar)
        message_bar.changed.connect(lambda shown: self.setCurrentWidget(message_bar if shown else idle))
        line = self.fontMetrics().lineSpacing()
        self.setFixedHeight(self.LINES * line + 14)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)


def gray_qimage(array: np.ndarray) -> QImage:
    """A uint8 (H, W) array as a QImage (copied, so the array may go away)."""
    data = np.ascontiguousarray(np.asarray(array, dtype=np.uint8))
    height, width = data.shape
    return QImage(data.data, width, height, width, QImage.Format.Format_Grayscale8).copy()


def rgb_qimage(array: np.ndarray) -> QImage:
    """A uint8 (H, W, 3) or float array in [0, 1] / [0, 255] as a QImage (copied)."""
    data = np.asarray(array)
    if data.ndim == 2 or (data.ndim == 3 and data.shape[2] == 1):
        data = data.reshape(data.shape[:2])
        if data.dtype != np.uint8:
            data = _to_uint8(data)
        return gray_qimage(data)
    if data.dtype != np.uint8:
        data = _to_uint8(data)
    data = np.ascontiguousarray(data[..., :3])
    height, width = data.shape[:2]
    return QImage(data.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def _to_uint8(data: np.ndarray) -> np.ndarray:
    data = data.astype(np.float32)
    if data.size and float(np.nanmax(data)) <= 1.0:
        data = data * 255.0
    return np.clip(np.nan_to_num(data), 0, 255).round().astype(np.uint8)


def thumbnail(path: str | Path, size: int = 96) -> QImage:
    """A small QImage of an image file (safe on a worker thread); null if the file is not a usable image.

    Decoded by core.images, like everything the model sees: only the allowed decoders, only regular files of
    a sane size (Qt's own image plugins would open anything, a FIFO included, and wait on it forever)."""
    from PIL import Image

    from transferlab.core.data.images import open_image, to_rgb_array
    from transferlab.core.errors import TransferlabError

    try:
        image = Image.fromarray(to_rgb_array(open_image(path, min_size=1, draft_size=(size, size))), "RGB")
    except (TransferlabError, OSError, ValueError, MemoryError):
        return QImage()
    image.thumbnail((size, size), Image.Resampling.BICUBIC)
    return rgb_qimage(np.asarray(image))


def mosaic(images: np.ndarray, gap: int = 2, background: int = 40) -> np.ndarray:
    """(rows, cols, h, w[, 3]) uint8 tiles → one uint8 image with `gap` pixels between tiles."""
    rows, cols, height, width = images.shape[:4]
    channels = images.shape[4:] if images.ndim == 5 else ()
    out = np.full((rows * (height + gap) - gap, cols * (width + gap) - gap, *channels), background, np.uint8)
    for r in range(rows):
        for c in range(cols):
            y, x = r * (height + gap), c * (width + gap)
            out[y:y + height, x:x + width] = images[r, c]
    return out


def scaled_pixmap(image: QImage, size: int, smooth: bool = False) -> QPixmap:
    mode = Qt.TransformationMode.SmoothTransformation if smooth else Qt.TransformationMode.FastTransformation
    return QPixmap.fromImage(image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, mode))


class GridImage(QLabel):
    """Shows a mosaic of rows × cols tiles; a click reports the tile as cellClicked(row, col)."""

    cellClicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows = self.cols = 0
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self._image = QImage()

    def set_grid(self, image: QImage, rows: int, cols: int) -> None:
        self._image, self.rows, self.cols = image, rows, cols
        self._rescale()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._image.isNull():
            self.clear()
            return
        target = self.size()
        scaled = self._image.scaled(target, Qt.AspectRatioMode.KeepAspectRatio,
                                    Qt.TransformationMode.FastTransformation)
        self.setPixmap(QPixmap.fromImage(scaled))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        pixmap = self.pixmap()
        if pixmap is None or pixmap.isNull() or not self.rows:
            return
        x, y = event.position().x(), event.position().y()
        if 0 <= x < pixmap.width() and 0 <= y < pixmap.height():
            self.cellClicked.emit(int(y * self.rows / pixmap.height()), int(x * self.cols / pixmap.width()))


class ProbabilityBars(QWidget):
    """Top classes as horizontal bars with the probability written on them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self.bars: list[QProgressBar] = []

    def set_top(self, top: Sequence[tuple[str, float]]) -> None:
        for bar in self.bars:
            bar.deleteLater()
        self.bars = []
        for index, (label, probability) in enumerate(top):
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(round(1000 * float(probability)))
            bar.setFormat(f"{label}  —  {100 * float(probability):.1f} %")
            bar.setTextVisible(True)
            bar.setMaximumHeight(20)
            bar.setMaximumWidth(520)
            bar.setStyleSheet("QProgressBar{border:1px solid #bbb;border-radius:3px;text-align:left;"
                              "padding-left:8px;background:#fafafa;}"
                              f"QProgressBar::chunk{{background:{'#4a90d9' if index == 0 else '#a9c7ea'};}}")
            self._layout.addWidget(bar)
            self.bars.append(bar)


_OWN_ERRORS = re.compile(r"\b(?:TransferlabError|DataError|ImageError|ModelError|RunStoreError|ConfigError): ")
_URL_ERROR = re.compile(r"<urlopen error (?:\[Errno -?\d+\] )?([^>]*)>")


def friendly_error(text: str) -> str:
    """An error as a user reads it: without the project's own exception class names ("ModelError: ") and
    with Python's raw "<urlopen error …>" turned into words."""
    text = _OWN_ERRORS.sub("", text)
    return _URL_ERROR.sub(lambda m: f"could not download it ({m.group(1).strip() or 'no network'})", text)


def html_text(value: Any) -> str:
    """Plain text made safe inside a rich-text label (file names may contain <, > and &)."""
    return html.escape(str(value), quote=False)


def line_edit(combo: QComboBox) -> QLineEdit:
    """The line edit of an editable combo box."""
    edit = combo.lineEdit()
    if edit is None:
        raise ValueError("expected an editable QComboBox, got one without a line edit")
    return edit
