"""Database plumbing of the feedback store: schema, migrations and safe write transactions.

SQLite (the default; utils/feedback/engine.py opens it) runs in WAL mode with a busy timeout and
foreign keys on, and every write runs in `BEGIN IMMEDIATE`, so concurrent writers queue for the lock instead of failing
half-way; transient "database is locked" errors are retried with backoff. PostgreSQL (tested against a
real server) runs the same code at READ COMMITTED, where writers do interleave: first inserts of shared
rows use ON CONFLICT DO NOTHING (`insert_if_absent`), row locks keep a delete from removing embeddings a
concurrent add is about to use, and deadlocks/serialisation failures are retried like SQLite's locks.
The schema is versioned (`schema_version`): a fresh database runs every migration from v1, an older
one runs the missing ones, always inside one locked transaction so two processes never migrate at once.
A database already at the current version is only read, so a read-only one (utils/feedback/engine.py
opens those) still lists; a write to it fails with one sentence saying it is read-only.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from utils import settings
from utils.feedback.engine import display_url as display_url  # re-exported: callers import it from here
from utils.feedback.engine import is_read_only, location
from utils.feedback.engine import make_engine as make_engine
from utils.feedback.records import FeedbackError

T = TypeVar("T")

SCHEMA_VERSION = 5
READABLE_FROM = 4  # the oldest schema this code reads unchanged: a read-only database at it still lists
# transient lock errors retried, and adds rerun after a concurrent writer stored the same key, in this process
stats = {"retries": 0, "conflicts": 0}


def data_dir() -> Path:
    """Where local data lives: $GENRE_LENS_DATA, else the project's gitignored data/ folder."""
    return settings.load().data_dir


def default_url() -> str:
    """The database to use: $GENRE_LENS_DB_URL, else a SQLite file in the data folder."""
    return settings.load().db_url


# ------------------------------------------------------------------------------------ schema (latest)
metadata = MetaData()

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
    Column("description", String(200), nullable=False),
)

