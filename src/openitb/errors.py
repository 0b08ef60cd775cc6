"""The one exception family of OpenITB.

A user-facing error names the field, the value given and what is allowed, so that a clinician
reading it knows what to correct without reading code.
"""

from __future__ import annotations


class OpenITBError(Exception):
    """Base of every error OpenITB raises on purpose."""


class InvalidInput(OpenITBError, ValueError):
    """An input from outside (CLI, API, file, frame) is not acceptable. Nothing was changed."""

    def __init__(self, field: str, given: object, allowed: str) -> None:
        self.field = field
        self.given = given
        self.allowed = allowed
        super().__init__(f"{field}: got {given!r}; {allowed}")


class RefusedOperation(OpenITBError):
    """A well-formed request that the current state or a safety rule does not permit."""

    def __init__(self, reason: str, code: str = "refused") -> None:
        self.reason = reason
        self.code = code
        super().__init__(reason)
