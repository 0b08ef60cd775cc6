"""Service clocks and opening a served pump from its state directory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from openitb.errors import InvalidInput
from openitb.pumpservice import store
from openitb.pumpservice.clock import ManualClock, VirtualClock
from openitb.pumpservice.runner import open_service

T0 = datetime(2026, 2, 1, tzinfo=UTC)


def test_virtual_clock_runs_at_its_speed() -> None:
    ticks = iter([100.0, 100.0, 110.0])
    clock = VirtualClock(T0, speed=360.0, monotonic=lambda: next(ticks))
    assert clock() == T0
    assert clock() == T0 + timedelta(hours=1)


def test_clocks_refuse_naive_times_and_running_backwards() -> None:
    with pytest.raises(ValueError):
        VirtualClock(datetime(2026, 1, 1), 1.0)
    with pytest.raises(ValueError):
        VirtualClock(T0, 0.0)
    clock = ManualClock(T0)
    with pytest.raises(ValueError):
        clock.advance(timedelta(seconds=-1))


def test_open_service_virtual_starts_at_the_pump_time(tmp_path: Path) -> None:
    store.create(tmp_path / "p", "itb-20", "S-1", T0, seed=1)
    service, keys = open_service(tmp_path / "p", "virtual", 100.0)
    assert service.serial == "S-1" and set(keys) == set(store.load_keys(tmp_path / "p"))
    assert abs((service.clock() - T0).total_seconds()) < 60
    with pytest.raises(InvalidInput):
        open_service(tmp_path / "p", "real", 5.0)
    with pytest.raises(InvalidInput):
        open_service(tmp_path / "p", "sundial")
    with pytest.raises(InvalidInput):
        open_service(tmp_path / "missing")


def test_bad_key_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "k.json"
    bad.write_text('{"role": "janitor", "key": "00"}')
    bad.chmod(0o600)
    with pytest.raises(InvalidInput):
        store.load_key_file(bad)
    bad.write_text('{"role": "clinician", "key": "abcd"}')
    with pytest.raises(InvalidInput) as exc:
        store.load_key_file(bad)
    assert "64 hex digits" in str(exc.value) and "abcd" not in str(exc.value)


def test_a_trimmed_catheter_is_the_path_the_pump_serves(tmp_path: Path) -> None:
    store.create(tmp_path / "full", "itb-20", "S-1", T0, seed=1)
    store.create(tmp_path / "trim", "itb-20", "S-2", T0, seed=1, catheter_length_cm=60.0)
    full, _ = open_service(tmp_path / "full", "virtual", 1.0)
    trim, _ = open_service(tmp_path / "trim", "virtual", 1.0)
    # 0.140 mL inside the pump + 0.0026 mL/cm of catheter
    assert full.pump.catheter.volume_nl == 140_000 + 110 * 2600
    assert trim.pump.catheter.volume_nl == 140_000 + 60 * 2600
    with pytest.raises(InvalidInput, match="catheter"):
        store.create(tmp_path / "bad", "itb-20", "S-3", T0, catheter_length_cm=150.0)
    assert not (tmp_path / "bad" / "pump.json").exists()
