"""Training the window classifier on an embedding table, with honest validation.

Windows are built from frame rows (the frames whose patch lies inside each 5 s slice). Training
samples window starts at random (window jitter) and drops frames at random (frame dropout); model
selection and temperature scaling use validation tracks carved from the training tracks, never
the test tracks.

With `members` > 1 the result is a cross-fitted ensemble: member i validates on fold i of
repeated K-fold splits of the training tracks (by id block) and trains on the other folds, so
every training track teaches most members and every member's early stopping and calibration
are decided on tracks it never trained on.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold, train_test_split
from torch.nn import functional as F

from models import linear_fit
from models.ensemble import Classifier, GenreEnsemble, Member, build_member
from models.parallel_cnn import ClassifierConfig
from models.predict import combine_windows, predict_windows
from utils.constants import GENRES, N_GENRES, WINDOW_S
from utils.tables import EmbeddingTable, TrackFrames
from utils.windows import track_duration, window_starts, windows_from_frames

Log = Callable[[dict], None]


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
    solver: str = "adamw"  # "logistic": models.linear_fit (arch="pooled", hidden=0), convex, no epochs
    c: float = 0.03  # inverse L2 strength of the logistic solver (chosen on valid for v3)
    early_stopping: bool = True  # keep the best validation epoch (False: train `epochs`, keep the last)
    temperature: float = 1.0  # each member's calibration when it has no validation tracks (chosen earlier)
    ensemble_temperature: float = 1.0  # the ensemble's, likewise, when no track was held out

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
        arch = {k: values[k] for k in ARCH_FIELDS if k in values}
        return cls(**{k: v for k, v in values.items() if k in own}, classifier=replace(_default_classifier(), **arch))

    def with_values(self, **values: Any) -> TrainConfig:
        """A copy with flat-form fields changed (architecture fields included)."""
        return TrainConfig.from_dict(self.to_dict() | values)


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

    def card_fields(self) -> dict:
        """What a model card records about this training run."""
        out = {
            "n_train_tracks": len(self.train_ids), "n_val_tracks": len(self.val_ids), "val_tracks": self.val_ids,
            "best_epoch": self.best_epoch, "temperature": self.temperature,
            "val_accuracy": self.val_accuracy if math.isfinite(self.val_accuracy) else None,  # JSON has no NaN
        }
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


def seed_everything(seed: int) -> None:
    """Same seed, same weights: seed Python, NumPy and torch and ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def track_blocks(track_ids: list[str], block: int) -> dict[str, str] | None:
    """Group `genre.NNNNN` ids into runs of at most `block` consecutive numbers within a genre.

    GTZAN numbers an artist's tracks consecutively, so contiguous blocks approximate artist groups;
    a validation set made of whole blocks shares far fewer artists with training than a random one
    (which made validation say 94 % for a model that scored 72 % on the artist-disjoint test split).
    Returns None when ids are not numbered that way.
    """
    parsed = {}
    for tid in track_ids:
        genre, _, num = tid.rpartition(".")
        if not genre or not num.isdigit():
            return None
        parsed[tid] = (genre, int(num))
    groups: dict[str, str] = {}
    for genre in sorted({g for g, _ in parsed.values()}):
        nums = sorted((n, t) for t, (g, n) in parsed.items() if g == genre)
        run, size, prev = 0, 0, None
        for n, tid in nums:
            if prev is not None and (n != prev + 1 or size >= block):
                run, size = run + 1, 0
            groups[tid] = f"{genre}/{run}"
            size, prev = size + 1, n
    return groups


def split_tracks(
    table: EmbeddingTable,
    val_fraction: float,
    seed: int,
    val_ids: list[str] | None = None,
    block: int = 8,
) -> tuple[list[str], list[str]]:
    """Train/validation track ids: a given list, else whole id blocks per genre, else a stratified split."""
    ids = table.track_ids()
    if val_ids is not None:
        chosen = set(val_ids)
        return [t for t in ids if t not in chosen], [t for t in ids if t in chosen]
    genre_of = {t.track_id: t.genre for t in table.tracks()}
    groups = track_blocks(ids, block) if block > 0 else None
    if groups is not None:
        rng = np.random.default_rng(seed)
        val: list[str] = []
        for genre in sorted(set(genre_of.values())):
            members = [t for t in ids if genre_of[t] == genre]
            blocks = sorted({groups[t] for t in members})
            want = max(1, round(val_fraction * len(members)))
            taken: list[str] = []
            for b in rng.permutation(blocks):
                if len(taken) >= want or len(blocks) < 2:
                    break
                taken += [t for t in members if groups[t] == b]
            val += taken
        if val:
            return sorted(set(ids) - set(val)), sorted(val)
    labels = [genre_of[t] for t in ids]
    counts = {g: labels.count(g) for g in set(labels)}
    n_val = max(round(val_fraction * len(ids)), len(counts))  # at least one track per genre
    stratify = labels if min(counts.values()) >= 2 and n_val < len(ids) - len(counts) else None
    train, val = train_test_split(ids, test_size=n_val, random_state=seed, stratify=stratify)
    return sorted(train), sorted(val)


