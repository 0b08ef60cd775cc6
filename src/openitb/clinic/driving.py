"""The clinic drives a pump through the programmer's workflows, over one session.

:class:`ClinicProgrammer` is the programmer (:class:`~openitb.programmer.workflows.Programmer`)
with its one write path (``_apply``) bound to a review:

* in review mode it stops before the gate and returns the review, the exact commands it would
  write and their plan (nothing is written, only the status was read);
* in confirm mode it recomputes the same review against the pump as it is now, and refuses with
  409 "changed since your review: review again" when the token of what would be written and of
  the pump state differs from the token the clinician confirmed; then the actor's role is
  checked, then the programmer's own gate (confirmation, override reason, absolute bounds).

This is a thin adapter: the rules are the programmer's (and the kernel's once it lands).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openitb.clinic.review_binding import check_token, review_token
from openitb.errors import RefusedOperation
from openitb.programmer.link import PumpLink
from openitb.programmer.workflows import AnyReview, Confirm, Outcome, Programmer


@dataclass(frozen=True)
class Planned:
    """A review as the clinic shows it: the programmer's review, what would be written, the
    pump status it was computed from, and its token."""

    kind: str
    review: AnyReview
    commands: list[tuple[str, dict[str, Any]]]
    status: dict[str, Any]
    token: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> Any:
        return self.review.rows

    @property
    def classification(self) -> Any:
        return self.review.classification

    @property
    def reason(self) -> str:
        return self.review.reason

    @property
    def refused(self) -> bool:
        return self.review.refused

    @property
    def needs_override(self) -> bool:
        return self.review.needs_override

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(getattr(self.review, "warnings", ()))

    def __getattr__(self, name: str) -> Any:
        """Anything else of the programmer's review (e.g. ``proposed``, ``concentration``)."""
        if name.startswith("__") or name == "review":
            raise AttributeError(name)
        return getattr(self.review, name)


class _Reviewed(Exception):
    def __init__(self, planned: Planned) -> None:
        self.planned = planned


def token_of(kind: str, commands: list[tuple[str, dict[str, Any]]], status: dict[str, Any],
             review: AnyReview) -> str:
    verdict = {"classification": review.classification.value,
               "rows": [(r.field, r.proposed, r.classification.value if r.classification
                         else None) for r in review.rows]}
    return review_token(kind, commands, status, verdict)


class ClinicProgrammer(Programmer):
    """``token=None``: review only. Otherwise confirm the review that had this token."""

    def __init__(self, link: PumpLink, kind: str, *, token: str | None = None,
                 may_override: Callable[[AnyReview], None] | None = None) -> None:
        super().__init__(link)
        self.kind = kind
        self.token = token
        self.may_override = may_override
        self.planned: Planned | None = None

    def _apply(self, action: str, review: AnyReview, confirm: Confirm,
               override_reason: str | None, writes: list[tuple[str, dict[str, Any]]],
               verify: Callable[[dict[str, Any]], list[str]],
               extra: dict[str, Any] | None = None) -> Outcome:
        status = dict(getattr(self.link, "last_status", None) or {})
        token = token_of(self.kind, writes, status, review)
        planned = Planned(self.kind, review, list(writes), status, token, dict(extra or {}))
        if self.token is None:
            raise _Reviewed(planned)
        check_token(self.token, token)
        self.planned = planned
        if self.may_override is not None and not review.refused:
            self.may_override(review)
        return super()._apply(action, review, confirm, override_reason, writes, verify, extra)


def plan(run: Callable[[ClinicProgrammer], Any], programmer: ClinicProgrammer) -> Planned:
    """Run a workflow in review mode: what it would write, nothing written."""
    try:
        run(programmer)
    except _Reviewed as done:
        return done.planned
    raise RefusedOperation("the workflow wrote without a review", code="internal")


def plan_of(programmer: ClinicProgrammer, outcome: Outcome) -> Planned:
    """The review a confirmed workflow wrote (with the outcome's plan, e.g. the bridge given)."""
    assert programmer.planned is not None, "confirmed without a review"
    planned = programmer.planned
    planned.extra.update(outcome.extra)
    return planned
