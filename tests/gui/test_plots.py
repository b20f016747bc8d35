"""Curves and empty states (issue 11, items 6 and 11): plots say what will appear instead of blank axes, scale
to the per-epoch values, use whole-number epoch ticks, offer a log-scale loss, and show a one-epoch run."""

from __future__ import annotations

import pytest


@pytest.fixture
def plots(qtbot):
    from transferlab.gui import plots  # imported here, as in the other GUI tests (matplotlib's Qt backend)

    return plots


def _history(epochs: int) -> list[dict[str, float]]:
    return [{"epoch": e, "loss": 0.5 / e, "val_loss": 0.55 / e, "accuracy": 0.90 + 0.02 * e,
             "val_accuracy": 0.89 + 0.02 * e} for e in range(1, epochs + 1)]


def test_empty_plots_say_what_will_appear(qtbot, plots):
    curves, confusion, compare = plots.TrainingCurves(), plots.ConfusionPlot(), plots.CompareCurves()
    for widget in (curves, confusion, compare):
        qtbot.addWidget(widget)
    assert curves.placeholder_text == plots.TRAINING_EMPTY and not curves.ax_loss.get_visible()
    assert "Show results" in confusion.placeholder_text and not confusion.ax.get_visible()
    assert "two or more runs" in compare.placeholder_text
    curves.add_batch(1, 1, 10, 2.3, 0.1)  # the first batch: the axes appear
    assert curves.placeholder_text == "" and curves.ax_loss.get_visible()
    confusion.set_matrix([[3, 1], [0, 4]], ["cat", "dog"])
    assert confusion.placeholder_text == "" and confusion.ax.get_visible()


def test_curves_scale_to_the_epochs_not_the_first_batches(qtbot, plots):
    curves = plots.TrainingCurves()
    qtbot.addWidget(curves)
    curves.reset(4)
    curves.add_batch(1, 1, 100, 9.0, 0.05)  # a huge first-batch loss
    for row in _history(4):
        curves.add_epoch(row["epoch"], row)
    curves.fit_view()
    low, high = curves.ax_loss.get_ylim()
    assert high < 0.7 and low > 0.05  # the per-epoch losses (0.125 … 0.55) fill the axis
    acc_low, acc_high = curves.ax_acc.get_ylim()
    assert acc_low > 0.85 and acc_high <= 1.005
    ticks = [t for t in curves.ax_loss.get_xticks() if 0 <= t <= 4]
    assert ticks and all(float(t).is_integer() for t in ticks)
    curves.set_log_loss(True)
    assert curves.ax_loss.get_yscale() == "log" and curves.ax_loss.get_ylim()[0] > 0
    assert curves.ax_loss.get_ylim()[1] >= 9.0  # on a log scale the first batches fit too


def test_the_within_epoch_trace_is_one_line_on_fast_runs(qtbot, plots):
    curves = plots.TrainingCurves()
    qtbot.addWidget(curves)
    curves.reset(5)
    for epoch in range(1, 6):  # one throttled batch report per epoch
        curves.add_batch(epoch, 10, 10, 1.0 / epoch, 0.5)
    ys = list(curves.batch_loss_line.get_ydata())
    assert len(ys) == 5 and all(y == y for y in ys)  # no NaN gaps that break it into dashes


def test_a_single_epoch_run_is_visible_in_the_compare_plot(qtbot, plots):
    compare = plots.CompareCurves()
    qtbot.addWidget(compare)
    one = [{"epoch": 1, "loss": 0.4, "accuracy": 0.9}]  # no validation set, one epoch
    compare.set_runs(["short run", "long run"], [one, _history(3)])
    lines = compare.ax_acc.get_lines()
    single = [line for line in lines if len(line.get_xdata()) == 1]
    assert single and all(line.get_marker() not in (None, "", "None") for line in single)
    labels = [text.get_text() for text in compare.ax_acc.get_legend().get_texts()]
    assert labels == ["short run", "long run"]
    left, right = compare.ax_acc.get_xlim()
    assert left < 1 and right > 3


