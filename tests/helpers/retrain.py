"""A small world for retraining tests: tables, a trained base model, corrections and their embeddings."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from models.classifier.bundle import (
    ModelCard,
    save_bundle,
    set_current,
)
from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN
from models.classifier.predict import combine_windows, predict_windows
from models.training.config import TrainConfig
from models.training.loop import train
from utils.constants import GENRES
from utils.feedback import FeedbackStore, SliceEmbeddings
from utils.tables import MUSICNN_FRAME_S, MUSICNN_HOP_S, PUBLISHED_MUSICNN_META, EmbeddingTable
from utils.windows import plan_windows

HOP, FRAME, DIM = MUSICNN_HOP_S, MUSICNN_FRAME_S, 50

FRAMES_PER_SLICE = 3  # MusiCNN: patches at 0, 0.976, 1.952 s fit in a 5 s slice

# ------------------------------------------------------------------------------------ helpers (shared)
def genre_means(seed: int = 0) -> np.ndarray:
    """Ten well-separated genre centres in the 50-d embedding space."""
    return np.random.default_rng(seed).normal(0, 1, (len(GENRES), DIM))

def make_table(
    means: np.ndarray,
    n_per_genre: int,
    seed: int,
    seconds: float = 30.0,
    spread: float = 0.6,
    extra: list[tuple[str, np.ndarray]] = (),
    prefix: str = "",
) -> EmbeddingTable:
    """Frame rows on the MusiCNN grid (one frame every 0.976 s) drawn around genre means (+ extra tracks)."""
    rng = np.random.default_rng(seed)
    n_frames = int((seconds - FRAME) // HOP) + 1
    specs = [(g, means[i]) for i, g in enumerate(GENRES) for _ in range(n_per_genre)] + list(extra)
    vec, tid, gen, start = [], [], [], []
    for k, (genre, mean) in enumerate(specs):
        vec.append(mean + spread * rng.normal(0, 1, (n_frames, DIM)))
        tid += [f"{prefix}{genre}.{k:05d}"] * n_frames
        gen += [genre] * n_frames
        start.append(np.arange(n_frames) * HOP)
    return EmbeddingTable(
        np.concatenate(vec).astype(np.float32),
        np.array(tid),
        np.array(gen),
        np.concatenate(start).astype(np.float32),
        dict(PUBLISHED_MUSICNN_META),
    )

def engine_slices(
    mean: np.ndarray,
    rng: np.random.Generator,
    seconds: float = 30.0,
    spread: float = 0.6,
) -> tuple[np.ndarray, np.ndarray]:
    """(S, F, D) slice embeddings and slice starts as the engine stores them for a track of `seconds`."""
    starts = plan_windows(seconds).slice_starts
    return (mean + spread * rng.normal(0, 1, (len(starts), FRAMES_PER_SLICE, DIM))).astype(np.float32), starts

def tiny_config(epochs: int = 8, seed: int = 0, members: int = 1) -> TrainConfig:
    """A small, fast training recipe for tests (converges in a few epochs on the synthetic tables)."""
    return TrainConfig.from_dict(dict(seed=seed, epochs=epochs, channels=16, hidden=32, n_blocks=1, warmup_epochs=1,
                                      patience=100, dropout=0.1, frame_dropout=0.1, batch_size=16, lr=5e-3,
                                      members=members))

def card_for(version: str, table: EmbeddingTable | None = None) -> ModelCard:
    """A model card for the MusiCNN taggram embedder."""
    meta = table.meta if table is not None else PUBLISHED_MUSICNN_META
    return ModelCard(
        version=version,
        labels=list(GENRES),
        classifier={},
        embedder=meta["embedder"] | {"settings": {k: meta[k] for k in ("frame_seconds", "hop_seconds", "dim")}},
    )

def random_bundle(root: Path, version: str = "random-v1") -> Path:
    """A random-init MusiCNN-taggram classifier bundle, made current under root."""
    import torch

    torch.manual_seed(0)
    folder = save_bundle(ParallelCNN(ClassifierConfig(input_dim=DIM)).eval(), card_for(version), root)
    set_current(version, root)
    return folder

def predict_stored(model: ParallelCNN, embeddings: np.ndarray, seconds: float = 30.0) -> np.ndarray:
    """Track probabilities exactly as the engine computes them from slice embeddings."""
    plan = plan_windows(seconds)
    return combine_windows(predict_windows(model, embeddings[plan.window_slices]).probabilities)

def add_correction(
    store: FeedbackStore,
    embeddings: np.ndarray,
    starts: np.ndarray,
    genre: str,
    model: str,
    k: int,
    probabilities: np.ndarray | None = None,
):
    """Store a correction with its slice embeddings, as the feedback page does."""
    sha = f"{k:064x}"
    emb_id = PUBLISHED_MUSICNN_META["embedder"]["id"]
    return store.add(
        audio_sha256=sha,
        file_name=f"cluster-{k}.wav",
        model_id=f"{model}@x",
        model_version=model,
        embedder_id=emb_id,
        genres=[genre],
        probabilities=probabilities if probabilities is not None else np.full(10, 0.1),
        embeddings=SliceEmbeddings(sha, emb_id, embeddings, starts, HOP, FRAME),
    )

def quick_baseline(tracks, seed: int = 0, folds: int = 5):
    """The evaluation's baseline with a fixed C: its grid search dominates test time on separable tables."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from models.training.baseline import track_means

    y = np.array([GENRES.index(t.genre) for t in tracks])
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500)).fit(track_means(tracks), y), 1.0

