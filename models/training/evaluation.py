"""Evaluation runs: a checkpoint on an embedding table or on an audio folder, next to the baseline.

Track predictions combine windows exactly as the engine does, so the Metrics page describes the
model the Analyze page runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from models.classifier.bundle import METRICS_FILE, CheckpointError, load_bundle, read_card, update_card
from models.classifier.ensemble import Classifier
from models.training.baseline import baseline_probabilities, fit_baseline
from models.training.config import TrainConfig
from models.training.data import max_slice_frames, track_probabilities
from models.training.loop import train
from utils.atomic import atomic_write_text
from utils.constants import AUDIO_EXTENSIONS, GENRES
from utils.metrics import classification_report
from utils.tables import EmbeddingTable, TrackFrames


def evaluate_tracks(
    model: Classifier,
    tracks: list[TrackFrames],
    frame_s: float,
    max_frames: int,
    baseline_train: list[TrackFrames] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics of the model on `tracks`, plus the baseline fitted on `baseline_train` when given."""
    probs = track_probabilities(model, tracks, frame_s, max_frames)
    report = classification_report([t.genre for t in tracks], probs, [t.track_id for t in tracks])
    if baseline_train:
        base, c = fit_baseline(baseline_train, seed=seed)
        bp = baseline_probabilities(base, tracks)
        b = classification_report([t.genre for t in tracks], bp, [t.track_id for t in tracks])
        report["baseline"] = {
            "name": "logistic regression on track-mean embeddings",
            "C": c,
            **{k: b[k] for k in ("accuracy", "macro_f1", "weighted_f1", "mAP", "roc_auc", "ece", "per_genre",
                                 "confusion_matrix")},
        }
    return report


def evaluate_table(
    model: Classifier, test: EmbeddingTable, train_table: EmbeddingTable | None = None, seed: int = 0,
) -> dict[str, Any]:
    """Evaluate on an embedding table; fits the baseline on `train_table` when given."""
    f = max_slice_frames(test)
    base = [t for t in train_table.tracks() if t.genre in GENRES] if train_table is not None else None
    report = evaluate_tracks(model, test.tracks(), test.frame_seconds, f, base, seed)
    report["source"] = {"kind": "table", "embedder": test.embedder_id, "fingerprint": test.fingerprint()}
    return report


def cross_validate(table: EmbeddingTable, cfg: TrainConfig, k: int, log: Callable[[str], None] = print) -> dict:
    """K-fold CV on the training tracks (folds from `fold_splits`): mean/std of accuracy and macro-F1."""
    from models.training.splits import fold_splits

    tracks = table.tracks()
    ids = [t.track_id for t in tracks]
    index = {tid: i for i, tid in enumerate(ids)}
    splits = fold_splits(ids, [t.genre for t in tracks], k, cfg.seed, cfg.val_block)
    accs, f1s, base_accs = [], [], []
    for fold, (tr, te) in enumerate(splits):
        sub = table.subset(set(tr))
        res = train(sub, replace(cfg, seed=cfg.seed + fold))
        held = [tracks[index[t]] for t in te]
        rep = evaluate_tracks(res.model, held, table.frame_seconds, max_slice_frames(table), sub.tracks(), cfg.seed)
        accs.append(rep["accuracy"])
        f1s.append(rep["macro_f1"])
        base_accs.append(rep["baseline"]["accuracy"])
        log(f"fold {fold + 1}/{k}: accuracy {rep['accuracy']:.3f} (baseline {rep['baseline']['accuracy']:.3f})")
    return {
        "k": k,
        "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
        "macro_f1_mean": float(np.mean(f1s)), "macro_f1_std": float(np.std(f1s)),
        "baseline_accuracy_mean": float(np.mean(base_accs)), "baseline_accuracy_std": float(np.std(base_accs)),
        "fold_accuracy": accs,
    }