slice_embeddings = Table(
    "slice_embeddings", metadata,
    Column("id", Integer, primary_key=True),
    Column("audio_sha256", String(64), nullable=False),
    Column("embedder_id", String(200), nullable=False),
    Column("data", LargeBinary, nullable=False),  # .npy bytes of (S, F, D)
    Column("shape", String(100), nullable=False),  # JSON list, checked against the .npy header
    Column("dtype", String(20), nullable=False),
    Column("slice_starts", Text, nullable=False),  # JSON list of S start times (s)
    Column("hop_seconds", Float, nullable=False),
    Column("frame_seconds", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("audio_sha256", "embedder_id", name="uq_slice_embeddings_audio_embedder"),
)



def _corrections_table(meta: MetaData) -> Table:
    """v5 corrections. `sqlite_autoincrement`: SQLite never hands out an id twice, even the highest one after it
    was deleted (a retrain marking corrections used by id would otherwise mark a newcomer under an old id)."""
    return Table(
        "corrections", meta,
        Column("id", Integer, primary_key=True),
        Column("idempotency_key", String(200), nullable=False, unique=True),
        Column("audio_sha256", String(64), nullable=False, index=True),
        Column("file_name", String(200), nullable=False),
        Column("model_id", String(200), nullable=False),
        Column("model_version", String(200), nullable=False),
        Column("embedder_id", String(200), nullable=False),
        Column("embedding_id", Integer, ForeignKey("slice_embeddings.id"), nullable=True),
        Column("probabilities", Text, nullable=False),  # JSON {genre: probability}
        Column("genres", String(200), nullable=False),  # "|"-joined, in label order
        Column("created_at", DateTime(timezone=True), nullable=False, index=True),
        Column("window_start_s", Float, nullable=True),  # v2
        Column("window_end_s", Float, nullable=True),  # v2
        Column("note", Text, nullable=True),  # v2
        Column("session_id", String(64), nullable=True, index=True),  # v3: opaque id of the submitting session
        sqlite_autoincrement=True,  # v5
    )


corrections = _corrections_table(metadata)

correction_usage = Table(  # v2: which model versions were trained with which corrections
    "correction_usage", metadata,
    Column("model_version", String(200), primary_key=True),
    Column("correction_id", Integer, ForeignKey("corrections.id", ondelete="CASCADE"), primary_key=True),
    Column("used_at", DateTime(timezone=True), nullable=False),
    Index("ix_correction_usage_correction_id", "correction_id"),
)


def _jobs_table(meta: MetaData) -> Table:
    """v4: background jobs (retraining). `active_slot` is the job's kind while it is queued or running and
    NULL afterwards; its UNIQUE constraint (NULLs never collide, in SQLite and PostgreSQL alike) is the
    database lock that admits at most one active job of a kind, whichever process asks."""
    return Table(
        "jobs", meta,
        Column("id", Integer, primary_key=True),
        Column("kind", String(40), nullable=False),
        Column("state", String(16), nullable=False, index=True),  # queued, running, done, failed
        Column("active_slot", String(40), nullable=True, unique=True),
        Column("progress", Float, nullable=False),  # 0-1
        Column("message", Text, nullable=False),
        Column("params", Text, nullable=False),  # JSON
        Column("parent_version", String(200), nullable=True),
        Column("result_version", String(200), nullable=True),
        Column("result", Text, nullable=True),  # JSON, once done
        Column("requested_by", String(64), nullable=True),  # opaque session id; NULL: the command line
        Column("worker", String(200), nullable=True),  # host:pid:thread of the worker that claimed it
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("started_at", DateTime(timezone=True), nullable=True),
        Column("heartbeat_at", DateTime(timezone=True), nullable=True),
        Column("finished_at", DateTime(timezone=True), nullable=True),
    )


jobs = _jobs_table(metadata)


# ------------------------------------------------------------------------------------ migrations
def _migrate_to_v1(conn: Connection) -> None:
    """v1: corrections without window or note, slice embeddings, the version table (frozen DDL)."""
    v1 = MetaData()
    Table("schema_version", v1,
          Column("version", Integer, primary_key=True, autoincrement=False),
          Column("applied_at", DateTime(timezone=True), nullable=False),
          Column("description", String(200), nullable=False))
    Table("slice_embeddings", v1,
          Column("id", Integer, primary_key=True),
          Column("audio_sha256", String(64), nullable=False),
          Column("embedder_id", String(200), nullable=False),
          Column("data", LargeBinary, nullable=False),
          Column("shape", String(100), nullable=False),
          Column("dtype", String(20), nullable=False),
          Column("slice_starts", Text, nullable=False),
          Column("hop_seconds", Float, nullable=False),
          Column("frame_seconds", Float, nullable=False),
          Column("created_at", DateTime(timezone=True), nullable=False),
          UniqueConstraint("audio_sha256", "embedder_id", name="uq_slice_embeddings_audio_embedder"))
    Table("corrections", v1,
          Column("id", Integer, primary_key=True),
          Column("idempotency_key", String(200), nullable=False, unique=True),
          Column("audio_sha256", String(64), nullable=False, index=True),
          Column("file_name", String(200), nullable=False),
          Column("model_id", String(200), nullable=False),
          Column("model_version", String(200), nullable=False),
          Column("embedder_id", String(200), nullable=False),
          Column("embedding_id", Integer, ForeignKey("slice_embeddings.id"), nullable=True),
          Column("probabilities", Text, nullable=False),
          Column("genres", String(200), nullable=False),
          Column("created_at", DateTime(timezone=True), nullable=False, index=True))
    v1.create_all(conn)


def _migrate_to_v2(conn: Connection) -> None:
    """v2: the window a correction is about, a free-text note, and the correction-usage table."""
    for name, type_ in (("window_start_s", Float()), ("window_end_s", Float()), ("note", Text())):
        conn.execute(text(f"ALTER TABLE corrections ADD COLUMN {name} {type_.compile(dialect=conn.dialect)}"))
    correction_usage.create(conn)


def _migrate_to_v3(conn: Connection) -> None:
    """v3: the opaque id of the browser session that submitted a correction (NULL: CLI or older rows)."""
    conn.execute(text("ALTER TABLE corrections ADD COLUMN session_id VARCHAR(64)"))
    conn.execute(text("CREATE INDEX ix_corrections_session_id ON corrections (session_id)"))


def _migrate_to_v4(conn: Connection) -> None:
    """v4: the jobs table of background retraining (its own MetaData: later versions change it by migrations)."""
    _jobs_table(MetaData()).create(conn)


def _highest_correction_id(conn: Connection) -> int:
    """The highest correction id this database still mentions: stored corrections, usage records, and the ids
    in retrain jobs' results (corrections trained on, new, held out, or skipped, deleted since or not)."""
    found = [conn.execute(select(func.max(corrections.c.id))).scalar() or 0,
             conn.execute(select(func.max(correction_usage.c.correction_id))).scalar() or 0]
    for (result,) in conn.execute(select(jobs.c.result).where(jobs.c.result.is_not(None))):
        try:
            doc = json.loads(result)
        except ValueError:
            continue
        for key in ("correction_ids", "new_correction_ids", "held_out_ids"):
            found += [int(i) for i in doc.get(key) or () if isinstance(i, int)]
        found += [int(m) for line in doc.get("skipped") or () for m in re.findall(r"correction #(\d+)", str(line))]
    return max(found)


def _migrate_to_v5(conn: Connection) -> None:
    """v5: correction ids are never handed out twice. PostgreSQL's SERIAL sequence already never reuses one.

    SQLite needs AUTOINCREMENT, which no ALTER TABLE adds, so the table is rebuilt in this transaction: its
    rows go to a temporary copy (ids kept), the old table is dropped (its usage records cascade with it and
    are copied back), and the id counter (sqlite_sequence) starts above the highest id the database still
    mentions (`_highest_correction_id`). What it cannot know: an id that was handed out, deleted, and is
    mentioned nowhere in this database (only, say, in a model card on disk or an exported CSV) may be given
    once more after this migration; from v5 on, no id ever is.
    """
    if conn.dialect.name != "sqlite":
        return
    floor = _highest_correction_id(conn)
    conn.exec_driver_sql("CREATE TEMP TABLE v5_corrections AS SELECT * FROM corrections")
    conn.exec_driver_sql("CREATE TEMP TABLE v5_usage AS SELECT * FROM correction_usage")
    conn.exec_driver_sql("DROP TABLE corrections")  # its indexes go too; the rebuilt table makes them again
    v5 = MetaData()
    Table("slice_embeddings", v5, Column("id", Integer, primary_key=True))  # what its foreign key refers to
    _corrections_table(v5).create(conn)
    names = ", ".join(corrections.columns.keys())
    conn.exec_driver_sql(f"INSERT INTO corrections ({names}) SELECT {names} FROM temp.v5_corrections ORDER BY id")
    conn.exec_driver_sql("INSERT INTO correction_usage (model_version, correction_id, used_at) "
                         "SELECT model_version, correction_id, used_at FROM temp.v5_usage")
    conn.exec_driver_sql("DROP TABLE temp.v5_corrections")
    conn.exec_driver_sql("DROP TABLE temp.v5_usage")
    if conn.exec_driver_sql("SELECT 1 FROM sqlite_sequence WHERE name = 'corrections'").first() is None:
        conn.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES ('corrections', 0)")
    conn.exec_driver_sql("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'corrections'", (floor,))
    if conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
        raise FeedbackError("Upgrading the feedback database to v5 found broken references; nothing was changed.")


MIGRATIONS: dict[int, tuple[str, Callable[[Connection], None]]] = {
    1: ("corrections, slice embeddings", _migrate_to_v1),
    2: ("correction window and note; correction usage", _migrate_to_v2),
    3: ("the submitting session of each correction", _migrate_to_v3),
    4: ("background jobs (retraining)", _migrate_to_v4),
    5: ("correction ids are never reused (SQLite AUTOINCREMENT)", _migrate_to_v5),
}


def current_schema_version(conn: Connection) -> int:
    """The schema version of a database (0 when it has no tables yet)."""
    if not inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(select(func.max(schema_version.c.version))).scalar() or 0)


