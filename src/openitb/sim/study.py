"""Fleet study files (TOML): population, pumps, catheter failures, refill behaviour, policies.

Validated with pydantic; the first problem is reported as an ``InvalidInput`` naming the field
(dotted path in the file), the value given and what is allowed. Defaults, and where they come
from, are in ``data/fleet.toml``.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from openitb.devices import get_pump
from openitb.errors import InvalidInput
from openitb.physiology.params import catalog
from openitb.units import Milliliters

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PopulationSpec(_Strict):
    """Mix of named base patients (weights); each patient's dose is titrated to an effect."""

    mix: dict[str, Positive]
    # The titration target (defaults: data/patients.toml [titration], one place for both the
    # patient model and the fleet): the MAS drop aimed at, the share of the patient's largest
    # effect beyond which the clinic stops, and the side-effect margin.
    target_mas_drop: Positive = Field(default_factory=lambda: catalog().titration.target_mas_drop)
    target_effect_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(
        default_factory=lambda: catalog().titration.target_effect_fraction)
    side_effect_margin: Annotated[float, Field(gt=0, le=1)] = Field(
        default_factory=lambda: catalog().titration.side_effect_margin)
    titration_cv: NonNegative
    dose_min_mcg_per_day: Positive = Field(
        default_factory=lambda: catalog().titration.dose_min_mcg_per_day)
    dose_max_mcg_per_day: Positive = Field(
        default_factory=lambda: catalog().titration.dose_max_mcg_per_day)
    flex_starts_h: tuple[int, ...] = (0, 7, 12, 19)
    flex_factors: tuple[Positive, ...] = (1.0, 1.2, 0.9, 0.9)

    @model_validator(mode="after")
    def _check(self) -> PopulationSpec:
        known = set(catalog().patients)
        for name in self.mix:
            if name not in known:
                raise ValueError(f"mix: unknown patient {name!r}; known: {', '.join(sorted(known))}")
        if self.dose_min_mcg_per_day >= self.dose_max_mcg_per_day:
            raise ValueError("dose_min_mcg_per_day must be below dose_max_mcg_per_day")
        starts = self.flex_starts_h
        if not starts or starts[0] != 0 or list(starts) != sorted(set(starts)) or starts[-1] > 23:
            raise ValueError("flex_starts_h: whole hours, increasing, the first 0, all below 24")
        if len(self.flex_factors) != len(starts):
            raise ValueError("flex_factors: one factor per flex step")
        return self


class PumpSpec(_Strict):
    mix: dict[str, Positive] = {"itb-20": 1.0, "itb-40": 1.0}
    # "measured": each pump's flow error is a bias (normal, mean and sd below) plus a drift that
    # changes at every refill (normal, sd below), within the profile's tolerance.
    # "uniform": the pessimistic spread, uniform over +-flow_spread_pct (None: the profile's
    # whole flow tolerance, as the pump controller draws it) and constant between refills.
    flow_error: Literal["measured", "uniform"] = "measured"
    flow_bias_mean_pct: Annotated[float, Field(ge=-14.5, le=14.5)] = 1.0
    flow_bias_sd_pct: Annotated[float, Field(ge=0, le=14.5)] = 2.5
    flow_drift_sd_pct: Annotated[float, Field(ge=0, le=14.5)] = 2.0
    flow_spread_pct: Annotated[float, Field(ge=0, le=14.5)] | None = None

    @field_validator("mix")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        for name in v:
            get_pump(name)  # raises InvalidInput naming the known profiles
        return v


class CatheterSpec(_Strict):
    occlusion_per_patient_year: NonNegative
    disconnection_per_patient_year: NonNegative
    revision_delay_days: NonNegative
    # Partial faults (a leak or a partial kink): this share of all faults loses only part of the
    # flow (uniform between the two fractions) and presents as a loss of effect.
    partial_share: Probability = 0.0
    partial_loss_min: Probability = 0.2
    partial_loss_max: Probability = 0.8
    loss_of_effect_presentation_days: NonNegative = 14.0

    @model_validator(mode="after")
    def _check(self) -> CatheterSpec:
        if self.partial_loss_min > self.partial_loss_max:
            raise ValueError("partial_loss_min must not be above partial_loss_max")
        return self


class RefillSpec(_Strict):
    miss_probability: Probability
    delay_mean_days: NonNegative
    alarm_response_days: NonNegative
    withdrawal_presentation_hours: NonNegative
    # At a presentation with a failed catheter the clinic restores intrathecal baclofen (a
    # bridging infusion by lumbar catheter) until the revision.
    bridge_until_revision: bool = True
    pocket_fill_probability: Probability
    pocket_fill_fraction: Annotated[float, Field(gt=0, le=1)]
    max_interval_days: Positive


class ConcentrationSpec(_Strict):
    choices_mcg_per_ml: tuple[Annotated[int, Field(gt=0)], ...]
    min_interval_days: Positive


class Policy(_Strict):
    name: str
    low_alarm_ml: Positive
    lead_days: NonNegative


class Study(_Strict):
    name: str
    patients: Annotated[int, Field(ge=1, le=10_000_000)]
    years: Annotated[float, Field(gt=0, le=50)]
    seed: Annotated[int, Field(ge=0)]
    population: PopulationSpec
    pumps: PumpSpec = PumpSpec()
    catheter: CatheterSpec
    refills: RefillSpec
    concentration: ConcentrationSpec
    policies: tuple[Policy, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Study:
        names = [p.name for p in self.policies]
        if len(set(names)) != len(names):
            raise ValueError("policies: each needs its own name")
        for p in self.policies:
            for profile in self.pumps.mix:
                get_pump(profile).check_low_alarm(Milliliters(p.low_alarm_ml),
                                                  f"policies.{p.name}.low_alarm_ml")
        return self

    def with_overrides(self, **changes: Any) -> Study:
        """The same study with top-level values replaced (from the command line), re-validated."""
        data = self.model_dump()
        data.update({k: v for k, v in changes.items() if v is not None})
        return _validate(data)


def defaults() -> dict[str, Any]:
    text = resources.files("openitb.data").joinpath("fleet.toml").read_text("utf-8")
    return tomllib.loads(text)["defaults"]  # type: ignore[no-any-return]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _validate(data: dict[str, Any]) -> Study:
    try:
        return Study.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "study"
        raise InvalidInput(where, err.get("input"), err["msg"].removeprefix("Value error, ")) from None


def parse_study(doc: dict[str, Any]) -> Study:
    """A study from a parsed TOML document, with the defaults filled in."""
    if not isinstance(doc, dict):
        raise InvalidInput("study", doc, "a TOML table")
    return _validate(_merge(defaults(), doc))


def load_study(path: Path) -> Study:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput("study", str(path), "an existing TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput("study", str(path), f"valid TOML ({exc})") from None
    return parse_study(doc)
