"""Property: whatever dose is proposed, the program use case obeys the kernel's verdict by role,
over the pump's last 24 hours (chained steps add up).

within the recommended range -> nurse and physician may write it;
outside it, inside the absolute range -> a nurse is refused, a physician needs a reason;
outside the absolute range -> refused for everyone.
A refused program leaves the pump's program as it was; what is written is what was reviewed."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from openitb.clinic import services
from openitb.clinic.facade import Clinic
from openitb.errors import InvalidInput, RefusedOperation
from openitb.store.db import make_engine
from openitb.store.models import Pump
from openitb.therapy.guardrails import Classification

from .test_services import DR, RN, implanted


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Clinic:
    path: Path = tmp_path_factory.mktemp("prop") / "clinic.db"
    c = Clinic(make_engine(f"sqlite:///{path}"))
    implanted(c)
    return c


def current_dose(c: Clinic) -> float:
    with c.uow(RN) as u:
        return float(u.session.scalars(select(Pump)).one().dose_per_day)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
@given(factor=st.floats(0.3, 2.5), physician=st.booleans(), reason=st.booleans(),
       context=st.sampled_from(["titration", "maintenance"]))
def test_program_obeys_the_guardrail_by_role(clinic: Clinic, factor: float, physician: bool,
                                            reason: bool, context: str) -> None:
    before = current_dose(clinic)
    proposed = round(before * factor, 1)
    fields = {"dose_per_day": proposed, "context": context, "confirmed": True,
              "override_reason": "documented clinical reason" if reason else ""}
    actor = DR if physician else RN
    try:
        with clinic.uow(actor) as u:
            review = services.program_review(u, 1, fields)
    except InvalidInput:
        return
    cls = review.classification
    try:
        with clinic.uow(actor) as u:
            row = services.program(u, 1, {**fields, "review_token": review.token})
        outcome = row.classification
    except (RefusedOperation, InvalidInput) as exc:
        outcome = getattr(exc, "code", "invalid")
    if cls is Classification.WITHIN:
        assert outcome == "within"  # nurse and physician alike
    elif cls.allowed:
        if not physician:
            assert outcome == "forbidden"
        elif not reason:
            assert outcome == "override_required"
        else:
            assert outcome == cls.value
    else:
        assert outcome == "guardrail_absolute", outcome
    if outcome in ("forbidden", "override_required", "guardrail_absolute", "invalid"):
        assert current_dose(clinic) == before  # refused: the pump's program is unchanged
    else:
        assert current_dose(clinic) == pytest.approx(proposed)
