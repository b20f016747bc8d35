"""The command line runs the same engine: JSON output, meaningful exit codes, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from transferlab.core.cli import main
from transferlab.core.data.mnist import load_mnist


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _last_json(capsys) -> object:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture()
def trained_run(home, capsys) -> str:
    code = main(["train", "mnist", "--model", "cnn", "--epochs", "2", "--train-limit", "3000", "--test-limit",
                 "500", "--json"])
    assert code == 0
    result = _last_json(capsys)
    assert result["status"] == "finished"
    assert result["metrics"]["test_accuracy"] > 0.85
    return result["run_id"]


@pytest.mark.slow
def test_train_predict_evaluate_and_runs_commands(trained_run, tmp_path, capsys):
    digit = load_mnist().test_images[1]  # a "2"
    Image.fromarray((255 - digit).astype(np.uint8)).resize((140, 140)).save(tmp_path / "my two.png")
    (tmp_path / "notes.png").write_text("not an image")
    assert main(["predict", trained_run, str(tmp_path / "my two.png"), str(tmp_path / "notes.png"), "--json"]) == 2
    good, bad = _last_json(capsys)
    assert good["label"] == "2" and good["top"][0]["label"] == "2" and 0 < good["probability"] <= 1
    assert len(good["top"]) == 3
    assert bad["label"] is None and "not" in bad["error"]

    assert main(["evaluate", trained_run[:-2], "--json"]) == 0
    assert _last_json(capsys)["metrics"]["test_accuracy"] > 0.85

    assert main(["runs", "list", "--json"]) == 0
    [listed] = _last_json(capsys)
    assert listed["run_id"] == trained_run and listed["status"] == "finished" and listed["epochs"] == 2

    assert main(["runs", "show", "latest", "--json"]) == 0
    assert len(_last_json(capsys)["history"]) == 2


@pytest.mark.slow
def test_train_mnist_accurate_preset_augments_unless_asked_otherwise(home, capsys):
    assert main(["train", "mnist", "--model", "accurate", "--epochs", "1", "--train-limit", "300",
                 "--test-limit", "100", "--json"]) == 0
    assert _last_json(capsys)["status"] == "finished"
    assert main(["runs", "show", "latest", "--json"]) == 0
    config = _last_json(capsys)["config"]
    assert config["model"] == "accurate" and config["augment"] is True
    assert config["fit"]["lr_schedule"] == "onecycle"


@pytest.mark.slow
def test_runs_compare_and_delete(home, capsys):
    for model in ("ann", "cnn"):
        assert main(["train", "mnist", "--model", model, "--epochs", "1", "--train-limit", "300", "--test-limit",
                     "100", "--json"]) == 0
    ids = [run["run_id"] for run in (json.loads(line) for line in capsys.readouterr().out.splitlines())]
    assert main(["runs", "compare", *ids, "--json"]) == 0
    comparison = _last_json(capsys)
    assert comparison["config_diff"]["model"] == ["ann", "cnn"]
    assert main(["runs", "delete", ids[0], "no-such-run"]) == 2  # nothing is deleted on a typo
    assert "no such run" in capsys.readouterr().err
    assert main(["runs", "delete", ids[0]]) == 0
    assert main(["runs", "list", "--json"]) == 0
    assert [r["run_id"] for r in _last_json(capsys)] == [ids[1]]


def test_bad_input_gives_one_line_and_a_nonzero_exit(home, capsys):
    assert main(["evaluate", "no-such-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: expected a run id") and "\n" not in err
    assert main(["train", "mnist", "--epochs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: epochs: expected an integer >= 1, got 0"
    with pytest.raises(SystemExit) as info:
        main(["train", "mnist", "--model", "resnet"])
    assert info.value.code == 2


def test_runs_dir_option(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "elsewhere"))
    assert main(["--runs-dir", str(tmp_path / "mine"), "runs", "list"]) == 0
    assert "no runs yet" in capsys.readouterr().out
