"""The patient model's predicted effect of a program: steady state for a *typical* patient.

Not this patient's prediction: the model is run at the typical values of the named virtual
patient of ``data/patients.toml`` that matches the patient's origin of spasticity (spinal:
``adult_sci``; cerebral, or any child under 12: ``child_cp``), at the program's 24-hour average
dose as a constant intrathecal infusion, to steady state (:func:`openitb.physiology.model.
steady_state`). Read-outs: MAS drop from that patient's baseline, MAS, and lumbar CSF
concentration (definitions in :mod:`openitb.physiology.measures` and docs/physiology.md).

Pure: numbers in, numbers out (the parameter catalogue is package data, loaded once).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from openitb.errors import InvalidInput
from openitb.physiology.model import build_system, readouts, steady_state
from openitb.physiology.params import catalog, patient

MAX_DOSE_PER_DAY = 5000.0  # mcg/day; the clinic's own program bound (services._parse_program)
SPINAL_MODEL = "adult_sci"
CEREBRAL_MODEL = "child_cp"


@dataclass(frozen=True)
class PredictedEffect:
    model_patient: str
    model_description: str
    dose_per_day: float
    mas_baseline: float
    mas: float
    mas_drop: float
    csf_lumbar_ng_per_ml: float
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_patient_for(origin: str, population: str) -> str:
    """The typical virtual patient for a clinic patient's origin and population."""
    if origin not in ("spinal", "cerebral"):
        raise InvalidInput("origin", origin, "spinal or cerebral")
    if population == "pediatric" or origin == "cerebral":
        return CEREBRAL_MODEL
    return SPINAL_MODEL


@lru_cache(maxsize=4096)
def _steady(name: str, dose_per_day: float) -> tuple[float, float, float, float]:
    pts = patient(name)
    system = build_system(pts)
    x = steady_state(system, np.array([dose_per_day / 24.0, 0.0]))
    ro = readouts(system, x)
    return (float(pts.p("mas_baseline")[0]), float(ro["mas"][0]),
            max(0.0, float(ro["mas_drop"][0])),
            max(0.0, float(ro["csf_lumbar_ng_per_ml"][0])))


def predicted_effect(origin: str, population: str, dose_per_day: float) -> PredictedEffect:
    """Steady-state effect of ``dose_per_day`` (mcg/day, 24-hour average) for the typical
    patient matching ``origin`` and ``population``."""
    if (not isinstance(dose_per_day, (int, float)) or isinstance(dose_per_day, bool)
            or not math.isfinite(dose_per_day) or not 0 <= dose_per_day <= MAX_DOSE_PER_DAY):
        raise InvalidInput("dose_per_day", dose_per_day,
                           f"a number from 0 to {MAX_DOSE_PER_DAY:g} mcg/day")
    name = model_patient_for(origin, population)
    baseline, mas, drop, csf = _steady(name, round(float(dose_per_day), 6))
    return PredictedEffect(
        model_patient=name, model_description=catalog().named(name).description,
        dose_per_day=float(dose_per_day), mas_baseline=baseline, mas=mas, mas_drop=drop,
        csf_lumbar_ng_per_ml=csf,
        note=("model prediction at steady state for a typical patient of this origin "
              f"({name}), not for this patient; the program's 24-hour average dose as a "
              "constant infusion"))
