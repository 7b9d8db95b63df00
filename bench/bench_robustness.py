"""Robustness: accuracy and verdict mix of the 50 valid-list gtzan_mini clips, clean and degraded.

Usage: python bench/bench_robustness.py [--checkpoint BUNDLE | --recipe JSON] [--clips 50] [--only NAME ...]
                                        [--no-context] [--no-loudness] [--record-in VERSION] [--json]
The model must never have trained on these clips: by default the current model's selection model (train
split only), rebuilt here in a temporary folder from docs/recipes/<current version>.json, with the current
bundle's trust settings (its not-music detector was fitted on train and its thresholds chosen on valid with
that same selection model). `--recipe` trains the selection model from another recipe instead (a setting
the README compares), still with the current bundle's trust files. Every degraded file goes through the
real engine (decode, resample, loudness normalisation, MusiCNN, head, verdict). The last line is JSON with
`mean_drop_points` (mean accuracy drop from clean over the degradations, in points), each degradation's
accuracy and not-music rate, and whether the goals hold (drop <= 5 points, not-music <= 5 % under every
degradation). Two context rows follow the degradations and stay out of the mean: the clips played 6 %
faster and slower by resampling (`utils.degrade.SPEED_CHANGES`), the pitch and tempo change without the
phase vocoder; `--no-context` skips them. `--record-in VERSION` stores the summary in that bundle's card
(`evaluation.robustness`), where the Metrics page shows it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.engine import Engine  # noqa: E402
from models.classifier.bundle import CheckpointError, checkpoint_root, resolve_bundle, update_card  # noqa: E402
from models.novelty import NOVELTY_FILE  # noqa: E402
from models.trust import TRUST_FILE  # noqa: E402
from models.verdict import NOT_MUSIC, VERDICTS  # noqa: E402
from utils.degrade import DEGRADATIONS, SPEED_CHANGES  # noqa: E402
from utils.nonmusic import wav_bytes  # noqa: E402
from utils.tables import read_id_list  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
MINI = SHARED / "gtzan_mini"
VALID_LIST = SHARED / "gtzan_ff_msd_musicnn" / "valid_filtered.txt"
POOL = SHARED / "gtzan_musicnn_pool"
RECIPES = ROOT / "docs" / "recipes"
GOAL_DROP_POINTS = 5.0
GOAL_NOT_MUSIC = 0.05
CONDITIONS = DEGRADATIONS | SPEED_CHANGES


def valid_clips(limit: int) -> list[tuple[Path, str]]:
    """(path, genre) of the gtzan_mini clips in the valid list, sorted."""
    listed = set(read_id_list(VALID_LIST))
    clips = sorted((p, p.parent.name) for p in MINI.rglob("*.flac") if p.stem in listed)
    return clips[:limit]


def selection_bundle(tmp: Path, recipe: Path | None = None) -> Path:
    """Train a train-only selection model (default: the current model's recipe), with the current trust files."""
    current = resolve_bundle(None, checkpoint_root())
    recipe = recipe or RECIPES / f"{current.name}.json"
    if not recipe.is_file():
        raise SystemExit(f"no recipe {recipe} for {current.name}: pass --checkpoint BUNDLE or --recipe JSON")
    cmd = [sys.executable, "-m", "app", "train", "--table", str(POOL / "train.npz"), "--valid", str(POOL / "valid.npz"),
           "--config", str(recipe), "--root", str(tmp), "--version", f"{recipe.stem}-select", "--no-set-current",
           "--seed", "0"]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    bundle = tmp / f"{recipe.stem}-select"
    for name in (TRUST_FILE, NOVELTY_FILE):
        if (current / name).is_file():
            shutil.copy(current / name, bundle / name)
    return bundle


def run(engine: Engine, clips: list[tuple[Path, str]], conditions: list[str]) -> dict[str, dict]:
    """Accuracy and verdict counts per condition ('clean' first)."""
    out = {}
    audio = [(sf.read(p, dtype="float32")[0], sf.info(p).samplerate, g, p.stem) for p, g in clips]
    for cond in conditions:
        t0, right, verdicts = time.perf_counter(), 0, Counter()
        for y, sr, genre, stem in audio:
            data = wav_bytes(y, sr) if cond == "clean" else CONDITIONS[cond](y, sr)
            a = engine.analyze(data, filename=f"{stem}-{cond}")
            right += a.top_genre == genre
            verdicts[a.verdict.kind] += 1
        n = len(audio)
        out[cond] = {"accuracy": right / n, "not_music_rate": verdicts[NOT_MUSIC] / n,
                     "verdicts": {v: verdicts[v] for v in VERDICTS}, "seconds": time.perf_counter() - t0}
        print(f"  {cond}: {right}/{n} right, verdicts {dict(verdicts)} ({out[cond]['seconds']:.0f} s)",
              file=sys.stderr, flush=True)
    return out


def main() -> int:
    """Parse flags, run every condition, print the table and the JSON line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", default=None, help="a bundle that never trained on the valid clips")
    which.add_argument("--recipe", type=Path, default=None,
                       help="train the selection model from this recipe (default: the current model's)")
    ap.add_argument("--clips", type=int, default=50)
    ap.add_argument("--only", nargs="*", default=None, choices=sorted(CONDITIONS),
                    help="a subset of degradations (and context rows)")
    ap.add_argument("--no-context", action="store_true", help="skip the speed-change context rows")
    ap.add_argument("--no-loudness", action="store_true", help="turn the engine's loudness normalisation off")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--record-in", default=None, metavar="VERSION",
                    help="store the summary in this bundle's card (a version name or a folder)")
    ap.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    args = ap.parse_args()
    if not VALID_LIST.is_file() or not MINI.is_dir():
        print("needs ../shared/data/gtzan_mini and the split lists beside this checkout", file=sys.stderr)
        return 2
    try:  # before a 10-minute run, not after it
        target = resolve_bundle(args.record_in, checkpoint_root()) if args.record_in else None
    except CheckpointError as exc:
        print(f"--record-in: {exc}", file=sys.stderr)
        return 2
    clips = valid_clips(args.clips)
    conditions = ["clean", *(args.only or [*DEGRADATIONS, *([] if args.no_context else SPEED_CHANGES)])]
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(args.checkpoint) if args.checkpoint else selection_bundle(Path(tmp), args.recipe)
        engine = Engine(checkpoint=bundle, device=args.device, normalise_loudness=not args.no_loudness,
                        cache_size=1)
        results = run(engine, clips, conditions)
    clean = results["clean"]["accuracy"]
    print(f"\n{len(clips)} valid-list gtzan_mini clips, model {engine.card.version} (never trained on them), "
          f"loudness normalisation {'off' if args.no_loudness else 'on'}")
    print(f"{'condition':<22}{'accuracy':>9}{'drop':>7}   genre  uncertain  not_music")
    degraded = [c for c in results if c in DEGRADATIONS]
    context = [c for c in results if c in SPEED_CHANGES]
    for cond in ["clean", *degraded, *context]:
        if context and cond == context[0]:
            print("context, not in the mean (pitch and tempo together by resampling, no phase vocoder):")
        r, v = results[cond], results[cond]["verdicts"]
        print(f"{cond:<22}{r['accuracy']:>8.1%}{100 * (clean - r['accuracy']):>+7.1f}   {v['genre']:>5}  "
              f"{v['uncertain']:>9}  {v['not_music']:>9}")
    drop = float(np.mean([100 * (clean - results[c]["accuracy"]) for c in degraded])) if degraded else 0.0
    worst_nm = max((results[c]["not_music_rate"] for c in degraded), default=0.0)
    summary = {"model": engine.card.version, "clips": len(clips), "loudness_normalisation": not args.no_loudness,
               "clean_accuracy": clean, "mean_drop_points": round(drop, 2),
               "accuracy": {c: results[c]["accuracy"] for c in degraded},
               "context_accuracy": {c: results[c]["accuracy"] for c in context},
               "not_music_rate": {c: results[c]["not_music_rate"] for c in results},
               "verdicts": {c: results[c]["verdicts"] for c in results},
               "goals_met": drop <= GOAL_DROP_POINTS and worst_nm <= GOAL_NOT_MUSIC}
    print(f"mean drop {drop:.1f} points (goal <= {GOAL_DROP_POINTS:g}); worst not-music rate {worst_nm:.0%} "
          f"(goal <= {GOAL_NOT_MUSIC:.0%})")
    if target is not None:
        record(target, summary, worst_nm, args.checkpoint is None)
    print(json.dumps(summary))
    return 0


def record(bundle: Path, summary: dict, worst_not_music: float, selection_model: bool) -> None:
    """Store the run's headline numbers in a card, with the command that made them."""
    entry = {k: summary[k] for k in ("clips", "clean_accuracy", "mean_drop_points", "accuracy", "context_accuracy")}
    entry |= {"evaluated_model": summary["model"], "selection_model": selection_model,
              "worst_not_music_rate": worst_not_music, "goal_drop_points": GOAL_DROP_POINTS,
              "loudness_normalisation": summary["loudness_normalisation"],
              "command": shlex.join(["python", "bench/bench_robustness.py", *sys.argv[1:]])}
    update_card(bundle, lambda card: card.evaluation.__setitem__("robustness", entry))
    print(f"recorded in {bundle / 'card.json'} (evaluation.robustness)", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
