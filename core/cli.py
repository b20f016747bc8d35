"""The command line: `transferlab train|compare|doctor|evaluate|predict|export|runs ...`, over the same engine calls
the GUI uses. With --json the last line on stdout is one JSON object (or list). Exit codes: 0 done,
1 the run failed, 2 bad input or usage, 130 stopped (Ctrl-C)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from transferlab.core.errors import TransferlabError

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 1, 2, 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.runs_dir:
        os.environ["TRANSFERLAB_HOME"] = args.runs_dir  # one place decides where runs live
    try:
        return args.handler(args)
    except TransferlabError as exc:
        _err(f"error: {exc}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_STOPPED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="transferlab", description="Train image classifiers on a laptop CPU, "
                                     "offline. Without arguments the desktop app opens.")
    parser.add_argument("--runs-dir", help="where runs are stored (default: $TRANSFERLAB_HOME/runs or the user "
                        "data folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model and store the run").add_subparsers(
        dest="source", required=True)
    mnist = train.add_parser("mnist", help="a scratch network on MNIST (offline)")
    mnist.add_argument("--model", choices=("fast", "cnn", "ann"), default="fast")
    mnist.add_argument("--train-limit", type=int, help="use only the first N training digits")
    mnist.add_argument("--test-limit", type=int, help="evaluate on the first N test digits")
    _add_fit_options(mnist)
    mnist.set_defaults(handler=_cmd_train_mnist)

    folder = train.add_parser("folder", help="transfer learning on a folder of class subfolders")
    _add_folder_options(folder)
    _add_fit_options(folder)
    folder.set_defaults(handler=_cmd_train_folder)

    folder.add_argument("--cv", type=int, default=0, dest="cv_folds", metavar="K",
                        help="also cross-validate a head on the cached features over K stratified folds (frozen)")

    compare = commands.add_parser("compare", help="train frozen and fine-tuned on the same split and compare")
    _add_folder_options(compare, with_mode=False)
    _add_fit_options(compare)
    compare.set_defaults(handler=_cmd_compare)

    _add_doctor_parser(commands)

    evaluate = commands.add_parser("evaluate", help="evaluate a stored run (MNIST: on the test set again)")
    evaluate.add_argument("run", help="run id, unique prefix, or 'latest'")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=_cmd_evaluate)

    predict = commands.add_parser("predict", help="classify image files with a stored run")
    predict.add_argument("run")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(handler=_cmd_predict)

    export = commands.add_parser("export", help="export a run's model")
    export.add_argument("run")
    export.add_argument("--format", choices=("keras", "savedmodel", "tflite"), default="keras")
    export.add_argument("--out", help="output path (default: inside the run folder)")
    export.add_argument("--json", action="store_true")
    export.set_defaults(handler=_cmd_export)

    runs = commands.add_parser("runs", help="list, show, compare or delete stored runs").add_subparsers(
        dest="action", required=True)
    listing = runs.add_parser("list")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_cmd_runs_list)
    show = runs.add_parser("show")
    show.add_argument("run")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_cmd_runs_show)
    diff = runs.add_parser("compare")
    diff.add_argument("runs", nargs="+")
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(handler=_cmd_runs_compare)
    delete = runs.add_parser("delete")
    delete.add_argument("runs", nargs="+")
    delete.set_defaults(handler=_cmd_runs_delete)
    return parser


def _add_fit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--val-split", type=float, dest="validation_split")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--stop-at-accuracy", type=float, help="stop once training accuracy reaches this")
    parser.add_argument("--early-stopping", type=int, dest="early_stopping_patience", metavar="PATIENCE",
                        help="stop after PATIENCE epochs without val_loss improvement")
    parser.add_argument("--name", default="", help="a label for the run")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")


def _add_folder_options(parser: argparse.ArgumentParser, with_mode: bool = True) -> None:
    parser.add_argument("path", help="folder with one subfolder per class")
    parser.add_argument("--backbone", default="efficientnet-lite0",
                        help="efficientnet-lite0 (bundled), a TF Hub URL, or a local TF Hub SavedModel folder")
    if with_mode:
        parser.add_argument("--mode", choices=("frozen", "finetune"), default="frozen")
    parser.add_argument("--unfreeze", default="1", help="fine-tuning: top N blocks of the base, or 'all'")
    parser.add_argument("--test-split", type=float, default=0.0)
    parser.add_argument("--val-dir", help="a separate validation folder instead of a split")
    parser.add_argument("--split-from", dest="split_from_run", help="reuse the split stored with this run")
    parser.add_argument("--init-from", dest="init_from_run", help="fine-tune from this frozen run's head")


def _fit_overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("epochs", "batch_size", "learning_rate", "validation_split", "seed", "stop_at_accuracy",
            "early_stopping_patience")
    return {key: getattr(args, key) for key in keys if getattr(args, key) is not None}


# ---- train ----

def _cmd_train_mnist(args: argparse.Namespace) -> int:
    from transferlab.core.config import mnist_preset

    extra = {k: getattr(args, k) for k in ("train_limit", "test_limit") if getattr(args, k) is not None}
    config = mnist_preset(args.model, augment=args.augment, name=args.name, **extra, **_fit_overrides(args))
    return _train(config, args.json)


def _folder_config(args: argparse.Namespace, mode: str) -> Any:
    """The mode's recommended fit settings (core.config.recommended_fit), then the options given."""
    import dataclasses

    from transferlab.core.config import FitOptions, FolderConfig, recommended_fit

    fit = dataclasses.replace(FolderConfig(data_dir=args.path).fit, **{**recommended_fit(mode), **_fit_overrides(args)})
    unfreeze: int | str = "all" if args.unfreeze == "all" else _int(args.unfreeze, "--unfreeze")
    return FolderConfig(data_dir=args.path, backbone=args.backbone, mode=mode, unfreeze=unfreeze,
                        augment=args.augment, test_split=args.test_split, val_dir=args.val_dir,
                        split_from_run=args.split_from_run, init_from_run=args.init_from_run,
                        fit=FitOptions(**dataclasses.asdict(fit)), name=args.name,
                        cv_folds=getattr(args, "cv_folds", 0) or 0)


