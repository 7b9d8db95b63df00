"""Corrections as CSV for spreadsheets: a fixed column order, formula-like cells neutralised."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from utils.feedback.records import Correction

FIELDS = [
    "id", "created_at", "file_name", "genres", "predicted", "window_start_s", "window_end_s", "note",
    "model_version", "model_id", "embedder_id", "audio_sha256", "probabilities", "idempotency_key", "session_id"]


def csv_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas in text cells (a leading = + - @ would be executed by Excel)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def to_csv(items: Iterable[Correction]) -> str:
    """CSV text of corrections."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for c in items:
        row = c.row()
        writer.writerow({k: csv_cell(row[k]) for k in FIELDS})
    return buf.getvalue()
