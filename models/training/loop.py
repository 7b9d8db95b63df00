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
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch.nn import functional as F

from models.classifier.ensemble import GenreEnsemble, Member, build_member
from models.training import linear_fit
from models.training.calibration import _out_of_fold, fit_temperature
from models.training.config import CONVEX_SOLVERS, MemberResult, TrainConfig, TrainResult
from models.training.data import _sample_batch_windows, _window_logits, max_slice_frames, one_hot, track_probabilities
from models.training.nuisance import NuisanceShifts, load_shifts, scatter
from models.training.splits import fold_splits, member_splits, seed_everything, split_tracks
from utils.constants import DEAD_STD
from utils.tables import EmbeddingTable, TrackFrames

Log = Callable[[dict], None]


def _lr_factor(epoch: float, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    progress = (epoch - cfg.warmup_epochs) / max(1, cfg.epochs - cfg.warmup_epochs)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


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
    nuisance = _nuisance(cfg, table)
    results = []
    for i, (train_ids, val_ids_) in enumerate(splits):
        member_log = log
        if log is not None and cfg.members > 1:
            def member_log(row: dict, _i: int = i) -> None:
                log(row | {"member": _i + 1})
        member_cfg = replace(cfg, seed=cfg.seed + i)
        results.append(_train_member(
            [by_id[t] for t in train_ids], [by_id[t] for t in val_ids_], extra or [], member_cfg, table.dim, frame_s,
            f, member_log, nuisance,
        ))
    card_entry = nuisance.card_entry(cfg.nuisance) if nuisance is not None else None
    if len(results) == 1:
        (r,) = results
        return TrainResult(r.model, r.history, r.best_epoch, r.val_accuracy, r.temperature, splits[0][0], r.val_ids,
                           results, card_entry)
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
        nuisance=card_entry,
    )


def _nuisance(cfg: TrainConfig, table: EmbeddingTable) -> NuisanceShifts | None:
    """The config's shift file, checked against the table; only LDA has a covariance to add it to."""
    if not cfg.nuisance:
        return None
    if cfg.solver != "lda":
        raise ValueError(f"A nuisance shift file needs the lda solver, not {cfg.solver!r}.")
    if cfg.classifier.input_transform != "none":
        raise ValueError("Nuisance shifts are measured on raw features: they need input_transform 'none'.")
    if not np.isfinite(cfg.nuisance_weight) or cfg.nuisance_weight < 0:
        raise ValueError(f"nuisance_weight must be a finite number >= 0, not {cfg.nuisance_weight}.")
    return load_shifts(cfg.nuisance, table.embedder_id, table.dim)


def _train_member(
    train_tracks: list[TrackFrames],
    val_tracks: list[TrackFrames],
    extra: list[tuple[TrackFrames, float]],
    cfg: TrainConfig,
    dim: int,
    frame_s: float,
    f: int,
    log: Log | None,
    nuisance: NuisanceShifts | None = None,
) -> MemberResult:
    """One model: train with augmentation, keep the best validation epoch, fit its temperature."""
    if cfg.solver in CONVEX_SOLVERS:
        return _fit_convex_member(train_tracks, val_tracks, extra, cfg, dim, frame_s, f, nuisance)
    if cfg.solver != "adamw":
        raise ValueError(f"Unknown solver {cfg.solver!r}; known: adamw, {', '.join(CONVEX_SOLVERS)}.")
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


def _fit_convex_member(
    train_tracks: list[TrackFrames], val_tracks: list[TrackFrames], extra: list[tuple[TrackFrames, float]],
    cfg: TrainConfig, dim: int, frame_s: float, f: int, nuisance: NuisanceShifts | None = None,
) -> MemberResult:
    """The pooled head fitted on track means by a convex solver (`models.training.linear_fit`).

    Its calibration comes from out-of-fold window logits over whole-id-block folds of the base
    tracks (corrections always train), so no held-out set is needed to calibrate it: a temperature
    for logistic regression, a shared slope and offset for LDA (folded into the bias and temperature).
    """
    config = cfg.classifier_config(dim)
    tracks = list(train_tracks) + [t for t, _ in extra]
    weights = np.array([1.0] * len(train_tracks) + [w for _, w in extra])
    probe = build_member(config)
    mean, std = _standardisation(probe, tracks)
    probe.set_normalisation(mean, std)
    x, y = linear_fit.standardised_means(probe, tracks), one_hot([t.genre for t in tracks])
    live = (std >= DEAD_STD).numpy()
    extra_scatter = None
    if nuisance is not None:  # shifts in the head's standardised space (the solver keeps live columns only)
        shifts = nuisance.shifts / probe.input_std.double().numpy()
        extra_scatter = cfg.nuisance_weight * scatter(shifts)

    def fit(rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
        if cfg.solver == "lda":
            return linear_fit.fit_lda_weights(x[rows], y[rows], weights[rows], live, extra_scatter)
        return linear_fit.fit_weights(x[rows], y[rows], weights[rows], cfg.c)

    coef, bias = fit(list(range(len(tracks))))
    index = {t.track_id: i for i, t in enumerate(train_tracks)}
    folds = fold_splits(list(index), [t.genre for t in train_tracks], linear_fit.CALIBRATION_FOLDS, cfg.seed,
                        cfg.val_block)
    logits, targets = [], []
    for fit_ids, held_ids in folds:
        keep = [index[i] for i in fit_ids] + list(range(len(train_tracks), len(tracks)))
        fold = linear_fit.linear_head(config, mean, std, *fit(keep))
        held = [train_tracks[index[i]] for i in held_ids]
        logits += _window_logits(fold, held, frame_s, f)
        targets += [np.repeat(one_hot([t.genre]), len(lg), axis=0) for t, lg in zip(held, logits[-len(held):],
                                                                                   strict=True)]
    temperature = cfg.temperature
    if logits and cfg.solver == "lda":
        slope, offset = linear_fit.fit_platt(np.concatenate(logits), np.concatenate(targets))
        bias, temperature = bias + offset / slope, 1.0 / slope  # sigmoid(slope * z + offset) = sigmoid((z + b) / T)
    elif logits:
        temperature = fit_temperature(np.concatenate(logits), np.concatenate(targets))
    model = linear_fit.linear_head(config, mean, std, coef, bias)
    model.temperature.fill_(temperature)
    val_acc = float("nan")
    if val_tracks:
        p_val = track_probabilities(model, val_tracks, frame_s, f)
        val_acc = float((p_val.argmax(1) == one_hot([t.genre for t in val_tracks]).argmax(1)).mean())
    return MemberResult(model, [], 0, val_acc, temperature, [t.track_id for t in val_tracks])