def _cmd_train_folder(args: argparse.Namespace) -> int:
    return _train(_folder_config(args, args.mode), args.json)


def _train(config: Any, as_json: bool) -> int:
    from transferlab.core.training.loop import run_training

    with _StopOnCtrlC() as stop:
        result = run_training(config, ProgressPrinter(sys.stderr), stop)
    summary = {"run_id": result.run_id, "status": result.status, "reason": result.reason,
               "run_dir": str(result.run_dir), "metrics": _scalar_metrics(result.metrics)}
    if isinstance(result.metrics.get("cv"), dict):
        summary["cv"] = result.metrics["cv"]
    if as_json:
        _out(json.dumps(summary))
    else:
        _print_result(summary)
    return {"finished": EXIT_OK, "stopped": EXIT_STOPPED}.get(result.status, EXIT_FAILED)


def _cmd_compare(args: argparse.Namespace) -> int:
    from transferlab.core.config import MODE_FIT_KEYS
    from transferlab.core.training.compare import compare_frozen_finetune

    # Values given on the command line are explicit for both arms; the rest are each mode's own.
    given = {key: value for key, value in _fit_overrides(args).items() if key in MODE_FIT_KEYS}
    with _StopOnCtrlC() as stop:
        comparison = compare_frozen_finetune(_folder_config(args, "frozen"), ProgressPrinter(sys.stderr), stop,
                                             explicit={"frozen": given, "finetune": given})
    if args.json:
        _out(json.dumps(comparison, default=str))
    else:
        _print_comparison(comparison)
    statuses = [comparison.get(mode, {}).get("status") for mode in ("frozen", "finetune")]
    if "stopped" in statuses:
        return EXIT_STOPPED
    return EXIT_OK if all(s == "finished" for s in statuses) else EXIT_FAILED


# ---- doctor ----

