"""`itb calc` CLI contract (exit codes, one-line errors naming the field, tables) and properties
of the pure refill functions behind it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from openitb.cli import app
from openitb.devices import get_pump
from openitb.therapy.prescription import (
    DAY_S,
    Continuous,
    Flex,
    FlexStep,
    daily_volume,
)
from openitb.therapy.refill import project_refill, seconds_to_deliver
from openitb.units import McgPerDay, McgPerMl, Milliliters

START = "2026-01-05T09:00:00+00:00"
REFILL = ["calc", "refill", "--profile", "itb-20", "--volume", "20 mL",
          "--concentration", "500 mcg/mL", "--start", START]


def run(*argv: str):  # noqa: ANN201 - click Result
    return CliRunner().invoke(app, list(argv))


def assert_input_error(result, field: str) -> None:  # noqa: ANN001
    """Exit 2, nothing on stdout, exactly one line on stderr that names the field."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert f"{field}:" in lines[0], f"{field!r} not named in {lines[0]!r}"
    assert "Traceback" not in result.stderr


# Bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "field"),
    [
        pytest.param(["calc", "rate", "--dose", "400", "--concentration", "500 mcg/mL"], "dose",
                     id="missing unit on dose"),
        pytest.param(["calc", "dose", "--flow", "0.8", "--concentration", "500 mcg/mL"], "flow",
                     id="missing unit on flow"),
        pytest.param(["calc", "rate", "--dose", "400 mcg/day", "--concentration", "500"],
                     "concentration", id="missing unit on concentration"),
        pytest.param(["calc", "rate", "--dose", "400 mL", "--concentration", "500 mcg/mL"], "dose",
                     id="wrong dimension"),
        pytest.param(["calc", "rate", "--dose", "-400 mcg/day", "--concentration", "500 mcg/mL"],
                     "dose", id="negative dose"),
        pytest.param(["calc", "rate", "--dose", "nan mcg/day", "--concentration", "500 mcg/mL"],
                     "dose", id="NaN dose"),
        pytest.param(["calc", "rate", "--dose", "inf mcg/day", "--concentration", "500 mcg/mL"],
                     "dose", id="infinite dose"),
        pytest.param(["calc", "rate", "--dose", "400 mcg/day", "--concentration", "750 mcg/mL"],
                     "concentration", id="unknown concentration 750 mcg/mL"),
        pytest.param(["calc", "dose", "--flow", "1 mL/day", "--concentration", "0.75 mg/mL"],
                     "concentration", id="unknown concentration in mg/mL"),
        pytest.param(["calc", "refill", "--profile", "itb-30", "--volume", "20 mL",
                      "--concentration", "500 mcg/mL", "--dose", "400 mcg/day"], "profile",
                     id="unknown profile"),
        pytest.param(["calc", "refill", "--profile", "itb-40", "--volume", "45 mL",
                      "--concentration", "500 mcg/mL", "--dose", "400 mcg/day", "--start", START],
                     "volume", id="volume over capacity on itb-40"),
        pytest.param([*REFILL, "--dose", "400 mcg/day", "--low-alarm", "7 mL"], "low_alarm",
                     id="low alarm above the itb-20 range"),
        pytest.param([*REFILL, "--dose", "400 mcg/day", "--low-alarm", "0.5 mL"], "low_alarm",
                     id="low alarm below the range"),
        pytest.param(REFILL, "dose/prescription", id="neither dose nor prescription"),
        pytest.param([*REFILL[:-2], "--dose", "400 mcg/day", "--start", "2026-01-05T09:00:00"],
                     "start", id="start without an offset"),
        pytest.param([*REFILL[:-2], "--dose", "400 mcg/day", "--start", "next tuesday"],
                     "start", id="start not a date"),
        pytest.param([*REFILL, "--dose", "400 mcg/day", "--lead-days", "nan"], "lead_days",
                     id="lead days NaN"),
        pytest.param([*REFILL, "--dose", "400 mcg/day", "--lead-days", "61"], "lead_days",
                     id="lead days too long"),
        pytest.param([*REFILL, "--dose", "400 mcg/day", "--max-interval-days", "400"],
                     "max_interval_days", id="max interval too long"),
        pytest.param([*REFILL, "--dose", "0 mcg/day"], "dose", id="zero dose"),
        pytest.param([*REFILL, "--dose", "40000 mcg/day"], "prescription",
                     id="flow above the pump maximum"),
        pytest.param(["calc", "discrepancy", "--profile", "itb-20", "--expected", "10 mL",
                      "--withdrawn", "25 mL"], "withdrawn", id="withdrawn over capacity"),
        pytest.param(["calc", "discrepancy", "--profile", "itb-20", "--expected", "ten mL",
                      "--withdrawn", "9 mL"], "expected", id="unreadable expected"),
        pytest.param(["calc", "change", "--current", "400 mcg/day", "--proposed", "450 mcg/day",
                      "--origin", "cortical", "--context", "titration"], "origin",
                     id="unknown origin"),
        pytest.param(["calc", "change", "--current", "400 mcg/day", "--proposed", "450 mcg/day",
                      "--origin", "spinal", "--context", "loading"], "context",
                     id="unknown context"),
        pytest.param(["calc", "change", "--current", "0 mcg/day", "--proposed", "450 mcg/day",
                      "--origin", "spinal", "--context", "titration"], "current",
                     id="zero current dose"),
        pytest.param(["calc", "change", "--current", "400 mcg/day", "--proposed", "NaN mcg/day",
                      "--origin", "spinal", "--context", "titration"], "proposed",
                     id="NaN proposed dose"),
        pytest.param(["calc", "priming", "--profile", "itb-20", "--catheter-length", "120 cm"],
                     "catheter_length", id="catheter too long"),
        pytest.param(["calc", "priming", "--profile", "itb-20", "--catheter-length", "90"],
                     "catheter_length", id="catheter length without unit"),
        pytest.param(["calc", "priming", "--profile", "itb-20", "--catheter-length", "nan cm"],
                     "catheter_length", id="catheter length NaN"),
        pytest.param(["calc", "bridge", "--profile", "itb-20", "--catheter-length", "90 cm",
                      "--old-concentration", "500 mcg/mL", "--new-concentration", "750 mcg/mL",
                      "--dose", "400 mcg/day"], "new_concentration",
                     id="bridge unknown new concentration"),
        pytest.param(["calc", "first-dose", "--effective-bolus", "50 mcg", "--effect-hours",
                      "nan"], "effect_hours", id="effect hours NaN"),
        pytest.param(["calc", "first-dose", "--effective-bolus", "50 mcg", "--effect-hours",
                      "-1"], "effect_hours", id="negative effect hours"),
        pytest.param(["calc", "first-dose", "--effective-bolus", "50 mcg", "--effect-hours",
                      "49"], "effect_hours", id="effect hours over 48"),
        pytest.param(["calc", "first-dose", "--effective-bolus", "150 mcg", "--effect-hours",
                      "6"], "effective_bolus", id="bolus above the screening maximum"),
        pytest.param(["calc", "first-dose", "--effective-bolus", "50", "--effect-hours", "6"],
                     "effective_bolus", id="bolus without unit"),
    ],
)
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_bad_input_exits_2_with_one_line(argv: list[str], field: str, as_json: bool) -> None:
    assert_input_error(run(*argv, *(["--json"] if as_json else [])), field)


