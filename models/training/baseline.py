"""The baseline every model is compared with: logistic regression on track-mean embeddings.

Its regularisation strength is chosen by cross-validation on the training tracks only.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from utils.constants import DEAD_SCALE, DEAD_STD, GENRES
from utils.tables import TrackFrames


class FlooredScaler(StandardScaler):
    """StandardScaler that zeroes columns constant in training instead of dividing float noise by ~0.

    Pooled MusiCNN features have hundreds of such columns (see `utils.constants.DEAD_STD`); a plain
    scaler turns their last-bit differences on new audio into huge inputs. Taggram columns all vary.
    """

    def fit(self, x: np.ndarray, y: object = None, sample_weight: np.ndarray | None = None) -> FlooredScaler:
        super().fit(x, y, sample_weight)
        self.scale_ = np.where(self.scale_ < DEAD_STD, DEAD_SCALE, self.scale_)
        return self


def track_means(tracks: list[TrackFrames]) -> np.ndarray:
    """(T, D) mean frame vector of every track."""
    return np.stack([t.vectors.mean(0) for t in tracks])


def fit_baseline(tracks: list[TrackFrames], seed: int = 0, folds: int = 5) -> tuple[Pipeline, float]:
    """Fit standardise + logistic regression; C picked by stratified K-fold CV. Returns (model, best C)."""
    x = track_means(tracks)
    y = np.array([GENRES.index(t.genre) for t in tracks])
    folds = min(folds, int(np.bincount(y)[np.unique(y)].min()))
    if folds < 2:  # too few tracks per genre to cross-validate: sklearn's default strength
        model = make_pipeline(FlooredScaler(), LogisticRegression(max_iter=5000)).fit(x, y)
        return model, 1.0
    grid = GridSearchCV(
        make_pipeline(FlooredScaler(), LogisticRegression(max_iter=5000)),
        {"logisticregression__C": np.logspace(-3, 2, 11)},
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        scoring="accuracy",
        n_jobs=1,
    )
    grid.fit(x, y)
    return grid.best_estimator_, float(grid.best_params_["logisticregression__C"])


def baseline_probabilities(model: Pipeline, tracks: list[TrackFrames]) -> np.ndarray:
    """(T, C) class probabilities in GENRES order (classes absent from training get 0)."""
    proba = model.predict_proba(track_means(tracks))
    out = np.zeros((len(tracks), len(GENRES)))
    out[:, model.classes_] = proba
    return out
