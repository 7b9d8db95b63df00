"""How far everyday changes move a track's mean embedding, against the distance between two tracks.

Usage: python bench/bench_shift_sizes.py [--clips 10] [--only NAME ...] [--json]
Train-list gtzan_mini clips (never the robustness bench's valid-list ones) are embedded clean and changed
by the nuisance job's own loop (`app.jobs.nuisance.measure_shifts`: the engine's decode, resample,
loudness normalisation, 5 s slices and MusiCNN's pooled features), and each shift is standardised with
the pooled training table's statistics (its live columns only). Per change it prints the median size of
a clip's shift, the size of the mean shift (the part every clip shares), and the first as a share of the
median distance between two training tracks.

Why: the robustness bench's pitch and tempo rows use librosa's phase vocoder. This measures how much of
their shift is the vocoder's smearing (vocoder changes of very different amounts move a track about as far)
and how much is the change itself (a resampled speed change moves pitch and tempo with no vocoder), which is
what a vocoder-aware head would have to undo. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.spatial.distance import pdist

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.jobs.embed import list_source  # noqa: E402
from app.jobs.nuisance import measure_shifts  # noqa: E402
from models.embedders.base import build_embedder  # noqa: E402
from utils.constants import DEAD_STD  # noqa: E402
from utils.degrade import SPEED_CHANGES, as_wav, speed  # noqa: E402
from utils.everyday import CHANGES  # noqa: E402
from utils.tables import load_table, read_id_list  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
MINI = SHARED / "gtzan_mini"
TRAIN_LIST = SHARED / "gtzan_ff_msd_musicnn" / "train_filtered.txt"
POOL_TRAIN = SHARED / "gtzan_musicnn_pool" / "train.npz"
OFFSET_S = 1.5

Change = Callable[[np.ndarray, int], bytes]
MEASURED: dict[str, tuple[str, Change]] = {  # name -> (what it is, the change)
    "pitch_+0.5": ("vocoder pitch +0.5 semitone", CHANGES["pitch_+0.5"]),
    "pitch_+2": ("vocoder pitch +2 semitones", CHANGES["pitch_+2"]),
    "tempo_+4%": ("vocoder tempo +4 %", CHANGES["tempo_+4%"]),
    "speed_+3%": ("speed +3 % (resampled)", speed(1.03)),
    "speed_+6%": ("speed +6 % (resampled)", SPEED_CHANGES["speed_+6%"]),
    "offset_1.5s": (f"start {OFFSET_S:g} s later", as_wav(lambda y, sr: y[int(OFFSET_S * sr):])),
    "mp3_128k": ("MP3 128 kbps", CHANGES["mp3_128k"]),
}


def training_scale() -> tuple[np.ndarray, np.ndarray, float]:
    """Spread of the training blocks, their live columns, and the median distance between two tracks."""
    table = load_table(POOL_TRAIN)
    blocks = np.concatenate([t.vectors for t in table.tracks()]).astype(np.float64)
    std = blocks.std(0, ddof=1)
    live = std >= DEAD_STD
    tracks = np.stack([t.vectors.mean(0) for t in table.tracks()])[:, live] / std[live]  # distances: no centring
    return std, live, float(np.median(pdist(tracks)))


def main() -> int:
    """Embed, measure, print the table and the JSON line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=10, help="how many train-list clips (spread over the list)")
    ap.add_argument("--only", nargs="*", default=None, choices=sorted(MEASURED), help="a subset of the changes")
    ap.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    args = ap.parse_args()
    if not (MINI.is_dir() and TRAIN_LIST.is_file() and POOL_TRAIN.is_file()):
        print("needs ../shared/data/gtzan_mini, the split lists and gtzan_musicnn_pool beside this checkout",
              file=sys.stderr)
        return 2
    wanted = set(read_id_list(TRAIN_LIST))
    clips = [(tid, path) for tid, path, _ in list_source(MINI) if tid in wanted]
    clips = [clips[int(i)] for i in np.linspace(0, len(clips) - 1, min(args.clips, len(clips)))]
    changes = {name: MEASURED[name][1] for name in (args.only or MEASURED)}
    std, live, track_gap = training_scale()
    embedder = build_embedder("musicnn-msd", device="cpu", output="pool")
    t0 = time.perf_counter()

    def progress(done: int, total: int, clip_id: str) -> None:
        print(f"  {done}/{total} {clip_id} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    measured, failed = measure_shifts(embedder, clips, changes, progress=progress)
    for clip_id, reason in failed:
        print(f"  skipped {clip_id}: {reason}", file=sys.stderr)
    standardised = measured.shifts[:, live] / std[live]  # a difference: the training mean cancels
    n_clips = len(set(measured.clips.tolist()))
    rows = {}
    print(f"\n{n_clips} train-list clips; median distance between two training tracks {track_gap:.1f} "
          f"(standardised, {int(live.sum())} live columns)")
    print(f"{'change':<30}{'median shift':>13}{'mean shift':>12}{'share of track gap':>20}")
    label = {name: what for name, (what, _) in MEASURED.items()}
    for name in changes:
        d = standardised[measured.changes == name]
        size, shared = float(np.median(np.linalg.norm(d, axis=1))), float(np.linalg.norm(d.mean(0)))
        rows[name] = {"median_shift": round(size, 2), "mean_shift": round(shared, 2),
                      "share_of_track_gap": round(size / track_gap, 3)}
        print(f"{label[name]:<30}{size:>13.1f}{shared:>12.1f}{size / track_gap:>19.0%}")
    print(json.dumps({"clips": n_clips, "median_track_gap": round(track_gap, 2), "changes": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
