"""`python -m app analyze FILE|FOLDER...`: the verdict of each file, as one line or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from app.cli.common import add_precision_flag
from utils.audio import AudioError
from utils.constants import AUDIO_EXTENSIONS
from utils.text import terminal_text


def register(sub: argparse._SubParsersAction) -> None:
    """Add `analyze`."""
    p = sub.add_parser("analyze", help="analyse audio files with the current model")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE|FOLDER",
                   help="audio files; a folder stands for every audio file under it")
    p.add_argument("--checkpoint", default=None, help="bundle folder, card path or version (default: current)")
    p.add_argument("--json", action="store_true", help="print the full analyses as JSON")
    p.add_argument("--device", default=None)
    add_precision_flag(p)
    p.set_defaults(handler=analyze)


def expand_inputs(paths: list[Path]) -> tuple[list[tuple[Path, str]], list[str]]:
    """(file, name to print) for every input, a folder giving its audio files by extension, sorted; and one
    line per folder with no audio in it. A file named directly is kept whatever its extension: the
    loader says whether it is audio. Names under a folder keep their subfolder, so `rock/a.mp3` and
    `pop/a.mp3` stay apart."""
    items, problems = [], []
    for path in paths:
        if not path.is_dir():
            items.append((path, path.name))
            continue
        found = sorted(f for f in path.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file())
        if not found:
            problems.append(f"{terminal_text(path)}: a folder with no audio files in it "
                            f"({', '.join(sorted(AUDIO_EXTENSIONS))}).")
        items += [(f, f.relative_to(path).as_posix()) for f in found]
    return items, problems


def analyze(args: argparse.Namespace) -> int:
    """Print the verdict (or full JSON) of each file; exit 2 (a problem you can fix) when every file failed."""
    from app.engine import Engine

    inputs, problems = expand_inputs(args.files)
    for line in problems:
        print(line, file=sys.stderr)
    if not inputs:
        return 2
    engine = Engine(checkpoint=args.checkpoint, device=args.device, precision=args.precision)
    results, failures = [], len(problems)
    files = tqdm(inputs, desc="analysing", unit="file", file=sys.stderr, disable=len(inputs) < 2)
    for path, label in files:
        try:
            analysis = engine.analyze(path, filename=label)
        except AudioError as exc:
            failures += 1
            print(f"{terminal_text(label)}: {exc}", file=sys.stderr)
            continue
        except OSError as exc:
            failures += 1
            print(f"{terminal_text(label)}: could not read the file ({exc.strerror or exc}).", file=sys.stderr)
            continue
        results.append((path, analysis))
        if not args.json:
            print(f"{terminal_text(label)}: {analysis.verdict.text}  ({len(analysis.windows)} windows, "
                  f"{analysis.timings_s['total']:.2f} s)")
            for w in analysis.warnings:
                print(f"  note: {w}")
    if args.json:
        docs = [{"path": str(path)} | a.to_dict() for path, a in results]
        one_file = len(args.files) == 1 and len(inputs) == 1 and not args.files[0].is_dir()
        print(json.dumps(docs[0] if one_file and docs else docs, indent=2))  # the shape follows the input
    return 2 if failures and not results else 0
