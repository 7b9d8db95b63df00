"""Metrics page: what the loaded model is, and how well it does on the held-out GTZAN test tracks.

Reads the bundle's card.json, metrics.json (written by `python -m app evaluate` / `train --test`)
and curves.json; nothing is computed here beyond filtering a table.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import streamlit as st

from app.ui import charts, robustness_view, state, trust_views, version_compare
from app.ui.card_figures import validation_figure
from app.ui.track_table import track_table
from models.classifier.bundle import CURVES_FILE, METRICS_FILE, CheckpointError, ModelCard, read_card, read_json
from utils.text import md_escape

log = logging.getLogger("genre_lens.metrics")
# Published frozen-embedding results on the same fault-filtered GTZAN split (test accuracy).
REFERENCES: list[tuple[str, float]] = [
    ("VGGish + SVM", 0.776), ("MusiCNN + SVM", 0.772), ("OpenL3 + SVM", 0.747), ("Best known", 0.821)]
HIDDEN_TRAINING_KEYS = {"val_tracks"}  # long lists that belong in the JSON, not on the page
ROW_SHARE = "Row %"  # the confusion matrix divided by row totals ("Row-normalised" was cut to "Row-normalis")


def pick_version() -> str | None:
    """Version whose metrics to show: the session's model choice, the same one the sidebar shows and
    sets (picking here picks for analysis too); None when there is no model."""
    return state.version_select("gl.metrics_version_pick",
                                help="The same choice as the sidebar's: the version picked here also analyses "
                                     "your uploads.")


def current_line(card: ModelCard) -> str:
    """Whether this version is the current default, read from CURRENT now (a card's notes may be older)."""
    current = state.current_model_version()
    if card.version == current:
        return f"{card.version} is the current default model."
    return f"{card.version} is not the current default; the current default is {current}."


def render_card(card: ModelCard) -> None:
    """The model card: what the model is, what it was trained on, when, with which settings."""
    training = {k: v for k, v in card.training.items() if k not in HIDDEN_TRAINING_KEYS}
    if isinstance(training.get("members"), list):
        training["members"] = [{k: v for k, v in m.items() if k not in HIDDEN_TRAINING_KEYS}
                               for m in training["members"] if isinstance(m, dict)]
    st.subheader(f"Model card · {card.version}", anchor=False)
    c1, c2, c3, c4 = st.columns([1, 1.4, 0.85, 1])  # the embedder's name ("musicnn-msd") needs the room
    c1.metric("Created", card.created[:10] if card.created else "?", help=card.created)
    c2.metric("Embedder", card.embedder.get("name", "?"), help=str(card.embedder.get("id", "")))
    members = card.classifier.get("members", 1)
    val_label, val_text, val_help = validation_figure(card)
    if members > 1:
        folds = training.get("config", {}).get("member_folds", "?")
        c3.metric("Ensemble", f"{members} models",
                  help=f"data: {training.get('data', '?')} ({training.get('n_train_tracks', '?')} tracks); each "
                       f"member trains on {folds}-1 of {folds} folds and validates on the remaining one")
        c4.metric("Out-of-fold validation accuracy", val_text,
                  help="every training track predicted by the members that held it out; each member keeps its "
                       "best epoch on its own fold (median kept epoch "
                       f"{training.get('best_epoch', '?')})")
    else:
        c3.metric("Training tracks", training.get("n_train_tracks", "?"),
                  help=f"data: {training.get('data', '?')}, validation tracks: {training.get('n_val_tracks', '?')}")
        c4.metric(val_label, val_text, help=val_help)
    st.markdown(f"**{md_escape(current_line(card))}**")
    if card.notes:
        st.caption(f"Notes written when {md_escape(card.version)} was built (the line above is what holds now): "
                   f"{md_escape(card.notes)}")
    with st.expander("Model card details: embedder, classifier and training hyper-parameters"):
        left, right = st.columns(2)
        left.markdown("**Embedder**")
        left.json(card.embedder, expanded=1)
        left.markdown("**Classifier**")
        left.json(card.classifier, expanded=1)
        right.markdown("**Training**")
        right.json(training, expanded=1)
        st.caption(f"Weights sha256 `{card.weights_sha256}`")


def render_headline(metrics: dict[str, Any]) -> None:
    """Accuracy, macro-F1, mAP, ECE against the baseline, and accuracy against published references."""
    base = metrics.get("baseline") or {}
    shown = (("accuracy", "Accuracy", "normal"), ("macro_f1", "Macro-F1", "normal"), ("mAP", "mAP", "normal"),
             ("ece", "ECE", "inverse"))
    for col, (key, name, better) in zip(st.columns(4), shown, strict=True):
        value = metrics.get(key)
        delta = value - base[key] if value is not None and base.get(key) is not None else None
        col.metric(name, f"{value:.3f}" if value is not None else "–", delta=f"{delta:+.3f} vs baseline"
                   if delta is not None else None, delta_color=better)
    st.caption(f"{metrics.get('n_tracks', '?')} test tracks of the fault-filtered GTZAN split. "
               f"Baseline: {base.get('name', 'none')}. Lower ECE is better calibrated.")
    entries = [("This model", float(metrics["accuracy"]), "ours")]
    if base.get("accuracy") is not None:
        entries.append(("Baseline", float(base["accuracy"]), "baseline"))  # its full name is in the caption
    entries += [(name, acc, "reference") for name, acc in REFERENCES]
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Accuracy against the baseline and published results**")
        st.plotly_chart(charts.accuracy_comparison(entries), key="accuracy-comparison")
        st.caption("Grey: published frozen-embedding results on the same fault-filtered split.")
    right.plotly_chart(charts.reliability_diagram(metrics.get("reliability", []), metrics.get("ece")),
                       key="reliability")


def render_confusion(metrics: dict[str, Any]) -> None:
    """Confusion matrix of the model or the baseline, as counts or row-normalised."""
    c1, c2 = st.columns(2)
    scale = c1.segmented_control("Scale", ["Counts", ROW_SHARE], default="Counts", key="cm-scale",
                                 help=f"{ROW_SHARE}: each true genre's row divided by its total, so the diagonal "
                                      "is that genre's recall.")
    base = metrics.get("baseline") or {}
    whose = "Model"
    if base.get("confusion_matrix"):
        whose = c2.segmented_control("Of", ["Model", "Baseline"], default="Model", key="cm-whose") or "Model"
    matrix = base["confusion_matrix"] if whose == "Baseline" else metrics["confusion_matrix"]
    st.plotly_chart(charts.confusion_matrix(matrix, metrics.get("labels") or list(metrics["per_genre"]),
                                            normalise=scale == ROW_SHARE), key="confusion")


def filter_tracks(table: pd.DataFrame, true: list[str], predicted: list[str], outcome: str) -> pd.DataFrame:
    """Rows matching the chosen true genres, predicted genres and outcome (empty choice = all)."""
    keep = pd.Series(True, index=table.index)
    if true:
        keep &= table["true"].isin(true)
    if predicted:
        keep &= table["predicted"].isin(predicted)
    if outcome in ("Correct", "Wrong"):
        keep &= table["correct"] == (outcome == "Correct")
    return table[keep]


def render_tracks(metrics: dict[str, Any], threshold: float) -> None:
    """Filterable table of the test tracks; `threshold` is the model's decision threshold."""
    table = track_table(metrics, threshold)
    labels = metrics.get("labels") or sorted(table["true"].unique())
    c1, c2, c3 = st.columns([2, 2, 1.3])
    true = c1.multiselect("True genre", labels, key="tracks-true")
    predicted = c2.multiselect("Predicted genre", labels, key="tracks-pred")
    outcome = c3.segmented_control("Outcome", ["All", "Correct", "Wrong"], default="All", key="tracks-outcome")
    shown = filter_tracks(table, true, predicted, outcome or "All")
    st.caption(f"{len(shown)} of {len(table)} tracks · predicted: the most likely genre · genres above threshold: "
               f"every genre at or above this model's decision threshold ({threshold:.0%}), none when none reaches it")
    st.dataframe(shown, hide_index=True, height=320, column_config={
        "confidence": st.column_config.ProgressColumn("confidence", format="percent", min_value=0, max_value=1),
        "correct": st.column_config.CheckboxColumn("correct")})


def render_versions() -> None:
    """Every evaluated version side by side (shown when there are at least two)."""
    root = state.checkpoint_root()
    metrics = version_compare.version_metrics(root)
    if len(metrics) < 2:
        return
    st.subheader("All versions side by side", anchor=False)
    st.dataframe(version_compare.headline_table(metrics, state.current_model_version()), hide_index=True)
    st.plotly_chart(version_compare.recall_figure(metrics), key="versions-recall")
    st.caption("Each version's own test report. Versions evaluated on different test tables (see 'test tracks') "
               "are not directly comparable.")


def page() -> None:
    """The whole page."""
    st.title("Metrics")
    version = pick_version()
    if version is None:
        st.info("No trained model is installed yet, so there are no metrics to show. Train one with "
                "`python -m app train --table <train.npz> --test <test.npz>`.", icon=":material/model_training:")
        return
    try:
        folder = state.bundle_dir(version)
        card = read_card(folder)
    except CheckpointError as exc:
        st.error(f"This model bundle cannot be read: {exc}")
        return
    render_card(card)
    metrics = read_json(folder, METRICS_FILE)
    if not metrics or "accuracy" not in metrics:
        st.info(f"Version {card.version} has not been evaluated yet (no {METRICS_FILE} in its bundle). Run "
                f"`python -m app evaluate <test.npz> --checkpoint {card.version} --train-table <train.npz> "
                f"--out <bundle>/{METRICS_FILE}` to add one.", icon=":material/info:")
    else:
        st.subheader("Test-set performance", anchor=False)
        render_headline(metrics)
        st.subheader("Where it goes wrong", anchor=False)
        left, right = st.columns(2, gap="large")
        with left:
            render_confusion(metrics)
        with right:
            st.plotly_chart(charts.per_genre_bars(metrics["per_genre"]), key="per-genre")
        st.subheader("Test tracks", anchor=False)
        render_tracks(metrics, state.default_threshold(card.version))
    trust_views.render_trust(folder, metrics)
    robustness_view.render_robustness(card)
    render_versions()
    curves = read_json(folder, CURVES_FILE)
    if curves and curves.get("history"):
        st.subheader("Training", anchor=False)
        members = curves.get("member_best_epochs")
        if members:
            st.caption(f"Means over the {len(members)} ensemble members; each stopped at the epoch its own "
                       "validation fold preferred (ticks along the bottom).")
        st.plotly_chart(charts.training_curves(curves["history"], curves.get("best_epoch"), members), key="curves")


try:
    page()
except Exception:  # the page boundary: a friendly sentence, the details in the server log
    log.exception("the Metrics page failed")
    st.error("Something went wrong while showing the metrics. The problem was logged; reload the page to try again.")
