"""Trust in the GUI (issue 10): unknown answers, several runs side by side, heatmap overlays, the unknown-rate
slider, the calibration page of the results view, heatmaps in the gallery and confusion-cell lists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtWidgets import QLabel

from transferlab.gui.trust_views import ORIGINAL_ICON

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "imagenet"


def _mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def _answered_percent(text: str) -> int:
    match = re.search(r"answers (\d+) %", text)
    assert match, text
    return int(match.group(1))


@pytest.mark.slow
def test_two_runs_side_by_side_with_heatmaps_and_an_unknown_photo(qtbot, make_window, trained_store, digit_png):
    window = make_window(trained_store)
    panel = window.classify_panel
    runs = [panel.run_combo.itemData(i) for i in range(panel.run_combo.count())]
    assert len(runs) == 2
    panel.use_run(runs[0])
    panel.set_extra_runs([runs[1]])
    assert panel.trust.extra_run_ids() == [runs[1]]
    assert "1 more run" in panel.trust.runs_button.text()
    panel.trust.heatmap_box.setChecked(True)
    with qtbot.waitSignal(panel.classified, timeout=60000):
        window.handle_drop(_mime(digit_png, RESOURCES / "coffee.png"))
    qtbot.waitUntil(lambda: len(panel.trust.by_run()) == 2 and not panel.tasks.running(), timeout=60000)
    answers = panel.trust.answers
    assert answers is not None and answers.run_ids == tuple(runs)
    for run_id in runs:
        rows = answers.by_run[run_id]
        assert [Path(a.prediction.file).name for a in rows] == ["one.png", "coffee.png"]
        assert all(a.overlay is not None and a.overlay.ndim == 3 and a.method for a in rows)  # heatmaps shown
        photo = rows[1].prediction
        assert photo.unknown and "doesn't look like a digit" in photo.reason
    assert panel.predictions == answers.primary
    assert panel.results_layout.count() - 1 == 2  # one row per image, each with both runs' answers
    for index in range(2):
        texts = [label.text() for label in panel.results_layout.itemAt(index).widget().findChildren(QLabel)]
        for run_id in runs:
            assert any(t.startswith("Heatmap (") and t.endswith(f"run {run_id}") for t in texts), texts
    photo_row = [label.text() for label in panel.results_layout.itemAt(1).widget().findChildren(QLabel)]
    assert sum("unknown</b></span> (best guess" in t and "look like a digit" in t for t in photo_row) == 2
    # the trade-off follows the slider: a stricter rate answers no more of the held-out images
    qtbot.waitUntil(lambda: "answers" in panel.trust.unknown_control.label.text(), timeout=30000)
    answered_at_5 = _answered_percent(panel.trust.unknown_control.label.text())
    with qtbot.waitSignal(panel.classified, timeout=60000):
        panel.trust.unknown_control.slider.setValue(30)
    label = panel.trust.unknown_control.label.text()
    assert "target 30 %" in label and _answered_percent(label) <= answered_at_5
    assert panel.cache.get(runs[0]).trust.thresholds.false_unknown_rate == 0.3  # the answers used it


@pytest.mark.slow
def test_results_view_shows_calibration(qtbot, make_window, trained_store):
    window = make_window(trained_store)
    run_id = trained_store.list()[0].run_id
    with qtbot.waitSignal(window.results_panel.shown, timeout=30000):
        window.results_panel.show_run(run_id)
    page = window.results_panel.calibration_page
    assert window.results_panel.tabs.indexOf(page) >= 0
    text = page.summary.text()
    assert "Expected calibration error" in text and "after temperature scaling" in text
    assert len(page.diagram.ax.lines) == 3  # the diagonal, before and after


@pytest.mark.slow
def test_gallery_and_confusion_cell_show_heatmaps(qtbot, make_window, trained_store):
    window = make_window(trained_store)
    panel = window.results_panel
    with qtbot.waitSignal(panel.shown, timeout=30000):
        window.show_results(trained_store.list()[0].run_id)
    assert panel.misclassified.count() > 0
    before = panel.misclassified.item(0).icon().pixmap(72, 72).toImage()
    with qtbot.waitSignal(panel.heatmaps.shown, timeout=60000) as done:
        panel.heatmaps.box.setChecked(True)
    assert done.args[0] == panel.misclassified.count()
    after = panel.misclassified.item(0).icon().pixmap(72, 72).toImage()
    assert after != before  # the icon now carries the overlay
    with qtbot.waitSignal(panel.heatmaps.shown, timeout=60000) as done:
        panel.show_cell(3, 3)
    assert done.args[0] >= panel.cell_list.count() > 0
    assert all(panel.cell_list.item(i).data(ORIGINAL_ICON) is not None for i in range(panel.cell_list.count()))
    panel.heatmaps.box.setChecked(False)  # the images come back
    assert panel.misclassified.item(0).icon().pixmap(72, 72).toImage() == before


@pytest.mark.slow
def test_runs_selected_in_the_runs_view_answer_side_by_side(qtbot, make_window, trained_store):
    window = make_window(trained_store)
    runs = [run.run_id for run in window.runs_panel.runs]
    window.runs_panel.select(runs)
    window.runs_panel.classify_button.click()
    panel = window.classify_panel
    assert window.tabs.currentWidget() is panel
    assert [panel.run_id(), *panel.trust.extra_run_ids()] == runs
    window.runs_panel.select(runs[1:])  # one run selected: it answers alone
    window.runs_panel.classify_button.click()
    assert panel.run_id() == runs[1] and panel.trust.extra_run_ids() == []
    assert "no other run" in panel.trust.runs_button.text()
