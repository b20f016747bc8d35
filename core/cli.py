"""The command line: `transferlab train|compare|doctor|evaluate|predict|export|runs ...`, over the same engine calls
the GUI uses. With --json the last line on stdout is one JSON object (or list). Exit codes: 0 done,
1 the run (or writing an output) failed, 2 bad input or usage, 130 stopped (Ctrl-C), 141 stdout was closed
early (`transferlab runs list | head -1`).

Every message is one line: bad input is refused before a run exists (core.preflight), names are shown with
control characters and undecodable bytes escaped (core.console.printable), and anything unexpected is one
line too (-v adds the traceback and TensorFlow's own start-up logs)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from transferlab.core.catalog import DEFAULT_BACKBONE, EXPORT_FORMATS, MNIST_MODELS
from transferlab.core.console import (
    LibraryWarnings,
    printable,
    quiet_tensorflow,
    safe_streams,
    silence_broken_pipe,
)
from transferlab.core.errors import ConfigError, TransferlabError, WriteFailed, first_line

if TYPE_CHECKING:
    from types import FrameType

    from transferlab.core.config import FolderConfig, RunConfig, TransferMode
    from transferlab.core.events import Event
    from transferlab.core.records import Comparison, EvaluationReport
    from transferlab.core.stopping import StopFlag

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_STOPPED, EXIT_BROKEN_PIPE = 0, 1, 2, 130, 141


def main(argv: Sequence[str] | None = None) -> int:
    safe_streams()
    args = build_parser().parse_args(argv)
    quiet_tensorflow(args.verbose)  # before anything imports TensorFlow
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.runs_dir:
        os.environ["TRANSFERLAB_HOME"] = args.runs_dir  # one place decides where runs live
    with LibraryWarnings() as library_warnings:
        code = _run_handler(args)
    if library_warnings.note() and not args.verbose and code != EXIT_BROKEN_PIPE:
        _err(library_warnings.note())
    return code


def _run_handler(args: argparse.Namespace) -> int:
    """The command, with every way it can end turned into an exit code and at most one line on stderr."""
    try:
        return int(args.handler(args))
    except BrokenPipeError:  # the reader of stdout went away: nothing more to say, to anyone
        silence_broken_pipe()
        return EXIT_BROKEN_PIPE
    except WriteFailed as exc:
        _err(f"error: {printable(exc)}")
        return EXIT_FAILED
    except TransferlabError as exc:
        _err(f"error: {printable(exc)}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_STOPPED
    except OSError as exc:  # the file system refused something the checks could not foresee
        logger.debug("command failed", exc_info=True)
        where = f": {exc.filename}" if exc.filename else ""
        _err(f"error: {printable(exc.strerror or exc)}{printable(where)}")
        return EXIT_FAILED
    except Exception as exc:
        logger.debug("command failed", exc_info=True)
        _err(f"error: {type(exc).__name__}: {printable(first_line(exc, limit=300))} (-v shows the traceback)")
        return EXIT_FAILED


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (the usage is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        _err(f"error: {printable(message)} (see '{self.prog} --help')")
        sys.exit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="transferlab", description="Train image classifiers on a laptop CPU, "
                                     "offline. Without arguments the desktop app opens.")
    parser.add_argument("--runs-dir", help="where runs are stored (default: $TRANSFERLAB_HOME/runs or the user "
                        "data folder)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, tracebacks, TensorFlow's own start-up logs and library warnings")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model and store the run").add_subparsers(
        dest="source", required=True)
    mnist = train.add_parser("mnist", help="a scratch network on MNIST (offline)")
    mnist.add_argument("--model", choices=MNIST_MODELS, default="fast",
                       help="fast: ~99.25 %% (default); accurate: augmented, ~99.6 %%, about 10x longer")
    mnist.add_argument("--train-limit", type=int, help="use only the first N training digits")
    mnist.add_argument("--test-limit", type=int, help="evaluate on the first N test digits")
    mnist.add_argument("--precision", choices=("auto", "float32", "mixed"), default="auto",
                       help="auto (default): mixed precision on GPUs with tensor cores, else float32")
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
    predict.add_argument("--unknown-rate", type=float, default=None,
                         help="target false-unknown rate on held-out images, 0-0.5 (default: the run's, 0.05)")
    predict.set_defaults(handler=_cmd_predict)

    explain = commands.add_parser("explain", help="heatmaps: where in each image the model looked")
    explain.add_argument("run")
    explain.add_argument("images", nargs="+")
    explain.add_argument("--out", required=True, help="folder for <stem>.png overlays and <stem>.npy heatmaps")
    explain.add_argument("--class", dest="class_name", default=None, help="explain this class (default: the best)")
    explain.add_argument("--top-k", type=int, default=3)
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(handler=_cmd_explain)

    export = commands.add_parser("export", help="export a run's model")
    export.add_argument("run")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="keras")
    export.add_argument("--out", help="a new file or folder name, or an existing folder to write a new "
                        "<run id>.keras / <run id>-savedmodel / <run id>.tflite into (default: the run's exports "
                        "folder); nothing there is ever replaced")
    export.add_argument("--force", action="store_true", help="let a .keras or .tflite export replace an "
                        "existing file given as --out")
    export.add_argument("--json", action="store_true")
    export.set_defaults(handler=_cmd_export)

    _add_runs_commands(commands)
    return parser


def _add_runs_commands(commands: Any) -> None:
    runs = commands.add_parser("runs", help="list, show, compare, delete or restore stored runs").add_subparsers(
        dest="action", required=True)
    run_help = "run id, unique prefix, or 'latest' (the newest run that is not damaged)"
    listing = runs.add_parser("list", help="all runs, newest first; damaged ones with the reason")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_cmd_runs_list)
    show = runs.add_parser("show", help="one run: config, status, history, metrics (or why it is damaged)")
    show.add_argument("run", help=run_help)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_cmd_runs_show)
    diff = runs.add_parser("compare", help="config differences and metrics side by side")
    diff.add_argument("runs", nargs="+", help=run_help)
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(handler=_cmd_runs_compare)
    delete = runs.add_parser("delete", help="move runs to the trash (see 'runs restore'); a run still training "
                             "cannot be deleted")
    delete.add_argument("runs", nargs="+", help=run_help)
    delete.add_argument("--purge", action="store_true", help="remove for good instead (also runs already in the "
                        "trash)")
    delete.set_defaults(handler=_cmd_runs_delete)
    restore = runs.add_parser("restore", help="bring deleted runs back from the trash")
    restore.add_argument("runs", nargs="+", help="id or unique prefix from 'runs trash', or 'latest' (the run "
                         "deleted last)")
    restore.set_defaults(handler=_cmd_runs_restore)
    trash = runs.add_parser("trash", help="the deleted runs that can still be restored")
    trash.add_argument("--json", action="store_true")
    trash.set_defaults(handler=_cmd_runs_trash)
    empty = runs.add_parser("empty-trash", help="remove every run in the trash for good")
    empty.set_defaults(handler=_cmd_runs_empty_trash)


def _add_fit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--val-split", type=float, dest="validation_split")
    parser.add_argument("--seed", type=int, help="0 .. 4294967295 (same seed: same split and initial weights)")
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--stop-at-accuracy", type=float, help="stop once training accuracy reaches this")
    parser.add_argument("--early-stopping", type=int, dest="early_stopping_patience", metavar="PATIENCE",
                        help="stop after PATIENCE epochs without val_loss improvement")
    parser.add_argument("--name", default="", help="a label for the run")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")


def _add_folder_options(parser: argparse.ArgumentParser, with_mode: bool = True) -> None:
    parser.add_argument("path", help="folder with one subfolder per class")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE,
                        help="efficientnet-lite0 (bundled), a TF Hub URL, or a local TF Hub SavedModel folder. "
                        "A TF Hub model or SavedModel is a program: choosing one runs its TensorFlow graph, so "
                        "use only models you trust (the run keeps a copy of it and loads only that copy)")
    if with_mode:
        parser.add_argument("--mode", choices=("frozen", "finetune"), default="frozen")
    parser.add_argument("--unfreeze", default="1", help="fine-tuning: top N blocks of the base, or 'all'")
    parser.add_argument("--test-split", type=float, default=0.0)
    parser.add_argument("--val-dir", help="a separate validation folder instead of a split")
    parser.add_argument("--split-from", dest="split_from_run", help="reuse the split stored with this run")
    parser.add_argument("--init-from", dest="init_from_run", help="fine-tune from this frozen run's head")
    parser.add_argument("--skip-empty-classes", action="store_true", help="leave class folders without usable "
                        "images out (by default they are refused)")


def _fit_overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("epochs", "batch_size", "learning_rate", "validation_split", "seed", "stop_at_accuracy",
            "early_stopping_patience")
    return {key: getattr(args, key) for key in keys if getattr(args, key) is not None}


# ---- train ----

def _cmd_train_mnist(args: argparse.Namespace) -> int:
    from transferlab.core.config import mnist_preset

    extra = {k: getattr(args, k) for k in ("train_limit", "test_limit", "precision") if getattr(args, k) is not None}
    if args.augment:  # otherwise the preset's own choice (the accurate preset augments)
        extra["augment"] = True
    config = mnist_preset(args.model, name=args.name, **extra, **_fit_overrides(args))
    return _train(config, args.json)


def _folder_config(args: argparse.Namespace, mode: str) -> FolderConfig:
    """The mode's recommended fit settings (transferlab.core.config.recommended_fit), then the options given."""
    import dataclasses

    from transferlab.core.config import FitOptions, FolderConfig, Unfreeze, recommended_fit

    transfer_mode: TransferMode = "finetune" if mode == "finetune" else "frozen"
    fit = dataclasses.replace(FolderConfig(data_dir=args.path).fit,
                              **{**recommended_fit(transfer_mode), **_fit_overrides(args)})
    unfreeze: Unfreeze = "all" if args.unfreeze == "all" else _int(args.unfreeze, "--unfreeze")
    return FolderConfig(data_dir=args.path, backbone=args.backbone, mode=transfer_mode, unfreeze=unfreeze,
                        augment=args.augment, test_split=args.test_split, val_dir=args.val_dir,
                        split_from_run=args.split_from_run, init_from_run=args.init_from_run,
                        skip_empty_classes=args.skip_empty_classes, fit=FitOptions(**dataclasses.asdict(fit)),
                        name=args.name, cv_folds=getattr(args, "cv_folds", 0) or 0)


