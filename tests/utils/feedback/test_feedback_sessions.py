"""Each correction records its session (schema v3): migration, idempotency per session, filtering.

Kept apart from tests/utils/feedback/test_feedback.py (which is being parametrised over PostgreSQL); these tests
use SQLite files only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import inspect, text

from utils.constants import GENRES
from utils.feedback import FeedbackError, FeedbackStore, idempotency_key
from utils.feedback import db as feedback_db
from utils.feedback.db import MIGRATIONS, SCHEMA_VERSION, make_engine, metadata, schema_version, write_transaction

EMBEDDER = "musicnn-msd/taggram/v1"


def sha(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


def add(store: FeedbackStore, session: str | None, audio: str = "a", name: str = "song.wav", note: str | None = None):
    return store.add(audio_sha256=sha(audio), file_name=name, model_id="base@0123456789ab", model_version="base",
                     embedder_id=EMBEDDER, probabilities=np.linspace(0.01, 0.9, 10), genres=["jazz"], note=note,
                     session_id=session)


@pytest.fixture
def store(tmp_path: Path):
    s = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    yield s
    s.close()


def test_a_correction_records_its_session_and_lists_filter_by_it(store: FeedbackStore) -> None:
    mine = add(store, "session-a", audio="x", name="mine.wav").correction
    theirs = add(store, "session-b", audio="y", name="theirs.wav").correction
    cli = add(store, None, audio="z", name="cli.wav").correction
    assert (mine.session_id, theirs.session_id, cli.session_id) == ("session-a", "session-b", None)
    assert store.get(mine.id).session_id == "session-a"
    assert [c.file_name for c in store.list(session_id="session-a")] == ["mine.wav"]
    assert [c.file_name for c in store.list()] == ["mine.wav", "theirs.wav", "cli.wav"]
    assert store.list(session_id="") == [], "an empty id matches nothing, not the session-less rows"
    with pytest.raises(FeedbackError, match="session id"):
        add(store, "no spaces allowed")
    rows = list(csv.DictReader(io.StringIO(store.to_csv())))
    assert [r["session_id"] for r in rows] == ["session-a", "session-b", ""]


def test_the_same_correction_from_two_sessions_is_two_rows_and_never_answers_with_the_other(
    store: FeedbackStore,
) -> None:
    a1 = add(store, "session-a", name="alice.wav", note="same words")
    b1 = add(store, "session-b", name="bob.wav", note="same words")
    assert a1.created and b1.created and a1.correction.id != b1.correction.id
    assert b1.correction.file_name == "bob.wav", "B is never shown A's row (or A's file name)"
    a2 = add(store, "session-a", name="alice.wav", note="same words")  # A's double click
    assert not a2.created and a2.correction.id == a1.correction.id
    assert store.count() == 2
    # keys without a session are those of v2, so rows stored before the upgrade still deduplicate
    assert idempotency_key(sha("a"), ["jazz"], "n", None) != idempotency_key(sha("a"), ["jazz"], "n", None, "s")
    assert add(store, None, note="same words").correction.idempotency_key == idempotency_key(
        sha("a"), ["jazz"], "same words", None)


def test_a_key_reused_by_another_session_is_refused(store: FeedbackStore) -> None:
    store.add(audio_sha256=sha("a"), file_name="a.wav", model_id="m@1", model_version="m", embedder_id=EMBEDDER,
              probabilities=np.full(10, 0.1), genres=["rock"], key="k-1", session_id="session-a")
    with pytest.raises(FeedbackError, match="already used for a different correction"):
        store.add(audio_sha256=sha("a"), file_name="b.wav", model_id="m@1", model_version="m", embedder_id=EMBEDDER,
                  probabilities=np.full(10, 0.1), genres=["rock"], key="k-1", session_id="session-b")


def test_a_v2_database_migrates_to_v3_and_keeps_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v2.sqlite3'}"
    engine = make_engine(url)

    def build_v2(conn) -> None:  # what Genre Lens with schema v2 left behind
        for version in (1, 2):
            description, step = MIGRATIONS[version]
            step(conn)
            conn.execute(schema_version.insert().values(version=version, applied_at=datetime.now(UTC),
                                                        description=description))
        conn.execute(text(
            "INSERT INTO corrections (id, idempotency_key, audio_sha256, file_name, model_id, model_version, "
            "embedder_id, probabilities, genres, created_at, note) VALUES (1, 'k', :sha, 'old.wav', 'base@x', "
            "'base', :emb, :probs, 'disco', '2026-01-02 03:04:05.000000', 'before v3')"),
            {"sha": sha("old"), "emb": EMBEDDER, "probs": json.dumps(dict.fromkeys(GENRES, 0.1))})

    write_transaction(engine, build_v2)
    engine.dispose()
    store = FeedbackStore(url)
    with store.engine.connect() as conn:
        assert feedback_db.current_schema_version(conn) == SCHEMA_VERSION == 5
        insp = inspect(conn)
        columns = {c["name"] for c in insp.get_columns("corrections")}
        assert columns == set(metadata.tables["corrections"].columns.keys()) and "session_id" in columns
        assert "ix_corrections_session_id" in {i["name"] for i in insp.get_indexes("corrections")}
    old = store.get(1)
    assert old.session_id is None and old.note == "before v3" and old.file_name == "old.wav"
    new = add(store, "session-a", audio="new").correction
    assert store.list(session_id="session-a") == [store.get(new.id)]
    assert FeedbackStore(url).count() == 2  # reopening migrates nothing twice
