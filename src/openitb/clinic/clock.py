"""The clinic clock: the wall clock, or in demo mode a clock stored in the database that the
demo moves forward (a day, a week, to the next alarm), running every virtual pump along."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from openitb.store.models import Setting

MODE_KEY = "clock_mode"
NOW_KEY = "clock_now"


def wall_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def clock_mode(session: Session) -> str:
    row = session.get(Setting, MODE_KEY)
    return row.value if row is not None else "wall"


def clinic_now(session: Session) -> datetime:
    """Now, by the clinic clock. Read fresh from the database by every unit of work (a worker
    process cannot see another move the demo clock), as one small query for both settings: the
    mode and the demo time are never cached."""
    values = dict(session.execute(select(Setting.key, Setting.value)
                                  .where(Setting.key.in_((MODE_KEY, NOW_KEY)))).tuples().all())
    if values.get(MODE_KEY) == "demo" and NOW_KEY in values:
        return datetime.fromisoformat(values[NOW_KEY]).astimezone(UTC)
    return wall_now()


def set_demo_clock(session: Session, now: datetime) -> None:
    """Set the demo clock: compare-and-set against the value this session read, so that two
    moves of the clock at once cannot both count (the second is a lost race: StaleDataError)."""
    from sqlalchemy import update
    from sqlalchemy.orm.attributes import set_committed_value
    from sqlalchemy.orm.exc import StaleDataError

    for key, value in ((MODE_KEY, "demo"), (NOW_KEY, now.astimezone(UTC).isoformat())):
        row = session.get(Setting, key)
        if row is None:
            session.add(Setting(key=key, value=value))
        elif row.value != value:
            done = session.execute(update(Setting).where(Setting.key == key,
                                                         Setting.value == row.value)
                                   .values(value=value))
            if getattr(done, "rowcount", 0) != 1:
                raise StaleDataError(f"the clinic setting {key} changed meanwhile")
            set_committed_value(row, "value", value)


def settings(session: Session) -> dict[str, str]:
    return {s.key: s.value for s in session.scalars(select(Setting))}
