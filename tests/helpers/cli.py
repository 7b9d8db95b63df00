"""What the command-line tests share."""

from __future__ import annotations

import pytest


def one_error_line(capsys: pytest.CaptureFixture) -> str:
    """The single `error:` line a user error prints (no traceback, nothing else on stderr)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]
