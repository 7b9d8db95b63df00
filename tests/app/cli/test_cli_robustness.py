"""train/evaluate and the entry point on bad input: one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import errno
import json
import os
import sys
import tempfile

import pytest

from app.cli.main import main
from models.classifier.bundle import CARD_FILE, WEIGHTS_FILE
from tests.helpers.bundles import make_test_bundle
from tests.helpers.cli import one_error_line
from tests.helpers.data import synthetic_table
from utils.tables import EmbeddingTable


@pytest.fixture
def table(tmp_path):
    """A small training table on disk."""
    path = tmp_path / "t.npz"
    synthetic_table(n_per_genre=2, dim=4).save(path)
    return path


def test_train_refuses_to_overwrite_an_existing_bundle(tmp_path, table, capsys):
    """`--version NAME` replaced model.pt and card.json under the old bundle's metrics and trust files."""
    folder = make_test_bundle(tmp_path / "ckpt", "t1")
    before = {name: (folder / name).read_bytes() for name in (WEIGHTS_FILE, CARD_FILE)}
    assert main(["train", "--table", str(table), "--root", str(tmp_path / "ckpt"), "--version", "t1"]) == 2
    line = one_error_line(capsys)
    assert "'t1' already exists" in line and "choose another --version" in line
    assert {name: (folder / name).read_bytes() for name in before} == before


@pytest.mark.parametrize("name", ["../escape", "CURRENT", "current", "a\nb", ".hidden", "", "a/b", "x" * 81])
def test_train_refuses_a_version_that_is_not_a_plain_name(tmp_path, table, capsys, name):
    root = tmp_path / "ckpt"
    assert main(["train", "--table", str(table), "--root", str(root), "--version", name]) == 2
    assert "is not a usable name" in one_error_line(capsys)
    assert not (tmp_path / "escape").exists() and not root.exists()


@pytest.mark.parametrize("argv", [
    ["train", "--epochs", "-1"], ["train", "--epochs", "0"], ["train", "--members", "0"], ["train", "--seed", "-1"],
    ["evaluate", "--cv", "-2"], ["evaluate", "--cv", "1"], ["evaluate", "--seed", "-3"],
])
def test_numeric_flags_are_range_checked(tmp_path, table, capsys, argv):
    """`--epochs -1` saved an untrained model and made it current; `--cv -2` said 'got n_splits=1'."""
    extra = ["--table", str(table), "--root", str(tmp_path / "ckpt")] if argv[0] == "train" else \
        ["--train-table", str(table)]
    with pytest.raises(SystemExit) as stop:
        main([*argv, *extra])
    assert stop.value.code == 2
    assert f"argument {argv[1]}: {argv[2]} is outside" in capsys.readouterr().err
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize(("content", "says"), [
    (None, "cannot read --config"),  # a folder
    ("[1, 2]", "must hold one JSON object"),
    ("{not json", "is not valid JSON"),
    ('{"epochs": 0}', "epochs must be a whole number of at least 1"),
    ('{"members": -2}', "members must be a whole number of at least 1"),
])
def test_train_config_file_errors_are_one_line(tmp_path, table, capsys, content, says):
    config = tmp_path / "cfg.json"
    if content is None:
        config.mkdir()
    else:
        config.write_text(content)
    assert main(["train", "--table", str(table), "--root", str(tmp_path / "ckpt"), "--config", str(config)]) == 2
    assert says in one_error_line(capsys)


def test_train_on_an_empty_table_says_so(tmp_path, capsys):
    empty = tmp_path / "empty.npz"
    EmbeddingTable.empty(synthetic_table(n_per_genre=1, dim=4).meta).save(empty)
    assert main(["train", "--table", str(empty), "--root", str(tmp_path / "ckpt")]) == 2
    assert "holds no tracks" in one_error_line(capsys)


@pytest.fixture
def bundle_and_test(tmp_path):
    """A random-weights 50-d bundle and a 50-d test table (20 tracks)."""
    synthetic_table(n_per_genre=2, dim=50, seed=1).save(tmp_path / "test.npz")
    return make_test_bundle(tmp_path / "ckpt"), tmp_path / "test.npz"


