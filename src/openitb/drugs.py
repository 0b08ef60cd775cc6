"""The drug library: intrathecal baclofen products, concentrations and label limits.

Data lives in ``data/drugs.toml`` with a source for every value. A site may point
``OPENITB_DRUGS`` at its own file. The library is read once and is immutable.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from openitb.errors import InvalidInput
from openitb.units import McgPerDay, McgPerMl, Micrograms


class Origin(str, Enum):
    """Origin of spasticity; it selects the label's titration limits."""

    SPINAL = "spinal"
    CEREBRAL = "cerebral"


class Context(str, Enum):
    TITRATION = "titration"
    MAINTENANCE = "maintenance"


class Population(str, Enum):
    SPINAL = "spinal"
    CEREBRAL = "cerebral"
    PEDIATRIC = "pediatric"


@dataclass(frozen=True)
class Product:
    name: str
    concentrations: tuple[McgPerMl, ...]
    source: str


@dataclass(frozen=True)
class ChangeLimit:
    increase_min: float
    increase_max: float
    decrease_max: float
    source: str


@dataclass(frozen=True)
class DailyDoseBounds:
    usual_min: McgPerDay
    usual_max: McgPerDay
    recommended_min: McgPerDay
    recommended_max: McgPerDay
    absolute_min: McgPerDay
    absolute_max: McgPerDay
    source: str


@dataclass(frozen=True)
class ConcentrationCheck:
    concentration: McgPerMl
    products: tuple[str, ...]
    compounded: bool
    warning: str | None


@dataclass(frozen=True)
class KernelLimits:
    """The safety kernel's limits that are not label doses, all (R) defaults (drugs.toml)."""

    clinician_bolus_absolute_factor: float
    clinician_bolus_source: str
    patient_share_recommended: float
    patient_share_absolute: float
    patient_share_source: str
    window_hours: float
    window_source: str


DEFAULT_KERNEL = KernelLimits(2.0, "(R) default", 0.20, 0.50, "(R) default", 24.0,
                              "label: per 24 h")


@dataclass(frozen=True)
class DrugLibrary:
    drug: str
    products: tuple[Product, ...]
    screening_doses: tuple[Micrograms, ...]
    screening_interval_hours: float
    first_dose_multiplier: float
    first_dose_long_effect_hours: float
    change_limits: dict[tuple[Origin, Context], ChangeLimit]
    absolute_step_factor: float
    daily_dose: dict[Population, DailyDoseBounds]
    pediatric_change_limits: dict[Context, ChangeLimit] = field(default_factory=dict)
    small_child_screening_dose: Micrograms | None = None
    small_child_weight_below_kg: float | None = None
    small_child_source: str = ""
    kernel: KernelLimits | None = None

    def known_concentrations(self) -> tuple[McgPerMl, ...]:
        seen = {c for p in self.products for c in p.concentrations}
        return tuple(sorted(seen))

    def check_concentration(
        self, concentration: McgPerMl, *, compounded: bool = False, field: str = "concentration"
    ) -> ConcentrationCheck:
        """Accept a product concentration; refuse any other unless declared compounded."""
        names = tuple(
            p.name for p in self.products if any(_same(c, concentration) for c in p.concentrations)
        )
        if names:
            return ConcentrationCheck(concentration, names, False, None)
        allowed = ", ".join(str(c) for c in self.known_concentrations())
        if not compounded:
            raise InvalidInput(
                field,
                str(concentration),
                f"no {self.drug} product has this concentration; products have {allowed} "
                "(declare it compounded to use another)",
            )
        return ConcentrationCheck(
            concentration,
            (),
            True,
            f"{concentration} is a compounded concentration, not a labelled product "
            f"({allowed}); double-check the vial and the pharmacy label",
        )

    def change_limit(self, origin: Origin, context: Context) -> ChangeLimit:
        return self.change_limits[(origin, context)]

    def change_limit_for(self, population: Population, origin: Origin,
                         context: Context) -> ChangeLimit:
        """The per-24 h step for a population: children have their own (see drugs.toml)."""
        if population is Population.PEDIATRIC and context in self.pediatric_change_limits:
            return self.pediatric_change_limits[context]
        return self.change_limit(origin, context)

    def first_screening_dose(self, weight_kg: float | None) -> Micrograms:
        """50 mcg; 25 mcg for a very small child (label), below the configured weight."""
        if (weight_kg is not None and self.small_child_screening_dose is not None
                and self.small_child_weight_below_kg is not None
                and weight_kg < self.small_child_weight_below_kg):
            return self.small_child_screening_dose
        return self.screening_doses[0]

    def bounds(self, population: Population) -> DailyDoseBounds:
        return self.daily_dose[population]


