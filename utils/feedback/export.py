"""Corrections as CSV for spreadsheets: a fixed column order, formula-like cells neutralised."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable
from typing import Any

from utils.feedback.records import Correction

FIELDS = [
    "id", "created_at", "file_name", "genres", "predicted", "window_start_s", "window_end_s", "note",
    "model_version", "model_id", "embedder_id", "audio_sha256", "probabilities", "idempotency_key", "session_id"]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")  # with full-width lookalikes


def csv_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas in text cells: a leading = + - @ would be executed by Excel, also after
    spaces or invisible characters (zero-width space, BOM) that some spreadsheets skip."""
    if isinstance(value, str):
        visible = value.lstrip(" \u00a0\u200b\u200c\u200d\u2060\ufeff")
        if visible[:1] in FORMULA_STARTS or (visible[:1] and unicodedata.category(visible[0]) == "Cf"):
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
