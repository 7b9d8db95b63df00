"""The engine end to end on generated audio, with a random-weights bundle (plumbing, not quality)."""

import json
import threading

import numpy as np
import pytest

from app.engine import Engine
from tests.helpers.data import synth_music, wav_bytes
from utils.audio import AudioError
from utils.constants import GENRES


@pytest.fixture
def engine(random_engine: Engine) -> Engine:
    """The shared random-weights engine (tests/helpers/engines.py)."""
    return random_engine


def test_analysis_is_complete_and_json_serialisable(engine):
    steps = []
    a = engine.analyze(wav_bytes(synth_music(31.0), 22050), filename="../../x<script>.wav",
                       progress=lambda f, m: steps.append(f))
    assert a.name == "x<script>.wav"
    assert len(a.windows) == 4 and len(a.slice_starts_s) == 6
    assert a.probabilities.shape == (10,) and np.all((a.probabilities >= 0) & (a.probabilities <= 1))
    w = a.windows[1]
    assert (w.start_s, w.end_s) == (5.0, 20.0) and w.slice_starts_s.tolist() == [5.0, 10.0, 15.0]
    assert np.isclose(w.attention.sum(), 1.0) and w.slice_probabilities.shape == (3, 10)
    assert a.slice_embeddings.shape == (6, 3, 50)
    assert a.spectrogram.db.shape[0] == 96 and a.spectrogram.times_s[-1] <= 31.0
    assert {"decode_resample", "embed", "classify", "total"} <= set(a.timings_s)
    assert steps[0] == 0.0 and steps[-1] == 1.0 and steps == sorted(steps)
    doc = json.loads(a.to_json())
    assert doc["model"]["version"] == "random-test" and len(doc["windows"]) == 4
    assert set(doc["probabilities"]) == set(GENRES) and len(a.window_rows()) == 4
    first = a.window_rows()[0]  # numbered as the page numbers them
    assert first["window"] == 1 and {"attention_slice_1", "attention_slice_3"} <= set(first)


def test_track_probabilities_combine_windows_by_confidence(engine):
    a = engine.analyze(wav_bytes(synth_music(25.0, seed=3), 22050))
    p = a.window_probabilities
    w = p.max(1) / p.max(1).sum()
    assert np.allclose(a.probabilities, (w[:, None] * p).sum(0))


def test_short_audio_is_padded_with_a_warning(engine):
    a = engine.analyze(wav_bytes(synth_music(3.0, seed=4), 22050))
    assert len(a.windows) == 1 and a.source["padded"]
    assert any("pad" in w.lower() or "repeat" in w.lower() for w in a.warnings)


def test_cache_shares_model_outputs_but_never_the_uploader_name(engine):
    data = wav_bytes(synth_music(16.0, seed=5), 22050)
    first = engine.analyze(data, filename="alice_private_demo.flac")
    hostile = "bob <b>&amp; 'co' <img src=x onerror=alert(1)>.flac"
    second = engine.analyze(data, filename=hostile)
    assert first.name == "alice_private_demo.flac" and second.name == hostile
    assert second.timings_s == first.timings_s  # served from the cache, not recomputed
    assert second.probabilities is first.probabilities
    assert engine.analyze(data).name == "upload"
    assert engine.analyze(bytearray(data)).name == engine.analyze(memoryview(data)).name == "upload"  # not a path
    assert all(a.name == "" for a in engine._cache.values())  # the cache holds no session's name


def test_bad_input_raises_audio_error(engine):
    with pytest.raises(AudioError):
        engine.analyze(b"")
    with pytest.raises(AudioError):
        engine.analyze(np.random.default_rng(0).bytes(5000), filename="noise.wav")


def test_threads_share_one_engine(engine):
    clips = [wav_bytes(synth_music(15.0, seed=10 + i), 22050) for i in range(4)]
    out: dict[int, np.ndarray] = {}

    def run(i: int) -> None:
        out[i] = engine.analyze(clips[i]).probabilities

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine._cache.clear()
    for i in range(4):
        assert np.allclose(out[i], engine.analyze(clips[i]).probabilities, atol=1e-5)


@pytest.mark.parametrize("scale", [32767.0, 1e30])
def test_float_samples_at_a_broken_scale_are_rescaled_not_nan(engine, scale):
    """Integers stored as float (or worse) overflowed the float32 path into NaN probabilities and invalid JSON."""
    music = synth_music(16.0, seed=21)
    reference = engine.analyze(wav_bytes(music, 22050, subtype="FLOAT"))
    broken = engine.analyze(wav_bytes((music.astype(np.float64) * scale).astype(np.float32), 22050, subtype="FLOAT"))
    assert np.isfinite(broken.probabilities).all()
    assert np.allclose(broken.probabilities, reference.probabilities, atol=0.02)  # the level is normalised away
    assert any("times full scale" in w for w in broken.warnings)
    assert not any("lossy codec" in w for w in broken.warnings)  # not mistaken for a hot master
    json.loads(broken.to_json())


def test_a_path_that_is_not_a_regular_file_is_refused_without_reading_it(engine, tmp_path):
    """The cache key hashed the path first, so `analyze /dev/zero` (or a FIFO) never returned."""
    import os

    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)
    done: list[BaseException] = []

    def run() -> None:
        try:
            engine.analyze(fifo)
        except AudioError as exc:
            done.append(exc)

    worker = threading.Thread(target=run, daemon=True)  # on a regression it blocks forever; the test must end
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "analysing a FIFO blocked"
    assert "not a regular file" in str(done[0])


def test_a_card_naming_an_embedder_its_classifier_does_not_take_is_refused_at_load(tmp_path):
    """A 753-d head under a card naming the 50-d taggram loaded, then every file failed with a traceback."""
    from types import SimpleNamespace

    from models.classifier.bundle import CheckpointError, ModelCard, save_bundle
    from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN

    embedder_id = "musicnn-msd/taggram/v1"
    card = ModelCard(version="mismatch", labels=list(GENRES), classifier={},
                     embedder={"name": "musicnn-msd", "id": embedder_id, "options": {"output": "taggram"}})
    save_bundle(ParallelCNN(ClassifierConfig(input_dim=753)), card, tmp_path)
    stub = SimpleNamespace(id=embedder_id, dim=50, sample_rate=16000)  # what the card's embedder gives
    with pytest.raises(CheckpointError, match=r"names the musicnn-msd/taggram/v1 embedder \(50-d\), but its "
                                              r"classifier takes 753-d embeddings"):
        Engine(checkpoint=tmp_path / "mismatch", device="cpu", embedder=stub)
