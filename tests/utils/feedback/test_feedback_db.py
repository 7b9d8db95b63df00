"""The feedback database under pressure, on SQLite and PostgreSQL: concurrent writers, deletes racing adds,
migrations from schema v1, and a database from the future. `pytest -k postgres` runs the PostgreSQL half.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect, text

from tests.helpers.data import ROOT
from tests.helpers.feedback import EMBEDDER, sha, submit
from utils.constants import GENRES
from utils.feedback import FeedbackError, FeedbackStore
from utils.feedback import db as feedback_db
from utils.feedback.db import SCHEMA_VERSION, metadata

# ------------------------------------------------------------------------------------ concurrency
WORKER = """
import hashlib, json, os, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from utils.feedback import db as feedback_db
from utils.feedback import FeedbackStore, SliceEmbeddings

url, go, who, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
while not os.path.exists(go):
    time.sleep(0.002)
store = FeedbackStore(url)  # a fresh database: the schema migration races too
created = {{"own": 0, "shared": 0}}
for i in range(n):
    h = hashlib.sha256(f"shared-{{i % 5}}".encode()).hexdigest()
    emb = SliceEmbeddings(h, {embedder!r}, np.zeros((6, 3, 50), np.float32), np.arange(6) * 5.0, 0.976, 2.992)
    args = dict(audio_sha256=h, file_name="song.wav", model_id="base@0123456789ab", model_version="base",
                embedder_id={embedder!r}, probabilities=np.full(10, 0.1), genres=["jazz"], embeddings=emb)
    for _ in range(2):  # a double click: stored once
        created["own"] += store.add(note=f"{{who}} #{{i}}", **args).created
    created["shared"] += store.add(note=f"everyone #{{i}}", **args).created  # every process, the same key
print(json.dumps({{**feedback_db.stats, **created}}))
"""


def test_eight_processes_and_threads_adding_at_once_lose_and_double_nothing(db_url: str, tmp_path: Path) -> None:
    """8 processes x 25 corrections (each double-clicked, plus one submission all of them send with the same
    key) and 2 threads sharing one store, as Streamlit sessions do: every row once, embeddings once per audio."""
    go, n, n_procs, n_threads = tmp_path / "go", 25, 8, 2
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT), embedder=EMBEDDER))
    procs = [subprocess.Popen([sys.executable, str(script), db_url, str(go), f"proc{p}", str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in range(n_procs)]
    errors: list[BaseException] = []
    ready = threading.Barrier(n_threads + 1)
    shared_store: list[FeedbackStore] = []

    def thread_worker(who: str) -> None:
        try:
            ready.wait()
            for i in range(n):
                submit(shared_store[0], audio=f"shared-{i % 5}", note=f"{who} #{i}")
                submit(shared_store[0], audio=f"shared-{i % 5}", note=f"{who} #{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread_worker, args=(f"thread{t}",)) for t in range(n_threads)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # let the processes import and wait on the start file
    go.touch()
    time.sleep(0.2)  # the processes create the schema; the threads open the store while they do
    shared_store.append(FeedbackStore(db_url))
    ready.wait()
    for t in threads:
        t.join(120)
    outputs = [p.communicate(timeout=120) for p in procs]
    assert not errors, errors
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err.lower()
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert [r["own"] for r in reports] == [n] * n_procs  # each double click stored once, none lost
    assert sum(r["shared"] for r in reports) == n  # one process stored each shared submission, the others found it
    store = FeedbackStore(db_url)
    total = (n_procs + n_threads) * n + n
    assert store.count() == total
    notes = [c.note for c in store.list()]
    assert len(set(notes)) == len(notes) == total
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM slice_embeddings").scalar() == 5
        assert conn.exec_driver_sql("SELECT count(*) FROM schema_version").scalar() == SCHEMA_VERSION
        assert conn.exec_driver_sql("SELECT count(*) FROM corrections WHERE embedding_id IS NULL").scalar() == 0
    print(f"rows {total}, lock retries {[r['retries'] for r in reports]}, "
          f"key conflicts {[r['conflicts'] for r in reports]}")
    store.close()
    shared_store[0].close()


def test_duplicate_mark_used_calls_at_once_store_each_pair_once(db_url: str) -> None:
    """A retrain's usage record sent twice at once (a duplicate submission), while a correction is deleted:
    no error, every surviving pair once (a read-then-insert raced into a primary-key violation on PostgreSQL)."""
    base = FeedbackStore(db_url)
    ids = [submit(base, audio=f"a{i}").correction.id for i in range(20)]
    n = 6
    go = threading.Barrier(n + 1)
    errors: list[BaseException] = []

    def mark() -> None:
        store = FeedbackStore(db_url)  # its own pool, as another process would have
        try:
            go.wait()
            store.mark_used("base-r1", ids)
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=mark) for _ in range(n)]
    for t in threads:
        t.start()
    go.wait()
    base.delete(ids[-1])
    for t in threads:
        t.join(60)
    assert not errors, errors
    usage = base.usage()
    assert sorted(usage) == ids[:-1] and all(v == ["base-r1"] for v in usage.values())
    with base.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM correction_usage").scalar() == len(ids) - 1
    base.mark_used("base-r1", [*ids, 99999])  # again, and an unknown id: nothing changes
    assert base.usage() == usage
    base.close()


def test_deletes_racing_adds_keep_embeddings_exactly_while_used(db_url: str) -> None:
    """Deleting the last correction of an audio while another session adds one for it: no error for either,
    and the shared embeddings exist exactly when a correction still points at them."""
    store = FeedbackStore(db_url)
    submit(store, audio="seed", note="keeps the schema busy")
    errors: list[BaseException] = []
    rounds = 40

    def adder() -> None:
        try:
            for i in range(rounds):
                submit(store, audio="contested", note=f"add #{i}")
        except BaseException as exc:
            errors.append(exc)

    def deleter() -> None:
        try:
            deadline = time.monotonic() + 60
            gone = 0
            while gone < rounds and time.monotonic() < deadline:
                for c in store.list():
                    if c.audio_sha256 == sha("contested"):
                        store.delete(c.id)
                        gone += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=adder), threading.Thread(target=deleter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    left = [c for c in store.list() if c.audio_sha256 == sha("contested")]
    assert (store.embeddings(sha("contested"), EMBEDDER) is not None) == bool(left)
    with store.engine.connect() as conn:
        orphans = conn.exec_driver_sql(
            "SELECT count(*) FROM slice_embeddings e WHERE NOT EXISTS "
            "(SELECT 1 FROM corrections c WHERE c.embedding_id = e.id)").scalar()
        dangling = conn.exec_driver_sql(
            "SELECT count(*) FROM corrections c WHERE c.embedding_id IS NULL OR NOT EXISTS "
            "(SELECT 1 FROM slice_embeddings e WHERE e.id = c.embedding_id)").scalar()
    assert (orphans, dangling) == (0, 0)
    store.close()


# ------------------------------------------------------------------------------------ migrations
# What Genre Lens with schema v1 left behind, verbatim, per backend (SQLAlchemy's DDL of the v1 tables).
V1_SCHEMA = {
    "sqlite": """
CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at DATETIME NOT NULL,
    description VARCHAR(200) NOT NULL, PRIMARY KEY (version));
CREATE TABLE slice_embeddings (id INTEGER NOT NULL, audio_sha256 VARCHAR(64) NOT NULL,
    embedder_id VARCHAR(200) NOT NULL, data BLOB NOT NULL, shape VARCHAR(100) NOT NULL, dtype VARCHAR(20) NOT NULL,
    slice_starts TEXT NOT NULL, hop_seconds FLOAT NOT NULL, frame_seconds FLOAT NOT NULL,
    created_at DATETIME NOT NULL, PRIMARY KEY (id),
    CONSTRAINT uq_slice_embeddings_audio_embedder UNIQUE (audio_sha256, embedder_id));
CREATE TABLE corrections (id INTEGER NOT NULL, idempotency_key VARCHAR(200) NOT NULL,
    audio_sha256 VARCHAR(64) NOT NULL, file_name VARCHAR(200) NOT NULL, model_id VARCHAR(200) NOT NULL,
    model_version VARCHAR(200) NOT NULL, embedder_id VARCHAR(200) NOT NULL, embedding_id INTEGER,
    probabilities TEXT NOT NULL, genres VARCHAR(200) NOT NULL, created_at DATETIME NOT NULL, PRIMARY KEY (id),
    UNIQUE (idempotency_key), FOREIGN KEY(embedding_id) REFERENCES slice_embeddings (id));
CREATE INDEX ix_corrections_audio_sha256 ON corrections (audio_sha256);
CREATE INDEX ix_corrections_created_at ON corrections (created_at)
""",
    "postgresql": """
CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP WITH TIME ZONE NOT NULL,
    description VARCHAR(200) NOT NULL, PRIMARY KEY (version));
CREATE TABLE slice_embeddings (id SERIAL NOT NULL, audio_sha256 VARCHAR(64) NOT NULL,
    embedder_id VARCHAR(200) NOT NULL, data BYTEA NOT NULL, shape VARCHAR(100) NOT NULL, dtype VARCHAR(20) NOT NULL,
    slice_starts TEXT NOT NULL, hop_seconds FLOAT NOT NULL, frame_seconds FLOAT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL, PRIMARY KEY (id),
    CONSTRAINT uq_slice_embeddings_audio_embedder UNIQUE (audio_sha256, embedder_id));
