"""Clinician programmer workflows over a telemetry link.

Every change follows one path (:meth:`Programmer._apply`): build the review (current and
proposed side by side, each changed value classified), ask for confirmation, refuse outside
absolute bounds, require an override reason outside recommended bounds, write, read back and
compare. A mismatch raises ReadbackMismatch naming each difference. The session record gets
every read, change, override and refusal.

The program's concentration is never typed on a dose change: it is the concentration the pump
holds in its reservoir (set at the last refill), so a dose cannot be programmed against a
concentration that is not in the pump.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openitb.devices import PumpProfile, default_catheter, get_pump
from openitb.drugs import Context, DrugLibrary, Origin, Population, load_library
from openitb.errors import InvalidInput, RefusedOperation
from openitb.programmer import changes as ch
from openitb.programmer import interrogate as ig
from openitb.programmer.link import PumpLink, ReadbackMismatch
from openitb.programmer.review import Review, ReviewRow, review_program
from openitb.therapy.guardrails import Classification
from openitb.therapy.prescription import Continuous, Prescription, parse_prescription
from openitb.therapy.refill import bridge_bolus, check_discrepancy, priming_bolus
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters

AnyReview = Review | ch.ChangeReview
Confirm = Callable[[AnyReview], bool]
VOLUME_TOLERANCE_ML = 0.005
MAX_BRIDGE_H = 24.0  # the pump's longest bolus
RESIDUAL_SHARE = 0.10  # (R) an unbridged share of the path above this needs a reason  # a few strokes delivered between the write and the read-back


@dataclass
class Outcome:
    action: str
    review: AnyReview
    written: list[str]
    readback: dict[str, Any]
    override_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "classification": self.review.classification.value,
            "guardrail": self.review.reason,
            "override_reason": self.override_reason,
            "review": [_row(r) for r in self.review.rows],
            "warnings": list(getattr(self.review, "warnings", ())),
            "written": self.written,
            "readback": "matches",
            **self.extra,
        }


def _row(r: ReviewRow) -> dict[str, Any]:
    return {"field": r.field, "current": r.current, "proposed": r.proposed, "changed": r.changed,
            "classification": r.classification.value if r.classification else None,
            "reason": r.reason}


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


class Programmer:
    def __init__(self, link: PumpLink, *, library: DrugLibrary | None = None) -> None:
        self.link = link
        self.library = library or load_library()

    # ---- the one path for every change -----------------------------------------------------
    def _apply(self, action: str, review: AnyReview, confirm: Confirm,
               override_reason: str | None, writes: list[tuple[str, dict[str, Any]]],
               verify: Callable[[dict[str, Any]], list[str]],
               extra: dict[str, Any] | None = None) -> Outcome:
        rec = self.link.record
        try:
            confirmed = False if review.refused else bool(confirm(review))
            logged = review.confirm(confirmed=confirmed, override_reason=override_reason)
        except RefusedOperation as exc:
            rec.refused(self.link.now(), action, exc.code, exc.reason)
            raise
        written: list[str] = []
        for name, args in writes:
            try:
                self.link.send(name, **args)
            except RefusedOperation as exc:
                # Part of the change may be in the pump: record exactly what, and say so.
                rec.change(self.link.now(), action, {
                    "classification": review.classification.value, "guardrail": review.reason,
                    "override_reason": logged, "written": written, "failed_at": name,
                    "readback": "not done"})
                raise RefusedOperation(
                    f"{exc.reason}; written before the failure: {', '.join(written) or 'nothing'}"
                    "; interrogate the pump before continuing", code=exc.code) from None
            written.append(name)
        status = self.link.read_status()
        diffs = verify(status)
        entry = {"classification": review.classification.value, "guardrail": review.reason,
                 "override_reason": logged, "review": [_row(r) for r in review.rows],
                 "written": written, "readback": "mismatch" if diffs else "matches",
                 "differences": diffs}
        rec.change(self.link.now(), action, entry)
        if diffs:
            raise ReadbackMismatch(diffs)
        return Outcome(action, review, written, {"state": status.get("state")}, logged,
                       extra or {})

    # ---- reads -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return self.link.read_status()

    def interrogate(self, log_entries: int = 20) -> dict[str, Any]:
        status = self.link.read_status()
        return ig.summarize(status, self.link.read_log(log_entries))

    def replacement_plan(self) -> dict[str, Any]:
        return ig.replacement_plan(self.link.read_status())

    @staticmethod
    def _profile(status: dict[str, Any]) -> PumpProfile:
        return get_pump(str(status["profile"]))

    # ---- program changes -------------------------------------------------------------------
    def review_change(self, proposed: Prescription, *, origin: Origin, context: Context,
                      population: Population | None = None,
                      status: dict[str, Any] | None = None) -> Review:
        status = status or self.link.read_status()
        conc_value = status.get("reservoir_concentration_mcg_per_ml") or 0.0
        if conc_value <= 0:
            raise RefusedOperation("the reservoir holds no drug: fill it (implant or refill) "
                                   "before programming a dose", code="no_drug")
        conc = McgPerMl(conc_value)
        rx = status.get("program")
        current = parse_prescription(rx) if rx else None
        cur_conc_v = status.get("program_concentration_mcg_per_ml")
        cur_conc = McgPerMl(cur_conc_v) if cur_conc_v else None
        review = review_program(current, cur_conc, proposed, conc, self._profile(status),
                                origin=origin, context=context, population=population)
        warnings = list(review.warnings)
        if not status.get("running"):
            warnings.append(f"the pump is {status.get('state')}: the new program will not "
                            "infuse until the pump is started")
        return Review(review.rows, review.classification, review.reason, review.proposed,
                      review.concentration, tuple(warnings))

    def change_program(self, proposed: Prescription, *, origin: Origin, context: Context,
                       confirm: Confirm, override_reason: str | None = None,
                       population: Population | None = None) -> Outcome:
        review = self.review_change(proposed, origin=origin, context=context,
                                    population=population)
        conc = review.concentration
        return self._apply(
            "flex_program" if proposed.mode.value == "flex" else "dose_change", review, confirm,
            override_reason,
            [("program", {"prescription": proposed.to_dict(), "concentration": str(conc)})],
            lambda s: program_differences(s, proposed, conc),
        )

    def change_dose(self, dose: McgPerDay, **kw: Any) -> Outcome:
        return self.change_program(Continuous(dose), **kw)

    # ---- implant ---------------------------------------------------------------------------
    def implant(self, prescription: Prescription, *, product: str, concentration: McgPerMl,
                volume: Milliliters, confirm: Confirm, origin: Origin,
                override_reason: str | None = None,
                population: Population | None = None) -> Outcome:
        status = self.link.read_status()
        if status.get("program") or status.get("running"):
            raise RefusedOperation("this pump already holds a program: use dose change or "
                                   "refill, not implant", code="not_new")
        profile = self._profile(status)
        prod = ch.product_for(self.library, product, concentration)
        profile.check_volume(volume, "volume")
        if volume.value <= 0:
            raise InvalidInput("volume", str(volume), "more than 0 mL")
        prog = review_program(None, None, prescription, concentration, profile, origin=origin,
                              context=Context.TITRATION, population=population)
        path = float(status["path_volume_ml"])
        cath = default_catheter()
        length = (path - profile.internal_volume.value) / cath.volume_ml_per_cm
        prime = priming_bolus(profile, cath, length)
        rows = list(prog.rows) + [
            ch.row("product", "-", prod.name),
            ch.row("fill volume", "-", f"{volume.value:g} mL of {concentration}"),
            ch.row("priming bolus", "-", f"{prime.priming_volume.value:.4g} mL over "
                   f"{prime.priming_duration.value * 60:.0f} min (pump path + catheter "
                   f"{length:.0f} cm)"),
        ]
        review = ch.ChangeReview("implant", tuple(rows), prog.classification, prog.reason)
        writes: list[tuple[str, dict[str, Any]]] = [
            ("refill", {"volume": f"{volume.value!r} mL", "concentration": str(concentration)}),
            ("program", {"prescription": prescription.to_dict(),
                         "concentration": str(concentration)}),
            ("start", {}),
            ("priming_bolus", {"volume": f"{prime.priming_volume.value!r} mL",
                               "duration": f"{prime.priming_duration.value!r} h"}),
        ]

        def verify(s: dict[str, Any]) -> list[str]:
            d = program_differences(s, prescription, concentration)
            if s.get("state") != "running":
                d.append(f"state: expected running, the pump reports {s.get('state')}")
            d += volume_differences(status, s, profile, volume, "filled")
            if not s.get("bolus_running_until"):
                d.append("priming bolus: written, but the pump reports no bolus running")
            return d

        out = self._apply("implant", review, confirm, override_reason, writes, verify)
        out.extra["projection"] = ig.projection(self.link.read_status())
        return out

    # ---- refill ----------------------------------------------------------------------------
    def refill(self, *, withdrawn: Milliliters, product: str, concentration: McgPerMl,
               volume: Milliliters, confirm: Confirm, bridge: bool = True,
               override_reason: str | None = None) -> Outcome:
        status = self.link.read_status()
        profile = self._profile(status)
        prod = ch.product_for(self.library, product, concentration)
        if volume.value <= 0:
            raise InvalidInput("volume", str(volume), "more than 0 mL")
        expected = Milliliters(max(0.0, float(status["reservoir_estimate_ml"])))
        rows: list[ReviewRow] = []
        # Discrepancy between what the pump expected to remain and what was withdrawn.
        profile.check_volume(withdrawn, "withdrawn")
        disc = check_discrepancy(profile, expected, withdrawn)
        if disc.flagged:
            check = (Classification.ABOVE_RECOMMENDED,
                     f"withdrawn {withdrawn.value:g} mL vs expected {expected.value:.3g} mL: "
                     f"difference {disc.difference_ml:+.2f} mL beyond {disc.threshold}; possible "
                     f"causes: {'; '.join(disc.possible_causes)}; an override reason is required")
        else:
            check = (Classification.WITHIN, f"difference {disc.difference_ml:+.2f} mL within "
                     f"{disc.threshold}")
        rows.append(ch.row("withdrawn vs expected", f"{expected.value:.3g} mL expected",
                           f"{withdrawn.value:g} mL withdrawn", check))
        # Volume added: never beyond capacity.
        if volume.value > profile.capacity.value + 1e-9:
            vcheck = (Classification.ABOVE_ABSOLUTE, f"{volume.value:g} mL exceeds the "
                      f"{profile.name} reservoir capacity of {profile.capacity}; refused")
        else:
            vcheck = (Classification.WITHIN, f"within the {profile.capacity} capacity")
        rows.append(ch.row("reservoir volume", f"{expected.value:.3g} mL (estimate)",
                           f"{volume.value:g} mL", vcheck))
        old_v = status.get("reservoir_concentration_mcg_per_ml") or 0.0
        rows.append(ch.row("drug", f"{old_v:g} mcg/mL" if old_v else "-",
                           f"{prod.name} {concentration}"))
        warnings: list[str] = []
        writes: list[tuple[str, dict[str, Any]]] = [
            ("refill", {"volume": f"{volume.value!r} mL", "concentration": str(concentration)})]
        rx_doc = status.get("program")
        new_rx = parse_prescription(rx_doc) if rx_doc else None
        changed = old_v > 0 and abs(old_v - concentration.value) > 1e-9
        bridge_plan: dict[str, Any] | None = None
        if changed and new_rx is not None:
            daily = McgPerDay(new_rx.daily_dose().value)
            writes.append(("program", {"prescription": new_rx.to_dict(),
                                       "concentration": str(concentration)}))
            rows.append(ch.row("flow (24 h average)", f"{daily.value / old_v:.4g} mL/day",
                               f"{daily.value / concentration.value:.4g} mL/day"))
            cath = default_catheter()
            length = ((float(status["path_volume_ml"]) - profile.internal_volume.value)
                      / cath.volume_ml_per_cm)
            b = bridge_bolus(profile, cath, length, McgPerMl(old_v), concentration, daily)
            unbridged = (f"without a bridge the patient gets {b.unbridged_dose_error_pct:+.0f} % "
                         f"of the dose for {b.unbridged_duration.value:.1f} h while the old drug "
                         "leaves the catheter")
            # One bolus lasts at most 24 h: a longer bridge pushes one day of the old flow and
            # the rest of the path clears at the new flow (shown, and guarded if large).
            hours = min(b.bridge_duration.value, MAX_BRIDGE_H)
            volume_b = b.old_flow.value * hours / 24.0
            residual = max(0.0, b.path_volume.value - volume_b)
            running = bool(status.get("running"))
            if bridge and hours >= 1 / 60 and running:
                writes.append(("bridge_bolus", {"volume": f"{volume_b!r} mL",
                                                "duration": f"{hours!r} h"}))
                bridge_plan = {"volume_ml": volume_b, "duration_h": hours,
                               "dose_mcg": volume_b * old_v, "unbridged_ml": residual}
                bcheck: tuple[Classification, str] | None = None
                if residual > RESIDUAL_SHARE * b.path_volume.value:
                    bcheck = (Classification.ABOVE_RECOMMENDED,
                             f"the bridge covers {volume_b:.3g} of {b.path_volume.value:.3g} mL "
                             f"in 24 h; the rest reaches the tip at {b.unbridged_dose_error_pct:+.0f}"
                             " % dose error; an override reason is required")
                elif residual > 0:
                    warnings.append(f"{residual:.3g} mL of the path is not bridged (bolus limit "
                                    "24 h): a short dose dip or rise when it clears")
                rows.append(ch.row("bridge bolus", "-", f"{volume_b:.4g} mL over {hours:.2f} h "
                                   f"at the old flow ({volume_b * old_v:.4g} mcg of the old "
                                   "drug)", bcheck))
            else:
                why = ("declined" if not bridge else "the pump is not running" if not running
                       else "too short to give")
                rows.append(ch.row("bridge bolus", "-", f"none ({why})",
                                   (Classification.ABOVE_RECOMMENDED,
                                    f"no bridge bolus ({why}): {unbridged}; an override reason "
                                    "is required")))
                warnings.append(unbridged)
        elif changed:
            warnings.append("no program in the pump: nothing to bridge")
        review = ch.build("refill", rows, warnings)

        def verify(s: dict[str, Any]) -> list[str]:
            d: list[str] = []
            if not _close(s.get("reservoir_concentration_mcg_per_ml"), concentration.value):
                d.append(f"reservoir concentration: wrote {concentration}, the pump reports "
                         f"{s.get('reservoir_concentration_mcg_per_ml')} mcg/mL")
            d += volume_differences(status, s, profile, volume, "wrote")
            if new_rx is not None and changed:
                d += program_differences(s, new_rx, concentration)
            if bridge_plan is not None and not s.get("bolus_running_until"):
                d.append("bridge bolus: written, but the pump reports no bolus running")
            return d

        out = self._apply("refill", review, confirm, override_reason, writes, verify,
                          {"discrepancy": {"expected_ml": expected.value,
                                           "withdrawn_ml": withdrawn.value,
                                           "difference_ml": disc.difference_ml,
                                           "flagged": disc.flagged,
                                           "possible_causes": list(disc.possible_causes)},
                           "bridge": bridge_plan})
        proj = ig.projection(self.link.read_status(), volume.value)
        out.extra["projection"] = proj
        if proj is not None:
            out.extra["low_alarm_at"] = proj["low_alarm_at"]
            out.extra["refill_by"] = proj["refill_by"]
        return out

    # ---- other settings --------------------------------------------------------------------
    def clinician_bolus(self, dose: Micrograms, duration: Hours, *, confirm: Confirm,
                        override_reason: str | None = None) -> Outcome:
        status = self.link.read_status()
        conc = status.get("program_concentration_mcg_per_ml") or 0.0
        if not status.get("running") or conc <= 0:
            raise RefusedOperation("the pump must be running a program to give a bolus",
                                   code="not_running")
        rows = [ch.row("bolus dose", "-", f"{dose.value:g} mcg",
                       ch.bolus_dose_check(self.library, dose)),
                ch.row("bolus duration", "-", f"{duration.value * 60:.0f} min"),
                ch.row("bolus volume", "-", f"{dose.value / conc:.4g} mL at {conc:g} mcg/mL")]
        review = ch.build("clinician bolus", rows)
        return self._apply(
            "clinician_bolus", review, confirm, override_reason,
            [("clinician_bolus", {"dose": f"{dose.value!r} mcg",
                                  "duration": f"{duration.value!r} h"})],
            lambda s: [] if s.get("bolus_running_until") else
            ["bolus: written, but the pump reports no bolus running"])

    def set_low_alarm(self, threshold: Milliliters, *, confirm: Confirm,
                      override_reason: str | None = None) -> Outcome:
        status = self.link.read_status()
        profile = self._profile(status)
        rows = [ch.row("low-reservoir alarm", f"{status['low_alarm_ml']:g} mL",
                       f"{threshold.value:g} mL",
                       ch.low_alarm_guardrail(profile).classify(threshold.value))]
        review = ch.build("low-reservoir alarm", rows)
        out = self._apply(
            "low_alarm", review, confirm, override_reason,
            [("set_low_alarm", {"threshold": f"{threshold.value!r} mL"})],
            lambda s: [] if _close(s.get("low_alarm_ml"), threshold.value) else
            [f"low alarm: wrote {threshold.value:g} mL, the pump reports {s.get('low_alarm_ml')}"])
        out.extra["projection"] = ig.projection(self.link.read_status())
        return out

    def set_patient_limits(self, *, dose: Micrograms, duration: Hours, lockout: Hours,
                           max_per_day: int, confirm: Confirm,
                           override_reason: str | None = None) -> Outcome:
        status = self.link.read_status()
        rx = status.get("program")
        basal = parse_prescription(rx).daily_dose().value if rx else 0.0
        cur = (status.get("patient_bolus") or {}).get("limits")
        share = dose.value * max_per_day
        rows = [
            ch.row("dose per activation", f"{cur['dose_mcg']:g} mcg" if cur else "-",
                   f"{dose.value:g} mcg", ch.bolus_dose_check(self.library, dose)),
            ch.row("bolus duration", f"{cur['duration_s'] / 60:g} min" if cur else "-",
                   f"{duration.value * 60:g} min"),
            ch.row("lockout", f"{cur['lockout_s'] / 3600:g} h" if cur else "-",
                   f"{lockout.value:g} h"),
            ch.row("maximum per 24 h", str(cur["max_per_day"]) if cur else "-", str(max_per_day)),
            ch.row("most a patient can add in 24 h", "-",
                   f"{share:g} mcg ({share / basal * 100 if basal else 0:.0f} % of "
                   f"{basal:g} mcg/day)", ch.patient_share_guardrail(basal).classify(share)),
        ]
        review = ch.build("patient bolus limits", rows)
        want = {"dose_mcg": dose.value, "duration_s": round(duration.value * 3600),
                "lockout_s": round(lockout.value * 3600), "max_per_day": max_per_day}

        def verify(s: dict[str, Any]) -> list[str]:
            got = (s.get("patient_bolus") or {}).get("limits") or {}
            return [f"patient limits.{k}: wrote {v!r}, the pump reports {got.get(k)!r}"
                    for k, v in want.items() if got.get(k) != v]

        return self._apply(
            "patient_limits", review, confirm, override_reason,
            [("set_patient_limits", {"dose": f"{dose.value!r} mcg",
                                     "duration": f"{duration.value!r} h",
                                     "lockout": f"{lockout.value!r} h",
                                     "max_per_day": max_per_day})], verify)

    def stop(self, *, confirm: Confirm, override_reason: str | None = None) -> Outcome:
        """Stop infusion. Stopping baclofen risks withdrawal: a reason is always required."""
        status = self.link.read_status()
        if not status.get("running"):
            raise RefusedOperation(f"the pump is already {status.get('state')}",
                                   code="not_running")
        review = ch.build("stop infusion", [ch.row(
            "infusion", "running", "stopped",
            (Classification.BELOW_RECOMMENDED, "stopping intrathecal baclofen risks withdrawal "
             "(itching, fever, fast heart rate, rebound spasticity within 24-72 h); restart it "
             "(for an MRI: `post-mri`); an override reason is required"))],
            ["the pump gives nothing until it is started again"])
        return self._apply("stop", review, confirm, override_reason, [("stop", {})],
                           lambda s: [] if not s.get("running") else
                           ["state: wrote stop, the pump reports running"])

    def start(self, *, confirm: Confirm) -> Outcome:
        status = self.link.read_status()
        if status.get("running"):
            raise RefusedOperation("the pump is already running", code="running")
        if not status.get("program"):
            raise RefusedOperation("no program in the pump: program it first", code="no_program")
        review = ch.build("start infusion", [
            ch.row("infusion", str(status.get("state")), "running"),
            ch.row("program", str(status.get("program")), str(status.get("program")))])
        return self._apply("start", review, confirm, None, [("start", {})],
                           lambda s: [] if s.get("state") == "running" else
                           [f"state: wrote start, the pump reports {s.get('state')}"])

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
            review = ch.build("restart after MRI", [
                ch.row("infusion", "stopped", "running"),
                ch.row("program", str(status.get("program")), str(status.get("program")))],
                ["the pump was stopped, likely for the scan; restarting resumes the program"])
            self._apply("restart_after_mri", review, confirm, None, [("start", {})],
                        lambda s: [] if s.get("state") == "running" else
                        [f"state: expected running, the pump reports {s.get('state')}"])
            result.update(recovered=True, restarted=True,
                          message="the pump was stopped; infusion restarted and read back")
        else:
            result["recovered"] = False
            result["message"] = f"the pump is {state}: not infusing; act now"
        self.link.record.read(self.link.now(), "post_mri_check",
                              {"state": state, "recovered": result["recovered"]})
        return result
