"""Users' genre corrections: records and their checks, embedding blobs, the SQL store, CSV export.

`records` says what a correction is, `engine` opens the database (a missing or read-only SQLite file
is looked at first), `db` owns the schema, migrations and transactions, `store` reads and writes,
`export` turns corrections into CSV. Import the public names from here; the submodules
import each other directly, never this facade, so there is no cycle.
"""

from utils.feedback.records import (
    MAX_NOTE_CHARS,
    AddResult,
    Correction,
    FeedbackError,
    SliceEmbeddings,
    idempotency_key,
    trainable,
    validate_genres,
    validate_note,
)
from utils.feedback.store import FeedbackStore

__all__ = ["MAX_NOTE_CHARS", "AddResult", "Correction", "FeedbackError", "FeedbackStore", "SliceEmbeddings",
           "idempotency_key", "trainable", "validate_genres", "validate_note"]
