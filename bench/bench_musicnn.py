"""Benchmark the MSD-MusiCNN port: log-mel front-end and network, per device, plus FLOPs per audio second.

Usage: python -m bench.bench_musicnn [--threads 2] [--repeats 7] [--json]
Tells whether the embedder keeps up with the engine (5 s slices) and with whole 30 s tracks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.embedders.musicnn.frontend import (
    HOP,
    HOP_SECONDS,
    N_FFT,
    N_MELS,
    PATCH_FRAMES,
    PATCH_HOP_FRAMES,
    SR,
    LogMel,
)
from models.embedders.musicnn.weights import load_msd_musicnn


def _times_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> tuple[float, float]:
    """(median, min) wall time of `fn` after one warm-up call, synchronising CUDA so the clock is honest.

    The min is reported too because on a shared 2-core box other processes inflate the median a lot.
    """
    times = []
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append((time.perf_counter() - start) * 1e3)
    return round(statistics.median(times), 2), round(min(times), 2)


def _patches(mel: torch.Tensor) -> torch.Tensor:
    """(B, T, 96) log-mel -> (B * P, 187, 96) patches every 61 frames, as the embedder makes them."""
    p = mel.unfold(1, PATCH_FRAMES, PATCH_HOP_FRAMES).transpose(2, 3)
    return p.reshape(-1, PATCH_FRAMES, N_MELS)


def _librosa_logmel(audio: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(y=audio, sr=SR, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS)
    return np.log10(10000 * mel.T + 1)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of conv/matmul (2 x MACs, as FlopCounterMode counts them) that `fn` runs."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        fn()
    return int(counter.get_total_flops())


def bench_device(device: torch.device, repeats: int, slices: int) -> list[dict[str, object]]:
    """Time log-mel and network for a 30 s clip and a batch of 5 s slices on `device`.

    `network` is what the embedder runs (`sliding_features`: timbral convs shared between overlapping
    patches); `cut-out` is the plain forward of the same patches cut out of the log-mel.
    """
    model = load_msd_musicnn(device)
    frontend = LogMel().to(device)
    rng = np.random.default_rng(0)
    cases = {
        "30s clip": rng.standard_normal((1, 30 * SR)),
        f"{slices}x5s slices": rng.standard_normal((slices, 5 * SR)),
    }
    rows = []
    for case, audio in cases.items():
        audio = (0.1 * audio).astype(np.float32)
        x = torch.from_numpy(audio).to(device)
        with torch.inference_mode():
            mel = frontend(x)
            patches = _patches(mel)
            logmel = _times_ms(lambda x=x: frontend(x), repeats, device)
            network = _times_ms(lambda m=mel: model.sliding_features(m)["taggram"], repeats, device)
            cutout = _times_ms(lambda p=patches: model(p), repeats, device)
        row: dict[str, object] = {
            "device": str(device),
            "case": case,
            "patches": int(patches.shape[0]),
            "logmel_ms": logmel[0],
            "logmel_min_ms": logmel[1],
            "network_ms": network[0],
            "network_min_ms": network[1],
            "cutout_network_ms": cutout[0],
            "cutout_network_min_ms": cutout[1],
            "x_realtime": round(audio.size / SR / ((logmel[0] + network[0]) / 1e3), 1),
        }
        if device.type == "cpu":
            lib = _times_ms(lambda a=audio: [_librosa_logmel(s) for s in a], repeats, device)
            row["librosa_logmel_ms"], row["librosa_logmel_min_ms"] = lib
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--slices", type=int, default=8, help="5 s slices per engine batch")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = [row for device in devices for row in bench_device(device, args.repeats, args.slices)]
    model = load_msd_musicnn("cpu")
    patch_flops = count_flops(lambda: model(torch.zeros(1, PATCH_FRAMES, N_MELS)))
    clip_mel = torch.zeros(1, 1 + 30 * SR // HOP, N_MELS)
    clip_flops = count_flops(lambda: model.sliding_features(clip_mel))
    result: dict[str, object] = {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gflops_per_patch": round(patch_flops / 1e9, 3),
        # one patch per 0.976 s hop when each patch runs on its own; what sharing leaves on a 30 s clip
        "gflops_per_audio_second_cutout": round(patch_flops / HOP_SECONDS / 1e9, 3),
        "gflops_per_audio_second": round(clip_flops / 30 / 1e9, 3),
        "rows": rows,
    }

    print(f"MSD-MusiCNN, torch {torch.__version__}, {result['threads']} CPU threads")
    print(
        f"network: {result['gflops_per_patch']} GFLOP/patch; per second of audio at the 61-frame hop: "
        f"{result['gflops_per_audio_second']} GFLOP shared, {result['gflops_per_audio_second_cutout']} cut-out"
    )
    print("median ms (min ms)")
    print(
        f"{'device':<7}{'case':<16}{'patches':>8}{'logmel':>18}{'librosa logmel':>18}"
        f"{'network':>20}{'cut-out network':>20}{'x realtime':>12}"
    )
    for r in rows:

        def pair(key: str, r: dict[str, object] = r) -> str:
            return f"{r[key + '_ms']} ({r[key + '_min_ms']})" if key + "_ms" in r else "-"

        print(
            f"{r['device']:<7}{r['case']:<16}{r['patches']:>8}{pair('logmel'):>18}"
            f"{pair('librosa_logmel'):>18}{pair('network'):>20}{pair('cutout_network'):>20}"
            f"{r['x_realtime']:>12}"
        )
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
