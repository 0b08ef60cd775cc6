"""The patient model's predicted effect of a program, for the typical patient of an origin."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openitb.clinic.prediction import model_patient_for, predicted_effect
from openitb.errors import InvalidInput
from openitb.physiology.measures import steady_state_measures
from openitb.physiology.params import patient


def test_origin_selects_the_typical_patient() -> None:
    assert model_patient_for("spinal", "spinal") == "adult_sci"
    assert model_patient_for("cerebral", "cerebral") == "child_cp"
    assert model_patient_for("spinal", "pediatric") == "child_cp"
    with pytest.raises(InvalidInput):
        model_patient_for("cardiac", "spinal")


def test_agrees_with_the_physiology_measures() -> None:
    e = predicted_effect("spinal", "spinal", 300.0)
    m = steady_state_measures(patient("adult_sci"), 300.0, horizon_h=1.0)
    assert math.isclose(e.mas_drop, float(m.mas_drop[0]), rel_tol=1e-9)
    assert math.isclose(e.csf_lumbar_ng_per_ml, float(m.csf_ng_per_ml[0]), rel_tol=1e-9)
    assert math.isclose(e.mas, e.mas_baseline - e.mas_drop, rel_tol=1e-9)
    assert "typical patient" in e.note and "not for this patient" in e.note


def test_no_dose_no_effect() -> None:
    e = predicted_effect("spinal", "spinal", 0.0)
    assert e.mas_drop == 0.0 and e.csf_lumbar_ng_per_ml == 0.0 and e.mas == e.mas_baseline


@pytest.mark.parametrize(("origin", "population"), [("spinal", "spinal"),
                                                     ("cerebral", "pediatric")])
def test_monotone_in_dose(origin: str, population: str) -> None:
    doses = [10.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1500.0]
    effects = [predicted_effect(origin, population, d) for d in doses]
    drops = np.array([e.mas_drop for e in effects])
    csf = np.array([e.csf_lumbar_ng_per_ml for e in effects])
    mas = np.array([e.mas for e in effects])
    assert np.all(np.diff(drops) > 0) and np.all(np.diff(csf) > 0) and np.all(np.diff(mas) < 0)
    assert np.all(drops < effects[0].mas_baseline)
    # linear kinetics: lumbar CSF proportional to the dose
    assert math.isclose(csf[2] / csf[1], 2.0, rel_tol=1e-9)


def test_child_and_adult_differ() -> None:
    adult = predicted_effect("spinal", "spinal", 200.0)
    child = predicted_effect("cerebral", "pediatric", 200.0)
    assert adult.model_patient != child.model_patient
    assert adult.csf_lumbar_ng_per_ml != child.csf_lumbar_ng_per_ml


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), 1e6, True, "100"])
def test_outside_input_is_refused(bad: object) -> None:
    with pytest.raises(InvalidInput) as e:
        predicted_effect("spinal", "spinal", bad)  # type: ignore[arg-type]
    assert e.value.field == "dose_per_day"
