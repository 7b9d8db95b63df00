"""Page-wide CSS for narrow screens (phones at about 400 px), injected once per run by app/main.py.

- Plotly's toolbar (zoom, pan, download) floats over the top-right of every chart and, on a
  phone, over its title: below 640 px it is hidden (pinch and drag still zoom and pan).
- The Compare table: the sortable grid on wide screens, the wrapping HTML table on phones
  (pages/analyze.py draws both, in containers keyed `gl-compare-grid` / `gl-compare-wrap`).
"""

from __future__ import annotations

NARROW_MAX_PX = 640

CSS = f"""<style>
.st-key-gl-compare-wrap {{ display: none; }}
@media (max-width: {NARROW_MAX_PX}px) {{
  .js-plotly-plot .modebar-container, .js-plotly-plot .modebar {{ display: none !important; }}
  .st-key-gl-compare-grid {{ display: none; }}
  .st-key-gl-compare-wrap {{ display: block; }}
}}
</style>"""


def narrow_screen_css() -> str:
    """The style sheet (for `st.html`, which puts a style-only block out of the layout flow)."""
    return CSS
