"""Batch work outside Streamlit requests: embed and evaluate (local or Ray), retrain and trust jobs, the job worker.

Jobs take typed keyword arguments and never import the CLI or the UI.
"""
