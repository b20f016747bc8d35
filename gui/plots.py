"""Embedded matplotlib plots. Artists are created once and their data updated; redraws are throttled by a
QTimer (at most ~10 a second), never one per event.

The canvases are FigureCanvasQTAgg on plain Figures: pyplot's global backend is never needed (and may already
be set by a library that imported pyplot headless, e.g. keras.visualization)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QSizePolicy, QWidget

REDRAW_INTERVAL_MS = 100
TRAINING_EMPTY = "Press Train: loss and accuracy appear here while the model learns."
TRAINING_STARTING = "Starting: loading TensorFlow and the data. The curves appear after the first batches."
CONFUSION_EMPTY = ("The confusion matrix of a run appears here.\nTrain a model, or pick a run in\n"
                   "Runs & compare and press Show results.")
COMPARE_EMPTY = "Select two or more runs above (Ctrl/Shift-click) to overlay their curves here."
TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#d62728"
ZOOM_EPOCHS = 5  # "Zoom to the last epochs" shows this many (and never the first epoch of a longer run)
RUN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


class Canvas(FigureCanvasQTAgg):
    """A figure in a widget, with a throttled `request_redraw()`."""

    def __init__(self, parent: QWidget | None = None, width: float = 5, height: float = 3, dpi: int = 90) -> None:
        self.figure = Figure(figsize=(width, height), dpi=dpi)
        super().__init__(self.figure)
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 150)
        self.redraws = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self._redraw)
        self._dirty = False

    def request_redraw(self) -> None:
        self._dirty = True
        if not self._timer.isActive():
            self._timer.start()

    def redraw_now(self) -> None:
        self._dirty = True
        self._redraw()

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.before_draw()
        self.redraws += 1
        self.draw_idle()

    def before_draw(self) -> None:
        """Rescale axes etc. just before a redraw (cheaper than after every update)."""

    def _make_placeholder(self) -> Any:
        return self.figure.text(0.5, 0.5, "", ha="center", va="center", fontsize=11, color="#666", wrap=True)

    def show_placeholder(self, text: str) -> None:
        """An empty plot says what will appear there and how to get it, instead of showing blank axes."""
        self.placeholder.set_text(text)
        self.placeholder.set_visible(bool(text))
        for ax in self.figure.axes:
            ax.set_visible(not text)

    @property
    def placeholder_text(self) -> str:
        return str(self.placeholder.get_text()) if self.placeholder.get_visible() else ""


class TrainingCurves(Canvas):
    """Loss and accuracy for training and validation: one marker per epoch, plus the within-epoch trace.

    The curves are animated artists blitted over a cached background, so a live update costs a few
    milliseconds; a full redraw happens only when an axis range must grow (and when a run ends)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, width=7, height=3.2)
        self.ax_loss, self.ax_acc = self.figure.subplots(1, 2)
        self.figure.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.88, wspace=0.25)
        style = dict(marker="o", markersize=4, linewidth=1.6, animated=True)
        self.loss_line, = self.ax_loss.plot([], [], color=TRAIN_COLOR, label="training", **style)
        self.val_loss_line, = self.ax_loss.plot([], [], color=VAL_COLOR, label="validation", **style)
        self.acc_line, = self.ax_acc.plot([], [], color=TRAIN_COLOR, label="training", **style)
        self.val_acc_line, = self.ax_acc.plot([], [], color=VAL_COLOR, label="validation", **style)
        self.batch_loss_line, = self.ax_loss.plot([], [], color=TRAIN_COLOR, alpha=0.35, linewidth=1,
                                                  label="training (recent batches)", animated=True)
        self.batch_acc_line, = self.ax_acc.plot([], [], color=TRAIN_COLOR, alpha=0.35, linewidth=1, animated=True)
        for ax, title in ((self.ax_loss, "Loss"), (self.ax_acc, "Accuracy")):
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("epoch", fontsize=9)
            ax.tick_params(labelsize=8)
            ax.grid(True, alpha=0.3)
        for ax in (self.ax_loss, self.ax_acc):
            ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True, min_n_ticks=1))  # whole epochs
            ax.yaxis.set_major_locator(MaxNLocator(nbins=5))  # each tick label costs ~2 ms of every full redraw
        self.ax_loss.legend(fontsize=8, loc="upper right")
        # "starting…" over the empty axes until the first batch: an animated artist, so that the first batch
        # is a cheap blit, not a full redraw (the axes are drawn once, at the click, before fitting competes)
        self.starting_text = self.ax_acc.text(0.5, 0.5, "", transform=self.ax_acc.transAxes, ha="center",
                                              va="center", fontsize=9, color="#666", animated=True)
        self.placeholder = self._make_placeholder()
        self.log_loss = False
        self.zoom_last = False
        self.full_draws = 0
        self._background: Any = None
        self._needs_full = True
        self.mpl_connect("draw_event", self._on_draw_event)
        self.mpl_connect("motion_notify_event", self._on_hover)
        self.reset(message=TRAINING_EMPTY)

    def begin(self, epochs: int) -> None:
        """A run starts: empty axes for `epochs` epochs with a "starting" note, drawn fully now, before the worker
        competes for the CPU (call it once the canvas is shown at its final size). That is the run's one full
        redraw until it ends: the first batch is a blit."""
        self.reset(epochs)
        self.starting_text.set_text(TRAINING_STARTING.replace(". ", ".\n"))  # no wrap=True: its layout is slow
        self.draw_now()
        self._draw_pending = False  # a redraw queued by the tab switch's resize would only repeat this one

    @property
    def starting(self) -> bool:
        return bool(self.starting_text.get_text())

    def reset(self, epochs: int = 1, message: str = "") -> None:
        self.starting_text.set_text("")
        self.epochs_planned = max(1, epochs)
        self.epochs: list[dict[str, float]] = []
        self._batch_x: list[float] = []
        self._batch_loss: list[float] = []
        self._batch_acc: list[float] = []
        self._ema: tuple[float, float] | None = None
        self._last_report: tuple[int, int, float, float] | None = None
        self._trace_epoch = 0
        for line in self._lines():
            line.set_data([], [])
        self.ax_loss.set_xlim(0, self.epochs_planned + 0.2)
        self.ax_acc.set_xlim(0, self.epochs_planned + 0.2)
        self._set_loss_limits(0.0, 3.0)  # ln(10) = 2.3: most runs start below, so the axis rarely grows
        self.ax_acc.set_ylim(0, 1.01)
        self.show_placeholder(message)
        self._needs_full = True
        self.request_redraw()

    def _show_axes(self) -> None:
        """The first data of a run: the axes replace the empty-state sentence and the "starting" note."""
        self.starting_text.set_text("")
        if self.placeholder_text:
            self.show_placeholder("")
            self._needs_full = True

    def set_log_loss(self, log: bool) -> None:
        """Loss on a log scale: the last epochs' small differences stay visible next to the first batches."""
        self.log_loss = log
        self.ax_loss.set_yscale("log" if log else "linear")
        self.fit_view()

    def set_zoom_last(self, zoom: bool) -> None:
        """Show only the last epochs (ZOOM_EPOCHS), both axes scaled to them: the differences that matter late
        in a run are no longer squashed by the first epochs' values."""
        self.zoom_last = zoom
        self.fit_view()

    def _set_loss_limits(self, low: float, high: float) -> None:
        if self.log_loss:
            low = max(low, high * 1e-4, 1e-6)
        self.ax_loss.set_ylim(low, high if high > low else low + 1)

    def _lines(self):
        return (self.loss_line, self.val_loss_line, self.acc_line, self.val_acc_line, self.batch_loss_line,
                self.batch_acc_line)

    def add_batch(self, epoch: int, batch: int, batches: int | None, loss: float, accuracy: float) -> None:
        """Keras reports the running mean of the epoch so far, which restarts every epoch (a jump at each epoch
        boundary). The trace shows the mean of the batches since the last report instead, worked back from two
        running means, lightly smoothed: one continuous line, however few reports an epoch has."""
        x = epoch - 1 + (batch / batches if batches else 0.5)
        self._show_axes()
        recent_loss, recent_acc = loss, accuracy
        last = self._last_report
        if last is not None and last[0] == epoch and batch > last[1]:
            done, now = last[1], batch
            recent_loss = (now * loss - done * last[2]) / (now - done)
            recent_acc = (now * accuracy - done * last[3]) / (now - done)
        self._last_report = (epoch, batch, loss, accuracy)
        self._trace_epoch = epoch
        if self._ema is None or not all(map(math.isfinite, self._ema)):
            self._ema = (recent_loss, recent_acc)
        else:
            self._ema = (0.7 * self._ema[0] + 0.3 * recent_loss, 0.7 * self._ema[1] + 0.3 * recent_acc)
        self._batch_x.append(x)
        self._batch_loss.append(self._ema[0])
        self._batch_acc.append(min(1.0, max(0.0, self._ema[1])))
        self.batch_loss_line.set_data(self._batch_x, self._batch_loss)
        self.batch_acc_line.set_data(self._batch_x, self._batch_acc)
        self.request_redraw()

    def add_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self._show_axes()
        self.epochs.append({"epoch": epoch, **metrics})
        self._update_epoch_lines()
        if self.zoom_last:  # the window moves with every epoch: one full redraw per epoch, asked for
            self.fit_view()
        else:
            self.request_redraw()

    def set_history(self, history: Sequence[dict[str, Any]], epochs: int | None = None) -> None:
        self.reset(epochs or len(history), "" if history else "This run stored no finished epoch.")
        self.epochs = [dict(row) for row in history]
        self._update_epoch_lines()
        self.fit_view()

    def _update_epoch_lines(self) -> None:
        xs = [row["epoch"] for row in self.epochs]
        for line, key in ((self.loss_line, "loss"), (self.val_loss_line, "val_loss"), (self.acc_line, "accuracy"),
                          (self.val_acc_line, "val_accuracy")):
            points = [(x, row[key]) for x, row in zip(xs, self.epochs, strict=True) if _finite(row.get(key))]
            line.set_data([p[0] for p in points], [p[1] for p in points])

    def epoch_points(self, key: str = "loss") -> int:
        line = {"loss": self.loss_line, "val_loss": self.val_loss_line, "accuracy": self.acc_line,
                "val_accuracy": self.val_acc_line}[key]
        return len(line.get_xdata())

    def fit_view(self) -> None:
        """Scale both axes to the per-epoch values (a full redraw: call it when the run has ended). The first
        batches' loss, far above it, would squash the curves that matter; it is clipped (log scale shows it)."""
        rows, first = zoom_window(self.epochs, self.zoom_last)
        in_view = [v for v, x in zip(self._batch_loss, self._batch_x, strict=True)
                   if _finite(v) and (not self.zoom_last or x >= first - 0.3)]
        epoch_loss = [row[k] for row in rows for k in ("loss", "val_loss") if _finite(row.get(k))]
        values = epoch_loss or in_view
        if self.log_loss:
            values = [v for v in values + in_view if v > 0] or [1e-3, 1.0]
            self._set_loss_limits(min(values) / 1.5, max(values) * 1.5)
        elif values:
            low, high = min(values), max(values)
            pad = max(0.08 * (high - low), 0.02 * high, 1e-3)
            self._set_loss_limits(max(0.0, low - pad), high + pad)
        accs = [row[k] for row in rows for k in ("accuracy", "val_accuracy") if _finite(row.get(k))]
        accs = accs or [v for v in self._batch_acc if _finite(v)]
        if accs:
            low, high = min(accs), max(accs)
            pad = max(0.08 * (high - low), 0.005 if not self.zoom_last else 0.0005)
            self.ax_acc.set_ylim(max(0.0, low - pad), min(1.005, high + pad) if high + pad > low else 1.005)
        right = max(self.epochs_planned if not self.zoom_last else 0, len(self.epochs), self._trace_epoch)
        left = first - 0.3 if self.zoom_last and rows else 0
        for ax in (self.ax_loss, self.ax_acc):
            ax.set_xlim(left, right + 0.2)
        self._needs_full = True
        self.redraw_now()

    def _on_hover(self, event: Any) -> None:
        """Hovering a plot shows that epoch's values as a tooltip."""
        if event.inaxes not in (self.ax_loss, self.ax_acc) or event.xdata is None or not self.epochs:
            self.setToolTip("")
            return
        row = min(self.epochs, key=lambda r: abs(r["epoch"] - event.xdata))
        parts = [f"{name} {row[key]:.4f}" for key, name in (("loss", "loss"), ("val_loss", "validation loss"),
                                                            ("accuracy", "accuracy"),
                                                            ("val_accuracy", "validation accuracy"))
                 if _finite(row.get(key))]
        self.setToolTip(f"epoch {row['epoch']}: " + ", ".join(parts))

    def draw_now(self) -> None:
        """A full, synchronous redraw (caches the background for the blitted updates)."""
        self._needs_full = False
        self._dirty = False
        self.full_draws += 1
        self.draw()

    def _grow_limits(self) -> bool:
        """Widen an axis only when data fall outside it; True when a full redraw is needed."""
        changed = False
        # Only per-epoch values grow the loss axis while a run trains: the first noisy batches of the
        # within-epoch trace may start above it, and growing for them costs a ~90 ms full redraw mid-training.
        # The trace is clipped until the run ends; fit_view() then shows everything.
        rows, _ = zoom_window(self.epochs, self.zoom_last)
        values = [row[k] for row in rows for k in ("loss", "val_loss") if _finite(row.get(k))]
        if values and max(values) > self.ax_loss.get_ylim()[1]:
            self._set_loss_limits(self.ax_loss.get_ylim()[0], max(values) * 1.25)
            changed = True
        right = max(len(self.epochs), self._trace_epoch)
        if right > self.ax_loss.get_xlim()[1]:
            for ax in (self.ax_loss, self.ax_acc):
                ax.set_xlim(0, right + 0.2)
            changed = True
        return changed

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.redraws += 1
        if self._grow_limits() or self._needs_full or self._background is None:
            self._needs_full = False
            self.full_draws += 1
            self.draw_idle()  # the draw_event handler caches the background and draws the curves
            return
        self.restore_region(self._background)
        self._draw_curves()
        self.blit(self.figure.bbox)

    def _on_draw_event(self, _event: Any) -> None:
        self._background = self.copy_from_bbox(self.figure.bbox)
        self._draw_curves()

    def _draw_curves(self) -> None:
        for line in self._lines():
            line.axes.draw_artist(line)
        if self.starting_text.get_text():
            self.ax_acc.draw_artist(self.starting_text)


