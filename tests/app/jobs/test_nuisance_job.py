"""Measuring nuisance shifts (app/jobs/nuisance.py, `python -m app nuisance`) on generated clips."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.cli.main import main
from app.jobs.nuisance import track_vector
from models.novelty import track_mean
from models.training.nuisance import load_shifts
from tests.helpers.data import synth_music
from utils.everyday import CHANGES

pytest.importorskip("musicnn", reason="needs the musicnn wheel's weights (pip install --no-deps musicnn==0.1.0)")
SR = 22050


@pytest.fixture(scope="module")
def pool_embedder():
    from models.embedders.base import build_embedder

    return build_embedder("musicnn-msd", device="cpu", output="pool")


def _folder(tmp_path: Path) -> tuple[Path, Path]:
    for genre, seed in (("rock", 0), ("jazz", 1)):
        (tmp_path / "audio" / genre).mkdir(parents=True)
        sf.write(tmp_path / "audio" / genre / f"{genre}.00001.wav", synth_music(16.0, SR, seed) * 3, SR)
    (tmp_path / "audio" / "rock" / "rock.00002.wav").write_bytes(b"RIFF not really a wav")  # corrupt
    listing = tmp_path / "train.txt"
    listing.write_text("rock/rock.00001.wav\nrock/rock.00002.wav\n")  # jazz.00001 is not a training clip
    return tmp_path / "audio", listing


def test_the_measurement_sees_what_the_engine_feeds_the_embedder(random_engine, pool_embedder) -> None:
    """Same bytes: the job's track vector is the mean of the engine's slice embeddings (same path, same numbers)."""
    from app.engine import Engine

    engine = Engine(checkpoint=random_engine.bundle_dir, device="cpu")  # taggram bundle: compare on its embedder
    buf = io.BytesIO()
    sf.write(buf, synth_music(21.0, SR, 3), SR, format="WAV", subtype="PCM_16")
    analysis = engine.analyze(buf.getvalue())
    np.testing.assert_allclose(track_vector(engine.embedder, buf.getvalue()), track_mean(analysis.slice_embeddings),
                               rtol=1e-5, atol=1e-6)
    assert track_vector(pool_embedder, buf.getvalue()).shape == (753,)


def test_the_command_writes_shifts_of_listed_clips_and_reports_bad_ones(tmp_path, capsys, pool_embedder) -> None:
    source, listing = _folder(tmp_path)
    out = tmp_path / "shifts.npz"
    code = main(["nuisance", str(source), "--list", str(listing), "--out", str(out), "--musicnn-output", "pool",
                 "--changes", "gain_+8dB_limited", "lowpass_2.5k", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "skipped rock.00002" in captured.err and "2 shifts of 2 changes on 1 clips" in captured.out
    shifts = load_shifts(out, pool_embedder.id, 753)
    assert sorted(shifts.changes.tolist()) == ["gain_+8dB_limited", "lowpass_2.5k"]
    assert set(shifts.clips.tolist()) == {"rock.00001"} and shifts.command.startswith("python -m app nuisance ")
    y, sr = sf.read(source / "rock" / "rock.00001.wav", dtype="float32")
    louder = track_vector(pool_embedder, CHANGES["gain_+8dB_limited"](y, sr))  # the same change, measured directly
    clean = track_vector(pool_embedder, _wav(y, sr))
    gain_shift = shifts.shifts[shifts.changes.tolist().index("gain_+8dB_limited")]
    np.testing.assert_allclose(gain_shift, louder - clean, rtol=1e-4, atol=1e-4)
    assert np.abs(shifts.shifts[shifts.changes.tolist().index("lowpass_2.5k")]).max() > 1e-3  # a real change


def _wav(y: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_a_list_that_names_no_clip_is_one_clear_error(tmp_path, capsys) -> None:
    source, _ = _folder(tmp_path)
    (tmp_path / "none.txt").write_text("blues/blues.00099.wav\n")
    code = main(["nuisance", str(source), "--list", str(tmp_path / "none.txt"), "--out", str(tmp_path / "s.npz")])
    assert code == 2 and "No clip of" in capsys.readouterr().err and not (tmp_path / "s.npz").exists()