def _same(a: McgPerMl, b: McgPerMl) -> bool:
    return abs(a.value - b.value) <= 1e-9 * max(1.0, a.value)


def _load(data: dict[str, Any]) -> DrugLibrary:
    products = tuple(
        Product(p["name"], tuple(McgPerMl(c) for c in p["concentrations_mcg_per_ml"]), p["source"])
        for p in data["products"]
    )
    limits: dict[tuple[Origin, Context], ChangeLimit] = {}
    for origin in Origin:
        for context in Context:
            d = data["change_limits"][origin.value][context.value]
            limits[(origin, context)] = ChangeLimit(
                d["increase_min"], d["increase_max"], d["decrease_max"], d["source"]
            )
    daily = {}
    for pop in Population:
        d = data["daily_dose"][pop.value]
        daily[pop] = DailyDoseBounds(
            usual_min=McgPerDay(d["usual_min"]),
            usual_max=McgPerDay(d["usual_max"]),
            recommended_min=McgPerDay(d["recommended_min"]),
            recommended_max=McgPerDay(d["recommended_max"]),
            absolute_min=McgPerDay(d["absolute_min"]),
            absolute_max=McgPerDay(d["absolute_max"]),
            source=d["source"],
        )
    s = data["screening"]
    f = data["first_dose"]
    ped: dict[Context, ChangeLimit] = {}
    for context in Context:
        d = data["change_limits"].get("pediatric", {}).get(context.value)
        if d:
            ped[context] = ChangeLimit(d["increase_min"], d["increase_max"], d["decrease_max"],
                                       d["source"])
    k = data.get("kernel")
    kernel = DEFAULT_KERNEL if not k else KernelLimits(
        float(k["clinician_bolus_absolute_factor"]), str(k["clinician_bolus_source"]),
        float(k["patient_share_recommended"]), float(k["patient_share_absolute"]),
        str(k["patient_share_source"]), float(k["window_hours"]), str(k["window_source"]))
    return DrugLibrary(
        drug=data["drug"],
        products=products,
        screening_doses=tuple(Micrograms(x) for x in s["doses_mcg"]),
        screening_interval_hours=float(s["interval_hours"]),
        first_dose_multiplier=float(f["multiplier"]),
        first_dose_long_effect_hours=float(f["long_effect_hours"]),
        change_limits=limits,
        absolute_step_factor=float(data["change_limits"]["absolute"]["step_factor"]),
        daily_dose=daily,
        pediatric_change_limits=ped,
        small_child_screening_dose=(Micrograms(float(s["small_child_dose_mcg"]))
                                    if "small_child_dose_mcg" in s else None),
        small_child_weight_below_kg=(float(s["small_child_weight_below_kg"])
                                     if "small_child_weight_below_kg" in s else None),
        small_child_source=str(s.get("small_child_source", "")),
        kernel=kernel,
    )


@lru_cache(maxsize=4)
def load_library(path: str | None = None) -> DrugLibrary:
    """Load the drug library (the shipped one, or ``path`` / ``$OPENITB_DRUGS``)."""
    path = path or os.environ.get("OPENITB_DRUGS")
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = resources.files("openitb.data").joinpath("drugs.toml").read_text(encoding="utf-8")
    return _load(tomllib.loads(text))


def parse_origin(text: str, field: str = "origin") -> Origin:
    try:
        return Origin(text.strip().lower())
    except (ValueError, AttributeError):
        raise InvalidInput(field, text, "allowed: spinal, cerebral") from None


def parse_context(text: str, field: str = "context") -> Context:
    try:
        return Context(text.strip().lower())
    except (ValueError, AttributeError):
        raise InvalidInput(field, text, "allowed: titration, maintenance") from None
