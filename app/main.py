"""Streamlit entry point (the dashboard issue fills in the pages)."""

import streamlit as st

st.set_page_config(page_title="Genre Lens", page_icon="🎧", layout="wide")
st.title("Genre Lens")
st.write("Drag audio files here to see their genres; the full dashboard is on its way.")