def _cmd_train_folder(args: argparse.Namespace) -> int:
    return _train(_folder_config(args, args.mode), args.json)


def _train(config: RunConfig, as_json: bool) -> int:
    from transferlab.core.runs.store import RunStore

    store = RunStore()
    printer = ProgressPrinter(sys.stderr)
    with _StopOnCtrlC() as stop:
        checked = _check(config, store, printer, stop)  # before TensorFlow is even imported
        from transferlab.core.training.loop import run_training

        result = run_training(config, printer, stop, store=store, checked=checked)
    summary = {"run_id": result.run_id, "status": result.status, "reason": result.reason,
               "run_dir": str(result.run_dir), "metrics": result.report.scalars() if result.report else {}}
    if isinstance(result.metrics.get("cv"), dict):
        summary["cv"] = result.metrics["cv"]
    if as_json:
        _out(json.dumps(summary))
    else:
        _print_result(summary)
    return {"finished": EXIT_OK, "stopped": EXIT_STOPPED}.get(result.status, EXIT_FAILED)


def _cmd_compare(args: argparse.Namespace) -> int:
    from transferlab.core.config import MODE_FIT_KEYS
    from transferlab.core.runs.store import RunStore

    store = RunStore()
    config = _folder_config(args, "frozen")
    # Values given on the command line are explicit for both arms; the rest are each mode's own.
    given = {key: value for key, value in _fit_overrides(args).items() if key in MODE_FIT_KEYS}
    printer = ProgressPrinter(sys.stderr)
    with _StopOnCtrlC() as stop:
        checked = _check(config, store, printer, stop)
        from transferlab.core.training.compare import compare_frozen_finetune

        comparison = compare_frozen_finetune(config, printer, stop, store, checked=checked,
                                             explicit={"frozen": given, "finetune": given})
    if args.json:
        _out(json.dumps(comparison.to_json(), default=str))
    else:
        _print_comparison(comparison)
    statuses = [comparison.frozen.status, comparison.finetune.status]
    if "stopped" in statuses:
        return EXIT_STOPPED
    return EXIT_OK if all(s == "finished" for s in statuses) else EXIT_FAILED


