"""Numbers that mean what they say, on the GUI side (issue 9): each transfer mode's own fit settings, what the
user set explicitly for one mode, the cross-validation default, and the "93.6 % ± 1.0 over 5 folds" text.

    choices = ModeChoices()
    choices.shown("frozen")                     # (learning rate, epochs) the form shows for the mode
    choices.remember("frozen", 0.005, 300)      # the user's values when leaving the mode
    choices.chosen("frozen", 0.005, 300)        # {"learning_rate": 0.005}: only what differs from the mode's own
    folder_config_for(mode, base, choices.chosen(mode, lr, epochs))   # unset = the mode's recommendation

Qt-free: the model panel holds one ModeChoices and asks it; the views ask `cv_text_of(metrics)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from transferlab.core.config import FINETUNE_LEARNING_RATE, FROZEN_LEARNING_RATE, recommended_fit

CV_FOLDS = 5
CV_AUTO_MAX_IMAGES = 2000  # cross-validation is on by default up to this many images (it costs seconds)
MODES = ("frozen", "finetune")


def mode_learning_rate(mode: str) -> float:
    """The learning rate a mode trains with when none is set (transferlab.core.config.default_learning_rate)."""
    return FINETUNE_LEARNING_RATE if mode == "finetune" else FROZEN_LEARNING_RATE


def mode_epochs(mode: str) -> int:
    return int(recommended_fit("finetune" if mode == "finetune" else "frozen")["epochs"])


def mode_patience(mode: str) -> int | None:
    patience = recommended_fit("finetune" if mode == "finetune" else "frozen")["early_stopping_patience"]
    return int(patience) if patience is not None else None


class ModeChoices:
    """Per transfer mode, the learning rate and epochs the user set away from the mode's recommendation."""

    def __init__(self) -> None:
        self.explicit: dict[str, dict[str, Any]] = {mode: {} for mode in MODES}

    def reset(self) -> None:
        self.explicit = {mode: {} for mode in MODES}

    @staticmethod
    def chosen(mode: str, learning_rate: float, epochs: int) -> dict[str, Any]:
        """The values that differ from the mode's own (those the user set)."""
        chosen: dict[str, Any] = {}
        if not math.isclose(learning_rate, mode_learning_rate(mode), rel_tol=1e-6):
            chosen["learning_rate"] = learning_rate
        if epochs != mode_epochs(mode):
            chosen["epochs"] = epochs
        return chosen

    def remember(self, mode: str, learning_rate: float, epochs: int) -> None:
        self.explicit[mode] = self.chosen(mode, learning_rate, epochs)

    def shown(self, mode: str) -> tuple[float, int]:
        """What the form shows for a mode: the user's values for it, else the mode's own."""
        values = self.explicit.get(mode, {})
        return (float(values.get("learning_rate", mode_learning_rate(mode))),
                int(values.get("epochs", mode_epochs(mode))))

    def per_arm(self, current: str, learning_rate: float, epochs: int) -> dict[str, dict[str, Any]]:
        """For "frozen vs fine-tuned": the current mode's choices from the form, the other's as last set."""
        other = "frozen" if current == "finetune" else "finetune"
        return {current: self.chosen(current, learning_rate, epochs), other: dict(self.explicit.get(other, {}))}


def cv_text_of(metrics: Mapping[str, Any] | None) -> str:
    """"93.6 % ± 1.0 over 5 folds" for a cross-validated run's metrics (report.extras["cv"]), else ""."""
    cv = (metrics or {}).get("cv")
    if not isinstance(cv, Mapping):
        return ""
    if isinstance(cv.get("text"), str) and cv["text"]:
        return str(cv["text"])
    mean, std, folds = cv.get("accuracy_mean"), cv.get("accuracy_std"), cv.get("folds")
    if isinstance(mean, float) and isinstance(std, float) and isinstance(folds, int):
        return f"{100 * mean:.1f} % ± {100 * std:.1f} over {folds} folds"
    return ""