def test_the_trace_follows_recent_batches_not_keras_running_mean(qtbot, plots):
    curves = plots.TrainingCurves()
    qtbot.addWidget(curves)
    curves.reset(2)
    curves.add_batch(1, 5, 10, 1.0, 0.5)  # running mean of batches 1-5
    curves.add_batch(1, 10, 10, 0.8, 0.6)  # running mean of 1-10: batches 6-10 averaged 0.6
    curves.add_batch(2, 5, 10, 0.5, 0.8)  # a new epoch: Keras' mean restarts
    ys = list(curves.batch_loss_line.get_ydata())
    assert ys == pytest.approx([1.0, 0.7 * 1.0 + 0.3 * 0.6, 0.7 * 0.88 + 0.3 * 0.5])


def test_zoom_to_the_last_epochs_scales_both_axes_to_them(qtbot, plots):
    curves = plots.TrainingCurves()
    qtbot.addWidget(curves)
    curves.reset(12)
    for row in _history(12):
        curves.add_epoch(row["epoch"], row)
    curves.fit_view()
    full_high = curves.ax_loss.get_ylim()[1]
    curves.set_zoom_last(True)
    left, right = curves.ax_loss.get_xlim()
    assert 12 - plots.ZOOM_EPOCHS < left < 12 - plots.ZOOM_EPOCHS + 1 and right > 12
    low, high = curves.ax_loss.get_ylim()
    last = _history(12)[12 - plots.ZOOM_EPOCHS:]
    assert high < 0.55 / 8 + 0.01 < full_high  # the first epochs' loss (0.5 … 0.1) is out of view
    assert low <= min(r["loss"] for r in last) and high >= max(r["val_loss"] for r in last)
    acc_low, _ = curves.ax_acc.get_ylim()
    assert acc_low > 0.89 + 0.02 * 7  # the accuracy axis too
    curves.add_epoch(13, {"loss": 0.03, "val_loss": 0.04, "accuracy": 1.0, "val_accuracy": 1.0})
    assert curves.ax_loss.get_xlim()[1] > 13  # a live epoch moves the window
    curves.set_zoom_last(False)
    assert curves.ax_loss.get_xlim()[0] == 0 and curves.ax_loss.get_ylim()[1] > 0.5


def test_the_compare_plot_reads_out_every_run_at_the_hovered_epoch_and_zooms(qtbot, plots):
    compare = plots.CompareCurves()
    qtbot.addWidget(compare)
    compare.set_runs(["frozen", "fine-tuned"], [_history(3), _history(10)])
    text = compare.readout(2.2)
    assert text.splitlines() == [
        "frozen — epoch 2: val. loss 0.2750, val. accuracy 0.9300, loss 0.2500, accuracy 0.9400",
        "fine-tuned — epoch 2: val. loss 0.2750, val. accuracy 0.9300, loss 0.2500, accuracy 0.9400"]
    assert compare.readout(9).splitlines()[0].startswith("frozen — epoch 3")  # its last epoch
    compare.set_zoom_last(True)
    left, right = compare.ax_loss.get_xlim()
    assert left == 10 - plots.ZOOM_EPOCHS + 0.5 and right == 10.5
    assert compare.ax_loss.get_ylim()[1] < 0.55 / 6 + 0.01


def test_a_run_starts_with_one_full_redraw_and_its_first_batch_is_a_blit(qtbot, plots):
    curves = plots.TrainingCurves()
    qtbot.addWidget(curves)
    curves.setMinimumSize(curves.minimumSizeHint())
    curves.show()
    curves.begin(3)
    assert curves.starting and curves.ax_loss.get_visible()  # empty axes with a "starting" note
    qtbot.waitUntil(lambda: curves._background is not None, timeout=5000)
    full = curves.full_draws
    redraws = curves.redraws
    curves.add_batch(1, 1, 100, 2.0, 0.2)
    assert not curves.starting
    qtbot.waitUntil(lambda: curves.redraws > redraws, timeout=5000)
    assert curves.full_draws == full  # the first batch costs a blit, not a ~100 ms full redraw mid-training
