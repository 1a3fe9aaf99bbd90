"""Benchmarks of hidesync-events: ``python -m bench`` (see ``bench/__main__.py``)."""
