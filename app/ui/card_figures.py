"""The model card's headline figures on the Metrics page, read from the card alone (no Streamlit)."""

from __future__ import annotations

from models.classifier.bundle import ModelCard


def validation_figure(card: ModelCard) -> tuple[str, str, str]:
    """(label, value, help) of the card's validation accuracy.

    A model fitted on train + valid (v3-v5) has no held-out set of its own; its recipe was judged by a
    selection model trained on train alone, which the card records as `evaluation.valid_selection`.
    Showing that, named as such, beats a bare dash.
    """
    training = card.training
    val = training.get("val_accuracy")
    if isinstance(val, int | float):  # v1, v2: blocks of consecutive ids held out of the training table
        return ("Validation (in train)", f"{val:.3f}",
                f"{training.get('n_val_tracks', '?')} tracks held out of the training table in blocks of consecutive "
                f"ids; best epoch {training.get('best_epoch', '?')}. GTZAN artists repeat across those blocks, so "
                "this reads higher than the test split: compare models on the test figures beside it.")
    selection = card.evaluation.get("valid_selection")
    if isinstance(selection, dict) and isinstance(selection.get("accuracy"), int | float):
        return ("Valid (selection model)", f"{selection['accuracy']:.3f}",
                f"This model trained on {training.get('data', 'train + valid')}, so it has no validation set of "
                f"its own. The same recipe trained on train alone ({selection.get('evaluated_model', '?')}) scored "
                f"this on the {selection.get('n_tracks', '?')} artist-disjoint valid tracks, which chose it.")
    return ("Validation accuracy", "–", "This model was trained without a held-out validation set, and its card "
                                        "records no selection model.")
