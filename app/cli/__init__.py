"""Command line: `python -m app ...` and `genre-lens ...`.

Each module parses one family of commands and calls app/jobs, the engine or models/training.
"""
