"""The command line: analyze, train and evaluate on small generated data."""

import json
from pathlib import Path

import pytest
import soundfile as sf

from app.cli.main import main
from tests.helpers.data import synth_music, synthetic_table


def test_train_and_evaluate_on_tables(tmp_path, capsys):
    train_t = synthetic_table(n_per_genre=4, dim=8, seed=0)
    test_t = synthetic_table(n_per_genre=2, dim=8, seed=0)
    train_t.save(tmp_path / "train.npz")
    test_t.save(tmp_path / "test.npz")
    (tmp_path / "cfg.json").write_text(json.dumps({"channels": 8, "hidden": 16, "windows_per_track": 2, "members": 2}))
    code = main(["train", "--table", str(tmp_path / "train.npz"), "--test", str(tmp_path / "test.npz"),
                 "--root", str(tmp_path / "ckpt"), "--version", "t1", "--epochs", "2", "--config",
                 str(tmp_path / "cfg.json")])
    assert code == 0
    bundle = tmp_path / "ckpt" / "t1"
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert metrics["n_tracks"] == 20 and "accuracy" in metrics["baseline"]
    card = json.loads((bundle / "card.json").read_text())
    assert card["evaluation"]["test"]["n_tracks"] == 20 and card["training"]["config"]["channels"] == 8
    assert card["classifier"]["members"] == 2 and len(card["training"]["members"]) == 2
    curves = json.loads((bundle / "curves.json").read_text())
    assert {row["member"] for row in curves["history"]} == {1, 2} and len(curves["member_best_epochs"]) == 2
    assert (tmp_path / "ckpt" / "CURRENT").read_text().strip() == "t1"
    out = tmp_path / "m.json"
    assert main(["evaluate", str(tmp_path / "test.npz"), "--checkpoint", str(bundle), "--out", str(out),
                 "--train-table", str(tmp_path / "train.npz")]) == 0
    report = json.loads(out.read_text())
    assert {"accuracy", "macro_f1", "n_tracks", "baseline"} <= set(report)
    assert report["accuracy"] == pytest.approx(metrics["accuracy"])


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing.npz"), "--checkpoint", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"nonsense": 1}))
    synthetic_table(n_per_genre=2, dim=4).save(tmp_path / "t.npz")
    assert main(["train", "--table", str(tmp_path / "t.npz"), "--config", str(bad), "--root", str(tmp_path)]) == 2
    assert "Unknown training settings" in capsys.readouterr().err


def test_analyze_without_a_model_says_how_to_get_one(tmp_path, capsys, monkeypatch):
    wav = tmp_path / "a.wav"
    sf.write(wav, synth_music(16.0), 22050)
    assert main(["analyze", str(wav), "--checkpoint", str(tmp_path / "nothing-here")]) == 2
    assert "not a model bundle" in capsys.readouterr().err


def test_train_refuses_an_embedder_flag_that_contradicts_the_table(tmp_path, capsys):
    synthetic_table(n_per_genre=2, dim=4).save(tmp_path / "t.npz")
    code = main(["train", "--table", str(tmp_path / "t.npz"), "--embedder", "openl3", "--root", str(tmp_path)])
    assert code == 2
    assert "holds synthetic embeddings, not openl3" in capsys.readouterr().err