def _check_not_newer(found: int) -> None:
    """A database from a newer Genre Lens is never touched."""
    if found > SCHEMA_VERSION:
        raise FeedbackError(
            f"The feedback database has schema v{found}, newer than this Genre Lens (v{SCHEMA_VERSION}); "
            "update Genre Lens to use it."
        )


def migrate(engine: Engine) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version found before migrating.

    Looks first in a read transaction: a current database (the usual case) takes no write lock, and a
    read-only one is used as it is when its schema is one this code reads (READABLE_FROM on).
    """
    found = read(engine, current_schema_version)
    _check_not_newer(found)
    if found == SCHEMA_VERSION or (is_read_only(engine) and found >= READABLE_FROM):
        return found
    if is_read_only(engine):
        raise FeedbackError(f"The feedback database {location(engine)} is read-only and has schema v{found}, "
                            f"which needs an upgrade to v{SCHEMA_VERSION}: open it once with write access.")

    def run(conn: Connection) -> int:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7154300611)"))  # one migrator at a time
        found = current_schema_version(conn)  # again, under the lock: another process may have migrated
        _check_not_newer(found)
        for version in range(found + 1, SCHEMA_VERSION + 1):
            description, step = MIGRATIONS[version]
            step(conn)
            conn.execute(schema_version.insert().values(
                version=version, applied_at=datetime.now(UTC), description=description))
        return found

    return write_transaction(engine, run)


# ------------------------------------------------------------------------------------ transactions
def is_transient(exc: DBAPIError) -> bool:
    """Errors that go away when the transaction is simply run again (lock contention, deadlock)."""
    message = str(getattr(exc, "orig", exc)).lower()
    if "database is locked" in message or "database table is locked" in message or "busy" in message:
        return True
    code = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(getattr(exc, "orig", None), "pgcode", None)
    return code in ("40001", "40P01")  # serialization failure, deadlock detected


def is_read_only_error(exc: DBAPIError) -> bool:
    """A write refused because the database (SQLite file, PostgreSQL transaction or server) is read-only."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return "readonly database" in str(orig or exc).lower() or code == "25006"


