"""Every setting of Genre Lens in one frozen object, read from the environment (and Streamlit secrets).

Why one object: settings used to be read in seven modules, and three commands ignored
GENRE_LENS_CHECKPOINTS. Now the environment is read here only. Entry points (the CLI, each
dashboard run, jobs) call `load()` once and pass the result, or the values they need, down;
library functions whose argument is left out fall back to `load()`, so they honour the same
settings. The variables and their defaults are listed in the README ("Settings").
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.constants import PROJECT_ROOT

CHECKPOINTS_ENV = "GENRE_LENS_CHECKPOINTS"  # folder of model bundles
DATA_DIR_ENV = "GENRE_LENS_DATA"  # local data: the SQLite feedback file, sessions
DB_URL_ENV = "GENRE_LENS_DB_URL"  # SQLAlchemy URL of the feedback database
DEVICE_ENV = "GENRE_LENS_DEVICE"  # "cpu", "cuda", "cuda:1"; default: CUDA when present
CACHE_ENV = "GENRE_LENS_CACHE"  # converted weights and per-track embeddings
ADMIN_TOKEN_ENV = "GENRE_LENS_ADMIN_TOKEN"  # unlocks retraining and deletes in the dashboard
MAX_ANALYSES_ENV = "GENRE_LENS_MAX_ANALYSES"  # concurrent decodes + analyses per server
REFERENCE_ENV = "GENRE_LENS_REFERENCE_TABLE"  # the Explore map's table (default: the model's test table)
OPENL3_WEIGHTS_ENV = "GENRE_LENS_OPENL3_WEIGHTS"  # explicit OpenL3 weights file (.h5 or converted .pt)
OPENL3_URL_ENV = "GENRE_LENS_OPENL3_URL"  # OpenL3 download base URL (mirrors, tests)
RAY_ACTORS_ENV = "GENRE_LENS_RAY_ACTORS"
RAY_GPUS_PER_ACTOR_ENV = "GENRE_LENS_RAY_GPUS_PER_ACTOR"
RAY_TRACKS_PER_SHARD_ENV = "GENRE_LENS_RAY_TRACKS_PER_SHARD"
WORKER_ENV = "GENRE_LENS_WORKER"  # "off": the server starts no retrain worker thread
PLAYER_ENV = "GENRE_LENS_PLAYER"  # "static" / "off": always draw the static charts, no linked player
PRECISION_ENV = "GENRE_LENS_PRECISION"  # MusiCNN on CPU: "fp32" (default) or "int8" (opt-in, issue #18)
ADMIN_SECRET_KEY = "admin_token"  # the same token in .streamlit/secrets.toml

DEFAULT_CHECKPOINTS = PROJECT_ROOT / "models" / "checkpoints"
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
DB_FILE = "feedback.sqlite3"
DEFAULT_MAX_ANALYSES = 2  # two decodes/analyses at once keep a 2-core server responsive
DEFAULT_TRACKS_PER_SHARD = 256
PRECISIONS = ("fp32", "int8")


OFF_WORDS = ("0", "off", "false", "no", "disabled", "disable", "none", "never")  # what switches a feature off


def _text(environ: Mapping[str, str], name: str) -> str | None:
    """A variable's value, None when unset or blank."""
    value = environ.get(name, "").strip()
    return value or None


def _path(value: str) -> Path:
    """A path from a variable, with ~ expanded where it can be (`~nosuchuser/x` stays literal, never a crash)."""
    try:
        return Path(value).expanduser()
    except RuntimeError:  # an unknown user's home
        return Path(value)


def _number(environ: Mapping[str, str], name: str, default: float, kind: type, minimum: float) -> Any:
    """A numeric variable; unparsable or out-of-range values fall back to the default (never a crash)."""
    try:
        value = kind(environ.get(name, "") or default)
    except (ValueError, OverflowError):
        return default
    return value if math.isfinite(value) and value >= minimum else default


def _precision(environ: Mapping[str, str]) -> str:
    """GENRE_LENS_PRECISION; like every setting here an unknown value falls back to the default, which
    is also the exact one (fp32), so a typo can only cost speed, never change a verdict."""
    value = (_text(environ, PRECISION_ENV) or "fp32").lower()
    return value if value in PRECISIONS else "fp32"


@dataclass(frozen=True)
class Settings:
    """The resolved settings; build with `load()` (or `from_env` with a mapping in tests)."""

    checkpoints: Path = DEFAULT_CHECKPOINTS
    data_dir: Path = DEFAULT_DATA_DIR
    db_url: str = f"sqlite:///{DEFAULT_DATA_DIR / DB_FILE}"
    device: str | None = None  # None: CUDA when present, else CPU
    cache_dir: Path = Path.home() / ".cache" / "genre-lens"
    admin_token: str | None = None
    max_analyses: int = DEFAULT_MAX_ANALYSES
    reference_table: Path | None = None
    openl3_weights: Path | None = None
    openl3_url: str | None = None
    ray_actors: int = 0  # 0: one per GPU (or CPU)
    ray_gpus_per_actor: float = 1.0
    ray_tracks_per_shard: int = DEFAULT_TRACKS_PER_SHARD
    worker: bool = True  # the server runs queued retrain jobs in a thread
    player: bool = True  # the linked player (False: static charts)
    precision: str = "fp32"  # MusiCNN's CPU arithmetic; int8 is opt-in until checked on the test tracks

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None) -> Settings:
        """Settings from `environ` (default: os.environ) and, for the admin token, Streamlit `secrets`."""
        env = os.environ if environ is None else environ
        data_dir = _path(_text(env, DATA_DIR_ENV) or str(DEFAULT_DATA_DIR))
        cache = _text(env, CACHE_ENV)
        token = _text(env, ADMIN_TOKEN_ENV)
        if token is None and secrets is not None:
            token = str(secrets.get(ADMIN_SECRET_KEY) or "").strip() or None
        reference = _text(env, REFERENCE_ENV)
        weights = _text(env, OPENL3_WEIGHTS_ENV)
        return cls(
            checkpoints=_path(_text(env, CHECKPOINTS_ENV) or str(DEFAULT_CHECKPOINTS)),
            data_dir=data_dir,
            db_url=_text(env, DB_URL_ENV) or f"sqlite:///{data_dir / DB_FILE}",
            device=_text(env, DEVICE_ENV),
            cache_dir=_path(cache) if cache else Path.home() / ".cache" / "genre-lens",
            admin_token=token,
            max_analyses=_number(env, MAX_ANALYSES_ENV, DEFAULT_MAX_ANALYSES, int, 1),
            reference_table=_path(reference) if reference else None,
            openl3_weights=_path(weights) if weights else None,
            openl3_url=_text(env, OPENL3_URL_ENV),
            ray_actors=_number(env, RAY_ACTORS_ENV, 0, int, 0),
            ray_gpus_per_actor=_number(env, RAY_GPUS_PER_ACTOR_ENV, 1.0, float, 1e-3),
            ray_tracks_per_shard=_number(env, RAY_TRACKS_PER_SHARD_ENV, DEFAULT_TRACKS_PER_SHARD, int, 1),
            worker=(_text(env, WORKER_ENV) or "on").lower() not in OFF_WORDS,
            player=(_text(env, PLAYER_ENV) or "on").lower() not in ("static", *OFF_WORDS),
            precision=_precision(env),
        )


def load(secrets: Mapping[str, Any] | None = None) -> Settings:
    """The settings now (cheap: a handful of environment lookups, so tests may change them)."""
    return Settings.from_env(secrets=secrets)
