"""The shipped model rebuilds bit-identically from its recipe, its committed shift file and the shared tables."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from app.cli.main import main
from models.classifier.bundle import DEFAULT_ROOT, read_card
from tests.helpers.data import shared_path

REPO = Path(__file__).resolve().parents[3]
V5 = DEFAULT_ROOT / "msd-musicnn-v5"


def test_v5_rebuilds_from_its_recipe_and_the_committed_shifts(tmp_path: Path, capsys) -> None:
    pool = shared_path("data", "gtzan_musicnn_pool")
    card = read_card(V5)
    recorded = card.training["nuisance"]
    shifts = REPO / recorded["path"]
    assert hashlib.sha256(shifts.read_bytes()).hexdigest() == recorded["sha256"], "the shift file changed"
    recipe = json.loads((REPO / "docs" / "recipes" / "msd-musicnn-v5.json").read_text())
    assert {k: card.training["config"][k] for k in recipe} == recipe
    code = main(["train", "--table", str(pool / "train.npz"), str(pool / "valid.npz"), "--no-validation",
                 "--config", str(REPO / "docs" / "recipes" / "msd-musicnn-v5.json"), "--root", str(tmp_path),
                 "--version", "msd-musicnn-v5", "--no-set-current", "--seed", "0"])
    assert code == 0
    assert "nuisance scatter of 800 shifts, weight 0.05" in capsys.readouterr().out
    assert read_card(tmp_path / "msd-musicnn-v5").weights_sha256 == card.weights_sha256
