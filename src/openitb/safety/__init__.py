"""The safety kernel: the one place that decides whether a proposed change may be written.

Pure (no clock, file, socket). Every face (CLI programmer, patient therapy manager, clinic
pages and JSON API, scenario runner) builds a :class:`PumpState` and a :class:`History` from the
pump's own report, calls :func:`review`, shows the :class:`Review`, and writes exactly
``review.commands`` with the precondition ``expect_version`` after :meth:`Review.gate`.
See docs/kernel.md.
"""

from openitb.safety.history import History, HistoryEvent, HistoryKind, history_from_report
from openitb.safety.kernel import review
from openitb.safety.patient import Actor, PatientFacts
from openitb.safety.permissions import Permissions, Role, load_permissions, parse_role
from openitb.safety.plans import VolumeBolus, bridge_bolus, priming_bolus
from openitb.safety.proposals import (
    ClinicianBolus,
    Implant,
    LowAlarm,
    PatientBolusRequest,
    PatientLimits,
    Priming,
    ProgramChange,
    Proposal,
    Refill,
    Replacement,
    StartTherapy,
    StopTherapy,
)
from openitb.safety.review import (
    BridgePlan,
    Decision,
    Override,
    PrimingPlan,
    Projection,
    Review,
    Row,
    Verdict,
    WireCommand,
    review_token,
)
from openitb.safety.state import PatientLimitsState, PumpState, pump_state_from_status
from openitb.safety.steps import StepChoice, StepChoices, step_choices

__all__ = [
    "Actor", "BridgePlan", "ClinicianBolus", "Decision", "History", "HistoryEvent",
    "HistoryKind", "Implant", "LowAlarm", "Override", "PatientBolusRequest", "PatientFacts",
    "PatientLimits", "PatientLimitsState", "Permissions", "Priming", "PrimingPlan", "ProgramChange",
    "Projection", "Proposal", "PumpState", "Refill", "Replacement", "Review", "Role", "Row",
    "StartTherapy", "StepChoice", "StepChoices", "StopTherapy", "Verdict", "VolumeBolus", "WireCommand", "bridge_bolus",
    "history_from_report", "load_permissions", "parse_role", "priming_bolus",
    "pump_state_from_status", "review", "review_token", "step_choices",
]