class BarChart(Canvas):
    """Images per class."""

    def __init__(self, parent: QWidget | None = None, title: str = "Images per class") -> None:
        super().__init__(parent, width=5, height=2.6)
        self.ax = self.figure.add_subplot(111)
        self.title = title
        self.figure.subplots_adjust(left=0.12, right=0.98, bottom=0.22, top=0.88)

    def set_counts(self, names: Sequence[str], counts: Sequence[int], secondary: Sequence[int] | None = None,
                   labels: tuple[str, str] = ("", "")) -> None:
        self.ax.clear()
        x = np.arange(len(names))
        if secondary is None:
            bars = self.ax.bar(x, counts, color=TRAIN_COLOR)
        else:
            bars = self.ax.bar(x - 0.2, counts, width=0.4, color=TRAIN_COLOR, label=labels[0])
            self.ax.bar(x + 0.2, secondary, width=0.4, color="#ff7f0e", label=labels[1])
            # above the plot, so it never hides the bar labels (at 1024 px it sat on top of them)
            self.ax.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, frameon=False)
        if len(names) <= 20:
            self.ax.bar_label(bars, fontsize=7)
        self.ax.set_xticks(x, [_short(n) for n in names], fontsize=8, rotation=30 if len(names) > 10 else 0)
        self.ax.tick_params(axis="y", labelsize=8)
        self.ax.set_title(self.title, fontsize=10, loc="center" if secondary is None else "left")
        self.ax.margins(y=0.15)
        self.redraw_now()