def test_dose_and_prescription_both_given(tmp_path: Path) -> None:
    rx = tmp_path / "rx.toml"
    rx.write_text('mode = "continuous"\ndose = "400 mcg/day"\n', encoding="utf-8")
    result = run(*REFILL, "--dose", "400 mcg/day", "--prescription", str(rx), "--json")
    assert_input_error(result, "dose/prescription")
    assert "both" in result.stderr


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('mode = "flex"\n[[steps]]\nstart = "08:00"\ndose = "500 mcg/day"\n'
         '[[steps]]\nstart = "06:00"\ndose = "300 mcg/day"\n', "steps[1].start"),
        ('mode = "continuous"\ndose = "400"\n', "dose"),
        ('mode = "hourly"\n', "mode"),
        ("mode = \n", "prescription"),
    ],
    ids=["steps out of order", "dose without unit", "unknown mode", "not TOML"],
)
def test_bad_prescription_file(tmp_path: Path, text: str, field: str) -> None:
    rx = tmp_path / "rx.toml"
    rx.write_text(text, encoding="utf-8")
    assert_input_error(run(*REFILL, "--prescription", str(rx), "--json"), field)


def test_missing_prescription_file(tmp_path: Path) -> None:
    assert_input_error(
        run(*REFILL, "--prescription", str(tmp_path / "absent.toml"), "--json"), "prescription"
    )


