"""`python -m app trust` (app/jobs/trust.py): a bundle's trust files change only once everything is measured.

The engine is a stub here (the plumbing, not MusiCNN): it answers "music" or is interrupted like a Ctrl-C.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest

from app.cli.main import main
from models.classifier.bundle import CARD_FILE, read_card, update_card
from models.novelty import NOVELTY_FILE, fit_detector
from models.trust import TRUST_FILE, save_trust
from tests.helpers.bundles import make_test_bundle
from tests.helpers.cli import one_error_line
from tests.helpers.data import synthetic_table

FILES = (TRUST_FILE, NOVELTY_FILE, CARD_FILE)


class StubEngine:
    """Stands in for app.engine.Engine: records the trust settings it was given, answers "music"."""

    interrupt = False
    made: ClassVar[list[StubEngine]] = []

    def __init__(self, checkpoint: Path, trust=None, **_: object) -> None:
        self.trust = trust
        StubEngine.made.append(self)

    def analyze(self, source, filename: str | None = None) -> SimpleNamespace:
        if StubEngine.interrupt:
            raise KeyboardInterrupt
        return SimpleNamespace(verdict=SimpleNamespace(kind="music"), novelty=0.0, top_genre="rock")


@pytest.fixture
def world(tmp_path: Path, monkeypatch) -> SimpleNamespace:
    """Bundle B (with old trust files and card figures), a selection model, and tables of B's embedder."""
    root = tmp_path / "ckpt"
    bundle, _ = make_test_bundle(root, "B", metrics=False), make_test_bundle(root, "sel", metrics=False)
    embedder = read_card(bundle).embedder
    paths = {}
    for name, seed in (("train", 0), ("valid", 1), ("other", 2)):
        table = synthetic_table(n_per_genre=2, dim=50, seconds=10.0, seed=seed)
        table.meta["embedder"] = embedder
        if name != "train":  # other track ids than the training table's
            table.track_id = np.char.add(table.track_id, f"-{name}")
        table.save(tmp_path / f"{name}.npz")
        paths[name] = tmp_path / f"{name}.npz"
    means = np.random.default_rng(0).normal(0, 1, (40, 50))
    save_trust(bundle, fit_detector(means[:20], means[20:])[0], {"threshold": 0.3, "measured": {"old": 1}})
    update_card(bundle, lambda card: card.evaluation.__setitem__("not_music", {"old": True}))
    clip = SimpleNamespace(name="noise", samples=np.zeros(16000, np.float32), family="noise")
    monkeypatch.setattr("app.jobs.trust.nonmusic_clips", lambda: [clip])
    monkeypatch.setattr("app.engine.Engine", StubEngine)
    right = lambda selection, valid: (np.tile(np.eye(10)[:5] * 0.8 + 0.1, (4, 1)), np.tile(np.arange(5), 4))  # noqa: E731
    monkeypatch.setattr("app.jobs.trust.valid_probabilities", right)  # random weights answer nothing
    StubEngine.interrupt, StubEngine.made = False, []
    base = ["trust", "--root", str(root), "--checkpoint", "B", "--selection", "sel"]
    return SimpleNamespace(root=root, bundle=bundle, paths=paths, base=base, tmp=tmp_path,
                           before={name: (bundle / name).read_bytes() for name in FILES})


def _unchanged(world: SimpleNamespace) -> bool:
    return {name: (world.bundle / name).read_bytes() for name in FILES} == world.before


def test_tables_of_another_embedder_are_refused_before_anything_is_written(world, capsys) -> None:
    """50-d taggram tables for a 753-d bundle replaced trust.json and novelty.npz, then failed: broken for good."""
    foreign = synthetic_table(n_per_genre=2, dim=16, seconds=10.0)  # embedder synthetic/16
    foreign.save(world.tmp / "foreign.npz")
    argv = [*world.base, "--train-table", str(world.tmp / "foreign.npz"), "--valid-table", str(world.paths["valid"])]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert f"--train-table {world.tmp / 'foreign.npz'} holds 16-d synthetic/16 embeddings, but B reads 50-d" in line
    assert _unchanged(world) and not StubEngine.made