def member_splits(
    table: EmbeddingTable, cfg: TrainConfig, val_ids: list[str] | None = None,
) -> list[tuple[list[str], list[str]]]:
    """(train ids, validation ids) for each ensemble member.

    One member, or a given validation list: every member uses the same split (members then differ
    by seed only). Otherwise member i validates on fold i mod K of the (i // K)-th K-fold split,
    folds made of whole id blocks per genre when ids allow it, else stratified by genre.
    """
    if cfg.members < 1:
        raise ValueError(f"members must be at least 1, not {cfg.members}.")
    if val_ids is not None or cfg.members == 1:
        return [split_tracks(table, cfg.val_fraction, cfg.seed, val_ids, cfg.val_block)] * cfg.members
    ids = table.track_ids()
    genre_of = {t.track_id: t.genre for t in table.tracks()}
    labels = [genre_of[t] for t in ids]
    out: list[tuple[list[str], list[str]]] = []
    repeat = 0
    while len(out) < cfg.members:
        out += fold_splits(ids, labels, cfg.member_folds, cfg.seed + repeat, cfg.val_block)
        repeat += 1
    return out[: cfg.members]


def fold_splits(
    ids: list[str], labels: list[str], k: int, seed: int, block: int = 8,
) -> list[tuple[list[str], list[str]]]:
    """K (train ids, held-out ids) folds: whole id blocks when every genre has K of them, else by track.

    Blocks keep an artist's tracks on one side (see `track_blocks`); with fewer than K blocks in
    a genre, grouped folds would hold out the whole genre, so tracks are stratified instead.
    """
    arr, y = np.array(ids), np.array(labels)
    k = min(max(2, k), len(arr))
    groups = track_blocks(list(ids), block) if block > 0 else None
    if groups is not None:
        per_genre = {g: {groups[t] for t, lab in zip(ids, labels, strict=True) if lab == g} for g in set(labels)}
        if min(len(b) for b in per_genre.values()) < k:
            groups = None
    if groups is not None:
        folds = StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(arr, y, [groups[t] for t in ids])
    elif min(np.unique(y, return_counts=True)[1]) >= k:
        folds = StratifiedKFold(k, shuffle=True, random_state=seed).split(arr, y)
    else:
        folds = KFold(k, shuffle=True, random_state=seed).split(arr)
    return [(sorted(arr[tr].tolist()), sorted(arr[va].tolist())) for tr, va in folds]


def one_hot(genres: list[str]) -> np.ndarray:
    """(N, C) multi-hot targets from genre names (a '|' separates several genres)."""
    y = np.zeros((len(genres), N_GENRES), dtype=np.float32)
    for i, g in enumerate(genres):
        for part in str(g).split("|"):
            y[i, GENRES.index(part)] = 1.0
    return y


