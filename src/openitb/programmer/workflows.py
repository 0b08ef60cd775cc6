"""Clinician programmer workflows over a telemetry link, on the safety kernel.

Every change follows one path. :meth:`Programmer.review` only reads (the status, which carries
the pump's 24 h history and state version) and asks the kernel (:func:`openitb.safety.review`).
:meth:`Programmer.apply` takes the proposal and the review's token, re-reads the pump, rebuilds
the review, refuses with ``stale_review`` ("changed since your review: review again") when the
token differs, passes the kernel's gate (role, confirmation, override reason), writes exactly
``review.commands``, each with the precondition ``expect_version`` (the version the review saw,
then the one each write returns), reads back and compares. The session record gets every read,
change, override and refusal. The programmer has no rules of its own.

The faces (CLI, clinic, PTM) call :meth:`review` and :meth:`apply` with the patient's facts, the
actor, the override reason and the token; :meth:`change` does both in one session with a
confirmation callback (the CLI's review screen).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openitb.devices import PumpProfile, get_pump
from openitb.drugs import Context, DrugLibrary, Origin, Population, load_library
from openitb.errors import RefusedOperation
from openitb.programmer import interrogate as ig
from openitb.programmer.link import PumpLink, ReadbackMismatch
from openitb.safety import (
    Actor,
    History,
    PatientFacts,
    PumpState,
    Review,
    Role,
    WireCommand,
    history_from_report,
    pump_state_from_status,
)
from openitb.safety import proposals as pr
from openitb.safety import review as kernel_review
from openitb.safety.review import Row
from openitb.therapy.prescription import Continuous, Prescription, parse_prescription
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters, parse

AnyReview = Review
Confirm = Callable[[Review], bool]
VOLUME_TOLERANCE_ML = 0.005  # a few strokes delivered between the write and the read-back
DEFAULT_ACTOR = Actor(Role.PHYSICIAN, "programmer")
STALE = "changed since your review: review again"


@dataclass(frozen=True)
class Snapshot:
    """One read of the pump: the wire status, and the kernel's typed view of it."""

    status: dict[str, Any]
    state: PumpState
    history: History


@dataclass
class Outcome:
    action: str
    review: Review
    written: list[str]
    readback: dict[str, Any]
    override_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "classification": self.review.classification.value,
            "decision": self.review.decision.value,
            "guardrail": self.review.reason,
            "override_reason": self.override_reason,
            "review": [r.to_dict() for r in self.review.rows],
            "verdicts": [v.to_dict() for v in self.review.verdicts],
            "warnings": list(self.review.warnings),
            "commands": [c.to_dict() for c in self.review.commands],
            "token": self.review.token,
            "written": self.written,
            "readback": "matches",
            **self.extra,
        }


def _row(r: Row) -> dict[str, Any]:
    return r.to_dict()


def _close(a: Any, b: float, tol: float = 1e-9) -> bool:
    return isinstance(a, (int, float)) and abs(float(a) - b) <= tol * max(1.0, abs(b))


def program_differences(status: dict[str, Any], proposed: Prescription,
                        concentration: McgPerMl) -> list[str]:
    """Each field where the pump's program differs from what was written."""
    want = proposed.to_dict()
    got = status.get("program")
    out: list[str] = []
    if not isinstance(got, dict):
        return [f"program: wrote {want}, the pump reports {got!r}"]
    for key in sorted(set(want) | set(got)):
        if want.get(key) != got.get(key):
            out.append(f"program.{key}: wrote {want.get(key)!r}, the pump reports "
                       f"{got.get(key)!r}")
    pc = status.get("program_concentration_mcg_per_ml")
    if not _close(pc, concentration.value):
        out.append(f"concentration: wrote {concentration}, the pump reports {pc} mcg/mL")
    return out


