"""Reviews bound to what is written: the clinic's review token.

A review shown to a clinician carries a token: a hash of what would be written (the proposal's
commands) and of the pump state it was computed from (the parts of the status that a write or
another clinician can change; not the reservoir estimate, which moves with every minute of
infusion). Confirm sends the token back; the confirm recomputes the review against the pump as
it is now and refuses, writing nothing, when the token differs.

This is the one function the clinic uses to make the token (swap it for the kernel's when that
lands; see docs/clinic.md "Reviews bound to writes").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from openitb.clinic.uow import Conflict, jsonable

# The status fields a review depends on. The reservoir estimate and the clock are left out:
# they change between any review and its confirm without changing what would be written.
STATE_FIELDS = ("serial", "profile", "state", "running", "program",
                "program_concentration_mcg_per_ml", "reservoir_concentration_mcg_per_ml",
                "bolus_running_until", "low_alarm_ml", "path_volume_ml", "alarms")

CHANGED = "changed since your review: review again"


class ChangedSinceReview(Conflict):
    """The proposal or the pump changed between the review and the confirm (409)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(CHANGED + (f" ({detail})" if detail else "") + "; nothing was written")


def pump_fingerprint(status: Mapping[str, Any] | None) -> dict[str, Any]:
    st = status or {}
    return {k: jsonable(st.get(k)) for k in STATE_FIELDS}


def review_token(kind: str, commands: Any, status: Mapping[str, Any] | None,
                 verdict: Any) -> str:
    """The token of one review: what would be written, from which pump state, with which
    verdict (every rule's outcome as shown)."""
    doc = {"kind": kind, "commands": jsonable(commands), "pump": pump_fingerprint(status),
           "verdict": jsonable(verdict)}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def check_token(given: object, expected: str) -> None:
    """Refuse a confirm without the token of the review it confirms, or with another one."""
    text = "" if given is None else str(given).strip()
    if not text:
        raise ChangedSinceReview("no review token was sent: review first")
    if text != expected:
        raise ChangedSinceReview()
