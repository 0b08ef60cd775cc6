"""`itb pump serve` as a real process on loopback, driven by `itb programmer` and `itb ptm`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openitb.cli import app

runner = CliRunner()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    state = tmp_path / "pump"
    r = runner.invoke(app, ["pump", "new", "--state", str(state), "--profile", "itb-20",
                            "--serial", "SRV-1", "--start", "2026-05-04T08:00:00+00:00",
                            "--json"])
    assert r.exit_code == 0, r.output
    proc = subprocess.Popen(
        [sys.executable, "-m", "openitb.cli", "pump", "serve", "--state", str(state),
         "--port", "0", "--clock", "virtual", "--speed", "3600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        yield f"127.0.0.1:{ready['port']}", state
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_implant_then_interrogate_on_a_virtual_clock(served: tuple[str, Path],
                                                           tmp_path: Path) -> None:
    address, state = served
    key = str(state / "clinician.key.json")
    rec = str(tmp_path / "rec.json")
    r = runner.invoke(app, ["programmer", "implant", "--pump", address, "--key-file", key,
                            "--dose", "200 mcg/day", "--product", "Lioresal", "--concentration",
                            "500 mcg/mL", "--volume", "18 mL", "--origin", "cerebral", "--yes",
                            "--json", "--record", rec])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["programmer", "interrogate", "--pump", address, "--key-file", key,
                            "--json", "--record", rec])
    assert r.exit_code == 0, r.output
    view = json.loads(r.stdout)
    assert view["state"] == "running" and view["serial"] == "SRV-1"
    assert view["reservoir_estimate_ml"] < 18  # the virtual clock runs an hour a second
    r = runner.invoke(app, ["ptm", "status", "--pump", address, "--key-file",
                            str(state / "patient.key.json"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["refill_by"]


def test_unknown_concentration_refused_before_anything_is_sent(served: tuple[str, Path],
                                                                tmp_path: Path) -> None:
    address, state = served
    r = runner.invoke(app, ["programmer", "implant", "--pump", address, "--key-file",
                            str(state / "clinician.key.json"), "--dose", "200 mcg/day",
                            "--product", "Gablofen", "--concentration", "5000 mcg/mL",
                            "--volume", "18 mL", "--origin", "spinal", "--yes", "--json",
                            "--record", str(tmp_path / "r.json")])
    assert r.exit_code == 2 and "no baclofen product has this concentration" in r.output


def test_ptm_status_explains_an_alarm_in_plain_words(served: tuple[str, Path],
                                                     tmp_path: Path) -> None:
    address, state = served
    key = str(state / "clinician.key.json")
    # A small fill raises the low-reservoir alarm at once.
    r = runner.invoke(app, ["programmer", "implant", "--pump", address, "--key-file", key,
                            "--dose", "200 mcg/day", "--product", "Gablofen", "--concentration",
                            "500 mcg/mL", "--volume", "1.5 mL", "--origin", "spinal", "--yes",
                            "--json", "--record", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ptm", "status", "--pump", address, "--key-file",
                            str(state / "patient.key.json")])
    assert r.exit_code == 0, r.output
    assert "reservoir is low" in r.output and "Call your ITB clinic" in r.output


def test_ptm_can_silence_but_the_alarm_stays_active(served: tuple[str, Path],
                                                    tmp_path: Path) -> None:
    address, state = served
    r = runner.invoke(app, ["programmer", "implant", "--pump", address, "--key-file",
                            str(state / "clinician.key.json"), "--dose", "200 mcg/day",
                            "--product", "Gablofen", "--concentration", "500 mcg/mL",
                            "--volume", "1.5 mL", "--origin", "spinal", "--yes", "--json",
                            "--record", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    pkey = str(state / "patient.key.json")
    r = runner.invoke(app, ["ptm", "silence", "--pump", address, "--key-file", pkey, "--kind",
                            "low_reservoir", "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ptm", "status", "--pump", address, "--key-file", pkey, "--json"])
    kinds = [a["kind"] for a in json.loads(r.stdout)["alarms"]]
    assert "low_reservoir" in kinds


def test_text_mode_shows_the_review_and_writes_nothing_unconfirmed(served: tuple[str, Path],
                                                                    tmp_path: Path) -> None:
    address, state = served
    key = str(state / "clinician.key.json")
    rec = tmp_path / "rec.json"
    r = runner.invoke(app, ["programmer", "implant", "--pump", address, "--key-file", key,
                            "--dose", "200 mcg/day", "--product", "Gablofen", "--concentration",
                            "500 mcg/mL", "--volume", "18 mL", "--origin", "spinal",
                            "--record", str(rec)])
    assert r.exit_code == 1
    assert "Review: implant" in r.output and "priming bolus" in r.output
    assert "not confirmed" in r.output
    doc = json.loads(rec.read_text())
    assert doc["changes"] == [] and doc["refusals"][0]["code"] == "unconfirmed"
    r = runner.invoke(app, ["programmer", "interrogate", "--pump", address, "--key-file", key,
                            "--json", "--record", str(rec)])
    assert json.loads(r.stdout)["program"] is None