class ConfusionPlot(Canvas):
    """A confusion matrix with counts; clicking a cell calls on_cell(true_index, predicted_index)."""

    def __init__(self, parent: QWidget | None = None, on_cell: Callable[[int, int], None] | None = None) -> None:
        super().__init__(parent, width=4.5, height=4.2)
        self.ax = self.figure.add_subplot(111)
        self.figure.subplots_adjust(left=0.18, right=0.97, bottom=0.16, top=0.92)
        self.matrix = np.zeros((0, 0), dtype=int)
        self.on_cell = on_cell
        self.placeholder = self._make_placeholder()
        self.show_placeholder(CONFUSION_EMPTY)
        self.mpl_connect("button_press_event", self._on_press)

    def set_matrix(self, matrix: Sequence[Sequence[int]], names: Sequence[str], empty: str = CONFUSION_EMPTY,
                   ) -> None:
        self.matrix = np.asarray(matrix, dtype=int)
        self.ax.clear()
        n = len(names)
        self.show_placeholder("" if n else empty)
        if n == 0:
            self.redraw_now()
            return
        shown = np.log1p(self.matrix)
        self.ax.imshow(shown, cmap="Blues", interpolation="nearest")
        if n <= 15:
            threshold = shown.max() * 0.6
            for (r, c), value in np.ndenumerate(self.matrix):
                if value:
                    self.ax.text(c, r, str(value), ha="center", va="center", fontsize=7 if n > 10 else 8,
                                 color="white" if shown[r, c] > threshold else "black")
        ticks = [_short(name, 10) for name in names]
        self.ax.set_xticks(range(n), ticks, fontsize=8, rotation=45 if n > 10 else 0)
        self.ax.set_yticks(range(n), ticks, fontsize=8)
        self.ax.set_xlabel("predicted", fontsize=9)
        self.ax.set_ylabel("true", fontsize=9)
        self.ax.set_title("Confusion matrix (click a cell)", fontsize=10)
        self.redraw_now()

    def _on_press(self, event: Any) -> None:
        if event.inaxes is not self.ax or event.xdata is None or not self.matrix.size:
            return
        row, col = round(event.ydata), round(event.xdata)
        if 0 <= row < len(self.matrix) and 0 <= col < len(self.matrix) and self.on_cell is not None:
            self.on_cell(row, col)


