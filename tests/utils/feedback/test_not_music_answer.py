"""A correction may say "not music" (noise, speech, a tone): stored and shown as such, never trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.jobs.retrain import check_new_corrections
from models.classifier.bundle import read_card
from models.training.retrain import RetrainError
from tests.helpers.bundles import make_test_bundle
from tests.helpers.data import ROOT
from utils import settings
from utils.constants import NOT_MUSIC_LABEL
from utils.feedback import FeedbackError, FeedbackStore, validate_genres


def test_not_music_is_an_answer_on_its_own() -> None:
    assert validate_genres("not music") == validate_genres(["Not_Music"]) == (NOT_MUSIC_LABEL,)
    with pytest.raises(FeedbackError, match="either genres or 'not music'"):
        validate_genres(["jazz", "not music"])
    with pytest.raises(FeedbackError, match=r"\(or not_music\)"):
        validate_genres("noise")


def test_it_is_stored_listed_and_never_counts_as_new_for_a_retrain(tmp_path: Path) -> None:
    folder = make_test_bundle(tmp_path / "ckpt")
    embedder = read_card(folder).embedder["id"]
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    add = dict(model_id="m@1", model_version="v", embedder_id=embedder, probabilities=np.full(10, 0.1))
    noise = store.add(audio_sha256="a" * 64, file_name="hiss.wav", genres=["not music"], **add).correction
    assert noise.not_music and noise.label == "not music" and noise.row()["genres"] == NOT_MUSIC_LABEL
    assert [c.id for c in store.list(genre="not music")] == [noise.id]
    params = {"root": str(tmp_path / "ckpt")}
    with pytest.raises(RetrainError, match="No new corrections"):
        check_new_corrections(store, params)
    jazz = store.add(audio_sha256="b" * 64, file_name="song.wav", genres=["jazz"], **add).correction
    assert not jazz.not_music and jazz.label == "jazz"
    assert check_new_corrections(store, params) == 1, "only the genre correction is new"
    assert store.list(genre="jazz") == [jazz]


def test_the_page_stores_not_music_and_refuses_it_beside_genres(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamlit.testing.v1 import AppTest

    from models.novelty import fit_detector
    from models.trust import save_trust
    from tests.helpers.analyses import fake_analysis

    folder = make_test_bundle(tmp_path / "ckpt")
    url = f"sqlite:///{tmp_path / 'fb.sqlite3'}"
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path / "ckpt"))
    monkeypatch.setenv(settings.DB_URL_ENV, url)
    a = fake_analysis(seed=7, name="hiss.wav")
    a.model = {"id": "test@1", "version": "random-v1", "embedder": read_card(folder).embedder["id"]}
    means = np.random.default_rng(1).normal(0, 1, (40, 50))  # the taggram dim; this fake stores no embeddings
    save_trust(folder, fit_detector(means[:20], means[20:])[0], {"threshold": 0.5})
    at = AppTest.from_file(str(ROOT / "pages" / "feedback.py"), default_timeout=60)
    at.session_state["gl.tracks"] = {a.sha256: a}
    at.run()
    assert not at.exception, at.exception
    at.multiselect[0].set_value(["jazz"])
    at.checkbox[0].check()
    at.button[0].click()
    at.run()
    assert any("not both" in w.value for w in at.warning) and FeedbackStore(url).count() == 0
    at.multiselect[0].set_value([])
    at.button[0].click()
    at.run()
    assert not at.exception, at.exception
    assert any("Stored correction" in s.value for s in at.success), [e.value for e in at.error]
    (stored,) = FeedbackStore(url).list()
    assert stored.not_music and stored.file_name == "hiss.wav"
    summary = next(d.value for d in at.dataframe if "field" in d.value)
    assert "not music" in summary["value"].tolist()
    at.run()  # the admin (no token: the local user) sees whether the detector agrees
    assert any('answered "not music" for 1 audio' in c.value and "flags 0 of the 0" in c.value for c in at.caption), \
        [c.value for c in at.caption]


def test_the_admin_learns_how_many_answers_the_detector_agrees_with(tmp_path: Path) -> None:
    from app.jobs.trust import answers_flagged
    from models.novelty import fit_detector
    from utils.feedback import SliceEmbeddings

    dim, rng = 8, np.random.default_rng(0)
    detector, _ = fit_detector(rng.normal(0, 1, (40, dim)), rng.normal(0, 1, (40, dim)))
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")

    def answer(audio: str, centre: float, embedder: str = "e/1", genres=("not music",)) -> None:
        sha = audio * 64
        emb = SliceEmbeddings(sha, embedder, np.full((4, 3, dim), centre, np.float32), np.arange(4) * 5.0, 1.0, 3.0)
        store.add(audio_sha256=sha, file_name=f"{audio}.wav", model_id="m@1", model_version="v", embedder_id=embedder,
                  probabilities=np.full(10, 0.1), genres=list(genres), embeddings=emb)

    answer("a", 50.0)  # hiss: far from music, flagged
    answer("b", 0.0)  # "not music", but it sits among the training tracks: the detector misses it
    answer("c", 50.0, embedder="other/9")  # another model's embedder: counted, not measured
    answer("d", 50.0, genres=("jazz",))  # a genre correction is no answer at all
    assert answers_flagged(detector, store, "e/1") == (1, 2, 3)
