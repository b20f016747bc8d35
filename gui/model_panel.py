"""The Model panel: which network, how to fit it, and its summary (layers, output shapes, trainable and
frozen parameters) before training. Building the summary imports TensorFlow, so it runs on a Task."""

from __future__ import annotations

import logging
import math
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from transferlab.core.config import (
    DEFAULT_LEARNING_RATE,
    FINETUNE_LEARNING_RATE,
    FROZEN_LEARNING_RATE,
    FitOptions,
    FolderConfig,
    MnistConfig,
    mnist_preset,
    recommended_fit,
)
from transferlab.gui.widgets import html_text
from transferlab.gui.worker import KERAS_LOCK, Task

logger = logging.getLogger(__name__)

MNIST_CHOICES = (("fast", "Fast CNN (recommended)"), ("cnn", "Seed CNN (the original recipe)"),
                 ("ann", "ANN (dense layers only)"))
BUNDLED_BACKBONES = ("efficientnet-lite0",)
SUMMARY_DELAY_MS = 250
CV_FOLDS = 5
CV_AUTO_MAX_IMAGES = 2000  # cross-validation is on by default up to this many images (it costs seconds)


def mnist_summary(model: str) -> Any:
    """Worker: build the MNIST model and summarize it (imports TensorFlow)."""
    from transferlab.core.models.mnist import build_mnist_model
    from transferlab.core.models.summary import summarize_model

    with KERAS_LOCK:
        return summarize_model(build_mnist_model(model))


def folder_summary(spec: str, mode: str, unfreeze: int | str, n_classes: int) -> Any:
    """Worker: the backbone's description and a summary of the whole model the run will train."""
    from transferlab.core.models.backbones import resolve_backbone
    from transferlab.core.models.summary import summarize_model
    from transferlab.core.models.transfer import preview_model

    with KERAS_LOCK:
        info = resolve_backbone(spec).info
        config = FolderConfig(data_dir="preview", backbone=spec, mode=mode, unfreeze=unfreeze)
        return info, summarize_model(preview_model(config, n_classes))


