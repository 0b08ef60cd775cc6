"""Pump and catheter profiles as data (``data/devices.toml``), each value with its source."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from openitb.errors import InvalidInput
from openitb.units import Milliliters, MlPerDay


@dataclass(frozen=True)
class PumpProfile:
    name: str
    description: str
    capacity: Milliliters
    stroke_volume_nl: int  # nanolitres: the pump counts strokes in integers
    min_flow: MlPerDay
    max_flow: MlPerDay
    bolus_max_flow_ml_per_hour: float
    internal_volume: Milliliters
    low_alarm_default: Milliliters
    low_alarm_min: Milliliters
    low_alarm_max: Milliliters
    flow_tolerance_pct: float
    battery_capacity_mah: float
    battery_idle_ua: float
    battery_stroke_uah: float
    battery_telemetry_ma: float
    eri_days: int
    max_service_years: float
    mri_recovery_hours: float
    mri_resume: str  # "auto" | "interrogation"
    sources: dict[str, str]

    @property
    def capacity_nl(self) -> int:
        return round(self.capacity.value * 1_000_000)

    @property
    def stroke_volume(self) -> Milliliters:
        return Milliliters(self.stroke_volume_nl / 1_000_000)

    def check_volume(self, volume: Milliliters, field: str = "volume") -> Milliliters:
        if volume.value > self.capacity.value + 1e-9:
            raise InvalidInput(
                field, str(volume), f"at most the {self.name} reservoir capacity of {self.capacity}"
            )
        return volume

    def check_low_alarm(self, threshold: Milliliters, field: str = "low_alarm") -> Milliliters:
        if not (self.low_alarm_min.value <= threshold.value <= self.low_alarm_max.value):
            raise InvalidInput(
                field,
                str(threshold),
                f"the {self.name} low-reservoir alarm must be between {self.low_alarm_min} "
                f"and {self.low_alarm_max}",
            )
        return threshold

    def discrepancy_threshold(self) -> Milliliters:
        """Best-practice threshold: 1 mL for reservoirs up to 20 mL, 2 mL for larger ones."""
        return Milliliters(1.0 if self.capacity.value <= 20.0 else 2.0)


@dataclass(frozen=True)
class CatheterProfile:
    name: str
    description: str
    volume_ml_per_cm: float
    min_length_cm: float
    max_length_cm: float
    sources: dict[str, str]

    def volume(self, length_cm: float, field: str = "catheter_length") -> Milliliters:
        self.check_length(length_cm, field)
        return Milliliters(self.volume_ml_per_cm * length_cm)

    def check_length(self, length_cm: float, field: str = "catheter_length") -> float:
        length_cm = round(length_cm, 9)  # "1.1 m" is 110.00000000000001 cm in binary
        if not (self.min_length_cm <= length_cm <= self.max_length_cm):
            raise InvalidInput(
                field,
                f"{length_cm:g} cm",
                f"a {self.name} catheter is {self.min_length_cm:g} to {self.max_length_cm:g} cm long",
            )
        return length_cm


@dataclass(frozen=True)
class DeviceCatalog:
    pumps: dict[str, PumpProfile]
    catheters: dict[str, CatheterProfile]

    def pump(self, name: str, field: str = "profile") -> PumpProfile:
        try:
            return self.pumps[name]
        except KeyError:
            raise InvalidInput(field, name, f"known profiles: {', '.join(self.pumps)}") from None

    def catheter(self, name: str | None = None, field: str = "catheter") -> CatheterProfile:
        if name is None:
            return next(iter(self.catheters.values()))
        try:
            return self.catheters[name]
        except KeyError:
            raise InvalidInput(field, name, f"known catheters: {', '.join(self.catheters)}") from None


def _pump(d: dict[str, Any]) -> PumpProfile:
    sources = {k[: -len("_source")]: v for k, v in d.items() if k.endswith("_source")}
    return PumpProfile(
        name=d["name"],
        description=d["description"],
        capacity=Milliliters(d["capacity_ml"]),
        stroke_volume_nl=round(d["stroke_volume_ul"] * 1000),
        min_flow=MlPerDay(d["min_flow_ml_per_day"]),
        max_flow=MlPerDay(d["max_flow_ml_per_day"]),
        bolus_max_flow_ml_per_hour=float(d["bolus_max_flow_ml_per_hour"]),
        internal_volume=Milliliters(d["internal_volume_ml"]),
        low_alarm_default=Milliliters(d["low_alarm_default_ml"]),
        low_alarm_min=Milliliters(d["low_alarm_min_ml"]),
        low_alarm_max=Milliliters(d["low_alarm_max_ml"]),
        flow_tolerance_pct=float(d["flow_tolerance_pct"]),
        battery_capacity_mah=float(d["battery_capacity_mah"]),
        battery_idle_ua=float(d["battery_idle_ua"]),
        battery_stroke_uah=float(d["battery_stroke_uah"]),
        battery_telemetry_ma=float(d["battery_telemetry_ma"]),
        eri_days=int(d["eri_days"]),
        max_service_years=float(d["max_service_years"]),
        mri_recovery_hours=float(d["mri_recovery_hours"]),
        mri_resume=str(d["mri_resume"]),
        sources=sources,
    )


def _catheter(d: dict[str, Any]) -> CatheterProfile:
    sources = {k[: -len("_source")]: v for k, v in d.items() if k.endswith("_source")}
    return CatheterProfile(
        name=d["name"],
        description=d["description"],
        volume_ml_per_cm=float(d["volume_ml_per_cm"]),
        min_length_cm=float(d["min_length_cm"]),
        max_length_cm=float(d["max_length_cm"]),
        sources=sources,
    )


@lru_cache(maxsize=4)
def load_catalog(path: str | None = None) -> DeviceCatalog:
    path = path or os.environ.get("OPENITB_DEVICES")
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = resources.files("openitb.data").joinpath("devices.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return DeviceCatalog(
        pumps={p["name"]: _pump(p) for p in data["pumps"]},
        catheters={c["name"]: _catheter(c) for c in data["catheters"]},
    )


def get_pump(name: str, field: str = "profile") -> PumpProfile:
    return load_catalog().pump(name, field)


def default_catheter() -> CatheterProfile:
    return load_catalog().catheter()
