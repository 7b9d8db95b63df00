"""Verdicts: the rule (genre / uncertain / not_music), its threshold choice, the not-music detector,
the regenerable non-music set, and every verdict path through the engine, the CLI and the page."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.cli.main import main
from models.classifier.bundle import DEFAULT_ROOT, current_version
from models.novelty import NoveltyDetector, fit_detector, track_mean
from models.trust import TRUST_FILE, load_trust
from models.verdict import GENRE, NOT_MUSIC, UNCERTAIN, choose_threshold, decide, selective_curve
from tests.helpers.data import ROOT, shared_path
from utils.constants import GENRES
from utils.loudness import TARGET_ACTIVE_DB, active_level_db, normalise_loudness
from utils.nonmusic import SAMPLE_RATE, espeak_path, nonmusic_clips, speech, wav_bytes

# the shipped model (CURRENT): every bundle that ships carries a trust.json chosen on valid
SHIPPED = DEFAULT_ROOT / (current_version(DEFAULT_ROOT) or "msd-musicnn-v3")


def test_decide_covers_every_verdict() -> None:
    p = np.full(10, 0.01)
    p[GENRES.index("reggae")], p[GENRES.index("disco")] = 0.17, 0.15
    unsure = decide(GENRES, p, 0.5)
    assert unsure.kind == UNCERTAIN and unsure.genres == ()
    assert unsure.text == "Not sure: closest reggae 17%, disco 15%"
    sure = decide(GENRES, p, 0.15)
    assert sure.kind == GENRE and sure.genres == ("reggae", "disco") and sure.text.startswith("Sounds like reggae")
    # every genre it names carries its probability, also beyond the two closest (a low threshold names more)
    p[GENRES.index("blues")] = 0.07
    many = decide(GENRES, p, 0.05)
    assert many.genres == ("reggae", "disco", "blues") and many.genre_probabilities == pytest.approx((0.17, 0.15, 0.07))
    assert many.text == "Sounds like reggae 17% + disco 15% + blues 7%"
    assert many.to_dict()["genre_probabilities"] == [0.17, 0.15, 0.07]
    far = decide(GENRES, p, 0.15, novelty=40.0, novelty_threshold=30.0)
    assert far.kind == NOT_MUSIC and far.genres == () and far.text.startswith("Not music")
    assert "%" not in far.text and far.text.endswith("it would say reggae)")  # a tone's "100 %" read as confidence
    near = decide(GENRES, p, 0.15, novelty=20.0, novelty_threshold=30.0)
    assert near.kind == GENRE
    assert json.loads(json.dumps(far.to_dict()))["novelty_threshold"] == 30.0


def test_threshold_maximises_right_minus_wrong() -> None:
    rng = np.random.default_rng(0)
    n = 400
    true = rng.integers(0, 10, n)
    conf = rng.uniform(0.05, 0.95, n)
    right = rng.uniform(size=n) < conf  # confident answers are right more often
    top = np.where(right, true, (true + 1) % 10)
    probs = np.full((n, 10), 0.01)
    probs[np.arange(n), top] = conf
    t, curve = choose_threshold(probs, true)
    nets = {r["threshold"]: r["net"] for r in curve}
    assert nets[t] == max(nets.values())
    assert 0.3 <= t <= 0.7  # answering pays where P(right) > 1/2
    cov = [r["coverage"] for r in selective_curve(probs, true)]
    assert cov == sorted(cov, reverse=True) and cov[0] > 0.9


def test_detector_flags_far_tracks_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    dead = np.zeros((1, 5))  # constant columns must not matter
    train = np.hstack([rng.normal(size=(200, 20)), dead.repeat(200, 0)])
    valid = np.hstack([rng.normal(size=(100, 20)), dead.repeat(100, 0)])
    det, report = fit_detector(train, valid)
    assert report["live_columns"] == 20 and det.live.sum() == 20
    assert np.mean(det.scores(valid) > det.threshold) <= 0.02
    far = np.hstack([rng.normal(size=(10, 20)) + 4.0, dead.repeat(10, 0) + 1e3])
    assert (det.scores(far) > det.threshold).all()
    det.save(tmp_path / "n.npz")
    again = NoveltyDetector.load(tmp_path / "n.npz")
    assert np.allclose(again.scores(far), det.scores(far)) and again.threshold == det.threshold
    with pytest.raises(ValueError, match="25-d"):
        det.scores(np.zeros((1, 7)))
    assert track_mean(np.ones((3, 4, 25))).shape == (25,)


def test_nonmusic_set_is_regenerable_and_labelled() -> None:
    a = list(nonmusic_clips(seconds=2.0, with_speech=False))
    b = list(nonmusic_clips(seconds=2.0, with_speech=False))
    assert [c.name for c in a] == [c.name for c in b] and len({c.name for c in a}) == len(a)
    assert all(np.array_equal(x.samples, y.samples) for x, y in zip(a, b, strict=True))
    assert {c.family for c in a} == {"noise", "tone", "room"}
    assert sum(c.family == "noise" for c in a) == 9  # three colours at three levels
    for c in a:
        assert c.samples.dtype == np.float32 and len(c.samples) == 2 * SAMPLE_RATE and np.abs(c.samples).max() <= 1


def test_speech_clips_need_espeak() -> None:
    if espeak_path() is None:
        pytest.skip("espeak-ng is not installed (Debian package espeak-ng): no speech clips")
    y = speech("en", 160, 3.0)
    assert len(y) == 3 * SAMPLE_RATE and active_level_db(y, SAMPLE_RATE) > -40
    assert any(c.family == "speech" for c in nonmusic_clips(seconds=1.0))


def test_loudness_normalisation_reaches_the_target() -> None:
    rng = np.random.default_rng(2)
    y = (0.01 * rng.standard_normal(SAMPLE_RATE * 2)).astype(np.float32)
    out, gain = normalise_loudness(y, SAMPLE_RATE)
    assert gain > 0 and abs(active_level_db(out, SAMPLE_RATE) - TARGET_ACTIVE_DB) < 0.5
    silent, g = normalise_loudness(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    assert not silent.any() and g == 30.0  # capped boost; silence stays silent


def test_target_level_is_gtzan_median() -> None:
    import soundfile as sf

    mini = shared_path("data", "gtzan_mini")
    listed = shared_path("data", "gtzan_ff_msd_musicnn", "train_filtered.txt").read_text().split()
    train = {Path(x).stem for x in listed}
    levels = [active_level_db(*sf.read(p, dtype="float32")) for p in sorted(mini.rglob("*.flac")) if p.stem in train]
    assert len(levels) == 40 and abs(np.median(levels) - TARGET_ACTIVE_DB) < 0.5


def test_bundle_without_trust_gets_defaults(tmp_path: Path) -> None:
    t = load_trust(tmp_path)
    assert t.threshold == 0.5 and t.detector is None
    (tmp_path / TRUST_FILE).write_text("{not json")
    assert load_trust(tmp_path).detector is None


def test_shipped_trust_was_chosen_on_valid() -> None:
    t = load_trust(SHIPPED)
    assert t.detector is not None and t.report is not None
    assert t.report["threshold"] == t.threshold and 0.05 <= t.threshold <= 0.95
    card = json.loads((SHIPPED / "card.json").read_text())
    nm = card["evaluation"]["not_music"]
    assert nm["decision_threshold"] == t.threshold and nm["novelty_threshold"] == pytest.approx(t.detector.threshold)
    assert nm["nonmusic_flagged"] >= 0.95 and nm["valid_flagged"] <= 0.02 and nm["test_flagged"] <= 0.02
    assert "test" not in json.dumps(t.report["novelty"])  # the threshold came from valid percentiles


@pytest.fixture(scope="module")
def engine():
    from app.engine import Engine

    return Engine(checkpoint=SHIPPED, device="cpu")


@pytest.mark.parametrize("name", ["white-noise-20dB", "tone-440Hz", "clicks-on-silence"])
def test_engine_calls_noise_and_tones_not_music(engine, name: str) -> None:
    clip = next(c for c in nonmusic_clips(seconds=15.0, with_speech=False) if c.name == name)
    a = engine.analyze(wav_bytes(clip.samples), filename=name + ".wav")
    assert a.verdict.kind == NOT_MUSIC and a.predicted == []
    doc = a.to_dict()
    assert doc["verdict"] == NOT_MUSIC and doc["predicted"] == [] and doc["verdict_detail"]["novelty"] > 0


def test_engine_calls_gtzan_music_a_genre(engine) -> None:
    clip = shared_path("data", "gtzan_mini", "metal", "metal.00002.flac")
    a = engine.analyze(clip)
    assert a.verdict.kind == GENRE and a.novelty < a.novelty_threshold and "metal" in a.predicted


def _cli_json(args: list[str], capsys) -> dict:
    assert main(["analyze", *args, "--json", "--device", "cpu"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_json_and_line_say_every_verdict(tmp_path: Path, capsys, engine) -> None:
    clip = next(c for c in nonmusic_clips(seconds=15.0, with_speech=False) if c.name == "pink-noise-20dB")
    noise = tmp_path / "noise.wav"
    noise.write_bytes(wav_bytes(clip.samples))
    assert _cli_json([str(noise)], capsys)["verdict"] == NOT_MUSIC
    music = shared_path("data", "gtzan_mini", "classical", "classical.00001.flac")
    assert _cli_json([str(music)], capsys)["verdict"] == GENRE
    # the same bundle with a threshold nothing reaches: music, but no genre -> uncertain
    strict = tmp_path / "strict"
    shutil.copytree(SHIPPED, strict)
    report = json.loads((strict / TRUST_FILE).read_text())
    (strict / TRUST_FILE).write_text(json.dumps(report | {"threshold": 0.99}))  # this clip's top is 0.97
    doc = _cli_json([str(music), "--checkpoint", str(strict)], capsys)
    assert doc["verdict"] == UNCERTAIN and doc["predicted"] == []
    assert main(["analyze", str(noise), str(music), "--checkpoint", str(strict), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("noise.wav: Not music")
    assert lines[1].startswith("classical.00001.flac: Not sure: closest")


def test_analysis_page_shows_the_verdict_first(monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("GENRE_LENS_DEVICE", "cpu")
    app = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    app.run()
    clip = next(c for c in nonmusic_clips(seconds=15.0, with_speech=False) if c.name == "tone-1000Hz")
    app.file_uploader[0].upload("tone.wav", wav_bytes(clip.samples), "audio/wav").run()
    assert not app.exception, [e.value for e in app.exception]
    headings = [m.value for m in app.markdown if m.value.startswith("#### ")]
    assert re.match(r"#### Not music · ", headings[0]), headings
    assert "%" not in headings[0], headings  # no confidence for a tone
    assert any("not a verdict" in w.value for w in app.warning)
    bars = next(json.loads(c.proto.spec) for c in app.get("plotly_chart") if "forced to choose" in c.proto.spec)
    assert set(bars["data"][0]["marker"]["opacity"]) == {0.4}  # every bar faded: nothing is claimed
    assert app.sidebar.slider[0].value == load_trust(SHIPPED).threshold  # the default chosen on valid


def test_metrics_page_shows_selective_accuracy_and_not_music(monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    from app.ui.trust_views import metrics_curve, selective_figure

    metrics = json.loads((SHIPPED / "metrics.json").read_text())
    curve = metrics_curve(metrics)
    assert curve[0]["coverage"] > curve[-1]["coverage"] and curve[0]["answered"] >= 0.99 * metrics["n_tracks"]
    fig = selective_figure({"test": curve}, load_trust(SHIPPED).threshold)
    assert any(t.marker.symbol == "star" for t in fig.data)
    monkeypatch.setenv("GENRE_LENS_DEVICE", "cpu")
    app = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    app.run()
    app.switch_page("../pages/metrics.py").run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("Selective accuracy" in c.proto.spec for c in app.get("plotly_chart"))
    tables = [d.value for d in app.dataframe if "called not music" in d.value.columns]
    assert tables
    shares = dict(zip(tables[0]["set"], tables[0]["share"], strict=True))
    assert next(v for k, v in shares.items() if k.startswith("non-music")) >= 0.95
    assert next(v for k, v in shares.items() if k.startswith("realworld_dev")) == 0.0
