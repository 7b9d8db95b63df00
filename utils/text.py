"""User text (file names, notes): the one display-name sanitiser, and encoders for each place it is drawn.

`safe_display_name` turns an uploader's file name into a name to show and store (basename only, no
control characters). The encoders below never change a character the reader sees:

A file name is whatever the uploader chose: `bob <b>&amp; 'co' <img src=x onerror=alert(1)>.flac`
must appear exactly like that. Markdown would turn `*x*` into italics and `&amp;` into `&`,
plotly reads `<b>` and entities in its labels, and HTML would run the `<img>`. Each helper here
encodes for one of those so the reader sees the literal characters. No Streamlit here.
"""

from __future__ import annotations

import html
import re
import unicodedata

_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character CommonMark can escape
_BREAKS = re.compile("[\t\n\r\v\f\u2028\u2029]")  # white space that markdown would break on: a space
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")  # controls, bidi marks


def md_escape(text: object) -> str:
    """Backslash-escape every ASCII punctuation character so markdown shows `text` literally; control and
    direction characters (escapes, U+202E) are dropped; a zero-width joiner stays, for emoji.

    Streamlit also expands emoji short codes (`:smile:`) after parsing; escaping cannot stop that,
    so names are drawn with `html_text` or as plain widgets/cells where exactness matters.
    """
    text = _HIDDEN.sub("", _BREAKS.sub(" ", str(text)))  # a U+202E in a quoted name reversed the sentence
    return _MD_PUNCTUATION.sub(r"\\\1", text)


def plotly_text(text: object) -> str:
    """Text for plotly labels, titles and hover: plotly parses a little HTML (`<b>`, `&amp;`), so encode it."""
    return html.escape(str(text), quote=False)


def html_text(text: object) -> str:
    """Text for an HTML fragment: every markup character as an entity, quotes included."""
    return html.escape(str(text), quote=True)


def heading_html(text: object, level: int = 3) -> str:
    """An HTML heading whose visible text is exactly `text` (for `st.html`)."""
    level = min(max(int(level), 1), 6)
    size = {1: 2.5, 2: 2.0, 3: 1.6, 4: 1.3}.get(level, 1.1)  # Streamlit's heading scale (st.html has none)
    style = f"margin:0.4rem 0 0.2rem 0;font-size:{size}rem;font-weight:600;line-height:1.25;overflow-wrap:anywhere"
    return f'<h{level} style="{style}">{html_text(text)}</h{level}>'


_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:\\|\\|\.\.?\\)|\\\.\.?\\")  # C:\, \\server, ..\, a\..\b


def safe_display_name(name: str | None, max_len: int = 120) -> str:
    """File name fit for display/storage: basename only, control chars/path separators stripped;
    never used as a path (the UI renders it as text, so markup characters are kept).

    A backslash is a separator only in a Windows path (`C:\\…`, `\\\\server\\…`, `..\\…`): on Linux and macOS it is
    a plain character of names like `AC\\DC - Thunderstruck.mp3`, which used to show as "DC - Thunderstruck.mp3".
    """
    text = unicodedata.normalize("NFC", str(name or ""))
    if _WINDOWS_PATH.search(text):
        text = text.replace("\\", "/")
    text = text.rsplit("/", 1)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C").strip().lstrip(".").strip()
    if not text:
        return "upload"
    if len(text) > max_len:
        stem, dot, ext = text.rpartition(".")
        keep = f".{ext}" if dot and stem and len(ext) <= min(10, max_len // 2) else ""
        text = text[: max(1, max_len - len(keep) - 1)] + "…" + keep  # the ellipsis says it was cut
    return text


def browser_file_name(name: str) -> str:
    """An upload's name as the user's file system has it: browsers send `"`, CR and LF in a multipart file
    name as %22, %0D and %0A (the HTML form-data encoding), which showed as "%22" in the page."""
    return name.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


def terminal_text(text: object) -> str:
    """Text for a terminal line: control characters (escape sequences, newlines) shown as escapes."""
    return "".join(c if unicodedata.category(c)[0] != "C" else c.encode("unicode_escape").decode() for c in str(text))


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 window', '2 windows' ('1 upload was', with `many` for irregular plurals): no 'window(s)' in the UI."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