def test_cross_validation_from_the_command_line(tmp_path, capsys):
    synthetic_table(n_per_genre=4, dim=6, seed=0).save(tmp_path / "t.npz")
    out = tmp_path / "cv.json"
    assert main(["evaluate", "--cv", "2", "--members", "1", "--train-table", str(tmp_path / "t.npz"),
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["k"] == 2 and len(report["fold_accuracy"]) == 2 and 0 <= report["accuracy_mean"] <= 1
    assert "2-fold CV: accuracy" in capsys.readouterr().out
    assert main(["evaluate", "--cv", "2", "--members", "0", "--train-table", str(tmp_path / "t.npz")]) == 2
    assert "--members must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(("device", "says"), [("foo", "Unknown device 'foo'"), ("cuda:99", "cuda:99")])
def test_analyze_refuses_a_device_it_cannot_use_in_one_line(tmp_path, capsys, device, says):
    """`--device foo` raised torch's RuntimeError and `--device cuda` an AssertionError on a CPU-only machine."""
    wav = tmp_path / "a.wav"
    sf.write(wav, synth_music(16.0), 22050)
    assert main(["analyze", str(wav), "--device", device]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and says in err and "Traceback" not in err


def test_analyze_exits_2_when_every_file_is_unusable(tmp_path, capsys):
    """The README promises status 2 for a problem the user can fix; it returned 1."""
    bad = tmp_path / "notes.mp3"
    bad.write_text("not audio at all")
    assert main(["analyze", str(bad), "--device", "cpu"]) == 2
    assert "notes.mp3" in capsys.readouterr().err


def test_analyze_takes_a_folder_and_keeps_subfolders_apart(tmp_path, capsys):
    """A folder was refused as 'not a regular file'; now it stands for its audio, rock/a and pop/a apart."""
    for genre in ("rock", "pop"):
        (tmp_path / "music" / genre).mkdir(parents=True)
        sf.write(tmp_path / "music" / genre / "a.wav", synth_music(16.0, seed=len(genre)), 22050)
    (tmp_path / "music" / "cover.jpg").write_bytes(b"not audio, skipped")
    (tmp_path / "empty").mkdir()
    assert main(["analyze", str(tmp_path / "music"), str(tmp_path / "empty"), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    names = [line.split(":")[0] for line in captured.out.splitlines()]
    assert names == ["pop/a.wav", "rock/a.wav"]
    assert "empty: a folder with no audio files in it" in captured.err and "cover.jpg" not in captured.err
    assert main(["analyze", str(tmp_path / "music" / "pop"), "--json", "--device", "cpu"]) == 0
    docs = json.loads(capsys.readouterr().out)  # a folder gives a list, even of one
    assert [d["path"] for d in docs] == [str(tmp_path / "music" / "pop" / "a.wav")] and docs[0]["verdict"]
    assert main(["analyze", str(tmp_path / "empty"), "--device", "cpu"]) == 2


def test_analyze_shows_control_characters_in_a_name_as_escapes(tmp_path, capsys):
    """A file name carrying an escape sequence reached the terminal raw in the error line."""
    bad = tmp_path / "x\x1b[2Jy.mp3"
    bad.write_text("not audio at all")
    assert main(["analyze", str(bad), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "x\\x1b[2Jy.mp3" in err


def test_analyze_json_is_a_list_whenever_more_than_one_file_was_asked_for(tmp_path, capsys):
    """Two files with one unusable printed a bare object, so a script could not tell which input it was."""
    good, bad = tmp_path / "a.wav", tmp_path / "b.mp3"
    sf.write(good, synth_music(16.0), 22050)
    bad.write_text("not audio")
    assert main(["analyze", str(good), str(bad), "--json", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    docs = json.loads(captured.out)
    assert isinstance(docs, list) and [d["path"] for d in docs] == [str(good), str(bad)]
    assert docs[0]["verdict"] and "error" not in docs[0]
    assert docs[1]["error"] and docs[1]["error"] in captured.err and "verdict" not in docs[1]
    # stdout stays JSON when nothing could be analysed: a failed file alone is its error object, a folder []
    assert main(["analyze", str(bad), "--json", "--device", "cpu"]) == 2
    assert set(json.loads(capsys.readouterr().out)) == {"path", "error"}
    (tmp_path / "empty").mkdir()
    assert main(["analyze", str(tmp_path / "empty"), "--json", "--device", "cpu"]) == 2
    assert json.loads(capsys.readouterr().out) == []


def test_analyze_says_a_locked_folder_cannot_be_read(tmp_path, capsys, monkeypatch):
    """rglob skips what it cannot list, so a locked folder was reported as having no audio in it."""
    locked = tmp_path / "locked"
    locked.mkdir()
    listdir = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
                        if self == locked else listdir(self))
    assert main(["analyze", str(locked), "--device", "cpu"]) == 2
    assert "locked: could not read the folder (Permission denied)." in capsys.readouterr().err


def test_a_mistyped_db_for_a_read_only_command_is_refused_not_created(tmp_path, capsys):
    """`feedback list --db sqlite:///typo` printed 'no corrections' and left a new empty database behind."""
    typo = tmp_path / "typo" / "feedbak.sqlite3"
    for args in (["feedback", "list"], ["feedback", "export", "--out", str(tmp_path / "x.csv")], ["jobs", "list"]):
        assert main([*args, "--db", f"sqlite:///{typo}"]) == 2
        assert "There is no feedback database" in capsys.readouterr().err
    assert not typo.parent.exists() and not (tmp_path / "x.csv").exists()


def test_an_unexpected_failure_costs_one_file_not_the_batch(tmp_path, capsys, monkeypatch):
    """Only audio and OS errors were caught per file: anything else lost the rest of the batch in a traceback."""
    from app.engine import Engine

    good, odd = tmp_path / "a.wav", tmp_path / "b.wav"
    for f in (good, odd):
        sf.write(f, synth_music(16.0), 22050)
    real = Engine.analyze

    def analyze(self, source, filename=None, **kw):
        if filename == "b.wav":
            raise RuntimeError("a kernel failed")
        return real(self, source, filename=filename, **kw)

    monkeypatch.setattr(Engine, "analyze", analyze)
    assert main(["analyze", str(odd), str(good), "--json", "--device", "cpu"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert docs[0] == {"path": str(odd), "error": "could not be analysed (RuntimeError: a kernel failed)."}
    assert docs[1]["path"] == str(good) and docs[1]["verdict"]
