"""Schemas of the pump's non-volatile memory: the sealed snapshot and each journal record.

Every file the pump reads back is validated here before anything of it is used; an invalid one
is named with what is wrong (``describe``). Strict types: no bool for an int, no text for a
number. The controller still builds its objects from the original document (the schema only
checks; it never rewrites a value).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

HEX64 = r"^[0-9a-f]{64}$"
HEX16 = r"^[0-9a-f]{16}$"
SNAPSHOT_FORMAT = 2


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class CatheterState(_Strict):
    volume_nl: int = Field(ge=0)
    internal_nl: int = Field(ge=0)
    ml_per_cm: float = Field(gt=0)
    fault: str
    fraction: float
    position_cm: float
    split_nl: int = Field(ge=0)
    parcels: list[Annotated[list[float], Field(min_length=2, max_length=2)]]  # [nL, mcg/mL]


class AlarmState(_Strict):
    kind: str
    raised_at: str
    reason: str
    acknowledged_at: str | None
    cleared_at: str | None
    critical: bool


class LogEntry(_Strict):
    seq: int = Field(ge=0)
    at: str
    kind: str
    data: dict[str, Any]
    prev: str = Field(pattern=HEX64)
    hash: str = Field(pattern=HEX64)


class LogState(_Strict):
    capacity: int = Field(ge=1)
    entries: list[LogEntry]
    dropped: int = Field(ge=0)
    anchor: str = Field(pattern=HEX64)
    head: str = Field(pattern=HEX64)
    next_seq: int = Field(ge=0)


class ControllerState(_Strict):
    version: Literal[1]
    profile: str
    t: int
    born: int
    clock_offset: int
    true_stroke_nl: int = Field(gt=0)
    catheter: CatheterState
    reservoir_true_nl: int = Field(ge=0)
    reservoir_estimate_nl: int = Field(ge=0)
    reservoir_conc: float = Field(ge=0)
    low_threshold_nl: int = Field(ge=0)
    prescription: dict[str, Any] | None
    program_conc: float = Field(ge=0)
    program_started: int
    running: bool
    empty: bool
    stalled: bool
    recovery_until: int | None
    awaiting_interrogation: bool
    eos: bool
    bolus: Annotated[list[str | int | bool], Field(min_length=3, max_length=3)] | None
    acc: str
    strokes: int = Field(ge=0)
    battery_used_uah: float = Field(ge=0)
    filled_nl: int = Field(ge=0)
    withdrawn_nl: int = Field(ge=0)
    delivered_nl: int = Field(ge=0)
    delivered_mcg: float = Field(ge=0)
    tissue_nl: int = Field(ge=0)
    tissue_mcg: float = Field(ge=0)
    alarms: list[AlarmState]
    log: LogState
    state_version: int = Field(ge=0)  # writes counted by the pump (the kernel's precondition)


class SnapshotDoc(_Strict):
    """``snapshot.json``: the controller state after journal record ``seq``, sealed."""

    format: Literal[2]
    seq: int = Field(ge=0)
    state: ControllerState
    sha256: str = Field(pattern=HEX64)


class _Record(_Strict):
    seq: int = Field(ge=1)
    before: str = Field(pattern=HEX16)  # fingerprint of the state the record applies to
    sum: str = Field(pattern=HEX16)  # checksum of the line without this field
    # Reads answered since the record before (their radio charge, applied before this record;
    # a read writes nothing of its own, pump/controller.py ``read``).
    reads: int = Field(default=0, ge=0)


class AdvanceRecord(_Record):
    op: Literal["advance"]
    to: int


class CommandRecord(_Record):
    op: Literal["command"]
    command: dict[str, Any]


class NoteRecord(_Record):
    op: Literal["note"]
    kind: str = Field(min_length=1, max_length=64)
    data: dict[str, Any]
    changes_state: bool = False  # a write outside the controller: bumps state_version


class AlarmRecord(_Record):
    op: Literal["memory_alarm"]
    reason: str = Field(max_length=4000)


Record = Annotated[AdvanceRecord | CommandRecord | NoteRecord | AlarmRecord,
                   Field(discriminator="op")]
RECORD = TypeAdapter(Record)


def describe(exc: ValidationError, limit: int = 3) -> str:
    """What is wrong, field by field, without echoing a whole (possibly huge) value."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "document"
        parts.append(f"{where}: {err['msg']}"[:200])
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