class ModelPanel(QWidget):
    compareRequested = Signal()  # "frozen vs fine-tuned" for the current folder
    summaryShown = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = "mnist"
        self.class_count = 2  # of the chosen folder, once scanned: sizes the new head in the summary
        self.summary: Any = None
        self._summary_cache: dict[tuple[str, str], Any] = {}
        self._summary_key: tuple[str, str] | None = None
        self._tasks: list[Task] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SUMMARY_DELAY_MS)
        self._timer.timeout.connect(self.refresh_summary)
        self._build()
        self.apply_preset("fast")
        self.set_kind("mnist")

    # ---- layout ----

    def _build(self) -> None:
        # MNIST
        self.mnist_box = QGroupBox("Network (MNIST)")
        self.model_combo = QComboBox()
        for key, label in MNIST_CHOICES:
            self.model_combo.addItem(label, key)
        self.model_combo.currentIndexChanged.connect(self._on_mnist_model)
        self.train_limit = QSpinBox()
        self.train_limit.setRange(0, 60000)
        self.train_limit.setSingleStep(1000)
        self.train_limit.setSpecialValueText("all 60,000")
        self.test_limit = QSpinBox()
        self.test_limit.setRange(0, 10000)
        self.test_limit.setSingleStep(1000)
        self.test_limit.setSpecialValueText("all 10,000")
        form = QFormLayout(self.mnist_box)
        form.addRow("Model", self.model_combo)
        form.addRow("Training digits", self.train_limit)
        form.addRow("Test digits", self.test_limit)

        # folders
        self.folder_box = QGroupBox("Backbone (transfer learning)")
        self.backbone_combo = QComboBox()
        self.backbone_combo.setEditable(True)
        self.backbone_combo.addItems(BUNDLED_BACKBONES)
        self.backbone_combo.lineEdit().setPlaceholderText("efficientnet-lite0, a TF Hub URL or a SavedModel folder")
        self.backbone_combo.currentTextChanged.connect(self._schedule_summary)
        self.backbone_browse = QPushButton("SavedModel folder…")
        self.backbone_browse.clicked.connect(self._on_backbone_browse)
        backbone_row = QHBoxLayout()
        backbone_row.addWidget(self.backbone_combo, 1)
        backbone_row.addWidget(self.backbone_browse)
        self.frozen_radio = QRadioButton("Frozen (train only the new head)")
        self.finetune_radio = QRadioButton("Fine-tuned: unfreeze the top")
        self.frozen_radio.setChecked(True)
        modes = QButtonGroup(self)
        modes.addButton(self.frozen_radio)
        modes.addButton(self.finetune_radio)
        self.unfreeze_spin = QSpinBox()
        self.unfreeze_spin.setRange(1, 99)
        self.unfreeze_spin.setValue(1)
        self.unfreeze_spin.setSuffix(" blocks")
        self.unfreeze_all = QCheckBox("all")
        self.finetune_radio.toggled.connect(self._update_enabled)
        self.finetune_radio.toggled.connect(self._on_mode_toggled)
        self.unfreeze_all.toggled.connect(self._update_enabled)
        # The summary shows what trains, so it follows the mode and the number of unfrozen blocks.
        for changed in (self.finetune_radio.toggled, self.unfreeze_all.toggled, self.unfreeze_spin.valueChanged):
            changed.connect(self._schedule_summary)
        tune_row = QHBoxLayout()
        tune_row.addWidget(self.finetune_radio)
        tune_row.addWidget(self.unfreeze_spin)
        tune_row.addWidget(self.unfreeze_all)
        tune_row.addStretch(1)
        self.compare_button = QPushButton("Train frozen and fine-tuned on the same split (compare)")
        self.compare_button.clicked.connect(self.compareRequested)
        self.cv_check = QCheckBox(f"Cross-validate the head over {CV_FOLDS} folds (frozen runs: reuses the "
                                  "cached features, costs seconds)")
        self.cv_check.setToolTip("Reports accuracy as mean ± spread over the folds, so one lucky or unlucky "
                                 "validation split can't mislead. On by default for folders of up to "
                                 f"{CV_AUTO_MAX_IMAGES:,} images.")
        self.cv_check.clicked.connect(self._on_cv_clicked)
        self._cv_chosen = False  # the user ticked or unticked it: no more automatic choice
        self._explicit: dict[str, dict[str, Any]] = {"frozen": {}, "finetune": {}}  # per mode: what the user set
        self.stopping_label = QLabel("")
        self.stopping_label.setWordWrap(True)
        folder_layout = QVBoxLayout(self.folder_box)
        folder_layout.addLayout(backbone_row)
        folder_layout.addWidget(self.frozen_radio)
        folder_layout.addLayout(tune_row)
        folder_layout.addWidget(self.cv_check)
        folder_layout.addWidget(self.stopping_label)
        folder_layout.addWidget(self.compare_button)

        # fitting
        fit_box = QGroupBox("Training")
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 500)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 4096)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(0.00001, 1.0)
        self.lr_spin.setSingleStep(0.0005)
        self.val_spin = QDoubleSpinBox()
        self.val_spin.setRange(0.0, 0.9)
        self.val_spin.setSingleStep(0.05)
        self.val_spin.setDecimals(2)
        self.augment_check = QCheckBox("Augment training images (random rotation, shift, zoom…)")
        self.stop_check = QCheckBox("Stop when training accuracy reaches")
        self.stop_spin = QDoubleSpinBox()
        self.stop_spin.setRange(0.5, 1.0)
        self.stop_spin.setDecimals(3)
        self.stop_spin.setSingleStep(0.005)
        self.stop_spin.setValue(0.98)
        self.stop_check.toggled.connect(self._update_enabled)
        stop_row = QHBoxLayout()
        stop_row.addWidget(self.stop_check)
        stop_row.addWidget(self.stop_spin)
        stop_row.addStretch(1)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(42)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("optional, shown in the runs list")
        fit_form = QFormLayout(fit_box)
        fit_form.addRow("Epochs", self.epochs_spin)
        fit_form.addRow("Batch size", self.batch_spin)
        fit_form.addRow("Learning rate", self.lr_spin)
        fit_form.addRow("Validation split", self.val_spin)
        fit_form.addRow(self.augment_check)
        fit_form.addRow(stop_row)
        fit_form.addRow("Seed", self.seed_spin)
        fit_form.addRow("Run name", self.name_edit)

        settings = QWidget()
        settings_layout = QVBoxLayout(settings)
        settings_layout.setContentsMargins(0, 0, 0, 0)
        settings_layout.addWidget(self.mnist_box)
        settings_layout.addWidget(self.folder_box)
        settings_layout.addWidget(fit_box)
        settings_layout.addStretch(1)

        # summary
        summary_box = QGroupBox("Model summary (before training)")
        self.summary_label = QLabel("…")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        self.summary_table = QTableWidget(0, 4)
        self.summary_table.setHorizontalHeaderLabels(["Layer", "Type", "Output shape", "Parameters"])
        self.summary_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.summary_table.verticalHeader().setVisible(False)
        header = self.summary_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        summary_layout = QVBoxLayout(summary_box)
        summary_layout.addWidget(self.summary_label)
        summary_layout.addWidget(self.summary_table, 1)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("model_splitter")
        splitter.addWidget(settings)
        splitter.addWidget(summary_box)
        splitter.setSizes([460, 640])
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

    # ---- state ----

    def set_class_count(self, count: int) -> None:
        if count >= 2 and count != self.class_count:
            self.class_count = count
            self._schedule_summary()

    def set_kind(self, kind: str) -> None:
        changed = kind != self.kind
        self.kind = kind
        self.mnist_box.setVisible(kind == "mnist")
        self.folder_box.setVisible(kind == "folder")
        if changed:
            if kind == "mnist":
                self.apply_preset(self.mnist_model())
            else:
                self._apply_fit(FolderConfig(data_dir=".").fit, augment=False)
                self._explicit = {"frozen": {}, "finetune": {}}
                self._apply_mode_fit(self.mode())
        self._update_enabled()
        self._schedule_summary()

    def mnist_model(self) -> str:
        return str(self.model_combo.currentData())

    def set_mnist_model(self, model: str) -> None:
        index = self.model_combo.findData(model)
        if index >= 0:
            self.model_combo.setCurrentIndex(index)

    def apply_preset(self, model: str) -> None:
        config = mnist_preset(model)
        self._apply_fit(config.fit, augment=config.augment)

    def _apply_fit(self, fit: FitOptions, augment: bool) -> None:
        self.epochs_spin.setValue(fit.epochs)
        self.batch_spin.setValue(fit.batch_size)
        self.lr_spin.setValue(fit.learning_rate or DEFAULT_LEARNING_RATE)
        self.val_spin.setValue(fit.validation_split)
        self.seed_spin.setValue(fit.seed)
        self.stop_check.setChecked(fit.stop_at_accuracy is not None)
        if fit.stop_at_accuracy is not None:
            self.stop_spin.setValue(fit.stop_at_accuracy)
        self.augment_check.setChecked(augment)
        self._lr_schedule = fit.lr_schedule

    def _on_mnist_model(self) -> None:
        self.apply_preset(self.mnist_model())
        self._schedule_summary()

    def _on_backbone_browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a TF Hub-format SavedModel folder")
        if folder:
            self.backbone_combo.setEditText(folder)

    def set_folder_size(self, images: int) -> None:
        """Cross-validation on by default for folders small enough that it costs little."""
        if not self._cv_chosen:
            self.cv_check.setChecked(0 < images <= CV_AUTO_MAX_IMAGES)

    def _on_cv_clicked(self) -> None:
        self._cv_chosen = True

    def mode(self) -> str:
        return "finetune" if self.finetune_radio.isChecked() else "frozen"

    def _on_mode_toggled(self, finetune: bool) -> None:
        """Each mode keeps its own learning rate and epochs: the settings the user chose for the mode being left
        are remembered for it (and for its arm in "frozen vs fine-tuned"); the other mode's are shown."""
        old = "frozen" if finetune else "finetune"
        self._explicit[old] = self._chosen(old)
        self._apply_mode_fit("finetune" if finetune else "frozen")

    def _apply_mode_fit(self, mode: str) -> None:
        chosen = self._explicit.get(mode, {})
        self.lr_spin.setValue(chosen.get("learning_rate", _mode_learning_rate(mode)))
        self.epochs_spin.setValue(chosen.get("epochs", recommended_fit(mode)["epochs"]))  # type: ignore[arg-type]
        self._update_stopping_label()

    def _chosen(self, mode: str) -> dict[str, Any]:
        """The form's values that differ from `mode`'s recommendation (the user set them)."""
        chosen: dict[str, Any] = {}
        if not math.isclose(self.lr_spin.value(), _mode_learning_rate(mode)):
            chosen["learning_rate"] = self.lr_spin.value()
        if self.epochs_spin.value() != recommended_fit(mode)["epochs"]:  # type: ignore[arg-type]
            chosen["epochs"] = self.epochs_spin.value()
        return chosen

    def _update_stopping_label(self) -> None:
        patience = recommended_fit(self.mode())["early_stopping_patience"]  # type: ignore[arg-type]
        self.stopping_label.setText(f"<small>Early stopping: training ends when the validation loss has not "
                                    f"improved for {patience} epochs, keeping the best epoch's weights; "
                                    "Epochs is the cap.</small>")

    def explicit_fit(self) -> dict[str, dict[str, Any]]:
        """For "frozen vs fine-tuned": per mode, the settings the user changed from that mode's recommendation
        (the current mode's from the form, the other's as last chosen); each applies to its own arm only."""
        other = "frozen" if self.mode() == "finetune" else "finetune"
        return {self.mode(): self._chosen(self.mode()), other: dict(self._explicit.get(other, {}))}

    def _update_enabled(self) -> None:
        finetune = self.finetune_radio.isChecked()
        self.unfreeze_spin.setEnabled(finetune and not self.unfreeze_all.isChecked())
        self.unfreeze_all.setEnabled(finetune)
        self.stop_spin.setEnabled(self.stop_check.isChecked())

    def fit_options(self) -> FitOptions:
        folder = self.kind == "folder"
        learning_rate: float | None = self.lr_spin.value()
        if folder and math.isclose(self.lr_spin.value(), _mode_learning_rate(self.mode())):
            learning_rate = None  # unset: the mode's default, stored as such with the run
        patience = recommended_fit(self.mode())["early_stopping_patience"] if folder else None  # type: ignore[arg-type]
        return FitOptions(epochs=self.epochs_spin.value(), batch_size=self.batch_spin.value(),
                          learning_rate=learning_rate, validation_split=round(self.val_spin.value(), 4),
                          seed=self.seed_spin.value(), early_stopping_patience=patience,
                          stop_at_accuracy=round(self.stop_spin.value(), 4) if self.stop_check.isChecked() else None,
                          lr_schedule=getattr(self, "_lr_schedule", "constant") if not folder else "constant")

    def build_config(self, kind: str, folder: str = "") -> MnistConfig | FolderConfig:
        """The run config from the widgets; ConfigError names the bad value."""
        name = self.name_edit.text().strip()
        if kind == "mnist":
            return MnistConfig(model=self.mnist_model(), augment=self.augment_check.isChecked(),
                               train_limit=self.train_limit.value() or None,
                               test_limit=self.test_limit.value() or None, fit=self.fit_options(), name=name)
        unfreeze: int | str = "all" if self.unfreeze_all.isChecked() else self.unfreeze_spin.value()
        mode = self.mode()
        cv_folds = CV_FOLDS if self.cv_check.isChecked() and mode == "frozen" else 0
        return FolderConfig(data_dir=folder, backbone=self.backbone_combo.currentText().strip(),
                            mode=mode, unfreeze=unfreeze, augment=self.augment_check.isChecked(),  # type: ignore[arg-type]
                            fit=self.fit_options(), name=name, cv_folds=cv_folds)

    # ---- summary ----

    def _schedule_summary(self, *_args: Any) -> None:
        if self.isEnabled():
            self._timer.start()

    def shutdown(self) -> None:
        """No more summaries (the window is closing)."""
        self._timer.stop()
        self.setEnabled(False)

    def refresh_summary(self) -> None:
        key = (self.kind, self.mnist_model()) if self.kind == "mnist" else (
            self.kind, self.backbone_combo.currentText().strip(),
            "finetune" if self.finetune_radio.isChecked() else "frozen",
            "all" if self.unfreeze_all.isChecked() else self.unfreeze_spin.value(), self.class_count)
        self._summary_key = key
        if key in self._summary_cache:
            self._show_summary(key, self._summary_cache[key])
            return
        if not key[1]:
            self.summary_label.setText("Choose a backbone.")
            return
        self.summary_label.setText("Building the model summary…")
        fn = (lambda _r, _s: mnist_summary(key[1])) if key[0] == "mnist" else (
            lambda _r, _s: folder_summary(*key[1:]))
        task = Task(fn, "model-summary", owner=self)
        task.returned.connect(lambda result: self._on_summary(key, result))
        task.errored.connect(lambda error: self._on_summary_error(key, error))
        task.finished.connect(lambda: self._tasks.remove(task) if task in self._tasks else None)
        self._tasks.append(task)
        task.start()

    def _on_summary(self, key: tuple[str, str], result: Any) -> None:
        self._summary_cache[key] = result
        if key == self._summary_key:
            self._show_summary(key, result)

    def _on_summary_error(self, key: tuple[str, str], error: str) -> None:
        if key == self._summary_key:
            self.summary = None
            self.summary_table.setRowCount(0)
            self.summary_label.setText(
                f"<span style='color:#a00'>Could not build the summary: {html_text(error)}</span>")
            self.summaryShown.emit()

    def _show_summary(self, key: tuple[str, str], result: Any) -> None:
        info = None
        if key[0] == "folder":
            info, result = result
        self.summary = result
        counts = (f"<b>{html_text(result.name)}</b>: {result.total_params:,} parameters — "
                  f"<b>{result.trainable_params:,}</b> trainable, {result.frozen_params:,} frozen.")
        if info is not None:
            size = "×".join(str(s) for s in info.input_size)
            counts += (f"<br><b>Backbone</b>: {html_text(info.name)}, input {size}, {info.feature_dim} features, "
                       f"{info.blocks} blocks; the new head: dropout + dense, one output per class "
                       f"({key[4]} classes).")
        self.summary_label.setText(counts)
        rows = [(name, kind, shape, f"{params:,}") for name, kind, shape, params in result.layers]
        self.summary_table.setHorizontalHeaderLabels(["Layer", "Type", "Output shape", "Parameters"])
        self.summary_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                item = QTableWidgetItem(str(value))
                if c == 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.summary_table.setItem(r, c, item)
        if info is not None and info.blocks:
            self.unfreeze_spin.setMaximum(info.blocks)
        self.summaryShown.emit()


def _mode_learning_rate(mode: str) -> float:
    return FINETUNE_LEARNING_RATE if mode == "finetune" else FROZEN_LEARNING_RATE

