"""The kernel's output: a frozen Review, and the gate that a confirm must pass.

A Review holds the exact commands that would be written (name and wire arguments), every rule's
verdict (a chain: all of them, not only the worst), the overall classification and decision,
what an override needs and who may give it, the projected dates, warnings, the side-by-side
rows, and a token: the sha256 of the canonical commands and of the pump state the review was
computed from (its state version included). Confirm presents the token; a different token means
"changed since your review: review again".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from openitb.errors import RefusedOperation
from openitb.safety.permissions import Role
from openitb.therapy.guardrails import Classification

ORDER = (Classification.WITHIN, Classification.BELOW_RECOMMENDED,
         Classification.ABOVE_RECOMMENDED, Classification.BELOW_ABSOLUTE,
         Classification.ABOVE_ABSOLUTE)


def worst(classes: list[Classification]) -> Classification:
    return max(classes, key=ORDER.index) if classes else Classification.WITHIN


@dataclass(frozen=True)
class WireCommand:
    """One command exactly as it goes on the wire (arguments as text with units). The writer
    adds ``expect_version`` (the precondition) when it sends it."""

    name: str
    args: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def of(name: str, **args: Any) -> WireCommand:
        return WireCommand(name, tuple(sorted(args.items())))

    @property
    def arguments(self) -> dict[str, Any]:
        return dict(self.args)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "args": self.arguments}


@dataclass(frozen=True)
class Verdict:
    """One rule's judgement: rule id, classification, reason in words, and its source."""

    rule: str
    classification: Classification
    reason: str
    source: str
    code: str = ""  # a refusal code for the faces (e.g. "not_running", "ptm_lockout")

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "classification": self.classification.value,
                "reason": self.reason, "source": self.source, "code": self.code}


class Decision(str, Enum):
    ALLOWED = "allowed"  # may be written once confirmed
    NEEDS_OVERRIDE = "needs_override"  # a reason from a role that may give it
    FORBIDDEN_ROLE = "forbidden_role"  # this actor may not; another role may
    REFUSED = "refused"  # nobody may (absolute bound, pump limit, state)


@dataclass(frozen=True)
class Override:
    required: bool
    roles: tuple[Role, ...]  # who may give it (empty: nobody)
    reason_min_chars: int
    why: str  # the verdicts that ask for it, in words

    def to_dict(self) -> dict[str, Any]:
        return {"required": self.required, "roles": [r.value for r in self.roles],
                "reason_min_chars": self.reason_min_chars, "why": self.why}


@dataclass(frozen=True)
class Projection:
    low_alarm_at: datetime | None
    refill_by: datetime | None
    empty_at: datetime | None
    refill_by_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        def f(t: datetime | None) -> str | None:
            return t.isoformat() if t else None
        return {"low_alarm_at": f(self.low_alarm_at), "refill_by": f(self.refill_by),
                "empty_at": f(self.empty_at), "refill_by_reason": self.refill_by_reason}


@dataclass(frozen=True)
class Row:
    """One line of the side-by-side review screen."""

    field: str
    current: str
    proposed: str
    changed: bool
    classification: Classification | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "current": self.current, "proposed": self.proposed,
                "changed": self.changed,
                "classification": self.classification.value if self.classification else None,
                "reason": self.reason}


