"""Trust in the GUI (issue 10), kept out of the panels that use it:

- Classify view (`ClassifyTrust`): several runs answer each image side by side; an answer the run's unknown
  check flags reads "unknown (best guess X, 41 %)" with the reason; "Show heatmap" replaces the image the model
  saw with the heatmap overlay (transferlab.core.deploy.explain); a slider (`UnknownRateControl`) moves the
  target false-unknown rate and shows the coverage/accuracy it costs on held-out images.
- Results view: the Calibration tab (`CalibrationPage`: ECE before/after, reliability diagram) and heatmap
  overlays on the icons of the misclassified gallery and the confusion-cell list (`GalleryHeatmaps`).

Models run on worker threads only (TaskGroup); building an Explainer builds Keras models, so it happens under
the engine's build lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from transferlab.core.analysis.ood import TARGET_FALSE_UNKNOWN_RATE, Thresholds
from transferlab.core.records import EvaluationReport, SampleId
from transferlab.core.stopping import StopFlag
from transferlab.gui.plots import Canvas
from transferlab.gui.widgets import ProbabilityBars, html_text, rgb_qimage, scaled_pixmap
from transferlab.gui.worker import TaskGroup, describe_error

logger = logging.getLogger(__name__)

OLD_RUN_TEXT = ("This run was trained before calibration existed: its probabilities are uncalibrated "
                "(temperature 1) and nothing is flagged unknown. Train it again to calibrate it.")
UNKNOWN_COLOUR = "#b35900"
MAX_RATE_PERCENT = 30
GALLERY_CHUNK = 16  # gallery heatmaps reach the screen in chunks of this many images
ORIGINAL_ICON = Qt.ItemDataRole.UserRole + 17  # a gallery item's own icon, kept while it shows a heatmap


# ---- calibration (results view) ----

class ReliabilityDiagram(Canvas):
    """Accuracy against mean confidence per confidence bin, before and after temperature scaling."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, width=5, height=3.2)
        self.ax = self.figure.add_subplot(111)
        self.figure.subplots_adjust(left=0.12, right=0.98, bottom=0.15, top=0.88)

    def set_bins(self, before: Sequence[Mapping[str, float]], after: Sequence[Mapping[str, float]]) -> None:
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
        self.set_report(None)

    def set_report(self, report: EvaluationReport | None) -> None:
        """The calibration figures of a run's evaluation (report.extras), or what is missing."""
        if report is None:
            self.summary.setText("No evaluation results: the calibration of a run appears here once it is "
                                 "trained and evaluated.")
            self.diagram.set_bins([], [])
            return
        self.summary.setText(calibration_text(report.extras))
        calibration = report.extras.get("calibration")
        bins = (calibration.get("bins_before", []), calibration.get("bins_after", [])) \
            if isinstance(calibration, dict) else ([], [])
        self.diagram.set_bins(*bins)


def calibration_text(extras: Mapping[str, Any]) -> str:
    """Rich text: ECE before/after, the temperature, and the unknown check's held-out figures."""
    calibration = extras.get("calibration")
    if not isinstance(calibration, dict):
        reason = extras.get("calibration_error")
        return html_text(f"Calibration failed for this run: {reason}" if reason else OLD_RUN_TEXT)
    before, after = calibration.get("ece_before"), calibration.get("ece_after")
    if isinstance(before, float | int) and isinstance(after, float | int):
        text = (f"Expected calibration error <b>{100 * before:.1f} %</b> before, <b>{100 * after:.1f} %</b> "
                "after temperature scaling")
    else:
        text = "Temperature scaling"
    text += (f" (T = {float(calibration.get('temperature', 1.0)):.2f}, fitted on the "
             f"{html_text(calibration.get('fitted_on') or 'held-out images')}"
             + (f"; measured on the {html_text(calibration['measured_on'])}" if calibration.get("measured_on")
                else "") + ").")
    unknown = extras.get("unknown")
    if isinstance(unknown, dict) and {"measured_false_unknown_rate", "false_unknown_rate", "accuracy_answered",
                                      "accuracy_all"} <= unknown.keys():
        text += (f"<br>Unknown check: {100 * unknown['measured_false_unknown_rate']:.1f} % of held-out images "
                 f"flagged (target {100 * unknown['false_unknown_rate']:.0f} %); accuracy on the rest "
                 f"{100 * unknown['accuracy_answered']:.1f} % vs {100 * unknown['accuracy_all']:.1f} % on all.")
    return text


