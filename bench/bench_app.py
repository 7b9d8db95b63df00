"""What a dashboard user waits for: cold start, a cached re-analysis, and a new clip on a warm engine.

    .venv/bin/python bench/bench_app.py [--runs 3] [--checkpoint VERSION_OR_PATH] [--device cpu] [--json]

Cold start runs in a fresh interpreter each time (imports + `Engine(...)` + the first 30 s analysis),
as after a server restart. Warm numbers come from one engine in this process: the same bytes again
(the engine's sha256 cache) and clips it has not seen. Medians over `--runs`. Without a trained
model it times a random-weights bundle (timings only: the classifier is a tiny part of the cost).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MINI = ROOT.parent / "shared" / "data" / "gtzan_mini"


def clips(n: int) -> list[tuple[str, bytes]]:
    """n distinct 30 s clips: real GTZAN ones when ../shared is here, else synthetic ones."""
    found = sorted(MINI.glob("*/*.flac")) if MINI.exists() else []
    found = found[:: max(1, len(found) // max(n, 1))]  # spread over genres
    if len(found) >= n:
        return [(p.name, p.read_bytes()) for p in found[:n]]
    import io

    import numpy as np
    import soundfile as sf

    out = []
    for seed in range(n):
        t = np.arange(30 * 22050) / 22050
        y = 0.2 * np.sin(2 * np.pi * (220 + 40 * seed) * t) + 0.02 * np.random.default_rng(seed).standard_normal(t.size)
        buf = io.BytesIO()
        sf.write(buf, y.astype("float32"), 22050, format="WAV")
        out.append((f"synth-{seed}.wav", buf.getvalue()))
    return out


def dev_bundle(folder: Path) -> Path:
    """A random-weights bundle for timing when no trained model is installed."""
    from models.classifier.bundle import ModelCard, save_bundle
    from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN
    from models.embedders.musicnn.embedder import MusiCNNEmbedder
    from utils.constants import GENRES

    embedder_id = f"{MusiCNNEmbedder.name}/taggram/v1"
    card = ModelCard(version="bench-random-weights", labels=list(GENRES), classifier={}, notes="timing only",
                     embedder={"name": MusiCNNEmbedder.name, "id": embedder_id, "options": {"output": "taggram"}})
    return save_bundle(ParallelCNN(ClassifierConfig(input_dim=50)), card, folder)


def cold_once(checkpoint: str, device: str | None, clip: str) -> dict[str, float]:
    """One cold start in this (fresh) interpreter; called by the parent through `--cold-once`."""
    t0 = time.perf_counter()
    from app.engine import Engine

    t1 = time.perf_counter()
    engine = Engine(checkpoint=checkpoint, device=device)
    t2 = time.perf_counter()
    engine.analyze(Path(clip).read_bytes(), filename=Path(clip).name)
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "engine_init_s": t2 - t1, "first_analysis_s": t3 - t2, "cold_total_s": t3 - t0}


def run_cold(checkpoint: str, device: str | None, clip: Path, runs: int) -> dict[str, float]:
    """Median cold start over `runs` fresh interpreters."""
    samples = []
    for _ in range(runs):
        cmd = [sys.executable, __file__, "--cold-once", "--checkpoint", checkpoint, "--clip", str(clip)]
        if device:
            cmd += ["--device", device]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {k: statistics.median(s[k] for s in samples) for k in samples[0]}


def run_warm(checkpoint: str, device: str | None, runs: int) -> dict[str, float]:
    """Median re-analysis (cache hit) and new-clip analysis on one warm engine."""
    from app.engine import Engine

    engine = Engine(checkpoint=checkpoint, device=device)
    data = clips(runs + 1)
    engine.analyze(data[0][1], filename=data[0][0])  # warm-up: the first call pays lazy initialisation
    hits, fresh = [], []
    for _ in range(runs):
        t = time.perf_counter()
        engine.analyze(data[0][1], filename=data[0][0])
        hits.append(time.perf_counter() - t)
    for name, blob in data[1:]:
        t = time.perf_counter()
        engine.analyze(blob, filename=name)
        fresh.append(time.perf_counter() - t)
    return {"warm_cache_hit_s": statistics.median(hits), "warm_new_clip_s": statistics.median(fresh),
            "device": str(engine.device), "model": engine.model_id}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print a summary (and JSON as the last line with --json)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--checkpoint", default=None, help="bundle folder or version (default: current, else random)")
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--cold-once", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--clip", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cold_once:
        print(json.dumps(cold_once(args.checkpoint, args.device, args.clip)))
        return 0

    from models.classifier.bundle import CheckpointError, resolve_bundle

    with tempfile.TemporaryDirectory() as tmp:
        try:
            checkpoint, random_weights = str(resolve_bundle(args.checkpoint)), False
        except CheckpointError:
            if args.checkpoint:
                raise
            checkpoint, random_weights = str(dev_bundle(Path(tmp))), True
        clip = Path(tmp) / clips(1)[0][0]
        clip.write_bytes(clips(1)[0][1])
        result = {**run_cold(checkpoint, args.device, clip, args.runs), **run_warm(checkpoint, args.device, args.runs),
                  "runs": args.runs, "random_weights": random_weights, "clip_s": 30}
    for key, value in result.items():
        print(f"{key:>20}: {value:.3f}" if isinstance(value, float) else f"{key:>20}: {value}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
