"""Which correction a feedback id names, and which database a command opens.

Ids are never handed out twice (SQLite AUTOINCREMENT from schema v5, PostgreSQL's sequences always), so
a retrain that marks "its" corrections used cannot mark a newcomer; old SQLite databases are rebuilt
keeping their rows, ids and usage. A read-only command never creates a database from a mistyped path,
and a database this process may not write still lists, while a write says it is read-only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from tests.helpers.data import ROOT
from tests.helpers.feedback import EMBEDDER, sha, submit
from utils.constants import GENRES
from utils.feedback import FeedbackError, FeedbackStore
from utils.feedback import db as feedback_db
from utils.feedback.db import MIGRATIONS, SCHEMA_VERSION, make_engine, metadata, schema_version, write_transaction


# ------------------------------------------------------------------------------------ ids
def test_a_session_deletes_only_its_own_unused_corrections(db_url: str) -> None:
    store = FeedbackStore(db_url)
    add = dict(model_id="m@1", model_version="base", embedder_id=EMBEDDER, probabilities=[0.1] * len(GENRES),
               genres=["jazz"])
    mine = store.add(audio_sha256=sha("mine"), file_name="mine.wav", session_id="sess-a", **add).correction
    used = store.add(audio_sha256=sha("used"), file_name="used.wav", session_id="sess-a", **add).correction
    theirs = store.add(audio_sha256=sha("theirs"), file_name="theirs.wav", session_id="sess-b", **add).correction
    cli = store.add(audio_sha256=sha("cli"), file_name="cli.wav", **add).correction
    store.mark_used("v2", [used])
    for victim in (theirs, cli):  # another session's row, or a session-less (CLI) one, is "not there"
        with pytest.raises(FeedbackError, match="among this session's"):
            store.delete(victim.id, session_id="sess-a")
    with pytest.raises(FeedbackError, match="trained a model"):
        store.delete(used.id, session_id="sess-a")
    with pytest.raises(FeedbackError, match="session id is needed"):
        store.delete(mine.id, session_id="")
    from utils.jobs import JobQueue

    job = JobQueue(store).enqueue("retrain", {})  # a retrain may be reading it right now
    with pytest.raises(FeedbackError, match="retrain is queued or running"):
        store.delete(mine.id, session_id="sess-a")
    JobQueue(store).cancel(job.id)
    assert store.delete(mine.id, session_id="sess-a").id == mine.id
    assert {c.file_name for c in store.list()} == {"used.wav", "theirs.wav", "cli.wav"}
    assert store.delete(used.id).id == used.id, "the admin (no session) still may"
    store.close()


def test_a_deleted_id_is_never_handed_out_again(db_url: str) -> None:
    store = FeedbackStore(db_url)
    ids = [submit(store, audio=a).correction.id for a in ("a", "b", "c")]
    store.delete(ids[-1])  # the highest id: SQLite without AUTOINCREMENT gave it to the next row

    assert submit(store, audio="d").correction.id == ids[-1] + 1
    for c in store.list():
        store.delete(c.id)
    assert submit(store, audio="e").correction.id == ids[-1] + 2  # an emptied table keeps counting too
    store.close()
    reopened = FeedbackStore(db_url)
    assert submit(reopened, audio="f").correction.id == ids[-1] + 3
    reopened.close()


def test_mark_used_with_the_trained_corrections_skips_a_newcomer_under_an_old_id(db_url: str) -> None:
    """A retrain's snapshot names corrections by id and key: a row that took a deleted one's id (as databases
    before v5 allowed) is not the one trained on, so it stays new for the next retrain."""
    store = FeedbackStore(db_url)
    kept, gone = submit(store, audio="a").correction, submit(store, audio="b").correction
    snapshot = store.list()  # what the trainer read
    store.delete(gone.id)
    newcomer = submit(store, audio="c").correction
    with store.engine.begin() as conn:  # what an old database did: the newcomer got the deleted id
        conn.execute(text("UPDATE corrections SET id = :old WHERE id = :new"), {"old": gone.id, "new": newcomer.id})

    store.mark_used("base-r1", snapshot)
    store.mark_used("base-r2", [])  # nothing to record

    assert store.usage() == {kept.id: ["base-r1"]}
    store.mark_used("base-r3", [gone.id])  # plain ids still mark whatever row has the id now
    assert store.usage() == {kept.id: ["base-r1"], gone.id: ["base-r3"]}
    store.close()


def make_v4_database(url: str) -> None:
    """What Genre Lens with schema v4 left behind: ids 1, 2 and 5 (3, 4 and 7 deleted), 1 and 5 used, and a
    retrain job whose result names 7, which was deleted afterwards; 6 was deleted without a trace."""
    engine = make_engine(url)

    def build(conn) -> None:
        for version in range(1, 5):
            description, step = MIGRATIONS[version]
            step(conn)
            conn.execute(schema_version.insert().values(version=version, applied_at=datetime.now(UTC),
                                                        description=description))
        for i in (1, 2, 5):
            conn.execute(text(
                "INSERT INTO corrections (id, idempotency_key, audio_sha256, file_name, model_id, model_version, "
                "embedder_id, probabilities, genres, created_at, note, session_id) VALUES (:id, :key, :sha, "
                "'old.wav', 'base@x', 'base', :emb, :probs, 'disco', '2026-01-02 03:04:05.000000', :note, NULL)"),
                {"id": i, "key": f"k{i}", "sha": sha(f"old{i}"), "emb": EMBEDDER, "note": f"row {i}",
                 "probs": json.dumps(dict.fromkeys(GENRES, 0.1))})
        for i in (1, 5):
            conn.execute(text("INSERT INTO correction_usage VALUES ('base-r1', :id, '2026-01-03 00:00:00.000000')"),
                         {"id": i})
        result = {"correction_ids": [1, 5], "new_correction_ids": [5, 7], "held_out_ids": [7],
                  "skipped": ["correction #6: no stored embeddings"]}
        conn.execute(text(
            "INSERT INTO jobs (kind, state, progress, message, params, result, created_at) VALUES "
            "('retrain', 'done', 1.0, 'done', '{}', :result, '2026-01-03 00:00:00.000000')"),
            {"result": json.dumps(result)})

    write_transaction(engine, build)
    engine.dispose()


def test_a_v4_sqlite_database_is_rebuilt_keeping_rows_ids_and_usage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v4.sqlite3'}"
    make_v4_database(url)

    store = FeedbackStore(url)

    with store.engine.connect() as conn:
        assert feedback_db.current_schema_version(conn) == SCHEMA_VERSION == 5
        ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'corrections'").scalar()
        assert "AUTOINCREMENT" in ddl
        insp = inspect(conn)
        columns = {c["name"] for c in insp.get_columns("corrections")}
        assert columns == set(metadata.tables["corrections"].columns.keys())
        assert {i["name"] for i in insp.get_indexes("corrections")} >= {
            "ix_corrections_audio_sha256", "ix_corrections_created_at", "ix_corrections_session_id"}
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_temp_master").scalar() == 0
    assert [(c.id, c.note) for c in store.list()] == [(1, "row 1"), (2, "row 2"), (5, "row 5")]
    assert store.get(5).created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert store.usage() == {1: ["base-r1"], 5: ["base-r1"]}
    assert submit(store, audio="new").correction.id == 8  # above 7, which a finished job's result still names
    store.delete(1)  # usage still cascades with its correction
    assert store.usage() == {5: ["base-r1"]}
    store.close()
    again = FeedbackStore(url)  # reopening migrates nothing twice
    with again.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM schema_version").scalar() == SCHEMA_VERSION
    assert submit(again, audio="newer").correction.id == 9
    again.close()


# ------------------------------------------------------------------------------------ which database
def test_a_read_only_open_refuses_a_missing_sqlite_file_and_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "typo" / "feedbak.sqlite3"

    with pytest.raises(FeedbackError, match=r"There is no feedback database at .*typo/feedbak\.sqlite3; check"):
        FeedbackStore(f"sqlite:///{typo}", create=False)

    assert not typo.parent.exists()
    writer = FeedbackStore(f"sqlite:///{typo}")  # commands that store something still create it
    assert writer.count() == 0 and typo.is_file()
    writer.close()
    assert FeedbackStore(f"sqlite:///{typo}", create=False).count() == 0  # and then it opens


def test_a_folder_given_as_the_database_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(FeedbackError, match=r"is a folder, not a database file\.$"):
        FeedbackStore(f"sqlite:///{tmp_path}", create=False)


def test_a_store_opened_read_only_lists_and_refuses_writes_in_one_sentence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process, as any user: the file looks unwritable, so it is opened with mode=ro (root included)."""
    url = f"sqlite:///{tmp_path / 'fb.sqlite3'}"
    seed = FeedbackStore(url)
    first = submit(seed, audio="a", note="kept").correction
    seed.close()
    monkeypatch.setattr("utils.feedback.engine._writable", lambda path: False)

    store = FeedbackStore(url, create=False)

    assert store.read_only and [c.note for c in store.list()] == ["kept"]
    with pytest.raises(FeedbackError, match=r"^The feedback database .*fb\.sqlite3 is read-only, so nothing was "
                                            r"changed\.$"):
        submit(store, audio="b")
    with pytest.raises(FeedbackError, match="is read-only"):
        store.delete(first.id)
    store.close()


