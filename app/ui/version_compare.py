"""Every model version side by side: headline test metrics and per-genre recall, from their bundles.

Streamlit-free: the Metrics page renders what this returns. Numbers come from each bundle's own
metrics.json (written by `train --test` or `evaluate`), never recomputed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from models.classifier.bundle import METRICS_FILE, CheckpointError, list_versions, read_card, read_json
from utils.constants import GENRES

HEADLINE = (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("mAP", "mAP"), ("ece", "ECE"))


def version_metrics(root: Path) -> dict[str, dict[str, Any]]:
    """{version: metrics.json} of every evaluated version under `root`, oldest first."""
    out = {}
    for version in list_versions(root):
        try:
            read_card(root / version)
        except CheckpointError:
            continue
        metrics = read_json(root / version, METRICS_FILE)
        if metrics and "accuracy" in metrics:
            out[version] = metrics
    return out


def headline_table(metrics: dict[str, dict[str, Any]], current: str | None) -> pd.DataFrame:
    """One row per version: test tracks, accuracy, macro-F1, mAP, ECE, and the same-run baseline's accuracy."""
    rows = []
    for version, m in metrics.items():
        row: dict[str, Any] = {"version": version + (" (current)" if version == current else ""),
                               "test tracks": m.get("n_tracks")}
        row |= {name: _round(m.get(key)) for key, name in HEADLINE}
        row["baseline accuracy"] = _round((m.get("baseline") or {}).get("accuracy"))
        rows.append(row)
    return pd.DataFrame(rows, columns=["version", "test tracks", *(n for _, n in HEADLINE), "baseline accuracy"])


def recall_table(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Per-genre test recall, genres as rows and versions as columns."""
    data = {v: [_round((m.get("per_genre") or {}).get(g, {}).get("recall")) for g in GENRES]
            for v, m in metrics.items()}
    return pd.DataFrame(data, index=list(GENRES))


def recall_figure(metrics: dict[str, dict[str, Any]]) -> go.Figure:
    """Grouped bars: each genre's test recall for every version."""
    table = recall_table(metrics)
    versions = list(table.columns)
    prefix = shared_prefix(versions)
    fig = go.Figure([go.Bar(name=v[len(prefix):], x=list(table.index), y=table[v],
                            hovertemplate=f"{v}<br>%{{x}}: %{{y:.0%}}<extra></extra>") for v in versions])
    # short names ("v1"..) above the bars: below them, a phone's slanted genre names ran into the legend.
    # The top margin makes room for as many legend rows as a 400 px phone needs, else a sixth version
    # (a retrain's "v5-r1") wrapped the legend onto the title
    rows = legend_rows(prefix, [v[len(prefix):] for v in versions])
    fig.update_layout(barmode="group", height=350 + 24 * (rows - 1),
                      margin={"l": 10, "r": 10, "t": 60 + 24 * rows, "b": 10},
                      title="Recall per genre on the test split", yaxis={"range": [0, 1], "tickformat": ".0%"},
                      xaxis={"automargin": True},
                      legend={"orientation": "h", "y": 1.04, "yanchor": "bottom", "x": 0,
                              "title": {"text": prefix, "side": "left"}})
    return fig


def legend_rows(title: str, names: list[str], width_px: float = 370.0) -> int:
    """How many rows a horizontal legend takes on a 400 px phone (about 6 px a character, 40 px of swatch and gap)."""
    rows, used = 1, 6.0 * len(title) + 10
    for name in names:
        entry = 6.0 * len(name) + 40
        if used + entry > width_px and used > 0:
            rows, used = rows + 1, 0.0
        used += entry
    return rows


def shared_prefix(names: list[str]) -> str:
    """The part every name shares, up to its last "-" ("msd-musicnn-" of v1..v5), so a legend can say it once."""
    if len(names) < 2:
        return ""
    common = names[0]
    for name in names[1:]:
        while not name.startswith(common):
            common = common[:-1]
    return common[: common.rfind("-") + 1]


def _round(value: Any) -> float | None:
    """Three decimals, or None when the bundle lacks the number."""
    return round(float(value), 3) if isinstance(value, int | float) else None
