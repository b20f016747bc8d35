"""The Model panel: which network, how to fit it, and its summary (layers, output shapes, trainable and
frozen parameters) before training. Building the summary imports TensorFlow, so it runs on a Task."""

from __future__ import annotations

import dataclasses
import logging
from functools import partial
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

from transferlab.core.catalog import BUNDLED_BACKBONES, MNIST_MODEL_TITLES, MnistModel
from transferlab.core.config import (
    DEFAULT_LEARNING_RATE,
    FitOptions,
    FolderConfig,
    MnistConfig,
    RunConfig,
    TransferMode,
    Unfreeze,
    folder_config_for,
    mnist_preset,
)
from transferlab.core.errors import TransferlabError
from transferlab.core.kinds import MNIST, kind_named
from transferlab.core.stopping import StopFlag
from transferlab.core.training.kinds import ModelPreview, model_preview
from transferlab.gui.honest_numbers import CV_AUTO_MAX_IMAGES, CV_FOLDS, ModeChoices
from transferlab.gui.widgets import friendly_error, html_text, line_edit
from transferlab.gui.worker import TaskCancelled, TaskGroup, describe_error

logger = logging.getLogger(__name__)

SUMMARY_DELAY_MS = 250
AUGMENT_TEXT = {"mnist": "Augment training images (random rotation, shift, shear and zoom)",
                "folder": "Augment training images (random flip, rotation and zoom)"}
BACKBONE_TOOLTIP = ("<p>The pretrained feature extractor: <b>efficientnet-lite0</b> (bundled), a TF Hub URL or a "
                    "local TF Hub SavedModel folder.</p><p><b>A TF Hub model or SavedModel is a program:</b> "
                    "choosing one runs its TensorFlow graph, which can read and write your files. Use only "
                    "models you trust. The run keeps a copy of it and later loads only that copy.</p>")

PREVIEW_FOLDER = "preview"  # the data folder of the config a summary is built for (the summary needs no data)
SummaryKey = tuple[RunConfig, int]  # the config (fit options and name reset) and the number of classes


def _build_preview(key: SummaryKey, _report: Any, stop: StopFlag) -> ModelPreview:
    """Worker: the summary of the model a run of key's config trains; a superseded request builds nothing."""
    if stop.requested:
        raise TaskCancelled()
    return model_preview(*key)


