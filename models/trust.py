"""A bundle's trust settings: its decision threshold and its not-music detector (`trust.json`, `novelty.npz`).

Written by `python -m app trust` (docs/recipes/build_msd-musicnn-v3.sh) next to the weights, never
into them: the head's `model.pt` and its sha256 stay as they are. A retrain inherits its parent's
(`inherit_trust`). A bundle without them (v1, v2) still gets verdicts: the default threshold and no
not-music detection.
"""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from models.novelty import NOVELTY_FILE, NoveltyDetector
from utils.atomic import atomic_write_text
from utils.constants import DEFAULT_THRESHOLD

TRUST_FILE = "trust.json"
MIN_THRESHOLD, MAX_THRESHOLD = 0.05, 0.95  # the sidebar slider's range; the dashboard clamps into it
log = logging.getLogger("genre_lens.trust")


@dataclass(frozen=True)
class TrustSettings:
    """What the engine needs to turn probabilities into a verdict."""

    threshold: float = DEFAULT_THRESHOLD
    detector: NoveltyDetector | None = None
    report: dict | None = None  # how they were chosen and measured (shown on the Metrics page)


def load_trust(folder: Path) -> TrustSettings:
    """The bundle's trust settings, or the defaults when it has none (or they are unreadable or out of range).

    Unreadable or out-of-range settings are logged: silently losing the not-music detector would hide it.

    A threshold must be a probability above 0 and at most 1: NaN made every verdict "Not sure", and 0 broke
    the sidebar slider on every page (the dashboard clamps a valid one into the slider's range).
    """
    path = Path(folder) / TRUST_FILE
    if not path.exists():  # v1, v2: no trust files, the documented defaults, nothing to say
        return TrustSettings()
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        threshold = float(report["threshold"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # damaged: say so, as for novelty.npz
        log.warning("ignoring the unreadable trust settings %s: using the default threshold and no "
                    "not-music detector", path)
        return TrustSettings()
    if not 0.0 < threshold <= 1.0:  # NaN fails this too
        log.warning("ignoring %s: threshold %r is not a probability in (0, 1]", path, threshold)
        return TrustSettings()
    detector = None
    if (Path(folder) / NOVELTY_FILE).is_file():
        try:
            detector = NoveltyDetector.load(Path(folder) / NOVELTY_FILE)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # a truncated or foreign file
            log.warning("ignoring the unreadable not-music detector %s", Path(folder) / NOVELTY_FILE)
            detector = None
    return TrustSettings(threshold, detector, report)


def trust_stamp(folder: Path) -> str:
    """Size and modification time of the trust files: changes whenever `app trust` rewrites them in place."""
    parts = []
    for name in (TRUST_FILE, NOVELTY_FILE):
        try:
            st = (Path(folder) / name).stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{name}:-")
    return "|".join(parts)


def save_trust(folder: Path, detector: NoveltyDetector, report: dict) -> None:
    """Write novelty.npz and trust.json (the report must hold the chosen `threshold`)."""
    detector.save(Path(folder) / NOVELTY_FILE)
    atomic_write_text(Path(folder) / TRUST_FILE, json.dumps(report, indent=1))


def inherit_trust(parent: Path, child: Path) -> bool:
    """Give a retrained bundle its parent's trust files; False when the parent has none (or unreadable ones).

    The detector measures the embedding, not the head, so it holds for the child unchanged. The threshold
    was chosen for the parent on `valid`; a retrain keeps the recipe and adds a few corrections, so it is the
    best estimate there is, and `inherited_from` in trust.json says where it came from (`app trust` re-chooses
    both for the child).
    """
    inherited = load_trust(parent).report
    if inherited is None:  # none, unreadable or out of range: the child gets the defaults too
        return False
    report = dict(inherited)
    if (Path(parent) / NOVELTY_FILE).is_file():
        shutil.copy2(Path(parent) / NOVELTY_FILE, Path(child) / NOVELTY_FILE)
    report["inherited_from"] = report.get("inherited_from") or Path(parent).name
    atomic_write_text(Path(child) / TRUST_FILE, json.dumps(report, indent=1))
    return True