@pytest.mark.postgres
def test_a_read_only_postgresql_database_lists_and_refuses_writes_in_one_sentence(postgres_url: str) -> None:
    seed = FeedbackStore(postgres_url)
    submit(seed, audio="a", note="kept")
    with seed.engine.connect() as conn:
        name = conn.exec_driver_sql("SELECT current_database()").scalar()
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        conn.commit()
    seed.close()

    store = FeedbackStore(postgres_url, create=False)  # the schema is current: opening writes nothing

    assert [c.note for c in store.list()] == ["kept"]
    with pytest.raises(FeedbackError, match=r"^The feedback database postgresql\+psycopg://.* is read-only, so "
                                            r"nothing was changed\.$"):
        submit(store, audio="b")
    store.close()


READ_ONLY_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from utils.feedback import FeedbackError, FeedbackStore
from tests.helpers.feedback import submit

out = {{}}
for name, url in json.loads(sys.argv[1]).items():
    try:
        store = FeedbackStore(url, create=False)
        out[name] = {{"read_only": store.read_only, "notes": [c.note for c in store.list()]}}
        try:
            submit(store, audio="b")
            out[name]["write"] = "stored"
        except FeedbackError as exc:
            out[name]["write"] = str(exc)
    except FeedbackError as exc:
        out[name] = {{"open": str(exc)}}
