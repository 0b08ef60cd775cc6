"""Infusion prescriptions: simple continuous, flex, single bolus and periodic bolus.

Every prescription reduces to a list of :class:`RateSegment` s, each a span of seconds with one
dose rate. Repeating modes (continuous, flex, periodic bolus) cover one day, [0, 86400) seconds
after midnight on the pump clock, and repeat every 24 h. A single bolus is a span from when it is
started, after which the pump stops. The pump controller, the refill projection and the patient
model all consume these segments, so every part agrees on what a program delivers.

A flex step's dose is a rate written per day ("600 mcg/day" during 08:00-12:00 delivers
600 x 4/24 = 100 mcg). That convention is where the real-world "60 mcg every hour instead of once
a morning" error came from, so :func:`describe_segments` shows both mcg/h and mcg/day.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from openitb.devices import PumpProfile
from openitb.errors import InvalidInput
from openitb.units import (
    Hours,
    McgPerDay,
    McgPerMl,
    Micrograms,
    Milliliters,
    MlPerDay,
    Quantity,
    parse,
)

DAY_S = 86_400
MAX_FLEX_STEPS = 24


class Mode(str, Enum):
    CONTINUOUS = "continuous"
    FLEX = "flex"
    SINGLE_BOLUS = "single_bolus"
    PERIODIC_BOLUS = "periodic_bolus"


@dataclass(frozen=True)
class RateSegment:
    """Dose rate ``dose_per_day`` from ``start_s`` to ``end_s`` (seconds, end exclusive)."""

    start_s: int
    end_s: int
    dose_per_day: McgPerDay

    @property
    def seconds(self) -> int:
        return self.end_s - self.start_s

    @property
    def dose(self) -> Micrograms:
        return Micrograms(self.dose_per_day.value * self.seconds / DAY_S)


def exact(q: Quantity) -> str:
    """Text for a file or a wire: every digit of the float, so a round trip is lossless."""
    return f"{q.value!r} {q.symbol}"


def format_time_of_day(seconds: int) -> str:
    seconds %= DAY_S
    return f"{seconds // 3600:02d}:{(seconds % 3600) // 60:02d}"


_TIME_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


def parse_time_of_day(text: object, field: str) -> int:
    """"HH:MM" (00:00 to 23:59) -> seconds after midnight."""
    if isinstance(text, str):
        m = _TIME_RE.match(text)
        if m:
            h, mi = int(m.group(1)), int(m.group(2))
            if 0 <= h <= 23 and 0 <= mi <= 59:
                return h * 3600 + mi * 60
    raise InvalidInput(field, text, "a time of day 'HH:MM' from 00:00 to 23:59")


@dataclass(frozen=True)
class Continuous:
    dose_per_day: McgPerDay
    mode: Mode = Mode.CONTINUOUS
    repeats_daily: bool = True

    def segments(self) -> tuple[RateSegment, ...]:
        return (RateSegment(0, DAY_S, self.dose_per_day),)

    def daily_dose(self) -> Micrograms:
        return Micrograms(self.dose_per_day.value)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "dose": exact(self.dose_per_day)}


@dataclass(frozen=True)
class FlexStep:
    start_s: int
    dose_per_day: McgPerDay


@dataclass(frozen=True)
class Flex:
    """1 to 24 steps, each from its start to the next step's start; the last wraps to the first."""

    steps: tuple[FlexStep, ...]
    mode: Mode = Mode.FLEX
    repeats_daily: bool = True

    def __post_init__(self) -> None:
        _check_steps(self.steps)

    def segments(self) -> tuple[RateSegment, ...]:
        out: list[RateSegment] = []
        n = len(self.steps)
        first = self.steps[0].start_s
        if first > 0:  # the last step runs over midnight until the first step starts
            out.append(RateSegment(0, first, self.steps[-1].dose_per_day))
        for i, step in enumerate(self.steps):
            end = self.steps[i + 1].start_s if i + 1 < n else DAY_S
            out.append(RateSegment(step.start_s, end, step.dose_per_day))
        return tuple(_merge([s for s in out if s.seconds > 0]))

    def daily_dose(self) -> Micrograms:
        return Micrograms(sum(s.dose.value for s in self.segments()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "steps": [
                {"start": format_time_of_day(s.start_s), "dose": exact(s.dose_per_day)}
                for s in self.steps
            ],
        }


def _check_steps(steps: tuple[FlexStep, ...]) -> None:
    if not 1 <= len(steps) <= MAX_FLEX_STEPS:
        raise InvalidInput("steps", len(steps), f"a flex program has 1 to {MAX_FLEX_STEPS} steps")
    for i in range(1, len(steps)):
        if steps[i].start_s <= steps[i - 1].start_s:
            raise InvalidInput(
                f"steps[{i}].start",
                format_time_of_day(steps[i].start_s),
                f"steps must be in increasing order of start time; step {i - 1} starts at "
                f"{format_time_of_day(steps[i - 1].start_s)}",
            )


@dataclass(frozen=True)
class SingleBolus:
    """One bolus delivered over ``duration`` from when the program starts; then the pump stops."""

    bolus: Micrograms
    duration: Hours
    mode: Mode = Mode.SINGLE_BOLUS
    repeats_daily: bool = False

    def __post_init__(self) -> None:
        _check_bolus_duration(self.duration, "duration")

    @property
    def duration_s(self) -> int:
        return round(self.duration.value * 3600)

    def segments(self) -> tuple[RateSegment, ...]:
        return (RateSegment(0, self.duration_s, _bolus_rate(self.bolus, self.duration_s)),)

    def daily_dose(self) -> Micrograms:
        return self.bolus

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "bolus": exact(self.bolus), "duration": exact(self.duration)}


