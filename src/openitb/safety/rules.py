"""The kernel's rules: each a small pure function returning a :class:`Verdict` (rule id,
classification, reason, source). docs/kernel.md lists them; to add one, write it here, call it
from the proposal's assembly in :mod:`openitb.safety.kernel`, and add its row to the doc.
"""

from __future__ import annotations

from datetime import datetime

from openitb.devices import PumpProfile
from openitb.drugs import Context, DrugLibrary
from openitb.errors import InvalidInput
from openitb.pump.patient_bolus import PatientBolusLimits
from openitb.safety import proposals as pr
from openitb.safety.history import WINDOW, History
from openitb.safety.patient import PatientFacts
from openitb.safety.permissions import Permissions, Role
from openitb.safety.plans import BridgeSplit, VolumeBolus
from openitb.safety.review import ORDER, Verdict
from openitb.safety.state import PumpState
from openitb.therapy.guardrails import Classification, Guardrail, check_change, daily_dose_guardrail
from openitb.therapy.prescription import Prescription, validate_for_pump
from openitb.therapy.refill import Discrepancy, check_discrepancy
from openitb.units import McgPerDay, McgPerMl

W = Classification.WITHIN
AR = Classification.ABOVE_RECOMMENDED
BR = Classification.BELOW_RECOMMENDED
AA = Classification.ABOVE_ABSOLUTE
BA = Classification.BELOW_ABSOLUTE

WITHDRAWAL_WARNING = ("stop of therapy: intrathecal baclofen withdrawal (high fever, altered "
                      "mental status, rebound spasticity, rigidity; rarely rhabdomyolysis, organ "
                      "failure, death) may follow within 24-72 h; plan how therapy resumes")
LABEL = "baclofen injection labels (Lioresal Intrathecal, Gablofen), dosing section (C)"
BEST_PRACTICE = "Best Practices for ITB Therapy, Neuromodulation 2016 (C)"







def rank(c: Classification) -> int:
    return ORDER.index(c)


# ---- the pump ---------------------------------------------------------------------------------
def pump_writable_rules(state: PumpState) -> list[Verdict]:
    if state.status.value == "end_of_service":
        return [Verdict("pump.state", AA, "end of service: the pump no longer infuses; replace it",
                        "pump state", "end_of_service")]
    return []


def bolus_state_rules(state: PumpState) -> list[Verdict]:
    out: list[Verdict] = []
    if not state.running or state.program is None or not state.program_concentration:
        out.append(Verdict("pump.state", AA, "the pump must be running a program to give a bolus",
                           "pump state", "not_running"))
    if state.bolus_running_until is not None:
        out.append(Verdict("pump.state", AA, "a bolus is already running until "
                           f"{state.bolus_running_until.isoformat()}", "pump state", "bolus_running"))
    return out


def pump_flow_rule(rx: Prescription, profile: PumpProfile, conc: float) -> Verdict:
    try:
        validate_for_pump(rx, profile, McgPerMl(conc))
    except InvalidInput as exc:
        low = "pump moves" in exc.allowed and _below_min(rx, profile, conc)
        return Verdict("pump.flow", BA if low else AA, f"{exc.given}: {exc.allowed}",
                       f"device profile {profile.name} (data/devices.toml)")
    return Verdict("pump.flow", W, f"every step within the {profile.name} pump's "
                   f"{profile.min_flow.value:g}-{profile.max_flow.value:g} mL/day",
                   f"device profile {profile.name} (data/devices.toml)")


def _below_min(rx: Prescription, profile: PumpProfile, conc: float) -> bool:
    return any(s.dose_per_day.value / conc < profile.min_flow.value for s in rx.segments())


def bolus_flow_rule(dose_mcg: float, hours: float, conc: float, profile: PumpProfile) -> Verdict:
    src = f"device profile {profile.name}: bolus flow limit"
    seconds = round(hours * 3600)
    if not 60 <= seconds <= 86_400:
        return Verdict("bolus.flow", AA, f"bolus duration {hours * 60:.0f} min: 1 min to 24 h",
                       src)
    if conc <= 0:
        return Verdict("bolus.flow", AA, "no concentration in the pump to give a bolus at", src)
    flow = dose_mcg / conc / (seconds / 3600)
    lim = profile.bolus_max_flow_ml_per_hour
    if flow > lim + 1e-12:
        return Verdict("bolus.flow", AA, f"bolus flow {flow:.3g} mL/h above the pump's "
                       f"{lim:g} mL/h limit: give it over a longer time", src)
    return Verdict("bolus.flow", W, f"bolus flow {flow:.3g} mL/h within {lim:g} mL/h", src)


