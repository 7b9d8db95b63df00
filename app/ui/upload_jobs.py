"""Running the engine on one upload from a page: shared by Analyze and Feedback so both fail and report alike."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from app.analysis import Analysis
from app.engine import Engine, Progress
from app.ui import state
from app.ui.session_store import DEFAULT_MAX_SESSION_BYTES
from utils.audio import AudioError
from utils.constants import AUDIO_EXTENSIONS
from utils.text import browser_file_name, md_escape, plural, safe_display_name

log = logging.getLogger("genre_lens.uploads")
ACCEPTED = sorted(ext.lstrip(".") for ext in AUDIO_EXTENSIONS)  # what the decoder and the CLI take, no fewer
MIME = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "opus": "audio/ogg", "mp3": "audio/mpeg",
        "m4a": "audio/mp4", "aac": "audio/aac", "aiff": "audio/aiff", "aif": "audio/aiff"}
QUEUE_MAX_BYTES = DEFAULT_MAX_SESSION_BYTES  # an interrupted batch's bytes kept per session (as its tracks)
FAILED_KEY = "gl.failed"  # {error key: name} of the Analyze page's failed files, shown until dismissed
FRIENDLY_FAILURE = "Something went wrong while analysing this file. The problem was logged; please try another file."


@dataclass(frozen=True)
class Job:
    """One file to analyse: a new upload, or a kept track whose model has since changed."""

    name: str
    data: bytes
    mime: str
    error_key: str  # where a failure is recorded: the upload's file id (a kept track's sha256)
    sha256: str = ""  # of `data`: hashed here only when the caller has not already (the queue is keyed by it)

    def __post_init__(self) -> None:
        if not self.sha256:
            object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())


def mime_of(name: str, fallback: str | None) -> str:
    """The player's MIME type for an upload: from its extension, else the browser's guess."""
    return MIME.get(name.rsplit(".", 1)[-1].lower(), fallback or "audio/wav")


def upload_job(upload: UploadedFile, data: bytes, sha256: str = "") -> Job:
    """The job for a browser upload, named as the user's file system names it (see `browser_file_name`)."""
    return Job(browser_file_name(upload.name), data, mime_of(upload.name, upload.type), upload.file_id, sha256)


def kept_track_job(a: Analysis, audio: tuple[bytes, str]) -> Job:
    """The job that analyses a session track again (another model now) from its kept (bytes, mime)."""
    return Job(a.name, audio[0], audio[1], a.sha256, a.sha256)


def left_note(left: list[Job], done: bool) -> str:
    """The line about files an interrupted run left: said while they run, and as done once they are
    (with how many failed: "Analysed 3 files" was said when one of the three had failed)."""
    if not done:
        return f"Analysing {plural(len(left), 'file')} left from before you switched pages."
    failed = sum(state.upload_error(job.error_key) is not None for job in left)
    if not failed:
        return f"Analysed {plural(len(left), 'file')} left from before you switched pages."
    return (f"Analysed {len(left) - failed} of {plural(len(left), 'file')} left from before you switched pages; "
            f"{failed} could not be analysed (see below).")


def remember_failure(job: Job) -> None:
    """Keep a failed file's name with its error, so the error outlives its chip: a page switch empties the
    upload box, and a file that failed before the switch then appeared nowhere (no error, no track)."""
    if state.upload_error(job.error_key) is not None:
        st.session_state.setdefault(FAILED_KEY, {})[job.error_key] = job.name


def loose_failures(listed: set[str]) -> list[tuple[str, str, str]]:
    """(key, name, error) of failed files not in `listed` (their chip is gone), until dismissed. An error
    forgotten since (its chip removed by the user, "Clear all") drops its entry here."""
    failed: dict[str, str] = st.session_state.get(FAILED_KEY, {})
    for key in [k for k in failed if state.upload_error(k) is None]:
        del failed[key]
    return [(k, name, msg) for k, name in failed.items() if k not in listed and (msg := state.upload_error(k))]


def dismiss_failures(keys: list[str]) -> None:
    """Stop showing these errors (the files stay recorded as failed, so they are not analysed again)."""
    failed = st.session_state.get(FAILED_KEY, {})
    for key in keys:
        failed.pop(key, None)


