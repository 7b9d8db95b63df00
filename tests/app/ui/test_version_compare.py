"""Versions side by side on the Metrics page: numbers straight from each bundle's metrics.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from app.ui import version_compare
from models.classifier.bundle import DEFAULT_ROOT, list_versions
from utils.constants import GENRES


def test_every_evaluated_bundled_version_is_compared_with_its_own_numbers(tmp_path: Path) -> None:
    root = tmp_path / "ckpt"
    shutil.copytree(DEFAULT_ROOT, root)
    (root / "unevaluated").mkdir()
    shutil.copy(root / "msd-musicnn-v1" / "card.json", root / "unevaluated" / "card.json")
    shutil.copy(root / "msd-musicnn-v1" / "model.pt", root / "unevaluated" / "model.pt")
    shipped = [v for v in list_versions(DEFAULT_ROOT) if (DEFAULT_ROOT / v / "metrics.json").is_file()]
    metrics = version_compare.version_metrics(root)
    assert list(metrics) == shipped and "unevaluated" not in metrics and len(shipped) >= 2

    table = version_compare.headline_table(metrics, current=shipped[-1])
    assert table["version"].tolist() == [*shipped[:-1], f"{shipped[-1]} (current)"]
    for (_, row), version in zip(table.iterrows(), shipped, strict=True):
        stored = json.loads((DEFAULT_ROOT / version / "metrics.json").read_text())
        assert row["accuracy"] == round(stored["accuracy"], 3) and row["ECE"] == round(stored["ece"], 3)
        assert row["baseline accuracy"] == round(stored["baseline"]["accuracy"], 3)

    recall = version_compare.recall_table(metrics)
    assert list(recall.index) == list(GENRES) and list(recall.columns) == shipped
    v1 = json.loads((DEFAULT_ROOT / shipped[0] / "metrics.json").read_text())
    assert recall.loc["disco", shipped[0]] == round(v1["per_genre"]["disco"]["recall"], 3)

    fig = version_compare.recall_figure(metrics)
    assert [fig.layout.legend.title.text + t.name for t in fig.data] == shipped  # "msd-musicnn-" once, then v1..
    assert all(list(t.x) == list(GENRES) for t in fig.data) and all(len(t.name) <= 4 for t in fig.data)
    assert version_compare.shared_prefix(["base", "base-r1"]) == "" and version_compare.shared_prefix(["a-x"]) == ""
    assert version_compare.shared_prefix(["msd-musicnn-v1", "msd-musicnn-v2", "msd-musicnn-v2-r1"]) == "msd-musicnn-"
    assert tuple(fig.layout.yaxis.range) == (0, 1)
    assert fig.layout.legend.y >= 1.0  # above the bars, clear of a phone's slanted genre names
    # a retrain's sixth version wraps the legend on a phone: the top margin grows by a row instead of the
    # legend covering the title
    assert version_compare.legend_rows("msd-musicnn-", ["v1", "v2", "v3", "v4", "v5"]) == 1
    assert version_compare.legend_rows("msd-musicnn-", ["v1", "v2", "v3", "v4", "v5", "v5-r1"]) == 2
    more = version_compare.recall_figure(metrics | {"msd-musicnn-v5-r1": metrics[shipped[-1]]})
    assert more.layout.margin.t == fig.layout.margin.t + 24 and more.layout.height == fig.layout.height + 24
