"""`evaluate SOURCE --engine ray`: score a large table (or audio folder) with a checkpoint on Ray.

Actors load the bundle once and compute per-track probabilities with the very functions the local
path uses (`track_probabilities` for tables, `Engine.analyze` for audio); the driver gathers them
in table order and builds the report with the same `classification_report`, baseline and source
block as `evaluate_table` / `evaluate_analyses`, so the numbers are identical to `--engine local`.
The bundle travels to the actors as bytes, so cluster nodes need not see the checkpoint folder.

SOURCE: a Parquet shard folder (each actor reads whole shards; the driver only reads the first 50
tracks and streams the fingerprint), an `.npz` table, or an audio folder of genre sub-folders.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from app.jobs.evaluate import is_audio_folder
from app.jobs.ray_cluster import ActorPlan, plan_actors, ray_session
from models.classifier.bundle import CARD_FILE, WEIGHTS_FILE, load_bundle, read_card
from models.training.baseline import baseline_probabilities, fit_baseline
from models.training.data import max_slice_frames, track_probabilities
from models.training.evaluation import audio_folder_items, evaluate_analyses
from utils.audio import AudioError
from utils.constants import GENRES
from utils.metrics import classification_report
from utils.tables import EmbeddingTable, TableError, TrackFrames, load_table
from utils.tables.parquet import iter_shards, read_shard, shard_paths, shards_fingerprint

Batch = dict[str, np.ndarray]
BASELINE_KEYS = ("accuracy", "macro_f1", "weighted_f1", "mAP", "roc_auc", "ece", "per_genre", "confusion_matrix")


def bundle_files(folder: Path) -> dict[str, bytes]:
    """The files an actor needs to load the bundle (checked against the card's sha256 there)."""
    return {name: (folder / name).read_bytes() for name in (CARD_FILE, WEIGHTS_FILE)}


@contextmanager
def materialise(files: dict[str, bytes]) -> Iterator[Path]:
    """The bundle files in a private temp folder on the worker's node, removed once the actor has loaded them.

    (One folder per actor per run was left behind in /tmp before.)
    """
    with tempfile.TemporaryDirectory(prefix="genre-lens-bundle-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        yield Path(tmp)


def _objects(values: list[np.ndarray]) -> np.ndarray:
    """A 1-d object array of arrays (ragged column)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class ScoreActor:
    """Loads the classifier once; per-track probabilities exactly as `evaluate_table` computes them.

    A batch is either shard paths (the actor reads them: no vectors cross the object store) or
    tracks (from an `.npz` table the driver already holds).
    """

    def __init__(self, files: dict[str, bytes], device: str, frame_s: float, max_frames: int,
                 wanted: set[str] | None = None) -> None:
        with materialise(files) as folder:
            self.model, _ = load_bundle(folder, device)
        self.frame_s, self.max_frames, self.wanted = frame_s, max_frames, wanted

    def __call__(self, batch: Batch) -> Batch:
        """Probabilities and track-mean embedding (for the baseline) of each track, with its place."""
        if "path" in batch:
            places, tracks = [], []
            for part, path in zip(batch["part"], batch["path"], strict=True):
                shard = read_shard(str(path), self.wanted).tracks()
                places += [(int(part), i) for i in range(len(shard))]
                tracks += shard
        else:
            places = list(zip(batch["part"].tolist(), batch["pos"].tolist(), strict=True))
            tracks = [TrackFrames(str(t), str(g), np.asarray(v, np.float32), np.asarray(s, np.float32))
                      for t, g, v, s in zip(batch["track_id"], batch["genre"], batch["vectors"],
                                            batch["frame_start_s"], strict=True)]
        if not tracks:
            return {"part": np.zeros(0, np.int64), "pos": np.zeros(0, np.int64), "track_id": np.array([], str),
                    "genre": np.array([], str), "probabilities": np.zeros((0, len(GENRES))),
                    "mean": np.zeros((0, 0), np.float32)}
        return {"part": np.array([p for p, _ in places], np.int64), "pos": np.array([i for _, i in places], np.int64),
                "track_id": np.array([t.track_id for t in tracks]), "genre": np.array([t.genre for t in tracks]),
                "probabilities": track_probabilities(self.model, tracks, self.frame_s, self.max_frames),
                "mean": np.stack([t.vectors.mean(0) for t in tracks])}


class AnalyzeActor:
    """Holds an `Engine` (embedder + classifier): audio evaluation through the Analyze page's path."""

    def __init__(self, files: dict[str, bytes], device: str) -> None:
        from app.engine import Engine

        with materialise(files) as folder:  # the engine holds everything it needs once built
            self.engine = Engine(checkpoint=folder, device=device)

    def __call__(self, batch: Batch) -> Batch:
        """Probabilities and slice embeddings per file, or the reason it failed."""
        n_labels = len(GENRES)
        probs, embeddings, errors = [], [], []
        for path in batch["path"]:
            p, e, error = np.zeros(n_labels), np.zeros((0, 0), np.float32), ""
            try:
                a = self.engine.analyze(str(path))
                p, e = a.probabilities, a.slice_embeddings.reshape(-1, a.slice_embeddings.shape[-1])
            except AudioError as exc:
                error = str(exc)
            probs.append(np.asarray(p, np.float64))
            embeddings.append(np.asarray(e, np.float32))
            errors.append(error)
        return {"pos": batch["pos"], "probabilities": np.stack(probs), "embeddings": _objects(embeddings),
                "error": np.array(errors)}


def _collect(ds: Any) -> dict[str, list[Any]]:
    """All output rows of a dataset, column by column (rows may be ragged arrays)."""
    cols: dict[str, list[Any]] = {}
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for k, v in batch.items():
            cols.setdefault(k, []).extend(list(v))
    return cols


def _head_table(source: Path, wanted: set[str] | None) -> tuple[EmbeddingTable, list[Path] | None]:
    """The table (npz) or its first 50 tracks and shard list (Parquet folder)."""
    if not source.is_dir():
        table = load_table(source)
        return (table.subset(wanted) if wanted is not None else table), None
    paths = shard_paths(source)
    if not paths:
        raise TableError(f"No Parquet shards (*.parquet) in {source}.")
    parts, n = [], 0
    for part in iter_shards(paths, wanted):  # max_slice_frames looks at the first 50 tracks
        parts.append(part)
        n += len(part.track_ids())
        if n >= 50:
            break
    return EmbeddingTable.concat(parts, parts[0].meta), paths


def evaluate_table_ray(
    ray: Any, source: Path, folder: Path, plan: ActorPlan, wanted: set[str] | None,
    train_table: EmbeddingTable | None, seed: int,
) -> dict[str, Any]:
    """`evaluate_table(model, table, train_table, seed)`, with the scoring on Ray actors."""
    from ray.data import ActorPoolStrategy

    head, paths = _head_table(source, wanted)
    if not len(head.track_id):
        raise ValueError(f"{source} has no tracks to evaluate.")
    f = max_slice_frames(head)
    with ThreadPoolExecutor(1) as pool:
        fingerprint = pool.submit(shards_fingerprint, paths, wanted) if paths else None
        if paths is None:
            ds = ray.data.from_items([{"part": 0, "pos": i, "track_id": t.track_id, "genre": t.genre,
                                       "vectors": t.vectors, "frame_start_s": t.frame_start_s}
                                      for i, t in enumerate(head.tracks())])
        else:
            ds = ray.data.from_items([{"part": i, "path": str(p.absolute())} for i, p in enumerate(paths)],
                                     override_num_blocks=min(len(paths), 16 * plan.actors))
        ds = ds.map_batches(
            ScoreActor, fn_constructor_kwargs={"files": bundle_files(folder), "device": plan.device,
                                               "frame_s": head.frame_seconds, "max_frames": f, "wanted": wanted},
            batch_size=1 if paths else 32, batch_format="numpy", compute=ActorPoolStrategy(size=plan.actors),
            num_cpus=plan.num_cpus, num_gpus=plan.num_gpus or None,
        )
        out = _collect(ds)
        fp = fingerprint.result() if fingerprint else head.fingerprint()
    if not out:
        raise ValueError(f"No track of {source} was scored.")
    order = np.lexsort((out["pos"], out["part"]))
    ids, genres = [str(out["track_id"][i]) for i in order], [str(out["genre"][i]) for i in order]
    report = classification_report(genres, np.stack([out["probabilities"][i] for i in order]), ids)
    base = [t for t in train_table.tracks() if t.genre in GENRES] if train_table is not None else None
    if base:
        model, c = fit_baseline(base, seed=seed)
        means = [TrackFrames(t, g, m[None, :], np.zeros(1, np.float32))
                 for t, g, m in zip(ids, genres, [out["mean"][i] for i in order], strict=True)]
        b = classification_report(genres, baseline_probabilities(model, means), ids)
        report["baseline"] = {"name": "logistic regression on track-mean embeddings", "C": c,
                              **{k: b[k] for k in BASELINE_KEYS}}
    report["source"] = {"kind": "table", "embedder": head.embedder_id, "fingerprint": fp}
    return report


def evaluate_audio_ray(
    ray: Any, source: Path, folder: Path, plan: ActorPlan, wanted: set[str] | None,
    train_table: EmbeddingTable | None, seed: int, list_name: str | None,
) -> dict[str, Any]:
    """The local audio-folder evaluation (`Engine.analyze` per file), with the files spread over actors."""
    from ray.data import ActorPoolStrategy

    items = [(p, g) for p, g in audio_folder_items(source) if wanted is None or p.stem in wanted]
    if not items:
        raise ValueError("No audio could be evaluated.")
    ds = ray.data.from_items([{"pos": i, "path": str(p.absolute())} for i, (p, _) in enumerate(items)],
                             override_num_blocks=min(len(items), 16 * plan.actors))
    ds = ds.map_batches(
        AnalyzeActor, fn_constructor_kwargs={"files": bundle_files(folder), "device": plan.device},
        batch_size=1, batch_format="numpy", compute=ActorPoolStrategy(size=plan.actors),
        num_cpus=plan.num_cpus, num_gpus=plan.num_gpus or None,
    )
    out = _collect(ds)
    rows, failed = [], []
    for k in np.argsort(out["pos"]):
        path, genre = items[int(out["pos"][k])]
        if out["error"][k]:
            failed.append((str(path), str(out["error"][k])))
        else:
            analysis = SimpleNamespace(probabilities=out["probabilities"][k], slice_embeddings=out["embeddings"][k])
            rows.append((path.stem, genre, analysis))
    report = evaluate_analyses(rows, train_table, seed)
    report["failed"] = failed
    report["source"] = {"kind": "audio", "folder": source.name, "list": list_name}
    return report


def evaluate_with_ray(
    source: Path,
    bundle: Path,
    *,
    train_table: EmbeddingTable | None = None,
    wanted: set[str] | None = None,
    list_name: str | None = None,
    address: str | None = None,
    device: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The report `app.jobs.evaluate.evaluate_source` gives, computed by actors on a Ray cluster."""
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist.")
    is_table = not is_audio_folder(source)
    with ray_session(address) as ray:
        resources = ray.cluster_resources()
        if is_table:  # the classifier is small: CPU actors unless --device cuda asks otherwise
            plan = plan_actors(resources, device or "cpu")
            report = evaluate_table_ray(ray, source, bundle, plan, wanted, train_table, seed)
        else:
            plan = plan_actors(resources, device)
            report = evaluate_audio_ray(ray, source, bundle, plan, wanted, train_table, seed, list_name)
    card = read_card(bundle)
    report["model"] = {"version": card.version, "weights_sha256": card.weights_sha256}
    return report
