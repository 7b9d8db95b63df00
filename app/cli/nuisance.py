"""The `nuisance` sub-command: measure how everyday changes move training clips' embeddings."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from app.cli.common import add_embedder_flags, command_line, make_embedder
from utils.atomic import atomic_path
from utils.everyday import CHANGES
from utils.tables import read_id_list
from utils.text import terminal_text


def register(sub: argparse._SubParsersAction) -> None:
    """Add `nuisance` to the CLI."""
    p = sub.add_parser("nuisance", help="measure the embedding shifts of everyday changes on training clips "
                                        "(what a recipe's `nuisance` file holds)")
    p.add_argument("source", type=Path, help="audio folder with one sub-folder per genre")
    p.add_argument("--list", type=Path, required=True,
                   help="split list of the clips to use: training clips only (the robustness bench uses valid)")
    p.add_argument("--out", type=Path, required=True, help="shift file (.npz) to write")
    p.add_argument("--changes", nargs="+", default=None, choices=sorted(CHANGES),
                   help="a subset of the changes (default: all of utils/everyday.py)")
    p.add_argument("--no-loudness", action="store_true", help="measure without the engine's loudness normalisation")
    add_embedder_flags(p)
    p.set_defaults(handler=nuisance)


def nuisance(args: argparse.Namespace) -> int:
    """Measure every (clip, change) shift and write the file."""
    from app.jobs.embed import source_items
    from app.jobs.nuisance import measure_shifts

    wanted = set(read_id_list(args.list))
    listed, unread = source_items(args.source)
    for path, why in unread:  # a locked genre folder or a symlink loop: said, not silently left out
        if why:
            print(f"  skipped {terminal_text(path)}: {terminal_text(why)}", file=sys.stderr)
    clips = [(tid, path) for tid, path, _ in listed if tid in wanted]
    if not clips:
        raise ValueError(f"No clip of {args.source} is named in {args.list}.")
    changes = {name: CHANGES[name] for name in (args.changes or CHANGES)}
    t0 = time.perf_counter()

    def progress(done: int, total: int, clip_id: str) -> None:
        print(f"  {done}/{total} {clip_id} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    shifts, failed = measure_shifts(make_embedder(args), clips, changes, normalise_loudness=not args.no_loudness,
                                    command=command_line(), progress=progress)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out, suffix=".npz") as tmp:
        shifts.save(tmp)
    for clip_id, reason in failed:
        print(f"  skipped {terminal_text(clip_id)}: {terminal_text(reason)}", file=sys.stderr)
    print(f"wrote {args.out}: {len(shifts.shifts)} shifts of {len(changes)} changes on "
          f"{len(set(shifts.clips.tolist()))} clips ({shifts.embedder_id}) in {time.perf_counter() - t0:.0f} s")
    return 0
