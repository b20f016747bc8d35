"""Trust in the GUI (issue 10): unknown answers, several runs side by side, heatmap overlays, the unknown-rate
slider, and the calibration page of the results view."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PySide6.QtCore import QMimeData, QUrl

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "imagenet"


def _mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def test_two_runs_side_by_side_with_heatmaps_and_an_unknown_photo(qtbot, make_window, trained_store, digit_png):
    window = make_window(trained_store)
    panel = window.classify_panel
    runs = [panel.run_combo.itemData(i) for i in range(panel.run_combo.count())]
    assert len(runs) == 2
    panel.use_run(runs[0])
    panel.set_extra_runs([runs[1]])
    assert panel.extra_run_ids() == [runs[1]]
    panel.heatmap_box.setChecked(True)
    with qtbot.waitSignal(panel.classified, timeout=60000):
        window.handle_drop(_mime(digit_png, RESOURCES / "coffee.png"))
    qtbot.waitUntil(lambda: len(panel.answers) == 2 and panel._task is None, timeout=60000)
    assert set(panel.answers) == set(runs)
    for predictions in panel.answers.values():
        assert [Path(p.file).name for p in predictions] == ["one.png", "coffee.png"]
        assert predictions[1].unknown and "doesn't look like a digit" in predictions[1].reason
    assert panel.results_layout.count() - 1 == 2  # one row per image, each with both runs' answers
    assert "answers" in panel.unknown_control.label.text()
    # a stricter rate flags at least as many held-out images: the trade-off label follows the slider
    with qtbot.waitSignal(panel.classified, timeout=60000):
        panel.unknown_control.slider.setValue(30)
    assert "target 30 %" in panel.unknown_control.label.text()
    window.grab().save(str(digit_png.parent / "classify-trust.png"))
    assert Image.open(digit_png.parent / "classify-trust.png").size[0] > 0


def test_results_view_shows_calibration(qtbot, make_window, trained_store):
    window = make_window(trained_store)
    run_id = trained_store.list()[0].run_id
    with qtbot.waitSignal(window.results_panel.shown, timeout=30000):
        window.results_panel.show_run(run_id)
    text = window.results_panel.calibration_page.summary.text()
    assert "Expected calibration error" in text and "after temperature scaling" in text
    assert window.results_panel.calibration_page.diagram.ax.lines  # the diagonal and the curves


def test_gallery_and_confusion_cell_show_heatmaps(qtbot, make_window, trained_store):
    window = make_window(trained_store)
    panel = window.results_panel
    with qtbot.waitSignal(panel.shown, timeout=30000):
        window.show_results(trained_store.list()[0].run_id)
    assert panel.misclassified.count() > 0
    before = panel.misclassified.item(0).icon().pixmap(72, 72).toImage()
    with qtbot.waitSignal(panel.heatmapsShown, timeout=60000) as done:
        panel.heatmap_box.setChecked(True)
    assert done.args[0] == panel.misclassified.count()
    after = panel.misclassified.item(0).icon().pixmap(72, 72).toImage()
    assert after != before  # the icon now carries the overlay
    with qtbot.waitSignal(panel.heatmapsShown, timeout=60000) as done:
        panel.show_cell(3, 3)
    assert done.args[0] >= panel.cell_list.count() > 0
