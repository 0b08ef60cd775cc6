"""Parameters: every value has a source; the population is seeded and log-normal as declared."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest

from openitb.errors import InvalidInput
from openitb.physiology.params import PARAMETERS, catalog, load_catalog, patient, population
from openitb.physiology.spine import gradient_factor, level_position_cm


def test_every_parameter_has_a_tagged_source() -> None:
    for name in PARAMETERS:
        spec = catalog().parameters[name]
        assert spec.source.startswith(("(C)", "(calibrated)", "(R)")), name


def test_population_is_reproducible_and_log_normal_around_the_named_patient() -> None:
    a = population(20_000, np.random.default_rng(1))
    b = population(20_000, np.random.default_rng(1))
    for name in PARAMETERS:
        np.testing.assert_array_equal(a.p(name), b.p(name))
        spec = catalog().parameters[name]
        values = a.p(name)
        if spec.tail_fraction:
            # The tail sits far below the bulk (tail_factor 0.1 is about 6 sigma): split them at
            # the geometric middle and check each part.
            tail = values < spec.typical * math.sqrt(spec.tail_factor)
            assert tail.mean() == pytest.approx(spec.tail_fraction, abs=0.005)
            assert np.median(values[tail]) == pytest.approx(
                spec.typical * spec.tail_factor, rel=0.1)
            values = values[~tail]
        assert np.median(values) == pytest.approx(spec.typical, rel=0.03)
        cv = math.sqrt(math.exp(np.var(np.log(values))) - 1)
        assert cv == pytest.approx(spec.cv, abs=0.02)
    child = population(2000, np.random.default_rng(1), "child_cp")
    assert np.median(child.p("csf_volume_ml")) == pytest.approx(130 * 0.6, rel=0.05)


def test_named_patients_and_their_anatomy() -> None:
    assert set(catalog().patients) >= {"adult_sci", "adult_ms", "child_cp"}
    adult, child = patient("adult_sci"), patient("child_cp")
    assert child.tip_cm[0] < adult.tip_cm[0]  # T4 in a shorter spine is higher than T10
    with pytest.raises(InvalidInput, match="patient"):
        patient("nobody")


def test_spinal_levels_and_gradient() -> None:
    assert level_position_cm("C1") < level_position_cm("T1") < level_position_cm("L1") < level_position_cm("S1")
    assert level_position_cm("cisterna") < 0
    for bad in ("T13", "X1", "", "L0"):
        with pytest.raises(InvalidInput):
            level_position_cm(bad, "tip_level")
    # caudal to the tip: the tip concentration; rostral: falls exponentially with distance
    assert gradient_factor(50.0, 60.0, 0.035) == 1.0
    assert gradient_factor(50.0, 30.0, 0.035) == pytest.approx(math.exp(-0.7))


def test_a_broken_data_file_is_refused_naming_the_value() -> None:
    text = resources.files("openitb.data").joinpath("patients.toml").read_text("utf-8")
    bad = text.replace("[parameters.clearance_ml_per_h]\ntypical = 30.0",
                               "[parameters.clearance_ml_per_h]\ntypical = -30.0")
    assert bad != text
    with pytest.raises(InvalidInput, match="clearance_ml_per_h"):
        load_catalog(bad)
