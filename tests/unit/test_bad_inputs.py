"""A table of bad inputs: each is refused with InvalidInput naming the field and saying why."""

from __future__ import annotations

import pytest

from openitb.devices import default_catheter, get_pump, load_catalog
from openitb.drugs import Context, Origin, Population, load_library, parse_context, parse_origin
from openitb.errors import InvalidInput
from openitb.therapy.guardrails import Classification, check_change, check_prescription_dose
from openitb.therapy.prescription import parse_prescription
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters, parse


def cont(dose: object) -> dict:
    return {"mode": "continuous", "dose": dose}


def flex(*steps: dict) -> dict:
    return {"mode": "flex", "steps": list(steps)}


def periodic(*boluses: dict, dose: str = "240 mcg/day") -> dict:
    return {"mode": "periodic_bolus", "dose": dose, "boluses": list(boluses)}


def pres(doc: object):  # type: ignore[no-untyped-def]
    return lambda: parse_prescription(doc)  # type: ignore[arg-type]


def pres_dose(doc: dict, population: Population = Population.SPINAL):  # type: ignore[no-untyped-def]
    return lambda: check_prescription_dose(parse_prescription(doc), population)


S = {"start": "00:00", "dose": "400 mcg/day"}

CASES = [
    # --- units: wrong unit, missing unit, NaN, infinity, negative, empty
    ("wrong unit: mass for a rate", pres(cont("400 mcg")), "dose", "not a dose rate"),
    ("wrong unit: flow for a rate", pres(cont("0.8 mL/day")), "dose", "not a dose rate"),
    ("no unit", pres(cont("400")), "dose", "no unit given"),
    ("unreadable unit", pres(cont("400 mgc/day")), "dose", "not readable"),
    ("NaN", pres(cont("nan mcg/day")), "dose", "not a finite number"),
    ("infinity", pres(cont("inf mcg/day")), "dose", "not a finite number"),
    ("negative", pres(cont("-400 mcg/day")), "dose", "must not be negative"),
    ("empty text", pres(cont("")), "dose", "empty"),
    ("blank text", pres(cont("   ")), "dose", "empty"),
    ("number not text", pres(cont(400)), "dose", "expected a dose rate with a unit"),
    ("missing dose", pres({"mode": "continuous"}), "dose", "required"),
    ("NaN quantity", lambda: Milliliters(float("nan")), "volume", "finite"),
    ("negative quantity", lambda: McgPerDay(-1), "dose rate", "zero or more"),
    ("wrong unit for concentration", lambda: parse("500 mcg", McgPerMl, "concentration"),
     "concentration", "not a concentration"),
    # --- mg where mcg was meant
    ("4 mg/day is 4000 mcg/day", pres_dose(cont("4 mg/day")), "prescription",
     "absolute maximum of 2000"),
    ("pediatric 1.6 mg/day", pres_dose(cont("1.6 mg/day"), Population.PEDIATRIC), "prescription",
     "absolute maximum of 1500"),
    # --- drug library and devices
    ("unknown concentration", lambda: load_library().check_concentration(McgPerMl(750)),
     "concentration", "no baclofen product has this concentration"),
    ("volume over capacity", lambda: get_pump("itb-20").check_volume(Milliliters(25)),
     "volume", "reservoir capacity of 20 mL"),
    ("volume over 10 mL capacity", lambda: get_pump("itb-10").check_volume(Milliliters(10.5)),
     "volume", "itb-10 reservoir capacity of 10 mL"),
    ("unknown pump profile", lambda: get_pump("itb-30"), "profile", "known profiles: itb-10"),
    ("unknown catheter", lambda: load_catalog().catheter("cath-999"), "catheter", "known catheters"),
    ("low alarm too low", lambda: get_pump("itb-20").check_low_alarm(Milliliters(0.5)),
     "low_alarm", "between 1 mL and 6 mL"),
    ("low alarm too high", lambda: get_pump("itb-20").check_low_alarm(Milliliters(7)),
     "low_alarm", "between 1 mL and 6 mL"),
    ("catheter too long", lambda: default_catheter().check_length(150), "catheter_length",
     "10 to 110 cm long"),
    ("catheter too short", lambda: default_catheter().volume(5), "catheter_length",
     "10 to 110 cm long"),
    ("unknown origin", lambda: parse_origin("lumbar"), "origin", "spinal, cerebral"),
    ("unknown context", lambda: parse_context("acute"), "context", "titration, maintenance"),
    ("current dose zero", lambda: check_change(McgPerDay(0), McgPerDay(100), Origin.SPINAL,
                                               Context.TITRATION), "current", "above 0"),
    # --- prescription structure
    ("unknown mode", pres({"mode": "pulsed", "dose": "400 mcg/day"}), "mode", "one of continuous"),
    ("no mode", pres({"dose": "400 mcg/day"}), "mode", "one of continuous"),
    ("not a table", pres(["continuous"]), "prescription", "a table with a 'mode' key"),
    ("extra keys", pres({"mode": "continuous", "dose": "400 mcg/day", "rate": "1"}), "rate",
     "takes only dose, mode"),
    ("flex steps out of order",
     pres(flex({"start": "08:00", "dose": "400 mcg/day"}, {"start": "06:00", "dose": "300 mcg/day"})),
     "steps[1].start", "increasing order"),
    ("flex duplicate start",
     pres(flex({"start": "08:00", "dose": "400 mcg/day"}, {"start": "08:00", "dose": "300 mcg/day"})),
     "steps[1].start", "increasing order"),
    ("flex gap via end",
     pres(flex({"start": "00:00", "end": "06:00", "dose": "400 mcg/day"},
               {"start": "08:00", "dose": "300 mcg/day"})),
     "steps[0].end", "a gap"),
    ("flex overlap via end",
     pres(flex({"start": "00:00", "end": "10:00", "dose": "400 mcg/day"},
               {"start": "08:00", "dose": "300 mcg/day"})),
     "steps[0].end", "an overlap"),
    ("flex last step end gap before wrap",
     pres(flex({"start": "00:00", "dose": "400 mcg/day"},
               {"start": "12:00", "end": "23:00", "dose": "300 mcg/day"})),
     "steps[1].end", "a gap"),
    ("more than 24 steps",
     pres(flex(*({"start": f"{m // 60:02d}:{m % 60:02d}", "dose": "400 mcg/day"}
                 for m in range(0, 25 * 30, 30)))),
     "steps", "1 to 24 steps"),
    ("no steps", pres(flex()), "steps", "a list of 1 to 24"),
    ("step extra key", pres(flex({"start": "00:00", "dose": "400 mcg/day", "rate": "x"})),
     "steps[0]", "a step takes start, dose, end"),
    ("step missing dose", pres(flex({"start": "00:00"})), "steps[0].dose", "dose rate"),
    ("bad time 25:00", pres(flex({"start": "25:00", "dose": "400 mcg/day"})), "steps[0].start",
     "00:00 to 23:59"),
    ("bad time 08:60", pres(flex({"start": "08:60", "dose": "400 mcg/day"})), "steps[0].start",
     "'HH:MM'"),
    ("bad end time", pres(flex({"start": "00:00", "end": "24:30", "dose": "400 mcg/day"})),
     "steps[0].end", "'HH:MM'"),
    ("flex per-hour entry above daily max",
     pres_dose(flex(*({"start": f"{h:02d}:00", "dose": "2400 mcg/day"} for h in range(24)))),
     "prescription", "not mcg per hour"),
    ("single bolus duration 0",
     pres({"mode": "single_bolus", "bolus": "50 mcg", "duration": "0 h"}),
     "duration", "from 1 min to 24 h"),
    ("single bolus over 24 h",
     pres({"mode": "single_bolus", "bolus": "50 mcg", "duration": "25 h"}),
     "duration", "from 1 min to 24 h"),
    ("single bolus wrong unit",
     pres({"mode": "single_bolus", "bolus": "50 mcg/day", "duration": "1 h"}),
     "bolus", "not a mass"),
    ("periodic bolus duration 0",
     pres(periodic({"at": "08:00", "bolus": "50 mcg", "duration": "0 min"})),
     "boluses[0].duration", "from 1 min to 24 h"),
    ("overlapping periodic boluses",
     pres(periodic({"at": "08:00", "bolus": "50 mcg", "duration": "2 h"},
                   {"at": "09:00", "bolus": "50 mcg", "duration": "1 h"})),
     "boluses[1].at", "must not overlap"),
    ("periodic bolus over midnight into the first",
     pres(periodic({"at": "23:00", "bolus": "50 mcg", "duration": "3 h"},
                   {"at": "01:00", "bolus": "50 mcg", "duration": "1 h"})),
     "boluses[0].duration", "runs past midnight"),
    ("periodic no boluses", pres(periodic()), "boluses", "a list of [[boluses]]"),
    ("periodic bad at", pres(periodic({"at": "8am", "bolus": "50 mcg", "duration": "1 h"})),
     "boluses[0].at", "'HH:MM'"),
]