def audio_folder_items(folder: Path, unreadable: list[tuple[str, str]] | None = None) -> list[tuple[Path, str]]:
    """(path, genre) for every audio file in `folder/<genre>/`, sorted; unknown genres skipped.

    A genre folder that cannot be listed (permissions) goes into `unreadable` as (folder, reason), so one
    locked folder costs its own files, not the run; without the list it raises, as before.
    """
    items = []
    for genre_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        if genre_dir.name.lower() not in GENRES:
            continue
        try:
            files = sorted(genre_dir.iterdir())
        except OSError as exc:
            if unreadable is None:
                raise
            unreadable.append((str(genre_dir), f"could not read the folder ({exc.strerror or exc})"))
            continue
        items += [(f, genre_dir.name.lower()) for f in files if f.suffix.lower() in AUDIO_EXTENSIONS]
    return items


def evaluate_analyses(
    analyses: Iterable[tuple[str, str, Any]],
    baseline_train: EmbeddingTable | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics from engine analyses (audio -> embedder -> classifier): (track id, true genre, Analysis)."""
    rows = list(analyses)
    if not rows:
        raise ValueError("No audio could be evaluated.")
    probs = np.stack([a.probabilities for _, _, a in rows])
    report = classification_report([g for _, g, _ in rows], probs, [t for t, _, _ in rows])
    if baseline_train is not None:
        base, c = fit_baseline([t for t in baseline_train.tracks() if t.genre in GENRES], seed=seed)
        means = [TrackFrames(t, g, a.slice_embeddings.reshape(-1, a.slice_embeddings.shape[-1]), np.zeros(1))
                 for t, g, a in rows]
        b = classification_report([g for _, g, _ in rows], baseline_probabilities(base, means), [t for t, _, _ in rows])
        report["baseline"] = {"name": "logistic regression on track-mean embeddings", "C": c,
                              "accuracy": b["accuracy"], "macro_f1": b["macro_f1"]}
    report["evaluated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return report


def evaluate_and_record(folder: Path, test_table: EmbeddingTable, train_table: EmbeddingTable | None, seed: int,
                        command: str | None = None, baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a bundle on a test table (with baseline), write metrics.json and the card's summary.

    `baseline`: the same-run baseline already measured on this train and test data (a retrain's parent's):
    refitting it is minutes of grid search for identical numbers.
    """
    model, card = load_bundle(folder)
    report = evaluate_table(model, test_table, None if baseline else train_table, seed)
    if baseline:
        report["baseline"] = baseline
    report["model"] = {"version": card.version, "weights_sha256": card.weights_sha256}
    report["test_data"] = test_table.fingerprint()
    atomic_write_text(folder / METRICS_FILE, json.dumps(report, indent=1))
    record_in_card(folder, "test", report | ({"command": command} if command else {}))
    print("test: " + summary_line(report))
    return report


def recorded_baseline(folder: Path, table: EmbeddingTable, test: EmbeddingTable, seed: int) -> dict | None:
    """The parent's recorded same-run baseline when it was fitted on this base table, scored on this test
    table with this seed: corrections never reach the baseline, so it is the same numbers. Else None."""
    try:
        card = read_card(folder)
        metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, CheckpointError):
        return None
    config = card.training.get("config")
    if not isinstance(metrics, dict) or not isinstance(config, dict):  # damaged: fit it afresh, never fail here
        return None
    same = (card.training.get("data_sha256") == table.fingerprint() and metrics.get("test_data") == test.fingerprint()
            and config.get("seed", 0) == seed)
    baseline = metrics.get("baseline") if same else None
    return baseline if isinstance(baseline, dict) and "accuracy" in baseline else None


def summary_line(report: dict) -> str:
    """The one-line headline of a metrics report, as every command prints it."""
    b = report.get("baseline")
    return (f"accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f} on {report['n_tracks']} tracks"
            + (f"; baseline accuracy {b['accuracy']:.3f}" if b else ""))


def record_in_card(folder: Path, key: str, report: dict) -> None:
    """Store headline numbers of an evaluation in the model card (weights and their hash unchanged)."""
    summary = {k: report[k] for k in ("accuracy", "macro_f1", "n_tracks", "evaluated_model", "command") if k in report}
    if "baseline" in report:
        summary["baseline_accuracy"] = report["baseline"]["accuracy"]
    update_card(folder, lambda card: card.evaluation.__setitem__(key, summary))
