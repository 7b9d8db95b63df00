"""Benchmark saliency (gradient × input through MusiCNN + classifier) for a 30 s track.

Usage: python bench/bench_saliency.py [--repeats 5] [--threads 2] [--device cpu|cuda] [--json]
Reports the median wall time of `app.explain.explain` (re-decode, log-mel, forward + backward,
resampling to the display grid) and its CPU time (steadier on a shared machine), beside the
engine's own analysis of the same clip for scale, the stock-`amax` network's forward + backward for
comparison, and the peak resident memory. Speed does not depend on the classifier's weights, so a
random-weights bundle stands in when none is installed.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.explain import explain  # noqa: E402
from bench.bench_engine import clip_bytes, make_engine, median_s  # noqa: E402
from models.classifier.saliency import embed_logmels  # noqa: E402
from utils.audio import load_audio  # noqa: E402
from utils.windows import cut_slices, plan_windows  # noqa: E402


def median_cpu_s(fn: Callable[[], object], repeats: int) -> float:
    """Median process CPU time of fn (all threads): steadier than wall time on a shared machine."""
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)


def main() -> None:
    """Run the benchmark and print a table (and JSON with --json)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sync = args.device.startswith("cuda")
    data, clip_name = clip_bytes()
    engine, model_kind = make_engine(args.device)
    analysis = engine.analyze(data, filename=clip_name)

    def fresh_analysis() -> None:
        engine._cache.clear()
        engine.analyze(data, filename=clip_name)

    saliency_s = median_s(lambda: explain(engine, analysis, audio=data), args.repeats, sync)
    saliency_cpu = median_cpu_s(lambda: explain(engine, analysis, audio=data), args.repeats)
    analyse_s = median_s(fresh_analysis, args.repeats, sync)

    decoded = load_audio(data, engine.embedder.sample_rate)
    plan = plan_windows(len(decoded.samples) / decoded.sample_rate)
    slices = torch.from_numpy(cut_slices(decoded.samples, decoded.sample_rate, plan.slice_starts))
    with torch.no_grad():
        mel = engine.embedder.frontend(slices.to(engine.device))

    def backward(net: torch.nn.Module) -> None:
        x = mel.clone().requires_grad_(True)
        torch.autograd.grad(embed_logmels(net, x, engine.embedder.output).sum(), x)

    backward_s = median_s(lambda: backward(engine.embedder.model), args.repeats, sync)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    audio_s = len(decoded.samples) / decoded.sample_rate
    result = {
        "device": args.device,
        "threads": args.threads,
        "clip": clip_name,
        "model": model_kind,
        "audio_s": round(audio_s, 2),
        "slices": int(len(plan.slice_starts)),
        "saliency_median_s": round(saliency_s, 3),
        "saliency_cpu_s": round(saliency_cpu, 3),
        "analysis_median_s": round(analyse_s, 3),
        "saliency_over_analysis": round(saliency_s / analyse_s, 2),
        "musicnn_fwd_bwd_s": round(backward_s, 3),
        "peak_rss_mb": round(peak_mb),
        "map_shape": list(np.shape(explain(engine, analysis, audio=data).map)),
    }
    print(f"Saliency benchmark ({args.device}, {args.threads} threads, {clip_name}, {model_kind}, {audio_s:.0f} s)")
    print(f"  saliency (explain), median of {args.repeats}   {saliency_s:7.2f} s")
    print(f"  saliency CPU time (all threads)       {saliency_cpu:7.2f} s")
    print(f"  analysis of the same clip             {analyse_s:7.2f} s   (saliency = {saliency_s / analyse_s:.1f}x)")
    print(f"  MusiCNN forward+backward              {backward_s:7.2f} s")
    print(f"  peak resident memory                  {peak_mb:7.0f} MB")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