@pytest.fixture(autouse=True, scope="module")
def fast_and_fair():
    """One torch thread (tiny models train several times faster without inter-thread sync on a busy
    machine) and a fixed-C baseline; everything else in evaluation runs as in production."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("models.training.evaluation.fit_baseline", quick_baseline)
        yield
    torch.set_num_threads(before)

# ------------------------------------------------------------------------------------ learning + guard
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Base/test tables, a current model trained on the base table, and a novel 'cluster' of tracks."""
    means = genre_means(0)
    table = make_table(means, 8, seed=1)
    test = make_table(means, 3, seed=2, prefix="test-")
    cfg = tiny_config()
    result = train(table, cfg)
    root = tmp_path_factory.mktemp("ckpt")
    card = card_for("base", table)
    card.training = {
        "data": "train.npz",
        "data_sha256": table.fingerprint(),
        "config": cfg.to_dict(),
        "val_tracks": result.val_ids,
    }
    save_bundle(result.model, card, root)
    set_current("base", root)
    # a kind of music the base data never had, far from every genre centre
    rng = np.random.default_rng(3)
    cluster = rng.normal(0, 1, DIM) * 1.5
    tracks = [engine_slices(cluster, rng) for _ in range(6)]
    probs = np.stack([predict_stored(result.model, e) for e, _ in tracks])
    target = GENRES[int(probs.mean(0).argmin())]  # a genre the current model does not predict for them
    return {
        "means": means,
        "table": table,
        "test": test,
        "cfg": cfg,
        "root": root,
        "cluster": cluster,
        "tracks": tracks,
        "probs": probs,
        "target": target,
    }

def fresh_root(world: dict, tmp_path: Path) -> Path:
    """A private copy of the checkpoints folder (retraining writes versions and CURRENT)."""
    root = tmp_path / "ckpt"
    shutil.copytree(world["root"], root)
    return root

def corrected_world(world: dict, tmp_path: Path, n: int) -> tuple[Path, str, FeedbackStore]:
    """A checkpoints copy, a SQLite store with `n` corrections, and train.npz / test.npz under tmp_path."""
    root = fresh_root(world, tmp_path)
    db = f"sqlite:///{tmp_path / 'fb.sqlite3'}"
    store = FeedbackStore(db)
    for k, (e, s) in enumerate(world["tracks"][:n]):
        add_correction(store, e, s, world["target"], "base", k)
    world["table"].save(tmp_path / "train.npz")
    world["test"].save(tmp_path / "test.npz")
    return root, db, store


def paused_retrain(reached: threading.Event, release: threading.Event, wait_s: float) -> Callable:
    """The real retrain runner, stopped half-way (at "Training on the base table") until `release` is set."""
    from app.jobs.retrain import run_retrain

    def runner(store, job, progress):
        def gate(fraction: float, message: str) -> None:
            progress(fraction, message)
            if message.startswith("Training on the base table") and not reached.is_set():
                reached.set()
                assert release.wait(wait_s)

        return run_retrain(store, job, gate)

    return runner
