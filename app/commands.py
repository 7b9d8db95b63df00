"""Implementations of the CLI sub-commands (argument parsing lives in app/cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from models.classifier.bundle import (
    CURVES_FILE,
    ModelCard,
    checkpoint_root,
    load_bundle,
    read_card,
    resolve_bundle,
    save_bundle,
    set_current,
)
from models.embedders.base import Embedder, build_embedder
from models.training.config import TrainConfig
from models.training.evaluation import evaluate_and_record, record_in_card
from models.training.loop import train as train_model
from utils.atomic import atomic_write_text
from utils.audio import AudioError
from utils.constants import GENRES
from utils.tables import SHARED_DATA, load_table, load_tables


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


def analyze(args: argparse.Namespace) -> int:
    """`analyze FILE...`: print the top genres (or full JSON) for each file."""
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
    return 1 if failures and not results else 0


def embed(args: argparse.Namespace) -> int:
    """`embed SOURCE --out TABLE`: build or extend an embedding table."""
    if args.engine == "ray":
        from app.ray_jobs import embed_with_ray

        return embed_with_ray(args)
    from app.embed_job import build_table

    embedder = make_embedder(args)
    bar = tqdm(desc="embedding", unit="track", file=sys.stderr)

    def progress(i: int, n: int, tid: str) -> None:
        bar.total = n
        bar.n = i
        bar.set_postfix_str(tid)
        bar.refresh()

    spec = (args.embedder, str(embedder.device), embedder_options(args))  # how worker processes rebuild it
    report = build_table(embedder, args.source, args.out, progress, workers=args.workers, spec=spec)
    bar.close()
    print(f"{len(report.embedded)} embedded, {len(report.skipped)} already in {args.out}, "
          f"{len(report.failed)} failed")
    for src, reason in report.failed:
        print(f"  skipped {src}: {reason}", file=sys.stderr)
    return 0


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from defaults, an optional JSON file and explicit flags."""
    overrides: dict[str, Any] = {}
    if args.config:
        overrides.update(json.loads(Path(args.config).read_text()))
    overrides["seed"] = args.seed
    if args.epochs:
        overrides["epochs"] = args.epochs
    try:
        return TrainConfig.from_dict(overrides | _members(args))
    except ValueError as exc:
        raise ValueError(f"{exc} (in {args.config})") from exc


def _members(args: argparse.Namespace) -> dict[str, int]:
    """`--members N` as a TrainConfig override (none when the flag is not given)."""
    if args.members is None:
        return {}
    if args.members < 1:
        raise ValueError("--members must be at least 1.")
    return {"members": args.members}


def data_name(path: Path) -> str:
    """How a card names a table: relative to ../shared/data when it lies there (retrain finds it again)."""
    try:
        return Path(path).resolve().relative_to(SHARED_DATA.resolve()).as_posix()
    except ValueError:
        return Path(path).name


def _protocol(args: argparse.Namespace) -> str:
    """How validation worked for this run, in words, for the model card."""
    if args.valid:
        return (f"settings and calibration judged on the tracks of {data_name(args.valid)} (never trained on); "
                "the test split was not used for any choice")
    if args.no_validation:
        return ("final fit on every track of the training tables with settings chosen before on a validation "
                "split (see notes); no tracks held out, calibration out of fold; the test split was not used "
                "for any choice")
    if args.val_list:
        return f"validation tracks from {Path(args.val_list).name}; the test split was not used for any choice"
    return "validation on whole id blocks of the training tracks; the test split was not used for any choice"


