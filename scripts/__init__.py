"""Command-line tools of the repository: run as ``python3 scripts/NAME.py``, imported by tests."""
