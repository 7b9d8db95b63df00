"""Shared test factories and fixtures: generated audio, tables, bundles, app and browser harnesses.

Test modules import from here, never from each other.
"""
