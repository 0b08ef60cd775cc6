"""The safety kernel: the one place that decides whether a proposed change may be written.

:func:`review` takes the pump's state, its recent history, the patient, the actor, the proposal
and ``now``, runs every rule that applies (a chain: each verdict is kept) and returns a frozen
:class:`Review` holding the exact commands to write and a token binding them to the state.

Pure: no clock, file or socket (the drug library and the permission table are package data read
once, as everywhere in the core). Rules are small functions in :mod:`openitb.safety.rules`; this
module assembles them per proposal, builds the commands, rows and projection.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from openitb.devices import PumpProfile, default_catheter, get_pump
from openitb.drugs import Context, DrugLibrary, load_library
from openitb.errors import InvalidInput, OpenITBError
from openitb.safety import proposals as pr
from openitb.safety import rules as r
from openitb.safety.history import History
from openitb.safety.patient import Actor, PatientFacts
from openitb.safety.permissions import Permissions, load_permissions
from openitb.safety.plans import bridge_bolus, priming_bolus
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
    worst,
)
from openitb.safety.state import PumpState
from openitb.therapy.guardrails import Classification
from openitb.therapy.prescription import Prescription, describe_segments
from openitb.therapy.refill import project_refill
from openitb.units import McgPerMl, Milliliters

TITLES = {
    "program": "program change", "stop_therapy": "stop infusion", "start": "start infusion",
    "clinician_bolus": "clinician bolus", "patient_limits": "patient bolus limits",
    "patient_bolus": "patient bolus", "low_alarm": "low-reservoir alarm", "refill": "refill",
    "implant": "implant", "replacement": "pump replacement", "priming": "priming bolus",
}


class _Build:
    """Collects verdicts, rows, commands and warnings while the rules run."""

    def __init__(self) -> None:
        self.verdicts: list[Verdict] = []
        self.rows: list[Row] = []
        self.commands: list[WireCommand] = []
        self.warnings: list[str] = []
        self.facts: dict[str, Any] = {}
        self.stop = False
        self.bridge: BridgePlan | None = None
        self.priming: PrimingPlan | None = None
        self.projection: Projection | None = None

    def add(self, *verdicts: Verdict) -> None:
        self.verdicts.extend(verdicts)

    def row(self, name: str, current: str, proposed: str, v: Verdict | None = None) -> None:
        self.rows.append(Row(name, current, proposed, current != proposed,
                             v.classification if v else None, v.reason if v else ""))

    def cmd(self, name: str, **args: Any) -> None:
        self.commands.append(WireCommand.of(name, **args))


def review(proposal: pr.Proposal, *, state: PumpState, history: History,
           patient: PatientFacts, actor: Actor, now: datetime | None = None,
           library: DrugLibrary | None = None,
           permissions: Permissions | None = None) -> Review:
    """Review ``proposal`` for ``patient`` by ``actor`` on the pump in ``state``.

    ``now`` defaults to the pump's time. Never raises for a proposal that breaks a rule: the
    Review says so (decision REFUSED). Raises InvalidInput only for a malformed proposal (e.g.
    an unknown product)."""
    lib = library or load_library()
    perms = permissions or load_permissions()
    at = now or state.time
    profile = get_pump(state.profile)
    b = _Build()
    action = proposal.action
    if isinstance(proposal, pr.ProgramChange):
        _program(b, proposal.prescription, proposal.context, state, history, patient, at, lib,
                 profile)
        if b.stop:
            action = "stop_therapy"
    elif isinstance(proposal, pr.StopTherapy):
        _stop(b, state)
    elif isinstance(proposal, pr.StartTherapy):
        _start(b, state, history, patient, at, lib)
    elif isinstance(proposal, pr.ClinicianBolus):
        _clinician_bolus(b, proposal, state, history, patient, at, lib, profile)
    elif isinstance(proposal, pr.PatientLimits):
        _patient_limits(b, proposal, state, lib)
    elif isinstance(proposal, pr.PatientBolusRequest):
        _patient_bolus(b, state, history, patient, at, lib)
    elif isinstance(proposal, pr.LowAlarm):
        _low_alarm(b, proposal, state, profile)
    elif isinstance(proposal, pr.Refill):
        _refill(b, proposal, state, history, patient, at, lib, profile)
    elif isinstance(proposal, (pr.Implant, pr.Replacement)):
        _implant(b, proposal, state, history, patient, at, lib, profile)
    elif isinstance(proposal, pr.Priming):
        _priming(b, proposal, state, profile)
    else:  # pragma: no cover - the Proposal union is closed
        raise InvalidInput("proposal", type(proposal).__name__, "a kernel proposal")
    if b.projection is None:
        b.projection = _projection_now(state, profile)
    return _finish(b, action, actor, state, perms)


# ---- assembling the outcome -------------------------------------------------------------------
def _finish(b: _Build, action: str, actor: Actor, state: PumpState,
            perms: Permissions) -> Review:
    cls = worst([v.classification for v in b.verdicts])
    needs = cls.needs_override or b.stop
    if b.stop and not cls.needs_override and cls.allowed:
        cls = Classification.BELOW_RECOMMENDED  # a stop of therapy is never "within"
    roles = perms.roles_for(cls, action)
    role_v = r.role_rule(actor.role, action, cls, perms)
    b.verdicts.append(role_v)
    if not cls.allowed:
        decision = Decision.REFUSED
    elif actor.role not in roles:
        decision = Decision.FORBIDDEN_ROLE
    elif needs:
        decision = Decision.NEEDS_OVERRIDE
    else:
        decision = Decision.ALLOWED
    why = "; ".join(v.reason for v in b.verdicts
                    if v.classification.needs_override and v.rule != "role.permission")
    override = Override(needs and cls.allowed, roles, perms.reason_min_chars,
                        why or "an override reason is required")
    commands = tuple(b.commands)
    return Review(
        action=action, title=TITLES.get(action, action), actor=actor.role, commands=commands,
        verdicts=tuple(b.verdicts), classification=cls, decision=decision, override=override,
        projection=b.projection, warnings=tuple(dict.fromkeys(b.warnings)), rows=tuple(b.rows),
        state_version=state.state_version, token=review_token(commands, state.fingerprint()),
        stop_of_therapy=b.stop, bridge=b.bridge, priming=b.priming,
        facts=tuple(sorted(b.facts.items())))


def _projection_now(state: PumpState, profile: PumpProfile,
                    program: Prescription | None = None, concentration: float | None = None,
                    volume_ml: float | None = None,
                    low_alarm_ml: float | None = None) -> Projection | None:
    rx = program if program is not None else state.program
    conc = concentration if concentration is not None else state.program_concentration
    vol = state.reservoir_estimate_ml if volume_ml is None else volume_ml
    if rx is None or not conc or conc <= 0:
        return None
    try:
        p = project_refill(rx, profile, Milliliters(max(0.0, min(vol, profile.capacity.value))),
                           McgPerMl(conc), state.time,
                           low_alarm=Milliliters(low_alarm_ml if low_alarm_ml is not None
                                                 else state.low_alarm_ml))
    except (OpenITBError, OverflowError):  # OverflowError: a date beyond year 9999
        return None
    return Projection(p.low_alarm_at, p.refill_by, p.empty_at, p.refill_by_reason)


def _steps_text(p: Prescription | None) -> list[str]:
    if p is None:
        return []
    return [f"{s['start']}-{s['end']}: {s['mcg_per_hour']:.3g} mcg/h = {s['mcg_per_day']:.4g} "
            f"mcg/day ({s['dose_mcg']:.4g} mcg in the step)" for s in describe_segments(p)]


def _program_rows(b: _Build, current: Prescription | None, cur_conc: float | None,
                  proposed: Prescription, conc: float, dose_v: Verdict | None) -> None:
    cur_daily = current.daily_dose().value if current else None
    new_daily = proposed.daily_dose().value
    b.rows.append(Row("daily dose", f"{cur_daily:.4g} mcg/day" if cur_daily is not None else "-",
                      f"{new_daily:.4g} mcg/day",
                      cur_daily is None or abs(cur_daily - new_daily) > 1e-9,
                      dose_v.classification if dose_v else None, dose_v.reason if dose_v else ""))
    b.rows.append(Row("mode", current.mode.value if current else "-", proposed.mode.value,
                      current is None or current.mode != proposed.mode))
    b.rows.append(Row("concentration", f"{cur_conc:g} mcg/mL" if cur_conc else "-",
                      f"{conc:g} mcg/mL", cur_conc is None or abs(cur_conc - conc) > 1e-9))
    a, n = _steps_text(current), _steps_text(proposed)
    for i in range(max(len(a), len(n))):
        x = a[i] if i < len(a) else "-"
        y = n[i] if i < len(n) else "-"
        b.rows.append(Row(f"step {i + 1}", x, y, x != y))
    b.rows.append(Row("flow (24 h average)",
                      f"{cur_daily / cur_conc:.4g} mL/day" if cur_daily is not None and cur_conc
                      else "-", f"{new_daily / conc:.4g} mL/day", True))


def _program_rules(b: _Build, rx: Prescription, conc: float, context: Context,
                   state: PumpState, history: History, patient: PatientFacts, at: datetime,
                   lib: DrugLibrary, profile: PumpProfile) -> Verdict:
    """The chain for a program: pump flow, stop of therapy, daily bounds (with the boluses of
    the last 24 h), the label step from the 24 h reference, history completeness. Returns the
    verdict shown on the daily-dose row."""
    b.add(r.pump_flow_rule(rx, profile, conc))
    stop = r.stop_rule(rx)
    if stop is not None:
        b.stop = True
        b.add(stop)
        b.warnings.append(r.WITHDRAWAL_WARNING)
        dose_v = r.single_bolus_dose_rule(rx, lib)
        b.add(dose_v)
        return stop
    daily_v = r.daily_bounds_rule(rx.daily_dose().value, history, patient, at, lib)
    step_v = r.step_rule(rx.daily_dose().value, context, state, history, patient, at, lib)
    b.add(daily_v, step_v)
    hist_v = r.history_rule(history)
    if hist_v is not None:
        b.add(hist_v)
    return max((daily_v, step_v), key=lambda v: r.rank(v.classification))


def _program(b: _Build, rx: Prescription, context: Context, state: PumpState, history: History,
             patient: PatientFacts, at: datetime, lib: DrugLibrary, profile: PumpProfile) -> None:
    b.add(*r.pump_writable_rules(state))
    conc = state.reservoir_concentration
    if conc <= 0:
        b.add(Verdict("pump.drug", Classification.ABOVE_ABSOLUTE,
                      "the reservoir holds no drug: fill it (implant or refill) before "
                      "programming a dose", "pump state", "no_drug"))
        conc = state.program_concentration or 0.0
    dose_v = None
    if conc > 0:
        dose_v = _program_rules(b, rx, conc, context, state, history, patient, at, lib, profile)
        _program_rows(b, state.program, state.program_concentration, rx, conc, dose_v)
        b.cmd("program", prescription=rx.to_dict(), concentration=f"{conc!r} mcg/mL")
        b.projection = _projection_now(state, profile, rx, conc)
    if not state.running:
        b.warnings.append(f"the pump is {state.status.value}: the new program will not infuse "
                          "until the pump is started")


def _stop(b: _Build, state: PumpState) -> None:
    b.stop = True
    b.add(*r.pump_writable_rules(state))
    if not state.running:
        b.add(Verdict("pump.state", Classification.ABOVE_ABSOLUTE,
                      f"the pump is already {state.status.value}", "pump state", "not_running"))
    v = Verdict("therapy.stop", Classification.BELOW_RECOMMENDED,
                "stopping intrathecal baclofen is a stop of therapy: withdrawal risk (itching, "
                "fever, fast heart rate, rebound spasticity within 24-72 h); physician only, an "
                "override reason is required; restart it (for an MRI: `post-mri`)",
                "label boxed warning (C): abrupt discontinuation")
    b.add(v)
    b.row("infusion", "running" if state.running else state.status.value, "stopped", v)
    b.warnings += [r.WITHDRAWAL_WARNING, "the pump gives nothing until it is started again"]
    b.cmd("stop")
    b.projection = None


def _start(b: _Build, state: PumpState, history: History, patient: PatientFacts, at: datetime,
           lib: DrugLibrary) -> None:
    b.add(*r.pump_writable_rules(state))
    if state.running:
        b.add(Verdict("pump.state", Classification.ABOVE_ABSOLUTE, "the pump is already running",
                      "pump state", "running"))
    if state.program is None:
        b.add(Verdict("pump.state", Classification.ABOVE_ABSOLUTE,
                      "no program in the pump: program it first", "pump state", "no_program"))
    elif state.reservoir_estimate_ml <= 0 or state.status.value == "empty":
        b.add(Verdict("pump.state", Classification.ABOVE_ABSOLUTE,
                      "the reservoir is empty: refill first", "pump state", "empty"))
    else:
        b.add(Verdict("pump.state", Classification.WITHIN, "stopped with a program: may start",
                      "pump state"))
    prog = str(state.program.to_dict()) if state.program else "-"
    b.row("infusion", state.status.value, "running")
    b.row("program", prog, prog)
    b.cmd("start")


def _clinician_bolus(b: _Build, p: pr.ClinicianBolus, state: PumpState, history: History,
                     patient: PatientFacts, at: datetime, lib: DrugLibrary,
                     profile: PumpProfile) -> None:
    b.add(*r.pump_writable_rules(state))
    b.add(*r.bolus_state_rules(state))
    dose_v = r.clinician_bolus_rule(p.dose.value, lib)
    b.add(dose_v)
    conc = state.program_concentration or 0.0
    b.add(r.bolus_flow_rule(p.dose.value, p.duration.value, conc, profile))
    daily = state.program.daily_dose().value if state.program else 0.0
    b.add(r.daily_bounds_rule(daily, history, patient, at, lib, extra_mcg=p.dose.value,
                              what="daily dose with this bolus"))
    b.row("bolus dose", "-", f"{p.dose.value:g} mcg", dose_v)
    b.row("bolus duration", "-", f"{p.duration.value * 60:.0f} min")
    if conc > 0:
        b.row("bolus volume", "-", f"{p.dose.value / conc:.4g} mL at {conc:g} mcg/mL")
    b.cmd("clinician_bolus", dose=f"{p.dose.value!r} mcg", duration=f"{p.duration.value!r} h")


def _patient_limits(b: _Build, p: pr.PatientLimits, state: PumpState, lib: DrugLibrary) -> None:
    b.add(*r.pump_writable_rules(state))
    dose_v = r.clinician_bolus_rule(p.dose.value, lib, what="dose per activation")
    basal = state.program.daily_dose().value if state.program else 0.0
    share = p.dose.value * p.max_per_day
    share_v = r.patient_share_rule(share, basal, lib)
    b.add(dose_v, share_v, r.patient_limits_pump_rule(p))
    cur = state.patient_limits
    b.row("dose per activation", f"{cur.dose_mcg:g} mcg" if cur else "-", f"{p.dose.value:g} mcg",
          dose_v)
    b.row("bolus duration", f"{cur.duration_s / 60:g} min" if cur else "-",
          f"{p.duration.value * 60:g} min")
    b.row("lockout", f"{cur.lockout_s / 3600:g} h" if cur else "-", f"{p.lockout.value:g} h")
    b.row("maximum per 24 h", str(cur.max_per_day) if cur else "-", str(p.max_per_day))
    b.row("most a patient can add in 24 h", "-",
          f"{share:g} mcg ({share / basal * 100 if basal else 0:.0f} % of {basal:g} mcg/day)",
          share_v)
    b.cmd("set_patient_limits", dose=f"{p.dose.value!r} mcg", duration=f"{p.duration.value!r} h",
          lockout=f"{p.lockout.value!r} h", max_per_day=p.max_per_day)


def _patient_bolus(b: _Build, state: PumpState, history: History, patient: PatientFacts,
                   at: datetime, lib: DrugLibrary) -> None:
    b.add(*r.pump_writable_rules(state))
    b.add(r.patient_request_rule(state, at))  # first: its code tells the patient when
    b.add(*r.bolus_state_rules(state))
    if state.patient_limits is not None and state.program is not None:
        b.add(r.daily_bounds_rule(state.program.daily_dose().value, history, patient, at, lib,
                                  extra_mcg=state.patient_limits.dose_mcg,
                                  what="daily dose with this bolus"))
        b.row("bolus", "-", f"{state.patient_limits.dose_mcg:g} mcg")
    b.cmd("patient_bolus")


def _low_alarm(b: _Build, p: pr.LowAlarm, state: PumpState, profile: PumpProfile) -> None:
    b.add(*r.pump_writable_rules(state))
    v = r.low_alarm_rule(p.threshold.value, profile)
    b.add(v)
    b.row("low-reservoir alarm", f"{state.low_alarm_ml:g} mL", f"{p.threshold.value:g} mL", v)
    b.cmd("set_low_alarm", threshold=f"{p.threshold.value!r} mL")
    b.projection = _projection_now(state, profile, low_alarm_ml=p.threshold.value
                                   if v.classification.allowed else None)


def _refill(b: _Build, p: pr.Refill, state: PumpState, history: History, patient: PatientFacts,
            at: datetime, lib: DrugLibrary, profile: PumpProfile) -> None:
    b.add(*r.pump_writable_rules(state))
    prod = r.product_for(lib, p.product, p.concentration, compounded=p.compounded)
    expected = max(0.0, state.reservoir_estimate_ml)
    disc_v, disc = r.discrepancy_rule(profile, expected, p.withdrawn.value)
    b.add(disc_v)
    b.facts["discrepancy"] = {"expected_ml": expected, "withdrawn_ml": p.withdrawn.value,
                              "difference_ml": disc.difference_ml, "flagged": disc.flagged,
                              "possible_causes": list(disc.possible_causes)}
    b.row("withdrawn vs expected", f"{expected:.3g} mL expected",
          f"{p.withdrawn.value:g} mL withdrawn", disc_v)
    cap_v = r.capacity_rule(p.volume.value, profile)
    b.add(cap_v)
    b.row("reservoir volume", f"{expected:.3g} mL (estimate)", f"{p.volume.value:g} mL", cap_v)
    old = state.reservoir_concentration
    new = p.concentration.value
    conc_v = r.concentration_rule(lib, p.concentration, p.compounded, prod)
    b.add(conc_v)
    b.row("drug", f"{old:g} mcg/mL" if old else "-", f"{prod} {new:g} mcg/mL", conc_v)
    if conc_v.classification is Classification.ABOVE_RECOMMENDED:
        b.warnings.append(conc_v.reason)
    b.cmd("refill", volume=f"{p.volume.value!r} mL", concentration=f"{new!r} mcg/mL")
    changed = old > 0 and abs(old - new) > 1e-9 * max(1.0, new)
    rx = p.prescription or state.program
    if p.prescription is not None:
        dose_v = _program_rules(b, p.prescription, new, p.context, state, history, patient, at,
                                lib, profile)
        _program_rows(b, state.program, state.program_concentration, p.prescription, new, dose_v)
    elif rx is not None and changed:
        b.add(r.pump_flow_rule(rx, profile, new))
        daily = rx.daily_dose().value
        b.row("flow (24 h average)", f"{daily / old:.4g} mL/day", f"{daily / new:.4g} mL/day")
    if rx is not None and (changed or p.prescription is not None):
        b.cmd("program", prescription=rx.to_dict(), concentration=f"{new!r} mcg/mL")
    if changed and rx is not None:
        _bridge(b, p, state, rx, old, new, profile)
    elif changed:
        b.warnings.append("no program in the pump: nothing to bridge")
    b.projection = _projection_now(state, profile, rx, new, p.volume.value)


def _bridge(b: _Build, p: pr.Refill, state: PumpState, rx: Prescription, old: float, new: float,
            profile: PumpProfile) -> None:
    daily = rx.daily_dose().value
    path = state.path_volume_ml
    old_flow = daily / old
    split = bridge_bolus(profile, path, old_flow)
    err = (old / new - 1.0) * 100.0
    unbridged_h = path / (daily / new) * 24.0 if daily > 0 else float("inf")
    text = (f"without a bridge the patient gets {err:+.0f} % of the dose for "
            f"{unbridged_h:.1f} h while the old drug leaves the catheter")
    give = p.bridge and state.running and split.bolus is not None
    v = r.bridge_rule(p.bridge, state.running, split, err, text)
    b.add(v)
    if give:
        assert split.bolus is not None
        bol = split.bolus
        b.cmd("bridge_bolus", **bol.wire_args())
        b.bridge = BridgePlan(path, bol.volume_ml, bol.hours, bol.volume_ml * old,
                              split.unbridged_ml, err, True)
        b.row("bridge bolus", "-", f"{bol.volume_ml:.4g} mL over {bol.hours:.2f} h at the old "
              f"flow ({bol.volume_ml * old:.4g} mcg of the old drug)", v)
        if split.unbridged_ml > 0:
            b.warnings.append(f"{split.unbridged_ml:.3g} mL of the path is not bridged (the "
                              "pump's longest bolus is 24 h): it reaches the tip at "
                              f"{err:+.0f} % of the dose")
    else:
        b.bridge = BridgePlan(path, 0.0, 0.0, 0.0, path, err, False)
        b.row("bridge bolus", "-", "none", v)
        b.warnings.append(text)


def _implant(b: _Build, p: pr.Implant | pr.Replacement, state: PumpState, history: History,
             patient: PatientFacts, at: datetime, lib: DrugLibrary, profile: PumpProfile) -> None:
    b.add(*r.pump_writable_rules(state))
    b.add(r.new_pump_rule(state))
    prod = r.product_for(lib, p.product, p.concentration)
    conc = p.concentration.value
    if p.volume.value <= 0:
        b.add(Verdict("refill.capacity", Classification.BELOW_ABSOLUTE,
                      f"fill volume {p.volume.value:g} mL: more than 0 mL is needed", "pump"))
    cap_v = r.capacity_rule(p.volume.value, profile)
    b.add(cap_v)
    context = p.context if isinstance(p, pr.Replacement) else Context.TITRATION
    dose_v = _program_rules(b, p.prescription, conc, context, state, history, patient, at, lib,
                            profile)
    _program_rows(b, None, None, p.prescription, conc, dose_v)
    b.row("product", "-", prod)
    b.row("fill volume", "-", f"{p.volume.value:g} mL of {conc:g} mcg/mL", cap_v)
    cath = default_catheter()
    if isinstance(p, pr.Replacement) and not p.new_catheter:
        path = state.internal_volume_ml
        what = "the new pump's internal path (the implanted catheter stays primed)"
    else:
        path = state.path_volume_ml
        length = (path - state.internal_volume_ml) / cath.volume_ml_per_cm
        what = f"pump path + catheter {length:.0f} cm"
    prime = priming_bolus(profile, path)
    b.cmd("refill", volume=f"{p.volume.value!r} mL", concentration=f"{conc!r} mcg/mL")
    b.cmd("program", prescription=p.prescription.to_dict(), concentration=f"{conc!r} mcg/mL")
    b.cmd("start")
    if prime is not None:
        b.priming = PrimingPlan(prime.volume_ml, prime.hours, what)
        pv = r.priming_rule(prime, profile)
        b.add(pv)
        b.row("priming bolus", "-", f"{prime.volume_ml:.4g} mL over {prime.seconds / 60:.1f} min "
              f"({what})", pv)
        b.cmd("priming_bolus", **prime.wire_args())
    b.projection = _projection_now(state, profile, p.prescription, conc, p.volume.value)


def _priming(b: _Build, p: pr.Priming, state: PumpState, profile: PumpProfile) -> None:
    b.add(*r.pump_writable_rules(state))
    if not state.running or state.program is None:
        b.add(Verdict("pump.state", Classification.ABOVE_ABSOLUTE, "the pump must be running a "
                      "program to give a priming bolus", "pump state", "not_running"))
    if state.bolus_running_until is not None:
        b.add(Verdict("pump.state", Classification.ABOVE_ABSOLUTE, "a bolus is already running",
                      "pump state", "bolus_running"))
    path = state.path_volume_ml if p.volume is None else p.volume.value
    plan = priming_bolus(profile, path)
    if plan is None:
        b.add(Verdict("priming.plan", Classification.BELOW_ABSOLUTE, f"{path:g} mL is less than "
                      "one pump stroke", "device profile"))
        return
    if p.duration is not None:
        seconds = round(p.duration.value * 3600)
        if seconds < plan.seconds or seconds > 86_400:
            b.add(Verdict("priming.plan", Classification.ABOVE_ABSOLUTE,
                          f"priming {plan.volume_ml:.4g} mL over {seconds} s is outside what the "
                          f"pump gives (at least {plan.seconds} s at its "
                          f"{profile.bolus_max_flow_ml_per_hour:g} mL/h limit, at most 24 h)",
                          "device profile: bolus flow limit"))
            return
        plan = type(plan)(plan.strokes, plan.volume_ml, seconds)
    b.add(r.priming_rule(plan, profile))
    b.priming = PrimingPlan(plan.volume_ml, plan.hours, "pump path + catheter"
                            if p.volume is None else f"{plan.volume_ml:.4g} mL")
    b.row("priming bolus", "-", f"{plan.volume_ml:.4g} mL over {plan.seconds / 60:.1f} min")
    b.cmd("priming_bolus", **plan.wire_args())
