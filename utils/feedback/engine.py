"""Opening the feedback database: a SQLite file is looked at before SQLite opens it; other URLs go as given.

Left to itself, SQLite gets two things wrong for us. It creates any file it is pointed at, so a mistyped
path given to a command that only reads would leave a new, empty database (and its folders) behind:
`make_engine(url, create=False)` refuses a missing file instead. And it opens a file it may not write
for reading only when it can still create the WAL's `-shm` file beside it, so a database in a folder the
user cannot write would not even list: such a file is opened with `mode=ro` (plus `immutable=1` when the
folder is read-only and no `-wal`/`-shm` file shows a writer at work), and the engine is marked read-only.
Every SQLite connection gets its PRAGMAs here, and BEGIN is emitted by us (IMMEDIATE for writes).
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url

from utils.feedback.records import FeedbackError

BUSY_TIMEOUT_S = 30.0
READ_ONLY = "feedback_read_only"  # execution option: the engine cannot write (a read-only SQLite file)
LOCATION = "feedback_location"  # execution option: where the data lives, for messages


def display_url(url: str | URL) -> str:
    """The URL with any password hidden, fit for messages and the UI."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_file(url: str | URL) -> Path | None:
    """The file a SQLite URL names (`~` expanded), or None: another backend, in-memory, or a `file:` URI."""
    parsed = make_url(url)
    db = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db).expanduser()


def _writable(path: Path) -> bool:
    """Whether SQLite can write `path` in WAL mode: the file, and its folder (for the -wal and -shm files)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _read_only_url(path: Path) -> URL:
    """A URI that opens `path` for reading only; immutable when nobody could be writing it right now."""
    query = {"mode": "ro", "uri": "true"}
    sidecars = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
    if not os.access(path.parent, os.W_OK) and not any(p.exists() for p in sidecars):
        query["immutable"] = "1"  # no -shm can be made here, and no writer has one open
    return URL.create("sqlite", database="file:" + urllib.parse.quote(str(path.resolve())), query=query)


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


def _sqlite_on_connect_read_only(dbapi_connection, _record) -> None:
    """A read-only connection: no journal-mode change (that is a write), nothing else to set but the timeout."""
    dbapi_connection.isolation_level = None
    dbapi_connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")


def _sqlite_on_begin(conn: Connection) -> None:
    """Emit BEGIN ourselves: IMMEDIATE for writes (take the write lock up front), DEFERRED for reads."""
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for `url`. A SQLite file that is missing is created with its folder (`create`) or refused
    (FeedbackError); one this process may not write is opened read-only (`is_read_only(engine)`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(parsed, pool_pre_ping=True)
        engine.update_execution_options(**{LOCATION: display_url(parsed)})
        return engine
    path, read_only = sqlite_file(parsed), False
    if path is not None:
        if not path.exists():
            if not create:
                raise FeedbackError(f"There is no feedback database at {path}; check the path (only commands "
                                    "that store corrections create one).")
            path.parent.mkdir(parents=True, exist_ok=True)
        elif path.is_dir():
            raise FeedbackError(f"The feedback database {path} is a folder, not a database file.")
        elif not _writable(path):
            parsed, read_only = _read_only_url(path), True
        else:
            parsed = parsed.set(database=str(path))
    engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_on_connect_read_only if read_only else _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    where = str(path) if path is not None else display_url(parsed)
    engine.update_execution_options(**{READ_ONLY: read_only, LOCATION: where})
    return engine


def is_read_only(engine: Engine) -> bool:
    """Whether `make_engine` opened the database for reading only."""
    return bool(engine.get_execution_options().get(READ_ONLY))


def location(engine: Engine) -> str:
    """Where an engine's data lives (a file path, or the URL without its password), for messages."""
    return engine.get_execution_options().get(LOCATION) or display_url(engine.url)
