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

    def sentence(self, label: str | None = None) -> str:
        """The error as a person reads it: the field by its label (``label``, else the field's
        code), what was typed and what is allowed; nothing given reads "... is required"."""
        name = label or self.field
        allowed = self.allowed.rstrip(". ")
        given = self.given
        if given is None or given == "" or (isinstance(given, str) and not given.strip()) or (
                isinstance(given, (list, tuple, dict)) and not given):
            return f"{name} is required ({allowed})."
        text = given if isinstance(given, str) else repr(given)
        if len(text) > SENTENCE_GIVEN_CHARS:
            text = f"{text[:SENTENCE_GIVEN_CHARS]}... ({len(text)} characters)"
        return f"{name}: \u201c{text}\u201d is not accepted; allowed: {allowed}."


SENTENCE_GIVEN_CHARS = 60  # what an error sentence quotes of a value typed


class InvalidInputs(InvalidInput):
    """Several inputs of one form are not acceptable (each is an :class:`InvalidInput`, the first
    stands for all where one is enough, e.g. the JSON API's ``field``). Nothing was changed."""

    def __init__(self, errors: list[InvalidInput]) -> None:
        if not errors:
            raise ValueError("InvalidInputs needs at least one error")
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.field, first.given, first.allowed)


class RefusedOperation(OpenITBError):
    """A well-formed request that the current state or a safety rule does not permit."""

    def __init__(self, reason: str, code: str = "refused") -> None:
        self.reason = reason
        self.code = code
        super().__init__(reason)
