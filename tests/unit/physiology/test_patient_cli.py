"""`itb patient ...`: the JSON keys the issue names, and bad input refused naming the field."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from openitb.cli import app

runner = CliRunner()


def _json(*args: str) -> dict[str, object]:
    r = runner.invoke(app, ["patient", *args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_steady_state_keys_and_values() -> None:
    out = _json("steady-state", "--dose", "400 mcg/day")
    assert set(out) == {"csf_ng_per_ml", "hours_to_90pct"}
    assert abs(out["csf_ng_per_ml"] - 400_000 / 24 / 30) < 0.01  # type: ignore[operator]
    assert 24 <= out["hours_to_90pct"] <= 48  # type: ignore[operator]


def test_bolus_keys_and_values() -> None:
    out = _json("bolus", "--dose", "50 mcg")
    assert set(out) == {"csf_peak_ng_per_ml", "csf_half_life_hours", "effect_onset_hours",
                        "effect_peak_hours", "effect_duration_hours"}
    assert 1 <= out["csf_half_life_hours"] <= 5  # type: ignore[operator]
    assert 2 <= out["effect_peak_hours"] <= 6  # type: ignore[operator]


def test_infusion_keys_and_a_non_responder_has_no_onset() -> None:
    out = _json("infusion", "--dose", "100 mcg/day")
    assert set(out) == {"effect_onset_hours", "effect_90pct_hours"}
    assert 24 <= out["effect_90pct_hours"] <= 48  # type: ignore[operator]
    none = _json("bolus", "--dose", "50 mcg", "--patient", "adult_nonresponder")
    assert none["effect_onset_hours"] is None and none["effect_duration_hours"] is None


def test_tip_level_changes_nothing_at_the_lumbar_level_but_is_validated() -> None:
    assert _json("steady-state", "--dose", "400 mcg/day", "--tip", "T4")["csf_ng_per_ml"] == \
        _json("steady-state", "--dose", "400 mcg/day")["csf_ng_per_ml"]


def test_population_reports_fractions() -> None:
    out = _json("population", "--n", "200", "--seed", "3")
    assert out["patients"] == 200
    for k, v in out.items():
        if k != "patients":
            assert 0.0 <= v <= 1.0, k  # type: ignore[operator]


def test_population_shows_words_to_people_and_keeps_codes_in_json() -> None:
    """`bolus_onset_0p5_1h` is a code: the table says "bolus effect onset 0.5-1 h"; every code
    has its words in the one table beside the codes (physiology/population.py)."""
    from openitb.physiology.population import FRACTION_LABELS

    codes = _json("population", "--n", "20", "--seed", "3")
    assert "bolus_onset_0p5_1h" in codes and set(codes) == set(FRACTION_LABELS)
    r = runner.invoke(app, ["patient", "population", "--n", "20", "--seed", "3"],
                           env={"COLUMNS": "140"})
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "bolus effect onset 0.5-1 h" in text and "CSF clearance 13-80 mL/h" in text
    assert not any(code in r.output for code in codes if code != "patients")
    assert all("_" not in words for words in FRACTION_LABELS.values())


@pytest.mark.parametrize(("args", "field"), [
    (["steady-state", "--dose", "400"], "dose"),
    (["steady-state", "--dose", "400 mL"], "dose"),
    (["bolus", "--dose", "-5 mcg"], "dose"),
    (["bolus", "--dose", "5000 mcg"], "dose"),
    (["infusion", "--dose", "0 mcg/day"], "dose"),
    (["bolus", "--dose", "50 mcg", "--patient", "nobody"], "patient"),
    (["bolus", "--dose", "50 mcg", "--tip", "T13"], "tip_level"),
    (["population", "--n", "0"], "n"),
])
def test_bad_input_exit_2_naming_the_field(args: list[str], field: str) -> None:
    r = runner.invoke(app, ["patient", *args])
    assert r.exit_code == 2
    assert r.stderr.startswith(f"error: {field}:"), r.stderr


def test_level_option_reads_the_effect_higher_up_the_spine() -> None:
    low = _json("infusion", "--dose", "400 mcg/day", "--tip", "L2", "--level", "C6")
    high = _json("infusion", "--dose", "400 mcg/day", "--tip", "T4", "--level", "C6")
    assert high["effect_onset_hours"] < low["effect_onset_hours"]  # type: ignore[operator]
    r = runner.invoke(app, ["patient", "bolus", "--dose", "50 mcg", "--level", "C99"])
    assert r.exit_code == 2 and r.stderr.startswith("error: level:")
