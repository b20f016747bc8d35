"""Where a run's evaluation samples live: the images its EvaluationReport's sample ids refer to.

    samples = mnist_samples(report)                     # the first `report.samples` MNIST test digits
    samples = folder_samples(store, run_id, report)     # the run's evaluation split (split.json)
    samples.load(sample_id, size)                       # uint8 pixels as the model saw them

Which function a run needs is its kind's business: transferlab.core.training.kinds.evaluation_samples(store, run_id).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transferlab.core.data.folders import DataSplit
from transferlab.core.records import EvaluationReport, SampleId
from transferlab.core.runs.store import RunStore

logger = logging.getLogger(__name__)

# EvaluationReport.eval_set → the part of a folder run's split
_SPLIT_PARTS = {"validation": "val", "test": "test", "train": "train"}


@dataclass(frozen=True)
class EvaluationSamples:
    """The samples of a run's evaluation set, in evaluation order: in memory (`images`, indexed by id) or
    image files under `root` (the ids are paths relative to it)."""

    ids: tuple[SampleId, ...]
    labels: tuple[int, ...]
    root: str = ""
    images: np.ndarray | None = None  # MNIST: uint8 [N, 28, 28]

    def array(self, sample_id: SampleId) -> np.ndarray | None:
        """The in-memory image of a sample, or None when samples are files."""
        return None if self.images is None else self.images[int(sample_id)]

    def path(self, sample_id: SampleId) -> Path | None:
        """The image file of a sample, or None when samples are in memory."""
        return None if self.images is not None else Path(self.root) / str(sample_id)

    def load(self, sample_id: SampleId, size: tuple[int, int]) -> np.ndarray:
        """uint8 pixels of one sample; files are decoded and resized to `size` (height, width); ImageError when
        a file is gone or unusable."""
        array = self.array(sample_id)
        if array is not None:
            return np.asarray(array, dtype=np.uint8)
        from transferlab.core.data.images import load_rgb

        path = self.path(sample_id)
        assert path is not None
        return load_rgb(path, size, min_size=1)


def mnist_samples(report: EvaluationReport | None) -> EvaluationSamples:
    """The MNIST test digits a run was evaluated on (the first `report.samples`; all without a report)."""
    from transferlab.core.data.mnist import load_mnist

    mnist = load_mnist()
    count = report.samples if report is not None and report.samples else len(mnist.test_labels)
    return EvaluationSamples(ids=tuple(range(count)), labels=tuple(int(v) for v in mnist.test_labels[:count]),
                             images=mnist.test_images)


def mnist_training_samples() -> EvaluationSamples:
    """The 60,000 MNIST training digits (in memory)."""
    from transferlab.core.data.mnist import load_mnist

    mnist = load_mnist()
    return EvaluationSamples(ids=tuple(range(len(mnist.train_labels))),
                             labels=tuple(int(v) for v in mnist.train_labels), images=mnist.train_images)


def folder_training_samples(store: RunStore, run_id: str) -> EvaluationSamples:
    """The files of a folder run's training split (none without split.json)."""
    data = store.read_json(run_id, "split.json")
    if not data:
        return EvaluationSamples(ids=(), labels=())
    split = DataSplit.from_dict(data)
    return EvaluationSamples(ids=tuple(p for p, _ in split.train), labels=tuple(i for _, i in split.train),
                             root=split.root)


def folder_samples(store: RunStore, run_id: str, report: EvaluationReport | None) -> EvaluationSamples:
    """The files of a folder run's evaluation split: the part named by the report's eval_set, else the test
    part, else validation, else training (as the run chose). No split.json: no samples."""
    data = store.read_json(run_id, "split.json")
    config_root = str(store.get(run_id).config.get("data_dir", ""))
    if not data:
        logger.warning("run %s has no split.json: its evaluation samples are unknown", run_id)
        return EvaluationSamples(ids=(), labels=(), root=config_root)
    split = DataSplit.from_dict(data)
    part = _SPLIT_PARTS.get(report.eval_set, "") if report is not None else ""
    items = getattr(split, part) if part else (split.test or split.val or split.train)
    return EvaluationSamples(ids=tuple(p for p, _ in items), labels=tuple(i for _, i in items),
                             root=split.root or config_root)
