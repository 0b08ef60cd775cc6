"""Fixtures of the link attack tests (defined in helpers.py)."""

from .helpers import impostor, served  # noqa: F401