def new_pump_rule(state: PumpState) -> Verdict:
    if state.program is not None or state.running:
        return Verdict("implant.new_pump", AA, "this pump already holds a program: use a "
                       "program change or a refill, not an implant", "pump state", "not_new")
    return Verdict("implant.new_pump", W, "a new pump: no program yet", "pump state")


def priming_rule(prime: VolumeBolus, profile: PumpProfile) -> Verdict:
    return Verdict("priming.plan", W,
                   f"priming {prime.volume_ml:.4g} mL over {prime.seconds} s: "
                   f"{prime.flow_ml_per_hour:.4g} mL/h, within the {profile.name} pump's "
                   f"{profile.bolus_max_flow_ml_per_hour:g} mL/h (duration rounded up to whole "
                   "seconds)", "device profile (internal volume, bolus flow limit); catheter "
                   "0.0026 mL/cm, Prometra II manual (C)")


# ---- doses ------------------------------------------------------------------------------------
def stop_rule(rx: Prescription) -> Verdict | None:
    """A program that ends continuous delivery is a stop of therapy."""
    zero = all(s.dose_per_day.value <= 0 for s in rx.segments())
    if rx.repeats_daily and not zero:
        return None
    what = ("a single bolus and then nothing" if not rx.repeats_daily else
            "a schedule of zero doses")
    return Verdict("therapy.stop", BR,
                   f"this program ends continuous delivery ({what}): a stop of therapy; "
                   "physician only, an override reason is required",
                   "label boxed warning (C): abrupt discontinuation of intrathecal baclofen")


def single_bolus_dose_rule(rx: Prescription, lib: DrugLibrary) -> Verdict:
    return clinician_bolus_rule(rx.daily_dose().value, lib, what="single bolus")


def _window_boluses(history: History, at: datetime) -> float:
    return history.boluses_since(at - WINDOW)


def daily_bounds_rule(daily_mcg: float, history: History, patient: PatientFacts, at: datetime,
                      lib: DrugLibrary, *, extra_mcg: float = 0.0,
                      what: str = "daily dose") -> Verdict:
    """The 24 h total (program + boluses of the last 24 h + ``extra``) within the population's
    daily bounds."""
    boluses = _window_boluses(history, at)
    total = daily_mcg + boluses + extra_mcg
    pop = patient.population
    rail = daily_dose_guardrail(pop, lib)
    cls, reason = rail.classify(total)
    if boluses > 0:
        reason += f" (includes {boluses:g} mcg of boluses given in the last 24 h)"
    if not cls.allowed and cls is AA:
        reason += "; check each step is a daily rate (mcg/day), not mcg per hour"
    if cls is W and what != "daily dose":
        reason = f"{what}: " + reason
    return Verdict("dose.daily_bounds", cls, reason, lib.bounds(pop).source)


def step_reference(state: PumpState, history: History, at: datetime) -> list[float]:
    """The continuous daily doses in force in the last 24 h (the step's reference: an increase
    is judged from the lowest, a decrease from the highest)."""
    current = (state.program.daily_dose().value
               if state.program is not None and state.program.repeats_daily else None)
    return [d for d in history.continuous_doses_in_window(at, current) if d > 0]


def step_rule(proposed_daily: float, context: Context, state: PumpState, history: History,
              patient: PatientFacts, at: datetime, lib: DrugLibrary) -> Verdict:
    """The label step per 24 h, from the 24 h reference: an increase from the lowest continuous
    daily dose in force in the window, a decrease from the highest; boluses of the window count
    on top of the proposed dose."""
    doses = step_reference(state, history, at)
    pop = patient.population
    origin = patient.spasticity_origin
    limit = lib.change_limit_for(pop, origin, context)
    if not doses:
        return Verdict("dose.step_24h", W, "no continuous dose in the last 24 h: a start of "
                       "therapy, judged by the daily bounds", limit.source)
    boluses = _window_boluses(history, at)
    total = proposed_daily + boluses
    lo_ref, hi_ref = min(doses), max(doses)
    up = check_change(McgPerDay(lo_ref), McgPerDay(total), origin, context, population=pop,
                      library=lib, limit=limit)
    down = check_change(McgPerDay(hi_ref), McgPerDay(total), origin, context, population=pop,
                        library=lib, limit=limit)
    chk = max((up, down), key=lambda c: rank(c.classification))
    ref = "the 24 h reference"
    if len(set(doses)) > 1 or boluses > 0:
        ref = (f"the 24 h reference ({'lowest' if chk is up else 'highest'} daily dose in force "
               f"in the last 24 h: {chk.current.value:g} mcg/day; doses in the window: "
               + ", ".join(f"{d:g}" for d in doses) + " mcg/day"
               + (f"; {boluses:g} mcg of boluses counted" if boluses > 0 else "") + ")")
    return Verdict("dose.step_24h", chk.classification, f"{chk.reason}; judged from {ref}",
                   limit.source)


