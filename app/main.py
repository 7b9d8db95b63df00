"""Streamlit entry point: page config, navigation over the pages, and the shared sidebar.

Run with `streamlit run app/main.py`. Streamlit puts app/ (not the project root) on sys.path, so
the root is added first; pages then import `app.*`, `models.*` and `utils.*` as usual.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
import torch  # noqa: E402

from app.ui import layout, retrain_views, state, thresholds  # noqa: E402
from models.classifier.bundle import CheckpointError, read_card  # noqa: E402
from models.trust import MAX_THRESHOLD, MIN_THRESHOLD  # noqa: E402
from utils import settings  # noqa: E402

PAGES = ROOT / "pages"


def build_pages() -> dict[str, list[st.Page]]:
    """Navigation sections: listen to tracks, read the model's metrics, improve it with corrections."""
    return {
        "Listen": [st.Page(PAGES / "analyze.py", title="Analyze", icon=":material/graphic_eq:", default=True),
                   st.Page(PAGES / "explore.py", title="Explore", icon=":material/travel_explore:")],
        "Model": [st.Page(PAGES / "metrics.py", title="Metrics", icon=":material/monitoring:")],
        "Improve": [st.Page(PAGES / "feedback.py", title="Feedback", icon=":material/rate_review:")],
    }


def device_line() -> str:
    """Where inference runs, without loading the model (the sidebar must stay instant)."""
    wanted = settings.load().device
    if (wanted or "cuda").startswith("cuda") and torch.cuda.is_available():
        return f"GPU · {torch.cuda.get_device_name(0)}"
    return f"CPU · {torch.get_num_threads()} threads · torch {torch.__version__.split('+')[0]}"


VERSION_PICK = "gl.version_pick"


def model_picker() -> str | None:
    """Sidebar model section; returns the version in use (None when no model exists)."""
    try:
        active = state.version_select(VERSION_PICK, st.sidebar,
                                      help="Older versions stay available to compare their predictions. The "
                                           "Metrics page shows the version picked here.")
    except OSError:
        active = None
    if active is None:
        st.sidebar.warning("No trained model yet.", icon=":material/warning:")
        return None
    try:
        card = read_card(state.bundle_dir(active))
        st.sidebar.caption(f"Model **{card.version}** · {card.embedder.get('name', '?')} · "
                           f"weights `{card.weights_sha256[:8]}`")
    except CheckpointError:
        st.sidebar.caption(f"Model **{active}**")
    return active


def sidebar() -> None:
    """The sidebar every page shares: model version, decision threshold, device."""
    with st.sidebar:
        st.markdown("### :material/headphones: Genre Lens")
    model_picker()
    st.sidebar.slider("Decision threshold", MIN_THRESHOLD, MAX_THRESHOLD, step=0.05, key=thresholds.THRESHOLD_KEY,
                      help="A genre is named when its probability reaches this value (the model is multi-label); "
                      "below it the verdict is 'Not sure'. The default was chosen on validation tracks for this model.")
    st.sidebar.caption(device_line())


# "auto": open on a wide screen, collapsed on a phone, where an open sidebar covers the page.
st.set_page_config(page_title="Genre Lens", page_icon="🎧", layout="wide", initial_sidebar_state="auto")
st.html(layout.narrow_screen_css())
state.init_session()
retrain_views.ensure_worker()  # queued retrains run in this server process, outside every request
navigation = st.navigation(build_pages())
sidebar()
navigation.run()
