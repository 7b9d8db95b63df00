"""The convex trainer of the pooled head: one-vs-rest logistic regression on standardised track means.

Chosen on the artist-disjoint `valid` split (see the v3 model card): on pooled MusiCNN features,
strongly regularised linear models held up best on real, non-GTZAN music, and training on track
means beat training on windows or blocks there. Each genre gets its own sigmoid (one-vs-rest), as
the product's multi-label outputs need; corrections enter with their sample weights. The result is
written into a `PooledHead` with `hidden=0` and uniform attention, so the engine runs it like any
other classifier. Deterministic: no epochs, no seeds.

Calibration: one temperature fitted on out-of-fold window logits of a K-fold split of the training
tracks (whole id blocks, as `fold_splits` makes them), so the final fit on every labelled track
is calibrated without a held-out set.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from models.classifier.ensemble import build_member
from models.classifier.pooled_head import PooledHead
from utils.tables import TrackFrames

CALIBRATION_FOLDS = 5


def standardised_means(model: PooledHead, tracks: list[TrackFrames]) -> np.ndarray:
    """(T, D) track means in the head's standardised space (the mean of standardised frames)."""
    with torch.no_grad():
        means = torch.stack([model.transform(torch.from_numpy(t.vectors)).mean(0) for t in tracks])
        return ((means - model.input_mean) / model.input_std).double().numpy()


def fit_weights(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """(C, D) coefficients and (C,) intercepts: one L2-regularised logistic regression per genre."""
    coef, bias = np.zeros((y.shape[1], x.shape[1])), np.zeros(y.shape[1])
    for k in range(y.shape[1]):
        if y[:, k].min() == y[:, k].max():  # a genre absent (or alone) here: a constant log-odds
            p = float(np.clip(np.average(y[:, k], weights=w), 1e-4, 1 - 1e-4))
            bias[k] = np.log(p / (1 - p))
            continue
        lr = LogisticRegression(C=c, max_iter=5000).fit(x, y[:, k], sample_weight=w)
        coef[k], bias[k] = lr.coef_[0], lr.intercept_[0]
    return coef, bias


def linear_head(config, mean: torch.Tensor, std: torch.Tensor, coef: np.ndarray, bias: np.ndarray) -> PooledHead:
    """A PooledHead holding these statistics and weights (uniform attention)."""
    model = build_member(config)
    assert isinstance(model, PooledHead) and model.hidden is None, "the logistic solver needs arch=pooled, hidden=0"
    model.set_normalisation(mean, std)
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(coef).float())
        model.head.bias.copy_(torch.from_numpy(bias).float())
        for layer in (model.attn_hidden, model.attn_score):  # uniform attention, and weights that are
            layer.weight.zero_()  # the same on every run (the bundle's sha256 reproduces)
            layer.bias.zero_()
    return model.eval()
