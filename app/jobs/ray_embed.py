"""`embed SOURCE --out FOLDER --engine ray`: a Ray Data pipeline that writes Parquet shards.

list files (driver) -> decode + resample (CPU tasks) -> embed (actors holding the embedder; GPU
actors when the cluster has GPUs) -> write shards (tasks) -> manifest back to the driver. On a
cluster without GPUs the CPU actors decode too (one actor per CPU, no audio in the object store).

Identical to `--engine local` by construction: the tasks call the same `load_audio` with the same
arguments as `app.jobs.track.embed_track`, the actors the same `embed` / `frame_starts`, and the
driver lists and filters tracks with the same `source_items` and genre check as `build_table`.
Resumable: shards are written atomically (temp file + rename) and hold whole tracks, so a re-run
reads the track ids (and genres) already in the folder and only embeds the rest. A file whose name is
taken by a track of another genre is reported, not skipped; shards keep no audio hash, so a same-genre
namesake with other audio is still skipped (the local job's `.sources.json` catches that). Two runs on
one folder take turns (`.FOLDER.lock` beside it). Failed files are listed in `FOLDER/_failures.json`
(this run's) and retried by the next run, as the local job does.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.jobs.embed import EmbedReport, source_items, table_meta, triage
from app.jobs.ray_cluster import ActorPlan, plan_actors, ray_session, tracks_per_shard
from app.jobs.table_files import table_lock
from app.jobs.track import MAX_TRACK_S
from models.embedders.base import Embedder, build_embedder
from utils.atomic import atomic_write_text
from utils.audio import AudioError, load_audio
from utils.tables import EmbeddingTable
from utils.tables.parquet import shard_meta, shard_paths, shard_track_genres, write_shard

FAILURES_FILE = "_failures.json"
Batch = dict[str, np.ndarray]


def decode_row(row: dict[str, Any], sample_rate: int) -> dict[str, Any]:
    """CPU task: decode + resample one file exactly as `embed_track` does; errors become data."""
    samples, error = np.zeros(0, np.float32), ""
    try:
        decoded = load_audio(row["path"], sample_rate, max_duration_s=MAX_TRACK_S, pad_to_s=None)
        samples = decoded.samples.astype(np.float32)
    except AudioError as exc:
        error = str(exc)
    except OSError as exc:
        error = f"could not read the file: {exc.strerror or exc}"
    except Exception as exc:  # one odd file must not end a 100,000-track job
        error = f"unexpected {type(exc).__name__}: {exc}"
    return {**row, "samples": samples, "error": error}


def _objects(values: list[np.ndarray]) -> np.ndarray:
    """A 1-d object array of arrays (ragged column) that numpy will not try to stack."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class EmbedActor:
    """Holds one embedder (loaded once per actor) and embeds whole tracks.

    With `decode_rate` set (CPU clusters) it also decodes: the work is the same either way, and
    keeping it in one process saves moving the audio through the object store.
    """

    def __init__(self, name: str, options: dict[str, Any], device: str, expected_id: str,
                 decode_rate: int | None = None) -> None:
        self.embedder = build_embedder(name, device=device, **options)
        self.decode_rate = decode_rate
        if self.embedder.id != expected_id:
            raise RuntimeError(f"worker built {self.embedder.id}, the driver {expected_id}: environments differ")

    def __call__(self, batch: Batch) -> Batch:
        """Frame vectors and start times per track, on the track-level grid (as `embed_track`)."""
        if self.decode_rate:
            rows = [decode_row({"path": str(path)}, self.decode_rate) for path in batch["path"]]
            batch = {**batch, "samples": _objects([r["samples"] for r in rows]),
                     "error": np.array([r["error"] for r in rows])}
        dim = self.embedder.dim
        vectors, starts, errors = [], [], []
        for samples, error in zip(batch["samples"], batch["error"], strict=True):
            v, s = np.zeros((0, dim), np.float32), np.zeros(0, np.float32)
            if not error:
                try:
                    v, s = self.embedder.track_frames(np.asarray(samples, np.float32))
                    v, s = v.astype(np.float32), s.astype(np.float32)
                except Exception as exc:  # e.g. out of GPU memory on a 10-minute track
                    error = f"embedding failed: {type(exc).__name__}: {exc}"
            vectors.append(v)
            starts.append(s)
            errors.append(str(error))
        keep = {k: batch[k] for k in ("order", "track_id", "path", "genre")}
        return {**keep, "vectors": _objects(vectors), "frame_start_s": _objects(starts), "error": np.array(errors)}


def write_batch(batch: Batch, folder: str, run_id: str, meta: dict[str, Any]) -> Batch:
    """CPU task: write the batch's embedded tracks as one shard; return one manifest row per track."""
    order = np.argsort(batch["order"], kind="stable")
    ok = [i for i in order if not batch["error"][i]]
    shard = ""
    if ok:
        n = [len(batch["vectors"][i]) for i in ok]
        table = EmbeddingTable(
            np.concatenate([np.asarray(batch["vectors"][i], np.float32).reshape(-1, meta["dim"]) for i in ok]),
            np.repeat(np.array([str(batch["track_id"][i]) for i in ok]), n),
            np.repeat(np.array([str(batch["genre"][i]) for i in ok]), n),
            np.concatenate([np.asarray(batch["frame_start_s"][i], np.float32) for i in ok]),
            meta,
        )
        name = f"part-{run_id}-{int(batch['order'][ok[0]]):08d}.parquet"
        shard = write_shard(Path(folder) / name, table).name
    return {
        "order": batch["order"][order],
        "track_id": batch["track_id"][order],
        "path": batch["path"][order],
        "n_frames": np.array([len(batch["vectors"][i]) for i in order], np.int64),
        "error": batch["error"][order],
        "shard": np.array([shard if not batch["error"][i] else "" for i in order]),
    }


