"""Command line: `python -m app analyze|embed|train|evaluate|...`.

Each sub-command parses its flags here and calls Streamlit-free code; errors a user can fix are
printed as one sentence with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from app import commands
from models.classifier.bundle import CheckpointError
from models.embedders.base import EmbedderError
from utils.audio import AudioError
from utils.tables import TableError

Handler = Callable[[argparse.Namespace], int]
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def add_embedder_flags(p: argparse.ArgumentParser, default: str | None = "musicnn-msd") -> None:
    """Flags that choose and configure the embedder (train defaults to the table's own)."""
    p.add_argument("--embedder", default=default, help="musicnn-msd (default) or openl3")
    p.add_argument("--musicnn-output", default="taggram", choices=["taggram", "penultimate", "pool"],
                   help="MusiCNN output: 50-d taggram (default), 200-d penultimate, or 753-d pooled mid-end "
                        "features (tables on the published 5.984 s block grid)")
    p.add_argument("--openl3-input-repr", default="mel256", choices=["mel256", "mel128"])
    p.add_argument("--openl3-content-type", default="music", choices=["music", "env"])
    p.add_argument("--openl3-hop", type=float, default=0.1, help="OpenL3 frame hop in seconds")
    p.add_argument("--openl3-weights", default=None, help="path of the official OpenL3 .h5 weights")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")


def add_precision_flag(p: argparse.ArgumentParser) -> None:
    """MusiCNN's CPU arithmetic: int8 is opt-in (issue #18); default: GENRE_LENS_PRECISION, else fp32."""
    p.add_argument("--precision", default=None, choices=["fp32", "int8"],
                   help="MusiCNN on CPU: fp32 (exact) or int8 (faster, opt-in); default: $GENRE_LENS_PRECISION or fp32")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(prog="python -m app", description="Genre Lens: music genre analysis.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("analyze", help="analyse audio files with the current model")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--checkpoint", default=None, help="bundle folder, card path or version (default: current)")
    p.add_argument("--json", action="store_true", help="print the full analyses as JSON")
    p.add_argument("--device", default=None)
    add_precision_flag(p)
    p.set_defaults(handler=commands.analyze)

    p = sub.add_parser("embed", help="write an embedding table from an audio folder or CSV")
    p.add_argument("source", type=Path, help="folder with one sub-folder per genre, or CSV of path,label")
    p.add_argument("--out", type=Path, required=True, help="embedding table (.npz) to create or extend")
    p.add_argument("--engine", default="local", choices=["local", "ray"])
    p.add_argument("--address", default=None, help="Ray cluster address (with --engine ray)")
    add_embedder_flags(p)
    add_precision_flag(p)
    p.add_argument("--workers", type=int, default=1, help="worker processes for --engine local (default 1)")
    p.set_defaults(handler=commands.embed)

    p = sub.add_parser("train", help="train the window classifier on an embedding table")
    p.add_argument("--table", type=Path, required=True, nargs="+",
                   help="training embedding table(s) (.npz); several are concatenated (same embedder)")
    p.add_argument("--test", type=Path, default=None, help="test table: evaluate once after training")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--val-list", type=Path, default=None, help="file of validation track ids (default: split)")
    group.add_argument("--valid", type=Path, default=None,
                       help="validation table: its tracks choose epochs and calibration, never train")
    group.add_argument("--no-validation", action="store_true",
                       help="train on every track for the configured epochs, with the configured temperatures "
                            "(the final fit after choosing them on --valid)")
    p.add_argument("--version", default=None, help="name of the new bundle (default: timestamped)")
    p.add_argument("--notes", default=None, help="a sentence for the model card (how this model was chosen)")
    p.add_argument("--root", type=Path, default=None, help="checkpoints folder (default: models/checkpoints)")
    p.add_argument("--no-set-current", action="store_true", help="do not make the new bundle current")
    p.add_argument("--config", type=Path, default=None, help="JSON file of TrainConfig overrides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--members", type=int, default=None,
                   help="ensemble size (default 10; 1 trains a single model on a block validation split)")
    add_embedder_flags(p, default=None)
    p.set_defaults(handler=commands.train)

    p = sub.add_parser("evaluate", help="metrics of a checkpoint on a table or an audio folder")
    p.add_argument("source", type=Path, nargs="?",
                   help="embedding table (.npz) or audio folder of genre sub-folders (not needed with --cv)")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--out", type=Path, default=None, help="metrics JSON (default: print a summary only)")
    p.add_argument("--train-table", type=Path, default=None, help="fit the baseline on this table")
    p.add_argument("--list", type=Path, default=None, help="only tracks named in this split list")
    p.add_argument("--cv", type=int, default=0, help="K-fold cross-validation on --train-table instead")
    p.add_argument("--members", type=int, default=None, help="with --cv: ensemble size to cross-validate (default 10)")
    p.add_argument("--record-as", default=None, help="store the headline numbers in the model card under this key")
    p.add_argument("--record-in", default=None,
                   help="with --record-as: the bundle (version or folder) whose card gets them (default: --checkpoint)")
    p.add_argument("--root", type=Path, default=None, help="checkpoints folder (default: models/checkpoints)")
    p.add_argument("--engine", default="local", choices=["local", "ray"])
    p.add_argument("--address", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=commands.evaluate)

    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a sub-command; user errors become one clear line and exit status 2."""
    _load_extra_commands()
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (AudioError, CheckpointError, EmbedderError, TableError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _load_extra_commands() -> None:
    """Sub-commands that live in their own modules (feedback, retrain) register themselves here."""
    import importlib

    for module in ("app.feedback_cli", "app.job_cli", "app.trust_cli"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        if mod.register not in EXTRA_COMMANDS:
            EXTRA_COMMANDS.append(mod.register)


def print_json(obj: object) -> None:
    """Print JSON to stdout."""
    print(json.dumps(obj, indent=2))
