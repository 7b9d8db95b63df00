"""Command line: `python -m app analyze|embed|train|evaluate|feedback|retrain|worker|nuisance|trust`.

Each family registers its sub-commands from its own module; errors a user can fix are printed as
one sentence with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys

from app.cli import analyze, dataset, feedback, jobs, nuisance, trust
from app.cli.common import remember_invocation
from models.classifier.bundle import CheckpointError
from models.embedders.base import EmbedderError
from utils.audio import AudioError
from utils.tables import TableError

FAMILIES = (analyze, dataset, feedback, jobs, nuisance, trust)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(prog="python -m app", description="Genre Lens: music genre analysis.")
    sub = parser.add_subparsers(dest="command", required=True)
    for family in FAMILIES:
        family.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a sub-command; user errors become one clear line and exit status 2."""
    args = build_parser().parse_args(argv)
    remember_invocation(argv)
    try:
        return int(args.handler(args) or 0)
    except (AudioError, CheckpointError, EmbedderError, TableError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