def train(args: argparse.Namespace) -> int:
    """`train --table T`: fit, calibrate, save a bundle; evaluate once on --test when given."""
    paths = list(args.table)
    table = load_tables(paths + ([args.valid] if args.valid else []))
    unknown = sorted(set(table.genre.tolist()) - set(GENRES))
    if unknown:
        raise ValueError(f"{paths[0]} has labels outside the GTZAN genres: {', '.join(unknown)}.")
    table_embedder = table.meta.get("embedder", {}).get("name")
    if args.embedder and args.embedder != table_embedder:
        raise ValueError(f"{paths[0]} holds {table_embedder} embeddings, not {args.embedder}; "
                         "training uses the table's embedder, so embed the audio with --embedder first.")
    cfg = _train_config(args)
    val_ids = None
    if args.val_list:
        val_ids = [Path(line.strip()).stem for line in Path(args.val_list).read_text().splitlines() if line.strip()]
    elif args.valid:
        val_ids = load_table(args.valid).track_ids()
    elif args.no_validation:
        val_ids = []
    bar = tqdm(total=cfg.members, desc="training", unit="model", file=sys.stderr,
               bar_format="{l_bar}{bar}| {n:.1f}/{total} models [{elapsed}<{remaining}{postfix}]")

    def log(row: dict) -> None:
        member = row.get("member", 1)
        bar.n = member - 1 + row["epoch"] / cfg.epochs  # early stopping makes a member jump to its end
        bar.set_postfix_str(f"member {member}/{cfg.members}, epoch {row['epoch']}, loss {row['train_loss']:.3f}, "
                            f"val acc {row['val_accuracy']:.3f}")
        bar.refresh()

    result = train_model(table, cfg, val_ids=val_ids, log=log)
    bar.n = cfg.members
    bar.close()
    version = args.version or time.strftime("model-%Y%m%d-%H%M%S")
    root = args.root or checkpoint_root()
    card = ModelCard(
        version=version,
        labels=list(GENRES),
        embedder=table.meta["embedder"] | {"settings": {k: table.meta[k] for k in ("frame_seconds", "hop_seconds",
                                                                                   "dim")}},
        classifier={},
        training={
            "data": data_name(paths[0]) if len(paths) == 1 else [data_name(p) for p in paths],
            **({"validation_data": data_name(args.valid)} if args.valid else {}),
            "data_sha256": table.fingerprint(), "config": cfg.to_dict(), "protocol": _protocol(args),
            **result.card_fields(), "command": "python -m app " + " ".join(sys.argv[1:]),
        },
        notes=args.notes or "",
    )
    folder = save_bundle(result.model, card, root)
    atomic_write_text(folder / CURVES_FILE, json.dumps(result.curves(), indent=1))
    if cfg.solver == "logistic":
        print(f"saved {folder} (one-vs-rest logistic regression, C={cfg.c:g}, on {len(result.train_ids)} tracks; "
              f"out-of-fold temperature {result.temperature:.2f}"
              + (f"; validation accuracy {result.val_accuracy:.3f})" if result.val_ids else ")"))
    elif not result.val_ids:
        print(f"saved {folder} ({cfg.members} member(s), {cfg.epochs} epochs on all {len(result.train_ids)} tracks, "
              f"temperature {result.temperature:.2f} as configured)")
    elif cfg.members > 1:
        epochs = [m.best_epoch for m in result.members]
        print(f"saved {folder} ({cfg.members} members, kept epochs {min(epochs)}-{max(epochs)}, out-of-fold "
              f"validation accuracy {result.val_accuracy:.3f})")
    else:
        print(f"saved {folder} (best epoch {result.best_epoch}, validation accuracy {result.val_accuracy:.3f}, "
              f"temperature {result.temperature:.2f})")
    if args.test:
        evaluate_and_record(folder, load_table(args.test), table, cfg.seed, card.training["command"])
    if not args.no_set_current:
        set_current(version, root)
        print(f"{version} is now the current model")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """`evaluate SOURCE`: metrics on a table or an audio folder (or --cv K on a training table)."""
    from models.training.evaluation import cross_validate, evaluate_analyses, evaluate_table

    train_table = load_table(args.train_table) if args.train_table else None
    if args.cv:
        if train_table is None:
            raise ValueError("--cv K needs --train-table (cross-validation runs on the training tracks).")
        report = cross_validate(train_table, TrainConfig(seed=args.seed, **_members(args)), args.cv)
        _write_report(report, args.out)
        print(f"{args.cv}-fold CV: accuracy {report['accuracy_mean']:.3f} ± {report['accuracy_std']:.3f} "
              f"(baseline {report['baseline_accuracy_mean']:.3f} ± {report['baseline_accuracy_std']:.3f})")
        return 0
    if args.source is None:
        raise ValueError("evaluate needs a SOURCE: an embedding table (.npz) or an audio folder.")
    if not args.source.exists():
        raise FileNotFoundError(f"{args.source} does not exist.")
    if args.engine == "ray":  # tables, shard folders and audio folders alike
        from app.ray_jobs import evaluate_with_ray

        return evaluate_with_ray(args)
    from utils.tables.parquet import is_shard_folder

    folder = resolve_bundle(args.checkpoint)
    wanted = None
    if args.list:
        wanted = {Path(line.strip()).stem for line in Path(args.list).read_text().splitlines() if line.strip()}
    if args.source.is_dir() and not is_shard_folder(args.source):
        from app.engine import Engine
        from models.training.evaluation import audio_folder_items

        engine = Engine(checkpoint=folder, device=args.device)
        items = [(p, g) for p, g in audio_folder_items(args.source) if wanted is None or p.stem in wanted]
        rows, failed = [], []
        for path, genre in tqdm(items, desc="evaluating", unit="track", file=sys.stderr):
            try:
                rows.append((path.stem, genre, engine.analyze(path)))
            except AudioError as exc:
                failed.append((str(path), str(exc)))
        report = evaluate_analyses(rows, train_table, args.seed)
        report["failed"] = failed
        report["source"] = {"kind": "audio", "folder": args.source.name, "list": args.list.name if args.list else None}
    else:
        table = load_table(args.source)
        if wanted is not None:
            table = table.subset(wanted)
        model, bundle_card = load_bundle(folder)
        want = bundle_card.classifier.get("input_dim")
        if want is not None and table.dim != int(want):
            raise ValueError(f"{args.source} holds {table.dim}-dimensional {table.embedder_id} vectors, but "
                             f"{bundle_card.version} takes {want}-dimensional {bundle_card.embedder.get('id')} ones.")
        report = evaluate_table(model, table, train_table, args.seed)
    card = read_card(folder)
    report["model"] = {"version": card.version, "weights_sha256": card.weights_sha256}
    _write_report(report, args.out)
    if args.record_as:  # into the evaluated bundle's card, or another's (a selection model's check of v3)
        target = resolve_bundle(args.record_in, args.root or checkpoint_root()) if args.record_in else folder
        record_in_card(target, args.record_as, report | {"evaluated_model": card.version,
                                                         "command": "python -m app " + " ".join(sys.argv[1:])})
    b = report.get("baseline")
    print(f"accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f} on {report['n_tracks']} tracks"
          + (f"; baseline accuracy {b['accuracy']:.3f}" if b else ""))
    return 0


def _write_report(report: dict, out: Path | None) -> None:
    """Write a metrics JSON when --out is given."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(report, indent=1))
        print(f"wrote {out}")