# ---- the unknown rate (classify view) ----

class UnknownRateControl(QWidget):
    """A slider for the target false-unknown rate (0–30 %), with the trade-off on held-out images."""

    rateChanged = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, MAX_RATE_PERCENT)
        self.slider.setValue(round(100 * TARGET_FALSE_UNKNOWN_RATE))
        self.slider.setTracking(False)  # while dragging nothing is classified again; on release it is
        self.slider.setMinimumWidth(100)
        self.slider.setToolTip("How many in-distribution images may be called unknown: stricter flags more")
        self.label = QLabel()
        self.label.setWordWrap(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Flag unknown:"))
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label, 3)
        self.slider.valueChanged.connect(lambda value: self.rateChanged.emit(value / 100.0))
        self.show_tradeoff(None)

    def rate(self) -> float:
        return self.slider.value() / 100.0

    def show_tradeoff(self, thresholds: Thresholds | None, note: str = "") -> None:
        """`thresholds`: the primary run's at the slider's rate, or None (no unknown check: `note` says why)."""
        if thresholds is None:
            self.label.setText(html_text(note or "no unknown check for this run"))
            return
        self.label.setText(f"target {self.slider.value()} % false unknown → on held-out images: answers "
                           f"{100 * thresholds.coverage:.0f} %, {100 * thresholds.accuracy_answered:.1f} % of them "
                           f"right (all: {100 * thresholds.accuracy_all:.1f} %)")


# ---- answers side by side (classify view) ----

@dataclass(frozen=True)
class RunAnswer:
    """One run's answer for one image; `overlay` is the heatmap over what the model saw, when asked for."""

    run_id: str
    prediction: Any  # transferlab.core.deploy.predict.Prediction
    overlay: np.ndarray | None = None
    method: str = ""


@dataclass(frozen=True)
class Answers:
    """Each run's answers for the same images, the primary run first."""

    run_ids: tuple[str, ...]
    by_run: dict[str, list[RunAnswer]]

    @property
    def primary(self) -> list[Any]:
        """The primary run's Predictions, in image order."""
        return [a.prediction for a in self.by_run[self.run_ids[0]]]

    def image_index(self, prediction: Any) -> int:
        """Which image a primary Prediction is (-1 when it is not one of them)."""
        return next((i for i, a in enumerate(self.by_run[self.run_ids[0]]) if a.prediction is prediction), -1)


class ExplainerCache:
    """One Explainer per run, for the classifier it was made for; built under the engine's build lock.
    `in_use` is held while one is explaining in the results view, where a superseded task may still run."""

    def __init__(self) -> None:
        self._explainers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.in_use = threading.Lock()

    def get(self, run_id: str, classifier: Any) -> Any:
        """Worker: the Explainer of this loaded Classifier."""
        with self._lock:
            explainer = self._explainers.get(run_id)
            if explainer is None or explainer.classifier is not classifier:
                explainer = self._explainers[run_id] = _explainer(classifier)
            return explainer

    def for_run(self, run_id: str, store: Any) -> Any:
        """Worker: the run's Explainer, loading its model the first time."""
        with self._lock:
            if run_id not in self._explainers:
                from transferlab.core.deploy.predict import Classifier

                self._explainers[run_id] = _explainer(Classifier(run_id, store))
            return self._explainers[run_id]

    def keep_only(self, run_ids: Sequence[str]) -> None:
        """Forget the other runs' explainers (and so their models)."""
        with self._lock:
            for other in [r for r in self._explainers if r not in run_ids]:
                del self._explainers[other]


