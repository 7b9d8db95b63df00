"""Atomic writes onto what is already at the destination: a symlink is followed, never replaced by a plain
file, and a FIFO, socket or folder is refused with one sentence instead of being swapped for a regular file."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from utils.atomic import NotARegularFileError, atomic_path, atomic_write_text


def test_a_symlink_is_followed_and_survives(tmp_path: Path) -> None:
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)

    assert atomic_write_text(link, "new") == link

    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new" and link.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "real.csv"]  # no temporary left behind


def test_a_relative_chained_and_dangling_symlink_write_the_final_target(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "hop.csv").symlink_to("out/final.csv")  # relative, and the target does not exist yet
    link = tmp_path / "link.csv"
    link.symlink_to("hop.csv")

    with atomic_path(link, suffix=".csv") as tmp:
        assert tmp.parent == tmp_path / "out"  # beside the real file: the rename stays on its filesystem
        tmp.write_text("a,b\n")

    assert (tmp_path / "out" / "final.csv").read_text() == "a,b\n"
    assert link.is_symlink() and (tmp_path / "hop.csv").is_symlink()


def test_a_fifo_is_refused_and_left_alone(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    wrote = []

    with (pytest.raises(NotARegularFileError, match=r"pipe\.csv is a FIFO \(named pipe\), not a regular file"),
          atomic_path(pipe) as tmp):
        wrote.append(tmp)  # refused before the writer runs

    assert not wrote and pipe.is_fifo()
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.csv"]


def test_a_symlink_to_a_fifo_and_a_folder_are_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "to-pipe.csv").symlink_to(tmp_path / "pipe")
    (tmp_path / "folder.csv").mkdir()

    with pytest.raises(NotARegularFileError, match=r"to-pipe\.csv is a FIFO"):
        atomic_write_text(tmp_path / "to-pipe.csv", "x")
    with pytest.raises(OSError, match=r"folder\.csv is a folder"):
        atomic_write_text(tmp_path / "folder.csv", "x")

    assert (tmp_path / "pipe").is_fifo() and (tmp_path / "to-pipe.csv").is_symlink()
    assert (tmp_path / "folder.csv").is_dir()


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(NotARegularFileError, match="is a socket"):
            atomic_write_text(path, "x")
    assert path.is_socket()


def test_the_refusal_is_one_sentence_for_the_cli_and_an_oserror_for_writers(tmp_path: Path) -> None:
    """app/cli/main.py prints ValueErrors as `error: ...`; `feedback export` words OSErrors with strerror."""
    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    with pytest.raises(NotARegularFileError) as caught:
        atomic_write_text(pipe, "x")
    exc = caught.value
    assert isinstance(exc, OSError) and isinstance(exc, ValueError)
    assert str(exc) == f"{pipe} is a FIFO (named pipe), not a regular file; refusing to replace it."
    assert exc.strerror == "it is a FIFO (named pipe), not a regular file, so it was left as it is"
    assert "\n" not in str(exc)


def test_feedback_export_through_a_symlink_rewrites_its_target(tmp_path: Path) -> None:
    """`feedback export --out link.csv` used to turn the link into a plain file and leave real.csv stale."""
    from utils.feedback import FeedbackStore

    real, link = tmp_path / "real.csv", tmp_path / "link.csv"
    real.write_text("stale\n")
    link.symlink_to(real)
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")

    assert store.export_csv(link) == 0

    assert link.is_symlink() and real.read_text().startswith("id,")
    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    with pytest.raises(OSError, match=r"pipe\.csv is a FIFO"):  # export's caller words OSErrors in one line
        store.export_csv(pipe)
    assert pipe.is_fifo()
    store.close()
