"""Small classifier bundles and metrics files built for tests (random or quickly trained weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from models.classifier.bundle import CURVES_FILE, METRICS_FILE, ModelCard, save_bundle
from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN
from utils.atomic import atomic_write_text
from utils.constants import GENRES
from utils.metrics import classification_report


def make_test_bundle(root: Path, version: str = "test-random-weights", metrics: bool = True) -> Path:
    """A random-weights bundle for plumbing tests, with synthetic metrics/curves in the real formats."""
    torch.manual_seed(0)
    model = ParallelCNN(ClassifierConfig(input_dim=50))
    card = ModelCard(
        version=version,
        labels=list(GENRES),
        classifier={},
        embedder={"name": "musicnn-msd", "id": "musicnn-msd/taggram/v1", "options": {"output": "taggram"}},
        training={"data": "synthetic", "n_train_tracks": 0, "config": {"epochs": 0}},
        notes="Random weights for tests: not a trained model; its metrics are synthetic.",
    )
    folder = save_bundle(model, card, root)
    if metrics:
        atomic_write_text(folder / METRICS_FILE, json.dumps(synthetic_metrics()))
        history = [
            {
                "epoch": e,
                "train_loss": 1 / e,
                "val_loss": 1.2 / e + 0.01 * e,
                "val_accuracy": 0.5 + 0.03 * e,
                "lr": 1e-3,
            }
            for e in range(1, 11)
        ]
        atomic_write_text(folder / CURVES_FILE, json.dumps({"history": history, "best_epoch": 7}))
    return folder

def synthetic_metrics(n_per_genre: int = 8, seed: int = 0) -> dict:
    """A metrics.json made by the real `classification_report` from synthetic probabilities."""
    rng = np.random.default_rng(seed)
    true = [g for g in GENRES for _ in range(n_per_genre)]

    def probs(signal: float) -> np.ndarray:
        logits = (
            rng.normal(size=(len(true), len(GENRES))) + signal * np.eye(len(GENRES))[[GENRES.index(g) for g in true]]
        )
        return 1 / (1 + np.exp(-(logits - 1.5)))

    ids = [f"{g}.{i:05d}" for i, g in enumerate(true)]
    report = classification_report(true, probs(2.5), ids)
    base = classification_report(true, probs(1.5), ids)
    report["baseline"] = {
        "name": "logistic regression",
        "C": 1.0,
        **{
            k: base[k]
            for k in ("accuracy", "macro_f1", "weighted_f1", "mAP", "roc_auc", "ece", "per_genre", "confusion_matrix")
        },
    }
    return report
