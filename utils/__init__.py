"""Streamlit-free helpers: audio I/O, windowing, spectrograms, metrics, stores and tables."""
