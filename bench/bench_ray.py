"""Benchmark `embed --engine local` against `--engine ray` on the same generated collection.

Usage:
  python bench/bench_ray.py [--tracks 32] [--seconds 30] [--workers 1,2] [--json]
  python bench/bench_ray.py --address auto --workers 4,8,16 --source /shared/collection   # a cluster

Locally each `--workers N` starts a fresh Ray with `num_cpus=N`; with `--address` it connects to
that cluster and N is the number of embed actors (GENRE_LENS_RAY_ACTORS). Tracks per second count
the whole job, actor start-up (model load) included, but not `ray.init`, which is reported
apart. The per-track decode and embed costs are measured too: they decide how many CPUs a CPU
cluster keeps for decode tasks. The per-track embedding cache is pointed at an empty folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.jobs.embed import build_table, list_source  # noqa: E402
from app.jobs.track import MAX_TRACK_S  # noqa: E402
from models.embedders.base import build_embedder  # noqa: E402
from tests.helpers.data import synth_music  # noqa: E402
from utils.audio import load_audio  # noqa: E402
from utils.constants import GENRES  # noqa: E402


def make_collection(folder: Path, tracks: int, seconds: float) -> Path:
    """`tracks` generated WAV files (22.05 kHz, so decoding includes resampling) in genre folders."""
    for i in range(tracks):
        genre = GENRES[i % len(GENRES)]
        (folder / genre).mkdir(parents=True, exist_ok=True)
        sf.write(folder / genre / f"{genre}.{i:05d}.wav", synth_music(seconds, seed=i), 22050)
    return folder


def stage_costs(source: Path, n: int = 3) -> dict[str, float]:
    """Median seconds per track of decode + resample and of embedding, on one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    embedder = build_embedder("musicnn-msd", device="cpu")
    files = [path for _, path, _ in list_source(source)[:n]]
    decode, embed = [], []
    for f in files:
        t = time.perf_counter()
        d = load_audio(f, embedder.sample_rate, max_duration_s=MAX_TRACK_S, pad_to_s=None)
        decode.append(time.perf_counter() - t)
        t = time.perf_counter()
        embedder.embed(d.samples[None, :])
        embed.append(time.perf_counter() - t)
    torch.set_num_threads(threads)
    return {"decode_s": float(np.median(decode)), "embed_s_1thread": float(np.median(embed))}


def bench_local(source: Path, work: Path, tracks: int) -> dict[str, float]:
    """`--engine local` (one process, torch's default threads)."""
    embedder = build_embedder("musicnn-msd", device="cpu")
    t = time.perf_counter()
    report = build_table(embedder, source, work / "local.npz")
    elapsed = time.perf_counter() - t
    assert len(report.embedded) == tracks, report.failed
    return {"engine": "local", "workers": 1, "seconds": elapsed, "tracks_per_s": tracks / elapsed}


def bench_ray(source: Path, work: Path, tracks: int, workers: int, address: str | None) -> dict[str, float]:
    """`--engine ray` on a fresh local Ray with `workers` CPUs, or on the cluster at `address`."""
    import ray

    from app.jobs.ray_embed import embed_with_ray

    t = time.perf_counter()
    if address:
        os.environ["GENRE_LENS_RAY_ACTORS"] = str(workers)
        ray.init(address=address, include_dashboard=False)
    else:
        ray.init(num_cpus=workers, include_dashboard=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    init_s = time.perf_counter() - t
    out = work / f"ray-{workers}"
    try:
        t = time.perf_counter()
        report = embed_with_ray(source, out, embedder="musicnn-msd", options={"output": "taggram"})
        elapsed = time.perf_counter() - t
        assert not report.failed, report.failed
    finally:
        ray.shutdown()
        os.environ.pop("GENRE_LENS_RAY_ACTORS", None)
    from utils.tables.parquet import read_parquet_table

    assert len(read_parquet_table(out).track_ids()) == tracks
    return {"engine": "ray", "workers": workers, "seconds": elapsed, "tracks_per_s": tracks / elapsed,
            "ray_init_s": init_s}


def main() -> int:
    """Run the benchmark and print a table (or JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracks", type=int, default=32)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--workers", default="1,2", help="comma-separated: local Ray CPUs, or actors with --address")
    p.add_argument("--address", default=None, help="Ray cluster address (auto, ray://host:10001)")
    p.add_argument("--source", type=Path, default=None, help="existing collection (on a shared filesystem)")
    p.add_argument("--skip-local", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    os.environ["GENRE_LENS_CACHE"] = str(work / "cache")
    try:
        source = args.source or make_collection(work / "src", args.tracks, args.seconds)
        tracks = args.tracks if args.source is None else len(list_source(source))
        rows = [] if args.skip_local else [bench_local(source, work, tracks)]
        for w in (int(x) for x in args.workers.split(",")):
            rows.append(bench_ray(source, work, tracks, w, args.address))
        costs = stage_costs(source)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # generated audio, tables and cache; never --source
    result = {"tracks": tracks, "seconds_per_track": args.seconds, "cpus": os.cpu_count(),
              "load_average_1min": os.getloadavg()[0], **costs, "runs": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{tracks} tracks of {args.seconds:g} s; {os.cpu_count()} CPUs (load {result['load_average_1min']:.1f}); "
          f"per track: decode {costs['decode_s'] * 1000:.0f} ms, "
          f"embed {costs['embed_s_1thread'] * 1000:.0f} ms (1 thread)")
    print(f"{'engine':8} {'workers':>7} {'seconds':>8} {'tracks/s':>9} {'ray.init s':>10}")
    for r in rows:
        init = f"{r['ray_init_s']:.1f}" if "ray_init_s" in r else "-"
        print(f"{r['engine']:8} {r['workers']:>7} {r['seconds']:>8.1f} {r['tracks_per_s']:>9.2f} {init:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
