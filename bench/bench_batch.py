"""Batch throughput: `python -m app embed` on a folder of tracks, in tracks per second.

Usage: python bench/bench_batch.py [--tracks 40] [--configs fp32:1,fp32:2,int8:1,int8:2]
                                   [--reference-python PY] [--rounds 1] [--source DIR] [--json]

Each configuration (precision:workers) runs the real command, `python -m app embed DIR --out T
--precision P --workers N`, on the same folder with an empty embedding cache, so every track is
decoded and embedded (MusiCNN taggrams: 28 patches per 30 s track, the reference's own patching at
input_overlap=1). The wall time includes starting Python and loading the model, as a user sees it.
Configurations alternate within each round, every other round in reverse order (a round takes
minutes, and load drift favours whatever runs last); medians over rounds. With --reference-python the
original TensorFlow extractor embeds the same tracks in one warm worker process (its start and
graph build included, like the command's). Default folder: the 40 train-list clips of
../shared/data/gtzan_mini, linked (never copied) into a temporary folder. Last line: JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_reference import INPUT_LENGTH, INPUT_OVERLAP, Reference  # noqa: E402
from models.embedders.musicnn.int8_calibrate import train_clips  # noqa: E402


def default_tracks(n: int, folder: Path) -> Path:
    """`folder` with genre sub-folders of symlinks to the first n gtzan_mini train-list clips."""
    clips = train_clips()
    if len(clips) < n:
        raise SystemExit(f"only {len(clips)} train-list clips in ../shared/data/gtzan_mini; pass --source DIR")
    for clip in clips[:n]:
        (folder / clip.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / clip.parent.name / clip.name).symlink_to(clip)
    return folder


def run_embed(source: Path, precision: str, workers: int, work: Path) -> tuple[float, int]:
    """(wall seconds, tracks embedded) of one `python -m app embed` with a fresh cache."""
    cache, out = Path(tempfile.mkdtemp(dir=work)), work / f"table-{precision}-{workers}-{time.monotonic_ns()}.npz"
    env = dict(os.environ, GENRE_LENS_CACHE=str(cache))
    cmd = [sys.executable, "-m", "app", "embed", str(source), "--out", str(out), "--precision", precision,
           "--workers", str(workers), "--device", "cpu"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return seconds, int(proc.stdout.split()[0])  # "N embedded, ..."


def run_reference(python: str, source: Path, work: Path) -> tuple[float, int]:
    """(wall seconds, tracks) of the TensorFlow extractor on every track, worker start included."""
    tracks = sorted(source.glob("*/*"))
    t = time.perf_counter()
    ref = Reference(python)
    try:
        for track in tracks:
            ref.ask(cmd="extract", path=str(track), input_length=INPUT_LENGTH, input_overlap=INPUT_OVERLAP,
                    out=str(work / "ref.npy"))
    finally:
        ref.close()
    return time.perf_counter() - t, len(tracks)


def main(argv: list[str] | None = None) -> int:
    """Run every configuration, alternating, and print tracks per second."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=40)
    ap.add_argument("--source", type=Path, default=None, help="folder of genre sub-folders (default: gtzan_mini)")
    ap.add_argument("--configs", default="fp32:1,fp32:2,int8:1,int8:2", help="precision:workers, comma-separated")
    ap.add_argument("--reference-python", default=None)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    source = args.source or default_tracks(args.tracks, work / "tracks")
    configs = [(p, int(w)) for p, w in (c.split(":") for c in args.configs.split(","))]
    names = [f"{p}:{w}" for p, w in configs] + ["reference"] * bool(args.reference_python)
    times: dict[str, list[float]] = {name: [] for name in names}
    counts: dict[str, int] = {}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:  # odd rounds backwards: load drift hits all alike
            if name == "reference":
                seconds, n = run_reference(args.reference_python, source, work)
            else:
                precision, workers = name.split(":")
                seconds, n = run_embed(source, precision, int(workers), work)
            times[name].append(seconds)
            counts[name] = n
    result: dict[str, Any] = {"tracks": counts.get(names[0]), "rounds": args.rounds, "cpus": os.cpu_count(),
                              "runs": {}}
    print(f"python -m app embed on {result['tracks']} tracks ({os.cpu_count()} CPUs), fresh cache, "
          f"median of {args.rounds} round(s), start-up included")
    for name in names:
        med = statistics.median(times[name])
        result["runs"][name] = {"seconds": round(med, 2), "tracks_per_s": round(counts[name] / med, 3),
                                "times_s": [round(t, 2) for t in times[name]]}
        label = "reference (TensorFlow, 1 process)" if name == "reference" else \
            f"{name.split(':')[0]}, {name.split(':')[1]} worker(s)"
        print(f"  {label:<36} {med:7.1f} s  {counts[name] / med:6.2f} tracks/s")
    if not args.reference_python:
        print("  reference: not run, no ratio measured (give --reference-python PY, see docs/reference.md)")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
