"""The Metrics page's validation figure says which model a number belongs to."""

from __future__ import annotations

from app.ui.card_figures import validation_figure
from models.classifier.bundle import DEFAULT_ROOT, ModelCard, read_card


def card(training: dict, evaluation: dict | None = None) -> ModelCard:
    return ModelCard(version="v", labels=[], embedder={}, classifier={}, training=training,
                     evaluation=evaluation or {})


def test_a_model_with_its_own_validation_shows_it_as_held_out_of_train() -> None:
    label, value, help_text = validation_figure(card({"val_accuracy": 0.8125, "best_epoch": 7, "n_val_tracks": 85}))
    assert (label, value) == ("Validation (in train)", "0.812")
    assert "85 tracks" in help_text and "artists repeat" in help_text, "why it reads above test"


def test_the_shipped_v1_card_labels_its_optimistic_validation_and_no_stale_default() -> None:
    v1 = read_card(DEFAULT_ROOT / "msd-musicnn-v1")
    assert validation_figure(v1)[0] == "Validation (in train)"
    assert "current default" not in v1.notes, "v1's notes must not name a past default as current"


def test_a_model_fitted_on_train_and_valid_shows_its_selection_model_named_as_such() -> None:
    label, value, help_text = validation_figure(card(
        {"val_accuracy": None, "data": "train.npz + valid.npz"},
        {"valid_selection": {"accuracy": 0.838, "n_tracks": 197, "evaluated_model": "m-select"}}))
    assert (label, value) == ("Valid (selection model)", "0.838")
    assert "m-select" in help_text and "197" in help_text and "train.npz + valid.npz" in help_text


def test_without_either_it_says_why_there_is_no_number() -> None:
    _, value, help_text = validation_figure(card({}))
    assert value == "–" and "without a held-out validation set" in help_text


def test_the_shipped_v5_card_shows_the_valid_score_that_chose_it() -> None:
    v5 = read_card(DEFAULT_ROOT / "msd-musicnn-v5")
    label, value, _ = validation_figure(v5)
    assert label.endswith("(selection model)") and value == f"{v5.evaluation['valid_selection']['accuracy']:.3f}"