def _add_doctor_parser(commands: Any) -> None:
    doctor = commands.add_parser("doctor", help="check a folder data set: suspect labels, near-duplicates, "
                                 "class balance, learning curve; move, exclude or undo files safely")
    doctor.add_argument("path", help="folder with one subfolder per class")
    doctor.add_argument("--backbone", default="efficientnet-lite0")
    doctor.add_argument("--run", help="also report near-duplicates across the train/val/test parts of this run's "
                        "split (leakage)")
    doctor.add_argument("--folds", type=int, default=5)
    doctor.add_argument("--seed", type=int, default=42)
    doctor.add_argument("--no-curve", action="store_true", help="skip the learning curve")
    fixes = doctor.add_mutually_exclusive_group()
    fixes.add_argument("--move", nargs=2, metavar=("FILE", "CLASS"), help="move FILE (relative to PATH) into "
                       "the class folder CLASS")
    fixes.add_argument("--exclude", metavar="FILE", help="move FILE into PATH/_excluded/ (never deleted)")
    fixes.add_argument("--undo", action="store_true", help="undo the last move or exclusion")
    doctor.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    doctor.set_defaults(handler=_cmd_doctor)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from transferlab.core.data import fixes

    if args.move or args.exclude or args.undo:
        if args.move:
            change = fixes.move_file(args.path, args.move[0], args.move[1])
        elif args.exclude:
            change = fixes.exclude_file(args.path, args.exclude)
        else:
            change = {**fixes.undo_last(args.path), "undone": True}
        if args.json:
            _out(json.dumps(change))
        else:
            verb = "undid" if args.undo else "moved"
            _out(f"{verb} {change['action']}: {change['from']} -> {change['to']}" if not args.undo else
                 f"{verb} the {change['action']} of {change['from']} (it is back in place)")
        return EXIT_OK
    return _run_doctor(args)


def _run_doctor(args: argparse.Namespace) -> int:
    from transferlab.core.analysis.doctor import CheckStopped, check_folder
    from transferlab.core.runs.lineage import load_run_split
    from transferlab.core.runs.store import RunStore

    if args.folds < 2:
        raise TransferlabError(f"--folds: expected an integer >= 2, got {args.folds}")
    split = load_run_split(RunStore(), args.run) if args.run else None
    printer = ProgressPrinter(sys.stderr)

    def progress(phase: str, done: int, total: int) -> None:
        from transferlab.core.events import PhaseProgress

        printer(PhaseProgress(phase, done, total))

    with _StopOnCtrlC() as stop:
        try:
            report = check_folder(args.path, args.backbone, split=split, folds=args.folds, seed=args.seed,
                                  with_curve=not args.no_curve, progress=progress, stop=stop)
        except CheckStopped as exc:
            _err(f"stopped: {exc}")
            return EXIT_STOPPED
    if args.json:
        _out(json.dumps(report))
    else:
        _print_doctor(report)
    return EXIT_OK


def _print_doctor(report: dict[str, Any]) -> None:
    _out(f"{report['images']} images in {len(report['classes'])} classes ({report['backbone']})")
    for row in report["classes"]:
        _out(f"  {row['name'][:24]:24} {row['images']:6}  {row['share']:6.1%}" + ("  tiny" if row["tiny"] else ""))
    for note in report["balance"]["notes"] + report["notes"]:
        _out(f"  note: {note}")
    if report["unreadable"]:
        _out(f"unreadable files ({len(report['unreadable'])}):")
        for row in report["unreadable"][:20]:
            _out(f"  {row['file']}: {row['reason']}")
    if report["cv"]:
        _out(f"accuracy of a head on these embeddings: {report['cv']['text']}")
    _out(f"likely mislabelled ({report['suspects_total']}, most suspect first):")
    for row in report["suspects"][:20]:
        _out(f"  {row['file']}  labelled {row['label']}, looks like {row['suggested']} "
             f"(confidence in its label {row['self_confidence']:.2f})")
    _out(f"near-duplicate groups ({len(report['near_duplicates'])}):")
    for row in report["near_duplicates"][:20]:
        _out(f"  {row['kind']:14} similarity {row['similarity']:.2f}: {', '.join(row['files'][:4])}"
             + (" ..." if len(row["files"]) > 4 else ""))
    curve = report.get("learning_curve")
    if curve:
        _out("learning curve (images per class → accuracy):")
        for point in curve["points"]:
            _out(f"  {point['images_per_class']:7.1f} → {100 * point['accuracy_mean']:5.1f} % "
                 f"± {100 * point['accuracy_std']:.1f}")
        _out(f"  {curve['reading']}")
    _out(f"fix with: transferlab doctor {report['root']} --move FILE CLASS | --exclude FILE | --undo")


# ---- evaluate / predict / export ----

def _cmd_evaluate(args: argparse.Namespace) -> int:
    from transferlab.core.runs.store import RunStore

    store = RunStore()
    run_id = store.resolve(args.run)
    metrics = evaluate_stored_run(store, run_id)
    if args.json:
        _out(json.dumps({"run_id": run_id, "metrics": _scalar_metrics(metrics)}))
    else:
        _print_metrics(run_id, metrics)
    return EXIT_OK


