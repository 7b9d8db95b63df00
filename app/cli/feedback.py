"""`python -m app feedback add|list|export|delete` and `python -m app retrain`.

`retrain` queues a retrain job in the feedback database (app/jobs/retrain.py) and, unless
`--no-wait`, runs it in this process with a progress line (or follows it, when the app's worker
or `python -m app worker` claimed it first); a second request while one is active is refused.

Registered by app/cli/main.py, which turns the ValueError subclasses raised here (FeedbackError,
RetrainError) into one `error: ...` line and exit status 2. Every command takes `--db URL`
(default: $GENRE_LENS_DB_URL, else the SQLite file in the data folder).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from app.cli.common import SEED_MAX, check_not_an_input, number_in
from utils.feedback import Correction, FeedbackError, FeedbackStore
from utils.text import plural


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `feedback` (with its own sub-commands) and `retrain` commands."""
    fb = subparsers.add_parser("feedback", help="store, list, export and delete genre corrections")
    sub = fb.add_subparsers(dest="feedback_command", required=True)

    p = sub.add_parser("add", help="analyse FILE with the current model and store a correction")
    p.add_argument("file", type=Path)
    p.add_argument("--genre", action="append", required=True,
                   help="the right genre (repeat for several), or not_music for noise, speech or tones")
    p.add_argument("--note", default=None, help="free text, up to 1000 characters")
    p.add_argument("--key", default=None, help="idempotency key (default: derived from audio, genres, note, window)")
    p.add_argument("--window-start", type=float, default=None, help="start (s) of the 15 s window it is about")
    p.add_argument("--checkpoint", default=None, help="bundle folder or version (default: current)")
    _add_common(p)
    p.set_defaults(handler=_friendly(add))

    p = sub.add_parser("list", help="list stored corrections")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_common(p, root=False)
    p.set_defaults(handler=_friendly(list_))

    p = sub.add_parser("export", help="write every correction to a CSV file")
    p.add_argument("--out", type=Path, required=True)
    _add_common(p, root=False)
    p.set_defaults(handler=_friendly(export))

    p = sub.add_parser("delete", help="delete a correction by id")
    p.add_argument("id", type=number_in(int, 1, 2**63 - 1))
    _add_common(p, root=False)
    p.set_defaults(handler=_friendly(delete))

    p = subparsers.add_parser("retrain", help="train a new version with the stored corrections; promote if not worse")
    p.add_argument("--table", type=Path, default=None, nargs="+",
                   help="base training table(s) (default: the current model's)")
    p.add_argument("--valid", type=Path, default=None,
                   help="validation table that judges the new version (default: the current model's, if any)")
    p.add_argument("--test", type=Path, default=None,
                   help="test table, only for the new version's reported metrics (never for the decision)")
    p.add_argument("--margin", type=number_in(float, 0, 100), default=1.0,
                   help="promote when validation (or held-out correction) accuracy is at most this many points below "
                        "the current model's (default 1)")
    p.add_argument("--force", action="store_true", help="retrain even without new corrections")
    p.add_argument("--correction-weight", type=number_in(float, 1e-3, 1000), default=None,
                   help="training weight of one correction in base tracks (default 8, capped at 25%% in total)")
    p.add_argument("--epochs", type=number_in(int, 1, 10_000), default=None, help="override the parent's epoch count")
    p.add_argument("--seed", type=number_in(int, 0, SEED_MAX), default=None,  # before queueing, not in the job
                   help="the candidate's training seed (default: the parent's)")
    p.add_argument("--no-wait", action="store_true",
                   help="only queue the job; a worker (the app's, or `python -m app worker`) runs it")
    _add_common(p)
    p.set_defaults(handler=_friendly(retrain))


