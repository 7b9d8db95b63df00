"""`python -m app analyze FILE...`: the verdict of each file, as one line or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from app.cli.common import add_precision_flag
from utils.audio import AudioError


def register(sub: argparse._SubParsersAction) -> None:
    """Add `analyze`."""
    p = sub.add_parser("analyze", help="analyse audio files with the current model")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--checkpoint", default=None, help="bundle folder, card path or version (default: current)")
    p.add_argument("--json", action="store_true", help="print the full analyses as JSON")
    p.add_argument("--device", default=None)
    add_precision_flag(p)
    p.set_defaults(handler=analyze)


def analyze(args: argparse.Namespace) -> int:
    """Print the verdict (or full JSON) of each file; exit 2 (a problem you can fix) when every file failed."""
    from app.engine import Engine

    engine = Engine(checkpoint=args.checkpoint, device=args.device, precision=args.precision)
    results, failures = [], 0
    files = tqdm(args.files, desc="analysing", unit="file", file=sys.stderr, disable=len(args.files) < 2)
    for path in files:
        try:
            analysis = engine.analyze(path)
        except AudioError as exc:
            failures += 1
            print(f"{path.name}: {exc}", file=sys.stderr)
            continue
        except OSError as exc:
            failures += 1
            print(f"{path.name}: could not read the file ({exc.strerror or exc}).", file=sys.stderr)
            continue
        results.append(analysis)
        if not args.json:
            print(f"{analysis.name}: {analysis.verdict.text}  ({len(analysis.windows)} windows, "
                  f"{analysis.timings_s['total']:.2f} s)")
            for w in analysis.warnings:
                print(f"  note: {w}")
    if args.json:
        docs = [a.to_dict() for a in results]
        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2))
    return 2 if failures and not results else 0