class CompareCurves(Canvas):
    """Validation (dashed: training) loss and accuracy of several runs, overlaid. Hovering reads out every
    run's values at that epoch; `set_zoom_last` shows only the last epochs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, width=7, height=3)
        self.ax_loss, self.ax_acc = self.figure.subplots(1, 2)
        self.figure.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.88, wspace=0.25)
        self.zoom_last = False
        self.titles: list[str] = []
        self.histories: list[list[dict[str, Any]]] = []
        self.placeholder = self._make_placeholder()
        self.mpl_connect("motion_notify_event", self._on_hover)
        self.set_runs([], [])

    def set_zoom_last(self, zoom: bool) -> None:
        self.zoom_last = zoom
        self.set_runs(self.titles, self.histories)

    def set_runs(self, titles: Sequence[str], histories: Sequence[Sequence[dict[str, Any]]]) -> None:
        self.titles = list(titles)
        self.histories = [[dict(row) for row in history] for history in histories]
        if not titles:  # only the sentence: the hidden axes are cleared when runs come (a clear costs ~40 ms)
            self.show_placeholder(COMPARE_EMPTY)
            self.redraw_now()
            return
        for ax, title in ((self.ax_loss, "Loss"), (self.ax_acc, "Accuracy")):
            ax.clear()
            ax.set_title(title + "  (solid: validation, dashed: training)", fontsize=9)
            ax.set_xlabel("epoch", fontsize=9)
            ax.tick_params(labelsize=8)
            ax.grid(True, alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        self.show_placeholder("")
        longest = 1
        for index, (title, history) in enumerate(zip(self.titles, self.histories, strict=True)):
            color = RUN_COLORS[index % len(RUN_COLORS)]
            epochs = _epochs_of(history)
            longest = max([longest, *epochs])
            for ax, key in ((self.ax_loss, "loss"), (self.ax_acc, "accuracy")):
                train = [row.get(key, np.nan) for row in history]
                val = [row.get(f"val_{key}", np.nan) for row in history]
                has_val = any(_finite(v) for v in val)
                # markers on both lines: a run of a single epoch is a point, not an invisible line
                ax.plot(epochs, train, color=color, linestyle="--", linewidth=1, alpha=0.7, marker=".",
                        markersize=5, label=None if has_val else _short(title, 30))
                if has_val:
                    ax.plot(epochs, val, color=color, marker="o", markersize=4, linewidth=1.6,
                            label=_short(title, 30))
        first = max(1, longest - ZOOM_EPOCHS + 1) if self.zoom_last and longest > 1 else 1
        for ax, key in ((self.ax_loss, "loss"), (self.ax_acc, "accuracy")):
            ax.set_xlim(first - 0.5, longest + 0.5)
            if self.zoom_last:
                _fit_y(ax, [row.get(k) for history in self.histories for e, row in zip(_epochs_of(history), history,
                                                                                       strict=True)
                            if e >= first for k in (key, f"val_{key}")])
        self.ax_acc.legend(fontsize=7, loc="lower right")
        self.redraw_now()

    def readout(self, epoch: float) -> str:
        """Every run's values at the epoch nearest `epoch` (what hovering shows)."""
        lines = []
        for title, history in zip(self.titles, self.histories, strict=True):
            epochs = _epochs_of(history)
            if not epochs:
                continue
            index = min(range(len(epochs)), key=lambda i: abs(epochs[i] - epoch))
            row = history[index]
            values = [f"{name} {row[key]:.4f}" for key, name in (("val_loss", "val. loss"), ("val_accuracy",
                                                                  "val. accuracy"), ("loss", "loss"),
                                                                 ("accuracy", "accuracy")) if _finite(row.get(key))]
            lines.append(f"{_short(title, 40)} — epoch {epochs[index]}: " + ", ".join(values))
        return "\n".join(lines)

    def _on_hover(self, event: Any) -> None:
        if event.inaxes not in (self.ax_loss, self.ax_acc) or event.xdata is None:
            self.setToolTip("")
            return
        self.setToolTip(self.readout(event.xdata))


