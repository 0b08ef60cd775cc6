"""Reviews bound to what is written, as the clinic answers them.

The token is the safety kernel's (:func:`openitb.safety.review_token`: the exact commands and the
pump state fingerprint, including its state version). A confirm whose token differs from the
review rebuilt now is refused here as a conflict (409) with the kernel's words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openitb.clinic.uow import Conflict
from openitb.safety import pump_state_from_status, review_token

CHANGED = "changed since your review: review again"


class ChangedSinceReview(Conflict):
    """The proposal or the pump changed between the review and the confirm (409)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(CHANGED + (f" ({detail})" if detail else "") + "; nothing was written")


def state_token(status: Mapping[str, Any]) -> str:
    """The kernel's token of a pump state alone (no commands): for a pump a use case reads and
    depends on without writing to it (the old pump of a replacement)."""
    return review_token((), pump_state_from_status(dict(status)).fingerprint())
