"""`python -m app embed|train|evaluate`: the offline data flow (tables from audio, models from tables, metrics).

Each command parses its flags and calls the jobs (app/jobs) or the training code (models/training);
they never see an argparse namespace.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from app.cli.common import (
    SEED_MAX,
    add_embedder_flags,
    add_precision_flag,
    check_new_version,
    check_output_file,
    check_writable_dir,
    command_line,
    embedder_options,
    finish_evaluation,
    make_embedder,
    number_in,
    write_report,
)
from app.cli.train_inputs import check_baseline_table, check_training_labels, load_test_table, validation_ids
from models.classifier.bundle import CURVES_FILE, ModelCard, checkpoint_root, resolve_bundle, save_bundle, set_current
from models.training.config import TrainConfig
from models.training.evaluation import evaluate_and_record
from models.training.loop import train as train_model
from utils.atomic import atomic_write_text
from utils.constants import GENRES
from utils.tables import SHARED_DATA, load_table, load_tables, read_id_list
from utils.text import terminal_text

MAX_MEMBERS = 1000


def track_bar(desc: str, disable: bool = False) -> tuple[tqdm, Callable[..., None]]:
    """A per-track progress bar on stderr and the (done, total[, track]) callback the jobs report to."""
    bar = tqdm(desc=desc, unit="track", file=sys.stderr, disable=disable)

    def progress(done: int, total: int, track: str = "") -> None:
        bar.total = total
        bar.n = done
        if track:
            bar.set_postfix_str(terminal_text(track))
        bar.refresh()

    return bar, progress


def register(sub: argparse._SubParsersAction) -> None:
    """Add `embed`, `train` and `evaluate`."""
    p = sub.add_parser("embed", help="write an embedding table from an audio folder or CSV")
    p.add_argument("source", type=Path, help="folder with one sub-folder per genre, or CSV of path,label")
    p.add_argument("--out", type=Path, required=True, help="embedding table (.npz) to create or extend")
    p.add_argument("--engine", default="local", choices=["local", "ray"])
    p.add_argument("--address", default=None, help="Ray cluster address (with --engine ray)")
    add_embedder_flags(p)
    add_precision_flag(p)
    p.add_argument("--workers", type=number_in(int, 1, 256), default=1,
                   help="worker processes for --engine local (default 1)")
    p.set_defaults(handler=embed)

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
    p.add_argument("--seed", type=number_in(int, 0, SEED_MAX), default=0)
    p.add_argument("--epochs", type=number_in(int, 1, 10_000), default=None)
    p.add_argument("--members", type=number_in(int, 1, MAX_MEMBERS), default=None,
                   help="ensemble size (default 10; 1 trains a single model on a block validation split)")
    add_embedder_flags(p, default=None)
    p.set_defaults(handler=train)

    p = sub.add_parser("evaluate", help="metrics of a checkpoint on a table or an audio folder")
    p.add_argument("source", type=Path, nargs="?",
                   help="embedding table (.npz) or audio folder of genre sub-folders (not needed with --cv)")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--out", type=Path, default=None, help="metrics JSON (default: print a summary only)")
    p.add_argument("--train-table", type=Path, default=None, help="fit the baseline on this table")
    p.add_argument("--list", type=Path, default=None, help="only tracks named in this split list")
    p.add_argument("--cv", type=number_in(int, 2, 100), default=None, metavar="K",
                   help="K-fold cross-validation (K >= 2) on --train-table instead")
    p.add_argument("--members", type=int, default=None, help="with --cv: ensemble size to cross-validate (default 10)")
    p.add_argument("--record-as", default=None, help="store the headline numbers in the model card under this key")
    p.add_argument("--record-in", default=None,
                   help="with --record-as: the bundle (version or folder) whose card gets them (default: --checkpoint)")
    p.add_argument("--root", type=Path, default=None, help="checkpoints folder (default: models/checkpoints)")
    p.add_argument("--engine", default="local", choices=["local", "ray"])
    p.add_argument("--address", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=number_in(int, 0, SEED_MAX), default=0)
    p.set_defaults(handler=evaluate)


def embed(args: argparse.Namespace) -> int:
    """`embed SOURCE --out TABLE`: build or extend an embedding table (a shard folder with --engine ray)."""
    if args.engine == "ray":
        from app.jobs.ray_embed import embed_with_ray

        report = embed_with_ray(args.source, args.out, embedder=args.embedder, options=embedder_options(args),
                                address=args.address, device=args.device,
                                log=lambda line: print(line, file=sys.stderr))
    else:
        from app.jobs.embed import build_table

        check_output_file(args.out, example="table.npz", inputs=[args.source])  # before any audio is embedded
        embedder = make_embedder(args)
        bar, progress = track_bar("embedding")
        spec = (args.embedder, str(embedder.device), embedder_options(args))  # how worker processes rebuild it
        try:
            report = build_table(embedder, args.source, args.out, progress, workers=args.workers, spec=spec,
                                 log=lambda line: print(line, file=sys.stderr))
        finally:
            bar.close()
    waited = report.waited_s
    print(f"{len(report.embedded)} embedded, {len(report.skipped)} already in {args.out}, "
          f"{len(report.failed)} failed"
          + (f" (waited {waited:.0f} s for another embed run writing {args.out})" if waited is not None else ""))
    for src, reason in report.failed:
        print(f"  skipped {terminal_text(src)}: {terminal_text(reason)}", file=sys.stderr)
    for src in report.repeated:
        print(f"  note: {terminal_text(src)} is listed more than once; embedded once", file=sys.stderr)
    return 0


def _read_config(path: Path) -> dict[str, Any]:
    """A --config file: one JSON object of TrainConfig settings, or one clear error naming the file."""
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read --config {path}: {exc.strerror or exc}.") from None
    except ValueError as exc:  # invalid JSON or not UTF-8
        raise ValueError(f"--config {path} is not valid JSON: {exc}.") from None
    if not isinstance(values, dict):
        raise ValueError(f"--config {path} must hold one JSON object of training settings, e.g. "
                         f'{{"epochs": 30}}, not a {type(values).__name__}.')
    return values


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from defaults, an optional JSON file and explicit flags."""
    overrides: dict[str, Any] = _read_config(args.config) if args.config else {}
    where = f" (in {args.config})" if args.config else ""
    overrides["seed"] = args.seed
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    try:
        cfg = TrainConfig.from_dict(overrides | _members(args))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{exc}{where}") from exc
    for name in ("epochs", "members"):  # a config file bypasses the flags' range checks
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}{where}.")
    return cfg


