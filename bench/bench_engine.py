"""Benchmark the engine on a 30 s track: per-stage medians, end-to-end time, throughput and FLOPs.

Usage: python bench/bench_engine.py [--repeats 7] [--threads 2] [--device cpu|cuda] [--no-int8] [--json]
Speed does not depend on the classifier's weight values, so without a trained bundle a randomly
initialised one is used (and the output says so). Medians, because shared machines are noisy; on
CPU the fp32 and int8 engines run alternately in the same run (issue #18), so the ratio is fair.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.engine import Engine  # noqa: E402
from models.classifier.bundle import CheckpointError, ModelCard, save_bundle  # noqa: E402
from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN  # noqa: E402
from models.classifier.predict import predict_windows  # noqa: E402
from models.embedders.base import build_embedder  # noqa: E402
from utils.audio import load_audio  # noqa: E402
from utils.constants import GENRES  # noqa: E402
from utils.spectrogram import display_spectrogram  # noqa: E402
from utils.windows import cut_slices, plan_windows  # noqa: E402

CLIP = ROOT.parent / "shared" / "data" / "gtzan_mini" / "rock" / "rock.00000.flac"


def median_s(fn: Callable[[], object], repeats: int, sync: bool) -> float:
    """Median wall time of fn after one warm-up call."""
    times = []
    for i in range(repeats + 1):
        t = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def clip_bytes() -> tuple[bytes, str]:
    """A real 30 s GTZAN clip when ../shared is present, else 30 s of generated music."""
    if CLIP.exists():
        return CLIP.read_bytes(), CLIP.name
    sys.path.insert(0, str(ROOT / "tests"))
    from tests.helpers.data import synth_music, wav_bytes

    return wav_bytes(synth_music(30.0), 22050), "generated 30 s"


def make_engine(device: str, precision: str = "fp32") -> tuple[Engine, str]:
    """The current bundle, or a random-weights one (same speed) when none is trained yet."""
    try:
        return Engine(device=device, precision=precision), "current bundle"
    except CheckpointError:
        emb = build_embedder("musicnn-msd", device=device, precision=precision)
        root = Path(tempfile.mkdtemp())
        card = ModelCard("bench", list(GENRES), {"name": "musicnn-msd", "id": emb.id, "options": {}}, {})
        save_bundle(ParallelCNN(ClassifierConfig(input_dim=emb.dim)), card, root)
        return Engine(checkpoint=root / "bench", device=device, embedder=emb), "random weights (no bundle yet)"


def alternating_medians(fns: dict[str, Callable[[], object]], repeats: int, sync: bool) -> dict[str, float]:
    """Median wall time of each fn, run in turn (a, b, a, b, ...) after one warm-up round.

    Alternating, so that load from other jobs on a shared machine hits every side alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(repeats + 1):
        for key, fn in fns.items():
            t = time.perf_counter()
            fn()
            if sync:
                torch.cuda.synchronize()
            if i:
                times[key].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print a table (and JSON with --json)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-int8", action="store_true", help="skip the int8 engine (it exists on CPU only)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sync = args.device.startswith("cuda")
    data, clip_name = clip_bytes()

    t = time.perf_counter()
    engine, model_kind = make_engine(args.device)
    load_s = time.perf_counter() - t
    engines = {"fp32": engine}
    if not args.no_int8 and args.device == "cpu":
        engines["int8"] = make_engine(args.device, "int8")[0]
    emb = engine.embedder
    decoded = load_audio(data, emb.sample_rate)
    plan = plan_windows(len(decoded.samples) / emb.sample_rate)
    slices = cut_slices(decoded.samples, emb.sample_rate, plan.slice_starts)
    embeddings = emb.embed(slices)
    windows = embeddings[plan.window_slices]

    stages = {"decode_resample": median_s(lambda: load_audio(data, emb.sample_rate), args.repeats, False)}
    from models.embedders.musicnn.embedder import MusiCNNEmbedder
    from models.embedders.musicnn.frontend import N_MELS, PATCH_FRAMES, logmel
    from models.embedders.musicnn.weights import load_msd_musicnn

    if isinstance(emb, MusiCNNEmbedder):
        stages["logmel"] = median_s(lambda: [logmel(s) for s in slices], args.repeats, sync)
    embed_s = alternating_medians({p: (lambda e=e: e.embedder.embed(slices)) for p, e in engines.items()},
                                  args.repeats, sync)
    stages |= {f"embedder_total_{p}" if p != "fp32" else "embedder_total": v for p, v in embed_s.items()}
    stages["classifier"] = median_s(lambda: predict_windows(engine.model, windows), args.repeats, sync)
    stages["spectrogram"] = median_s(lambda: display_spectrogram(decoded.samples, emb.sample_rate), args.repeats,
                                     False)

    embed_in_run: dict[str, list[float]] = {p: [] for p in engines}  # the embedder's part of each timed analysis

    def fresh(precision: str) -> None:
        e = engines[precision]
        e._cache.clear()
        embed_in_run[precision].append(e.analyze(data, filename=clip_name).timings_s["embed"])

    ends = alternating_medians({p: (lambda p=p: fresh(p)) for p in engines}, args.repeats, sync)
    share = {p: statistics.median(v[1:]) / ends[p] for p, v in embed_in_run.items()}  # v[0]: the warm-up
    end_to_end = ends["fp32"]
    cached = median_s(lambda: engine.analyze(data, filename=clip_name), args.repeats, False)
    audio_s = len(decoded.samples) / emb.sample_rate

    flops = FlopCounterMode(display=False)
    net = load_msd_musicnn(args.device) if isinstance(emb, MusiCNNEmbedder) else None
    flops_per_audio_s = None
    if net is not None:
        n_patches = embeddings.shape[0] * embeddings.shape[1]
        x = torch.zeros(n_patches, PATCH_FRAMES, N_MELS, device=args.device)
        with flops, torch.inference_mode():
            net(x)
        flops_per_audio_s = flops.get_total_flops() / audio_s

    result = {
        "device": args.device,
        "threads": args.threads,
        "clip": clip_name,
        "model": model_kind,
        "embedder": emb.id,
        "engine_load_s": round(load_s, 3),
        "stages_median_s": {k: round(v, 4) for k, v in stages.items()},
        "seconds_per_30s_track": round(end_to_end * 30.0 / audio_s, 4),
        "seconds_per_30s_track_by_precision": {p: round(v * 30.0 / audio_s, 4) for p, v in ends.items()},
        "embedder_share": {p: round(v, 3) for p, v in share.items()},
        "int8_speedup": round(ends["fp32"] / ends["int8"], 2) if "int8" in ends else None,
        "int8_embedder": engines["int8"].embedder.id if "int8" in engines else None,
        "cached_reanalysis_s": round(cached, 5),
        "tracks_per_second": round(1.0 / end_to_end, 3),
        "realtime_factor": round(audio_s / end_to_end, 1),
        "patches_per_track": int(embeddings.shape[0] * embeddings.shape[1]),
        "embedder_gflops_per_audio_second": None if flops_per_audio_s is None else round(flops_per_audio_s / 1e9, 3),
        "speedup_vs_tensorflow_reference": None,  # only bench_reference.py, running it side by side, gives one
    }
    print(f"Genre Lens engine benchmark ({args.device}, {args.threads} threads, {clip_name}, {model_kind})")
    print(f"  engine load (cold)         {load_s:8.3f} s")
    for k, v in stages.items():
        print(f"  {k:<26} {v * 1000:8.1f} ms (median of {args.repeats})")
    for p, v in ends.items():
        print(f"  end to end, 30 s track, {p} {v * 30.0 / audio_s:8.3f} s   ({audio_s / v:.1f}x real time; "
              f"embedder {100 * share[p]:.0f} % of it)")
    if result["int8_speedup"]:
        print(f"  int8 vs fp32, same run     {result['int8_speedup']:8.2f}x")
    print(f"  cached re-analysis         {cached * 1000:8.2f} ms")
    print("  vs TensorFlow MSD_musicnn  no ratio here: bench/bench_reference.py --reference-python PY measures one")
    if flops_per_audio_s:
        print(f"  embedder FLOPs             {flops_per_audio_s / 1e9:8.2f} GFLOP per audio second")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
