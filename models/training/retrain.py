"""Retraining with user corrections: a new model version that replaces the current one only if not worse.

Training data is the base table the current model was trained on plus every stored correction
(except "not music" answers, which name no genre to learn),
with the parent's hyper-parameters and validation tracks. Each correction enters as its engine
windows, rebuilt from the stored slice embeddings (frame j of a slice starts at slice start +
j * hop), one small track per window so training sees exactly what the engine classified.

Weighting: an audio's corrections count as `DEFAULT_CORRECTION_WEIGHT` (8) base tracks, split over its
windows and copies; by default capped so that all together weigh at most `MAX_CORRECTION_SHARE` (25 %)
of the base tracks, so hundreds cannot swamp the base data. An explicit weight is used as given.

The new version becomes current only when `models.training.promotion.judge` finds it not worse, on the
validation tracks or on held-out corrections, never on the test split (see that module). Either
way the bundle stays on disk and selectable, its card records the parent, the corrections used and
the decision, and the feedback store remembers which corrections it used (held-out corrections stay
unused, so the next retrain learns from them).
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from models.classifier.bundle import (
    CURVES_FILE,
    ModelCard,
    checkpoint_root,
    current_version,
    load_bundle,
    publish_bundle,
    reserve_version,
    save_bundle,
    set_current,
    staging_dir,
    update_card,
)
from models.training.config import TrainConfig
from models.training.evaluation import evaluate_and_record, recorded_baseline
from models.training.loop import train
from models.training.promotion import held_out_ids, judge
from models.trust import inherit_trust
from utils.atomic import atomic_write_text
from utils.constants import GENRES, SLICE_S, SLICES_PER_WINDOW
from utils.feedback import Correction, FeedbackError, FeedbackStore, SliceEmbeddings, trainable
from utils.tables import SHARED_DATA, EmbeddingTable, TableError, TrackFrames
from utils.text import plural

Progress = Callable[[float, str], None]

DEFAULT_CORRECTION_WEIGHT = 8.0
MAX_CORRECTION_SHARE = 0.25
SHARED_TABLES = SHARED_DATA / "gtzan_ff_msd_musicnn"
_TOL = 1e-3


class RetrainError(ValueError):
    """Retraining cannot start or its inputs do not fit together; the message says what to do."""


@dataclass
class RetrainResult:
    """What a retrain produced and whether it replaced the current model, with the numbers why."""

    version: str
    parent_version: str
    folder: Path
    promoted: bool
    reason: str
    new_accuracy: float
    current_accuracy: float
    new_macro_f1: float
    current_macro_f1: float
    margin: float
    correction_ids: list[int] = field(default_factory=list)
    new_correction_ids: list[int] = field(default_factory=list)
    correction_weight: float = 0.0
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    judged_on: str = ""
    held_out_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self) | {"folder": str(self.folder)}


# ------------------------------------------------------------------------------------ corrections -> frames
def slice_frames(
    embeddings: np.ndarray, slice_starts: np.ndarray, hop_s: float, frame_s: float, offset: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Frame rows (N, D) and start times (N,) of slices: frame j of slice s starts at s + j*hop - offset.

    Frames whose patch would stick out of their slice are left out: `frames_in_slice` could never
    give them back to their own slice, only to a neighbour.
    """
    n_frames = embeddings.shape[1]
    offsets = np.arange(n_frames) * hop_s
    fits = offsets + frame_s <= SLICE_S + _TOL
    vectors = embeddings[:, fits, :].reshape(-1, embeddings.shape[-1])
    starts = (np.asarray(slice_starts, dtype=np.float64)[:, None] + offsets[fits][None, :]).reshape(-1) - offset
    order = np.argsort(starts, kind="stable")
    return vectors[order].astype(np.float32), starts[order].astype(np.float32)


def window_starts_of(slice_starts: np.ndarray) -> list[float]:
    """Starts of the engine's 15 s windows: every stored slice followed by slices at +5 s and +10 s."""
    starts = np.asarray(slice_starts, dtype=np.float64)

    def has(t: float) -> bool:
        return bool(np.any(np.abs(starts - t) < _TOL))

    return [float(s) for s in sorted(starts)
            if all(has(s + k * SLICE_S) for k in range(1, SLICES_PER_WINDOW))]