print(json.dumps(out))
"""


def test_a_database_in_an_unwritable_folder_lists_and_says_it_is_read_only(tmp_path: Path) -> None:
    """For real: file and folder without write permission, in a process that cannot override them (as root
    the test drops every capability with setpriv). Also a v4 database (readable unchanged) and a v3 one."""
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("runs as root and needs setpriv to drop the capability to override file permissions")
    folder = tmp_path / "ro"
    folder.mkdir()
    urls = {name: f"sqlite:///{folder / name}.sqlite3" for name in ("current", "v4", "v3")}
    seed = FeedbackStore(urls["current"])
    submit(seed, audio="a", note="kept")
    seed.close()
    make_v4_database(urls["v4"])
    engine = make_engine(urls["v3"])
    write_transaction(engine, lambda conn: [MIGRATIONS[v][1](conn) or conn.execute(schema_version.insert().values(
        version=v, applied_at=datetime.now(UTC), description="old")) for v in (1, 2, 3)])
    engine.dispose()
    for path in folder.iterdir():
        path.chmod(0o444)
    folder.chmod(0o555)
    script = tmp_path / "read_only.py"
    script.write_text(READ_ONLY_SCRIPT.format(root=str(ROOT)))
    prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"] if os.geteuid() == 0 else []
    try:
        done = subprocess.run([*prefix, sys.executable, str(script), json.dumps(urls)], capture_output=True,
                              text=True, timeout=120, check=False)
    finally:
        folder.chmod(0o755)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)

    assert out["current"]["read_only"] and out["current"]["notes"] == ["kept"]
    assert out["current"]["write"] == f"The feedback database {folder / 'current.sqlite3'} is read-only, so nothing " \
                                      "was changed."
    assert out["v4"]["notes"] == ["row 1", "row 2", "row 5"] and "is read-only" in out["v4"]["write"]
    assert out["v3"]["open"] == (f"The feedback database {folder / 'v3.sqlite3'} is read-only and has schema v3, "
                                 "which needs an upgrade to v5: open it once with write access.")
    assert sorted(p.name for p in folder.iterdir()) == ["current.sqlite3", "v3.sqlite3", "v4.sqlite3"]
