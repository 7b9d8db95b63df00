"""The Compare table as HTML that wraps on a phone: names break anywhere, columns share the width.

`st.dataframe` draws a canvas grid whose columns keep their widths, so at 400 px it scrolls
sideways. This renders the same rows (`charts.compare_table`) as a plain table with every cell
escaped (file names are user text). No Streamlit here.
"""

from __future__ import annotations

import re

import pandas as pd

from app.ui.charts import ACCENT, genre_color
from utils.text import html_text

TABLE_CLASS = "gl-compare"
NAME_MIN_WIDTH = "6rem"  # with `breakable_name`, "blues.00000.flac" wraps as "blues.00000" / ".flac"
STYLE = f"""<style>
table.{TABLE_CLASS} {{ width: 100%; border-collapse: collapse; table-layout: auto; font-size: 0.9rem; }}
table.{TABLE_CLASS} th, table.{TABLE_CLASS} td {{ padding: 4px 6px; border-bottom: 1px solid rgba(232,230,227,0.12);
  text-align: left; vertical-align: top; overflow-wrap: break-word; }}
table.{TABLE_CLASS} td.name {{ overflow-wrap: anywhere; min-width: {NAME_MIN_WIDTH}; }}
table.{TABLE_CLASS} th {{ font-weight: 600; opacity: 0.8; }}
table.{TABLE_CLASS} .bar {{ height: 6px; border-radius: 3px; background: {ACCENT}; margin-top: 3px; }}
table.{TABLE_CLASS} .num {{ font-variant-numeric: tabular-nums; white-space: nowrap; }}
@media (max-width: 640px) {{ table.{TABLE_CLASS} .wide {{ display: none; }} }}
</style>"""
# dropped on a phone (the verdict names the top genre; the details show the rest), so the verdict keeps
# room to read instead of wrapping one word per line
NARROW_HIDDEN = ("top genre", "genres above threshold", "duration (s)", "windows", "warnings")


def breakable_name(name: str) -> str:
    """The escaped name, with break points before its dots and after "_" / "-" when it has no spaces.

    A narrow column otherwise breaks "blues.00000.flac" anywhere ("blues.00000.fla" / "c"); a name with
    spaces already breaks between words. Entities hold no ".", "_" or "-", so no marker splits one.
    """
    escaped = html_text(name)
    if any(ch.isspace() for ch in name):
        return escaped
    return re.sub(r"(?<=[_-])(?=.)|(?<=.)(?=\.)", "<wbr>", escaped)


def compare_html(table: pd.DataFrame) -> str:
    """The compare rows as an escaped, wrapping HTML table (confidence as a percentage and a bar)."""
    columns = list(table.columns)
    head = "".join(f'<th class="{"wide" if c in NARROW_HIDDEN else ""}">{html_text(c)}</th>' for c in columns)
    rows = []
    for _, row in table.iterrows():
        cells = []
        for c in columns:
            value = row[c]
            cls = "wide" if c in NARROW_HIDDEN else "name" if c == "track" else ""
            if c == "confidence" and pd.isna(value):  # not music: no confidence
                inner = '<span class="num">—</span>'
            elif c == "confidence":
                pct = max(0.0, min(1.0, float(value)))
                inner = f'<span class="num">{pct:.0%}</span><div class="bar" style="width:{100 * pct:.0f}%"></div>'
            elif c == "track":
                inner = breakable_name(str(value))
            elif c == "top genre":
                inner = (f'<span style="color:{genre_color(str(value))};font-weight:600">'
                         f"{html_text(value)}</span>")
            else:
                inner = html_text(value)
            cells.append(f'<td class="{cls}">{inner}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'{STYLE}<table class="{TABLE_CLASS}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
