"""Retraining with corrections: frames rebuilt from stored slices, learning, the promotion guard, refusal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.classifier.bundle import (
    current_version,
    list_versions,
    load_bundle,
    read_card,
    save_bundle,
    set_current,
)
from models.novelty import fit_detector
from models.training.data import grid_windows
from models.training.loop import train
from models.training.retrain import RetrainError, retrain, slice_frames, window_starts_of, window_tracks
from models.trust import load_trust, save_trust
from tests.helpers.retrain import (
    DIM,
    FRAME,
    FRAMES_PER_SLICE,
    HOP,
    add_correction,
    card_for,
    corrected_world,
    engine_slices,
    fresh_root,
    make_table,
    predict_stored,
    tiny_config,
)
from utils.constants import GENRES
from utils.feedback import FeedbackStore, SliceEmbeddings
from utils.windows import plan_windows, windows_from_frames


# ------------------------------------------------------------------------------------ geometry
@pytest.mark.parametrize("seconds", [15.0, 17.5, 30.0, 33.0, 47.3])
def test_stored_slices_reassemble_exactly_into_engine_windows(seconds: float) -> None:
    rng = np.random.default_rng(1)
    plan = plan_windows(seconds)
    emb = rng.normal(0, 1, (len(plan.slice_starts), FRAMES_PER_SLICE, DIM)).astype(np.float32)
    assert window_starts_of(plan.slice_starts) == pytest.approx(plan.window_starts.tolist())
    c = type("C", (), {"id": 1, "genres": ("jazz",), "window_start_s": None})()
    stored = SliceEmbeddings("0" * 64, "e", emb, plan.slice_starts, HOP, FRAME)
    tracks, warning = window_tracks(c, stored)
    assert warning is None and len(tracks) == len(plan.window_starts)
    for w, track in enumerate(tracks):
        expected = emb[plan.window_slices[w]]  # what the engine classified for this window
        x, m = windows_from_frames(track.vectors, track.frame_start_s, FRAME, np.array([0.0]), FRAMES_PER_SLICE)
        np.testing.assert_array_equal(x[0], expected)
        assert m.all()
        gx, gm = grid_windows(track, FRAME, FRAMES_PER_SLICE)  # training (no jitter): that one window
        assert gx.shape[0] == 1 and gm.all()
        np.testing.assert_array_equal(gx[0], expected)
    # a whole track on the 5 s grid also reassembles slice by slice from one set of frame rows
    grid = np.isclose(plan.slice_starts % 5.0, 0.0)
    vectors, starts = slice_frames(emb[grid], plan.slice_starts[grid], HOP, FRAME)
    x, _ = windows_from_frames(vectors, starts, FRAME, plan.window_starts[: int(grid.sum()) - 2], FRAMES_PER_SLICE)
    np.testing.assert_array_equal(x, emb[plan.window_slices[: int(grid.sum()) - 2]])


def test_a_correction_about_one_window_trains_on_that_window_only() -> None:
    plan = plan_windows(30.0)
    emb = np.random.default_rng(2).normal(0, 1, (len(plan.slice_starts), 3, DIM)).astype(np.float32)
    stored = SliceEmbeddings("0" * 64, "e", emb, plan.slice_starts, HOP, FRAME)
    c = type("C", (), {"id": 7, "genres": ("jazz", "rock"), "window_start_s": 10.0})()
    tracks, warning = window_tracks(c, stored)
    assert warning is None and len(tracks) == 1 and tracks[0].genre == "jazz|rock"
    x, _ = windows_from_frames(tracks[0].vectors, tracks[0].frame_start_s, FRAME, np.array([0.0]), 3)
    np.testing.assert_array_equal(x[0], emb[plan.window_slices[2]])
    c.window_start_s = 12.0  # not a window of this track: fall back to the whole track, and say so
    tracks, warning = window_tracks(c, stored)
    assert len(tracks) == 4 and "12" in warning


def test_corrections_teach_the_retrained_model_and_are_recorded(world: dict, tmp_path: Path) -> None:
    root = fresh_root(world, tmp_path)
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    target = world["target"]
    assert all(GENRES[int(p.argmax())] != target for p in world["probs"])
    ids = [
        add_correction(store, e, s, target, "base", k, world["probs"][k]).correction.id
        for k, (e, s) in enumerate(world["tracks"][:4])
    ]
    steps: list[tuple[float, str]] = []
    means = np.random.default_rng(5).normal(0, 1, (40, DIM))
    detector, novelty = fit_detector(means[:20], means[20:])
    save_trust(root / "base", detector, {"threshold": 0.3, "novelty": novelty})

    res = retrain(
        store, world["table"], None, test=world["test"], root=root, cfg=world["cfg"],
        progress=lambda f, m: steps.append((f, m)),
    )
    trust = load_trust(res.folder)  # a promoted retrain keeps saying "not music", with the parent's settings
    assert trust.threshold == 0.3 and trust.report["inherited_from"] == "base"
    assert trust.detector is not None and trust.detector.threshold == detector.threshold

    model, card = load_bundle(res.folder)
    for e, _ in world["tracks"][:3]:  # the corrected tracks it trained on
        assert GENRES[int(predict_stored(model, e).argmax())] == target
    for e, _ in world["tracks"][3:]:  # the held-out correction and unseen tracks of the same kind of music
        assert GENRES[int(predict_stored(model, e).argmax())] == target
    assert res.version == "base-r1" and res.parent_version == "base"
    # no validation table: the newest correction was held out and judged both models
    assert res.held_out_ids == [ids[-1]] and res.judged_on == "1 held-out correction"
    assert (res.new_accuracy, res.current_accuracy) == (1.0, 0.0)
    assert res.promoted and current_version(root) == "base-r1", res.reason
    assert "now current" in res.reason and "test split was not used" in res.reason
    assert "at least 0.0% needed" in res.reason, "a floor below 0 % (-1.0 %) read as nonsense"
    assert sorted(res.correction_ids) == sorted(ids[:3])
    assert res.correction_weight == pytest.approx(min(8.0, 0.25 * card.training["n_train_tracks"] / 3))
    assert card.training["parent_version"] == "base" and card.training["corrections"]["ids"] == ids[:3]
    decision = card.training["promotion"]
    assert decision["promoted"] and decision["held_out_corrections"] == [ids[-1]]
    assert max(decision["recall_drops_points"].values()) <= 10.0
    metrics = json.loads((res.folder / "metrics.json").read_text())  # reported, after the decision
    assert metrics["accuracy"] == card.evaluation["test"]["accuracy"] and "baseline" in metrics
    assert all(store.usage()[i] == ["base-r1"] for i in ids[:3]) and ids[-1] not in store.usage()
    assert steps[0][0] == 0.0 and steps[-1][0] == 1.0 and any("Epoch" in m for _, m in steps)
    assert [f for f, _ in steps] == sorted(f for f, _ in steps)

    # the held-out correction is still new: the next retrain learns from it (alone: nothing to hold out)
    res2 = retrain(store, world["table"], None, root=root, cfg=world["cfg"])
    assert res2.parent_version == "base-r1" and res2.held_out_ids == [] and res2.correction_ids == ids
    assert "only the per-genre check applies" in res2.reason
    with pytest.raises(RetrainError, match="No new corrections"):
        retrain(store, world["table"], None, root=root, cfg=world["cfg"])


def test_held_out_corrections_are_those_of_the_newest_quarter_of_audios() -> None:
    from models.training.promotion import held_out_ids

    distinct = [(i, f"a{i}") for i in (5, 3, 9, 1, 7, 2, 8, 4)]
    assert held_out_ids(distinct, has_validation=False) == [8, 9]
    assert held_out_ids([(4, "a"), (2, "b")], has_validation=False) == [4]
    assert held_out_ids([(4, "a")], has_validation=False) == []
    assert held_out_ids(distinct[:4], has_validation=True) == []
    # two corrections of one song held each other out at every retrain: one audio is never held out
    assert held_out_ids([(1, "song"), (2, "song")], has_validation=False) == []
    assert held_out_ids([(1, "song"), (2, "other"), (3, "song")], has_validation=False) == [1, 3]


def test_two_corrections_of_one_song_are_learned_not_held_out_forever(world: dict, tmp_path: Path) -> None:
    """Both were held out at every retrain (each the other's copy), so 0 corrections were used and every
    run promoted a copy of its parent; and corrections nothing can train on must not retrain at all."""
    root = fresh_root(world, tmp_path)
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    first = add_correction(store, *world["tracks"][0], world["target"], "base", 0).correction
    store.add(audio_sha256=first.audio_sha256, file_name="again.wav", model_id="base@x", model_version="base",
              embedder_id=first.embedder_id, genres=[world["target"]], probabilities=np.full(10, 0.1),
              note="the same song, another window")
    res = retrain(store, world["table"], None, root=root, cfg=world["cfg"])
    assert res.held_out_ids == [] and len(res.correction_ids) == 2
    store.add(audio_sha256="f" * 64, file_name="no-embeddings.wav", model_id="base@x", model_version="base",
              embedder_id=first.embedder_id, genres=[world["target"]], probabilities=np.full(10, 0.1))
    with pytest.raises(RetrainError, match=r"None of the 1 new correction can be trained on.*no stored embeddings"):
        retrain(store, world["table"], None, root=root, cfg=world["cfg"])


def test_copies_of_one_audio_neither_leak_into_the_held_out_set_nor_add_weight(world: dict, tmp_path: Path) -> None:
    """A second correction of the same audio (another note) was trained on while its copy was held out, and
    every copy added a correction's weight: one user could buy the whole correction share with notes."""
    root = fresh_root(world, tmp_path)
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    ids = [add_correction(store, e, s, world["target"], "base", k).correction.id
           for k, (e, s) in enumerate(world["tracks"][:4])]
    first = max(store.list(), key=lambda c: c.id)
    again = store.add(audio_sha256=first.audio_sha256, file_name="again.wav", model_id="base@x", model_version="base",
                      embedder_id=first.embedder_id, genres=[world["target"]], probabilities=np.full(10, 0.1),
                      note="the same song, said again").correction
    res = retrain(store, world["table"], None, root=root, cfg=world["cfg"])
    assert res.held_out_ids == [first.id, again.id]  # every correction of the held-out audio
    assert sorted(res.correction_ids) == sorted(ids[:3]), "a copy of the held-out audio was trained on"

    root2 = fresh_root(world, tmp_path / "two")
    store2 = FeedbackStore(f"sqlite:///{tmp_path / 'fb2.sqlite3'}")
    e0, s0 = world["tracks"][0]
    for k, note in enumerate(("", "really", "really really")):
        store2.add(audio_sha256=f"{0:064x}", file_name=f"copy-{k}.wav", model_id="base@x", model_version="base",
                   embedder_id=first.embedder_id, genres=[world["target"]], probabilities=np.full(10, 0.1),
                   note=note, embeddings=None if k else SliceEmbeddings(f"{0:064x}", first.embedder_id, e0, s0,
                                                                         HOP, FRAME))
    add_correction(store2, *world["tracks"][1], world["target"], "base", 1)
    valid = make_table(world["means"], 2, seed=5, prefix="valid-")
    res2 = retrain(store2, world["table"], valid, root=root2, cfg=world["cfg"])
    assert len(res2.correction_ids) == 4  # all four trained on, as two audios' worth of weight
    n_base = len(world["table"].track_ids())
    assert res2.correction_weight == pytest.approx(min(8.0, 0.25 * n_base / 2))


def test_a_rejected_candidate_never_becomes_current_by_being_newest(world: dict, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a CURRENT file the newest bundle is current, so a kept parent lost to its rejected candidate;
    and a database error after publishing failed the job although the bundle was saved and promoted."""
    from sqlalchemy.exc import OperationalError

    root = fresh_root(world, tmp_path)
    (root / "CURRENT").unlink()
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    for k, (e, s) in enumerate(world["tracks"][:4]):
        add_correction(store, e, s, world["target"], "base", k)
    res = retrain(store, world["table"], None, root=root, cfg=world["cfg"], margin=-200.0)  # a bar nobody clears
    assert not res.promoted and current_version(root) == "base" and "base-r1" in list_versions(root)

    def broken(*_a, **_k):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(store, "mark_used", broken)
    res2 = retrain(store, world["table"], None, root=root, cfg=world["cfg"], force=True)
    assert res2.promoted and current_version(root) == res2.version
    assert any("could not record which corrections" in w for w in res2.warnings)


def test_guard_refuses_a_version_that_is_worse_on_the_validation_tracks(world: dict, tmp_path: Path) -> None:
    """Users 'correct' music that the validation set labels the way the current model already predicts it."""
    root = fresh_root(world, tmp_path)
    current, _ = load_bundle(root / "base")
    rng = np.random.default_rng(4)
    disputed = []
    for _ in range(8):  # validation tracks of the cluster, labelled with the current model's own prediction
        e, _ = engine_slices(world["cluster"], rng)
        disputed.append((GENRES[int(predict_stored(current, e).argmax())], world["cluster"]))
    valid = make_table(world["means"], 2, seed=5, extra=disputed, prefix="valid-")
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    for k, (e, s) in enumerate(world["tracks"][:4]):
        add_correction(store, e, s, world["target"], "base", k)

    res = retrain(store, world["table"], valid, test=world["test"], root=root, cfg=world["cfg"], margin=1.0)

    assert res.judged_on == f"{len(valid.track_ids())} validation tracks" and res.held_out_ids == []
    assert res.new_accuracy < res.current_accuracy - 0.01, (res.new_accuracy, res.current_accuracy)
    assert not res.promoted and current_version(root) == "base"
    assert "Kept base" in res.reason and "needed" in res.reason and "test split was not used" in res.reason
    assert "base-r1" in list_versions(root) and not read_card(res.folder).training["promotion"]["promoted"]


def test_guard_never_reads_the_test_table(world: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision is the same whatever the test table says: it is for reported numbers only."""
    import models.training.promotion as promotion

    seen: list[int] = []
    real = promotion.evaluate_table
    monkeypatch.setattr(promotion, "evaluate_table", lambda model, t, *a, **k: seen.append(id(t)) or real(model, t))
    root = fresh_root(world, tmp_path)
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    for k, (e, s) in enumerate(world["tracks"][:4]):
        add_correction(store, e, s, world["target"], "base", k)
    retrain(store, world["table"], None, test=world["test"], root=root, cfg=world["cfg"])
    assert seen and id(world["test"]) not in seen


def test_retrain_refuses_without_corrections_and_checks_embedders(world: dict, tmp_path: Path) -> None:
    root = fresh_root(world, tmp_path)
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    e, s = world["tracks"][0]
    add_correction(store, e, s, "not_music", "base", 0)  # "not music" names no genre: never new, never trained on
    with pytest.raises(RetrainError, match="No new corrections"):
        retrain(store, world["table"], None, root=root, cfg=world["cfg"])
    other = make_table(world["means"], 1, seed=9)
    other.meta = dict(other.meta, embedder={"name": "openl3", "id": "openl3/x", "options": {}})
    with pytest.raises(RetrainError, match="openl3/x"):
        retrain(store, world["table"], other, root=root, cfg=world["cfg"], force=True)
    with pytest.raises(RetrainError, match="no current model"):
        retrain(store, world["table"], None, root=tmp_path / "empty", force=True)
    assert list_versions(root) == ["base"]


def test_retrain_cli(world: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from app.cli.main import main

    root, db, _ = corrected_world(world, tmp_path, 2)
    args = ["retrain", "--table", str(tmp_path / "train.npz"), "--test", str(tmp_path / "test.npz"),
            "--root", str(root), "--db", db, "--epochs", "3", "--correction-weight", "5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "judged on 1 held-out correction: base-r1 accuracy" in out
    assert "1 correction used at weight 5.00 each" in out
    assert read_card(root / "base-r1").training["corrections"]["weight"] == 5.0
    assert main(args) == 0  # the held-out correction is still new, and now trains
    assert main(args) == 2
    assert "error: No new corrections" in capsys.readouterr().err
    assert main([*args, "--table", str(tmp_path / "missing.npz")]) == 2
    assert "No base training table at" in capsys.readouterr().err
    # numbers that switched the guard off (inf), trained garbage (-3 epochs) or crashed deep inside (inf weight)
    for flag, value in (("--margin", "inf"), ("--margin", "nan"), ("--epochs", "-3"), ("--correction-weight", "inf")):
        with pytest.raises(SystemExit) as usage:
            main([*args, flag, value])
        assert usage.value.code == 2 and f"argument {flag}" in capsys.readouterr().err
    assert list_versions(root) == ["base", "base-r1", "base-r2"]  # none of them trained anything
    with pytest.raises(SystemExit) as usage:  # SQLite's integers stop at 2**63: an OverflowError traceback
        main(["feedback", "delete", str(2**70), "--db", db])
    assert usage.value.code == 2 and "outside" in capsys.readouterr().err
    assert main(["feedback", "export", "--out", str(tmp_path), "--db", db]) == 2  # a folder: IsADirectoryError
    err = capsys.readouterr().err
    assert err.startswith("error: Could not write") and "Traceback" not in err


def test_the_guard_refuses_to_judge_on_test_tracks(world: dict, tmp_path: Path) -> None:
    """Nothing stopped `--valid` from naming the test table, which made the guard peek at the test split."""
    root, _, store = corrected_world(world, tmp_path, 4)
    with pytest.raises(RetrainError, match=r"shares \d+ tracks with the test table"):
        retrain(store, world["table"], world["test"], test=world["test"], root=root, cfg=world["cfg"])
    assert list_versions(root) == ["base"]


def test_a_queued_retrain_names_its_tables_by_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job queued from one folder stored "train.npz"; a worker started elsewhere could not find it."""
    from app.jobs.retrain import retrain_params

    monkeypatch.chdir(tmp_path)
    params = retrain_params(Path("ckpt"), tables=[Path("train.npz")], valid=Path("v/valid.npz"), test=None)
    assert params["tables"] == [str(tmp_path / "train.npz")] and params["valid"] == str(tmp_path / "v" / "valid.npz")
    assert params["root"] == str(tmp_path / "ckpt") and params["test"] is None


def test_an_ensemble_retrains_as_an_ensemble_on_its_parents_folds(world: dict, tmp_path: Path) -> None:
    from models.classifier.ensemble import GenreEnsemble

    cfg = tiny_config(members=2)
    parent = train(world["table"], cfg)
    root = tmp_path / "ckpt"
    card = card_for("ens", world["table"])
    card.training = {"data": "train.npz", "data_sha256": world["table"].fingerprint(), "config": cfg.to_dict(),
                     **parent.card_fields()}
    save_bundle(parent.model, card, root)
    set_current("ens", root)
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    for k, (e, s) in enumerate(world["tracks"][:4]):
        add_correction(store, e, s, world["target"], "ens", k)
    steps: list[str] = []

    res = retrain(store, world["table"], None, root=root, progress=lambda f, m: steps.append(m))

    model, new_card = load_bundle(res.folder)
    assert isinstance(model, GenreEnsemble) and len(model.members) == 2
    parent_folds = [m["val_tracks"] for m in card.training["members"]]
    assert [m["val_tracks"] for m in new_card.training["members"]] == parent_folds
    assert not set(parent_folds[0]) & set(parent_folds[1])  # each member held out different tracks
    assert any(m.startswith("Member 2/2, epoch") for m in steps)
    for e, _ in world["tracks"][4:]:  # unseen tracks of the corrected kind of music
        assert GENRES[int(predict_stored(model, e).argmax())] == world["target"]


def test_a_parent_trained_with_nuisance_shifts_retrains_with_them(world: dict, tmp_path: Path) -> None:
    """v5's recipe names a shift file: a retrain from feedback must find it, use it and record it again."""
    from models.training.config import TrainConfig
    from models.training.nuisance import NuisanceShifts

    root = fresh_root(world, tmp_path)
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    for k, (e, s) in enumerate(world["tracks"][:3]):
        add_correction(store, e, s, world["target"], "base", k, world["probs"][k])
    table = world["table"]
    shifts = tmp_path / "shifts.npz"
    NuisanceShifts(np.random.default_rng(0).normal(0, 0.3, (6, table.dim)).astype(np.float32),
                   np.array(["a"] * 3 + ["b"] * 3), np.array(["x", "y", "z"] * 2), table.embedder_id).save(shifts)
    cfg = TrainConfig.from_dict(dict(arch="pooled", hidden=0, dropout=0.0, members=1, solver="lda",
                                     nuisance=str(shifts), nuisance_weight=0.5))
    res = retrain(store, table, None, test=world["test"], root=root, cfg=cfg)
    card = read_card(res.folder)
    assert card.training["config"]["nuisance"] == str(shifts)
    assert card.training["nuisance"]["shifts"] == 6 and card.training["parent_version"] == "base"
    again = TrainConfig.from_dict(card.training["config"], strict=False)  # what the next retrain reads
    assert (again.nuisance, again.nuisance_weight, again.solver) == (str(shifts), 0.5, "lda")