class ModelPanel(QWidget):
    compareRequested = Signal()  # "frozen vs fine-tuned" for the current folder
    summaryShown = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = MNIST.name
        self.class_count = 2  # of the chosen folder, once scanned: sizes the new head in the summary
        self.summary: Any = None
        self.summary_error = ""  # why the chosen model can't be built ("" when it can)
        self._summary_cache: dict[SummaryKey, ModelPreview] = {}
        self._summary_key: SummaryKey | None = None
        self._lr_schedule = "constant"
        self._label_smoothing = 0.0
        self.mode_choices = ModeChoices()  # per transfer mode: the learning rate / epochs the user set
        self._cv_chosen = False  # the user ticked or unticked cross-validation: no more automatic choice
        self.tasks = TaskGroup(self)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SUMMARY_DELAY_MS)
        self._timer.timeout.connect(self.refresh_summary)
        self._build()
        self.apply_preset("fast")
        self.set_kind(MNIST.name)

    # ---- layout ----

    def _build(self) -> None:
        # MNIST
        self.mnist_box = QGroupBox("Network (MNIST)")
        self.model_combo = QComboBox()
        for key, label in MNIST_MODEL_TITLES.items():
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
        line_edit(self.backbone_combo).setPlaceholderText("efficientnet-lite0, a TF Hub URL or a SavedModel folder")
        self.backbone_combo.setToolTip(BACKBONE_TOOLTIP)
        self.backbone_combo.currentTextChanged.connect(self._schedule_summary)
        self.backbone_browse = QPushButton("SavedModel folder…")
        self.backbone_browse.setToolTip(BACKBONE_TOOLTIP)
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
        self.unfreeze_spin.setSuffix(" block")
        self.unfreeze_spin.valueChanged.connect(
            lambda value: self.unfreeze_spin.setSuffix(" block" if value == 1 else " blocks"))
        self.unfreeze_all = QCheckBox("all")
        self.finetune_radio.toggled.connect(self._update_enabled)
        self.finetune_radio.toggled.connect(self._follow_mode_fit)
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
        folder_layout = QVBoxLayout(self.folder_box)
        folder_layout.addLayout(backbone_row)
        folder_layout.addWidget(self.frozen_radio)
        folder_layout.addLayout(tune_row)
        folder_layout.addWidget(self._build_cv_check())
        folder_layout.addWidget(self.compare_button)
        folder_layout.addLayout(self._build_folder_options())
        self.skip_empty_check = QCheckBox("Leave out empty class folders")
        self.skip_empty_check.setToolTip("A class folder without a single usable image is refused (it would "
                                         "become a class the model never saw); check this to train without it")
        folder_layout.addWidget(self.skip_empty_check)

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
        self.early_check = QCheckBox("Stop early when the validation loss stops improving for")
        self.early_spin = QSpinBox()
        self.early_spin.setRange(1, 50)
        self.early_spin.setValue(3)
        self.early_spin.setSuffix(" epochs")
        self.early_check.setToolTip("Keeps the weights of the best epoch (needs a validation set). Folder runs "
                                    "stop early by their mode's own rule; tick this to set the patience yourself.")
        self.early_check.toggled.connect(self.early_spin.setEnabled)
        self.early_spin.setEnabled(False)
        early_row = QHBoxLayout()
        early_row.addWidget(self.early_check)
        early_row.addWidget(self.early_spin)
        early_row.addStretch(1)
        fit_form.addRow(early_row)
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

    def _build_folder_options(self) -> QFormLayout:
        """What the CLI offers for folder runs: a held-out test split, a separate validation folder, reusing a
        run's split and fine-tuning from a frozen run."""
        self.test_spin = QDoubleSpinBox()
        self.test_spin.setRange(0.0, 0.5)
        self.test_spin.setSingleStep(0.05)
        self.test_spin.setDecimals(2)
        self.test_spin.setSpecialValueText("none (evaluate on the validation images)")
        self.test_spin.setToolTip("Images held out of training and validation, used once for the final accuracy")
        self.val_dir_edit = QLineEdit()
        self.val_dir_edit.setPlaceholderText("optional: a folder with the same class subfolders")
        val_browse = QPushButton("Choose…")
        val_browse.clicked.connect(self._on_val_dir_browse)
        val_row = QHBoxLayout()
        val_row.addWidget(self.val_dir_edit, 1)
        val_row.addWidget(val_browse)
        self.from_run_label = QLabel("")
        self.from_run_label.setWordWrap(True)
        self.from_run_clear = QPushButton("Forget")
        self.from_run_clear.setToolTip("Train with a fresh split and a fresh head again")
        self.from_run_clear.clicked.connect(lambda: self.start_from_run("", ""))
        from_row = QHBoxLayout()
        from_row.addWidget(self.from_run_label, 1)
        from_row.addWidget(self.from_run_clear)
        form = QFormLayout()
        form.addRow("Test split", self.test_spin)
        form.addRow("Validation folder", val_row)
        form.addRow(from_row)
        self.split_from_run = ""
        self.init_from_run = ""
        self.start_from_run("", "")
        return form

    def _on_val_dir_browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a validation folder of class subfolders")
        if folder:
            self.val_dir_edit.setText(folder)

    def start_from_run(self, split_from: str, init_from: str) -> None:
        """Reuse a run's split (`split_from`) and/or fine-tune starting from a frozen run (`init_from`)."""
        self.split_from_run, self.init_from_run = split_from, init_from
        parts = []
        if init_from:
            parts.append(f"fine-tunes starting from the frozen run <b>{html_text(init_from)}</b>")
            self.finetune_radio.setChecked(True)
        if split_from:
            parts.append(f"reuses the split of run <b>{html_text(split_from)}</b>")
        self.from_run_label.setText("The next run " + " and ".join(parts) + "." if parts else "")
        self.from_run_label.setVisible(bool(parts))
        self.from_run_clear.setVisible(bool(parts))

    # ---- state ----

    def set_class_count(self, count: int) -> None:
        if count >= 2 and count != self.class_count:
            self.class_count = count
            self._schedule_summary()

    def set_kind(self, kind: str) -> None:
        previous, self.kind = self.kind, kind
        changed = previous != self.kind
        uses_folder = kind_named(kind).uses_folder
        self.mnist_box.setVisible(not uses_folder)
        self.folder_box.setVisible(uses_folder)
        self.augment_check.setText(AUGMENT_TEXT["folder" if uses_folder else "mnist"])
        if changed:
            if uses_folder:
                self._apply_fit(FolderConfig(data_dir=".").fit, augment=False)
                self.mode_choices.reset()
                self._show_mode_fit(self.mode())
            else:
                self.apply_preset(self.mnist_model())
        self._update_enabled()
        self._schedule_summary()

    def mnist_model(self) -> MnistModel:
        model: MnistModel = self.model_combo.currentData()
        return model

    def set_mnist_model(self, model: str) -> None:
        index = self.model_combo.findData(model)
        if index >= 0:
            self.model_combo.setCurrentIndex(index)

    def apply_preset(self, model: MnistModel) -> None:
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
        self._label_smoothing = fit.label_smoothing

    def _on_mnist_model(self) -> None:
        self.apply_preset(self.mnist_model())
        self._schedule_summary()

    def _on_backbone_browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a TF Hub-format SavedModel folder")
        if folder:
            self.backbone_combo.setEditText(folder)

    def _follow_mode_fit(self, finetune: bool) -> None:
        """Each mode keeps its own learning rate and epochs: what the user set for the mode being left is
        remembered for it (and for its arm in "frozen vs fine-tuned"); the other mode's are shown."""
        left = "frozen" if finetune else "finetune"
        self.mode_choices.remember(left, self.lr_spin.value(), self.epochs_spin.value())
        self._show_mode_fit("finetune" if finetune else "frozen")

    def _show_mode_fit(self, mode: str) -> None:
        learning_rate, epochs = self.mode_choices.shown(mode)
        self.lr_spin.setValue(learning_rate)
        self.epochs_spin.setValue(epochs)

    def mode(self) -> TransferMode:
        return "finetune" if self.finetune_radio.isChecked() else "frozen"

    def explicit_fit(self) -> dict[str, dict[str, Any]]:
        """For "frozen vs fine-tuned": per mode, the values the user set away from that mode's own (the current
        mode's from the form, the other's as last set); each applies to its own arm only."""
        return self.mode_choices.per_arm(self.mode(), self.lr_spin.value(), self.epochs_spin.value())

    def _build_cv_check(self) -> QCheckBox:
        self.cv_check = QCheckBox(f"Cross-validate the head over {CV_FOLDS} folds (frozen runs: reuses the cached "
                                  "features, costs seconds)")
        self.cv_check.setToolTip("Reports accuracy as mean ± spread over the folds, so one lucky or unlucky "
                                 f"validation split can't mislead. On by default for folders of up to "
                                 f"{CV_AUTO_MAX_IMAGES:,} images.")
        self.cv_check.clicked.connect(self._on_cv_clicked)
        return self.cv_check

    def _on_cv_clicked(self) -> None:
        self._cv_chosen = True

    def set_folder_size(self, images: int) -> None:
        """Cross-validation on by default for folders small enough that it costs little."""
        if not self._cv_chosen:
            self.cv_check.setChecked(0 < images <= CV_AUTO_MAX_IMAGES)

    def compare_config(self, folder: str) -> FolderConfig:
        """The base config of "frozen vs fine-tuned": the frozen arm is cross-validated when the option is on
        (its spread is the noise the comparison's headline quotes)."""
        return dataclasses.replace(self._folder_config(folder), cv_folds=CV_FOLDS if self.cv_check.isChecked() else 0)

    def _update_enabled(self) -> None:
        finetune = self.finetune_radio.isChecked()
        self.unfreeze_spin.setEnabled(finetune and not self.unfreeze_all.isChecked())
        self.unfreeze_all.setEnabled(finetune)
        self.stop_spin.setEnabled(self.stop_check.isChecked())

    def fit_options(self) -> FitOptions:
        return FitOptions(epochs=self.epochs_spin.value(), batch_size=self.batch_spin.value(),
                          learning_rate=self.lr_spin.value(), validation_split=round(self.val_spin.value(), 4),
                          seed=self.seed_spin.value(),
                          stop_at_accuracy=round(self.stop_spin.value(), 4) if self.stop_check.isChecked() else None,
                          early_stopping_patience=self.early_spin.value() if self.early_check.isChecked() else None,
                          lr_schedule="onecycle" if self._lr_schedule == "onecycle" else "constant",
                          label_smoothing=self._label_smoothing)

    def build_config(self, kind: str, folder: str = "") -> RunConfig:
        """The run config from the widgets; ConfigError names the bad value."""
        if kind_named(kind).uses_folder:
            return self._folder_config(folder)
        return self._mnist_config()

    def _mnist_config(self) -> MnistConfig:
        return MnistConfig(model=self.mnist_model(), augment=self.augment_check.isChecked(),
                           train_limit=self.train_limit.value() or None, test_limit=self.test_limit.value() or None,
                           fit=self.fit_options(), name=self.name_edit.text().strip())

    def _folder_config(self, folder: str) -> FolderConfig:
        unfreeze: Unfreeze = "all" if self.unfreeze_all.isChecked() else self.unfreeze_spin.value()
        mode = self.mode()
        base = FolderConfig(data_dir=folder, backbone=self.backbone_combo.currentText().strip(), mode=mode,
                            unfreeze=unfreeze, augment=self.augment_check.isChecked(), fit=self.fit_options(),
                            skip_empty_classes=self.skip_empty_check.isChecked(), name=self.name_edit.text().strip(),
                            cv_folds=CV_FOLDS if self.cv_check.isChecked() and mode == "frozen" else 0,
                            test_split=round(self.test_spin.value(), 4),
                            val_dir=self.val_dir_edit.text().strip() or None,
                            split_from_run=self.split_from_run or None, init_from_run=self.init_from_run or None)
        # Learning rate, epochs and early stopping: the mode's own, except what the user set for this mode
        # (early stopping: the patience in the form when its box is ticked).
        explicit = self.mode_choices.chosen(mode, self.lr_spin.value(), self.epochs_spin.value())
        if self.early_check.isChecked():
            explicit["early_stopping_patience"] = self.early_spin.value()
        return folder_config_for(mode, base, explicit)

    # ---- summary ----

    def _schedule_summary(self, *_args: Any) -> None:
        if self.isEnabled():
            self._timer.start()

    def shutdown(self) -> None:
        """No more summaries (the window is closing)."""
        self._timer.stop()
        self.tasks.cancel("model-summary", "the window was closed")
        self.setEnabled(False)

    def summary_key(self) -> SummaryKey | None:
        """What the summary depends on: the config without fit options or name, and the number of classes;
        None when the settings are incomplete or invalid (the summary says why)."""
        if kind_named(self.kind).uses_folder and not self.backbone_combo.currentText().strip():
            self.summary_label.setText("Choose a backbone.")
            return None
        try:
            config = self.build_config(self.kind, PREVIEW_FOLDER)
        except TransferlabError as exc:  # a bad value: the summary says so, training will too
            self.summary_label.setText(f"<span style='color:#a00'>{html_text(str(exc))}</span>")
            return None
        config = dataclasses.replace(config, fit=FitOptions(), name="")
        if isinstance(config, FolderConfig):  # where the data comes from does not change the model
            config = dataclasses.replace(config, test_split=0.0, val_dir=None,
                                         split_from_run=None, init_from_run=None)
        return config, self.class_count

    def refresh_summary(self) -> None:
        key = self.summary_key()
        self._summary_key = key
        self.tasks.cancel("model-summary")  # this request supersedes any summary still being built
        if key is None:
            return
        if key in self._summary_cache:
            self._show_summary(key, self._summary_cache[key])
            return
        self.summary_label.setText("Building the model summary…")
        # A newer request supersedes this one: only the summary of the current settings is built and shown.
        self.tasks.start("model-summary", partial(_build_preview, key), returned=partial(self._on_summary, key),
                         errored=partial(self._on_summary_error, key))

    def _on_summary(self, key: SummaryKey, result: ModelPreview) -> None:
        self._summary_cache[key] = result
        if key == self._summary_key:
            self._show_summary(key, result)

    def _on_summary_error(self, key: SummaryKey, error: BaseException) -> None:
        if key == self._summary_key:
            self.summary = None
            self.summary_error = friendly_error(describe_error(error))
            self.summary_table.setRowCount(0)
            self.summary_label.setText(
                f"<span style='color:#a00'>Could not build the summary: {html_text(self.summary_error)}</span>")
            self.summaryShown.emit()

    def _show_summary(self, key: SummaryKey, preview: ModelPreview) -> None:
        info, result = preview.backbone, preview.summary
        self.summary = result
        self.summary_error = ""
        fixed = "frozen" if kind_named(key[0].kind).uses_folder else "non-trainable (BatchNorm statistics)"
        counts = (f"<b>{html_text(result.name)}</b>: {result.total_params:,} parameters — "
                  f"<b>{result.trainable_params:,}</b> trainable, {result.frozen_params:,} {fixed}.")
        if info is not None:
            size = "×".join(str(s) for s in info.input_size)
            counts += (f"<br><b>Backbone</b>: {html_text(info.name)}, input {size}, {info.feature_dim} features, "
                       f"{info.blocks} blocks; the new head: dropout + dense, one output per class "
                       f"({key[1]} classes).")
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
