"""Every page follows the model versions on disk: a promotion shows on the next rerun, the Metrics
page's version picker is the sidebar's, and a card's old notes never contradict CURRENT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.jobs.retrain import RUNNERS
from app.jobs.worker import Worker
from models.classifier.bundle import set_current, update_card
from tests.helpers.apptest import MAIN, TIMEOUT, no_exceptions
from tests.helpers.bundles import make_test_bundle
from tests.helpers.data import synthetic_table
from utils import settings
from utils.feedback import FeedbackStore
from utils.jobs import JobQueue
from utils.settings import ADMIN_TOKEN_ENV


def sidebar_versions(at: AppTest) -> list[str]:
    """The labels the sidebar's version picker offers (empty when there is one version only)."""
    boxes = [s for s in at.sidebar.selectbox if s.label == "Model version"]
    return list(boxes[0].options) if boxes else []


def test_a_promotion_shows_on_every_page_at_the_next_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import models.training.retrain as retrain_module
    from models.training.retrain import RetrainResult

    root = tmp_path / "ckpt"
    make_test_bundle(root, version="base", metrics=False)
    set_current("base", root)
    url = f"sqlite:///{tmp_path / 'fb.sqlite3'}"
    store = FeedbackStore(url)
    store.add(audio_sha256="a" * 64, file_name="x.wav", model_id="base@1", model_version="base",
              embedder_id="musicnn-msd/taggram/v1", probabilities=np.full(10, 0.1), genres=["jazz"])
    for name in ("train.npz", "test.npz"):  # real (tiny) tables: the page reads them before retraining
        synthetic_table(n_per_genre=1, dim=4).save(tmp_path / name)

    def fake_retrain(store_, table, valid, *, root, **kwargs) -> RetrainResult:  # what a promoting retrain leaves
        folder = make_test_bundle(root, version="base-r1", metrics=False)
        ids = [c.id for c in store_.list()]
        store_.mark_used("base-r1", ids)
        set_current("base-r1", root)
        return RetrainResult("base-r1", "base", folder, True, "base-r1 is now current: test.", 0.8, 0.7, 0.8, 0.7,
                             1.0, ids, ids, 1.0)

    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(root))
    monkeypatch.setenv("GENRE_LENS_DEVICE", "cpu")
    monkeypatch.setenv(settings.DB_URL_ENV, url)
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    monkeypatch.setattr(retrain_module, "default_tables", lambda card: ([tmp_path / "train.npz"], None))
    monkeypatch.setattr(retrain_module, "test_table_of", lambda card: tmp_path / "test.npz")
    monkeypatch.setattr(retrain_module, "retrain", fake_retrain)

    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    at.switch_page("../pages/feedback.py").run()
    no_exceptions(at)
    assert any("Current model: base." in t.value for t in at.text) and sidebar_versions(at) == []
    button = next(b for b in at.button if b.label == "Retrain now")
    assert not button.disabled
    button.click().run()  # queues the job; the suite's servers run no worker thread, so this test is the worker
    no_exceptions(at)
    finished = Worker(JobQueue(store), RUNNERS).run_one()
    assert finished is not None and finished.state == "done", finished
    at.run()  # the page's next poll
    no_exceptions(at)
    # the next rerun knows: the text, the sidebar, the button
    assert any("Current model: base-r1." in t.value for t in at.text)
    assert sidebar_versions(at) == ["base-r1 (current)", "base"]
    assert at.sidebar.selectbox[0].value == "base-r1", "a session that followed the current model moves on"
    assert next(b for b in at.button if b.label == "Retrain now").disabled, "no new corrections are left"
    assert any("Promoted" in s.value for s in at.success)
    at.switch_page("../pages/metrics.py").run()
    no_exceptions(at)
    assert any("base-r1 is the current default model." in m.value.replace("\\", "") for m in at.markdown)


@pytest.fixture
def two_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_test_bundle(tmp_path, version="older")
    make_test_bundle(tmp_path, version="newer")
    for version in ("older", "newer"):
        update_card(tmp_path / version, lambda card: setattr(card, "notes", "The current default is newer."))
    set_current("newer", tmp_path)
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("GENRE_LENS_DEVICE", "cpu")
    return tmp_path


def test_the_metrics_picker_and_the_sidebar_are_one_choice(two_versions: Path) -> None:
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    at.switch_page("../pages/metrics.py").run()
    metrics_pick = at.selectbox(key="gl.metrics_version_pick")
    assert metrics_pick.value == "newer" == at.sidebar.selectbox[0].value
    metrics_pick.set_value("older").run()
    no_exceptions(at)
    assert at.sidebar.selectbox[0].value == "older" and at.selectbox(key="gl.metrics_version_pick").value == "older"
    assert any("Model card · older" in s.value for s in at.subheader)
    at.sidebar.selectbox[0].set_value("newer").run()
    assert at.selectbox(key="gl.metrics_version_pick").value == "newer"
    assert at.session_state["gl.version"] is None, "picking the current version follows it, not pins it"
    for _ in range(2):  # consecutive picks all land (an index-driven selectbox dropped every second one)
        for version in ("older", "newer"):
            at.selectbox(key="gl.metrics_version_pick").set_value(version).run()
            assert at.sidebar.selectbox[0].value == version


def test_a_pinned_old_version_stays_and_its_card_does_not_claim_to_be_current(two_versions: Path) -> None:
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    at.sidebar.selectbox[0].set_value("older").run()
    at.switch_page("../pages/metrics.py").run()
    lines = [m.value.replace("\\", "") for m in at.markdown]
    assert any("older is not the current default; the current default is newer." in v for v in lines)
    set_current("older", two_versions)  # promoted elsewhere (CLI): the page reads CURRENT again
    at.run()
    lines = [m.value.replace("\\", "") for m in at.markdown]
    assert any("older is the current default model." in v for v in lines)
    assert "older (current)" in at.sidebar.selectbox[0].options and "newer" in at.sidebar.selectbox[0].options
    notes = [c.value for c in at.caption if "current default is newer" in c.value.replace("\\", "")]
    assert notes and all("Notes written when" in c for c in notes), "old notes are labelled as old"