@pytest.mark.parametrize(("make", "field", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_refused(make, field: str, phrase: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as exc:
        make()
    msg = str(exc.value)
    assert exc.value.field == field, msg
    assert msg.startswith(f"{field}: got "), msg
    assert phrase in msg, msg


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 25


def test_compounded_concentration_accepted_with_warning() -> None:
    r = load_library().check_concentration(McgPerMl(750), compounded=True)
    assert r.compounded is True
    assert r.products == ()
    assert r.warning is not None and "750 mcg/mL is a compounded concentration" in r.warning


def test_known_concentration_accepted_without_warning() -> None:
    r = load_library().check_concentration(parse("0.5 mg/mL", McgPerMl, "concentration"))
    assert r.compounded is False and r.warning is None
    assert set(r.products) == {"Lioresal Intrathecal", "Gablofen"}
    r = load_library().check_concentration(McgPerMl(1000))
    assert r.products == ("Gablofen",)


def test_mg_for_mcg_change_is_above_absolute() -> None:
    r = check_change(
        McgPerDay(400), parse("4 mg/day", McgPerDay, "proposed"), Origin.SPINAL, Context.TITRATION
    )
    assert r.classification is Classification.ABOVE_ABSOLUTE
    assert not r.classification.allowed
    assert "refused" in r.reason


def test_capacity_and_alarm_edges_accepted() -> None:
    pump = get_pump("itb-20")
    assert pump.check_volume(Milliliters(20)) == Milliliters(20)
    assert pump.check_low_alarm(Milliliters(1)) == Milliliters(1)
    assert pump.check_low_alarm(Milliliters(6)) == Milliliters(6)
    assert default_catheter().check_length(110) == 110


def test_bolus_of_one_minute_and_24_hours_accepted() -> None:
    for d in ("1 min", "24 h"):
        p = parse_prescription({"mode": "single_bolus", "bolus": "50 mcg", "duration": d})
        assert p.daily_dose() == Micrograms(50)
    assert parse("24 h", Hours, "d") == Hours(24)
