"""Database plumbing of the feedback store: engine, schema, migrations and safe write transactions.

SQLite (the default) is opened in WAL mode with a busy timeout and foreign keys on, and every
write runs in `BEGIN IMMEDIATE`, so concurrent writers queue for the lock instead of failing
half-way; transient "database is locked" errors are retried with backoff. PostgreSQL (tested against a
real server) runs the same code at READ COMMITTED, where writers do interleave: first inserts of shared
rows use ON CONFLICT DO NOTHING (`insert_if_absent`), row locks keep a delete from removing embeddings a
concurrent add is about to use, and deadlocks/serialisation failures are retried like SQLite's locks.
The schema is versioned (`schema_version`): a fresh database runs every migration from v1, an older
one runs the missing ones, always inside one locked transaction so two processes never migrate at once.
"""

from __future__ import annotations

import random
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
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from utils import settings
from utils.feedback.records import FeedbackError

T = TypeVar("T")

SCHEMA_VERSION = 4
BUSY_TIMEOUT_S = 30.0
# transient lock errors retried, and adds rerun after a concurrent writer stored the same key, in this process
stats = {"retries": 0, "conflicts": 0}


def data_dir() -> Path:
    """Where local data lives: $GENRE_LENS_DATA, else the project's gitignored data/ folder."""
    return settings.load().data_dir


def default_url() -> str:
    """The database to use: $GENRE_LENS_DB_URL, else a SQLite file in the data folder."""
    return settings.load().db_url


def display_url(url: str) -> str:
    """The URL with any password hidden, fit for messages and the UI."""
    return make_url(url).render_as_string(hide_password=True)


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

corrections = Table(
    "corrections", metadata,
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
)

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


MIGRATIONS: dict[int, tuple[str, Callable[[Connection], None]]] = {
    1: ("corrections, slice embeddings", _migrate_to_v1),
    2: ("correction window and note; correction usage", _migrate_to_v2),
    3: ("the submitting session of each correction", _migrate_to_v3),
    4: ("background jobs (retraining)", _migrate_to_v4),
}


def current_schema_version(conn: Connection) -> int:
    """The schema version of a database (0 when it has no tables yet)."""
    if not inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(select(func.max(schema_version.c.version))).scalar() or 0)


def migrate(engine: Engine) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version found before migrating."""

    def run(conn: Connection) -> int:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7154300611)"))  # one migrator at a time
        found = current_schema_version(conn)
        if found > SCHEMA_VERSION:
            raise FeedbackError(
                f"The feedback database has schema v{found}, newer than this Genre Lens (v{SCHEMA_VERSION}); "
                "update Genre Lens to use it."
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            description, step = MIGRATIONS[version]
            step(conn)
            conn.execute(schema_version.insert().values(
                version=version, applied_at=datetime.now(UTC), description=description))
        return found

    return write_transaction(engine, run)


# ------------------------------------------------------------------------------------ engine
def _sqlite_on_connect(dbapi_connection, _record) -> None:
    """PRAGMAs every SQLite connection needs; sqlite3's own BEGIN handling is turned off."""
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
    finally:
        cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    """Emit BEGIN ourselves: IMMEDIATE for writes (take the write lock up front), DEFERRED for reads."""
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get their folder created and the PRAGMAs/BEGIN hooks."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database or ""
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


# ------------------------------------------------------------------------------------ transactions
def is_transient(exc: DBAPIError) -> bool:
    """Errors that go away when the transaction is simply run again (lock contention, deadlock)."""
    message = str(getattr(exc, "orig", exc)).lower()
    if "database is locked" in message or "database table is locked" in message or "busy" in message:
        return True
    code = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(getattr(exc, "orig", None), "pgcode", None)
    return code in ("40001", "40P01")  # serialization failure, deadlock detected


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
        except OperationalError as exc:
            if not is_transient(exc):
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
