"""The feedback store: corrections and the slice embeddings of their audio in one SQL database.

The embeddings of each audio are kept once per embedder, so retraining never needs the upload.
See utils/feedback/db.py for the database side (engine, schema, migrations, locking).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import DateTime, String, and_, delete, false, func, literal, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError

from utils.atomic import atomic_write_text
from utils.audio.quality import ALMOST_SILENT_SHARE
from utils.constants import NOT_MUSIC_LABEL
from utils.feedback.blobs import check_embeddings, from_npy, to_npy
from utils.feedback.db import (
    FeedbackError,
    correction_usage,
    corrections,
    default_url,
    display_url,
    insert_if_absent,
    is_read_only,
    jobs,
    make_engine,
    migrate,
    read,
    slice_embeddings,
    stats,
    write_transaction,
)
from utils.feedback.export import to_csv
from utils.feedback.records import (
    MAX_KEY_CHARS,
    SHA256,
    AddResult,
    Correction,
    SliceEmbeddings,
    idempotency_key,
    short_text,
    validate_genres,
    validate_note,
    validate_probabilities,
    validate_session,
    validate_window,
)
from utils.text import safe_display_name


def _utc(dt: datetime) -> datetime:
    """Aware UTC datetime (SQLite hands back naive values that were stored as UTC)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _correction(r: RowMapping) -> Correction:
    """Row to Correction."""
    return Correction(
        id=int(r["id"]), idempotency_key=r["idempotency_key"], audio_sha256=r["audio_sha256"],
        file_name=r["file_name"], model_id=r["model_id"], model_version=r["model_version"],
        embedder_id=r["embedder_id"], probabilities=json.loads(r["probabilities"]),
        genres=tuple(r["genres"].split("|")), window_start_s=r["window_start_s"], window_end_s=r["window_end_s"],
        note=r["note"], created_at=_utc(r["created_at"]), session_id=r.get("session_id"),
    )


