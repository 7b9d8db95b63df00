"""The one settings object: parsing, precedence, and that every command honours it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from app.cli.main import main
from models.classifier.bundle import current_version, set_current
from tests.helpers.bundles import make_test_bundle
from tests.helpers.data import synth_music, synthetic_table
from utils import settings
from utils.settings import Settings


def test_from_env_reads_every_variable() -> None:
    env = {
        settings.CHECKPOINTS_ENV: "/x/ckpt", settings.DATA_DIR_ENV: "/x/data", settings.DEVICE_ENV: "cuda:1",
        settings.CACHE_ENV: "/x/cache", settings.ADMIN_TOKEN_ENV: " secret-token-1 ", settings.MAX_ANALYSES_ENV: "5",
        settings.REFERENCE_ENV: "/x/ref.npz", settings.RAY_ACTORS_ENV: "3", settings.RAY_TRACKS_PER_SHARD_ENV: "7",
    }
    s = Settings.from_env(env)
    assert s.checkpoints == Path("/x/ckpt") and s.data_dir == Path("/x/data") and s.device == "cuda:1"
    assert s.db_url == "sqlite:////x/data/feedback.sqlite3"  # the SQLite file follows the data folder
    assert s.cache_dir == Path("/x/cache") and s.admin_token == "secret-token-1" and s.max_analyses == 5
    assert s.reference_table == Path("/x/ref.npz") and s.ray_actors == 3 and s.ray_tracks_per_shard == 7


def test_defaults_and_bad_values_fall_back() -> None:
    s = Settings.from_env({settings.MAX_ANALYSES_ENV: "lots", settings.RAY_TRACKS_PER_SHARD_ENV: "0",
                           settings.DEVICE_ENV: "  "})
    assert s.max_analyses == settings.DEFAULT_MAX_ANALYSES
    assert s.ray_tracks_per_shard == settings.DEFAULT_TRACKS_PER_SHARD
    assert s.device is None and s.checkpoints == settings.DEFAULT_CHECKPOINTS and s.admin_token is None
    with pytest.raises(AttributeError):  # frozen: passed down, never edited on the way
        s.device = "cpu"  # type: ignore[misc]


def test_infinite_numbers_and_other_off_words() -> None:
    """GPUS_PER_ACTOR=inf was accepted, and WORKER=disabled left the worker on."""
    s = Settings.from_env({settings.RAY_GPUS_PER_ACTOR_ENV: "inf", settings.MAX_ANALYSES_ENV: "1e999",
                           settings.WORKER_ENV: "disabled", settings.PLAYER_ENV: "None"})
    assert s.ray_gpus_per_actor == 1.0 and s.max_analyses == settings.DEFAULT_MAX_ANALYSES
    assert not s.worker and not s.player
    assert Settings.from_env({settings.WORKER_ENV: "yes"}).worker


def test_a_path_with_an_unknown_users_home_is_kept_literally() -> None:
    """`~nosuchuser/x` made expanduser raise, and every command (even `feedback list`) crashed."""
    s = Settings.from_env({settings.DATA_DIR_ENV: "~nosuchuser-gl/x", settings.CHECKPOINTS_ENV: "~nosuchuser-gl/c"})
    assert s.data_dir == Path("~nosuchuser-gl/x") and s.checkpoints == Path("~nosuchuser-gl/c")
    assert Settings.from_env({settings.CACHE_ENV: "~/gl-cache"}).cache_dir == Path.home() / "gl-cache"


def test_the_environment_wins_over_secrets() -> None:
    secrets = {settings.ADMIN_SECRET_KEY: "from-secrets-file"}
    assert Settings.from_env({}, secrets).admin_token == "from-secrets-file"
    assert Settings.from_env({settings.ADMIN_TOKEN_ENV: "from-env-var-1"}, secrets).admin_token == "from-env-var-1"


def test_analyze_train_and_evaluate_honour_the_checkpoints_setting(tmp_path, capsys, monkeypatch) -> None:
    """$GENRE_LENS_CHECKPOINTS used to reach the app and `feedback` only; every command reads it now."""
    root = tmp_path / "elsewhere"
    make_test_bundle(root, version="elsewhere-v9", metrics=False)
    set_current("elsewhere-v9", root)
    monkeypatch.setenv(settings.CHECKPOINTS_ENV, str(root))
    wav = tmp_path / "a.wav"
    sf.write(wav, synth_music(16.0), 22050)
    assert main(["analyze", str(wav), "--json", "--device", "cpu"]) == 0
    doc = json.loads(capsys.readouterr().out)
    doc = doc[0] if isinstance(doc, list) else doc
    assert doc["model"]["version"] == "elsewhere-v9"  # not the bundled model under models/checkpoints

    synthetic_table(n_per_genre=3, dim=8).save(tmp_path / "t.npz")
    (tmp_path / "cfg.json").write_text(json.dumps({"channels": 8, "hidden": 16, "members": 1}))
    assert main(["train", "--table", str(tmp_path / "t.npz"), "--version", "trained-here", "--epochs", "1",
                 "--config", str(tmp_path / "cfg.json")]) == 0
    assert (root / "trained-here" / "card.json").is_file() and current_version(root) == "trained-here"
    out = tmp_path / "m.json"
    assert main(["evaluate", str(tmp_path / "t.npz"), "--out", str(out)]) == 0  # the current model of $root
    assert json.loads(out.read_text())["n_tracks"] == 30
