"""Explore: track vectors, PCA / t-SNE maps, placing uploads, nearest tracks, and the page itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.cli.common import command_line, remember_invocation
from app.explain import feature_name, reference_predictions, reference_table_path
from app.ui.explain_charts import PlacedTrack, embedding_map
from models.classifier.bundle import DEFAULT_ROOT, ModelCard, current_version, read_card
from tests.helpers.analyses import upload_from_table_track
from tests.helpers.data import ROOT, synthetic_table
from utils.embedding_map import build_map, slice_embeddings_mean, track_means
from utils.settings import REFERENCE_ENV
from utils.tables import PUBLISHED_MUSICNN_META, load_table

MAIN = str(ROOT / "app" / "main.py")


@pytest.fixture(scope="module")
def split():
    """A separable synthetic table: 6 reference tracks per genre, and one more per genre as 'uploads'."""
    table = synthetic_table(n_per_genre=7, dim=16, seed=3)
    tracks = table.tracks()
    reference = table.subset({t.track_id for t in tracks if not t.track_id.endswith("6")})
    uploads = [t for t in tracks if t.track_id.endswith("6")]
    return reference, uploads


def centroid_genre(emap, xy: np.ndarray) -> str:
    """Genre whose 2-D centroid is nearest to a point."""
    genres = sorted(set(emap.genres))
    centres = np.stack([emap.coords[emap.genres == g].mean(axis=0) for g in genres])
    return genres[int(np.argmin(np.linalg.norm(centres - xy, axis=1)))]


def test_track_means_are_frame_means(split) -> None:
    reference, _ = split
    tv = track_means(reference)
    assert tv.vectors.shape == (60, 16) and len(set(tv.track_ids)) == 60
    first = reference.tracks()[0]
    assert np.allclose(tv.vectors[0], first.vectors.mean(axis=0))
    assert np.allclose(slice_embeddings_mean(first.vectors[:27].reshape(3, 9, 16)), first.vectors[:27].mean(axis=0))


def test_pca_map_projects_its_own_tracks_exactly_and_uploads_onto_their_cluster(split) -> None:
    reference, uploads = split
    emap = build_map(track_means(reference), "PCA")
    assert emap.coords.shape == (60, 2) and emap.explained is not None
    assert np.allclose(emap.place(track_means(reference).vectors), emap.coords, atol=1e-9)
    placed = emap.place(np.stack([u.vectors.mean(axis=0) for u in uploads]))
    assert [centroid_genre(emap, xy) for xy in placed] == [u.genre for u in uploads]


def test_tsne_map_places_uploads_among_their_genre(split) -> None:
    reference, uploads = split
    emap = build_map(track_means(reference), "t-SNE")
    assert emap.coords.shape == (60, 2) and emap.components is None
    placed = emap.place(np.stack([u.vectors.mean(axis=0) for u in uploads]))
    hits = [centroid_genre(emap, xy) == u.genre for xy, u in zip(placed, uploads, strict=True)]
    assert np.mean(hits) >= 0.9


def test_nearest_matches_brute_force(split) -> None:
    reference, _ = split
    emap = build_map(track_means(reference), "PCA")
    queries = np.random.default_rng(0).normal(size=(4, 16))
    index, sims = emap.nearest(queries, k=7)
    ref = (track_means(reference).vectors - emap.mean) / emap.std
    for q, idx, sim in zip(queries, index, sims, strict=True):
        z = (q - emap.mean) / emap.std
        brute = [float(z @ r / (np.linalg.norm(z) * np.linalg.norm(r))) for r in ref]
        order = sorted(range(len(brute)), key=lambda i: -brute[i])[:7]
        assert list(idx) == order
        assert np.allclose(sim, [brute[i] for i in order])


def test_map_rejects_bad_input(split) -> None:
    reference, _ = split
    tv = track_means(reference)
    with pytest.raises(ValueError, match="unknown map method"):
        build_map(tv, "UMAP")
    with pytest.raises(ValueError, match="dimensions"):
        build_map(tv, "PCA").place(np.zeros((1, 3)))


def test_map_figure_has_genres_uploads_and_hover_data(split) -> None:
    reference, _ = split
    emap = build_map(track_means(reference), "PCA")
    preds = {tid: {"predicted": "rock"} for tid in emap.track_ids}
    up = PlacedTrack("abc", "my song.wav", "jazz", (0.0, 1.0))
    fig = embedding_map(emap, preds, [up], selected=str(emap.track_ids[0]))
    names = [t.name for t in fig.data]
    assert names[:10] == sorted(set(emap.genres), key=list(emap.genres).index) and "your tracks" in names
    blues = fig.data[0]
    assert list(blues.customdata[0]) == [emap.track_ids[0], "blues", "rock"]
    assert "diamond" in blues.marker.symbol  # blues predicted as rock: marked wrong
    assert fig.data[names.index("your tracks")].customdata[0][0] == "abc"
    # the legend: every genre a plain circle (the data traces stay out of it), one diamond for "wrong"
    legend = [t for t in fig.data if t.showlegend is not False]
    genre_entries = [t for t in legend if t.name in set(emap.genres)]
    assert len(genre_entries) == 10 and all(t.marker.symbol == "circle" for t in genre_entries)
    assert all(t.legendgroup == t.name for t in genre_entries)
    assert any(t.name == "predicted wrong" and t.marker.symbol == "diamond" for t in legend)
    uploads = fig.data[names.index("your tracks")]
    assert uploads.cliponaxis is False  # labels near the edge draw past it instead of being cut
    assert fig.layout.yaxis.range[1] > max(emap.coords[:, 1].max(), 1.0)  # room above the top point


def test_map_draws_hostile_upload_names_as_text(split) -> None:
    reference, _ = split
    emap = build_map(track_means(reference), "PCA")
    name = "x <b>bold</b> &amp;.wav"
    fig = embedding_map(emap, {}, [PlacedTrack("k", name, "jazz", (0.0, 0.0))])
    up = next(t for t in fig.data if t.name == "your tracks")
    assert list(up.text) == ["x &lt;b&gt;bold&lt;/b&gt; &amp;amp;.wav"]  # plotly decodes it back to the name
    assert up.customdata[0][1] == "x &lt;b&gt;bold&lt;/b&gt; &amp;amp;.wav"


def test_upload_names_never_cover_each_other(split) -> None:
    """Stars close together drew their names on top of each other (an unreadable blob on t-SNE)."""
    from app.ui.explain_charts import label_spots

    reference, _ = split
    emap = build_map(track_means(reference), "PCA")
    centre = emap.coords.mean(0)
    close = [PlacedTrack(f"k{i}", f"song number {i}.wav", "jazz", tuple(centre + 1e-3 * i)) for i in range(4)]
    far = PlacedTrack("far", "far away.wav", "rock", tuple(emap.coords.max(0)))
    fig = embedding_map(emap, {}, [*close, far])
    stars = next(t for t in fig.data if t.name == "your tracks")
    shown = [(t, pos) for t, pos in zip(stars.text, stars.textposition, strict=True) if t]
    assert len(shown) == 3 and "far away.wav" in stars.text  # one above and one below the cluster, and the far one
    assert {pos for t, pos in shown if t.startswith("song")} == {"top center", "bottom center"}
    assert len(stars.customdata) == 5  # every star keeps its name on hover
    assert label_spots(np.zeros((0, 2)), emap.coords) == []


def test_reference_table_comes_from_the_card_or_the_environment(tmp_path: Path, monkeypatch) -> None:
    card = ModelCard(version="v", labels=[], embedder={}, classifier={},
                     training={"command": "python -m app train --table a.npz --test data/t.npz --seed 0"})
    monkeypatch.delenv(REFERENCE_ENV, raising=False)
    assert reference_table_path(card) == ROOT / "data" / "t.npz"
    card.training["command"] = "python -m app train --test=/abs/t.npz"
    assert reference_table_path(card) == Path("/abs/t.npz")
    # cards before commands were shell-quoted: notes with an apostrophe must not break the page (v4's do)
    card.training["command"] = "python -m app train --test data/t.npz --notes v3's recipe scored 77.7 %"
    assert reference_table_path(card) == ROOT / "data" / "t.npz"
    # new cards record the command quoted, so a path with a space comes back whole
    remember_invocation(["train", "--notes", "v3's recipe", "--test", "my data/t 1.npz"])
    try:
        card.training["command"] = command_line()
    finally:
        remember_invocation(None)
    assert card.training["command"].startswith("python -m app train --notes ")
    assert reference_table_path(card) == ROOT / "my data" / "t 1.npz"
    monkeypatch.setenv(REFERENCE_ENV, str(tmp_path / "x.npz"))
    assert reference_table_path(card) == tmp_path / "x.npz"
    (tmp_path / "metrics.json").write_text(json.dumps({"tracks": [{"track_id": "a", "predicted": "pop"}],
                                                        "source": {"fingerprint": "f"}}))
    assert reference_predictions(tmp_path) == ({"a": {"track_id": "a", "predicted": "pop"}}, "f")
    assert reference_predictions(tmp_path / "none") == ({}, None)


def shipped_reference() -> tuple[Path, Path]:
    """The installed model bundle and its test table, or skip saying which one is missing."""
    version = current_version(DEFAULT_ROOT)
    if version is None:
        pytest.skip("no shipped model bundle under models/checkpoints")
    folder = DEFAULT_ROOT / version
    table = reference_table_path(read_card(folder))
    if not table.is_file():
        pytest.skip(f"the shipped model's test table {table} is absent")
    return folder, table


def test_explore_page_with_the_shipped_model(monkeypatch) -> None:
    _, table_path = shipped_reference()
    monkeypatch.delenv("GENRE_LENS_CHECKPOINTS", raising=False)
    monkeypatch.delenv(REFERENCE_ENV, raising=False)
    monkeypatch.setenv("GENRE_LENS_DEVICE", "cpu")
    table = load_table(table_path)
    track = table.tracks()[5]
    upload = upload_from_table_track(track, table.embedder_id)
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.session_state["gl.tracks"] = {upload.sha256: upload}
    at.switch_page("../pages/explore.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Explore" and not at.error, [e.value for e in at.error]
    assert any("test tracks coloured by their true genre" in c.value for c in at.caption)
    nearest = at.dataframe[0].value
    assert nearest.iloc[0]["track"] == track.track_id and nearest.iloc[0]["similarity"] == pytest.approx(1.0)
    at.session_state["explore.selected"] = track.track_id  # what a click on that point stores
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(track.track_id in m.value for m in at.markdown)
    assert track.track_id not in set(at.dataframe[0].value["track"])


def test_explore_page_explains_a_missing_table(tmp_path: Path, monkeypatch) -> None:
    from tests.helpers.bundles import make_test_bundle

    make_test_bundle(tmp_path / "ck")
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path / "ck"))
    monkeypatch.setenv(REFERENCE_ENV, str(tmp_path / "absent.npz"))
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    at.switch_page("../pages/explore.py").run()
    assert not at.exception and not at.error
    assert "absent.npz" in at.info[0].value


def test_explore_page_on_a_synthetic_reference(tmp_path: Path, monkeypatch) -> None:
    from tests.helpers.bundles import make_test_bundle

    metrics = make_test_bundle(tmp_path / "ck") / "metrics.json"
    metrics.write_text(json.dumps(json.loads(metrics.read_text()) | {"source": {"fingerprint": "another"}}))
    table = synthetic_table(n_per_genre=4, dim=50, seed=1)
    table.meta = dict(PUBLISHED_MUSICNN_META)
    table.save(tmp_path / "ref.npz")
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path / "ck"))
    monkeypatch.setenv(REFERENCE_ENV, str(tmp_path / "ref.npz"))
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    at.session_state["gl.tracks"] = {"f" * 64: upload_from_table_track(table.tracks()[0], table.embedder_id)}
    at.switch_page("../pages/explore.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("another table" in c.value for c in at.caption)  # synthetic metrics: predictions hidden
    at.segmented_control(key="explore-method").set_value("t-SNE").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.dataframe[0].value.iloc[0]["track"] == table.tracks()[0].track_id


def test_the_page_names_the_features_its_points_are_made_of() -> None:
    assert feature_name("musicnn-msd/pool/v1").startswith("pooled MusiCNN features")
    assert feature_name("musicnn-msd/taggram/v1+int8-abc") == "MusiCNN taggrams (50 tag activations)"
    assert feature_name("openl3-mel256-music-512-kapre-hop0.1-wabc") == "OpenL3 embeddings"
    assert feature_name("other/x") == "other/x embeddings"