def shown_name(name: str) -> str:
    """An upload's name as the page shows it: the browser's encoding undone, control and direction-override
    characters dropped (a U+202E in a name reversed the rest of its error sentence), long names cut."""
    return safe_display_name(browser_file_name(name))


def same_audio_notes(held: dict[str, tuple[str | None, str]], failed: set[str] = frozenset()) -> list[str]:
    """A sentence for each chip whose audio another chip already holds ({file id: (sha256, name)}, chip
    order): the bytes are analysed and shown once, under the first name, and the second name appeared
    nowhere, so it looked lost. `failed`: file ids whose analysis failed, so their twins are not "shown"."""
    first: dict[str, tuple[str, str]] = {}
    notes = []
    for file_id, (sha, name) in held.items():
        if sha is None:
            continue
        if sha not in first:
            first[sha] = (file_id, name)
        elif first[sha][0] in failed:
            notes.append(f"{shown_name(name)} has the same bytes as {shown_name(first[sha][1])}, which could not "
                         "be analysed (see the error above).")
        else:
            notes.append(f"{shown_name(name)} has the same audio as {shown_name(first[sha][1])}, "
                         "so it is shown once, under that name.")
    return notes


def known_audio_note(name: str, known_name: str) -> str | None:
    """The sentence for an upload whose bytes this session already analysed under another name (None: same name)."""
    if browser_file_name(name) == browser_file_name(known_name):  # compared whole: shown names are cut at 120
        return None
    return (f"{shown_name(name)} has the same audio as {shown_name(known_name)}, already analysed, "
            "so it is shown under that name.")


def queue_batch(todo: list[Job], engine: Engine) -> tuple[list[Job], list[Job], int]:
    """(this run's jobs plus those an interrupted run left, the left ones, how many could not be queued).

    A batch runs inside one script run. A page switch ends that run, and the uploader comes back empty,
    so the files not analysed yet were lost without a word. Queued in the session, their bytes wait for
    the next visit to the Analyze page (`job_done` takes each off as it ends, failed or not). The queue
    holds at most `QUEUE_MAX_BYTES`: the files past it are analysed now but would not survive a switch.
    """
    queue: dict[str, Job] = st.session_state.setdefault(state.QUEUE_KEY, {})
    batch = {job.sha256: job for job in todo}
    left = []
    for sha, job in list(queue.items()):
        known = state.get_track(sha)
        if sha in batch or (known is not None and known.model.get("id") == engine.model_id):
            continue  # queued again by this run, or done since
        batch[sha] = job
        left.append(job)
    kept, size = {}, 0
    for sha, job in batch.items():
        if size + len(job.data) <= QUEUE_MAX_BYTES:
            kept[sha] = job
            size += len(job.data)
    st.session_state[state.QUEUE_KEY] = kept
    return list(batch.values()), left, len(batch) - len(kept)


def job_done(job: Job) -> None:
    """Take a job off the session's queue once it ended (analysed, or its failure recorded)."""
    st.session_state.get(state.QUEUE_KEY, {}).pop(job.sha256, None)


def public_progress(message: str) -> str:
    """A progress line that does not tell this user whether someone else already analysed the same bytes."""
    return "Done" if message.startswith("Done") else message


def show_upload_error(name: str, message: str) -> None:
    """A failed file as one error line: its name in bold, both shown literally (messages may quote the name)."""
    st.error(f"**{md_escape(shown_name(name))}**: {md_escape(message)}", icon=":material/error:")


def analyse_one(engine: Engine, job: Job, progress: Progress) -> None:
    """Run the engine on one file; errors become a recorded sentence (never retried, never a traceback)."""
    try:
        analysis = engine.analyze(job.data, filename=job.name, progress=progress)
    except AudioError as exc:
        state.record_upload_error(job.error_key, str(exc))
    except Exception:  # the page boundary: log it, show a sentence
        log.exception("analysis of an upload failed")
        state.record_upload_error(job.error_key, FRIENDLY_FAILURE)
    else:
        state.add_track(analysis, job.data, job.mime)
