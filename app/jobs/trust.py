"""`python -m app trust`: choose a bundle's decision threshold and not-music detector, then measure them.

Choices use only training and validation data: the detector's statistics come from the training
table and its shrinkage and threshold from the validation table (models/novelty.py); the decision
threshold from a selection model that never trained on the validation tracks, scored on them
(models/verdict.py). Then, for reporting only, the job measures how often the verdict is `not_music`
on the regenerated non-music set (utils/nonmusic.py), on GTZAN valid and test tracks, on a folder of
real music, and on GTZAN audio clips through the engine; the numbers go to `trust.json` and the card.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.classifier.bundle import load_bundle, read_card, update_card
from models.embedders.base import base_id
from models.novelty import NoveltyDetector, fit_detector, track_mean
from models.training.data import max_slice_frames, track_probabilities
from models.training.evaluation import audio_folder_items
from models.trust import TrustSettings, save_trust
from models.verdict import NOT_MUSIC, choose_threshold
from utils.audio import AudioError
from utils.constants import GENRES, NOT_MUSIC_LABEL
from utils.feedback import FeedbackStore
from utils.nonmusic import espeak_path, nonmusic_clips, wav_bytes
from utils.tables import EmbeddingTable

Log = Callable[[str], None]


def table_means(table: EmbeddingTable) -> np.ndarray:
    """(T, D) track means of a table, in track order."""
    return np.stack([track_mean(t.vectors) for t in table.tracks()])


def valid_probabilities(selection_bundle: Path, valid: EmbeddingTable) -> tuple[np.ndarray, np.ndarray]:
    """(T, C) track probabilities of the selection model on the validation table, and the true indices."""
    model, _ = load_bundle(selection_bundle)
    tracks = [t for t in valid.tracks() if t.genre in GENRES]
    probs = track_probabilities(model, tracks, valid.frame_seconds, max_slice_frames(valid))
    return probs, np.array([GENRES.index(t.genre) for t in tracks])


def _verdicts(engine, items: list[tuple[str, Any]], log: Log) -> dict[str, Any]:
    """Verdict of each (name, path-or-bytes) through the engine: counts and the per-item list."""
    rows = []
    for name, source in items:
        try:
            a = engine.analyze(source, filename=name)
        except AudioError as exc:
            log(f"  {name}: skipped ({exc})")
            continue
        rows.append({"name": name, "verdict": a.verdict.kind, "novelty": round(float(a.novelty or 0.0), 3),
                     "top": a.top_genre})
    counts = Counter(r["verdict"] for r in rows)
    flagged = counts.get(NOT_MUSIC, 0)
    return {"n": len(rows), "not_music": flagged, "flagged_rate": flagged / max(1, len(rows)),
            "verdicts": dict(counts), "items": rows}


def check_inputs(bundle: Path, selection: Path, train: EmbeddingTable, valid: EmbeddingTable,
                 test: EmbeddingTable | None = None, music_dirs: tuple[Path, ...] = (), audio_dir: Path | None = None,
                 names: dict[str, str] | None = None) -> None:
    """Refuse, in one sentence, what would fail (or mislead) only after the ~40 s of work.

    Tables and the selection model must read the bundle's embeddings: a 50-d table fitted a 50-d detector that
    the 753-d engine refused after it had been written into the bundle. `names` says how to call each table
    (its file, from the CLI); nothing is written here.
    """
    names = {"training": "the training table", "validation": "the validation table", "test": "the test table",
             **(names or {})}
    card = read_card(bundle)
    want_id, want_dim = str(card.embedder.get("id")), card.classifier.get("input_dim")
    for role, table in (("training", train), ("validation", valid), ("test", test)):
        if table is not None and (base_id(table.embedder_id) != base_id(want_id)
                                  or (want_dim is not None and table.dim != int(want_dim))):
            raise ValueError(f"{names[role]} holds {table.dim}-d {table.embedder_id} embeddings, but {bundle.name} "
                             f"reads {want_dim}-d {want_id} ones; nothing was changed.")
    picker = read_card(selection)
    if base_id(str(picker.embedder.get("id"))) != base_id(want_id) or picker.classifier.get("input_dim") != want_dim:
        raise ValueError(f"The selection model {selection} reads {picker.classifier.get('input_dim')}-d "
                         f"{picker.embedder.get('id')} embeddings, but {bundle.name} reads {want_dim}-d {want_id} "
                         "ones; nothing was changed.")
    shared = set(train.track_ids()) & set(valid.track_ids())
    if shared:
        raise ValueError(f"{names['training']} and {names['validation']} share {len(shared)} tracks "
                         f"(e.g. {min(shared)}): the detector's threshold must come from tracks it was not fitted on.")
    for flag, folder in [("--music", d) for d in music_dirs] + [("--audio", audio_dir)] * (audio_dir is not None):
        if not Path(folder).is_dir():
            raise ValueError(f"{flag} {folder} is not a folder of audio; nothing was changed.")


def build_trust(bundle: Path, train: EmbeddingTable, valid: EmbeddingTable, selection: Path,
                test: EmbeddingTable | None = None, music_dirs: tuple[Path, ...] = (),
                audio_list: set[str] | None = None, audio_dir: Path | None = None, log: Log = print,
                command: str | None = None, names: dict[str, str] | None = None) -> dict:
    """Fit, measure, then write into `bundle` and its card (with `command`, what made the figures).

    Nothing is written until everything is measured: a late error or Ctrl-C during the measurement left
    trust.json without its figures beside a card that still showed the old ones. Each file is replaced
    atomically, so a failure leaves the old set as it was.
    """
    from app.engine import Engine

    check_inputs(bundle, selection, train, valid, test, music_dirs, audio_dir, names)
    t0 = time.perf_counter()
    detector, novelty_report = fit_detector(table_means(train), table_means(valid))
    probs, true = valid_probabilities(selection, valid)
    threshold, curve = choose_threshold(probs, true)
    chosen = next(r for r in curve if r["threshold"] == threshold)
    log(f"not-music detector: shrinkage {detector.shrinkage}, threshold {detector.threshold:.2f} "
        f"(valid {novelty_report['percentile']:g}th percentile); decision threshold {threshold:.2f} "
        f"(valid coverage {chosen['coverage']:.0%}, accuracy "
        f"{'none answered' if chosen['accuracy'] is None else format(chosen['accuracy'], '.1%')})")
    report: dict[str, Any] = {
        "threshold": threshold,
        "threshold_rule": "most (right - wrong) answers on the validation tracks, by a selection model "
                          "that never trained on them",
        "selection_model": selection.name,
        "valid_curve": curve,
        "novelty": novelty_report,
    }
    engine = Engine(checkpoint=bundle, trust=TrustSettings(threshold, detector, report))  # the new ones, unsaved

    measured: dict[str, Any] = {"valid_flagged": _table_rate(detector, valid)}
    if test is not None:
        measured["test_flagged"] = _table_rate(detector, test)  # reported only: chose nothing
    clips = list(nonmusic_clips())
    nm = _verdicts(engine, [(c.name, wav_bytes(c.samples)) for c in clips], log)
    nm["families"] = dict(Counter(c.family for c in clips))
    nm["speech"] = "espeak-ng" if espeak_path() else "absent: no speech clips (install espeak-ng)"
    measured["nonmusic"] = nm
    for folder in music_dirs:
        items = [(f"{g}/{p.name}", p) for p, g in audio_folder_items(folder)]
        measured[f"music:{folder.name}"] = _verdicts(engine, items, log)
    if audio_dir is not None:
        items = [(f"{g}/{p.name}", p) for p, g in audio_folder_items(audio_dir)
                 if audio_list is None or p.stem in audio_list]
        measured[f"gtzan_audio:{audio_dir.name}"] = _verdicts(engine, items, log)
    report["measured"] = measured
    report["seconds"] = round(time.perf_counter() - t0, 1)
    summary = {"nonmusic_flagged": nm["flagged_rate"], "n_nonmusic": nm["n"],
               "valid_flagged": measured["valid_flagged"]["rate"],
               "test_flagged": measured.get("test_flagged", {}).get("rate"),
               **{k: v["not_music"] for k, v in measured.items() if k.startswith(("music:", "gtzan_audio:"))},
               "decision_threshold": threshold, "novelty_threshold": round(detector.threshold, 4),
               **({"command": command} if command else {})}
    save_trust(bundle, detector, report)  # everything is known: publish, one atomic replace per file
    update_card(bundle, lambda card: card.evaluation.__setitem__("not_music", summary))
    return report


def _table_rate(detector, table: EmbeddingTable) -> dict[str, Any]:
    """How many tracks of a table the detector calls not music."""
    scores = detector.scores(table_means(table))
    far = scores > detector.threshold
    ids = [t.track_id for t in table.tracks()]
    return {"n": int(len(scores)), "flagged": int(far.sum()), "rate": float(far.mean()),
            "flagged_tracks": [ids[i] for i in np.flatnonzero(far)]}


def answers_flagged(detector: NoveltyDetector, store: FeedbackStore, embedder_id: str) -> tuple[int, int, int]:
    """(flagged, measured, answers): how many users' "not music" answers the detector agrees with.

    An answer is measured when its audio's slice embeddings were stored with this embedder (the engine's
    own, so the track mean is exactly what the detector scored at analysis time). The rest (made with another
    model's embedder, or stored without embeddings) are only counted.
    """
    audios = {c.audio_sha256 for c in store.list(genre=NOT_MUSIC_LABEL)}  # one judgement per audio, however
    flagged = measured = 0  # often it was reported
    for sha in audios:
        stored = store.embeddings(sha, embedder_id)
        if stored is None or stored.embeddings.shape[-1] != detector.dim:
            continue
        measured += 1
        flagged += detector.score(track_mean(stored.embeddings)) > detector.threshold
    return flagged, measured, len(audios)
