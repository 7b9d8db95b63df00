"""Benchmark what a rerun of the Analyze page costs for the linked player vs the static charts.

Usage: python bench/bench_player.py [--repeats 20] [--minutes 10] [--json]
Analyses the first-run example (30 s) and a synthetic track of `--minutes` through a warm engine
on CPU (random weights when no model is installed: sizes and times do not depend on them), then, in the
same run, times building the player's arguments (`app.ui.player.payload.player_args`) and the three
static plotly figures it replaces (timeline, spectrogram, slice strip) with their JSON, and reports
medians and the payload each sends to the browser (the audio not counted: both modes send it once).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.analysis import Analysis  # noqa: E402
from app.ui import charts  # noqa: E402
from app.ui.player.payload import player_args  # noqa: E402
from app.ui.slices import slice_strip  # noqa: E402
from app.ui.track_charts import slice_strip_figure  # noqa: E402
from bench.bench_engine import make_engine  # noqa: E402
from utils.example_audio import example_bytes  # noqa: E402


def median_s(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of fn over `repeats` calls."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def player_payload(a: Analysis) -> int:
    """Bytes the player's arguments take (JSON + byte arrays)."""
    meta, data = player_args(a, 0)
    return len(json.dumps(meta)) + sum(len(b) for b in data.values() if b)


def static_payload(a: Analysis) -> int:
    """Bytes of the three plotly figures the player replaces."""
    figs = [charts.window_timeline(a, None, 0), charts.spectrogram(a, 0), slice_strip_figure(a, slice_strip(a), 0)]
    return sum(len(f.to_json()) for f in figs)


def main() -> None:
    """Run the benchmark and print a table (and JSON with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    engine, _ = make_engine("cpu")
    long_wav = example_bytes(args.minutes * 60)
    result: dict[str, dict[str, float]] = {}
    for label, data in (("30 s example", example_bytes()), (f"{args.minutes:g} min", long_wav)):
        a = engine.analyze(data, filename=label)
        row = {
            "player_build_ms": 1000 * median_s(lambda a=a: player_payload(a), args.repeats),
            "static_build_ms": 1000 * median_s(lambda a=a: static_payload(a), args.repeats),
            "player_kb": player_payload(a) / 1000,
            "static_kb": static_payload(a) / 1000,
            "windows": len(a.windows),
        }
        row["size_ratio"] = row["static_kb"] / row["player_kb"]
        row["build_ratio"] = row["static_build_ms"] / row["player_build_ms"]
        result[label] = row
    print(f"{'track':>14} {'windows':>8} {'player ms':>10} {'static ms':>10} {'player kB':>10} {'static kB':>10}"
          f" {'static/player size':>19}")
    for label, r in result.items():
        print(f"{label:>14} {r['windows']:>8.0f} {r['player_build_ms']:>10.1f} {r['static_build_ms']:>10.1f} "
              f"{r['player_kb']:>10.0f} {r['static_kb']:>10.0f} {r['size_ratio']:>18.1f}x")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
