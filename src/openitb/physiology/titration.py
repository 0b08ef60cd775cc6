"""The dose a clinic reaches by titration, for many patients at once.

A clinic titrates up until the tone is reduced enough (``target_mas_drop``), or until more dose
buys little more (``target_effect_fraction`` of the patient's largest possible effect), and stops
before side effects (``side_effect_margin`` times the drowsiness level at steady state). The
defaults are in ``data/patients.toml`` ([titration]) with their sources.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from openitb.physiology.model import CE, INTRATHECAL, N_INPUTS, build_system, readouts, steady_state
from openitb.physiology.params import Patients, catalog
from openitb.physiology.spine import gradient_factor

FloatArray = npt.NDArray[np.float64]


def titrated_dose(patients: Patients, target_mas_drop: float,
                  effect_fraction: float = 0.9) -> FloatArray:
    """The daily dose a clinic aims at by titration: the dose that gives each patient
    ``target_mas_drop`` at steady state, or ``effect_fraction`` of the patient's largest possible
    drop where that is less (more dose would buy little). The model is linear up to the
    read-outs, so one steady state per patient at 1 mcg/day gives the effect-site concentration
    per mcg/day; the Emax relation is inverted for the concentration needed."""
    system = build_system(patients)
    rates = np.zeros((len(patients), N_INPUTS))
    rates[:, INTRATHECAL] = 1.0 / 24.0
    per_unit = readouts(system, steady_state(system, rates))["ce_target_ng_per_ml"]
    emax, ec50, hill = (patients.p(k) for k in ("emax_mas", "ec50_ng_per_ml", "hill"))
    drop = np.minimum(target_mas_drop, effect_fraction * emax)
    needed = ec50 * (drop / (emax - drop)) ** (1.0 / hill)
    return np.asarray(needed / per_unit, dtype=np.float64)


def side_effect_ceiling(patients: Patients, margin: float) -> FloatArray:
    """The highest daily dose at which each patient's steady-state overdose severity stays at
    ``margin`` times the drowsiness level: titration stops at side effects (a very sensitive
    patient ends on a low dose). Chronic exposure is x = Cc / (OD50 + gain Cc), with Cc the
    cisternal effect-site concentration (adapted = effect site at steady state), so
    Cc <= x OD50 / (1 - x gain); no ceiling where x gain >= 1."""
    system = build_system(patients)
    rates = np.zeros((len(patients), N_INPUTS))
    rates[:, INTRATHECAL] = 1.0 / 24.0
    xss = steady_state(system, rates)
    p = patients.p
    sev = margin * catalog().definitions.overdose_drowsiness
    x = (sev / (1.0 - sev)) ** (1.0 / p("overdose_hill"))
    gain = p("tolerance_gain")
    cis_per_unit = xss[:, CE] * gradient_factor(patients.tip_cm, patients.cisterna_cm,
                                               p("gradient_per_cm"))
    safe = np.where(x * gain < 1.0, 1.0 - x * gain, 1.0)
    cap = np.where(x * gain < 1.0, x * p("overdose_ng_per_ml") / safe, np.inf)
    return np.asarray(cap / cis_per_unit, dtype=np.float64)


def clinic_dose(patients: Patients) -> FloatArray:
    """The maintenance dose (mcg/day) each patient ends on with the catalogue's titration target,
    the side-effect ceiling and the label's bounds (no titration spread)."""
    t = catalog().titration
    aim = titrated_dose(patients, t.target_mas_drop, t.target_effect_fraction)
    dose = np.minimum(aim, side_effect_ceiling(patients, t.side_effect_margin))
    return np.asarray(np.clip(dose, t.dose_min_mcg_per_day, t.dose_max_mcg_per_day),
                      dtype=np.float64)