def _explainer(classifier: Any) -> Any:
    from transferlab.core.deploy.explain import Explainer
    from transferlab.core.models.building import building_models

    with building_models():  # an Explainer builds Keras models (its spatial-map model)
        return Explainer(classifier)


@dataclass(frozen=True)
class ClassifyRequest:
    """What the classify view asks of a worker: these runs (primary first), this unknown rate, heatmaps or not."""

    run_ids: tuple[str, ...]
    rate: float
    heatmaps: bool
    explainers: ExplainerCache = field(compare=False, repr=False, default_factory=ExplainerCache)
    overlay_side: int = 112

    def run(self, classifier_of: Callable[[str], Any], paths: Sequence[str], top_k: int) -> Answers:
        """Worker: every run's answers. The primary run's failure raises; another run's becomes each image's
        one-line error in its column."""
        by_run = {}
        for position, run_id in enumerate(self.run_ids):
            try:
                by_run[run_id] = self._answers(run_id, classifier_of(run_id), paths, top_k)
            except Exception as exc:
                if position == 0:
                    raise
                logger.exception("classifying with run %s", run_id)
                from transferlab.core.deploy.predict import Prediction

                error = f"could not use run {run_id}: {describe_error(exc)}"
                by_run[run_id] = [RunAnswer(run_id, Prediction(file=str(p), error=error)) for p in paths]
        return Answers(self.run_ids, by_run)

    def _answers(self, run_id: str, classifier: Any, paths: Sequence[str], top_k: int) -> list[RunAnswer]:
        classifier.trust.set_rate(self.rate)
        if not self.heatmaps:
            return [RunAnswer(run_id, p) for p in classifier.classify(paths, top_k=top_k)]
        explained = self.explainers.get(run_id, classifier).classify_with_heatmap(paths, top_k=top_k)
        return [RunAnswer(run_id, e.prediction, e.overlay(self.overlay_side), e.method) for e in explained]


