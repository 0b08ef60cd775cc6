"""Who the change is for and who proposes it."""

from __future__ import annotations

from dataclasses import dataclass

from openitb.drugs import Origin, Population
from openitb.errors import InvalidInput
from openitb.safety.permissions import Role

CHILD_UNDER_YEARS = 12.0  # the labels' paediatric maintenance range is for children under 12 (C)


@dataclass(frozen=True)
class PatientFacts:
    """Origin of spasticity, child or adult, and weight and age where known.

    ``child`` None: decided from ``age_years`` (under 12 is a child); unknown age: adult."""

    origin: str | Origin
    child: bool | None = None
    weight_kg: float | None = None
    age_years: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.origin, Origin):
            try:
                object.__setattr__(self, "origin", Origin(str(self.origin).strip().lower()))
            except ValueError:
                raise InvalidInput("origin", self.origin, "spinal or cerebral") from None
        if self.weight_kg is not None and not 0.5 <= self.weight_kg <= 400:
            raise InvalidInput("weight_kg", self.weight_kg, "0.5 to 400 kg")
        if self.age_years is not None and not 0 <= self.age_years <= 130:
            raise InvalidInput("age_years", self.age_years, "0 to 130 years")

    @property
    def spasticity_origin(self) -> Origin:
        assert isinstance(self.origin, Origin)
        return self.origin

    @property
    def is_child(self) -> bool:
        if self.child is not None:
            return self.child
        return self.age_years is not None and self.age_years < CHILD_UNDER_YEARS

    @property
    def population(self) -> Population:
        return Population.PEDIATRIC if self.is_child else Population(self.spasticity_origin.value)


@dataclass(frozen=True)
class Actor:
    """Who proposes the change: a role from the permission table and a name for the record."""

    role: Role
    name: str = ""
