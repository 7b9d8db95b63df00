"""The linked player: a Streamlit custom component (components v1) with a bundled front-end.

`frontend/` holds a hand-written index.html and player.js (canvas + the HTML audio element), served
by Streamlit from this folder: no npm build, no CDN, no network fetch at run time. The component's
value is the user's last click, `{"window": int, "time": float, "seq": int}`; the page turns it
into the selected window. `available()` says whether to try it at all: it can be switched off with
`GENRE_LENS_PLAYER=static` (or `off`), and a missing front-end turns it off too; pages fall back to
the static plotly charts then, and when the component raises.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from utils import settings
from utils.settings import PLAYER_ENV  # noqa: F401  (named in messages and tests)

FRONTEND = Path(__file__).resolve().parent / "frontend"

_component: Callable[..., Any] | None = None


class PlayerUnavailableError(RuntimeError):
    """The linked player cannot be used here; the caller draws the static charts instead."""


def available(frontend: Path = FRONTEND) -> bool:
    """True unless the player is switched off by setting or its front-end files are missing."""
    if not settings.load().player:
        return False
    return (frontend / "index.html").is_file() and (frontend / "player.js").is_file()


def _declared() -> Callable[..., Any]:
    """The component, declared once per process (Streamlit registers it with the running server)."""
    global _component
    if _component is None:
        if not available():
            raise PlayerUnavailableError("the linked player is switched off or its front-end is missing")
        import streamlit.components.v1 as components

        _component = components.declare_component("linked_player", path=str(FRONTEND))
    return _component


def linked_player(meta: dict[str, Any], data: dict[str, bytes | None], audio: bytes | None, key: str,
                  on_change: Callable[[], None] | None = None) -> Any:
    """Draw the player; returns its value (the last click) or None before the first click.

    `meta` and `data` come from `app.ui.player.payload.player_args`; `audio` is the upload's bytes.
    """
    return _declared()(meta=meta, spec=data.get("spec"), overlay=data.get("overlay"), audio=audio, key=key,
                       on_change=on_change, default=None)