def _check(config: Any, store: Any, printer: ProgressPrinter, stop: Any) -> Any:
    """core.preflight.check_run. On a terminal the folder scan shows on the progress line, which is erased again
    if the input is refused, so a refusal is exactly one line. Ctrl-C while scanning ends the command."""
    from transferlab.core.events import PhaseProgress
    from transferlab.core.training.preflight import check_run

    def progress(phase: str, done: int, total: int) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        if printer.tty:
            printer(PhaseProgress(phase, done, total))

    try:
        return check_run(config, store, progress)
    finally:
        printer.clear()


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
    from transferlab.core.deploy.evaluate import evaluate_stored_run

    store = _store()
    run_id = store.resolve(args.run)
    report = evaluate_stored_run(store, run_id)
    if args.json:
        _out(json.dumps({"run_id": run_id, "metrics": report.scalars()}))
    else:
        _print_metrics(run_id, report)
    return EXIT_OK


def _cmd_predict(args: argparse.Namespace) -> int:
    store = _store()
    if args.top_k < 1:
        raise TransferlabError(f"--top-k: expected an integer >= 1, got {args.top_k}")
    from transferlab.core.deploy.predict import Classifier

    if args.unknown_rate is not None and not 0.0 <= args.unknown_rate <= 0.5:
        raise ConfigError(f"--unknown-rate: expected a fraction in [0, 0.5], got {args.unknown_rate}")
    classifier = Classifier(args.run, store)
    if args.unknown_rate is not None:
        classifier.trust.set_rate(args.unknown_rate)
    predictions = classifier.classify(args.images, top_k=args.top_k)
    if classifier.trust.note:
        _err(f"note: {printable(classifier.trust.note)}")
    rows: list[dict[str, Any]] = [
        {"file": p.file, "label": None if p.error else p.label, "probability": p.probability,
         "unknown": p.unknown, "reason": p.reason,
         "top": [{"label": label, "probability": prob} for label, prob in p.top],
         **({"error": p.error} if p.error else {})} for p in predictions]
    if args.json:
        _out(json.dumps(rows))
    else:
        for p in predictions:
            tops = ", ".join(f"{printable(label)} {prob:.1%}" for label, prob in p.top)
            because = f" — {printable(p.reason)}" if p.unknown else ""
            _out(f"{printable(p.file)}: {printable(p.headline())}{because}" + (f"   [{tops}]" if p.ok else ""))
    return EXIT_BAD_INPUT if any("error" in row for row in rows) else EXIT_OK