def history_rule(history: History) -> Verdict | None:
    if history.truncated:
        return Verdict("history.complete", AR, "the pump reported only part of the last 24 h "
                       "(too many changes): the 24 h reference may be missing; an override "
                       "reason is required", "label (C): steps are per 24 h")
    return None


def clinician_bolus_rule(dose_mcg: float, lib: DrugLibrary, what: str = "clinician bolus"
                         ) -> Verdict:
    k = lib.kernel
    assert k is not None
    top = max(d.value for d in lib.screening_doses)
    rail = Guardrail(1.0, 1.0, top, top * k.clinician_bolus_absolute_factor, "mcg", what)
    cls, reason = rail.classify(dose_mcg)
    return Verdict("bolus.dose", cls, reason, k.clinician_bolus_source)


def patient_share_rule(share_mcg: float, basal: float, lib: DrugLibrary) -> Verdict:
    k = lib.kernel
    assert k is not None
    if basal <= 0:
        return Verdict("patient.share", AA, "patient boluses need a running basal program to "
                       "scale against", k.patient_share_source)
    rail = Guardrail(0.0, 0.0, k.patient_share_recommended * basal,
                     k.patient_share_absolute * basal, "mcg/day", "patient boluses in 24 h")
    cls, reason = rail.classify(share_mcg)
    return Verdict("patient.share", cls, reason, k.patient_share_source)


def patient_limits_pump_rule(p: pr.PatientLimits) -> Verdict:
    try:
        PatientBolusLimits(p.dose.value, round(p.duration.value * 3600),
                           round(p.lockout.value * 3600), p.max_per_day)
    except ValueError as exc:
        return Verdict("patient.pump_limits", AA, str(exc), "pump/patient_bolus.py (R) limits")
    return Verdict("patient.pump_limits", W, "within the pump's patient-bolus limits",
                   "pump/patient_bolus.py (R) limits")


def patient_request_rule(state: PumpState, at: datetime) -> Verdict:
    src = "clinician-set limits, enforced by the pump (pump/patient_bolus.py)"
    lim = state.patient_limits
    if lim is None:
        return Verdict("patient.request", AA, "patient boluses are not enabled: the clinician "
                       "has set no patient bolus limits", src, "ptm_disabled")
    nxt = state.patient_next_allowed
    when = f"; next allowed at {nxt.isoformat()}" if nxt is not None else ""
    if state.patient_boluses_used_today >= lim.max_per_day:
        return Verdict("patient.request", AA, f"the maximum of {lim.max_per_day} activations in "
                       f"24 h has been reached{when}", src, "ptm_daily_limit")
    if nxt is not None and nxt > at:
        return Verdict("patient.request", AA, f"lockout: {lim.lockout_s // 60} min must pass "
                       f"between activations{when}", src, "ptm_lockout")
    return Verdict("patient.request", W, f"{lim.dose_mcg:g} mcg, "
                   f"{state.patient_boluses_used_today} of {lim.max_per_day} used in 24 h", src)


# ---- refill -----------------------------------------------------------------------------------
def product_for(lib: DrugLibrary, product: str, concentration: McgPerMl, *,
                compounded: bool = False) -> str:
    """The library product's name (case-insensitive, or its first word); InvalidInput if it is
    unknown, or does not come in ``concentration`` (unless declared compounded)."""
    names = {p.name.lower(): p for p in lib.products}
    key = product.strip().lower()
    found = names.get(key) or next((p for n, p in names.items() if n.split()[0] == key), None)
    if found is None:
        raise InvalidInput("product", product, "one of " + ", ".join(p.name for p in
                                                                      lib.products))
    if not compounded and not any(abs(c.value - concentration.value) <= 1e-9 *
                                  max(1.0, c.value) for c in found.concentrations):
        raise InvalidInput("concentration", str(concentration), f"{found.name} comes in "
                           + ", ".join(str(c) for c in found.concentrations))
    return found.name