class ClassifyTrust(QWidget):
    """The classify view's trust controls (runs side by side, heatmap toggle, unknown rate) and the answers of
    the other runs for the images on screen. `changed` asks the panel to classify its images again."""

    changed = Signal()

    def __init__(self, store: Any, run_combo: QComboBox, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.run_combo = run_combo
        self.answers: Answers | None = None  # those on screen
        self.explainers = ExplainerCache()
        self._trust: Any = None  # the primary run's RunTrust (for the trade-off label), loaded on a worker
        self._trust_run = ""
        self.tasks = TaskGroup(self)
        self.runs_menu = QMenu(self)
        self.runs_menu.triggered.connect(lambda _action: self._on_runs_ticked())
        self.runs_button = QToolButton()
        self.runs_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.runs_button.setMenu(self.runs_menu)
        self.runs_button.setToolTip("Tick runs to see their answers beside the chosen run's, for each image")
        self.heatmap_box = QCheckBox("Show heatmap")
        self.heatmap_box.setToolTip("Overlay where the model looked for its answer (class activation map, "
                                    "Grad-CAM or occlusion, whichever the model allows)")
        self.heatmap_box.toggled.connect(lambda _on: self.changed.emit())
        self.unknown_control = UnknownRateControl()
        self.unknown_control.rateChanged.connect(self._on_rate)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.runs_button)
        layout.addWidget(self.heatmap_box)
        layout.addSpacing(12)
        layout.addWidget(self.unknown_control, 1)
        run_combo.currentIndexChanged.connect(lambda _index: self._follow_primary())
        self._update_runs_button()

    # ---- runs ----

    def primary(self) -> str:
        return str(self.run_combo.currentData() or "")

    def refresh_runs(self) -> None:
        """The runs of the panel's combo box become the runs that can answer beside the chosen one."""
        ticked = set(self.extra_run_ids())
        self.runs_menu.clear()
        for i in range(self.run_combo.count()):
            action = QAction(self.run_combo.itemText(i), self.runs_menu)
            action.setData(self.run_combo.itemData(i))
            action.setCheckable(True)
            action.setChecked(self.run_combo.itemData(i) in ticked)
            self.runs_menu.addAction(action)
        self._follow_primary()

    def extra_run_ids(self) -> list[str]:
        """The ticked runs besides the chosen one, in the combo box's order."""
        primary = self.primary()
        return [str(a.data()) for a in self.runs_menu.actions() if a.isChecked() and a.data() != primary]

    def set_extra_runs(self, run_ids: Sequence[str]) -> None:
        for action in self.runs_menu.actions():
            action.setChecked(action.data() in run_ids)
        self._on_runs_ticked()

    def _on_runs_ticked(self) -> None:
        self._update_runs_button()
        self.changed.emit()

    def _update_runs_button(self) -> None:
        primary = self.primary()
        for action in self.runs_menu.actions():  # the chosen run always answers: it is not offered again
            action.setEnabled(action.data() != primary)
        count = len(self.extra_run_ids())
        self.runs_button.setText("Side by side: " + (f"{count} more run{'s' if count > 1 else ''}" if count
                                                     else "no other run") + "  ▾")

    # ---- the unknown rate ----

    def _follow_primary(self) -> None:
        self._update_runs_button()
        run_id = self.primary()
        if run_id == self._trust_run:
            return
        self._trust_run, self._trust = run_id, None
        self.unknown_control.show_tradeoff(None, "")
        if not run_id:
            return
        store = self.store
        self.tasks.start("trust", lambda _report, _stop: _load_trust(store, run_id),
                         returned=lambda trust: self._on_trust(run_id, trust),
                         errored=lambda error: self.unknown_control.show_tradeoff(
                             None, f"unknown check unavailable: {describe_error(error)}"))

    def _on_trust(self, run_id: str, trust: Any) -> None:
        if run_id == self.primary():
            self._trust = trust
            self._show_tradeoff()

    def _on_rate(self, _rate: float) -> None:
        self._show_tradeoff()
        self.changed.emit()

    def _show_tradeoff(self) -> None:
        trust = self._trust
        if trust is None:
            self.unknown_control.show_tradeoff(None, "")
            return
        thresholds = trust.heldout.thresholds(self.unknown_control.rate()) if trust.heldout is not None else None
        self.unknown_control.show_tradeoff(thresholds, trust.note)

    # ---- classifying ----

    def request(self, run_id: str) -> ClassifyRequest:
        """GUI thread: what a classify task is to do, with the choices made now."""
        run_ids = (run_id, *[r for r in self.extra_run_ids() if r != run_id])
        heatmaps = self.heatmap_box.isChecked()
        self.explainers.keep_only(run_ids if heatmaps else ())
        return ClassifyRequest(run_ids, self.unknown_control.rate(), heatmaps, self.explainers)

    def show_answers(self, answers: Answers) -> None:
        self.answers = answers

    def by_run(self) -> dict[str, list[Any]]:
        """Run id → its Predictions for the images on screen."""
        if self.answers is None:
            return {}
        return {run_id: [a.prediction for a in rows] for run_id, rows in self.answers.by_run.items()}

    def _answer(self, prediction: Any, run_position: int) -> RunAnswer | None:
        answers = self.answers
        index = answers.image_index(prediction) if answers is not None else -1
        if answers is None or index < 0 or run_position >= len(answers.run_ids):
            return None
        return answers.by_run[answers.run_ids[run_position]][index]

    def seen_pixmap(self, prediction: Any, size: int) -> QPixmap | None:
        """The primary run's picture of an image: its heatmap overlay when shown, else what the model saw."""
        answer = self._answer(prediction, 0)
        return _picture(answer or RunAnswer("", prediction), size)

    def seen_caption(self, prediction: Any) -> str:
        answer = self._answer(prediction, 0)
        return _caption_text(answer or RunAnswer("", prediction), self.answers)

    def add_other_runs(self, grid: QGridLayout, prediction: Any, column: int, size: int) -> None:
        """The other runs' answers for this image, two grid columns each from `column` on (captions in row 1,
        the `size`-pixel picture and the answer in row 2)."""
        answers = self.answers
        if answers is None:
            return
        for position in range(1, len(answers.run_ids)):
            answer = self._answer(prediction, position)
            if answer is None:
                continue
            seen = QLabel()
            seen.setFixedSize(size, size)
            seen.setAlignment(Qt.AlignmentFlag.AlignCenter)
            picture = _picture(answer, size)
            if picture is not None:
                seen.setPixmap(picture)
            caption = QLabel(_caption_text(answer, answers))
            caption.setStyleSheet("color:#666;font-size:8pt;")
            right = QVBoxLayout()
            right.addWidget(answer_label(answer.prediction))
            if answer.prediction.ok:
                bars = ProbabilityBars()
                bars.set_top(answer.prediction.top)
                right.addWidget(bars)
            right.addStretch(1)
            grid.addWidget(caption, 1, column, 1, 2)
            grid.addWidget(seen, 2, column)
            grid.addLayout(right, 2, column + 1)
            grid.setColumnStretch(column + 1, 1)
            column += 2


