"""Trust views: the reliability diagram with ECE before/after calibration (results view), and the
unknown-threshold control with its coverage/accuracy trade-off (classify view)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from transferlab.gui.plots import Canvas
from transferlab.gui.widgets import html_text

OLD_RUN_TEXT = ("This run was trained before calibration existed: its probabilities are uncalibrated "
                "(temperature 1) and nothing is flagged unknown. Train it again to calibrate it.")


class ReliabilityDiagram(Canvas):
    """Accuracy against mean confidence per confidence bin, before and after temperature scaling."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, width=5, height=3.2)
        self.ax = self.figure.add_subplot(111)
        self.figure.subplots_adjust(left=0.12, right=0.98, bottom=0.15, top=0.88)

    def set_bins(self, before: list[dict[str, float]], after: list[dict[str, float]]) -> None:
        self.ax.clear()
        self.ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="perfectly calibrated")
        for bins, colour, label in ((before, "#d62728", "before"), (after, "#1f77b4", "after calibration")):
            used = [b for b in bins if b.get("count")]
            if used:
                self.ax.plot([b["confidence"] for b in used], [b["accuracy"] for b in used], marker="o",
                             color=colour, label=label)
        self.ax.set_xlim(0, 1)
        self.ax.set_ylim(0, 1)
        self.ax.set_xlabel("confidence", fontsize=8)
        self.ax.set_ylabel("accuracy", fontsize=8)
        self.ax.tick_params(labelsize=8)
        self.ax.legend(fontsize=7, loc="upper left")
        self.ax.set_title("Reliability diagram", fontsize=10)
        self.redraw_now()


class CalibrationPage(QWidget):
    """ECE before/after, the temperature, where they were measured, and the reliability diagram."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.diagram = ReliabilityDiagram(self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.diagram, 1)

    def set_metrics(self, metrics: dict[str, Any]) -> None:
        calibration = metrics.get("calibration")
        if not isinstance(calibration, dict):
            reason = metrics.get("calibration_error")
            self.summary.setText(html_text(f"Calibration failed for this run: {reason}" if reason else OLD_RUN_TEXT))
            self.diagram.set_bins([], [])
            return
        unknown = metrics.get("unknown") or {}
        text = (f"Expected calibration error <b>{100 * calibration['ece_before']:.1f} %</b> before, "
                f"<b>{100 * calibration['ece_after']:.1f} %</b> after temperature scaling "
                f"(T = {calibration['temperature']:.2f}, fitted on the {html_text(calibration.get('fitted_on', ''))}; "
                f"measured on the {html_text(calibration.get('measured_on', ''))}).")
        if unknown:
            text += (f"<br>Unknown check: {100 * unknown['measured_false_unknown_rate']:.1f} % of held-out images "
                     f"flagged (target {100 * unknown['false_unknown_rate']:.0f} %); accuracy on the rest "
                     f"{100 * unknown['accuracy_answered']:.1f} % vs {100 * unknown['accuracy_all']:.1f} % on all.")
        self.summary.setText(text)
        self.diagram.set_bins(calibration.get("bins_before", []), calibration.get("bins_after", []))


class UnknownRateControl(QWidget):
    """A slider for the target false-unknown rate (0–30 %), with the trade-off on held-out images."""

    rateChanged = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 30)
        self.slider.setValue(5)
        self.slider.setToolTip("How many in-distribution images may be called unknown: stricter flags more")
        self.label = QLabel()
        self.label.setMinimumWidth(420)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Flag unknown:"))
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        self.slider.valueChanged.connect(lambda value: self.rateChanged.emit(value / 100.0))
        self.show_tradeoff(None)

    def rate(self) -> float:
        return self.slider.value() / 100.0

    def show_tradeoff(self, thresholds: Any, note: str = "") -> None:
        """`thresholds`: a core.analysis.ood.Thresholds for the primary run, or None (no unknown check)."""
        if thresholds is None:
            self.label.setText(html_text(note or "no unknown check for this run"))
            return
        self.label.setText(f"target {self.slider.value()} % false unknown → on held-out images: answers "
                           f"{100 * thresholds.coverage:.0f} %, {100 * thresholds.accuracy_answered:.1f} % of them "
                           f"right (all: {100 * thresholds.accuracy_all:.1f} %)")


def heatmap_overlays(store: Any, run_id: str, data: dict[str, Any], ids: list[Any]) -> dict[Any, Any]:
    """Worker: {sample id: uint8 RGB overlay of its predicted class's heatmap} for evaluation samples
    (MNIST test digits by index, or folder images by relative path). Unusable samples are left out."""
    from pathlib import Path

    from transferlab.core.deploy.explain import Explainer
    from transferlab.core.deploy.predict import Classifier
    from transferlab.gui.worker import KERAS_LOCK

    with KERAS_LOCK:  # loading builds models: never at the same time as another build
        explainer = Explainer(Classifier(run_id, store))
    if data.get("images") is not None:
        explained = explainer.explain_arrays([data["images"][int(i)] for i in ids], names=[str(i) for i in ids])
    else:
        explained = explainer.explain_files([Path(data["root"]) / str(i) for i in ids])
    overlays = {}
    for sample_id, explanation in zip(ids, explained, strict=True):
        picture = explanation.overlay(min_side=72)
        if picture is not None:
            overlays[sample_id] = picture
    return overlays