def existing_tracks(folder: Path, embedder_id: str) -> dict[str, str]:
    """Track id -> genre of what the folder holds (the resume point); refuses another embedder's shards."""
    paths = shard_paths(folder)
    if paths:
        found = shard_meta(paths[0]).get("embedder", {}).get("id")
        if found != embedder_id:
            raise ValueError(f"{folder} holds {found} embeddings, not {embedder_id}; choose another --out.")
    return {tid: genre for p in paths for tid, genre in shard_track_genres(p).items()}


def run_pipeline(
    ray: Any, rows: list[dict[str, Any]], name: str, options: dict[str, Any], sample_rate: int,
    meta: dict[str, Any], folder: Path, plan: ActorPlan,
) -> list[dict[str, Any]]:
    """Build and run the Ray Data pipeline; returns the manifest (one dict per track)."""
    from ray.data import ActorPoolStrategy, DataContext

    ctx = DataContext.get_current()
    saved = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True  # shards then hold contiguous runs of the listing
    try:
        slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        per_block = max(1, min(16, math.ceil(len(rows) / (4 * slots))))
        ds = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / per_block))
        on_gpu = plan.num_gpus > 0
        if on_gpu:  # decode + resample in CPU tasks, so the GPU actors only embed
            ds = ds.map(decode_row, fn_kwargs={"sample_rate": sample_rate}, num_cpus=1)
        ds = ds.map_batches(
            EmbedActor,
            fn_constructor_kwargs={"name": name, "options": options, "device": plan.device,
                                   "expected_id": meta["embedder"]["id"],
                                   "decode_rate": None if on_gpu else sample_rate},
            batch_size=4, batch_format="numpy", compute=ActorPoolStrategy(size=plan.actors),
            num_cpus=plan.num_cpus, num_gpus=plan.num_gpus or None,
        )
        ds = ds.map_batches(  # light I/O: no CPU reserved, so it never waits behind the actors
            write_batch, fn_kwargs={"folder": str(folder), "run_id": _run_id(), "meta": meta},
            batch_size=tracks_per_shard(), batch_format="numpy", num_cpus=0,
        )
        manifest: list[dict[str, Any]] = []
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            manifest += [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        return manifest
    finally:
        ctx.execution_options.preserve_order = saved


def _run_id() -> str:
    """Sorts by start time, so shards of a later run come after those of an earlier one."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + uuid.uuid4().hex[:4]


def embed_with_ray(
    source: Path,
    out: Path,
    *,
    embedder: str,
    options: dict[str, Any],
    address: str | None = None,
    device: str | None = None,
    log: Callable[[str], None] | None = None,
) -> EmbedReport:
    """Embed every track of `source` not yet in the shard folder `out`; FAILURES_FILE lists what failed."""
    folder = Path(out).resolve()
    if folder.suffix.lower() == ".npz" or folder.is_file():
        raise ValueError(f"--engine ray writes a folder of Parquet shards; pass --out FOLDER, not {out}.")
    probe = build_embedder(embedder, device="cpu", **options)  # the driver only needs its meta
    meta = table_meta(probe)
    with table_lock(folder, log):  # two runs on one folder take turns: each would embed the other's tracks too
        return _embed_missing(source, folder, embedder, options, probe, meta, address, device, log)


def _embed_missing(
    source: Path, folder: Path, embedder: str, options: dict[str, Any], probe: Embedder, meta: dict[str, Any],
    address: str | None, device: str | None, log: Callable[[str], None] | None,
) -> EmbedReport:
    """The body of `embed_with_ray`, run while the folder's lock is held."""
    done = existing_tracks(folder, probe.id)
    listed, repeats = source_items(Path(source).resolve())  # shards keep no audio hashes: names by genre
    report = EmbedReport.of_listing(repeats)
    rows = [{"order": order, "track_id": tid, "path": str(Path(path).absolute()), "genre": genre}
            for order, tid, path, genre in triage(listed, folder, done, {}, report)]
    if rows:
        with ray_session(address) as ray:
            plan = plan_actors(ray.cluster_resources(), device)
            if log is not None:
                log(f"embedding {len(rows)} tracks with {plan.describe()}")
            manifest = run_pipeline(ray, rows, embedder, options, probe.sample_rate, meta, folder, plan)
        report.embedded += [str(m["track_id"]) for m in manifest if not m["error"]]
        report.failed += [(str(m["path"]), str(m["error"])) for m in manifest if m["error"]]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / FAILURES_FILE,
                      json.dumps([{"path": p, "error": e} for p, e in report.failed], indent=1))
    return report
