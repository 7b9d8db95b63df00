"""Metrics page sections about trust: selective accuracy (accuracy against coverage as the decision
threshold moves, the default marked) and how often the not-music verdict fires, on what."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.ui import charts
from models.trust import load_trust
from models.verdict import selective_curve


def metrics_curve(metrics: dict[str, Any]) -> list[dict]:
    """Selective accuracy on the test tracks, from the per-track probabilities of metrics.json."""
    labels = metrics.get("labels") or []
    tracks = [t for t in metrics.get("tracks", []) if t.get("true") in labels and t.get("probabilities")]
    if not tracks:
        return []
    probs = np.array([[t["probabilities"][g] for g in labels] for t in tracks])
    return selective_curve(probs, np.array([labels.index(t["true"]) for t in tracks]))


def selective_figure(curves: dict[str, list[dict]], default: float) -> go.Figure:
    """Accuracy of the answered tracks against the share answered, one line per set; the default is a star."""
    fig = go.Figure()
    for (name, rows), colour in zip(curves.items(), (charts.ACCENT, "#5E8FD0"), strict=False):
        rows = [r for r in rows if r["accuracy"] is not None]
        fig.add_trace(go.Scatter(
            x=[r["coverage"] for r in rows], y=[r["accuracy"] for r in rows], mode="lines+markers", name=name,
            line={"color": colour}, customdata=[r["threshold"] for r in rows],
            hovertemplate="threshold %{customdata:.2f}: answers %{x:.0%}, right %{y:.1%}<extra></extra>"))
        at = [r for r in rows if abs(r["threshold"] - default) < 1e-9]
        if at:
            fig.add_trace(go.Scatter(x=[at[0]["coverage"]], y=[at[0]["accuracy"]], mode="markers",
                                     marker={"symbol": "star", "size": 16, "color": colour},
                                     name=f"{name} at {default:.2f}", hoverinfo="skip"))  # short: wrapped at 400 px
    fig.update_xaxes(title="coverage: tracks given a genre", tickformat=".0%", range=[0, 1.02])
    fig.update_yaxes(title="accuracy", tickformat=".0%")  # "accuracy of those" was cut at 400 px
    return charts._layout(fig, 360, title="Selective accuracy: accuracy vs coverage")


def flagged_table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per measured set: how many of its clips the verdict called not music."""
    rows = []
    for key, m in report.get("measured", {}).items():
        n = m.get("n", 0)
        flagged = m.get("flagged", m.get("not_music", 0))
        what = {"nonmusic": "non-music set (noise, tones, speech, room tone, clicks): goal >= 95 %",
                "valid_flagged": "GTZAN valid tracks (chose the threshold): goal <= 2 %",
                "test_flagged": "GTZAN test tracks (reported only): goal <= 2 %"}.get(key)
        if what is None:
            kind, _, folder = key.partition(":")
            what = f"{folder} ({'real music, goal: none' if kind == 'music' else 'GTZAN audio through the engine'})"
        rows.append({"set": what, "clips": n, "called not music": flagged, "share": flagged / n if n else 0.0})
    return pd.DataFrame(rows)


def render_trust(folder: Path, metrics: dict[str, Any] | None) -> None:
    """Selective accuracy and the not-music figures; says so when the bundle has no trust settings."""
    trust = load_trust(folder)
    st.subheader("When it answers, and when it says it is not sure", anchor=False)
    if trust.report is None:
        st.info("This version has no decision threshold or not-music detector of its own (no trust.json): it "
                f"uses the default threshold {trust.threshold:.2f} and never says 'not music'. "
                "`python -m app trust --checkpoint VERSION ...` adds them.", icon=":material/info:")
    if trust.report and trust.report.get("inherited_from"):
        st.caption(f"Inherited from {trust.report['inherited_from']} when this version was retrained: the "
                   "not-music detector reads the embedding, not the head, so it holds as it is; the threshold and "
                   "the figures below are the parent's. `python -m app trust` re-chooses both for this version.")
    curves = {"test": metrics_curve(metrics or {})}
    if trust.report and trust.report.get("valid_curve"):
        curves["valid (selection model)"] = trust.report["valid_curve"]
    curves = {k: v for k, v in curves.items() if v}
    if curves:
        st.plotly_chart(selective_figure(curves, trust.threshold), key="selective-accuracy")
        st.caption(f"Each point is one decision threshold (0.05 to 0.95): a track gets a genre when its top "
                   f"probability reaches it, else the verdict is 'Not sure'. The star is this model's default, "
                   f"{trust.threshold:.2f}, chosen on the validation tracks as the threshold with the most right "
                   "minus wrong answers (by a selection model that never trained on them); the test line only "
                   "reports.")
    if trust.report and trust.report.get("measured"):
        nov = trust.report.get("novelty", {})
        st.markdown("**Not music**")
        st.dataframe(flagged_table(trust.report), hide_index=True, column_config={
            "share": st.column_config.ProgressColumn("share", format="percent", min_value=0, max_value=1)})
        st.caption(f"Not music = the track's mean embedding lies farther from the GTZAN training tracks than "
                   f"{nov.get('percentile', 99):g} % of the validation tracks (standardised distance over "
                   f"{nov.get('live_columns', '?')} live columns, shrinkage {nov.get('shrinkage', '?')} chosen on "
                   f"valid; threshold {nov.get('threshold', float('nan')):.1f}). The non-music set is regenerated "
                   "by utils/nonmusic.py.")