def test_a_selection_model_of_another_embedder_is_refused(world, capsys) -> None:
    update_card(world.root / "sel", lambda card: card.embedder.__setitem__("id", "musicnn-msd/pool/v1"))
    argv = [*world.base, "--train-table", str(world.paths["train"]), "--valid-table", str(world.paths["valid"])]
    assert main(argv) == 2
    assert "The selection model" in one_error_line(capsys) and _unchanged(world)


def test_an_interrupted_measurement_leaves_the_old_trust_files_and_card(world, capsys) -> None:
    """Ctrl-C (or a late error) left trust.json without `measured` beside the card's old figures."""
    StubEngine.interrupt = True
    argv = [*world.base, "--train-table", str(world.paths["train"]), "--valid-table", str(world.paths["valid"])]
    assert main(argv) == 130
    assert _unchanged(world)
    assert not [p.name for p in world.bundle.iterdir() if p.name.startswith(".")], "no temporary file left"


def test_a_missing_music_folder_is_refused_before_the_work(world, capsys) -> None:
    argv = [*world.base, "--train-table", str(world.paths["train"]), "--valid-table", str(world.paths["valid"]),
            "--music", str(world.tmp / "nonexistent")]
    assert main(argv) == 2
    assert f"--music {world.tmp / 'nonexistent'} is not a folder" in one_error_line(capsys)
    assert _unchanged(world) and not StubEngine.made


def test_a_finished_run_publishes_the_new_settings_it_measured_with(world, capsys) -> None:
    argv = [*world.base, "--train-table", str(world.paths["train"]), "--valid-table", str(world.paths["valid"]),
            "--test-table", str(world.paths["other"])]
    assert main(argv) == 0
    report = json.loads((world.bundle / TRUST_FILE).read_text())
    assert report["measured"]["nonmusic"]["n"] == 1 and "old" not in report["measured"]
    assert StubEngine.made[0].trust.threshold == report["threshold"]  # measured with the settings now published
    card = read_card(world.bundle)
    assert card.evaluation["not_music"]["decision_threshold"] == report["threshold"]
    assert card.evaluation["not_music"]["command"].startswith("python -m app trust")


@pytest.mark.parametrize("extra", [
    ["--train-table", "TRAIN", "VALID", "--valid-table", "VALID"],  # the validation tracks also fitted the detector
    ["--train-table", "TRAIN", "--valid-table", "VALID", "--audio-list", "LIST"],  # no --audio to choose from
])
def test_overlapping_tables_and_a_lone_audio_list_are_refused(world, capsys, extra) -> None:
    (world.tmp / "list.txt").write_text("blues.00000\n")
    swap = {"TRAIN": str(world.paths["train"]), "VALID": str(world.paths["valid"]), "LIST": str(world.tmp / "list.txt")}
    assert main([*world.base, *[swap.get(a, a) for a in extra]]) == 2
    line = one_error_line(capsys)
    want = "add --audio FOLDER" if "--audio-list" in extra else "share 20 tracks (e.g. blues.00000-valid)"
    assert want in line
    assert _unchanged(world) and not StubEngine.made


def test_a_threshold_that_answers_nothing_is_reported_not_a_crash(world, capsys, monkeypatch) -> None:
    """A selection model wrong on every track makes "answer nothing" the best rule; its log line crashed
    formatting the accuracy of no answers (None)."""
    wrong = lambda selection, valid: (np.tile(np.eye(10)[:5] * 0.8 + 0.1, (4, 1)), np.tile(np.arange(1, 6), 4))  # noqa: E731
    monkeypatch.setattr("app.jobs.trust.valid_probabilities", wrong)
    argv = [*world.base, "--train-table", str(world.paths["train"]), "--valid-table", str(world.paths["valid"])]
    code, said = main(argv), capsys.readouterr()
    assert code == 0 and "accuracy none answered" in said.out + said.err, said.err
