"""Speed of the PyTorch OpenL3 port: frames/s, seconds per 30 s track, FLOPs per frame, CPU and CUDA.

Random weights: the speed of a conv net does not depend on its weight values. Each measurement runs
the whole model (front-end + network + pooling) on 48 kHz frames after a warm-up batch; seconds per
track = frames in a 30 s track at that hop / frames per second (resampling to 48 kHz excluded: the
engine does it once per file). Reference: the product's first version needed ~9.4 s per 30 s track
on a laptop GPU.

    python -m bench.bench_openl3 [--threads 2] [--frames 16] [--device cpu|cuda|all] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

if __package__ in (None, ""):  # allow `python bench/bench_openl3.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.embedders.openl3.frontend import TARGET_SR, n_frames_for
from models.embedders.openl3.network import OpenL3Model

TRACK_SECONDS = 30.0
REFERENCE_GPU_S_PER_TRACK = 9.4


def cpu_name() -> str:
    """CPU model for the report (Linux /proc/cpuinfo, else whatever platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def flops_per_frame(input_repr: str) -> int:
    """Network FLOPs for one frame (FlopCounterMode counts a multiply-add as 2), front-end excluded."""
    model = OpenL3Model(input_repr, 512, dtype=torch.float32)
    spec = model.spectrogram(torch.zeros(1, TARGET_SR))
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model.unpooled(spec)
    return int(counter.get_total_flops())


def frames_per_second(
    input_repr: str, device: str, n_frames: int, batch_size: int, repeats: int
) -> tuple[float, float]:
    """Best-of-`repeats` throughput of the whole model on `n_frames` random frames, and the share of
    the threads' time this process really got (well below 1 means a busy machine: numbers too slow)."""
    model = OpenL3Model(input_repr, 512).to(device)
    frames = np.random.default_rng(0).standard_normal((n_frames, TARGET_SR)).astype(np.float32) * 0.1
    model.embed_frames(frames[:batch_size], batch_size)  # warm-up (allocator, cuDNN autotune)
    best, share = float("inf"), 0.0
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        model.embed_frames(frames, batch_size)
        if device == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
        if wall < best:
            best, share = wall, (time.process_time() - cpu_start) / wall / torch.get_num_threads()
    return n_frames / best, share


def run(
    devices: list[str], threads: int, n_frames: int, repeats: int, reprs: tuple[str, ...] = ("mel256", "mel128")
) -> dict[str, Any]:
    """All measurements as one JSON-serialisable dict."""
    torch.set_num_threads(threads)
    results = []
    for input_repr in reprs:
        flops = flops_per_frame(input_repr)
        for device in devices:
            frames = n_frames if device == "cpu" else max(n_frames, 256)
            batch = 8 if device == "cpu" else 64
            fps, share = frames_per_second(input_repr, device, frames, batch, repeats)
            per_track = {
                str(hop): n_frames_for(int(TRACK_SECONDS * TARGET_SR), round(hop * TARGET_SR), center=True) / fps
                for hop in (0.1, 0.5)
            }
            results.append(
                {
                    "device": device,
                    "input_repr": input_repr,
                    "frames_per_s": fps,
                    "s_per_30s_track": per_track,
                    "gflops_per_frame": flops / 1e9,
                    "frames_measured": frames,
                    "amp": device == "cuda",
                    "cpu_share": share,
                    # what the threads would do with the machine to themselves (CPU time based)
                    "frames_per_s_idle_estimate": fps / share if device == "cpu" and share > 0 else fps,
                }
            )
            busy = device == "cpu" and share < 0.8
            print(
                f"{device:4s} {input_repr}: {fps:7.2f} frames/s, {flops / 1e9:5.1f} GFLOP/frame, "
                f"30 s track: {per_track['0.1']:7.2f} s at hop 0.1, {per_track['0.5']:6.2f} s at hop 0.5"
                + (
                    f"  (busy machine: got {share:.0%} of {threads} threads, ~{fps / share:.2f} frames/s idle)"
                    if busy
                    else ""
                ),
                flush=True,
            )
    return {
        "bench": "openl3",
        "threads": threads,
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cuda_device": torch.cuda.get_device_name() if "cuda" in devices else None,
        "reference_gpu_s_per_30s_track": REFERENCE_GPU_S_PER_TRACK,
        "results": results,
    }


def main(argv: list[str] | None = None) -> None:
    """CLI entry point; `--json` prints one JSON object as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16, help="frames per CPU measurement (CUDA: >= 256)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--device", choices=["cpu", "cuda", "all"], default="all", help="'all' = CPU, plus CUDA when available"
    )
    parser.add_argument("--input-repr", choices=["mel256", "mel128", "all"], default="all")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if not torch.cuda.is_available():
        if args.device == "cuda":
            parser.error("CUDA is not available")
        devices = ["cpu"]
    reprs = ("mel256", "mel128") if args.input_repr == "all" else (args.input_repr,)
    report = run(devices, args.threads, args.frames, args.repeats, reprs)
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