@dataclass(frozen=True)
class ScheduledBolus:
    at_s: int
    bolus: Micrograms
    duration: Hours

    @property
    def duration_s(self) -> int:
        return round(self.duration.value * 3600)


@dataclass(frozen=True)
class PeriodicBolus:
    """A basal daily rate plus boluses at set times of day, each on top of the basal rate."""

    dose_per_day: McgPerDay
    boluses: tuple[ScheduledBolus, ...]
    mode: Mode = Mode.PERIODIC_BOLUS
    repeats_daily: bool = True

    def __post_init__(self) -> None:
        if not 1 <= len(self.boluses) <= MAX_FLEX_STEPS:
            raise InvalidInput(
                "boluses", len(self.boluses), f"1 to {MAX_FLEX_STEPS} boluses a day"
            )
        spans: list[tuple[int, int, int]] = []
        for i, b in enumerate(self.boluses):
            _check_bolus_duration(b.duration, f"boluses[{i}].duration")
            spans.append((b.at_s, b.at_s + b.duration_s, i))
        spans.sort()
        for (_s0, e0, i0), (s1, _e1, i1) in zip(spans, spans[1:], strict=False):
            if s1 < e0:
                raise InvalidInput(
                    f"boluses[{i1}].at",
                    format_time_of_day(s1),
                    f"boluses must not overlap; bolus {i0} runs until {format_time_of_day(e0)}",
                )
        if spans and spans[-1][1] - DAY_S > spans[0][0]:
            raise InvalidInput(
                f"boluses[{spans[-1][2]}].duration",
                format_time_of_day(spans[-1][1]),
                f"boluses must not overlap; it runs past midnight into bolus {spans[0][2]}",
            )

    def segments(self) -> tuple[RateSegment, ...]:
        # Extra rate per second-of-day, built from breakpoints (bolus spans may cross midnight).
        extra: list[tuple[int, int, float]] = []
        for b in self.boluses:
            rate = _bolus_rate(b.bolus, b.duration_s).value
            start, end = b.at_s, b.at_s + b.duration_s
            if end <= DAY_S:
                extra.append((start, end, rate))
            else:
                extra.append((start, DAY_S, rate))
                extra.append((0, end - DAY_S, rate))
        points = sorted({0, DAY_S, *(s for s, _, _ in extra), *(e for _, e, _ in extra)})
        out: list[RateSegment] = []
        for a, b2 in zip(points, points[1:], strict=False):
            add = sum(r for s, e, r in extra if s <= a and b2 <= e)
            out.append(RateSegment(a, b2, McgPerDay(self.dose_per_day.value + add)))
        return tuple(_merge(out))

    def daily_dose(self) -> Micrograms:
        return Micrograms(self.dose_per_day.value + sum(b.bolus.value for b in self.boluses))

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "dose": exact(self.dose_per_day),
            "boluses": [
                {"at": format_time_of_day(b.at_s), "bolus": exact(b.bolus), "duration": exact(b.duration)}
                for b in self.boluses
            ],
        }


