"""What several command families share: embedder flags, writing and recording a metrics report."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from models.classifier.bundle import (
    CARD_FILE,
    CURVES_FILE,
    METRICS_FILE,
    VERSION_RE,
    WEIGHTS_FILE,
    checkpoint_root,
    resolve_bundle,
)
from models.embedders.base import Embedder, build_embedder
from models.novelty import NOVELTY_FILE
from models.training.evaluation import record_in_card, summary_line
from models.trust import TRUST_FILE
from utils.atomic import atomic_write_text
from utils.text import terminal_text

_INVOCATION: list[list[str]] = []  # the arguments main() parsed last (empty: this process's own argv)


def remember_invocation(argv: list[str] | None) -> None:
    """Record what main() parses, so an in-process call (a test, a script) names its own command, not sys.argv."""
    _INVOCATION[:] = [list(argv)] if argv is not None else []


def command_line() -> str:
    """How this command was invoked, for model cards (every figure names the command that made it).

    Shell-quoted, so a recorded command can be pasted back into a shell and parsed with `shlex.split`
    even when an argument (a `--notes` text, a path) has spaces or quotes in it.
    """
    return shlex.join(["python", "-m", "app", *(_INVOCATION[0] if _INVOCATION else sys.argv[1:])])


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


def embedder_options(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor options of the chosen embedder from the CLI flags."""
    if args.embedder == "openl3":
        return {"input_repr": args.openl3_input_repr, "content_type": args.openl3_content_type,
                "hop_seconds": args.openl3_hop, "weights": args.openl3_weights}
    if args.embedder == "musicnn-msd":
        precision = getattr(args, "precision", None)  # analyze/embed only
        return {"output": args.musicnn_output} | ({"precision": precision} if precision else {})
    return {}


def make_embedder(args: argparse.Namespace) -> Embedder:
    """Build the embedder the flags ask for."""
    from app.engine import default_device

    return build_embedder(args.embedder, device=args.device or default_device(), **embedder_options(args))


def write_report(report: dict, out: Path | None) -> None:
    """Write a metrics JSON when --out is given."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(report, indent=1))
        print(f"wrote {out}")


def finish_evaluation(report: dict, folder: Path, args: argparse.Namespace) -> None:
    """Write, record (in the evaluated bundle's card or --record-in's) and print one evaluation's report."""
    write_report(report, args.out)
    if args.record_as:  # a selection model's numbers can go into the shipped model's card
        target = resolve_bundle(args.record_in, args.root or checkpoint_root()) if args.record_in else folder
        record_in_card(target, args.record_as, report | {"evaluated_model": report["model"]["version"],
                                                         "command": command_line()})
    print(summary_line(report))
    for src, reason in report.get("failed", []):
        print(f"  skipped {terminal_text(src)}: {terminal_text(reason)}", file=sys.stderr)


def os_error_line(exc: OSError) -> str:
    """One line for an OS error: the path it concerns and why (a bare OSError names neither clearly)."""
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" + (f" (and {exc.filename2})" if exc.filename2 else "")
    return exc.strerror or str(exc) or type(exc).__name__


def _existing_ancestor(path: Path) -> Path:
    """The nearest folder at or above `path` that exists (writers create the rest)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_dir(folder: Path, flag: str) -> None:
    """Fail before the work, not after it, when `folder` cannot be created or written to.

    A probe file says why (read-only file system, permission) where `os.access` only says no.
    """
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise ValueError(f"{flag} {folder}: {base} is a file, not a folder.")
    try:
        with tempfile.TemporaryFile(dir=base, prefix=".genre-lens-probe-"):
            pass
    except OSError as exc:
        raise ValueError(f"{flag} {folder} cannot be written: {base}: {exc.strerror or exc}.") from None


def check_output_file(out: Path | None, flag: str = "--out", example: str = "metrics.json",
                      inputs: Iterable[Path | str | None] = ()) -> None:
    """A file `flag` will be written to: not a folder, in a place that can be written (checked before the work)."""
    if out is None:
        return
    if Path(out).is_dir():
        raise ValueError(f"{flag} {out} is a folder; name a file (e.g. {Path(out) / example}).")
    check_not_an_input(out, inputs, flag)
    check_writable_dir(Path(out).parent, flag)


# what describes a bundle's weights; reports beside them (metrics_realworld_dev.json, written by the recipes) may be
BUNDLE_FILES = (WEIGHTS_FILE, CARD_FILE, METRICS_FILE, CURVES_FILE, TRUST_FILE, NOVELTY_FILE)


def check_not_an_input(out: Path, inputs: Iterable[Path | str | None], flag: str = "--out") -> None:
    """Refuse an output that is one of the command's inputs or one of a model bundle's own files.

    A report written there replaced the table it was computed from, or a bundle's weights under its card.
    """
    target = Path(out).resolve()
    for given in inputs:
        if given is not None and Path(given).resolve() == target:
            raise ValueError(f"{flag} {out} is one of this command's inputs; name another file, "
                             "so the input is not overwritten.")
    if target.name in BUNDLE_FILES and (target.parent / CARD_FILE).is_file():
        raise ValueError(f"{flag} {out} is the {target.name} of the model bundle {target.parent}; name another "
                         "file (bundle files are never overwritten).")


def check_new_version(version: str, root: Path) -> None:
    """A name for a new bundle: a plain folder name under root that no bundle (or CURRENT) uses yet.

    Bundles are never overwritten: an old bundle's metrics, trust and novelty files describe its own
    weights, so replacing model.pt under them would make every number on it wrong.
    """
    if not VERSION_RE.fullmatch(version) or version.casefold() == "current":
        raise ValueError(f"--version {version!r} is not a usable name: use 1-80 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit (and not CURRENT).")
    if (Path(root) / version).exists() or (Path(root) / version).is_symlink():
        raise ValueError(f"a model named {version!r} already exists in {root}; choose another --version "
                         "(or leave it out for a timestamped name); bundles are never overwritten.")


SEED_MAX = 2**32 - 1  # numpy's seed range


def number_in(kind: type, low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: a finite `kind` (int or float) in [low, high], else one clear usage error."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"{text} is outside {low:g} to {high:g}")
        return value

    return parse
