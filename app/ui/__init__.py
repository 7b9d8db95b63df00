"""Streamlit UI: session state, chart builders and page views (only pages/ and app/main.py use these)."""