def answer_label(prediction: Any) -> QLabel:
    """The calibrated answer: "7 (98.1 %)", "unknown (best guess 7, 41 %)" with the reason below, or the error."""
    if not prediction.ok:
        label = QLabel(f"<span style='color:#a00'>{html_text(prediction.error)}</span>")
    elif prediction.unknown:
        label = QLabel(f"<span style='font-size:13pt;color:{UNKNOWN_COLOUR}'><b>unknown</b></span> "
                       f"(best guess <b>{html_text(prediction.label)}</b>, {100 * prediction.probability:.0f} %)"
                       f"<br><span style='color:{UNKNOWN_COLOUR};font-size:8pt'>{html_text(prediction.reason)}"
                       "</span>")
    else:
        label = QLabel(f"<span style='font-size:13pt'><b>{html_text(prediction.label)}</b></span> "
                       f"({100 * prediction.probability:.1f} %)")
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setWordWrap(True)
    return label


def _picture(answer: RunAnswer, size: int) -> QPixmap | None:
    if answer.overlay is not None:
        return scaled_pixmap(rgb_qimage(answer.overlay), size, smooth=True)
    seen = answer.prediction.seen
    return None if seen is None else scaled_pixmap(rgb_qimage(seen), size)


def _caption_text(answer: RunAnswer, answers: Answers | None) -> str:
    what = f"Heatmap ({answer.method})" if answer.overlay is not None else "What the model saw"
    several = answers is not None and len(answers.run_ids) > 1
    return f"{what} — run {answer.run_id}" if several and answer.run_id else what


def _load_trust(store: Any, run_id: str) -> Any:
    """Worker: a run's stored trust (no model), for the trade-off label; digit runs need no hint here."""
    from transferlab.core.analysis.trust import load_trust

    return load_trust(store, run_id)


# ---- heatmaps in the results view ----

