"""`embed` on awkward sources and tables: nothing embedded is an error, names never hide other tracks, runs take turns.

A tiny stand-in embedder (frame statistics of real decoded audio) keeps these tests fast; decoding,
hashing and the per-track cache are the real ones.
"""

from __future__ import annotations

import fcntl
import shutil
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from app.cli.main import main
from app.jobs.embed import build_table
from tests.helpers.data import synth_music
from utils.tables import load_table, read_id_list

SR = 8000


class StatsEmbedder:
    """Four statistics per second of audio: different audio, different vectors."""

    name, id, options, dim, device = "stats", "stats/v1", {}, 4, "cpu"
    sample_rate, track_frame_seconds, track_hop_seconds = SR, 1.0, 1.0

    def track_frames(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = max(1, len(y) // SR)
        frames = np.resize(y, n * SR).reshape(n, SR)
        return np.stack([frames.mean(1), frames.std(1), frames.min(1), frames.max(1)], 1), np.arange(n, dtype=float)


@pytest.fixture(autouse=True)
def _stats_embedder(tmp_path, monkeypatch):
    monkeypatch.setenv("GENRE_LENS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("app.cli.dataset.make_embedder", lambda args: StatsEmbedder())


def wav(path, seed: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, synth_music(2.0, sr=SR, seed=seed), SR)
    return str(path)


def embed(src, out) -> int:
    return main(["embed", str(src), "--out", str(out), "--device", "cpu"])


def test_embed_without_audio_in_genre_folders_is_an_error(tmp_path, capsys):
    """An empty folder, or audio outside genre sub-folders, gave '0 embedded ...', exit 0 and an empty table."""
    (tmp_path / "empty").mkdir()
    assert embed(tmp_path / "empty", tmp_path / "e.npz") == 2
    assert "has no audio in genre sub-folders" in capsys.readouterr().err
    wav(tmp_path / "flat" / "a.wav", 0)
    wav(tmp_path / "flat" / "misc" / "b.wav", 1)
    assert embed(tmp_path / "flat", tmp_path / "e.npz") == 2
    assert "misc is not a genre" in capsys.readouterr().err
    assert not (tmp_path / "e.npz").exists()


def test_embed_where_every_file_fails_is_an_error(tmp_path, capsys):
    (tmp_path / "src" / "blues").mkdir(parents=True)
    (tmp_path / "src" / "blues" / "x.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    assert embed(tmp_path / "src", tmp_path / "e.npz") == 2
    assert "none of the 1 audio files" in capsys.readouterr().err
    assert not (tmp_path / "e.npz").exists()


def test_a_same_named_track_is_not_silently_skipped(tmp_path, capsys):
    """r2/jazz/song.wav was taken for r1/blues/song.wav ('already in') because ids are file names."""
    out = tmp_path / "e.npz"
    wav(tmp_path / "r1" / "blues" / "song.wav", 0)
    assert embed(tmp_path / "r1", out) == 0
    assert embed(tmp_path / "r1", out) == 0  # the same file again: already in
    assert "0 embedded, 1 already in" in capsys.readouterr().out
    wav(tmp_path / "r2" / "jazz" / "song.wav", 1)
    assert embed(tmp_path / "r2", out) == 2
    assert "another track named 'song' (genre blues, not jazz)" in capsys.readouterr().err
    wav(tmp_path / "r3" / "blues" / "song.wav", 2)  # same name and genre, other audio
    wav(tmp_path / "r3" / "blues" / "other.wav", 3)
    assert embed(tmp_path / "r3", out) == 0
    captured = capsys.readouterr()
    assert "1 embedded, 0 already in" in captured.out and "'song' with different audio" in captured.err
    table = load_table(out)
    assert table.track_ids() == ["song", "other"] and set(table.genre.tolist()) == {"blues"}


def test_a_table_without_audio_records_still_extends(tmp_path, capsys):
    """Tables written before the audio records: loadable and extendable, same names told apart by genre."""
    out = tmp_path / "e.npz"
    wav(tmp_path / "r1" / "blues" / "song.wav", 0)
    assert embed(tmp_path / "r1", out) == 0
    (tmp_path / ".e.npz.sources.json").unlink(missing_ok=True)  # as a table from before the records
    wav(tmp_path / "r1" / "rock" / "new.wav", 1)
    assert embed(tmp_path / "r1", out) == 0
    assert "1 embedded, 1 already in" in capsys.readouterr().out
    assert load_table(out).track_ids() == ["song", "new"]


def test_a_file_listed_twice_is_embedded_once(tmp_path, capsys):
    """The same file twice in a CSV became two tracks, `a` and `a~1`."""
    wav(tmp_path / "audio" / "a.wav", 0)
    (tmp_path / "list.csv").write_text("path,label\naudio/a.wav,blues\naudio/a.wav,blues\naudio/../audio/a.wav,jazz\n")
    assert embed(tmp_path / "list.csv", tmp_path / "e.npz") == 0
    captured = capsys.readouterr()
    assert "1 embedded, 0 already in" in captured.out and "1 failed" in captured.out
    assert "listed more than once; embedded once" in captured.err and "listed again as jazz" in captured.err
    assert load_table(tmp_path / "e.npz").track_ids() == ["a"]


def test_two_runs_on_one_table_take_turns(tmp_path):
    """Two runs writing one table at once: the later save dropped the other run's tracks."""
    wav(tmp_path / "one" / "blues" / "a.wav", 0)
    wav(tmp_path / "two" / "jazz" / "b.wav", 1)
    build_table(StatsEmbedder(), tmp_path / "one", tmp_path / "other.npz")  # what the other run will save
    out = tmp_path / "e.npz"
    logs: list[str] = []
    done: dict = {}
    with open(tmp_path / ".e.npz.lock", "a") as other_run:
        fcntl.flock(other_run, fcntl.LOCK_EX)
        worker = threading.Thread(target=lambda: done.update(report=build_table(
            StatsEmbedder(), tmp_path / "two", out, log=logs.append)))
        worker.start()
        time.sleep(0.5)
        shutil.copy(tmp_path / "other.npz", out)  # the other run saves while this one waits
        fcntl.flock(other_run, fcntl.LOCK_UN)
    worker.join(30)
    assert sorted(load_table(out).track_ids()) == ["a", "b"]
    assert done["report"].waited_s >= 0.3 and "waiting for another embed run" in logs[0]


def test_embed_into_a_csv_says_it_is_not_a_table(tmp_path, capsys):
    wav(tmp_path / "src" / "blues" / "a.wav", 0)
    (tmp_path / "songs.csv").write_text("path,label\n")
    assert embed(tmp_path / "src", tmp_path / "songs.csv") == 2
    err = capsys.readouterr().err
    assert "is not an embedding table" in err and "pickle" not in err


def test_id_lists_take_ids_and_paths(tmp_path):
    """`blues.00012` (a bare id) became `blues`: only an audio suffix is a suffix."""
    (tmp_path / "ids.txt").write_text("blues.00012\nblues/blues.00013.wav\n\n/data/jazz.00001.au\n rock.00002.FLAC \n")
    assert read_id_list(tmp_path / "ids.txt") == ["blues.00012", "blues.00013", "jazz.00001", "rock.00002"]


def test_a_symlink_loop_or_a_locked_genre_folder_costs_only_itself(tmp_path, capsys, monkeypatch):
    """A symlink loop raised RuntimeError out of `Path.resolve` (a traceback, no table); a genre folder that
    cannot be listed stopped the run with 'Permission denied', though the README says embed reports bad files."""
    src = tmp_path / "src"
    wav(src / "rock" / "good.wav", 0)
    wav(src / "jazz" / "locked.wav", 1)
    (src / "rock" / "loopA.wav").symlink_to("loopB.wav")
    (src / "rock" / "loopB.wav").symlink_to("loopA.wav")
    listdir = type(src).iterdir

    def iterdir(self):
        if self.name == "jazz":
            raise PermissionError(13, "Permission denied", str(self))
        return listdir(self)

    monkeypatch.setattr(type(src), "iterdir", iterdir)
    assert embed(src, tmp_path / "e.npz") == 0
    captured = capsys.readouterr()
    assert "1 embedded, 0 already in" in captured.out and "3 failed" in captured.out
    assert "could not read the folder (Permission denied)" in captured.err and "jazz" in captured.err
    assert captured.err.count("could not follow the path") == 2 and "Traceback" not in captured.err
    assert load_table(tmp_path / "e.npz").track_ids() == ["good"]
    shutil.rmtree(src / "rock")  # only the locked folder is left: one clear line, not "no audio"
    assert embed(src, tmp_path / "f.npz") == 2
    err = capsys.readouterr().err
    assert "could be read (first: " in err and "jazz: could not read the folder (Permission denied)" in err


def test_the_same_audio_under_two_names_is_embedded_once(tmp_path, capsys):
    """Identical bytes under two ids (or two genres) became two tracks: one recording could sit in train and test."""
    src = tmp_path / "src"
    wav(src / "blues" / "copyA.wav", 0)
    shutil.copy(src / "blues" / "copyA.wav", src / "blues" / "copyB.wav")
    (src / "rock").mkdir()
    shutil.copy(src / "blues" / "copyA.wav", src / "rock" / "again.wav")
    wav(src / "rock" / "other.wav", 1)
    assert embed(src, tmp_path / "e.npz") == 0
    captured = capsys.readouterr()
    assert "2 embedded, 0 already in" in captured.out and "2 failed" in captured.out
    assert "copyB.wav: the same audio as track 'copyA'; not embedded twice" in captured.err
    assert "again.wav: the same audio as track 'copyA', which is blues, not rock; not embedded twice" in captured.err
    assert sorted(load_table(tmp_path / "e.npz").track_ids()) == ["copyA", "other"]
    shutil.copy(src / "rock" / "other.wav", src / "rock" / "renamed.wav")  # a later run: the table's own record
    assert embed(src, tmp_path / "e.npz") == 0
    assert "renamed.wav: the same audio as track 'other'; not embedded twice" in capsys.readouterr().err


def test_embed_shows_control_characters_in_names_as_escapes(tmp_path, capsys):
    """A file name carrying an escape sequence cleared the terminal in the 'skipped' line."""
    wav(tmp_path / "src" / "rock" / "good.wav", 0)
    (tmp_path / "src" / "rock" / "evil\x1b[2J\nfake.wav").write_bytes(b"not audio")
    assert embed(tmp_path / "src", tmp_path / "e.npz") == 0
    err = capsys.readouterr().err
    assert "\x1b" not in err and "evil\\x1b[2J\\nfake.wav" in err


def test_a_twin_in_a_csv_without_labels_reads_unlabelled(tmp_path, capsys):
    wav(tmp_path / "audio" / "a.wav", 0)
    shutil.copy(tmp_path / "audio" / "a.wav", tmp_path / "audio" / "b.wav")
    (tmp_path / "list.csv").write_text("path,label\naudio/a.wav,rock\naudio/b.wav,\n")
    assert embed(tmp_path / "list.csv", tmp_path / "e.npz") == 0
    assert "the same audio as track 'a', which is rock, not unlabelled; not embedded twice" in capsys.readouterr().err