def volume_differences(before: dict[str, Any], after: dict[str, Any], profile: PumpProfile,
                       volume: Milliliters, verb: str) -> list[str]:
    """The reservoir read back may be lower than written by at most what the pump can have
    moved since (its bolus flow limit over the pump-clock time elapsed), never higher."""
    got = after.get("reservoir_estimate_ml")
    if not isinstance(got, (int, float)):
        return [f"reservoir: {verb} {volume.value:g} mL, the pump reports {got!r}"]
    elapsed_h = max(0.0, (ig.pump_time(after) - ig.pump_time(before)).total_seconds() / 3600)
    may_move = profile.bolus_max_flow_ml_per_hour * elapsed_h + profile.max_flow.value / 24 * \
        elapsed_h
    if not volume.value - may_move - VOLUME_TOLERANCE_ML <= got <= volume.value + 1e-9:
        return [f"reservoir: {verb} {volume.value:g} mL, the pump estimates {got:g} mL"]
    return []


def readback_differences(commands: tuple[WireCommand, ...], before: dict[str, Any],
                         after: dict[str, Any]) -> list[str]:
    """What the pump reports after the writes, compared with each command written."""
    profile = get_pump(str(after.get("profile") or before["profile"]))
    d: list[str] = []
    names = [c.name for c in commands]
    for c in commands:
        a = c.arguments
        if c.name == "program":
            d += program_differences(after, parse_prescription(a["prescription"]),
                                     parse(a["concentration"], McgPerMl, "concentration"))
        elif c.name == "refill":
            conc = parse(a["concentration"], McgPerMl, "concentration")
            if not _close(after.get("reservoir_concentration_mcg_per_ml"), conc.value):
                d.append(f"reservoir concentration: wrote {conc}, the pump reports "
                         f"{after.get('reservoir_concentration_mcg_per_ml')} mcg/mL")
            d += volume_differences(before, after, profile,
                                    parse(a["volume"], Milliliters, "volume"),
                                    "filled" if "start" in names else "wrote")
        elif c.name == "start" and after.get("state") != "running":
            d.append(f"state: expected running, the pump reports {after.get('state')}")
        elif c.name == "stop" and after.get("running"):
            d.append("state: wrote stop, the pump reports running")
        elif c.name in ("clinician_bolus", "priming_bolus", "bridge_bolus", "patient_bolus") \
                and not after.get("bolus_running_until"):
            what = {"priming_bolus": "priming bolus", "bridge_bolus": "bridge bolus"}.get(
                c.name, "bolus")
            d.append(f"{what}: written, but the pump reports no bolus running")
        elif c.name == "set_low_alarm":
            th = parse(a["threshold"], Milliliters, "threshold").value
            if not _close(after.get("low_alarm_ml"), th):
                d.append(f"low alarm: wrote {th:g} mL, the pump reports "
                         f"{after.get('low_alarm_ml')}")
        elif c.name == "set_patient_limits":
            want = {"dose_mcg": parse(a["dose"], Micrograms, "dose").value,
                    "duration_s": round(parse(a["duration"], Hours, "duration").value * 3600),
                    "lockout_s": round(parse(a["lockout"], Hours, "lockout").value * 3600),
                    "max_per_day": a["max_per_day"]}
            got = (after.get("patient_bolus") or {}).get("limits") or {}
            d += [f"patient limits.{k}: wrote {v!r}, the pump reports {got.get(k)!r}"
                  for k, v in want.items() if got.get(k) != v]
    return d


def patient_for(origin: Origin | str | None = None, population: Population | None = None,
                *, weight_kg: float | None = None, age_years: float | None = None
                ) -> PatientFacts:
    """Patient facts from the programmer's arguments (adult spinal when nothing is known)."""
    child = True if population is Population.PEDIATRIC else None
    return PatientFacts(origin or Origin.SPINAL, child=child, weight_kg=weight_kg,
                        age_years=age_years)


