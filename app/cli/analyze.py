"""`python -m app analyze FILE|FOLDER...`: the verdict of each file, as one line or as JSON."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from app.cli.common import add_precision_flag
from utils.audio import AudioError
from utils.constants import AUDIO_EXTENSIONS
from utils.text import plural, terminal_text

log = logging.getLogger("genre_lens.cli")


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
        try:  # rglob skips what it cannot list, so a locked folder read as "no audio files in it"
            next(path.iterdir(), None)
        except OSError as exc:
            problems.append(f"{terminal_text(path)}: could not read the folder ({exc.strerror or exc}).")
            continue
        found = sorted(f for f in path.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file())
        if not found:
            problems.append(f"{terminal_text(path)}: a folder with no audio files in it "
                            f"({', '.join(sorted(AUDIO_EXTENSIONS))}).")
        items += [(f, f.relative_to(path).as_posix()) for f in found]
    return items, problems


def analyze(args: argparse.Namespace) -> int:
    """Print the verdict (or full JSON) of each file; exit 2 (a problem you can fix) when every file failed.

    With --json, stdout is JSON once the model is loaded: one object for one file named alone, else a list,
    with a {"path", "error"} record for each file that failed (also said on stderr).
    """
    from app.engine import Engine

    inputs, problems = expand_inputs(args.files)
    for line in problems:
        print(line, file=sys.stderr)
    one_file = len(args.files) == 1 and len(inputs) == 1 and not args.files[0].is_dir()
    if not inputs:
        if args.json:
            print("[]")
        return 2
    engine = Engine(checkpoint=args.checkpoint, device=args.device, precision=args.precision)
    docs, ok, failures = [], 0, len(problems)
    files = tqdm(inputs, desc="analysing", unit="file", file=sys.stderr, disable=len(inputs) < 2)
    for path, label in files:
        try:
            analysis = engine.analyze(path, filename=label)
        except Exception as exc:  # one file's failure, whatever it is, costs that file only
            failures += 1
            if isinstance(exc, AudioError):
                why = str(exc)
            elif isinstance(exc, OSError):
                why = f"could not read the file ({exc.strerror or exc})."
            else:
                log.exception("analysis of %s failed", label)
                why = f"could not be analysed ({exc.__class__.__name__}: {exc})."
            tqdm.write(f"{terminal_text(label)}: {why}", file=sys.stderr)  # above the bar, not glued to it
            docs.append({"path": str(path), "error": why})
            continue
        ok += 1
        if args.json:
            docs.append({"path": str(path)} | analysis.to_dict())
            continue
        tqdm.write(f"{terminal_text(label)}: {analysis.verdict.text}  ({plural(len(analysis.windows), 'window')}, "
                   f"{analysis.timings_s['total']:.2f} s)", file=sys.stdout)
        for w in analysis.warnings:
            tqdm.write(f"  note: {w}", file=sys.stdout)
    files.close()
    if args.json:
        print(json.dumps(docs[0] if one_file else docs, indent=2))  # the shape follows the input
    return 2 if failures and not ok else 0