def evaluate_stored_run(store: Any, run_id: str) -> dict[str, Any]:
    """MNIST runs are evaluated again on the test set; folder runs report their stored evaluation."""
    info = store.get(run_id)
    if info.kind != "mnist":
        if not info.metrics:
            raise TransferlabError(f"expected stored metrics in run {run_id}, got none (status {info.status})")
        return info.metrics
    from transferlab.core.training.mnist_job import MnistJob

    config = store.config(run_id)
    return MnistJob(config).evaluate(store.load_model(run_id), None)


def _cmd_predict(args: argparse.Namespace) -> int:
    from transferlab.core.deploy.predict import Classifier
    from transferlab.core.runs.store import RunStore

    classifier = Classifier(args.run, RunStore())
    predictions = classifier.classify(args.images, top_k=args.top_k)
    rows = [{"file": p.file, "label": None if p.error else p.label, "probability": p.probability,
             "top": [{"label": label, "probability": prob} for label, prob in p.top],
             **({"error": p.error} if p.error else {})} for p in predictions]
    if args.json:
        _out(json.dumps(rows))
    else:
        for row in rows:
            if "error" in row:
                _out(f"{row['file']}: error: {row['error']}")
            else:
                tops = ", ".join(f"{t['label']} {t['probability']:.1%}" for t in row["top"])
                _out(f"{row['file']}: {row['label']} ({row['probability']:.1%})   [{tops}]")
    return EXIT_BAD_INPUT if any("error" in row for row in rows) else EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from transferlab.core.deploy.export import export_run
    from transferlab.core.runs.store import RunStore

    path = export_run(args.run, args.format, store=RunStore(), out=args.out)
    _out(json.dumps({"run": args.run, "format": args.format, "path": str(path)}) if args.json else str(path))
    return EXIT_OK


# ---- runs ----

def _cmd_runs_list(args: argparse.Namespace) -> int:
    from transferlab.core.runs.store import RunStore

    runs = RunStore().list()
    if args.json:
        _out(json.dumps([{"run_id": r.run_id, "kind": r.kind, "title": r.title(), "status": r.status,
                          "epochs": r.epochs_done, "metrics": _scalar_metrics(r.metrics)} for r in runs]))
        return EXIT_OK
    if not runs:
        _out("no runs yet: try 'transferlab train mnist'")
    for run in runs:
        accuracy = run.metrics.get("accuracy")
        shown = f"{accuracy:.4f}" if isinstance(accuracy, float) else "-"
        _out(f"{run.run_id:44} {run.status:11} epochs {run.epochs_done:3}  accuracy {shown:7}  {run.title()}")
    return EXIT_OK


def _cmd_runs_show(args: argparse.Namespace) -> int:
    from transferlab.core.runs.store import RunStore

    store = RunStore()
    run = store.get(store.resolve(args.run))
    data = {"run_id": run.run_id, "path": str(run.path), "status": run.status, "reason": run.reason,
            "config": run.config, "history": store.history(run.run_id), "metrics": _scalar_metrics(run.metrics)}
    _out(json.dumps(data, indent=None if args.json else 2))
    return EXIT_OK


def _cmd_runs_compare(args: argparse.Namespace) -> int:
    from transferlab.core.runs.store import RunStore

    comparison = RunStore().compare(args.runs)
    if args.json:
        comparison.pop("histories")
        _out(json.dumps(comparison))
        return EXIT_OK
    width = 26
    _out("".ljust(width) + "".join(run[:30].ljust(32) for run in comparison["runs"]))
    for section in ("config_diff", "metrics"):
        _out(f"-- {section.replace('_', ' ')}")
        for key, values in comparison[section].items():
            _out(key[:width - 1].ljust(width) + "".join(_fmt(v)[:30].ljust(32) for v in values))
    return EXIT_OK


def _cmd_runs_delete(args: argparse.Namespace) -> int:
    from transferlab.core.runs.store import RunStore

    store = RunStore()
    ids = [store.resolve(run) for run in args.runs]  # resolve all first: nothing is deleted on a typo
    for run_id in ids:
        store.delete(run_id)
        _out(f"deleted {run_id}")
    return EXIT_OK


# ---- output ----