class Programmer:
    def __init__(self, link: PumpLink, *, library: DrugLibrary | None = None,
                 actor: Actor | None = None, patient: PatientFacts | None = None) -> None:
        self.link = link
        self.library = library or load_library()
        self.actor = actor or DEFAULT_ACTOR
        self.patient = patient

    # ---- reads -----------------------------------------------------------------------------
    def snapshot(self, *, fresh: bool = False) -> Snapshot:
        """The pump now: the session's last status if nothing was written since (reads never
        change the pump), else one ``read_status`` (which carries the 24 h history)."""
        status = None if fresh else self.link.fresh_status()
        if status is None:
            status = self.link.read_status()
        return Snapshot(status, pump_state_from_status(status),
                        history_from_report(status.get("history_24h")))

    def status(self) -> dict[str, Any]:
        return self.link.read_status()

    def interrogate(self, log_entries: int = 20) -> dict[str, Any]:
        status = self.link.read_status()
        return ig.summarize(status, self.link.read_log(log_entries))

    def replacement_plan(self) -> dict[str, Any]:
        return ig.replacement_plan(self.link.read_status())

    # ---- the one path for every change -----------------------------------------------------
    def review(self, proposal: pr.Proposal, *, patient: PatientFacts | None = None,
               actor: Actor | None = None, snapshot: Snapshot | None = None) -> Review:
        """The kernel's review of ``proposal`` on this pump. Only reads."""
        snap = snapshot or self.snapshot()
        return kernel_review(proposal, state=snap.state, history=snap.history,
                             patient=patient or self.patient or patient_for(),
                             actor=actor or self.actor, library=self.library)

    def apply(self, proposal: pr.Proposal, *, token: str, patient: PatientFacts | None = None,
              actor: Actor | None = None, override_reason: str | None = None,
              confirmed: bool = True, extra: dict[str, Any] | None = None,
              record_as: str | None = None) -> Outcome:
        """Write what the review with ``token`` showed, or nothing.

        Re-reads the pump and rebuilds the review; a different token is refused with
        ``stale_review``. Then the kernel's gate; then each command with its precondition. A
        command refused after others were written says exactly what was written."""
        rec = self.link.record
        now = self.link.now
        snap = self.snapshot(fresh=True)
        rv = self.review(proposal, patient=patient, actor=actor, snapshot=snap)
        action = record_as or rv.action
        if rv.token != token:
            reason = (f"{STALE} (the pump's state or the proposal differs from what was "
                      f"reviewed; pump state version now {rv.state_version}); nothing was "
                      "written")
            rec.refused(now(), action, "stale_review", reason)
            raise RefusedOperation(reason, code="stale_review")
        try:
            logged = rv.gate(confirmed=confirmed, override_reason=override_reason)
        except RefusedOperation as exc:
            rec.refused(now(), action, exc.code, exc.reason)
            raise
        written: list[str] = []
        version = rv.state_version
        for c in rv.commands:
            try:
                resp = self.link.send(c.name, **c.arguments, expect_version=version)
            except RefusedOperation as exc:
                code = exc.code
                reason = exc.reason
                if code == "precondition_failed" and not written:
                    code, reason = "stale_review", f"{STALE}: {exc.reason}"
                rec.change(now(), action, {
                    "classification": rv.classification.value, "guardrail": rv.reason,
                    "override_reason": logged, "written": written, "failed_at": c.name,
                    "readback": "not done", "token": rv.token})
                tail = ("; interrogate the pump before continuing" if written else "")
                raise RefusedOperation(f"{reason}; written before the failure: "
                                       f"{', '.join(written) or 'nothing'}{tail}",
                                       code=code) from None
            written.append(c.name)
            nv = resp.get("state_version")
            version = nv if isinstance(nv, int) and not isinstance(nv, bool) else version + 1
        status = self.link.read_status()
        diffs = readback_differences(rv.commands, snap.status, status)
        entry = {"classification": rv.classification.value, "guardrail": rv.reason,
                 "override_reason": logged, "review": [_row(r) for r in rv.rows],
                 "verdicts": [v.to_dict() for v in rv.verdicts], "token": rv.token,
                 "written": written, "readback": "mismatch" if diffs else "matches",
                 "differences": diffs}
        rec.change(now(), action, entry)
        if diffs:
            raise ReadbackMismatch(diffs)
        out = Outcome(action, rv, written, {"state": status.get("state")}, logged,
                      dict(extra or {}))
        if rv.projection is not None:
            out.extra.setdefault("projection", rv.projection.to_dict())
        return out

    def change(self, proposal: pr.Proposal, *, confirm: Confirm,
               override_reason: str | None = None, patient: PatientFacts | None = None,
               actor: Actor | None = None, record_as: str | None = None) -> Outcome:
        """Review, ask ``confirm`` (the review screen), then apply in the same session."""
        rv = self.review(proposal, patient=patient, actor=actor)
        if rv.refused:
            try:
                rv.gate(confirmed=False)
            except RefusedOperation as exc:
                self.link.record.refused(self.link.now(), record_as or rv.action, exc.code,
                                         exc.reason)
                raise
        confirmed = bool(confirm(rv))
        return self.apply(proposal, token=rv.token, patient=patient, actor=actor,
                          override_reason=override_reason, confirmed=confirmed,
                          record_as=record_as)

    # ---- program changes -------------------------------------------------------------------
    def review_change(self, proposed: Prescription, *, origin: Origin, context: Context,
                      population: Population | None = None,
                      status: dict[str, Any] | None = None) -> Review:
        snap = None
        if status is not None:
            snap = Snapshot(status, pump_state_from_status(status),
                            history_from_report(status.get("history_24h")))
        return self.review(pr.ProgramChange(proposed, context),
                           patient=patient_for(origin, population), snapshot=snap)

    def change_program(self, proposed: Prescription, *, origin: Origin, context: Context,
                       confirm: Confirm, override_reason: str | None = None,
                       population: Population | None = None) -> Outcome:
        return self.change(pr.ProgramChange(proposed, context), confirm=confirm,
                           override_reason=override_reason,
                           patient=patient_for(origin, population),
                           record_as="flex_program" if proposed.mode.value == "flex"
                           else "dose_change")

    def change_dose(self, dose: McgPerDay, **kw: Any) -> Outcome:
        return self.change_program(Continuous(dose), **kw)

    # ---- implant, replacement --------------------------------------------------------------
    def implant(self, prescription: Prescription, *, product: str, concentration: McgPerMl,
                volume: Milliliters, confirm: Confirm, origin: Origin,
                override_reason: str | None = None,
                population: Population | None = None) -> Outcome:
        out = self.change(pr.Implant(prescription, product, concentration, volume),
                          confirm=confirm, override_reason=override_reason,
                          patient=patient_for(origin, population))
        out.extra["priming"] = out.review.priming.to_dict() if out.review.priming else None
        return out

    def replacement(self, prescription: Prescription, *, product: str,
                    concentration: McgPerMl, volume: Milliliters, confirm: Confirm,
                    origin: Origin, new_catheter: bool = False,
                    override_reason: str | None = None,
                    population: Population | None = None) -> Outcome:
        """Set up a replacement pump (this link's pump is the new one)."""
        out = self.change(pr.Replacement(prescription, product, concentration, volume,
                                         new_catheter), confirm=confirm,
                          override_reason=override_reason,
                          patient=patient_for(origin, population))
        out.extra["priming"] = out.review.priming.to_dict() if out.review.priming else None
        return out

    # ---- refill ----------------------------------------------------------------------------
    def refill(self, *, withdrawn: Milliliters, product: str, concentration: McgPerMl,
               volume: Milliliters, confirm: Confirm, bridge: bool = True,
               override_reason: str | None = None, patient: PatientFacts | None = None
               ) -> Outcome:
        out = self.change(pr.Refill(withdrawn, product, concentration, volume, bridge),
                          confirm=confirm, override_reason=override_reason, patient=patient)
        rv = out.review
        out.extra["discrepancy"] = rv.fact("discrepancy")
        b = rv.bridge
        # What was actually given (None: no concentration change, nothing to bridge).
        out.extra["bridge"] = ({"volume_ml": b.volume_ml, "duration_h": b.duration_h,
                                "dose_mcg": b.dose_mcg, "unbridged_ml": b.unbridged_ml,
                                "given": b.given} if b is not None and b.given else None)
        if b is not None and not b.given:
            out.extra["bridge_declined"] = {"unbridged_ml": b.unbridged_ml}
        proj = out.extra.get("projection")
        if proj is not None:
            out.extra["low_alarm_at"] = proj["low_alarm_at"]
            out.extra["refill_by"] = proj["refill_by"]
        return out

    # ---- other settings --------------------------------------------------------------------
    def clinician_bolus(self, dose: Micrograms, duration: Hours, *, confirm: Confirm,
                        override_reason: str | None = None,
                        patient: PatientFacts | None = None) -> Outcome:
        return self.change(pr.ClinicianBolus(dose, duration), confirm=confirm,
                           override_reason=override_reason, patient=patient)

    def set_low_alarm(self, threshold: Milliliters, *, confirm: Confirm,
                      override_reason: str | None = None) -> Outcome:
        return self.change(pr.LowAlarm(threshold), confirm=confirm,
                           override_reason=override_reason, record_as="low_alarm")

    def set_patient_limits(self, *, dose: Micrograms, duration: Hours, lockout: Hours,
                           max_per_day: int, confirm: Confirm,
                           override_reason: str | None = None) -> Outcome:
        return self.change(pr.PatientLimits(dose, duration, lockout, max_per_day),
                           confirm=confirm, override_reason=override_reason)

    def stop(self, *, confirm: Confirm, override_reason: str | None = None) -> Outcome:
        """Stop infusion: a stop of therapy (withdrawal risk), physician only, with a reason."""
        return self.change(pr.StopTherapy(), confirm=confirm, override_reason=override_reason,
                           record_as="stop")

    def start(self, *, confirm: Confirm) -> Outcome:
        return self.change(pr.StartTherapy(), confirm=confirm)

    def acknowledge_alarm(self, kind: str) -> dict[str, Any]:
        self.link.send("acknowledge_alarm", kind=kind)
        self.link.record.change(self.link.now(), "acknowledge_alarm", {"kind": kind})
        return {"acknowledged": kind}

    # ---- MRI -------------------------------------------------------------------------------
    def post_mri_check(self, *, confirm: Confirm, restart: bool = True) -> dict[str, Any]:
        """Interrogate after a scan (this resumes a pump that waits for one), confirm the rotor
        recovered, and offer to restart a pump that is stopped with a program."""
        status = self.link.read_status()
        log = self.link.read_log(30)
        state = status.get("state")
        resumed = self.link.resumed_after_mri
        mri_events = [e for e in log if "mri" in str(e.get("kind", "")).lower()
                      or e.get("kind") in ("alarm_raised", "alarm_cleared")
                      and (e.get("data") or {}).get("kind") == "motor_stall"]
        result: dict[str, Any] = {"state": state, "resumed_by_interrogation": resumed,
                                  "mri_log": mri_events, "restarted": False}
        if state == "running":
            result["recovered"] = True
            result["message"] = ("infusing: the rotor recovered" +
                                 (" and this interrogation resumed infusion"
                                  if resumed else ""))
        elif state == "motor_stall":
            result["recovered"] = False
            result["message"] = ("not recovered: the rotor is still stalled or recovering "
                                 "(up to 24 h); check again later and watch for withdrawal")
        elif state == "stopped" and status.get("program") and restart:
            snap = Snapshot(status, pump_state_from_status(status),
                            history_from_report(status.get("history_24h")))
            rv = self.review(pr.StartTherapy(), snapshot=snap)
            if rv.refused:
                rv.gate(confirmed=False)
            self.apply(pr.StartTherapy(), token=rv.token, confirmed=bool(confirm(rv)))
            result.update(recovered=True, restarted=True,
                          message="the pump was stopped; infusion restarted and read back")
        else:
            result["recovered"] = False
            result["message"] = f"the pump is {state}: not infusing; act now"
        self.link.record.read(self.link.now(), "post_mri_check",
                              {"state": state, "recovered": result["recovered"]})
        return result
