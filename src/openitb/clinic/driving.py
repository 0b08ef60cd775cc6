"""The clinic drives a pump through the programmer on the safety kernel, one session per use case.

A review is the kernel's (:func:`openitb.safety.review` through
:meth:`~openitb.programmer.workflows.Programmer.review`): it only reads the pump. A confirm is
the programmer's :meth:`~openitb.programmer.workflows.Programmer.apply` with the review's token:
it re-reads the pump, rebuilds the review, refuses a different token ("changed since your
review: review again", 409 here), passes the kernel's gate (role from the permission table,
confirmation, override reason), writes exactly the review's commands with their preconditions
and reads back. The clinic has no rules of its own: this module only translates the clinic's
actor and patient into the kernel's, and the kernel's refusal codes into the clinic's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from openitb.clinic.pumps import PumpSession
from openitb.clinic.review_binding import ChangedSinceReview
from openitb.clinic.uow import Actor, Forbidden
from openitb.drugs import Context
from openitb.errors import RefusedOperation
from openitb.programmer.workflows import Outcome, Programmer
from openitb.safety import Actor as KernelActor
from openitb.safety import PatientFacts, Review, StepChoices, parse_role, step_choices
from openitb.safety import proposals as pr
from openitb.store.models import Patient


@dataclass(frozen=True)
class Planned:
    """A review as the clinic shows it: the kernel's review, the pump status it was computed
    from, the token the confirm must send, and what the write gave (``extra``)."""

    kind: str
    review: Review
    status: dict[str, Any]
    token: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def commands(self) -> list[tuple[str, dict[str, Any]]]:
        return [(c.name, c.arguments) for c in self.review.commands]

    def __getattr__(self, name: str) -> Any:
        """Anything else of the kernel's review (rows, verdicts, classification, warnings...)."""
        if name.startswith("__") or name == "review":
            raise AttributeError(name)
        return getattr(self.review, name)


def kernel_actor(actor: Actor) -> KernelActor:
    return KernelActor(parse_role(actor.role), actor.username)


def patient_facts(p: Patient, today: date) -> PatientFacts:
    age = (today - p.birth_date).days / 365.25
    return PatientFacts(p.origin, child=p.population == "pediatric", weight_kg=p.weight_kg,
                        age_years=min(max(age, 0.0), 130.0))


def programmer(s: PumpSession, actor: Actor, patient: PatientFacts) -> Programmer:
    return Programmer(s.link, actor=kernel_actor(actor), patient=patient)


def review_on(s: PumpSession, kind: str, proposal: pr.Proposal, actor: Actor,
              patient: PatientFacts) -> Planned:
    """The kernel's review of ``proposal`` on the session's pump (one read, nothing written)."""
    rv = programmer(s, actor, patient).review(proposal)
    return Planned(kind, rv, dict(s.last_status or {}), rv.token)


def step_choices_on(s: PumpSession, actor: Actor, patient: PatientFacts,
                    contexts: tuple[Context, ...]) -> dict[Context, StepChoices]:
    """The kernel's step helper for each context, from one read of the session's pump."""
    snap = programmer(s, actor, patient).snapshot()
    return {c: step_choices(c, snap.state, snap.history, patient, snap.state.time)
            for c in contexts}


def apply_on(s: PumpSession, kind: str, proposal: pr.Proposal, actor: Actor,
             patient: PatientFacts, token: str, *, confirmed: bool,
             override_reason: str | None) -> tuple[Planned, Outcome]:
    """Write what the review with ``token`` showed (the programmer's apply), or nothing."""
    try:
        out = programmer(s, actor, patient).apply(
            proposal, token=token, confirmed=confirmed, override_reason=override_reason)
    except RefusedOperation as exc:
        raise clinic_refusal(exc) from None
    return Planned(kind, out.review, dict(s.last_status or {}), out.review.token,
                   dict(out.extra)), out


def clinic_refusal(exc: RefusedOperation) -> RefusedOperation:
    """The kernel's codes as the clinic answers them: a stale review is a conflict (409), a
    role that may not confirm is forbidden (403); the rest as they are (422)."""
    if exc.code in ("stale_review", "precondition_failed"):
        return ChangedSinceReview(exc.reason.split("; nothing was written")[0]
                                  .removeprefix("changed since your review: review again")
                                  .strip(" ():;"))
    if exc.code == "forbidden_role":
        return Forbidden(exc.reason)
    return exc