def _cmd_explain(args: argparse.Namespace) -> int:
    from transferlab.core.deploy.explain import Explainer, write_explanation
    from transferlab.core.deploy.predict import Classifier

    classifier = Classifier(args.run, _store())
    if args.class_name is not None and args.class_name not in classifier.class_names:
        raise ConfigError(f"--class: expected one of {', '.join(classifier.class_names)}, got {args.class_name!r}")
    if classifier.trust.note:
        _err(f"note: {printable(classifier.trust.note)}")
    explainer = Explainer(classifier)
    rows, failed = [], False
    for explanation in explainer.explain_files(args.images, top_k=args.top_k, class_name=args.class_name):
        p = explanation.prediction
        written = write_explanation(explanation, args.out)
        failed = failed or written is None
        rows.append({"file": p.file, "label": p.label if p.ok else None, "probability": p.probability,
                     "unknown": p.unknown, "reason": p.reason, "method": explanation.method,
                     "explained": args.class_name or p.label,
                     "top": [{"label": label, "probability": prob} for label, prob in p.top],
                     "png": str(written[0]) if written else None, "npy": str(written[1]) if written else None,
                     **({"error": p.error} if p.error else {})})
        if not args.json:
            tops = ", ".join(f"{printable(label)} {prob:.1%}" for label, prob in p.top)
            where = (f" -> {printable(written[0])}, {printable(written[1].name)} ({explanation.method})"
                     if written else "")
            _out(f"{printable(p.file)}: {printable(p.headline())}" + (f"   [{tops}]" if p.ok else "") + where)
    if args.json:
        _out(json.dumps(rows))
    return EXIT_BAD_INPUT if failed else EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    store = _store()
    run_id = store.resolve(args.run)
    from transferlab.core.deploy.export import export_run, plan_target

    plan_target(store, run_id, args.format, args.out, args.force)  # refuse a bad --out before loading TensorFlow
    path = export_run(run_id, args.format, store=store, out=args.out, force=args.force)
    _out(json.dumps({"run": run_id, "format": args.format, "path": str(path)}) if args.json else printable(path))
    return EXIT_OK