def grid_windows(track: TrackFrames, frame_s: float, max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The windows the engine would analyse for this track: starts every 5 s."""
    duration = max(track_duration(track.frame_start_s, frame_s), WINDOW_S)
    return windows_from_frames(track.vectors, track.frame_start_s, frame_s, window_starts(duration), max_frames)


def max_slice_frames(table: EmbeddingTable) -> int:
    """Largest frame count a slice can hold for this table's frame grid."""
    frame_s = table.frame_seconds
    return max(grid_windows(t, frame_s)[0].shape[2] for t in table.tracks()[:50])


def track_probabilities(model: Classifier, tracks: list[TrackFrames], frame_s: float, f: int) -> np.ndarray:
    """(T, C) track probabilities, windows combined exactly as the engine combines them."""
    out = []
    for t in tracks:
        x, m = grid_windows(t, frame_s, f)
        out.append(combine_windows(predict_windows(model, x, m).probabilities))
    return np.stack(out)


def _sample_batch_windows(
    tracks: list[TrackFrames], weights: np.ndarray, frame_s: float, f: int, cfg: TrainConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One epoch of training windows with jitter and frame dropout."""
    xs, ms, ys, ws = [], [], [], []
    for t, w in zip(tracks, weights, strict=True):
        duration = max(track_duration(t.frame_start_s, frame_s), WINDOW_S)
        if cfg.jitter:
            starts = rng.uniform(0.0, duration - WINDOW_S, size=cfg.windows_per_track)
        else:
            starts = window_starts(duration)
        x, m = windows_from_frames(t.vectors, t.frame_start_s, frame_s, starts, f)
        xs.append(x)
        ms.append(m)
        ys.append(np.repeat(one_hot([t.genre]), len(starts), axis=0))
        ws.append(np.full(len(starts), w, dtype=np.float32))
    x, m, y, w = np.concatenate(xs), np.concatenate(ms), np.concatenate(ys), np.concatenate(ws)
    if cfg.frame_dropout > 0:
        drop = rng.random(m.shape) < cfg.frame_dropout
        keep_one = m & ~drop
        empty = ~keep_one.any(axis=2)  # never drop every frame of a slice
        m = np.where(empty[..., None], m, keep_one)
    return x, m, y, w


def _lr_factor(epoch: float, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    progress = (epoch - cfg.warmup_epochs) / max(1, cfg.epochs - cfg.warmup_epochs)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """Temperature minimising BCE of sigmoid(logits / T) on validation (a 1-D search in log T)."""
    z = torch.from_numpy(logits).double()
    y = torch.from_numpy(targets).double()
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 241))
    losses = [F.binary_cross_entropy_with_logits(z / t, y).item() for t in grid]
    return float(grid[int(np.argmin(losses))])


def _standardisation(model: Member, tracks: list[TrackFrames]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std of the (transformed) training frames."""
    with torch.no_grad():
        allv = model.transform(torch.from_numpy(np.concatenate([t.vectors for t in tracks]))).double()
    return allv.mean(0).float(), allv.std(0).float()


def train(
    table: EmbeddingTable,
    cfg: TrainConfig,
    val_ids: list[str] | None = None,
    extra: list[tuple[TrackFrames, float]] | None = None,
    log: Log | None = None,
    member_val_ids: list[list[str]] | None = None,
) -> TrainResult:
    """Train on `table` (plus weighted `extra` tracks, e.g. user corrections); select on validation.

    `member_val_ids` gives each member its validation tracks (a retrain reuses its parent's);
    otherwise `member_splits` draws them. Log rows carry `member` (1-based) for an ensemble.
    """
    if member_val_ids is not None:
        if len(member_val_ids) != cfg.members:
            raise ValueError(f"{len(member_val_ids)} validation lists for {cfg.members} members.")
        splits = [split_tracks(table, cfg.val_fraction, cfg.seed, list(v), cfg.val_block) for v in member_val_ids]
    else:
        splits = member_splits(table, cfg, val_ids)
    by_id = {t.track_id: t for t in table.tracks()}
    frame_s = table.frame_seconds
    f = max_slice_frames(table)
    results = []
    for i, (train_ids, val_ids_) in enumerate(splits):
        member_log = log
        if log is not None and cfg.members > 1:
            def member_log(row: dict, _i: int = i) -> None:
                log(row | {"member": _i + 1})
        member_cfg = replace(cfg, seed=cfg.seed + i)
        results.append(_train_member(
            [by_id[t] for t in train_ids], [by_id[t] for t in val_ids_], extra or [], member_cfg, table.dim, frame_s,
            f, member_log,
        ))
    if len(results) == 1:
        (r,) = results
        return TrainResult(r.model, r.history, r.best_epoch, r.val_accuracy, r.temperature, splits[0][0], r.val_ids,
                           results)
    history = [row | {"member": i + 1} for i, r in enumerate(results) for row in r.history]
    ensemble = GenreEnsemble([r.model for r in results]).eval()
    accuracy, temperature = _out_of_fold(results, by_id, frame_s, f)
    if not np.isfinite(temperature):  # nothing held out: the temperature chosen on validation before
        temperature = cfg.ensemble_temperature
    ensemble.temperature.fill_(temperature)
    return TrainResult(
        model=ensemble,
        history=history,
        best_epoch=int(np.median([r.best_epoch for r in results])),
        val_accuracy=accuracy,
        temperature=temperature,
        train_ids=sorted({t for tr, _ in splits for t in tr}),
        val_ids=sorted({t for _, va in splits for t in va}),
        members=results,
    )


def _out_of_fold(
    results: list[MemberResult], by_id: dict[str, TrackFrames], frame_s: float, f: int,
) -> tuple[float, float]:
    """Out-of-fold accuracy and the ensemble's temperature, from the members' validation tracks.

    Every validation track is predicted by the members that held it out (their window
    probabilities averaged, as the ensemble averages them); the temperature is fitted on those
    windows, the accuracy counted on the tracks the windows combine into.
    """
    held: dict[str, list[np.ndarray]] = {}
    for r in results:
        for t in r.val_ids:
            x, m = grid_windows(by_id[t], frame_s, f)
            held.setdefault(t, []).append(predict_windows(r.model, x, m).probabilities)
    if not held:
        return float("nan"), float("nan")
    probs = {t: np.mean(ps, axis=0) for t, ps in held.items()}
    hits = [GENRES[int(combine_windows(p).argmax())] in by_id[t].genre.split("|") for t, p in probs.items()]
    windows = np.concatenate(list(probs.values()))
    targets = np.concatenate([np.repeat(one_hot([by_id[t].genre]), len(p), axis=0) for t, p in probs.items()])
    p = np.clip(windows, 1e-7, 1 - 1e-7)
    return float(np.mean(hits)), fit_temperature(np.log(p / (1 - p)), targets)


def _train_member(
    train_tracks: list[TrackFrames],
    val_tracks: list[TrackFrames],
    extra: list[tuple[TrackFrames, float]],
    cfg: TrainConfig,
    dim: int,
    frame_s: float,
    f: int,
    log: Log | None,
) -> MemberResult:
    """One model: train with augmentation, keep the best validation epoch, fit its temperature."""
    if cfg.solver == "logistic":
        return _fit_logistic_member(train_tracks, val_tracks, extra, cfg, dim, frame_s, f)
    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    weights = [1.0] * len(train_tracks)
    train_tracks = list(train_tracks)
    for track, weight in extra:
        train_tracks.append(track)
        weights.append(weight)
    weights_arr = np.asarray(weights, dtype=np.float32)

    model = build_member(cfg.classifier_config(dim))
    model.set_normalisation(*_standardisation(model, train_tracks))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    y_val = one_hot([t.genre for t in val_tracks])
    best: tuple[float, float] = (-1.0, -float("inf"))
    best_state, best_epoch, stale, history = None, 0, 0, []

    for epoch in range(cfg.epochs):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * _lr_factor(epoch, cfg)
        x, m, y, w = _sample_batch_windows(train_tracks, weights_arr, frame_s, f, cfg, rng)
        order = rng.permutation(len(x))
        model.train()
        total, count = 0.0, 0
        for a in range(0, len(order), cfg.batch_size):
            idx = order[a : a + cfg.batch_size]
            if len(idx) < 2:
                continue
            xb, mb = torch.from_numpy(x[idx]), torch.from_numpy(m[idx])
            yb, wb = torch.from_numpy(y[idx]), torch.from_numpy(w[idx])
            if cfg.mixup_alpha > 0:
                lam = float(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha))
                perm = torch.from_numpy(rng.permutation(len(idx)))
                xb = lam * xb + (1 - lam) * xb[perm]
                mb = mb | mb[perm]
                yb = lam * yb + (1 - lam) * yb[perm]
            out = model(xb, mb)
            loss_w = F.binary_cross_entropy_with_logits(out.logits, yb, reduction="none").mean(1)
            loss_s = F.binary_cross_entropy_with_logits(
                out.slice_logits, yb[:, None, :].expand_as(out.slice_logits), reduction="none"
            ).mean((1, 2))
            loss = ((loss_w + cfg.slice_loss_weight * loss_s) * wb).sum() / wb.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        model.eval()
        row = {"epoch": epoch + 1, "train_loss": total / max(count, 1), "lr": opt.param_groups[0]["lr"]}
        if not val_tracks:  # the final fit on every track: a fixed number of epochs
            history.append(row)
            if log:
                log(row | {"val_accuracy": float("nan")})
            continue
        p_val = track_probabilities(model, val_tracks, frame_s, f)
        val_loss = float(F.binary_cross_entropy(torch.from_numpy(p_val).clamp(1e-6, 1 - 1e-6),
                                                torch.from_numpy(y_val).double()).item())
        val_acc = float((p_val.argmax(1) == y_val.argmax(1)).mean())
        row |= {"val_loss": val_loss, "val_accuracy": val_acc}
        history.append(row)
        if log:
            log(row)
        if (val_acc, -val_loss) > best:
            best, best_state, best_epoch, stale = (val_acc, -val_loss), copy.deepcopy(model.state_dict()), epoch + 1, 0
        else:
            stale += 1
            if stale >= cfg.patience and cfg.early_stopping:
                break

    if best_state is not None and cfg.early_stopping:
        model.load_state_dict(best_state)
    else:  # fixed length: the last epoch, whatever validation said
        best_epoch = len(history)
        best = (history[-1].get("val_accuracy", float("nan")), 0.0) if history else best
    model.eval()
    if val_tracks:
        logits = _window_logits(model, val_tracks, frame_s, f)
        targets = np.concatenate([np.repeat(one_hot([t.genre]), len(lg), axis=0)
                                  for t, lg in zip(val_tracks, logits, strict=True)])
        temperature = fit_temperature(np.concatenate(logits), targets)
    else:  # nothing held out (the final fit on train + valid): the temperature chosen on valid before
        temperature = cfg.temperature
    model.temperature.fill_(temperature)
    return MemberResult(model, history, best_epoch, best[0], temperature, [t.track_id for t in val_tracks])


def _fit_logistic_member(
    train_tracks: list[TrackFrames], val_tracks: list[TrackFrames], extra: list[tuple[TrackFrames, float]],
    cfg: TrainConfig, dim: int, frame_s: float, f: int,
) -> MemberResult:
    """The pooled head fitted by one-vs-rest logistic regression on track means (`models.linear_fit`).

    Its temperature comes from out-of-fold window logits over whole-id-block folds of the base
    tracks (corrections always train), so no held-out set is needed to calibrate it.
    """
    config = cfg.classifier_config(dim)
    tracks = list(train_tracks) + [t for t, _ in extra]
    weights = np.array([1.0] * len(train_tracks) + [w for _, w in extra])
    probe = build_member(config)
    mean, std = _standardisation(probe, tracks)
    probe.set_normalisation(mean, std)
    x, y = linear_fit.standardised_means(probe, tracks), one_hot([t.genre for t in tracks])
    model = linear_fit.linear_head(config, mean, std, *linear_fit.fit_weights(x, y, weights, cfg.c))
    index = {t.track_id: i for i, t in enumerate(train_tracks)}
    folds = fold_splits(list(index), [t.genre for t in train_tracks], linear_fit.CALIBRATION_FOLDS, cfg.seed,
                        cfg.val_block)
    logits, targets = [], []
    for fit_ids, held_ids in folds:
        keep = [index[i] for i in fit_ids] + list(range(len(train_tracks), len(tracks)))
        fold = linear_fit.linear_head(config, mean, std, *linear_fit.fit_weights(x[keep], y[keep], weights[keep],
                                                                                 cfg.c))
        held = [train_tracks[index[i]] for i in held_ids]
        logits += _window_logits(fold, held, frame_s, f)
        targets += [np.repeat(one_hot([t.genre]), len(lg), axis=0) for t, lg in zip(held, logits[-len(held):],
                                                                                   strict=True)]
    temperature = fit_temperature(np.concatenate(logits), np.concatenate(targets)) if logits else cfg.temperature
    model.temperature.fill_(temperature)
    val_acc = float("nan")
    if val_tracks:
        p_val = track_probabilities(model, val_tracks, frame_s, f)
        val_acc = float((p_val.argmax(1) == one_hot([t.genre for t in val_tracks]).argmax(1)).mean())
    return MemberResult(model, [], 0, val_acc, temperature, [t.track_id for t in val_tracks])


def _window_logits(model: Member, tracks: list[TrackFrames], frame_s: float, f: int) -> list[np.ndarray]:
    """Uncalibrated window logits per track (temperature 1)."""
    saved = model.temperature.clone()
    model.temperature.fill_(1.0)
    out = []
    with torch.inference_mode():
        for t in tracks:
            x, m = grid_windows(t, frame_s, f)
            out.append(model(torch.from_numpy(x), torch.from_numpy(m)).logits.numpy())
    model.temperature.copy_(saved)
    return out