Prescription = Continuous | Flex | SingleBolus | PeriodicBolus


def _merge(segs: list[RateSegment]) -> list[RateSegment]:
    out: list[RateSegment] = []
    for s in segs:
        if out and out[-1].dose_per_day == s.dose_per_day and out[-1].end_s == s.start_s:
            out[-1] = RateSegment(out[-1].start_s, s.end_s, s.dose_per_day)
        else:
            out.append(s)
    return out


def _bolus_rate(bolus: Micrograms, duration_s: int) -> McgPerDay:
    return McgPerDay(bolus.value * DAY_S / duration_s)


def _check_bolus_duration(duration: Hours, field: str) -> None:
    seconds = round(duration.value * 3600)
    if not 60 <= seconds <= DAY_S:
        raise InvalidInput(field, str(duration), "a bolus lasts from 1 min to 24 h")


# Daily amounts ------------------------------------------------------------------------------
def daily_dose(p: Prescription) -> Micrograms:
    """Dose delivered per 24 h (a single bolus: the bolus)."""
    return p.daily_dose()


def average_dose_rate(p: Prescription) -> McgPerDay:
    return McgPerDay(p.daily_dose().value)


def daily_volume(p: Prescription, concentration: McgPerMl) -> Milliliters:
    return p.daily_dose() / concentration  # type: ignore[no-any-return]


def flow_of(dose_rate: McgPerDay, concentration: McgPerMl) -> MlPerDay:
    return dose_rate / concentration  # type: ignore[no-any-return]


# Validation against a pump ----------------------------------------------------------------
def validate_for_pump(p: Prescription, profile: PumpProfile, concentration: McgPerMl) -> None:
    """Refuse a program whose flow at any moment lies outside the pump's limits."""
    lo, hi = profile.min_flow.value, profile.max_flow.value
    for seg in p.segments():
        flow = seg.dose_per_day.value / concentration.value
        where = (
            f"from {format_time_of_day(seg.start_s)} to "
            f"{format_time_of_day(seg.end_s) if seg.end_s < DAY_S else '24:00'}"
            if p.repeats_daily
            else "during the bolus"
        )
        if flow < lo - 1e-12 or flow > hi + 1e-12:
            raise InvalidInput(
                "prescription",
                f"{seg.dose_per_day} {where} = {flow:.4g} mL/day at {concentration}",
                f"the {profile.name} pump moves {lo:g} to {hi:g} mL/day",
            )


def describe_segments(p: Prescription) -> list[dict[str, Any]]:
    """Each segment with its rate per hour and per day and the dose it delivers."""
    return [
        {
            "start": format_time_of_day(s.start_s),
            "end": format_time_of_day(s.end_s) if s.end_s < DAY_S else "24:00",
            "mcg_per_hour": s.dose_per_day.value / 24.0,
            "mcg_per_day": s.dose_per_day.value,
            "dose_mcg": s.dose.value,
        }
        for s in p.segments()
    ]