# ---- runs ----

def _store() -> Any:
    """The run store, after checking that --runs-dir is not a file (reading never creates it)."""
    from transferlab.core.runs.store import RunStore
    from transferlab.core.training.preflight import check_store_folder

    store = RunStore()
    check_store_folder(store.root)
    return store


def _cmd_runs_list(args: argparse.Namespace) -> int:
    runs = _store().list()
    if args.json:
        _out(json.dumps([{"run_id": r.run_id, "kind": r.kind, "title": r.title(), "status": r.status,
                          "reason": r.reason, "epochs": r.epochs_done, "metrics": _scalar_metrics(r.metrics)}
                         for r in runs]))
        return EXIT_OK
    if not runs:
        _out("no runs yet: try 'transferlab train mnist'")
    for run in runs:
        if run.damaged:
            _out(f"{printable(run.run_id):44} {run.status:11} {printable(run.reason)}")
            continue
        accuracy = run.metrics.get("accuracy")
        shown = f"{accuracy:.4f}" if isinstance(accuracy, float) else "-"
        _out(f"{printable(run.run_id):44} {printable(run.status):11} epochs {run.epochs_done:3}  "
             f"accuracy {shown:7}  {printable(run.title())}")
    return EXIT_OK


def _cmd_runs_show(args: argparse.Namespace) -> int:
    from transferlab.core.errors import RunStoreError

    store = _store()
    run = store.get(store.resolve(args.run))
    try:
        history: Any = store.history(run.run_id)
    except RunStoreError:
        history = None  # the reason is in "reason"
    data = {"run_id": run.run_id, "path": str(run.path), "status": run.status, "reason": run.reason,
            "config": run.config, "history": history, "metrics": _scalar_metrics(run.metrics)}
    if run.damaged:
        data["damaged"] = (f"run {run.run_id} is damaged: {run.reason}. The readable parts are shown; "
                           "'transferlab runs delete' moves it to the trash.")
    _out(json.dumps(data, indent=None if args.json else 2))
    return EXIT_OK