def _friendly(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Database failures after opening (server gone, disk full) become one `error:` line too."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except DBAPIError as exc:
            first = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
            raise FeedbackError(f"The feedback database failed: {first}") from exc

    return run


def _add_common(p: argparse.ArgumentParser, root: bool = True) -> None:
    """--db everywhere; --root where a model is loaded."""
    p.add_argument("--db", default=None, metavar="URL",
                   help="SQLAlchemy database URL (default: $GENRE_LENS_DB_URL or data/feedback.sqlite3)")
    if root:
        p.add_argument("--root", type=Path, default=None,
                       help="checkpoints folder (default: $GENRE_LENS_CHECKPOINTS or models/checkpoints)")


def _root(args: argparse.Namespace) -> Path:
    """The checkpoints folder from --root, the environment, or the default."""
    from models.classifier.bundle import checkpoint_root

    return Path(args.root) if args.root else checkpoint_root()


def _plain(text: str | None, limit: int | None = None) -> str:
    """Text safe for a terminal: control characters (escape sequences) shown escaped, one line."""
    text = "" if text is None else str(text)
    out = "".join(c if unicodedata.category(c)[0] != "C" else c.encode("unicode_escape").decode() for c in text)
    return out if limit is None or len(out) <= limit else out[: limit - 1] + "…"


def _describe(c: Correction, model_said: str | None = None) -> str:
    """One line about a correction (`model_said`: the analysis' own verdict, when it named no genre)."""
    window = f" window {c.window_start_s:g}-{c.window_end_s:g} s" if c.window_start_s is not None else ""
    said = "not music" if c.not_music else "+".join(c.genres)
    return f"#{c.id} {_plain(c.file_name)}: {said} (model said {model_said or c.predicted}){window}"


def add(args: argparse.Namespace) -> int:
    """`feedback add FILE --genre G`: analyse, then store the correction and the slice embeddings."""
    from app.engine import Engine
    from utils.feedback import validate_genres, validate_note

    validate_genres(args.genre)  # fail fast, before loading a model
    validate_note(args.note)
    store = FeedbackStore(args.db)
    engine = Engine(checkpoint=args.checkpoint, root=_root(args))
    analysis = engine.analyze(args.file)
    if args.window_start is not None:
        starts = [w.start_s for w in analysis.windows]
        if not any(abs(s - args.window_start) < 0.01 for s in starts):
            raise FeedbackError(f"{analysis.name} has no window starting at {args.window_start:g} s; "
                                f"windows start at {', '.join(f'{s:g}' for s in starts)} s.")
    result = store.add_analysis(
        analysis, args.genre, hop_seconds=engine.embedder.hop_seconds, frame_seconds=engine.embedder.frame_seconds,
        note=args.note, window_start_s=args.window_start, key=args.key,
    )
    verb = "stored" if result.created else "already stored (nothing added)"
    verdict = analysis.verdict  # "not music" said "model said classical", its forced pick
    model_said = f"not music; closest {result.correction.predicted}" if verdict.kind == "not_music" else None
    print(f"{verb}: {_describe(result.correction, model_said)} in {store.location}")
    return 0


def list_(args: argparse.Namespace) -> int:
    """`feedback list [--json]`."""
    store = FeedbackStore(args.db, create=args.db is None)  # a mistyped --db is refused, not made empty
    items = store.list()
    if args.json:
        print(json.dumps([c.row() for c in items], indent=2))
        return 0
    if not items:
        print(f"no corrections in {store.location}")
    for c in items:
        note = f"  note: {_plain(c.note, 80)}" if c.note else ""
        print(f"{c.created_at:%Y-%m-%d %H:%M} {_describe(c)} [{_plain(c.model_version)}]{note}")
    return 0


def export(args: argparse.Namespace) -> int:
    """`feedback export --out CSV`."""
    store = FeedbackStore(args.db, create=args.db is None)
    url = store.engine.url  # a SQLite file is an input too: a CSV written over it destroys every correction
    check_not_an_input(args.out, [url.database] if url.get_backend_name() == "sqlite" and url.database else [])
    try:
        n = store.export_csv(args.out)
    except OSError as exc:  # a folder, a read-only place: one line, not a traceback
        raise FeedbackError(f"Could not write {args.out}: {(exc.strerror or str(exc)).lower()}.") from exc
    print(f"wrote {plural(n, 'correction')} to {args.out}")
    return 0


def delete(args: argparse.Namespace) -> int:
    """`feedback delete ID`."""
    gone = FeedbackStore(args.db, create=args.db is None).delete(args.id)
    print(f"deleted {_describe(gone)}")
    return 0


def retrain(args: argparse.Namespace) -> int:
    """`retrain`: queue a job (base table + corrections -> new version, promoted only if not worse) and run it."""
    from app.jobs.retrain import check_new_corrections, request_retrain, resolve_inputs, retrain_params, run_or_follow
    from models.training.retrain import RetrainError
    from utils.jobs import FAILED

    params = retrain_params(_root(args), margin=args.margin, force=args.force, tables=args.table, valid=args.valid,
                            test=args.test, weight=args.correction_weight, epochs=args.epochs, seed=args.seed)
    resolve_inputs(params)  # a missing table is said now, not after queueing
    store = FeedbackStore(args.db)
    check_new_corrections(store, params)
    job = request_retrain(store, params)
    if args.no_wait:
        print(f"queued retrain job #{job.id}; a worker (the app's, or `python -m app worker`) runs it")
        return 0
    print(f"retrain job #{job.id}", file=sys.stderr)
    last = [-1]

    def progress(fraction: float, message: str) -> None:
        step = int(fraction * 20)
        if step != last[0]:
            last[0] = step
            print(f"[{fraction:4.0%}] {_plain(message)}", file=sys.stderr)

    ended = run_or_follow(store, job, progress)
    if ended.state == FAILED or ended.result is None:
        raise RetrainError(f"retrain job #{ended.id} failed: {ended.message}")
    r = ended.result
    if math.isfinite(r["new_accuracy"]):  # NaN: nothing could be held out, the per-genre check decided
        print(f"judged on {r['judged_on']}: {r['version']} accuracy {r['new_accuracy']:.3f} | "
              f"{r['parent_version']} accuracy {r['current_accuracy']:.3f}")
    print(f"{plural(len(r['correction_ids']), 'correction')} used at weight {r['correction_weight']:.2f} each")
    for line in r.get("skipped", []) + r.get("warnings", []):
        print(f"  note: {line}")
    print(r["reason"])
    return 0
