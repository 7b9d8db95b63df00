"""Training settings and results: what a model card records about how a model was made.

`TrainConfig` holds a `ClassifierConfig` (the architecture, with its one set of defaults) plus the
training hyper-parameters; cards and `--config` files use its flat form.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from models.classifier.ensemble import ARCHITECTURES, Classifier, Member
from models.classifier.parallel_cnn import ClassifierConfig

CONVEX_SOLVERS = ("logistic", "lda")  # fitted in models.training.linear_fit on track means; "adamw": gradient descent
ARCH_FIELDS = ("channels", "n_blocks", "kernel_size", "se_reduction", "hidden", "dropout", "share_branches",
               "input_transform", "arch")  # the ClassifierConfig fields a card's flat `config` carries


def _default_classifier() -> ClassifierConfig:
    """The architecture defaults (ClassifierConfig's own); the input size comes from the table."""
    return ClassifierConfig(input_dim=0)


@dataclass
class TrainConfig:
    """Every training hyper-parameter; recorded in the model card.

    The architecture is a `ClassifierConfig` (one set of defaults, never restated here); the card
    and `--config` files use a flat form, see `to_dict` / `from_dict`. Defaults were chosen by
    3-fold cross-validation on the training tracks, grouped by blocks of consecutive track ids
    (see README, "The bundled model"); never on the test split.
    """

    seed: int = 0
    epochs: int = 60
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-2
    warmup_epochs: int = 3
    patience: int = 15
    val_fraction: float = 0.15
    val_block: int = 8  # validation by blocks of consecutive track ids (0: random split)
    windows_per_track: int = 4
    jitter: bool = True
    frame_dropout: float = 0.3
    mixup_alpha: float = 0.4
    slice_loss_weight: float = 0.3
    classifier: ClassifierConfig = field(default_factory=_default_classifier)
    members: int = 10  # ensemble size (1: a single model validated on a `val_fraction` split)
    member_folds: int = 5  # members validate on the folds of repeated K-fold splits of the training tracks
    solver: str = "adamw"  # "logistic" / "lda": models.training.linear_fit (arch="pooled", hidden=0), convex, no epochs
    c: float = 0.03  # inverse L2 strength of the logistic solver (chosen on valid for v3; unused by lda)
    early_stopping: bool = True  # keep the best validation epoch (False: train `epochs`, keep the last)
    temperature: float = 1.0  # each member's calibration when it has no validation tracks (chosen earlier)
    ensemble_temperature: float = 1.0  # the ensemble's, likewise, when no track was held out
    nuisance: str = ""  # shift file (models/training/nuisance.py) whose scatter LDA learns to ignore; "" = none
    nuisance_weight: float = 1.0  # that scatter's weight beside the within-genre covariance (lda only)

    def classifier_config(self, input_dim: int) -> ClassifierConfig:
        """The architecture these settings ask for, for inputs of `input_dim`."""
        return replace(self.classifier, input_dim=input_dim)

    def to_dict(self) -> dict:
        """JSON-friendly flat form (the card's `config`): training fields plus the architecture's."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "classifier"}
        arch = asdict(self.classifier)
        return out | {k: arch[k] for k in ARCH_FIELDS}

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, strict: bool = True) -> TrainConfig:
        """Read the flat form (a card's `config`, a `--config` file); unknown keys raise unless not `strict`."""
        own = {f.name for f in fields(cls)} - {"classifier"}
        unknown = set(values) - own - set(ARCH_FIELDS)
        if unknown and strict:
            raise ValueError(f"Unknown training settings: {', '.join(sorted(unknown))}.")
        if strict:  # a --config file: checked here, not by a TypeError or an assert deep inside training
            check_settings(values)
        arch = {k: values[k] for k in ARCH_FIELDS if k in values}
        return cls(**{k: v for k, v in values.items() if k in own}, classifier=replace(_default_classifier(), **arch))


# the type and range of each setting a --config file may hold: (kind, low, high, low excluded, high excluded)
_WHOLE = {"seed": 0, "epochs": 1, "batch_size": 1, "warmup_epochs": 0, "patience": 1, "val_block": 0,
          "windows_per_track": 1, "members": 1, "member_folds": 2, "channels": 1, "n_blocks": 1, "kernel_size": 1,
          "se_reduction": 1, "hidden": 0}  # whole numbers of at least this
_NUMBERS: dict[str, tuple[float, float, bool, bool]] = {  # low, high, low excluded, high excluded
    "lr": (0, math.inf, True, False), "weight_decay": (0, math.inf, False, False),
    "val_fraction": (0, 1, True, True), "frame_dropout": (0, 1, False, True), "dropout": (0, 1, False, True),
    "mixup_alpha": (0, math.inf, False, False), "slice_loss_weight": (0, math.inf, False, False),
    "c": (0, math.inf, True, False), "temperature": (0, math.inf, True, False),
    "ensemble_temperature": (0, math.inf, True, False), "nuisance_weight": (0, math.inf, False, False),
}
_FLAGS = ("jitter", "early_stopping", "share_branches")
_CHOICES = {"arch": tuple(ARCHITECTURES), "input_transform": ("none", "logit")}


def check_settings(values: dict[str, Any]) -> None:
    """One sentence for the first setting of the wrong type or range, or a solver the architecture cannot take.

    `{"lr": "fast"}` was a TypeError traceback, lda with hidden 64 an AssertionError, val_fraction 1.5
    "need at least one array to concatenate", and a negative temperature was accepted.
    """
    for name, low in _WHOLE.items():
        value = values.get(name, low)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be a whole number of at least {low}, not {value!r}.")
    for name, (low, high, open_low, open_high) in _NUMBERS.items():
        if name not in values:
            continue
        value = values[name]
        ok = (not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
              and (value > low if open_low else value >= low) and (value < high if open_high else value <= high))
        if not ok:
            span = f"{'greater than' if open_low else 'at least'} {low:g}" + (
                f" and {'less than' if open_high else 'at most'} {high:g}" if math.isfinite(high) else "")
            raise ValueError(f"{name} must be a number {span}, not {value!r}.")
    for name in _FLAGS:
        if not isinstance(values.get(name, False), bool):
            raise ValueError(f"{name} must be true or false, not {values[name]!r}.")
    for name in ("solver", "nuisance", *_CHOICES):
        if not isinstance(values.get(name, ""), str):
            raise ValueError(f"{name} must be a string, not {values[name]!r}.")
    for name, known in _CHOICES.items():
        if name in values and values[name] not in known:
            raise ValueError(f"{name} must be one of {', '.join(known)}, not {values[name]!r}.")
    if values.get("solver") in CONVEX_SOLVERS and (values.get("arch") != "pooled" or values.get("hidden") != 0):
        raise ValueError(f"solver {values['solver']!r} fits one linear layer: it needs \"arch\": \"pooled\" "
                         "and \"hidden\": 0.")


@dataclass
class MemberResult:
    """One trained member: where its validation said to stop, and its calibration."""

    model: Member
    history: list[dict]
    best_epoch: int
    val_accuracy: float
    temperature: float
    val_ids: list[str]


@dataclass
class TrainResult:
    """The trained (calibrated) model and what happened while training it.

    For an ensemble, `val_accuracy` is the out-of-fold accuracy (every validation track predicted
    by the members that held it out), `best_epoch` the members' median and `temperature` the
    ensemble's own (fitted on those out-of-fold predictions).
    """

    model: Classifier
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    val_accuracy: float = float("nan")
    temperature: float = 1.0
    train_ids: list[str] = field(default_factory=list)
    val_ids: list[str] = field(default_factory=list)
    members: list[MemberResult] = field(default_factory=list)
    nuisance: dict | None = None  # the shift file trained with: path, sha256, counts (models/training/nuisance.py)

    def card_fields(self) -> dict:
        """What a model card records about this training run."""
        out = {
            "n_train_tracks": len(self.train_ids), "n_val_tracks": len(self.val_ids), "val_tracks": self.val_ids,
            "best_epoch": self.best_epoch, "temperature": self.temperature,
            "val_accuracy": self.val_accuracy if math.isfinite(self.val_accuracy) else None,  # JSON has no NaN
        }
        if self.nuisance is not None:
            out["nuisance"] = self.nuisance
        if len(self.members) > 1:
            out["members"] = [{"best_epoch": m.best_epoch, "val_accuracy": m.val_accuracy,
                               "temperature": m.temperature, "val_tracks": m.val_ids} for m in self.members]
        return out

    def curves(self) -> dict:
        """The per-epoch curves saved beside the bundle (rows carry `member` for an ensemble)."""
        out: dict = {"history": self.history, "best_epoch": self.best_epoch}
        if len(self.members) > 1:
            out["member_best_epochs"] = [m.best_epoch for m in self.members]
        return out
