"""The `trust` sub-command: parse flags, call app/jobs/trust.py, print one line per result."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import command_line
from models.classifier.bundle import checkpoint_root, resolve_bundle
from utils.tables import load_table, load_tables, read_id_list


def register(sub: argparse._SubParsersAction) -> None:
    """Add `trust` to the CLI."""
    p = sub.add_parser("trust", help="choose and measure a bundle's decision threshold and not-music detector")
    p.add_argument("--checkpoint", default=None, help="bundle to equip (default: the current model)")
    p.add_argument("--train-table", type=Path, nargs="+", required=True,
                   help="training table(s): the detector's statistics")
    p.add_argument("--valid-table", type=Path, required=True,
                   help="validation table: the detector's threshold and, with --selection, the decision threshold")
    p.add_argument("--selection", required=True,
                   help="a bundle trained without the validation tracks (its valid predictions choose the threshold)")
    p.add_argument("--test-table", type=Path, default=None, help="report how many test tracks are flagged")
    p.add_argument("--music", type=Path, nargs="*", default=[], help="audio folders of real music to check")
    p.add_argument("--audio", type=Path, default=None, help="GTZAN audio folder (genre sub-folders) to check")
    p.add_argument("--audio-list", type=Path, default=None, help="with --audio: only the tracks of this split list")
    p.add_argument("--root", type=Path, default=None, help="checkpoints folder (default: models/checkpoints)")
    p.set_defaults(handler=trust)


def trust(args: argparse.Namespace) -> int:
    """Build trust.json + novelty.npz in the bundle and print what was measured."""
    from app.jobs.trust import build_trust

    if args.audio_list is not None and args.audio is None:  # it was ignored without a word
        raise ValueError(f"--audio-list {args.audio_list} only chooses tracks of an --audio folder; "
                         "add --audio FOLDER or leave --audio-list out.")
    root = args.root or checkpoint_root()
    bundle = resolve_bundle(args.checkpoint, root)
    selection = resolve_bundle(args.selection, root)
    wanted = None
    if args.audio_list is not None:
        wanted = set(read_id_list(args.audio_list))
    names = {"training": f"--train-table {' '.join(map(str, args.train_table))}",
             "validation": f"--valid-table {args.valid_table}", "test": f"--test-table {args.test_table}"}
    report = build_trust(bundle, load_tables(args.train_table), load_table(args.valid_table), selection,
                         load_table(args.test_table) if args.test_table else None, tuple(args.music),
                         wanted, args.audio, command=command_line(), names=names)
    for key, m in report["measured"].items():
        if "rate" in m:
            print(f"{key}: {m['flagged']} of {m['n']} flagged not music ({m['rate']:.1%})")
        else:
            print(f"{key}: {m['not_music']} of {m['n']} flagged not music ({m['flagged_rate']:.1%}); "
                  f"verdicts {m['verdicts']}")
    print(f"wrote {bundle.name}/trust.json and novelty.npz in {report['seconds']:.0f} s")
    return 0
