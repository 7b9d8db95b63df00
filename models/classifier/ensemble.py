"""An ensemble of window classifiers that behaves like one: same inputs, same outputs.

Each member is a `ParallelCNN` or a `PooledHead` trained with its own validation fold or seed (see `models.training`);
the ensemble averages their calibrated probabilities, attention weights and slice probabilities.
Window and slice logits are the log-odds of the averaged probabilities divided by the ensemble's
own temperature: averaging calibrated members makes the mean under-confident, so training fits
one more temperature on the members' out-of-fold predictions. `sigmoid(logits)` is the
ensemble's probability, exactly as for a single model, and the engine, evaluation and saliency
need not know which of the two they hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.classifier.parallel_cnn import ClassifierConfig, ClassifierOutput, ParallelCNN
from models.classifier.pooled_head import PooledHead

Member = ParallelCNN | PooledHead
ARCHITECTURES: dict[str, type[Member]] = {"parallel_cnn": ParallelCNN, "pooled": PooledHead}

_EPS = 1e-7  # keeps log-odds finite when every member is certain


class GenreEnsemble(nn.Module):
    """Members with one architecture; outputs are their mean probabilities as (calibrated) log-odds."""

    def __init__(self, members: Sequence[Member]) -> None:
        super().__init__()
        if not members:
            raise ValueError("An ensemble needs at least one member.")
        configs = {m.config for m in members}
        if len(configs) != 1:
            raise ValueError("Ensemble members must share one architecture.")
        self.members = nn.ModuleList(members)
        self.register_buffer("temperature", torch.ones(()))

    @property
    def config(self) -> ClassifierConfig:
        """The members' architecture (all members share it)."""
        return self.members[0].config

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> ClassifierOutput:
        """Classify (B, 3, F, D) windows with every member and average what they say."""
        outs = [m(x, mask) for m in self.members]
        probs = torch.stack([torch.sigmoid(o.logits.float()) for o in outs]).mean(0)
        slices = torch.stack([torch.sigmoid(o.slice_logits.float()) for o in outs]).mean(0)
        attention = torch.stack([o.attention.float() for o in outs]).mean(0)
        t = self.temperature
        return ClassifierOutput(_log_odds(probs) / t, attention, _log_odds(slices) / t)


def _log_odds(p: torch.Tensor) -> torch.Tensor:
    """logit(p), clamped so a unanimous 0 or 1 stays finite."""
    return torch.logit(p.clamp(_EPS, 1 - _EPS))


Classifier = ParallelCNN | PooledHead | GenreEnsemble


def build_member(config: ClassifierConfig) -> Member:
    """An untrained single classifier of the architecture the config names."""
    if config.arch not in ARCHITECTURES:
        raise ValueError(f"Unknown classifier architecture {config.arch!r}; known: {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[config.arch](config)


def build_classifier(spec: dict) -> Classifier:
    """An untrained classifier from a model card's `classifier` entry (`members` > 1: an ensemble)."""
    spec = dict(spec)
    n = int(spec.pop("members", 1))
    if n < 1:
        raise ValueError(f"A classifier needs at least one member, not {n}.")
    config = ClassifierConfig(**spec)
    if n == 1:
        return build_member(config)
    return GenreEnsemble([build_member(config) for _ in range(n)])


def classifier_spec(model: Classifier) -> dict:
    """The card's `classifier` entry for a model: its architecture, plus `members` for an ensemble."""
    spec = model.config.to_dict()
    if isinstance(model, GenreEnsemble):
        spec["members"] = len(model.members)
    return spec