def _members(args: argparse.Namespace) -> dict[str, int]:
    """`--members N` as a TrainConfig override (none when the flag is not given)."""
    if args.members is None:
        return {}
    if args.members < 1:
        raise ValueError("--members must be at least 1.")
    if args.members > MAX_MEMBERS:
        raise ValueError(f"--members must be at most {MAX_MEMBERS}.")
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
    root = args.root or checkpoint_root()
    if args.version is not None:  # said before training, not after
        check_new_version(args.version, root)
    check_writable_dir(root, "--root")
    paths = list(args.table)
    table = load_tables(paths + ([args.valid] if args.valid else []))
    if not len(table.vectors):
        raise ValueError(f"{', '.join(map(str, paths))} holds no tracks; embed audio into it first "
                         "(python -m app embed).")
    names = ", ".join(map(str, paths + ([args.valid] if args.valid else [])))
    check_training_labels(table, names)
    table_embedder = table.meta.get("embedder", {}).get("name")
    if args.embedder and args.embedder != table_embedder:
        raise ValueError(f"{paths[0]} holds {table_embedder} embeddings, not {args.embedder}; "
                         "training uses the table's embedder, so embed the audio with --embedder first.")
    cfg = _train_config(args)
    test = load_test_table(args.test, table, paths[0]) if args.test else None  # before training, not after
    val_ids = None
    if args.val_list:
        val_ids = validation_ids(args.val_list, table, names)
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

    try:  # closed on failure too, so an error line starts on its own line, not after the bar
        result = train_model(table, cfg, val_ids=val_ids, log=log)
        bar.n = cfg.members
    finally:
        bar.close()
    version = args.version or time.strftime("model-%Y%m%d-%H%M%S")
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
            **result.card_fields(), "command": command_line(),
        },
        notes=args.notes or "",
    )
    folder = _claim_bundle_folder(root, version)
    try:
        save_bundle(result.model, card, root)
        atomic_write_text(folder / CURVES_FILE, json.dumps(result.curves(), indent=1))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # ours alone (claimed above): no half bundle stays behind
        raise
    if cfg.solver in ("logistic", "lda"):
        head = f"one-vs-rest logistic regression, C={cfg.c:g}" if cfg.solver == "logistic" else "shrinkage LDA"
        if result.nuisance is not None:
            head += f" with the nuisance scatter of {result.nuisance['shifts']} shifts, weight {cfg.nuisance_weight:g}"
        print(f"saved {folder} ({head}, on {len(result.train_ids)} tracks; "
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
    if test is not None:
        evaluate_and_record(folder, test, table, cfg.seed, card.training["command"])
    if not args.no_set_current:
        set_current(version, root)
        print(f"{version} is now the current model")
    return 0


def _claim_bundle_folder(root: Path, version: str) -> Path:
    """Create root/version, failing if anything holds that name: two runs can never write one bundle."""
    check_new_version(version, root)
    folder = Path(root) / version
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        check_new_version(version, root)  # another run took the name since: say so in the usual words
        raise
    return folder


def evaluate(args: argparse.Namespace) -> int:
    """`evaluate SOURCE`: metrics on a table or an audio folder (or --cv K on a training table)."""
    # a folder, a read-only place or an input (the table, the id list) is said now, not after the evaluation
    check_output_file(args.out, inputs=[args.source, args.train_table, args.list])
    train_table = load_table(args.train_table) if args.train_table else None
    if args.cv is not None:
        from models.training.evaluation import cross_validate

        if train_table is None:
            raise ValueError("--cv K needs --train-table (cross-validation runs on the training tracks).")
        report = cross_validate(train_table, TrainConfig(seed=args.seed, **_members(args)), args.cv)
        write_report(report, args.out)
        print(f"{args.cv}-fold CV: accuracy {report['accuracy_mean']:.3f} ± {report['accuracy_std']:.3f} "
              f"(baseline {report['baseline_accuracy_mean']:.3f} ± {report['baseline_accuracy_std']:.3f})")
        return 0
    if args.members is not None:  # it sizes the cross-validated ensemble; an evaluation ignored it in silence
        raise ValueError("--members sets the ensemble size for --cv K; the evaluated model's size is its own.")
    if args.source is None:
        raise ValueError("evaluate needs a SOURCE: an embedding table (.npz) or an audio folder.")
    folder = resolve_bundle(args.checkpoint)
    if args.record_in:  # a mistyped bundle is said now, not after the evaluation (and its --out) is done
        if not args.record_as:
            raise ValueError("--record-in names where --record-as stores the numbers; add --record-as KEY.")
        resolve_bundle(args.record_in, args.root or checkpoint_root())
    if train_table is not None:  # the baseline fits on it: sklearn's "X has 753 features" named neither
        check_baseline_table(args.train_table, train_table, folder)
    wanted = set(read_id_list(args.list)) if args.list else None
    if wanted is not None and not wanted:
        raise ValueError(f"--list {args.list} names no tracks (one track id or file name per line).")
    common = {"train_table": train_table, "wanted": wanted, "list_name": args.list.name if args.list else None,
              "device": args.device, "seed": args.seed}
    if args.engine == "ray":  # tables, shard folders and audio folders alike
        from app.jobs.ray_evaluate import evaluate_with_ray

        report = evaluate_with_ray(args.source, folder, address=args.address, **common)
    else:
        from app.jobs.evaluate import evaluate_source, is_audio_folder

        bar, progress = track_bar("evaluating", disable=not is_audio_folder(args.source))
        try:  # closed on failure too: the error line must not follow the bar on its line
            report = evaluate_source(args.source, folder, progress=progress, **common)
        finally:
            bar.close()
    finish_evaluation(report, folder, args)
    return 0
