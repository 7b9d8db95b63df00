"""Atomic file writes: readers see the old file or the new one, never half of either.

One helper for every writer (tables, bundles, caches, exports) so that each gets the same guarantees:
the data goes to a temporary file in the target's folder, is fsynced, renamed over the target, and
the folder entry is fsynced too; on any error the temporary file is removed and the target is untouched.
A symlink at the destination is followed (its target is replaced, the link stays a link), and a destination
that exists but is not a regular file (FIFO, device, socket, folder) is refused with `NotARegularFileError`:
renaming over it would silently swap, say, a named pipe a reader is waiting on for a plain file.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class NotARegularFileError(OSError, ValueError):
    """The destination exists and is not a regular file. An OSError for callers that report failed writes,
    and a ValueError so the command line's one-line handler (app/cli/main.py) prints it without a traceback."""

    def __init__(self, path: str | os.PathLike, kind: str) -> None:
        code = errno.EISDIR if kind == "folder" else errno.EEXIST
        super().__init__(code, f"it is a {kind}, not a regular file, so it was left as it is", str(path))
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.filename} is a {self.kind}, not a regular file; refusing to replace it."


_KINDS = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def resolve_target(path: str | os.PathLike) -> Path:
    """The file a write to `path` must replace: a symlink's final target (so the link survives), refused
    (`NotARegularFileError`) when something other than a regular file is there. A missing target is fine."""
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    try:
        mode = os.stat(target).st_mode  # follows nothing more: realpath resolved every link (a loop: ELOOP)
    except FileNotFoundError:
        return target
    for test, kind in _KINDS:
        if test(mode):
            raise NotARegularFileError(path, kind)
    if not stat.S_ISREG(mode):
        raise NotARegularFileError(path, "special file")
    return target


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(
    path: str | os.PathLike, suffix: str = "", mode: int = 0o644, prefix: str | None = None,
) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on a clean exit it replaces `path`, on an error it is removed.

    `suffix` matters to writers that append one themselves (np.savez adds `.npz` unless it is there);
    `mode` replaces mkstemp's 0600, since bundles and tables must be readable by the app's user.
    `prefix` names the temporary file (default `.<name>.`) for writers that embed it in the data.
    A symlinked `path` replaces the link's target; a FIFO, device, socket or folder there is refused before
    anything is written (and checked again just before the rename).
    """
    target = resolve_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=prefix or f".{target.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        resolve_target(target)  # something else may have appeared there meanwhile
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))