class FeedbackStore:
    """Corrections and slice embeddings in one SQL database (SQLite file by default, any SQLAlchemy URL)."""

    def __init__(self, url: str | None = None, *, create: bool = True) -> None:
        """Open (and migrate) the database. `create=False` is for commands that only read: a SQLite file that
        does not exist is then refused (FeedbackError) instead of being created empty, typo and all.
        A SQLite file this process may not write is opened read-only (`read_only`): reads work, writes
        raise FeedbackError saying so."""
        self.url = url or default_url()
        try:
            self.engine = make_engine(self.url, create=create)
            migrate(self.engine)
        except FeedbackError:  # a ValueError already worded for the user (say, a newer schema)
            raise
        except ArgumentError as exc:
            raise FeedbackError(f"{self.location} is not a usable database URL ({exc}).") from exc
        except ValueError as exc:  # SQLAlchemy parses a port like ":notaport" with int()
            raise FeedbackError(f"{self.location} is not a usable database URL: check its host and port.") from exc
        except DBAPIError as exc:
            raise FeedbackError(f"Could not open the feedback database {self.location}: "
                                f"{str(exc.orig).splitlines()[0] if exc.orig else exc}") from exc
        except ImportError as exc:
            raise FeedbackError(f"The database driver for {self.location} is not installed ({exc.name}).") from exc
        except OSError as exc:
            reason = exc.strerror or exc
            raise FeedbackError(f"Could not create the feedback database {self.location}: {reason}.") from exc

    @property
    def read_only(self) -> bool:
        """Whether the database was opened for reading only (a SQLite file this process may not write)."""
        return is_read_only(self.engine)

    @property
    def location(self) -> str:
        """Where the data lives, without any password."""
        try:
            return display_url(self.url)
        except Exception:  # a malformed URL: show nothing of it
            return "(unparseable database URL)"

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # ---------------------------------------------------------------- writes
    def add(
        self, *, audio_sha256: str, file_name: str | None, model_id: str, model_version: str, embedder_id: str,
        probabilities: Mapping[str, float] | Sequence[float] | np.ndarray, genres: Iterable[str] | str,
        window_start_s: float | None = None, window_end_s: float | None = None, note: str | None = None,
        key: str | None = None, embeddings: SliceEmbeddings | None = None, session_id: str | None = None,
    ) -> AddResult:
        """Store one correction (and the audio's embeddings, once); an identical resubmission returns the first.

        `session_id` records who submitted it (an opaque id, never anything personal); a resubmission
        under another session's key is refused rather than answered with that session's row.
        """
        sha = str(audio_sha256).lower()
        if not SHA256.match(sha):
            raise FeedbackError("The audio fingerprint must be a 64-character hex sha256.")
        chosen = validate_genres(genres)
        text_note = validate_note(note)
        start, end = validate_window(window_start_s, window_end_s)
        session = validate_session(session_id)
        values = {
            "idempotency_key": short_text(key, "idempotency key", MAX_KEY_CHARS) if key
            else idempotency_key(sha, chosen, text_note, start, session),
            "session_id": session,
            "audio_sha256": sha, "file_name": safe_display_name(file_name),
            "model_id": short_text(model_id, "model id"), "model_version": short_text(model_version, "model version"),
            "embedder_id": short_text(embedder_id, "embedder id"),
            "probabilities": json.dumps(validate_probabilities(probabilities)), "genres": "|".join(chosen),
            "window_start_s": start, "window_end_s": end, "note": text_note,
        }
        emb = None
        if embeddings is not None:
            emb = check_embeddings(embeddings)
            if emb.audio_sha256.lower() != sha or emb.embedder_id != values["embedder_id"]:
                raise FeedbackError("The embeddings belong to another audio or embedder than the correction.")

        def work(conn: Connection) -> AddResult:
            found = conn.execute(select(corrections).where(
                corrections.c.idempotency_key == values["idempotency_key"])).mappings().first()
            if found is not None:
                existing = _correction(found)
                same = (existing.audio_sha256, existing.genres, existing.note, existing.window_start_s,
                        existing.session_id) == (sha, chosen, text_note, start, session)
                if not same:
                    raise FeedbackError("This idempotency key was already used for a different correction.")
                return AddResult(existing, created=False)
            emb_id = self._embedding_id(conn, sha, values["embedder_id"], emb)
            row = {**values, "embedding_id": emb_id, "created_at": datetime.now(UTC)}
            new_id = conn.execute(corrections.insert().values(**row)).inserted_primary_key[0]
            stored = conn.execute(select(corrections).where(corrections.c.id == new_id)).mappings().one()
            return AddResult(_correction(stored), created=True)

        try:
            return write_transaction(self.engine, work)
        except IntegrityError:  # a concurrent writer (PostgreSQL) stored the same key first: the rerun finds it
            stats["conflicts"] += 1
            try:
                return write_transaction(self.engine, work)
            except IntegrityError as exc:
                raise FeedbackError(f"The correction could not be stored: {str(exc.orig).splitlines()[0]}") from exc

    def add_analysis(
        self, analysis: Any, genres: Iterable[str] | str, *, hop_seconds: float, frame_seconds: float,
        note: str | None = None, window_start_s: float | None = None, key: str | None = None,
        session_id: str | None = None,
    ) -> AddResult:
        """Store a correction of an engine `Analysis`, with its slice embeddings (hop/frame of the embedder).

        A genre for silent audio, or for the whole of almost silent audio, is refused: nothing in it could
        teach a head that genre, yet a retrain would learn it (a "not music" answer is kept: it trains nothing).
        """
        quality = getattr(analysis, "quality", None) or {}
        if validate_genres(genres) != (NOT_MUSIC_LABEL,):
            name = safe_display_name(analysis.name)
            if quality.get("peak") == 0.0:
                raise FeedbackError(f"{name} is silent, so there is no music in it to learn a genre from; answer "
                                    "\"not music\" instead.")
            if window_start_s is None and quality.get("silence_ratio", 0.0) >= ALMOST_SILENT_SHARE:
                raise FeedbackError(f"{name} is {quality['silence_ratio']:.0%} silence, so a genre for all of it "
                                    "would teach silence; correct the window where the music is, or answer "
                                    "\"not music\".")
        embedder_id = str(analysis.model.get("embedder", ""))
        embeddings = None
        if analysis.slice_embeddings is not None:
            embeddings = SliceEmbeddings(analysis.sha256, embedder_id, analysis.slice_embeddings,
                                         analysis.slice_starts_s, hop_seconds, frame_seconds)
        return self.add(
            audio_sha256=analysis.sha256, file_name=analysis.name, model_id=str(analysis.model.get("id", "")),
            model_version=str(analysis.model.get("version", "")), embedder_id=embedder_id,
            probabilities=analysis.probabilities, genres=genres, window_start_s=window_start_s, note=note,
            key=key, embeddings=embeddings, session_id=session_id,
        )

    @staticmethod
    def _embedding_id(conn: Connection, sha: str, embedder_id: str, emb: SliceEmbeddings | None) -> int | None:
        """Id of the stored embeddings of this audio and embedder, inserting them when new.

        The row is read FOR KEY SHARE (PostgreSQL; SQLite's write lock already serialises), so a delete of the
        audio's last other correction cannot remove it before this correction refers to it; a concurrent first
        insert of the same embeddings is no error either (`insert_if_absent`).
        """
        where = and_(slice_embeddings.c.audio_sha256 == sha, slice_embeddings.c.embedder_id == embedder_id)
        locked = select(slice_embeddings.c.id).where(where).with_for_update(read=True, key_share=True)
        found = conn.execute(locked).scalar()
        if found is not None or emb is None:
            return found
        insert_if_absent(conn, slice_embeddings, dict(
            audio_sha256=sha, embedder_id=embedder_id, data=to_npy(emb.embeddings),
            shape=json.dumps(list(emb.embeddings.shape)), dtype=str(emb.embeddings.dtype),
            slice_starts=json.dumps([round(float(s), 6) for s in emb.slice_starts]),
            hop_seconds=emb.hop_seconds, frame_seconds=emb.frame_seconds, created_at=datetime.now(UTC),
        ), unique=("audio_sha256", "embedder_id"))
        return conn.execute(locked).scalar_one()

    def delete(self, correction_id: int, session_id: str | None = None) -> Correction:
        """Delete one correction (its usage records go with it; its embeddings too when nothing else uses them).

        With `session_id` (a user who is not the admin) only that session's own correction goes, and only
        while no model has trained on it and no retrain is queued or running (one may be training on it):
        a trained model's record of what it learned from stays whole.
        """
        own = validate_session(session_id) if session_id is not None else None
        if session_id is not None and own is None:
            raise FeedbackError("A session id is needed to delete one's own correction.")

        def work(conn: Connection) -> Correction:
            found = conn.execute(select(corrections).where(corrections.c.id == int(correction_id))).mappings().first()
            if found is None or (own is not None and found["session_id"] != own):  # never says whose it is
                raise FeedbackError(f"There is no correction #{correction_id}"
                                    + (" among this session's." if own is not None else "."))
            if own is not None and conn.execute(select(func.count()).where(
                    correction_usage.c.correction_id == found["id"])).scalar():
                raise FeedbackError(f"Correction #{correction_id} has trained a model already, so only the admin "
                                    "may delete it.")
            if own is not None and conn.execute(select(func.count()).where(jobs.c.active_slot.is_not(None))).scalar():
                # a retrain reads the corrections when it starts and records them when it ends, minutes later
                raise FeedbackError("A retrain is queued or running and may be learning from this correction; "
                                    "delete it once the retrain has finished.")
            conn.execute(delete(correction_usage).where(correction_usage.c.correction_id == found["id"]))
            conn.execute(delete(corrections).where(corrections.c.id == found["id"]))
            emb_id = found["embedding_id"]
            if emb_id is not None:  # lock first: an add committing a new user of it is then counted below
                conn.execute(select(slice_embeddings.c.id).where(slice_embeddings.c.id == emb_id).with_for_update())
            if emb_id is not None and not conn.execute(
                    select(func.count()).where(corrections.c.embedding_id == emb_id)).scalar():
                conn.execute(delete(slice_embeddings).where(slice_embeddings.c.id == emb_id))
            return _correction(found)

        return write_transaction(self.engine, work)

    def mark_used(self, model_version: str, correction_ids: Iterable[int | Correction]) -> None:
        """Record that a model version was trained with these corrections (ones deleted meanwhile are skipped).

        Pass the `Correction`s trained on where you have them: a row is then marked only when both its id and
        its idempotency key still match, so a correction stored after the trainer's snapshot is never marked,
        whatever id it got (databases before schema v5 could hand a deleted id out again). Plain ids mark
        whichever row has that id now.
        One INSERT ... SELECT ... ON CONFLICT DO NOTHING: two concurrent calls for the same version (a
        duplicate submission) store each pair once, on PostgreSQL too, where a read-then-insert would race.
        A correction deleted between the SELECT and the foreign-key check is retried once and then skipped.
        """
        items = list(correction_ids)
        ids = sorted({int(i) for i in items if not isinstance(i, Correction)})
        pairs = sorted({(c.id, c.idempotency_key) for c in items if isinstance(c, Correction)})
        version = short_text(model_version, "model version")
        if not ids and not pairs:
            return
        dialect = {"postgresql": postgresql, "sqlite": sqlite}.get(self.engine.dialect.name)
        which = or_(corrections.c.id.in_(ids), tuple_(corrections.c.id, corrections.c.idempotency_key).in_(pairs))

        def work(conn: Connection) -> None:
            rows = select(literal(version, String(200)), corrections.c.id, literal(datetime.now(UTC), DateTime(True)))
            rows = rows.where(which)
            if dialect is None:  # other databases: skip the pairs already there, then insert the rest
                have = select(correction_usage.c.correction_id).where(correction_usage.c.model_version == version)
                conn.execute(correction_usage.insert().from_select(
                    ["model_version", "correction_id", "used_at"], rows.where(corrections.c.id.not_in(have))))
                return
            conn.execute(dialect.insert(correction_usage).from_select(
                ["model_version", "correction_id", "used_at"], rows).on_conflict_do_nothing(
                index_elements=["model_version", "correction_id"]))

        try:
            write_transaction(self.engine, work)
        except IntegrityError:  # a correction was deleted under us (PostgreSQL): the rerun no longer selects it
            stats["conflicts"] += 1
            write_transaction(self.engine, work)

    # ---------------------------------------------------------------- reads
    def get(self, correction_id: int) -> Correction | None:
        """One correction by id."""
        row = read(self.engine, lambda c: c.execute(
            select(corrections).where(corrections.c.id == int(correction_id))).mappings().first())
        return _correction(row) if row else None

    def list(
        self, genre: str | None = None, model_version: str | None = None,
        since: datetime | None = None, until: datetime | None = None, session_id: str | None = None,
    ) -> list[Correction]:
        """Corrections, oldest first, filtered by corrected genre, model version, [since, until) and session."""
        q = select(corrections).order_by(corrections.c.id)
        if session_id is not None:  # "" or a bad id match nothing, never the session-less (CLI) rows
            sid = validate_session(session_id) if session_id else None
            q = q.where(corrections.c.session_id == sid) if sid else q.where(false())
        if genre:
            g = validate_genres(genre)[0]
            q = q.where((literal("|") + corrections.c.genres + literal("|")).like(f"%|{g}|%"))
        if model_version:
            q = q.where(corrections.c.model_version == model_version)
        if since is not None:
            q = q.where(corrections.c.created_at >= _utc(since))
        if until is not None:
            q = q.where(corrections.c.created_at < _utc(until))
        return [_correction(r) for r in read(self.engine, lambda c: c.execute(q).mappings().all())]

    def count(self) -> int:
        """Number of stored corrections."""
        return int(read(self.engine, lambda c: c.execute(select(func.count()).select_from(corrections)).scalar()))

    def embeddings(self, audio_sha256: str, embedder_id: str) -> SliceEmbeddings | None:
        """The stored slice embeddings of an audio for one embedder."""
        r = read(self.engine, lambda c: c.execute(select(slice_embeddings).where(
            slice_embeddings.c.audio_sha256 == audio_sha256.lower(),
            slice_embeddings.c.embedder_id == embedder_id)).mappings().first())
        if r is None:
            return None
        return SliceEmbeddings(
            r["audio_sha256"], r["embedder_id"], from_npy(r["data"], json.loads(r["shape"]), r["dtype"]),
            np.asarray(json.loads(r["slice_starts"]), dtype=np.float64), float(r["hop_seconds"]),
            float(r["frame_seconds"]),
        )

    def usage(self) -> dict[int, list[str]]:
        """Correction id -> model versions trained with it."""
        rows = read(self.engine, lambda c: c.execute(select(correction_usage).order_by(
            correction_usage.c.used_at)).mappings().all())
        out: dict[int, list[str]] = {}
        for r in rows:
            out.setdefault(int(r["correction_id"]), []).append(r["model_version"])
        return out

    # ---------------------------------------------------------------- export
    def to_csv(self, items: Iterable[Correction] | None = None) -> str:
        """CSV text of corrections (all by default), formula-like cells neutralised for spreadsheets."""
        return to_csv(self.list() if items is None else items)

    def export_csv(self, path: str | os.PathLike) -> int:
        """Write every correction to a CSV file (atomically); returns the number of rows."""
        items = self.list()
        atomic_write_text(path, to_csv(items))
        return len(items)
