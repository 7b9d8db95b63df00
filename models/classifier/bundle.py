"""Checkpoint bundles: a classifier state_dict plus the model card that says what it is.

A bundle is a folder `<root>/<version>/` holding `model.pt` (a plain state_dict, loaded with
`weights_only=True`), `card.json` (labels, embedder, hyper-parameters, training data, sha256 of
`model.pt`) and, once evaluated, `metrics.json`. `<root>/CURRENT` names the version in use, so
promoting a retrained model is one atomic file write and old versions stay selectable.

A retrain never shows a half-written bundle: it writes into a hidden staging folder
(`<root>/.<version>.partial/`, which no listing or lookup sees), fsyncs every file, renames the
folder to its version name in one step (`publish_bundle`), and only then swaps CURRENT.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from models.classifier.ensemble import Classifier, build_classifier, classifier_spec
from utils import settings
from utils.atomic import atomic_path, atomic_write_text
from utils.constants import GENRES

if TYPE_CHECKING:
    from utils.tables import EmbeddingTable

DEFAULT_ROOT = settings.DEFAULT_CHECKPOINTS  # the bundled models
WEIGHTS_FILE = "model.pt"
CARD_FILE = "card.json"
METRICS_FILE = "metrics.json"
CURVES_FILE = "curves.json"
CURRENT_FILE = "CURRENT"
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")  # a bundle's name: one plain folder under the root
log = logging.getLogger("genre_lens.bundle")


def checkpoint_root() -> Path:
    """Where model bundles live: the `checkpoints` setting ($GENRE_LENS_CHECKPOINTS or models/checkpoints)."""
    return settings.load().checkpoints


class CheckpointError(RuntimeError):
    """A bundle is missing, incomplete or does not match its card."""


@dataclass
class ModelCard:
    """What a checkpoint is: enough to rebuild it, audit it and show it in the UI."""

    version: str
    labels: list[str]
    embedder: dict[str, Any]  # name, id, options, settings
    classifier: dict[str, Any]  # ClassifierConfig fields, plus `members` for an ensemble
    training: dict[str, Any] = field(default_factory=dict)  # data, hash, seed, hyper-parameters
    evaluation: dict[str, Any] = field(default_factory=dict)  # headline numbers, filled by evaluate
    weights_sha256: str = ""
    metrics_file: str = METRICS_FILE
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    notes: str = ""

    def to_json(self) -> str:
        """Pretty JSON for the card file."""
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Build from parsed JSON, ignoring unknown keys written by newer versions."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def check_table(self, table: EmbeddingTable, name: str) -> None:
        """ValueError unless `table` holds vectors of the size this model takes (`name` says which table)."""
        want = self.classifier.get("input_dim")
        if want is not None and table.dim != int(want):
            raise ValueError(f"{name} holds {table.dim}-dimensional {table.embedder_id} vectors, but "
                             f"{self.version} takes {want}-dimensional {self.embedder.get('id')} ones.")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_path(path: Path) -> None:
    """Flush a file's or a folder's contents to disk (a rename is only durable once its folder is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def staging_dir(root: Path, version: str) -> Path:
    """The hidden folder a bundle is built in before `publish_bundle` gives it its version name."""
    return Path(root) / f".{version}.partial"


STALE_STAGING_S = 6 * 3600  # a retrain takes minutes; a staging folder this old was left by a killed run


def sweep_staging(root: Path, max_age_s: float = STALE_STAGING_S) -> list[str]:
    """Remove staging folders a killed retrain left behind (untouched for `max_age_s`); returns their names.

    A finished or failed retrain removes its own; only a hard kill (power cut, SIGKILL) leaves one, and
    nothing else ever would, so without this they pile up, each the size of a bundle.
    """
    removed, now = [], time.time()
    for sub in Path(root).iterdir() if Path(root).is_dir() else []:
        if not (re.fullmatch(r"\..+\.partial", sub.name) and sub.is_dir() and not sub.is_symlink()):
            continue
        try:
            newest = max([sub.stat().st_mtime] + [f.stat().st_mtime for f in sub.iterdir()])
        except OSError:  # removed by a concurrent sweep
            continue
        if now - newest > max_age_s:
            shutil.rmtree(sub, ignore_errors=True)
            removed.append(sub.name)
    return removed


def reserve_version(root: Path, parent: str) -> str:
    """`<parent>-r<N>` with the next free N; its hidden staging folder is created here (atomically), so two
    runs never share a name, and nothing named `<parent>-r<N>` exists until the bundle is complete."""
    sweep_staging(root)
    stem = re.sub(r"-r\d+$", "", parent)
    pattern = r"\.?" + re.escape(stem) + r"-r(\d+)(?:\.partial)?"
    n = 1 + max([int(m.group(1)) for p in root.iterdir() if (m := re.fullmatch(pattern, p.name))] or [0])
    while True:
        version = f"{stem}-r{n}"
        if not (root / version).exists():
            try:
                staging_dir(root, version).mkdir()
                return version
            except FileExistsError:
                pass
        n += 1


def publish_bundle(staging: Path, root: Path, version: str) -> Path:
    """Make a fully written staging folder the bundle `version`, in one rename (fsynced first)."""
    staging, target = Path(staging), Path(root) / version
    if target.exists():
        raise CheckpointError(f"A bundle named {version!r} already exists under {root}.")
    for item in staging.iterdir():
        if item.is_file():
            _fsync_path(item)
    _fsync_path(staging)
    os.rename(staging, target)
    _fsync_path(Path(root))
    return target


def save_bundle(model: Classifier, card: ModelCard, root: Path | None = None, folder: Path | None = None) -> Path:
    """Write model.pt and card.json (with the weights' sha256) under root/version, or into `folder` (staging)."""
    root = Path(root) if root is not None else checkpoint_root()
    folder = Path(folder) if folder is not None else root / card.version
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # torch.save names its zip archive after the file's stem: ".model" keeps bundles byte-identical
    with atomic_path(folder / WEIGHTS_FILE, prefix=".model.") as tmp:
        torch.save(state, tmp)
    card.weights_sha256 = sha256_file(folder / WEIGHTS_FILE)
    card.classifier = classifier_spec(model)
    atomic_write_text(folder / CARD_FILE, card.to_json())
    return folder


def read_card(folder: Path) -> ModelCard:
    """Read a bundle's card, with a clear error when it is missing or unreadable."""
    path = Path(folder) / CARD_FILE
    try:
        return ModelCard.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise CheckpointError(f"No model card at {path}.") from None
    except (ValueError, TypeError, AttributeError) as exc:  # bad JSON or bytes (UnicodeDecodeError), a list, ...
        raise CheckpointError(f"The model card {path} is not valid: {exc}") from exc
    except OSError as exc:  # a folder named card.json, no permission
        raise CheckpointError(f"The model card {path} could not be read: {exc.strerror or exc}") from exc


def update_card(folder: Path, mutate: Callable[[ModelCard], None]) -> ModelCard:
    """Read a bundle's card, change it, write it back atomically (weights and their hash untouched)."""
    card = read_card(folder)
    mutate(card)
    atomic_write_text(Path(folder) / CARD_FILE, card.to_json())
    return card


def load_bundle(folder: Path, device: str | torch.device = "cpu") -> tuple[Classifier, ModelCard]:
    """Load a bundle after checking model.pt against the sha256 in its card; eval mode on device."""
    folder = Path(folder)
    card = read_card(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.exists():
        raise CheckpointError(f"The bundle {folder} has no {WEIGHTS_FILE}.")
    actual = sha256_file(weights)
    if actual != card.weights_sha256:
        raise CheckpointError(
            f"{weights} does not match its model card (sha256 {actual[:12]}… != {card.weights_sha256[:12]}…); "
            "the file was changed or corrupted. Refusing to load it."
        )
    if list(card.labels) != list(GENRES):
        raise CheckpointError(f"The bundle {folder} predicts {card.labels}, not the GTZAN genres.")
    state = _read_weights(weights)
    try:
        model = build_classifier(card.classifier)
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as exc:  # card and weights disagree on the architecture
        raise CheckpointError(f"The weights of {folder} do not fit the classifier its card describes: {exc}") from exc
    return model.to(device).eval(), card


def _read_weights(weights: Path) -> dict[str, Any]:
    """model.pt's state_dict, or one CheckpointError when the file is not one (empty, truncated, foreign bytes).

    The sha256 only proves the file is the one the card was written for, not that it is a state_dict: an
    empty file gave an EOFError traceback, random bytes a misleading "do not fit the classifier".
    """
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (EOFError, OSError, RuntimeError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"The weights file {weights} is damaged (not a saved state_dict: "
                              f"{exc.__class__.__name__}); rebuild or restore the bundle.") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"The weights file {weights} is damaged (it holds a {type(state).__name__}, "
                              "not a saved state_dict); rebuild or restore the bundle.")
    return state


def list_versions(root: Path | None = None) -> list[str]:
    """Versions under root that have a card, oldest first by creation time."""
    root = Path(root) if root is not None else checkpoint_root()
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for sub in root.iterdir():
        if not sub.name.startswith(".") and (sub / CARD_FILE).is_file():  # hidden: a bundle being staged
            try:
                found.append((read_card(sub).created, sub.name))
            except CheckpointError:
                continue
    return [name for _, name in sorted(found)]


def _current_problem(marker: Path) -> tuple[str, str | None]:
    """(name, None) when CURRENT names a bundle under its root, else ("", what is wrong with it).

    The name must be a version name (VERSION_RE): `../outside/x` or an absolute path was followed out of the root.
    """
    try:
        name = marker.read_bytes().decode("utf-8").strip()
    except IsADirectoryError:
        return "", "it is a folder, not a file"
    except UnicodeDecodeError:
        return "", "it is not UTF-8 text"
    except OSError as exc:
        return "", f"it could not be read ({exc.strerror or exc})"
    if not name:
        return "", "it is empty"
    if not VERSION_RE.fullmatch(name) or name.casefold() == "current":
        return "", f"{name[:80]!r} is not a version name (a plain folder name in {marker.parent})"
    if not (marker.parent / name / CARD_FILE).is_file():
        return "", f"there is no bundle named {name!r} beside it"
    return name, None


def current_version(root: Path | None = None, fallback: bool = True) -> str | None:
    """The version named in root/CURRENT, else (with `fallback`) the newest bundle, else None.

    A CURRENT that names no bundle of the root is logged (and then passed over): falling back in silence
    hid that the model in use was not the one CURRENT asked for.
    """
    root = Path(root) if root is not None else checkpoint_root()
    root = Path(root)
    marker = root / CURRENT_FILE
    if marker.exists() or marker.is_symlink():
        name, problem = _current_problem(marker)
        if problem is None:
            return name
        log.warning("ignoring %s: %s; %s", marker, problem,
                    "using the newest bundle instead" if fallback else "treating it as absent")
    if not fallback:
        return None
    versions = list_versions(root)
    return versions[-1] if versions else None


def set_current(version: str, root: Path | None = None) -> None:
    """Promote a version atomically; readers see the old or the new name, never a mix."""
    root = Path(root) if root is not None else checkpoint_root()
    if not (Path(root) / version / CARD_FILE).is_file():
        raise CheckpointError(f"No bundle named {version!r} under {root}.")
    atomic_write_text(Path(root) / CURRENT_FILE, version + "\n")


def resolve_bundle(checkpoint: str | Path | None = None, root: Path | None = None) -> Path:
    """Turn a CLI/setting value (bundle folder, card or model.pt path, version name, None) into a folder."""
    root = Path(root) if root is not None else checkpoint_root()
    if checkpoint is None or str(checkpoint) == "":
        version = current_version(root)
        if version is None:
            raise CheckpointError(
                f"No trained model found under {root}. Train one with `python -m app train` "
                "(see README) or pass --checkpoint PATH."
            )
        return Path(root) / version
    path = Path(checkpoint)
    if path.is_file():
        path = path.parent
    if (path / CARD_FILE).is_file():
        return path
    if (Path(root) / str(checkpoint) / CARD_FILE).is_file():
        return Path(root) / str(checkpoint)
    raise CheckpointError(f"{checkpoint} is not a model bundle (no {CARD_FILE} there).")


def read_json(folder: Path, name: str) -> dict[str, Any] | None:
    """A JSON file of a bundle (metrics, curves), or None when absent or unreadable."""
    path = Path(folder) / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable, or not JSON
        return None
