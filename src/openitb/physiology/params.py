"""Patient parameters: typical values, population spread and named example patients.

Data: ``openitb/data/patients.toml`` (every value with its source). A set of patients is held as
a structure of arrays (one NumPy array per parameter, one entry per patient), so that the solvers
work on thousands of patients at once.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from openitb.errors import InvalidInput
from openitb.physiology.spine import CISTERNA, level_position_cm

Array = npt.NDArray[np.float64]

PARAMETERS = (
    "csf_volume_ml", "clearance_ml_per_h", "exchange_ml_per_h", "tissue_volume_ml", "ke0_per_h",
    "ec50_ng_per_ml", "emax_mas", "hill", "mas_baseline", "gradient_per_cm",
    "adaptation_half_life_h", "withdrawal_lag_half_life_h", "withdrawal_deficit50",
    "dependence_floor_ng_per_ml", "overdose_ng_per_ml", "tolerance_gain", "rebound_mas",
    "sc_absorption_per_h", "plasma_volume_l", "plasma_clearance_l_per_h",
    "plasma_overdose_ng_per_ml", "plasma_ke0_per_h", "overdose_hill", "pocket_to_csf_fraction",
)


@dataclass(frozen=True)
class Definitions:
    """Thresholds used by every patient (docs/physiology.md)."""

    onset_mas_drop: float
    responder_mas_drop: float
    withdrawal_early: float
    withdrawal_severe: float
    overdose_drowsiness: float
    overdose_respiratory: float
    overdose_coma: float
    lumbar_puncture_level: str


@dataclass(frozen=True)
class Titration:
    """The titration target a clinic uses (physiology/titration.py)."""

    target_mas_drop: float
    target_effect_fraction: float
    side_effect_margin: float
    dose_min_mcg_per_day: float
    dose_max_mcg_per_day: float


@dataclass(frozen=True)
class ParameterSpec:
    """A parameter's typical value and log-normal spread; optionally a tail: a share of patients
    (``tail_fraction``) whose value is ``tail_factor`` times what the log-normal gave them
    (e.g. the few adults who are very sensitive to an intrathecal dose)."""

    typical: float
    cv: float
    source: str
    tail_fraction: float = 0.0
    tail_factor: float = 1.0


@dataclass(frozen=True)
class NamedPatient:
    name: str
    description: str
    origin: str
    spine_scale: float
    tip_level: str
    target_level: str
    factors: Mapping[str, float]


@dataclass(frozen=True)
class Catalog:
    default_patient: str
    definitions: Definitions
    parameters: Mapping[str, ParameterSpec]
    patients: Mapping[str, NamedPatient]
    titration: Titration

    def named(self, name: str | None) -> NamedPatient:
        key = name or self.default_patient
        if key not in self.patients:
            raise InvalidInput("patient", name, "one of " + ", ".join(sorted(self.patients)))
        return self.patients[key]


@dataclass(frozen=True)
class Patients:
    """n patients: one array of length n per parameter, plus the anatomy (positions in cm)."""

    values: Mapping[str, Array]
    tip_cm: Array
    target_cm: Array
    lumbar_cm: Array
    cisterna_cm: Array
    labels: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return int(self.tip_cm.shape[0])

    def p(self, name: str) -> Array:
        return self.values[name]

    def take(self, index: Any) -> Patients:
        idx = np.atleast_1d(np.arange(len(self))[index])
        return Patients(
            {k: v[idx] for k, v in self.values.items()},
            self.tip_cm[idx], self.target_cm[idx], self.lumbar_cm[idx], self.cisterna_cm[idx],
            tuple(self.labels[i] for i in idx) if self.labels else (),
        )

    def with_target(self, level: str, field: str = "target_level") -> Patients:
        """The same patients with the effect read at spinal ``level`` (e.g. C6 for the arms)."""
        scale = self.values["spine_scale"]
        target = np.array([level_position_cm(level, field, float(s)) for s in scale])
        return Patients(self.values, self.tip_cm, target, self.lumbar_cm, self.cisterna_cm,
                        self.labels)

    def with_tip(self, tip_level: str, field: str = "tip_level") -> Patients:
        """The same patients with the catheter tip moved to ``tip_level``."""
        scale = self.values["spine_scale"]
        tip = np.array([level_position_cm(tip_level, field, float(s)) for s in scale])
        return Patients(self.values, tip, self.target_cm, self.lumbar_cm, self.cisterna_cm,
                        self.labels)


def _number(doc: Mapping[str, Any], key: str, where: str) -> float:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InvalidInput(f"{where}.{key}", v, "a finite number")
    return float(v)


def load_catalog(text: str | None = None) -> Catalog:
    """Read the patient catalogue (the packaged ``patients.toml`` unless ``text`` is given)."""
    if text is None:
        text = resources.files("openitb.data").joinpath("patients.toml").read_text("utf-8")
    doc = tomllib.loads(text)
    d = doc["definitions"]
    definitions = Definitions(
        onset_mas_drop=_number(d, "onset_mas_drop", "definitions"),
        responder_mas_drop=_number(d, "responder_mas_drop", "definitions"),
        withdrawal_early=_number(d, "withdrawal_early", "definitions"),
        withdrawal_severe=_number(d, "withdrawal_severe", "definitions"),
        overdose_drowsiness=_number(d, "overdose_drowsiness", "definitions"),
        overdose_respiratory=_number(d, "overdose_respiratory", "definitions"),
        overdose_coma=_number(d, "overdose_coma", "definitions"),
        lumbar_puncture_level=str(d["lumbar_puncture_level"]),
    )
    specs: dict[str, ParameterSpec] = {}
    for name in PARAMETERS:
        spec = doc["parameters"].get(name)
        if spec is None:
            raise InvalidInput(f"parameters.{name}", None, "every model parameter in the data file")
        typical, cv = _number(spec, "typical", name), _number(spec, "cv", name)
        if typical <= 0 or cv < 0:
            raise InvalidInput(f"parameters.{name}", spec, "typical > 0 and cv >= 0")
        tail_fraction = _number(spec, "tail_fraction", name) if "tail_fraction" in spec else 0.0
        tail_factor = _number(spec, "tail_factor", name) if "tail_factor" in spec else 1.0
        if not 0 <= tail_fraction < 1 or tail_factor <= 0:
            raise InvalidInput(f"parameters.{name}", spec, "0 <= tail_fraction < 1 and tail_factor > 0")
        specs[name] = ParameterSpec(typical, cv, str(spec.get("source", "")), tail_fraction,
                                    tail_factor)
    patients: dict[str, NamedPatient] = {}
    for name, p in doc["patients"].items():
        factors = {str(k): float(v) for k, v in p.get("factors", {}).items()}
        unknown = set(factors) - set(PARAMETERS)
        if unknown:
            raise InvalidInput(f"patients.{name}.factors", sorted(unknown), "model parameters")
        patients[name] = NamedPatient(name, str(p["description"]), str(p["origin"]),
                                      float(p["spine_scale"]), str(p["tip_level"]),
                                      str(p["target_level"]), factors)
    t = doc["titration"]
    titration = Titration(*(_number(t, k, "titration") for k in (
        "target_mas_drop", "target_effect_fraction", "side_effect_margin",
        "dose_min_mcg_per_day", "dose_max_mcg_per_day")))
    if not (0 < titration.target_effect_fraction < 1 and 0 < titration.side_effect_margin <= 1
            and 0 < titration.dose_min_mcg_per_day < titration.dose_max_mcg_per_day):
        raise InvalidInput("titration", t, "0 < target_effect_fraction < 1, 0 < side_effect_margin"
                           " <= 1 and 0 < dose_min_mcg_per_day < dose_max_mcg_per_day")
    return Catalog(str(doc["default_patient"]), definitions, specs, patients, titration)


_CATALOG: Catalog | None = None


def catalog() -> Catalog:
    global _CATALOG
    if _CATALOG is None:
        _CATALOG = load_catalog()
    return _CATALOG


def _anatomy(named: NamedPatient, n: int, cat: Catalog, tip_level: str | None) -> tuple[Array, ...]:
    s = named.spine_scale
    tip = level_position_cm(tip_level or named.tip_level, "tip_level", s)
    target = level_position_cm(named.target_level, "target_level", s)
    lumbar = level_position_cm(cat.definitions.lumbar_puncture_level, "lumbar_puncture_level", s)
    cis = level_position_cm(CISTERNA, "cisterna", s)
    return tuple(np.full(n, v) for v in (tip, target, lumbar, cis))


def patient(name: str | None = None, *, tip_level: str | None = None,
            target_level: str | None = None, cat: Catalog | None = None) -> Patients:
    """One named patient at the typical values (times the patient's factors); the catheter tip
    and the spinal level where the effect is read may be moved."""
    c = cat or catalog()
    named = c.named(name)
    values = {k: np.array([spec.typical * named.factors.get(k, 1.0)])
              for k, spec in c.parameters.items()}
    values["spine_scale"] = np.array([named.spine_scale])
    tip, target, lumbar, cis = _anatomy(named, 1, c, tip_level)
    out = Patients(values, tip, target, lumbar, cis, (named.name,))
    return out.with_target(target_level, "level") if target_level is not None else out


def population(n: int, rng: np.random.Generator, base: str | None = None, *,
               tip_level: str | None = None, cat: Catalog | None = None) -> Patients:
    """``n`` patients around a named patient: every parameter log-normal with median the
    patient's value and the coefficient of variation from the data file, then its tail (if any)."""
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10_000_000:
        raise InvalidInput("n", n, "a whole number of patients from 1 to 10,000,000")
    c = cat or catalog()
    named = c.named(base)
    values: dict[str, Array] = {}
    for k, spec in c.parameters.items():
        sigma = math.sqrt(math.log1p(spec.cv**2))
        median = spec.typical * named.factors.get(k, 1.0)
        values[k] = median * np.exp(sigma * rng.standard_normal(n))
    # Tails are drawn after every log-normal value, so adding one leaves the others unchanged.
    for k, spec in c.parameters.items():
        if spec.tail_fraction > 0:
            values[k] = np.where(rng.random(n) < spec.tail_fraction,
                                 values[k] * spec.tail_factor, values[k])
    values["spine_scale"] = np.full(n, named.spine_scale)
    tip, target, lumbar, cis = _anatomy(named, n, c, tip_level)
    return Patients(values, tip, target, lumbar, cis, tuple(f"{named.name}#{i}" for i in range(n)))