@dataclass(frozen=True)
class BridgePlan:
    """What the refill's bridge gives and what it leaves (the pump's longest bolus is 24 h)."""

    path_volume_ml: float
    volume_ml: float  # given by the bridge bolus
    duration_h: float  # whole seconds, rounded up: the pump accepts it
    dose_mcg: float  # of the old drug
    unbridged_ml: float  # left in the path, reaches the tip at the new flow
    unbridged_dose_error_pct: float
    given: bool  # a bridge bolus command is among the commands

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PrimingPlan:
    volume_ml: float
    duration_h: float  # whole seconds, rounded up: the pump accepts it
    what: str  # "pump path + catheter 90 cm", "new pump's internal path"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Review:
    action: str
    title: str
    actor: Role
    commands: tuple[WireCommand, ...]
    verdicts: tuple[Verdict, ...]
    classification: Classification
    decision: Decision
    override: Override
    projection: Projection | None
    warnings: tuple[str, ...]
    rows: tuple[Row, ...]
    state_version: int
    token: str
    stop_of_therapy: bool = False
    bridge: BridgePlan | None = None
    priming: PrimingPlan | None = None
    facts: tuple[tuple[str, Any], ...] = field(default_factory=tuple)  # e.g. discrepancy

    # ---- reading it ------------------------------------------------------------------------
    @property
    def refused(self) -> bool:
        return self.decision in (Decision.REFUSED, Decision.FORBIDDEN_ROLE)

    @property
    def needs_override(self) -> bool:
        return self.override.required

    @property
    def reason(self) -> str:
        """The governing reason: the first verdict of the worst classification, plus the role
        rule's reason when the actor may not confirm it."""
        worst_v = [v for v in self.verdicts if v.classification is self.classification
                   and v.rule != "role.permission"]
        text = worst_v[0].reason if worst_v else "no guarded value changes"
        if self.decision is Decision.FORBIDDEN_ROLE:
            role_v = [v for v in self.verdicts if v.rule == "role.permission"]
            if role_v:
                text += "; " + role_v[0].reason
        return text

    @property
    def refusal_code(self) -> str:
        """The code of the first blocking verdict (``guardrail_absolute`` unless a rule names
        a more specific one, e.g. ``not_running``)."""
        for v in self.verdicts:
            if not v.classification.allowed and v.code:
                return v.code
        return "guardrail_absolute"

    def fact(self, key: str) -> Any:
        return dict(self.facts).get(key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action, "title": self.title, "actor": self.actor.value,
            "commands": [c.to_dict() for c in self.commands],
            "verdicts": [v.to_dict() for v in self.verdicts],
            "classification": self.classification.value, "decision": self.decision.value,
            "guardrail": self.reason, "override": self.override.to_dict(),
            "projection": self.projection.to_dict() if self.projection else None,
            "warnings": list(self.warnings), "review": [r.to_dict() for r in self.rows],
            "state_version": self.state_version, "token": self.token,
            "stop_of_therapy": self.stop_of_therapy,
            "bridge": self.bridge.to_dict() if self.bridge else None,
            "priming": self.priming.to_dict() if self.priming else None,
            **{k: v for k, v in self.facts},
        }

    # ---- the gate --------------------------------------------------------------------------
    def gate(self, *, confirmed: bool, override_reason: str | None = None) -> str | None:
        """Refuse what may not be written; return the override reason to record (or None).

        Codes: ``guardrail_absolute`` (nobody may), ``forbidden_role`` (not this role),
        ``unconfirmed``, ``override_required``."""
        if self.decision is Decision.REFUSED:
            raise RefusedOperation(self.reason, code=self.refusal_code)
        if self.decision is Decision.FORBIDDEN_ROLE:
            who = ", ".join(r.value for r in self.override.roles) or "nobody"
            raise RefusedOperation(f"{self.reason} (may be given by: {who})",
                                   code="forbidden_role")
        if not confirmed:
            raise RefusedOperation("the change was not confirmed on the review screen; nothing "
                                   "was written", code="unconfirmed")
        if self.override.required:
            n = self.override.reason_min_chars
            if not override_reason or len(override_reason.strip()) < n:
                raise RefusedOperation(f"{self.override.why}; give an override reason (at least "
                                       f"{n} characters)", code="override_required")
            return override_reason.strip()
        return None


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def review_token(commands: tuple[WireCommand, ...], state_fingerprint: dict[str, Any]) -> str:
    """sha256 over the canonical commands and the state they were computed from."""
    body = {"commands": [c.to_dict() for c in commands], "state": state_fingerprint}
    return hashlib.sha256(canonical(body).encode("ascii")).hexdigest()