def test_rate_zero_compounded_concentration_is_an_input_error() -> None:
    assert_input_error(
        run("calc", "rate", "--dose", "400 mcg/day", "--concentration", "0 mcg/mL",
            "--compounded", "--json"), "concentration",
    )


def test_refill_zero_compounded_concentration_is_an_input_error() -> None:
    assert_input_error(
        run(*REFILL[:6], "--concentration", "0 mcg/mL", "--start", START, "--compounded", "--dose", "400 mcg/day", "--json"),
        "concentration",
    )


def test_infinite_effect_hours_names_the_field() -> None:
    assert_input_error(
        run("calc", "first-dose", "--effective-bolus", "50 mcg", "--effect-hours", "inf"),
        "effect_hours",
    )


def test_compounded_concentration_warns_on_stderr_and_succeeds() -> None:
    r = run("calc", "rate", "--dose", "600 mcg/day", "--concentration", "1500 mcg/mL",
            "--compounded", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["flow_ml_per_day"] == pytest.approx(0.4)
    assert r.stderr.startswith("warning: ")
    assert "compounded" in r.stderr


# Tables ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "keys"),
    [
        (["calc", "rate", "--dose", "400 mcg/day", "--concentration", "500 mcg/mL"],
         ["flow_ml_per_day", "0.8"]),
        (["calc", "dose", "--flow", "0.8 mL/day", "--concentration", "500 mcg/mL"],
         ["dose_mcg_per_day", "400"]),
        ([*REFILL, "--dose", "400 mcg/day"],
         ["days_to_low_alarm", "22.5", "refill_by", "2026-01-22T21:00:00+00:00"]),
        (["calc", "change", "--current", "400 mcg/day", "--proposed", "480 mcg/day", "--origin",
          "spinal", "--context", "titration"], ["classification", "within"]),
        (["calc", "discrepancy", "--profile", "itb-20", "--expected", "10 mL", "--withdrawn",
          "8 mL"], ["flagged", "True", "possible_causes"]),
        (["calc", "bridge", "--profile", "itb-20", "--catheter-length", "90 cm",
          "--old-concentration", "500 mcg/mL", "--new-concentration", "2000 mcg/mL", "--dose",
          "400 mcg/day"], ["bridge_duration_hours", "11.22"]),
        (["calc", "priming", "--profile", "itb-20", "--catheter-length", "90 cm"],
         ["priming_volume_ml", "0.374"]),
        (["calc", "first-dose", "--effective-bolus", "50 mcg", "--effect-hours", "6"],
         ["initial_dose_mcg_per_day", "100"]),
        (["calc", "profiles"], ["itb-10", "itb-20", "itb-40", "itb-cath-110"]),
    ],
    ids=["rate", "dose", "refill", "change", "discrepancy", "bridge", "priming", "first-dose",
         "profiles"],
)
def test_table_without_json(argv: list[str], keys: list[str]) -> None:
    r = CliRunner().invoke(app, argv, terminal_width=200)
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert r.stderr == ""
    for key in keys:
        assert key in r.stdout, f"{key!r} not in table:\n{r.stdout}"
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.stdout)


def test_profiles_json_lists_pumps_with_capacity() -> None:
    r = run("calc", "profiles", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    pumps = {p["name"]: p for p in doc["pumps"]}
    assert {"itb-10", "itb-20", "itb-40"} <= set(pumps)
    assert pumps["itb-10"]["capacity_ml"] == 10.0
    assert pumps["itb-20"]["capacity_ml"] == 20.0
    assert pumps["itb-40"]["capacity_ml"] == 40.0
    for p in pumps.values():
        assert p["internal_volume_ml"] == pytest.approx(0.140)
        assert p["bolus_max_flow_ml_per_hour"] == pytest.approx(1.0)
        assert p["low_alarm_min_ml"] <= p["low_alarm_default_ml"] <= p["low_alarm_max_ml"]
    cath = {c["name"]: c for c in doc["catheters"]}
    assert cath["itb-cath-110"]["volume_ml_per_cm"] == pytest.approx(0.0026)


def test_no_arguments_shows_help() -> None:
    r = run("calc")
    assert r.exit_code in (0, 2)
    assert "rate" in r.stdout + r.stderr


# Properties of the pure functions ----------------------------------------------------------
CONCENTRATIONS = st.sampled_from([50.0, 500.0, 1000.0, 2000.0])
STARTS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31)
).map(lambda t: t.replace(tzinfo=UTC))
PROFILES = st.sampled_from(["itb-10", "itb-20", "itb-40"])