def window_tracks(
    correction: Correction, stored: SliceEmbeddings, one_row_per_slice: bool = False,
) -> tuple[list[TrackFrames], str | None]:
    """One track per engine window of a correction (only its window when it names one), and a warning.

    `one_row_per_slice` (pooled tables, whose rows are longer than a slice): each slice becomes the
    mean of its frames at the slice's start, which is exactly what the pooled head computes from it.
    """
    starts = window_starts_of(stored.slice_starts)
    warning = None
    if correction.window_start_s is not None:
        chosen = [s for s in starts if abs(s - correction.window_start_s) < 0.01]
        if chosen:
            starts = chosen
        else:
            warning = (f"correction #{correction.id}: no analysed window starts at {correction.window_start_s:g} s; "
                       "used the whole track")
    tracks = []
    for w in starts:
        idx = [int(np.argmin(np.abs(stored.slice_starts - (w + k * SLICE_S)))) for k in range(SLICES_PER_WINDOW)]
        if one_row_per_slice:
            vectors = stored.embeddings[idx].mean(axis=1).astype(np.float32)
            frame_starts = (np.asarray(stored.slice_starts, np.float64)[idx] - w).astype(np.float32)
        else:
            vectors, frame_starts = slice_frames(stored.embeddings[idx], stored.slice_starts[idx],
                                                 stored.hop_seconds, stored.frame_seconds, offset=w)
        tracks.append(TrackFrames(f"correction-{correction.id}@{w:g}", "|".join(correction.genres), vectors,
                                  frame_starts))
    return tracks, warning


def correction_weight(n_corrections: int, n_base_tracks: int, per_correction: float | None = None) -> float:
    """Training weight of one correction (see the module docstring for the rule)."""
    if per_correction is not None:
        if not 0 < per_correction < float("inf"):
            raise RetrainError("The correction weight must be a positive, finite number.")
        return float(per_correction)
    if n_corrections == 0:
        return 0.0
    return float(min(DEFAULT_CORRECTION_WEIGHT, MAX_CORRECTION_SHARE * n_base_tracks / n_corrections))


def _shared(name: str) -> Path:
    """A table named in a card: relative to ../shared/data, or a bare name of the taggram tables (v1, v2)."""
    return SHARED_DATA / name if "/" in name else SHARED_TABLES / name


def default_tables(card: ModelCard) -> tuple[list[Path], Path | None]:
    """The base training tables of a model and its validation table (None when it trained on every track)."""
    data = card.training.get("data") or "train.npz"
    names = [data] if isinstance(data, str) else list(data)
    valid = card.training.get("validation_data")
    return [_shared(str(n)) for n in names], (_shared(str(valid)) if valid else None)


def test_table_of(card: ModelCard) -> Path:
    """Where the model's reported test numbers come from (never used to decide a promotion)."""
    first = default_tables(card)[0][0]
    return first.with_name("test.npz")


# ------------------------------------------------------------------------------------ retrain
def parent_config(
    card: ModelCard, cfg: TrainConfig | None = None, seed: int | None = None, epochs: int | None = None,
) -> TrainConfig:
    """The parent's hyper-parameters (or `cfg`), with optional seed and epoch overrides."""
    if cfg is None:
        stored = {"members": 1} | card.training.get("config", {})  # cards from before ensembles: one model
        cfg = TrainConfig.from_dict(stored, strict=False)
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    if epochs:
        cfg = replace(cfg, epochs=epochs)
    return cfg


def _parent_validation(card: ModelCard, cfg: TrainConfig, ids: set[str], warnings: list[str]) -> list[list[str]] | None:
    """Each member's validation tracks as the parent had them, so old and new are selected alike.

    None (a fresh split is drawn) when the card does not list them for every member or the base
    table lacks some of them.
    """
    members = card.training.get("members")
    if members and len(members) == cfg.members:
        lists = [m.get("val_tracks") or [] for m in members]
    elif cfg.members == 1 and card.training.get("val_tracks"):
        lists = [card.training["val_tracks"]]
    else:
        return None
    if not all(lists) or not all(set(v) <= ids for v in lists):
        warnings.append("the parent's validation tracks are not all in the base table; drew a new split")
        return None
    return [list(v) for v in lists]


def _fit_on_everything(card: ModelCard) -> bool:
    """The parent was a final fit (`train --no-validation`): its card records empty validation lists."""
    members = card.training.get("members")
    lists = [m.get("val_tracks") for m in members] if members else [card.training.get("val_tracks")]
    return all(v == [] for v in lists)


def _check_tables(card: ModelCard, tables: dict[str, EmbeddingTable | None]) -> list[str]:
    """Tables must come from the model's embedder; a different base table is allowed with a warning."""
    want = card.embedder.get("id")
    table = tables["training"]
    for name, t in tables.items():
        if t is not None and t.embedder_id != want:
            raise RetrainError(f"The {name} table holds {t.embedder_id} embeddings, but the current model uses {want}.")
    bad = sorted(set(table.genre.tolist()) - set(GENRES))
    if bad:
        raise TableError(f"The training table has labels outside the GTZAN genres: {', '.join(bad)}.")
    valid, test = tables.get("validation"), tables.get("test")
    if valid is not None and test is not None and (shared := set(valid.track_ids()) & set(test.track_ids())):
        raise RetrainError(f"The validation table shares {len(shared)} tracks with the test table; the promotion "
                           "guard must never judge on test tracks.")
    sha = card.training.get("data_sha256")
    trained_on = table if valid is None else EmbeddingTable.concat([table, valid], table.meta)  # as `train --valid`
    if sha and sha != trained_on.fingerprint():
        return ["the base table differs from the one the current model was trained on"]
    return []