def test_evaluate_with_a_list_of_bare_table_ids(tmp_path, capsys, bundle_and_test):
    """`blues.00012` was read as `blues`, so a list copied from a table's ids matched nothing (IndexError)."""
    bundle, test = bundle_and_test
    ids = EmbeddingTable.track_ids(synthetic_table(n_per_genre=2, dim=50, seed=1))
    (tmp_path / "ids.txt").write_text("\n".join(ids[:3]) + "\n" + f"somewhere/{ids[3]}.wav\n")
    out = tmp_path / "m.json"
    assert main(["evaluate", str(test), "--checkpoint", str(bundle), "--list", str(tmp_path / "ids.txt"),
                 "--out", str(out)]) == 0
    assert json.loads(out.read_text())["n_tracks"] == 4


def test_evaluate_says_when_a_list_matches_nothing(tmp_path, capsys, bundle_and_test):
    bundle, test = bundle_and_test
    (tmp_path / "ids.txt").write_text("nothing.00001\n")
    assert main(["evaluate", str(test), "--checkpoint", str(bundle), "--list", str(tmp_path / "ids.txt")]) == 2
    assert "none of the 1 track ids in ids.txt is in" in one_error_line(capsys)
    (tmp_path / "blank.txt").write_text("\n\n")
    assert main(["evaluate", str(test), "--checkpoint", str(bundle), "--list", str(tmp_path / "blank.txt")]) == 2
    assert "names no tracks" in one_error_line(capsys)


def test_evaluate_checks_out_before_the_work(tmp_path, capsys, bundle_and_test, monkeypatch):
    """`--out DIR` failed with IsADirectoryError after the whole evaluation; a read-only place with Errno 30."""
    bundle, test = bundle_and_test
    (tmp_path / "reports").mkdir()
    assert main(["evaluate", str(test), "--checkpoint", str(bundle), "--out", str(tmp_path / "reports")]) == 2
    assert "is a folder; name a file" in one_error_line(capsys)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "x"))

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr("app.jobs.evaluate.evaluate_source", lambda *a, **k: pytest.fail("evaluated anyway"))
    assert main(["evaluate", str(test), "--checkpoint", str(bundle), "--out", str(tmp_path / "ro" / "m.json")]) == 2
    assert "cannot be written" in (line := one_error_line(capsys)) and "Read-only file system" in line


def test_os_errors_are_one_line_naming_the_path(tmp_path, capsys, bundle_and_test, monkeypatch):
    """A full disk (or any OSError) while writing the report: the path and the reason, not a traceback."""
    bundle, test = bundle_and_test
    out = tmp_path / "m.json"

    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr("app.cli.common.atomic_write_text", full)
    assert main(["evaluate", str(test), "--checkpoint", str(bundle), "--out", str(out)]) == 2
    assert one_error_line(capsys) == f"error: {out}: No space left on device"


def test_evaluate_a_csv_given_as_a_table_says_it_is_not_one(tmp_path, capsys, bundle_and_test):
    """numpy's 'allow_pickle=False' advice was all a user got for a CSV."""
    bundle, _ = bundle_and_test
    (tmp_path / "songs.csv").write_text("path,label\nblues/a.wav,blues\n")
    assert main(["evaluate", str(tmp_path / "songs.csv"), "--checkpoint", str(bundle)]) == 2
    line = one_error_line(capsys)
    assert "is not an embedding table" in line and "pickle" not in line


def test_a_closed_pipe_is_a_quiet_exit(tmp_path, capsys, monkeypatch):
    """`python -m app jobs list | head -1` ended in a BrokenPipeError traceback."""
    from utils.feedback import FeedbackStore

    db = f"sqlite:///{tmp_path / 'fb.sqlite3'}"
    FeedbackStore(db).close()  # `jobs list` reads an existing database
    read, write = os.pipe()
    os.close(read)
    stream = open(write, "w")  # noqa: SIM115 - closed below, after main
    monkeypatch.setattr(sys, "stdout", stream)
    code = main(["jobs", "list", "--db", db])
    monkeypatch.undo()
    stream.close()  # what the interpreter does at exit: no second BrokenPipeError
    assert code == 141 and capsys.readouterr().err == ""


@pytest.mark.parametrize("argv", [["retrain", "--seed", "-1"], ["worker", "--poll", "inf"], ["worker", "--poll", "0"]])
def test_job_flags_are_range_checked_before_anything_is_queued(tmp_path, capsys, argv):
    """`retrain --seed -1` queued a job that failed in the worker; `worker --poll inf` ended in an OverflowError."""
    db = tmp_path / "fb.sqlite3"
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--db", f"sqlite:///{db}"])
    assert stop.value.code == 2
    assert f"argument {argv[1]}: {argv[2]} is outside" in capsys.readouterr().err
    assert not db.exists()
