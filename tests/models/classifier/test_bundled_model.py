"""The model that ships: it loads, and its recorded numbers are what its weights produce."""

import json

import pytest

from models.classifier.bundle import DEFAULT_ROOT, METRICS_FILE, current_version, list_versions, load_bundle
from models.training.evaluation import evaluate_table
from tests.helpers.data import shared_path
from utils.tables import SHARED_DATA, load_table


@pytest.fixture(scope="module")
def shipped():
    version = current_version(DEFAULT_ROOT)
    assert version is not None, "no bundled model under models/checkpoints"
    model, card = load_bundle(DEFAULT_ROOT / version)  # checks the weights' sha256
    metrics = json.loads((DEFAULT_ROOT / version / METRICS_FILE).read_text())
    return model, card, metrics


def test_every_bundled_version_loads_and_its_card_agrees_with_its_metrics() -> None:
    for version in list_versions(DEFAULT_ROOT):
        _, card = load_bundle(DEFAULT_ROOT / version)
        metrics = json.loads((DEFAULT_ROOT / version / METRICS_FILE).read_text())
        assert metrics["model"]["weights_sha256"] == card.weights_sha256
        assert card.evaluation["test"]["accuracy"] == metrics["accuracy"]
        assert metrics["n_tracks"] == 290 and metrics["baseline"]["accuracy"] > 0.7


@pytest.mark.parametrize("version", list_versions(DEFAULT_ROOT))
def test_every_bundled_versions_test_numbers_come_from_its_weights(version: str) -> None:
    from models.training.retrain import test_table_of

    model, card = load_bundle(DEFAULT_ROOT / version)
    metrics = json.loads((DEFAULT_ROOT / version / METRICS_FILE).read_text())
    rel = test_table_of(card).relative_to(SHARED_DATA)  # the test table of this model's embedder
    test = load_table(shared_path("data", *rel.parts))
    assert test.embedder_id == card.embedder["id"]
    report = evaluate_table(model, test)
    assert report["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-12)
    assert report["macro_f1"] == pytest.approx(metrics["macro_f1"], abs=1e-12)
    recorded = {t["track_id"]: t["predicted"] for t in metrics["tracks"]}
    assert {t["track_id"]: t["predicted"] for t in report["tracks"]} == recorded


def test_the_current_model_is_a_pooled_model_never_fitted_on_test(shipped) -> None:
    _, card, metrics = shipped
    assert card.version == current_version(DEFAULT_ROOT) and card.embedder["id"] == "musicnn-msd/pool/v1"
    test_ids = {t["track_id"] for t in metrics["tracks"]}
    assert card.training["n_train_tracks"] == 639 and len(test_ids) == 290
    assert "test" not in " ".join(card.training["data"]) and "the test split was not used" in card.training["protocol"]
