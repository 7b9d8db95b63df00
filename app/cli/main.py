"""Command line: `python -m app analyze|embed|train|evaluate|feedback|retrain|worker|nuisance|trust`.

Each family registers its sub-commands from its own module; errors a user can fix are printed as
one sentence with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from app.cli import analyze, dataset, feedback, jobs, nuisance, trust
from app.cli.common import os_error_line, remember_invocation
from models.classifier.bundle import CheckpointError
from models.embedders.base import EmbedderError
from utils.audio import AudioError
from utils.tables import TableError
from utils.text import terminal_text

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
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a closed pipe (`| head`) shows here, not as a traceback at interpreter exit
        return code
    except BrokenPipeError:
        return _reader_went_away()
    except (AudioError, CheckpointError, EmbedderError, TableError, ValueError) as exc:
        print(f"error: {terminal_text(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # unreadable, unwritable, a folder for a file, a full disk, a read-only mount
        print(f"error: {terminal_text(os_error_line(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _reader_went_away() -> int:
    """stdout's reader closed the pipe (`jobs list | head -1`): stop quietly, like other Unix tools.

    Python's recipe: point stdout at devnull so the flush at exit does not fail a second time.
    Exit status 141 (128 + SIGPIPE) is what a shell reports for any tool stopped this way.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (a test's capture): nothing to redirect
        pass
    return 141