# Parsing from TOML / JSON documents ----------------------------------------------------------
def parse_prescription(doc: Mapping[str, Any]) -> Prescription:
    """Build a prescription from the documented schema (docs/prescriptions.md)."""
    if not isinstance(doc, Mapping):
        raise InvalidInput("prescription", doc, "a table with a 'mode' key")
    mode_text = doc.get("mode")
    try:
        mode = Mode(mode_text)
    except ValueError:
        raise InvalidInput(
            "mode", mode_text, "one of continuous, flex, single_bolus, periodic_bolus"
        ) from None
    allowed_keys = {
        Mode.CONTINUOUS: {"mode", "dose"},
        Mode.FLEX: {"mode", "steps"},
        Mode.SINGLE_BOLUS: {"mode", "bolus", "duration"},
        Mode.PERIODIC_BOLUS: {"mode", "dose", "boluses"},
    }[mode]
    extra = set(doc) - allowed_keys
    if extra:
        raise InvalidInput(
            ", ".join(sorted(extra)), "present",
            f"a {mode.value} prescription takes only {', '.join(sorted(allowed_keys))}",
        )
    if mode is Mode.CONTINUOUS:
        return Continuous(parse(_req(doc, "dose"), McgPerDay, "dose"))
    if mode is Mode.SINGLE_BOLUS:
        return SingleBolus(
            parse(_req(doc, "bolus"), Micrograms, "bolus"),
            parse(_req(doc, "duration"), Hours, "duration"),
        )
    if mode is Mode.FLEX:
        raw = _req(doc, "steps")
        if not isinstance(raw, list) or not raw:
            raise InvalidInput("steps", raw, "a list of 1 to 24 [[steps]] tables")
        steps = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                raise InvalidInput(f"steps[{i}]", item, "a table with start and dose")
            bad = set(item) - {"start", "dose", "end"}
            if bad:
                raise InvalidInput(f"steps[{i}]", sorted(bad), "a step takes start, dose, end")
            steps.append(
                FlexStep(
                    parse_time_of_day(item.get("start"), f"steps[{i}].start"),
                    parse(item.get("dose"), McgPerDay, f"steps[{i}].dose"),
                )
            )
        # An explicit "end" must meet the next start (the last wraps to the first): no gaps and
        # no overlaps, so the steps cover the 24 h exactly once.
        for i, item in enumerate(raw):
            if "end" not in item:
                continue
            end_text = item["end"]
            end = 0 if end_text == "24:00" else parse_time_of_day(end_text, f"steps[{i}].end")
            nxt = steps[(i + 1) % len(steps)].start_s
            if end != nxt:
                start = steps[i].start_s
                gap = (end - start) % DAY_S < (nxt - start) % DAY_S or (nxt - start) % DAY_S == 0
                raise InvalidInput(
                    f"steps[{i}].end",
                    end_text,
                    f"{'a gap' if gap else 'an overlap'}: step {i} must end when the next step "
                    f"starts ({format_time_of_day(nxt)}); steps must cover the 24 h exactly once",
                )
        return Flex(tuple(steps))
    raw = _req(doc, "boluses")
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("boluses", raw, "a list of [[boluses]] tables with at, bolus, duration")
    boluses = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise InvalidInput(f"boluses[{i}]", item, "a table with at, bolus, duration")
        boluses.append(
            ScheduledBolus(
                parse_time_of_day(item.get("at"), f"boluses[{i}].at"),
                parse(item.get("bolus"), Micrograms, f"boluses[{i}].bolus"),
                parse(item.get("duration"), Hours, f"boluses[{i}].duration"),
            )
        )
    return PeriodicBolus(parse(_req(doc, "dose"), McgPerDay, "dose"), tuple(boluses))


def _req(doc: Mapping[str, Any], key: str) -> Any:
    if key not in doc:
        raise InvalidInput(key, None, f"required for a {doc.get('mode')} prescription")
    return doc[key]