def concentration_rule(lib: DrugLibrary, concentration: McgPerMl, compounded: bool,
                       product: str) -> Verdict:
    chk = lib.check_concentration(concentration, compounded=compounded)
    if chk.warning:
        return Verdict("refill.concentration", AR, chk.warning + "; an override reason is "
                       "required", "drug library (data/drugs.toml)")
    return Verdict("refill.concentration", W, f"{product} {concentration} is a labelled product",
                   "drug library (data/drugs.toml)")


def discrepancy_rule(profile: PumpProfile, expected: float, withdrawn: float
                     ) -> tuple[Verdict, Discrepancy]:
    from openitb.units import Milliliters

    if withdrawn < 0 or withdrawn > profile.capacity.value + 1e-9:
        raise InvalidInput("withdrawn", f"{withdrawn:g} mL",
                           f"0 to the {profile.name} reservoir capacity of {profile.capacity}")
    d = check_discrepancy(profile, Milliliters(expected), Milliliters(withdrawn))
    if d.flagged:
        return Verdict("refill.discrepancy", AR,
                       f"withdrawn {withdrawn:g} mL vs expected {expected:.3g} mL: difference "
                       f"{d.difference_ml:+.2f} mL beyond {d.threshold}; possible causes: "
                       f"{'; '.join(d.possible_causes)}; an override reason is required",
                       BEST_PRACTICE), d
    return Verdict("refill.discrepancy", W, f"difference {d.difference_ml:+.2f} mL within "
                   f"{d.threshold}", BEST_PRACTICE), d


def capacity_rule(volume_ml: float, profile: PumpProfile) -> Verdict:
    if volume_ml > profile.capacity.value + 1e-9:
        return Verdict("refill.capacity", AA, f"{volume_ml:g} mL exceeds the {profile.name} "
                       f"reservoir capacity of {profile.capacity}: overfill; refused",
                       f"device profile {profile.name}")
    if volume_ml <= 0:
        return Verdict("refill.capacity", BA, "a refill puts more than 0 mL in the reservoir",
                       f"device profile {profile.name}")
    return Verdict("refill.capacity", W, f"within the {profile.capacity} capacity",
                   f"device profile {profile.name}")


def bridge_rule(wanted: bool, running: bool, split: BridgeSplit, err_pct: float,
                unbridged_text: str) -> Verdict:
    src = ("bridge bolus at a concentration change: pump maker's refill procedure (C); the "
           "pump's longest bolus is 24 h (controller)")
    if not wanted or not running or split.bolus is None:
        why = ("declined" if not wanted else "the pump is not running" if not running
               else "too short to give")
        return Verdict("refill.bridge", AR, f"no bridge bolus ({why}): {unbridged_text}; an "
                       "override reason is required", src)
    if split.unbridged_ml > 1e-9:
        return Verdict("refill.bridge", AR,
                       f"the bridge covers {split.bolus.volume_ml:.3g} of {split.path_ml:.3g} mL "
                       f"in the pump's longest bolus (24 h); the other {split.unbridged_ml:.3g} mL"
                       f" reaches the tip at {err_pct:+.0f} % of the dose; an override reason is "
                       "required for the rest", src)
    return Verdict("refill.bridge", W, f"the bridge pushes the whole path "
                   f"({split.path_ml:.3g} mL) out at the old flow", src)


def low_alarm_rule(threshold_ml: float, profile: PumpProfile) -> Verdict:
    rail = Guardrail(profile.low_alarm_min.value, profile.low_alarm_default.value,
                     profile.low_alarm_max.value, profile.low_alarm_max.value, "mL",
                     "low-reservoir alarm")
    cls, reason = rail.classify(threshold_ml)
    return Verdict("alarm.low_threshold", cls, reason, "manufacturer default residual 2 mL, "
                   "configurable (C); pump range from the device profile")


# ---- roles ------------------------------------------------------------------------------------
def role_rule(role: Role, action: str, cls: Classification, perms: Permissions) -> Verdict:
    roles = perms.roles_for(cls, action)
    who = ", ".join(r.value for r in roles) or "nobody"
    src = perms.source
    if not cls.allowed:
        return Verdict("role.permission", cls, "beyond the absolute bounds: nobody may write "
                       "it", src)
    if not perms.may_propose(role, action):
        return Verdict("role.permission", AA if not roles else cls,
                       f"a {role.value} may not do this ({action}); who may: {who}", src)
    if role not in roles:
        return Verdict("role.permission", cls, f"a {role.value} may not confirm a change "
                       f"classified {cls.value}; who may: {who}", src)
    return Verdict("role.permission", W if not cls.needs_override else cls,
                   f"a {role.value} may confirm this" + (" with an override reason"
                                                         if cls.needs_override else ""), src)