def retrain(
    store: FeedbackStore,
    table: EmbeddingTable,
    valid: EmbeddingTable | None,
    *,
    test: EmbeddingTable | None = None,
    root: Path | None = None,
    margin: float = 1.0,
    force: bool = False,
    weight: float | None = None,
    cfg: TrainConfig | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
) -> RetrainResult:
    """Train a new version on base table + corrections; promote it if `models.training.promotion.judge` says so.

    `valid`: validation tracks the current model never trained on (None when it trained on all of
    them; then the newest corrections are held out instead). `test`, when given, only writes the new
    version's reported metrics after the decision is made.
    """
    report = progress or (lambda fraction, message: None)
    if not np.isfinite(margin):  # inf would switch the guard off, NaN would never promote
        raise RetrainError(f"The promotion margin must be a finite number of points, not {margin}.")
    root = Path(root) if root is not None else checkpoint_root()
    report(0.0, "Loading the current model")
    parent = current_version(root)
    if parent is None:
        raise RetrainError(f"There is no current model under {root} to retrain; train one first.")
    current_model, card = load_bundle(root / parent)
    warnings = _check_tables(card, {"training": table, "validation": valid, "test": test})
    cfg = parent_config(card, cfg, seed)

    report(0.03, "Collecting corrections")
    embedder_id = str(card.embedder.get("id"))
    everything = store.list()
    usable = trainable(everything, embedder_id)
    skipped = [f"correction #{c.id}: made with embedder {c.embedder_id}" for c in everything
               if c.embedder_id != embedder_id]
    used_before = store.usage()
    new_ids = [c.id for c in usable if c.id not in used_before]
    if not new_ids and not force:
        raise RetrainError(f"No new corrections since the last retrain ({len(usable)} stored, all used already); "
                           "add corrections first or force a retrain.")
    per_correction: list[tuple[Correction, list[TrackFrames]]] = []
    pooled = table.frame_seconds > SLICE_S + _TOL  # rows longer than a slice: one row per slice
    for c in usable:
        stored = store.embeddings(c.audio_sha256, embedder_id)
        if stored is None:
            skipped.append(f"correction #{c.id}: no stored embeddings")
            continue
        if not pooled and abs(stored.frame_seconds - table.frame_seconds) > _TOL:
            skipped.append(f"correction #{c.id}: frame length {stored.frame_seconds:g} s != table's")
            continue
        tracks, warning = window_tracks(c, stored, one_row_per_slice=pooled)
        if warning:
            warnings.append(warning)
        if tracks:
            per_correction.append((c, tracks))
        else:
            skipped.append(f"correction #{c.id}: audio shorter than one window")
    ids = table.track_ids()
    train_table = table
    if valid is not None:  # chosen on `valid`: train on the base table, validate on valid, as the parent did
        train_table = EmbeddingTable.concat([table, valid], table.meta)
        member_val, n_base = [valid.track_ids()] * cfg.members, len(ids)
    elif not cfg.early_stopping or _fit_on_everything(card):  # the parent held no track out: neither does the
        member_val, n_base = [[]] * cfg.members, len(ids)  # candidate (v5 lost 130 base tracks to a fresh split)
    elif member_val := _parent_validation(card, cfg, set(ids), warnings):
        n_base = round(float(np.mean([len(set(ids) - set(v)) for v in member_val])))
    else:
        n_base = round(len(ids) * (1 - (cfg.val_fraction if cfg.members == 1 else 1 / cfg.member_folds)))
    held_ids = set(held_out_ids([(c.id, c.audio_sha256) for c, _ in per_correction if c.id in set(new_ids)],
                                valid is not None))
    held_audio = {c.audio_sha256 for c, _ in per_correction if c.id in held_ids}
    held = list({c.audio_sha256: (list(c.genres), tracks)  # one judgement per held-out audio: the newest
                 for c, tracks in sorted(per_correction, key=lambda ct: ct[0].id) if c.id in held_ids}.values())
    # every correction of a held-out audio stays out of training (a copy trained on would leak it), and
    # copies of one audio (other windows, notes or sessions) share one correction's weight, not add up
    per_correction = [(c, tracks) for c, tracks in per_correction if c.audio_sha256 not in held_audio]
    copies = Counter(c.audio_sha256 for c, _ in per_correction)
    w = correction_weight(len(copies), n_base, weight)
    extra = [(t, w / len(tracks) / copies[c.audio_sha256]) for c, tracks in per_correction for t in tracks]
    used_ids = [c.id for c, _ in per_correction]

    if not force and not (set(used_ids) | held_ids) & set(new_ids):  # else each request retrains on what the
        # parent already learned, promotes a copy of it, and the unusable corrections stay "new" forever
        raise RetrainError(f"None of the {plural(len(new_ids), 'new correction')} can be trained on "
                           f"({'; '.join(skipped) or 'none has stored embeddings'}); force a retrain to run anyway.")
    report(0.05, f"Training on the base table + {plural(len(used_ids), 'correction')}")

    def log(row: dict) -> None:
        member = row.get("member", 1)
        done = (member - 1 + row["epoch"] / cfg.epochs) / cfg.members
        who = f"Member {member}/{cfg.members}, epoch" if cfg.members > 1 else "Epoch"
        report(0.05 + 0.75 * done, f"{who} {row['epoch']}/{cfg.epochs}: validation accuracy {row['val_accuracy']:.1%}")

    result = train(train_table, cfg, extra=extra, log=log, member_val_ids=member_val)
    version = reserve_version(root, parent)
    staging = staging_dir(root, version)
    try:  # everything is written into the hidden staging folder; it gets its name only when complete
        new_card = ModelCard(
            version=version, labels=list(GENRES), embedder=card.embedder, classifier={},
            training={
                "data": card.training.get("data"), "data_sha256": table.fingerprint(), "config": cfg.to_dict(),
                **result.card_fields(), "parent_version": parent,
                "corrections": {"n": len(used_ids), "ids": used_ids, "new_ids": new_ids, "weight": w,
                                "n_windows": len(extra), "skipped": skipped},
            },
            notes=f"Retrained from {parent} with {len(used_ids)} user corrections.",
        )
        save_bundle(result.model, new_card, root, folder=staging)
        inherit_trust(root / parent, staging)  # else a promoted retrain would stop saying "not music" for everyone
        atomic_write_text(staging / CURVES_FILE, json.dumps(result.curves(), indent=1))
        report(0.82, f"Judging {version} against {parent} on " +
               ("the validation tracks" if valid is not None else "held-out corrections"))
        decision = judge(result.model.eval(), current_model, (version, parent), validation=valid, base=table,
                         held_out=held, margin=margin)
        record = {"promoted": decision.promoted, "reason": decision.reason, "judged_on": decision.judged_on,
                  "parent_accuracy": decision.current_accuracy, "accuracy": decision.new_accuracy, "margin": margin,
                  "recall_drops_points": decision.recall_drops, "held_out_corrections": sorted(held_ids),
                  "decided": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        update_card(staging, lambda c: c.training.__setitem__("promotion", record))  # weights and hash unchanged
        if test is not None:  # reported numbers for the Metrics page, after the decision and apart from it
            report(0.92, f"{'Promoting' if decision.promoted else 'Not promoting'} {version}; recording its test "
                         "metrics (for reporting only)")
            same = recorded_baseline(root / parent, table, test, cfg.seed)  # corrections never reach the baseline
            evaluate_and_record(staging, test, table, cfg.seed, baseline=same)
        report(0.98, f"Saving {version}")
        if not decision.promoted and current_version(root, fallback=False) is None:
            set_current(parent, root)  # else the newest bundle, this rejected candidate, would become current
        folder = publish_bundle(staging, root, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if decision.promoted:  # after publishing, so CURRENT only ever names a fully recorded bundle
        set_current(version, root)
    try:  # only for a bundle that exists: a crash before leaves them unused
        store.mark_used(version, [c for c, _ in per_correction])  # id and key: never a newcomer under an old id
    except (FeedbackError, SQLAlchemyError) as exc:  # the bundle and CURRENT already agree with its card
        warnings.append(f"{version} was saved, but the database could not record which corrections it used "
                        f"({exc.__class__.__name__}); they will count as new at the next retrain.")
    report(1.0, decision.reason)
    return RetrainResult(
        version=version, parent_version=parent, folder=folder, promoted=decision.promoted, reason=decision.reason,
        new_accuracy=decision.new_accuracy, current_accuracy=decision.current_accuracy,
        new_macro_f1=decision.new_macro_f1, current_macro_f1=decision.current_macro_f1, margin=margin,
        correction_ids=used_ids, new_correction_ids=new_ids, correction_weight=w, skipped=skipped,
        warnings=warnings, judged_on=decision.judged_on, held_out_ids=sorted(held_ids),
    )
