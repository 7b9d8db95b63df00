"""`--engine ray`: the batch jobs (embed, evaluate) on a Ray cluster instead of one process.

Why Ray: a 100,000-track collection outgrows one machine, and Ray Data already does the hard
parts (streaming between CPU and GPU stages, back-pressure, retries, scheduling on a cluster).
This module connects to Ray and sizes the actor pools; the pipelines live in `app.jobs.ray_embed` and
`app.jobs.ray_evaluate`, which import this module (never the other way round). Ray is an optional
extra (`requirements-ray.txt`): nothing imports it until `--engine ray` is used.

Sizing can be overridden with environment variables (see docs/ray.md):
`GENRE_LENS_RAY_ACTORS` (actor count), `GENRE_LENS_RAY_GPUS_PER_ACTOR` (e.g. 0.5 to put two
actors on each GPU), `GENRE_LENS_RAY_TRACKS_PER_SHARD` (tracks per written Parquet shard).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from utils import settings
from utils.text import plural

ROOT = Path(__file__).resolve().parents[2]
# What a remote cluster does not need of the checkout: only app/, models/ (code), utils/ travel.
RUNTIME_EXCLUDES = [
    ".venv/", ".git/", "data/", "tests/", "bench/", "docs/", "pages/", "test-artifacts/", "models/checkpoints/",
    "**/__pycache__/", ".hypothesis/", ".pytest_cache/", ".ruff_cache/", "*.npz", "*.parquet", "*.wav", "*.mp3",
]


class RayUnavailableError(ValueError):
    """`--engine ray` was asked for but Ray is not installed (a user error: exit status 2)."""


def require_ray() -> ModuleType:
    """The `ray` module (with Ray Data), or a one-line instruction to install the extra."""
    try:
        import ray
        import ray.data  # Ray Data is the part we need
    except ModuleNotFoundError as exc:
        raise RayUnavailableError(
            "--engine ray needs Ray, which is not installed: pip install -r requirements-ray.txt "
            "(or use --engine local)."
        ) from exc
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[ModuleType]:
    """Use the running Ray (tests, notebooks), else connect to `address` (or start a local one).

    With an address the checkout's code travels to the cluster as the job's working_dir, so the
    nodes only need the Python environment (requirements.txt + requirements-ray.txt + musicnn).
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if address:
        runtime_env = {"working_dir": str(ROOT), "excludes": RUNTIME_EXCLUDES}
    else:  # a local cluster: workers import the checkout in place
        pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        runtime_env = {"env_vars": {"PYTHONPATH": pythonpath}}
    ray.init(address=address, runtime_env=runtime_env, include_dashboard=False, log_to_driver=True)
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class ActorPlan:
    """How many model actors to start and what each one holds."""

    actors: int
    num_cpus: float
    num_gpus: float
    device: str

    def describe(self) -> str:
        """One line for the log."""
        each = f"{self.num_gpus:g} GPU" if self.num_gpus else f"{self.num_cpus:g} CPU"
        return f"{plural(self.actors, 'actor')} on {self.device}, {each} each"


def plan_actors(resources: dict[str, float], device: str | None = None) -> ActorPlan:
    """GPU actors when the cluster has GPUs (unless --device cpu), else one CPU actor per CPU.

    GPU actors leave the other CPUs to the decode tasks; CPU actors decode their own tracks
    (decoding + resampling a 30 s track costs ~2% of embedding it on one core).
    """
    config = settings.load()
    env_actors = config.ray_actors
    gpus = float(resources.get("GPU", 0.0))
    cpus = float(resources.get("CPU", 1.0))
    want_gpu = device is None or device.startswith("cuda")
    if gpus > 0 and want_gpu:
        per = config.ray_gpus_per_actor
        actors = env_actors or max(1, int(gpus / per))
        if actors >= cpus:
            raise ValueError(f"{actors} GPU actors leave none of the cluster's {cpus:g} CPUs for decoding.")
        return ActorPlan(actors, 1.0, per, "cuda")
    if device and device.startswith("cuda"):
        raise ValueError(f"--device {device} was asked for, but the Ray cluster has no GPUs.")
    return ActorPlan(env_actors or max(1, int(cpus)), 1.0, 0.0, "cpu")


def tracks_per_shard() -> int:
    """Tracks written per Parquet shard: larger shards, fewer files; smaller, finer resume points."""
    return settings.load().ray_tracks_per_shard
