"""Genre Lens application: the inference engine, the CLI and the Streamlit dashboard."""
