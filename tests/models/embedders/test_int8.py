"""The opt-in int8 MusiCNN path (issue #18): agreement with fp32, how it is chosen, and its ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from app.cli.common import embedder_options
from app.cli.main import build_parser
from models.classifier.bundle import ModelCard, save_bundle
from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN
from models.embedders.base import EmbedderError, base_id, build_embedder
from models.embedders.musicnn import int8
from models.embedders.musicnn.frontend import SR
from tests.helpers.data import ROOT, shared_path, synth_music
from utils import settings
from utils.constants import GENRES
from utils.settings import Settings

MAE_BAR = 0.01  # issue #18: taggram MAE against fp32


@pytest.fixture(scope="module")
def pair() -> tuple:
    """fp32 and int8 taggram embedders, built once for the module."""
    return (build_embedder("musicnn-msd", device="cpu", output="taggram", precision="fp32"),
            build_embedder("musicnn-msd", device="cpu", output="taggram", precision="int8"))


def _audio16k(seconds: float, seed: int) -> np.ndarray:
    import librosa

    return librosa.resample(synth_music(seconds, seed=seed), orig_sr=22050, target_sr=SR).astype(np.float32)


def test_int8_agrees_with_fp32_on_generated_audio(pair) -> None:
    fp32, q = pair
    slices = np.stack([_audio16k(5.0, seed) for seed in (0, 1)])
    a, b = fp32.embed(slices), q.embed(slices)
    assert a.shape == b.shape == (2, 3, 50)
    mae = float(np.abs(a - b).mean())
    assert 0 < mae <= MAE_BAR  # > 0: the int8 network really ran
    assert (a.mean(axis=1).argmax(-1) == b.mean(axis=1).argmax(-1)).all()


def test_int8_pooled_features_stay_close(pair) -> None:
    """The current model reads the 753-d pooled features: their error must stay small relative to their size."""
    fp32 = build_embedder("musicnn-msd", device="cpu", output="pool", precision="fp32")
    q = build_embedder("musicnn-msd", device="cpu", output="pool", precision="int8")
    audio = _audio16k(6.0, 2)
    a, b = fp32.track_frames(audio)[0], q.track_frames(audio)[0]
    assert np.abs(a - b).mean() < 0.05 * np.abs(a).mean()


def test_int8_keeps_the_current_models_answer_on_real_clips() -> None:
    """One GTZAN and one real-world clip (bench/bench_int8_agreement.py runs all 143)."""
    from app.engine import Engine
    from models.embedders.musicnn.extractor import extractor

    paths = [shared_path("data", "gtzan_mini", "rock", "rock.00001.flac"),
             shared_path("data", "realworld_dev", "pop", "pop.0000.flac")]
    fp32, q = Engine(device="cpu", precision="fp32"), Engine(device="cpu", precision="int8")
    for path in paths:
        a, b = fp32.analyze(path), q.analyze(path)
        assert np.argmax(a.probabilities) == np.argmax(b.probabilities), path.name
        assert a.verdict.kind == b.verdict.kind, path.name
        ta, _ = extractor(path, input_length=3, input_overlap=1, extract_features=False)
        tb, _ = extractor(path, input_length=3, input_overlap=1, extract_features=False, precision="int8")
        assert 0 < np.abs(ta - tb).mean() <= MAE_BAR, path.name


def test_ids_differ_but_name_the_same_float_model(pair) -> None:
    fp32, q = pair
    assert fp32.id == "musicnn-msd/taggram/v1"
    assert q.id.startswith("musicnn-msd/taggram/v1+int8-") and q.id != fp32.id
    assert base_id(q.id) == base_id(fp32.id) == fp32.id
    assert q.settings["precision"] == "int8" and fp32.settings["precision"] == "fp32"
    assert q.id.endswith(int8.qparams_tag(int8.load_qparams()))  # a recalibration changes the id


def test_embedding_cache_keys_differ(pair, tmp_path, monkeypatch) -> None:
    from app.jobs.track import cache_dir, embed_track

    monkeypatch.setenv(settings.CACHE_ENV, str(tmp_path / "cache"))
    path = tmp_path / "blues.wav"
    sf.write(path, synth_music(4.0), 22050)
    va, _, _ = embed_track(pair[0], path)
    vb, _, _ = embed_track(pair[1], path)
    assert len(list(cache_dir().glob("*.npz"))) == 2  # one per embedder id: never served the other's numbers
    assert not np.array_equal(va, vb)


def test_the_setting_selects_int8_on_cpu_only(monkeypatch) -> None:
    assert Settings.from_env({}).precision == "fp32"
    assert Settings.from_env({settings.PRECISION_ENV: " INT8 "}).precision == "int8"
    assert Settings.from_env({settings.PRECISION_ENV: "int4"}).precision == "fp32"  # unknown: the exact default
    monkeypatch.setenv(settings.PRECISION_ENV, "int8")
    assert build_embedder("musicnn-msd", device="cpu").precision == "int8"
    assert build_embedder("musicnn-msd", device="cpu", precision="fp32").precision == "fp32"  # explicit wins
    with pytest.raises(EmbedderError, match="CPU only"):
        int8.check_precision("int8", torch.device("cuda"))
    with pytest.raises(EmbedderError, match="Unknown precision"):
        int8.check_precision("fp16", torch.device("cpu"))


def test_the_flag_selects_int8_and_an_fp32_bundle_accepts_it(tmp_path) -> None:
    from app.engine import Engine

    parser = build_parser()
    args = parser.parse_args(["analyze", "x.wav", "--precision", "int8"])
    assert args.precision == "int8"
    args = parser.parse_args(["embed", "src", "--out", "t.npz", "--precision", "int8", "--workers", "2"])
    assert embedder_options(args) == {"output": "taggram", "precision": "int8"} and args.workers == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["analyze", "x.wav", "--precision", "int4"])
    emb = build_embedder("musicnn-msd", device="cpu", precision="fp32")
    card = ModelCard("fp32-model", list(GENRES),
                     {"name": "musicnn-msd", "id": emb.id, "options": {"output": "taggram"}}, {})
    save_bundle(ParallelCNN(ClassifierConfig(input_dim=emb.dim)), card, tmp_path)
    engine = Engine(checkpoint=tmp_path / "fp32-model", device="cpu", precision="int8")
    assert engine.embedder.id.startswith(emb.id + "+int8-")
    analysis = engine.analyze(_wav(tmp_path / "a.wav", 16.0))
    assert analysis.model["embedder"] == engine.embedder.id  # what the user sees names the int8 path


def _wav(path: Path, seconds: float, seed: int = 0) -> Path:
    sf.write(path, synth_music(seconds, seed=seed), 22050)
    return path


def test_embed_with_two_workers_gives_the_same_table(tmp_path) -> None:
    from utils.tables import load_table

    src = tmp_path / "src"
    for i, genre in enumerate(("blues", "rock")):
        (src / genre).mkdir(parents=True)
        _wav(src / genre / f"{genre}.{i}.wav", 3.0 + i, seed=i)
    tables = {}
    for workers in (1, 2):
        # as a user runs it: its own `python -m app` process (spawned workers re-import the parent's __main__,
        # and inside pytest that can be a script another test left behind)
        env = {**os.environ, settings.CACHE_ENV: str(tmp_path / f"cache{workers}")}  # no cache hits across runs
        out = tmp_path / f"t{workers}.npz"
        cmd = [sys.executable, "-m", "app", "embed", str(src), "--out", str(out), "--workers", str(workers),
               "--device", "cpu"]
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        tables[workers] = load_table(out)
    a, b = tables[1], tables[2]
    assert a.track_ids() == b.track_ids() and len(a.track_ids()) == 2
    assert np.array_equal(a.genre, b.genre) and np.array_equal(a.frame_start_s, b.frame_start_s)
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)  # 1 thread per worker vs 2: rounding only


def test_calibration_is_deterministic(tmp_path) -> None:
    from models.embedders.musicnn.int8_calibrate import calibrate

    clip = _wav(tmp_path / "c.wav", 3.0)
    first, second = calibrate([clip]), calibrate([clip])
    assert first["blocks"] == second["blocks"]
    assert set(first["blocks"]) == set(int8.BLOCKS)


def test_bench_reference_without_a_reference_says_there_is_no_ratio(tmp_path, capsys) -> None:
    from bench import bench_reference

    clip = _wav(tmp_path / "clip.wav", 8.0)
    assert bench_reference.main(["--rounds", "1", "--clip", str(clip), "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert "no ratio measured" in out
    assert {"reference_s", "project_s", "reference_patches", "project_patches", "speedup", "taggram_mae"} <= set(result)
    assert result["reference_s"] is None and result["speedup"] is None and result["taggram_mae"] is None
    assert result["project_patches"] == 6 and result["project_s"] > 0  # 8 s at input_overlap=1: 6 patches
    assert result["int8_vs_fp32_taggram_mae"] <= MAE_BAR


def test_bench_batch_json_shape(tmp_path, capsys) -> None:
    from bench import bench_batch

    (tmp_path / "src" / "blues").mkdir(parents=True)
    _wav(tmp_path / "src" / "blues" / "blues.0.wav", 4.0)
    assert bench_batch.main(["--source", str(tmp_path / "src"), "--configs", "int8:1", "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["tracks"] == 1 and result["runs"]["int8:1"]["tracks_per_s"] > 0
    assert "no ratio measured" in out