def zoom_window(rows: Sequence[dict[str, Any]], zoom: bool) -> tuple[Sequence[dict[str, Any]], int]:
    """The epochs shown when zoomed to the last ones, and the first epoch number shown (all when not zoomed)."""
    if not zoom or len(rows) < 2:
        return rows, 1
    shown = rows[max(1, len(rows) - ZOOM_EPOCHS):]
    return shown, int(shown[0].get("epoch", len(rows) - len(shown) + 1))


def _epochs_of(history: Sequence[dict[str, Any]]) -> list[int]:
    return [int(row.get("epoch", i + 1)) for i, row in enumerate(history)]


def _fit_y(ax: Any, values: Sequence[Any]) -> None:
    finite = [float(v) for v in values if _finite(v)]
    if finite:
        low, high = min(finite), max(finite)
        pad = max(0.08 * (high - low), 0.01 * abs(high), 1e-4)
        ax.set_ylim(low - pad, high + pad)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _short(text: str, limit: int = 14) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


class SampleGrid(Canvas):
    """Sample images, one row per class, the class names on the left; a click calls on_cell(row, col)."""

    def __init__(self, parent: QWidget | None = None, on_cell: Callable[[int, int], None] | None = None) -> None:
        super().__init__(parent, width=4, height=4)
        self.ax = self.figure.add_axes((0.14, 0.02, 0.84, 0.9))
        self.on_cell = on_cell
        self.rows = self.cols = 0
        self.tile = (1, 1)
        self.mpl_connect("button_press_event", self._on_press)

    def set_grid(self, image: np.ndarray, rows: int, cols: int, row_names: Sequence[str], title: str = "") -> None:
        self.rows, self.cols = rows, cols
        self.tile = (image.shape[0] / max(rows, 1), image.shape[1] / max(cols, 1))
        self.ax.clear()
        self.ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
        self.ax.set_xticks([])
        self.ax.set_yticks([(r + 0.5) * self.tile[0] for r in range(rows)], [_short(n, 16) for n in row_names],
                           fontsize=8)
        self.ax.tick_params(length=0)
        for spine in self.ax.spines.values():
            spine.set_visible(False)
        self.ax.set_title(title, fontsize=9)
        self.redraw_now()

    def _on_press(self, event: Any) -> None:
        if event.inaxes is not self.ax or event.xdata is None or not self.rows or self.on_cell is None:
            return
        row, col = int(event.ydata // self.tile[0]), int(event.xdata // self.tile[1])
        if 0 <= row < self.rows and 0 <= col < self.cols:
            self.on_cell(row, col)