class GalleryHeatmaps(QObject):
    """A "Heatmaps" check box for the results view: while it is ticked, the icons of the given lists (items
    carry their sample id in UserRole) show the heatmap of the run's predicted class over the image, computed
    on a worker and cached per run; unticked, they show their own images again."""

    shown = Signal(int)  # how many icons now show a heatmap, once the lists' heatmaps are all on screen
    message = Signal(str, str)

    def __init__(self, store: Any, lists: Sequence[QListWidget], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.lists = list(lists)
        self.run_id = ""
        self.samples: Any = None  # the run's EvaluationSamples
        self.overlays: dict[SampleId, QPixmap] = {}  # of self.run_id
        self.explainers = ExplainerCache()
        self.tasks = TaskGroup(self)
        self.box = QCheckBox("Heatmaps")
        self.box.setToolTip("Show where the model looked for its answer on each image (its predicted class)")
        self.box.toggled.connect(lambda _on: self.refresh())

    def show_run(self, run_id: str, samples: Any) -> None:
        """The lists now show this run's samples (`samples`: its EvaluationSamples, or None)."""
        if run_id != self.run_id:
            self.tasks.cancel("heatmaps")
            self.run_id, self.overlays = run_id, {}
            self.explainers.keep_only((run_id,))
        self.samples = samples
        self.refresh()

    def items(self) -> list[QListWidgetItem]:
        return [w.item(i) for w in self.lists for i in range(w.count())]

    def refresh(self) -> None:
        """After the lists changed or the box was toggled: icons follow the box, missing heatmaps are made."""
        if not self.box.isChecked():
            self.tasks.cancel("heatmaps")
            for item in self.items():
                original = item.data(ORIGINAL_ICON)
                if isinstance(original, QIcon):
                    item.setIcon(original)
                    item.setData(ORIGINAL_ICON, None)
            return
        self._apply()
        missing = list(dict.fromkeys(i for i in (item.data(Qt.ItemDataRole.UserRole) for item in self.items())
                                     if i not in self.overlays))
        if not missing or self.samples is None or not self.run_id:
            self.shown.emit(self._count())
            return
        store, run_id, samples, explainers = self.store, self.run_id, self.samples, self.explainers
        self.tasks.start("heatmaps", lambda report, stop: gallery_overlays(store, run_id, samples, missing,
                                                                           explainers, report, stop),
                         reported=lambda chunk: self._on_chunk(run_id, chunk),
                         errored=lambda error: self.message.emit(
                             f"Could not make heatmaps for run {run_id}: {describe_error(error)}", "warning"),
                         finished=lambda: self.shown.emit(self._count()))

    def _on_chunk(self, run_id: str, chunk: dict[SampleId, np.ndarray]) -> None:
        if run_id != self.run_id:
            return
        for sample_id, picture in chunk.items():
            self.overlays[sample_id] = QPixmap.fromImage(rgb_qimage(picture))
        self._apply()

    def _apply(self) -> None:
        if not self.box.isChecked():
            return
        for item in self.items():
            overlay = self.overlays.get(item.data(Qt.ItemDataRole.UserRole))
            if overlay is None:
                continue
            if item.data(ORIGINAL_ICON) is None:
                item.setData(ORIGINAL_ICON, item.icon())
            item.setIcon(QIcon(overlay))

    def _count(self) -> int:
        return sum(1 for item in self.items() if item.data(ORIGINAL_ICON) is not None)


def gallery_overlays(store: Any, run_id: str, samples: Any, ids: Sequence[SampleId], explainers: ExplainerCache,
                     report: Callable[[Any], None], stop: StopFlag, min_side: int = 72) -> int:
    """Worker: reports {sample id: uint8 RGB overlay of its predicted class's heatmap} in chunks for evaluation
    samples (in memory by index, or files relative to the run's data folder); unusable samples are left out.
    Returns how many overlays were made."""
    explainer = explainers.for_run(run_id, store)
    made = 0
    with explainers.in_use:  # a superseded task may still be finishing its chunk
        for start in range(0, len(ids), GALLERY_CHUNK):
            if stop.requested:
                break
            chunk = list(ids[start:start + GALLERY_CHUNK])
            if samples.images is not None:
                explained = explainer.explain_arrays([samples.array(i) for i in chunk],
                                                     names=[str(i) for i in chunk])
            else:
                explained = explainer.explain_files([samples.path(i) for i in chunk])
            pictures = {i: e.overlay(min_side) for i, e in zip(chunk, explained, strict=True)}
            pictures = {i: p for i, p in pictures.items() if p is not None}
            made += len(pictures)
            report(pictures)
    return made