@settings(max_examples=150, deadline=None)
@given(
    profile=PROFILES,
    volume_frac=st.floats(min_value=0.01, max_value=1.0),
    conc=CONCENTRATIONS,
    dose=st.floats(min_value=10.0, max_value=2000.0),
    factor=st.floats(min_value=1.001, max_value=5.0),
    start=STARTS,
)
def test_days_to_empty_strictly_falls_as_dose_rises(
    profile: str, volume_frac: float, conc: float, dose: float, factor: float, start: datetime
) -> None:
    prof = get_pump(profile)
    vol = Milliliters(prof.capacity.value * volume_frac)
    c = McgPerMl(conc)
    low = project_refill(Continuous(McgPerDay(dose)), prof, vol, c, start)
    high = project_refill(Continuous(McgPerDay(dose * factor)), prof, vol, c, start)
    assert low.days_to_empty is not None and high.days_to_empty is not None
    assert high.days_to_empty < low.days_to_empty
    # and each is volume / flow
    assert low.days_to_empty == pytest.approx(vol.value / (dose / conc), rel=1e-9)


flex_programs = st.lists(
    st.tuples(st.integers(min_value=0, max_value=24 * 60 - 1),
              st.floats(min_value=1.0, max_value=2000.0)),
    min_size=1, max_size=24, unique_by=lambda s: s[0],
).map(lambda steps: Flex(tuple(FlexStep(m * 60, McgPerDay(d)) for m, d in sorted(steps))))


@settings(max_examples=150, deadline=None)
@given(
    profile=PROFILES,
    conc=CONCENTRATIONS,
    rx=st.one_of(st.floats(min_value=10.0, max_value=2000.0).map(
        lambda d: Continuous(McgPerDay(d))), flex_programs),
    above=st.floats(min_value=1e-6, max_value=1.0),
    low_alarm=st.floats(min_value=1.0, max_value=4.0),
    start=STARTS,
)
def test_low_alarm_comes_before_empty(
    profile: str, conc: float, rx: Continuous | Flex, above: float, low_alarm: float,
    start: datetime,
) -> None:
    prof = get_pump(profile)
    threshold = Milliliters(low_alarm)
    vol = Milliliters(low_alarm + above * (prof.capacity.value - low_alarm))
    assert vol.value > threshold.value
    p = project_refill(rx, prof, vol, McgPerMl(conc), start, low_alarm=threshold)
    assert p.days_to_low_alarm is not None and p.days_to_empty is not None
    assert p.days_to_low_alarm < p.days_to_empty
    assert p.low_alarm_at is not None and p.empty_at is not None
    assert p.start <= p.low_alarm_at <= p.empty_at
    assert p.start <= p.refill_by <= p.low_alarm_at
    assert p.refill_by <= p.start + timedelta(days=180)


@settings(max_examples=200, deadline=None)
@given(rx=flex_programs, conc=CONCENTRATIONS,
       day=st.dates(min_value=datetime(2020, 1, 1).date(), max_value=datetime(2035, 1, 1).date()))
def test_flex_daily_volume_takes_exactly_one_day_from_midnight(
    rx: Flex, conc: float, day: object
) -> None:
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)  # type: ignore[attr-defined]
    c = McgPerMl(conc)
    # steps sum to the daily dose
    total = sum(s.dose_per_day.value * s.seconds / DAY_S for s in rx.segments())
    assert rx.daily_dose().value == pytest.approx(total, rel=1e-12)
    s = seconds_to_deliver(rx, c, daily_volume(rx, c), midnight)
    assert s == pytest.approx(DAY_S, rel=1e-9)
    # and n days' volume takes n days
    s3 = seconds_to_deliver(rx, c, Milliliters(3 * daily_volume(rx, c).value), midnight)
    assert s3 == pytest.approx(3 * DAY_S, rel=1e-9)
