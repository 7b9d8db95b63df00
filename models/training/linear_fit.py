"""The convex trainers of the pooled head: logistic regression (v3) or shrinkage LDA (v4) on track means.

Chosen on the artist-disjoint `valid` split (see the v3 model card): on pooled MusiCNN features,
strongly regularised linear models held up best on real, non-GTZAN music, and training on track
means beat training on windows or blocks there. Each genre gets its own sigmoid (one-vs-rest), as
the product's multi-label outputs need; corrections enter with their sample weights. The result is
written into a `PooledHead` with `hidden=0` and uniform attention, so the engine runs it like any
other classifier. Deterministic: no epochs, no seeds.

Shrinkage LDA (`solver="lda"`, v4): class means and one pooled covariance, shrunk towards a scaled
identity by the Ledoit-Wolf formula, so it has no strength to tune. On the artist-disjoint `valid`
split it beat every logistic C by about 4 points without losing on real, non-GTZAN music (see the v4
card and README). Its scores are linear in the input, so it lives in the same `PooledHead`.

Nuisance scatter (v5): the measured shifts of everyday changes (`models/training/nuisance.py`) join
LDA's pooled covariance, so the head turns away from what codecs, band limits, pitch and tempo
changes do to the features; chosen and judged as the v5 card says.

Calibration: fitted on out-of-fold window logits of a K-fold split of the training tracks (whole id
blocks, as `fold_splits` makes them), so the final fit on every labelled track is calibrated without
a held-out set. Logistic regression needs one temperature; LDA's scores are log-densities with an
arbitrary per-genre origin, not one-vs-rest log-odds, so they get a shared slope *and* offset
(`fit_platt`), which keeps every window's ranking of genres and makes the sigmoids honest.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.linear_model import LogisticRegression

from models.classifier.ensemble import build_member
from models.classifier.parallel_cnn import ClassifierConfig
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


def fit_lda_weights(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, live: np.ndarray, nuisance: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(C, D) coefficients and (C,) intercepts of weighted shrinkage LDA on the `live` columns.

    Equal to scikit-learn's `LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")` when every
    weight is 1 (tested), but weighted, because corrections train with their own weight. Each genre's
    covariance is shrunk with the Ledoit-Wolf intensity of its (standardised) tracks, and the pooled
    covariance is their prior-weighted sum. A track with several genres counts for its first. Columns
    that are not live (constant in training) get zero weight. `nuisance`, a (D, D) scatter in the same
    standardised space (`models.training.nuisance`), is added to the pooled covariance, so directions in
    which everyday changes move tracks count as within-genre spread and lose their weight.
    """
    xl, cls, n_classes = x[:, live], y.argmax(1), y.shape[1]
    prior = np.array([w[cls == k].sum() for k in range(n_classes)])
    prior = prior / prior.sum()
    means, cov = np.zeros((n_classes, xl.shape[1])), np.zeros((xl.shape[1], xl.shape[1]))
    for k in np.flatnonzero(prior > 0):
        xk, wk = xl[cls == k], w[cls == k]
        means[k] = np.average(xk, axis=0, weights=wk)
        scale = xk.std(0)
        scale[scale == 0] = 1.0
        alpha = float(ledoit_wolf_shrinkage(xk / scale)) if len(xk) > 1 else 1.0
        d = (xk - means[k]) / scale
        emp = (d * (wk / wk.sum())[:, None]).T @ d
        shrunk = (1 - alpha) * emp + alpha * np.trace(emp) / len(emp) * np.eye(len(emp))
        cov += prior[k] * shrunk * np.outer(scale, scale)
    if nuisance is not None:
        cov += nuisance[np.ix_(live, live)]
    coef_live = np.linalg.solve(cov, means.T).T
    bias = -0.5 * np.einsum("kd,kd->k", means, coef_live) + np.log(np.maximum(prior, 1e-12))
    coef = np.zeros((n_classes, x.shape[1]))
    coef[:, live] = coef_live
    return coef, bias


def fit_platt(logits: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Shared slope a > 0 and offset b minimising the BCE of sigmoid(a * logits + b) (all genres at once)."""
    z, t = logits.ravel().astype(np.float64), targets.ravel().astype(np.float64)

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        q = p[0] * z + p[1]
        g = expit(q) - t
        return float(np.mean(np.logaddexp(0, q) - t * q)), np.array([np.mean(g * z), np.mean(g)])

    a, b = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                    bounds=[(1e-3, 1e3), (None, None)]).x
    return float(a), float(b)


def linear_head(config: ClassifierConfig, mean: torch.Tensor, std: torch.Tensor, coef: np.ndarray,
                bias: np.ndarray) -> PooledHead:
    """A PooledHead holding these statistics and weights (uniform attention)."""
    model = build_member(config)
    assert isinstance(model, PooledHead) and model.hidden is None, "the convex solvers need arch=pooled, hidden=0"
    model.set_normalisation(mean, std)
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(coef).float())
        model.head.bias.copy_(torch.from_numpy(bias).float())
        for layer in (model.attn_hidden, model.attn_score):  # uniform attention, and weights that are
            layer.weight.zero_()  # the same on every run (the bundle's sha256 reproduces)
            layer.bias.zero_()
    return model.eval()