CREATE TABLE corrections (id SERIAL NOT NULL, idempotency_key VARCHAR(200) NOT NULL,
    audio_sha256 VARCHAR(64) NOT NULL, file_name VARCHAR(200) NOT NULL, model_id VARCHAR(200) NOT NULL,
    model_version VARCHAR(200) NOT NULL, embedder_id VARCHAR(200) NOT NULL, embedding_id INTEGER,
    probabilities TEXT NOT NULL, genres VARCHAR(200) NOT NULL, created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id), UNIQUE (idempotency_key), FOREIGN KEY(embedding_id) REFERENCES slice_embeddings (id));
CREATE INDEX ix_corrections_created_at ON corrections (created_at);
CREATE INDEX ix_corrections_audio_sha256 ON corrections (audio_sha256)
""",
}
V1_TIME = {"sqlite": "2026-01-02 03:04:05.000000", "postgresql": "2026-01-02 03:04:05+00"}


def make_v1_database(url: str) -> None:
    """A v1 database holding one correction with its embeddings, written without the current code."""
    engine = create_engine(url)
    blob = io.BytesIO()
    np.save(blob, np.ones((3, 3, 50), np.float32))
    with engine.begin() as conn:
        backend = conn.dialect.name
        for statement in V1_SCHEMA[backend].split(";"):
            conn.exec_driver_sql(statement)
        params = {"sha": sha("old"), "emb": EMBEDDER, "blob": blob.getvalue(), "at": V1_TIME[backend],
                  "probs": json.dumps(dict.fromkeys(GENRES, 0.1))}
        conn.execute(text("INSERT INTO schema_version VALUES (1, :at, 'v1')"), params)
        conn.execute(text(
            "INSERT INTO slice_embeddings (audio_sha256, embedder_id, data, shape, dtype, slice_starts, hop_seconds,"
            " frame_seconds, created_at) VALUES (:sha, :emb, :blob, '[3, 3, 50]', 'float32', '[0.0, 5.0, 10.0]',"
            " 0.976, 2.992, :at)"), params)
        conn.execute(text(
            "INSERT INTO corrections (idempotency_key, audio_sha256, file_name, model_id, model_version, embedder_id,"
            " embedding_id, probabilities, genres, created_at) VALUES ('k1', :sha, 'old.wav', 'base@x', 'base', :emb,"
            " 1, :probs, 'disco', :at)"), params)
    engine.dispose()


def test_a_v1_database_opens_and_migrates(db_url: str) -> None:
    make_v1_database(db_url)

    store = FeedbackStore(db_url)

    with store.engine.connect() as conn:
        assert feedback_db.current_schema_version(conn) == SCHEMA_VERSION == 5
        insp = inspect(conn)
        for table in metadata.sorted_tables:  # the migrated schema is exactly the one the code queries
            assert {c["name"] for c in insp.get_columns(table.name)} == set(table.columns.keys()), table.name
    old = store.get(1)
    assert old.genres == ("disco",) and old.note is None and old.window_start_s is None
    assert old.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    np.testing.assert_array_equal(store.embeddings(sha("old"), EMBEDDER).embeddings, np.ones((3, 3, 50), np.float32))
    new = submit(store, audio="new", note="after the upgrade", window=5.0).correction
    assert new.id == 2 and store.get(new.id).note == "after the upgrade" and store.count() == 2
    assert submit(store, audio="old", note="same audio as v1").correction.id == 3  # reuses the v1 embeddings
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM slice_embeddings").scalar() == 2
    store.mark_used("base-r1", [1, new.id])
    assert store.usage() == {1: ["base-r1"], 2: ["base-r1"]}
    store.delete(1)  # the v1 correction goes; its audio's embeddings stay for correction 3
    assert store.embeddings(sha("old"), EMBEDDER) is not None and store.usage() == {2: ["base-r1"]}
    store.close()
    again = FeedbackStore(db_url)  # reopening migrates nothing twice
    with again.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM schema_version").scalar() == SCHEMA_VERSION
    assert again.count() == 2
    again.close()


def test_a_database_from_a_newer_version_is_refused(db_url: str) -> None:
    store = FeedbackStore(db_url)
    with store.engine.begin() as conn:
        conn.execute(feedback_db.schema_version.insert().values(
            version=99, applied_at=datetime(2030, 1, 1, tzinfo=UTC), description="future"))
    store.close()
    with pytest.raises(FeedbackError, match="schema v99, newer"):
        FeedbackStore(db_url)