def write_transaction(engine: Engine, work: Callable[[Connection], T], attempts: int = 8) -> T:
    """Run `work` in one write transaction (BEGIN IMMEDIATE on SQLite), retrying lock errors with backoff."""
    delay = 0.05
    for attempt in range(attempts):
        try:
            with engine.connect() as conn:
                if conn.dialect.name == "sqlite":
                    conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    return work(conn)
        except DBAPIError as exc:  # PostgreSQL reports a read-only transaction as an InternalError
            if is_read_only_error(exc):
                raise FeedbackError(f"The feedback database {location(engine)} is read-only, so nothing was "
                                    "changed.") from exc
            if not isinstance(exc, OperationalError) or not is_transient(exc):
                raise
            if attempt == attempts - 1:
                raise FeedbackError("The feedback database stayed busy for too long; please try again.") from exc
            stats["retries"] += 1
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def insert_if_absent(conn: Connection, table: Table, values: Mapping, unique: Sequence[str]) -> bool:
    """Insert a row unless one with the same `unique` columns exists, without an error when a concurrent writer
    stored it first (ON CONFLICT DO NOTHING; PostgreSQL waits for that writer). Other databases: a plain insert.
    Returns whether this call inserted the row."""
    dialect = {"postgresql": postgresql, "sqlite": sqlite}.get(conn.dialect.name)
    if dialect is None:
        return conn.execute(table.insert().values(**values)).rowcount == 1
    stmt = dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=list(unique))
    return conn.execute(stmt.returning(*table.primary_key.columns)).first() is not None  # not rowcount: unreliable here


def read(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run `work` in a read transaction (one consistent snapshot)."""
    with engine.connect() as conn, conn.begin():
        return work(conn)