def _cmd_runs_compare(args: argparse.Namespace) -> int:
    comparison = _store().compare(args.runs)
    if args.json:
        comparison.pop("histories")
        _out(json.dumps(comparison))
        return EXIT_OK
    width = 26
    _out("".ljust(width) + "".join(printable(run)[:30].ljust(32) for run in comparison["runs"]))
    for section in ("config_diff", "metrics"):
        _out(f"-- {section.replace('_', ' ')}")
        for key, values in comparison[section].items():
            _out(printable(key)[:width - 1].ljust(width) + "".join(_fmt(v)[:30].ljust(32) for v in values))
    return EXIT_OK


def _cmd_runs_delete(args: argparse.Namespace) -> int:
    names = _store().delete_runs(args.runs, purge=args.purge)  # all checked first: a typo deletes nothing
    for name in names:
        _out(f"deleted {printable(name)} for good" if args.purge else
             f"deleted {printable(name)} (moved to the trash; undo with 'transferlab runs restore {printable(name)}')")
    return EXIT_OK


def _cmd_runs_restore(args: argparse.Namespace) -> int:
    store = _store()
    paths = [store.locate(run, trashed=True) for run in args.runs]  # all checked first
    for path in dict.fromkeys(paths):
        _out(f"restored {printable(store.restore(path.name))}")
    return EXIT_OK


def _cmd_runs_trash(args: argparse.Namespace) -> int:
    import time

    runs = _store().trashed()
    if args.json:
        _out(json.dumps([{"run_id": r.run_id, "title": r.title(), "status": r.status, "deleted": r.deleted}
                         for r in runs]))
        return EXIT_OK
    if not runs:
        _out("the trash is empty")
    for run in runs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.deleted))
        _out(f"{printable(run.run_id):44} deleted {when}  {printable(run.title())}")
    return EXIT_OK


def _cmd_runs_empty_trash(args: argparse.Namespace) -> int:
    count = _store().empty_trash()
    _out(f"deleted {count} run{'s' if count != 1 else ''} in the trash for good")
    return EXIT_OK


# ---- output ----

class ProgressPrinter:
    """A reporter drawing a one-line progress bar on a terminal (epoch lines only when not a terminal)."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream, self.width = stream, width
        self.tty = stream.isatty()
        self.last_phase = ""
        self.open_line = False  # a terminal line that the next one overwrites

    def __call__(self, event: Event) -> None:
        from transferlab.core import events
        from transferlab.core.records import hardware_text

        if isinstance(event, events.PhaseProgress):
            if event.phase != self.last_phase or (self.tty and event.total):
                self.last_phase = event.phase
                self._line(f"{event.phase} {event.done}/{event.total}", final=not self.tty)
        elif isinstance(event, events.RunStarted):
            model = event.model_summary
            hardware = event.data_summary.details.get("hardware")
            where = f", {hardware_text(hardware)}" if hardware else ""
            self._line(f"run {event.run_id}: {model.name}, {model.trainable_params:,} trainable / "
                       f"{model.frozen_params:,} frozen parameters{where}", final=True)
            note = _data_note(event.data_summary.to_json())
            if note:
                self._line(note, final=True)
        elif isinstance(event, events.BatchProgress) and self.tty and event.batches:
            done = event.batch / event.batches
            bar = "#" * round(done * self.width)
            eta = event.remaining()
            self._line(f"epoch {event.epoch}/{event.epochs} [{bar:<{self.width}}] {done:4.0%} loss "
                       f"{event.loss:.4f} acc {event.accuracy:.4f} eta "
                       + (f"{eta:4.0f}s" if eta is not None else "   ?s"))
        elif isinstance(event, events.EpochEnded):
            m = event.metrics
            val = f" val_loss {m['val_loss']:.4f} val_acc {m['val_accuracy']:.4f}" if "val_loss" in m else ""
            self._line(f"epoch {event.epoch}/{event.epochs} loss {m['loss']:.4f} acc {m['accuracy']:.4f}{val} "
                       f"lr {m['learning_rate']:.2g} ({event.elapsed:.0f}s)", final=True)
        elif isinstance(event, events.RunFinished):
            self._line(f"{event.status}{': ' + event.reason if event.reason else ''}", final=True)

    def _line(self, text: str, final: bool = False) -> None:
        text = printable(text)
        if self.tty:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
            self.open_line = not final
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Erase an unfinished progress line (before an error message takes its place)."""
        if self.open_line:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.open_line = False