class ProgressPrinter:
    """A reporter drawing a one-line progress bar on a terminal (epoch lines only when not a terminal)."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream, self.width = stream, width
        self.tty = stream.isatty()
        self.last_phase = ""

    def __call__(self, event: Any) -> None:
        from transferlab.core import events

        if isinstance(event, events.PhaseProgress):
            if event.phase != self.last_phase or (self.tty and event.total):
                self.last_phase = event.phase
                self._line(f"{event.phase} {event.done}/{event.total}", final=not self.tty)
        elif isinstance(event, events.RunStarted):
            model = event.model_summary
            self._line(f"run {event.run_id}: {model.name}, {model.trainable_params:,} trainable / "
                       f"{model.frozen_params:,} frozen parameters", final=True)
        elif isinstance(event, events.BatchProgress) and self.tty and event.batches:
            done = event.batch / event.batches
            bar = "#" * round(done * self.width)
            eta = event.elapsed / max((event.epoch - 1) + done, 1e-9) * (event.epochs - event.epoch + 1 - done)
            self._line(f"epoch {event.epoch}/{event.epochs} [{bar:<{self.width}}] {done:4.0%} loss "
                       f"{event.loss:.4f} acc {event.accuracy:.4f} eta {eta:4.0f}s")
        elif isinstance(event, events.EpochEnded):
            m = event.metrics
            val = f" val_loss {m['val_loss']:.4f} val_acc {m['val_accuracy']:.4f}" if "val_loss" in m else ""
            self._line(f"epoch {event.epoch}/{event.epochs} loss {m['loss']:.4f} acc {m['accuracy']:.4f}{val} "
                       f"lr {m['learning_rate']:.2g} ({event.elapsed:.0f}s)", final=True)
        elif isinstance(event, events.RunFinished):
            self._line(f"{event.status}{': ' + event.reason if event.reason else ''}", final=True)

    def _line(self, text: str, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}


def _print_result(summary: dict[str, Any]) -> None:
    _out(f"run {summary['run_id']} {summary['status']}" + (f": {summary['reason']}" if summary["reason"] else ""))
    for key, value in summary["metrics"].items():
        if key.endswith(("accuracy", "loss")):
            _out(f"  {key:15} {_fmt(value)}")
    if summary.get("cv"):
        _out(f"  cross-validated {summary['cv']['text']}")


def _print_metrics(run_id: str, metrics: dict[str, Any]) -> None:
    _out(f"run {run_id} on the {metrics.get('eval_set', 'evaluation')} set ({metrics.get('samples', '?')} images)")
    _out(f"  accuracy {metrics['accuracy']:.4f}   loss {metrics['loss']:.4f}")
    _out("  class        precision  recall     f1  support")
    for row in metrics.get("per_class", []):
        _out(f"  {row['class'][:12]:12} {row['precision']:9.3f} {row['recall']:7.3f} {row['f1']:6.3f} "
             f"{row['support']:8}")


def _print_comparison(comparison: dict[str, Any]) -> None:
    _out(f"{'':22}{'frozen':>14}{'finetune':>14}")
    for key in ("accuracy", "loss"):
        values = [comparison.get(mode, {}).get("metrics", {}).get(key) for mode in ("frozen", "finetune")]
        _out(f"{key:22}" + "".join(f"{_fmt(v):>14}" for v in values))
    for key in ("learning_rate", "epochs", "early_stopping_patience"):
        values = [comparison.get("settings", {}).get(mode, {}).get(key) for mode in ("frozen", "finetune")]
        _out(f"{key:22}" + "".join(f"{_fmt(v):>14}" for v in values))
    for mode in ("frozen", "finetune"):
        _out(f"{mode} run: {comparison.get(mode, {}).get('run_id', '-')}")
    if comparison.get("headline"):
        _out(comparison["headline"])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def _int(text: str, option: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise TransferlabError(f"{option}: expected an integer or 'all', got {text!r}") from None


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class _StopOnCtrlC:
    """First Ctrl-C asks the run to stop (it ends within a batch and is stored); a second one aborts."""

    def __enter__(self) -> Any:
        from transferlab.core.stopping import StopFlag

        self.flag = StopFlag()
        self.previous = None
        if threading_is_main():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self.flag

    def _handle(self, signum: int, frame: Any) -> None:
        if self.flag.requested:
            raise KeyboardInterrupt
        _err("\nstopping after this batch (Ctrl-C again to abort)")
        self.flag.request("stopped by Ctrl-C")

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
