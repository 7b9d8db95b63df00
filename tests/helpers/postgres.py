"""A throwaway PostgreSQL server for the test session, and a fresh database per test.

The feedback store promises any SQLAlchemy URL; these fixtures make the suite prove it against a
real server instead of trusting the promise. The server is Debian's `postgresql` package: `initdb`
into a temporary directory (as the unprivileged `postgres` user when the suite runs as root, since
postgres refuses to run as root), listening on a Unix socket in that directory only (no TCP port,
so parallel runs cannot collide), with durability switched off because the data is thrown away.
Without the binaries or the `psycopg` driver the fixtures skip with the reason (and fail instead when
$GENRE_LENS_REQUIRE_POSTGRES is set, as CI does once it has installed the package).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT_S = 60
REQUIRE_ENV = "GENRE_LENS_REQUIRE_POSTGRES"  # CI sets it once the package is installed: fail, never skip
SETTINGS = """
listen_addresses = ''
unix_socket_directories = '{socket_dir}'
port = 5432
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 120
shared_buffers = 32MB
log_min_messages = warning
"""


def find_binaries() -> Path | None:
    """Folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    on_path = shutil.which("initdb"), shutil.which("pg_ctl")
    if all(on_path):
        return Path(on_path[0]).resolve().parent
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def why_unavailable() -> str | None:
    """A reason the server cannot run here, or None when it can."""
    if find_binaries() is None:
        return "needs PostgreSQL's initdb and pg_ctl (apt-get install postgresql)"
    if importlib.util.find_spec("psycopg") is None:
        return "needs the psycopg driver (pip install -r requirements.txt)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "runs as root and there is no unprivileged 'postgres' user to run the server as"
    return None


@dataclass
class PostgresServer:
    """A running server: its socket folder and superuser; `url(db)` is a SQLAlchemy URL for one database."""

    base: Path
    bin_dir: Path
    user: str = "postgres"

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def url(self, database: str) -> str:
        """SQLAlchemy URL of a database on this server, over the Unix socket."""
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.base}"

    def _run(self, *args: str, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess:
        """Run a server binary as the unprivileged owner of the data directory."""
        kwargs = {}
        if os.geteuid() == 0:
            kwargs = {"user": "postgres", "group": "postgres", "extra_groups": []}
        return subprocess.run([str(self.bin_dir / args[0]), *args[1:]], capture_output=True, text=True,
                              timeout=timeout, cwd=self.base, check=False, **kwargs)

    def start(self) -> None:
        """initdb + pg_ctl start; raises RuntimeError with the server's own words when either fails."""
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        done = self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                         "--no-locale", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {(done.stderr or done.stdout).strip()[-2000:]}")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(socket_dir=self.base))
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(START_TIMEOUT_S),
                         "start", timeout=START_TIMEOUT_S + 10)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {(done.stderr or done.stdout).strip()[-1000:]}\n{log}")

    def stop(self) -> None:
        """Stop the server (immediately: its data is thrown away) and remove its folder, whatever state it is in."""
        try:
            if (self.data / "postmaster.pid").exists():
                done = self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=30)
                if done.returncode != 0:
                    self._kill()
        except (OSError, subprocess.SubprocessError):
            self._kill()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _kill(self) -> None:
        """Last resort: SIGQUIT the postmaster named in its pid file."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)

    def admin(self):
        """An autocommit psycopg connection to the maintenance database."""
        import psycopg

        return psycopg.connect(host=str(self.base), dbname="postgres", user=self.user, autocommit=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session; stopped and deleted at the end, also after failures."""
    reason = why_unavailable()
    if reason and os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{REQUIRE_ENV} is set but PostgreSQL cannot run: {reason}", pytrace=False)
    if reason:
        pytest.skip(reason)
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="genre-lens-pg-", dir="/tmp")), find_binaries())
    try:
        try:
            server.start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            pytest.fail(f"PostgreSQL is installed but did not start: {exc}", pytrace=False)
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test (so tests never see each other's rows); dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with postgres_server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.url(name)
    finally:
        with postgres_server.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty feedback database, once per backend: a SQLite file, then a PostgreSQL database."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