def _data_note(summary: dict[str, Any]) -> str:
    """One line about what a folder run could not use, e.g. 'note: 2 unusable files skipped (first: ...)'."""
    parts = []
    for key, what in (("skipped", "unusable file"), ("unreadable", "unreadable folder")):
        entries = summary.get(key) or []
        if entries:
            first = entries[0]
            parts.append(f"{len(entries)} {what}{'s' if len(entries) > 1 else ''} skipped (first: "
                         f"{first.get('path')}: {first.get('reason')})")
    if summary.get("empty_classes"):
        parts.append(f"empty classes left out: {', '.join(summary['empty_classes'])}")
    return f"note: {'; '.join(parts)}" if parts else ""


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}


def _print_result(summary: dict[str, Any]) -> None:
    run = f"run {summary['run_id']}" if summary["run_id"] else "no run was made:"
    _out(printable(f"{run} {summary['status']}" + (f": {summary['reason']}" if summary["reason"] else "")))
    for key, value in summary["metrics"].items():
        if key.endswith(("accuracy", "loss")):
            _out(f"  {key:15} {_fmt(value)}")
    if summary.get("cv"):
        _out(f"  cross-validated {summary['cv']['text']}")


def _print_metrics(run_id: str, report: EvaluationReport) -> None:
    _out(f"run {run_id} on the {report.eval_set} set ({report.samples} images)")
    _out(f"  accuracy {report.accuracy:.4f}   loss {report.loss:.4f}")
    _out("  class        precision  recall     f1  support")
    for row in report.per_class:
        _out(f"  {printable(row.name)[:12]:12} {row.precision:9.3f} {row.recall:7.3f} {row.f1:6.3f} {row.support:8}")


def _print_comparison(comparison: Comparison) -> None:
    entries = {"frozen": comparison.frozen, "finetune": comparison.finetune}
    _out(f"{'':22}{'frozen':>14}{'finetune':>14}")
    for key in ("accuracy", "loss"):
        values = [getattr(entry.report, key) if entry.report is not None else None for entry in entries.values()]
        _out(f"{key:22}" + "".join(f"{_fmt(v):>14}" for v in values))
    for key in ("learning_rate", "epochs", "early_stopping_patience"):
        values = [comparison.settings.get(mode, {}).get(key) for mode in entries]
        _out(f"{key:22}" + "".join(f"{_fmt(v):>14}" for v in values))
    for mode, entry in entries.items():
        reason = f" ({entry.reason})" if entry.reason and entry.status != "finished" else ""
        _out(printable(f"{mode} run: {entry.run_id or '-'} {entry.status or 'not started'}{reason}"))
    if comparison.headline:
        _out(comparison.headline)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def _int(text: str, option: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise TransferlabError(f"{option}: expected an integer or 'all', got {printable(text)!r}") from None


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed or a broken pipe: there is no one left to tell
        pass


class _StopOnCtrlC:
    """First Ctrl-C asks the run to stop (it ends within a batch and is stored); a second one aborts."""

    def __enter__(self) -> StopFlag:
        from transferlab.core.stopping import StopFlag

        self.flag = StopFlag()
        self.previous: Any = None
        if threading_is_main():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self.flag

    def _handle(self, signum: int, frame: FrameType | None) -> None:
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
