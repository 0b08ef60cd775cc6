"""`itb` loads only what the command it runs uses (behaviour, not timing)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from openitb.cli import COMMANDS, app, load_command

HEAVY = ("scipy", "dask", "distributed", "matplotlib", "sqlalchemy", "fastapi", "numpy",
         "pint", "uvicorn", "pandas", "pyarrow", "openitb.sim", "openitb.clinic",
         "openitb.store", "openitb.web", "openitb.physiology")

PROBE = """
import json, sys
from openitb.cli import app
argv = {argv!r}
try:
    if argv is not None:
        app(argv, standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(argv: list[str] | None) -> tuple[set[str], str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], check=True,
                         capture_output=True, text=True).stdout
    *printed, last = out.strip().splitlines()
    return set(json.loads(last)), "\n".join(printed)


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_calc_rate_loads_no_heavy_module_and_still_answers() -> None:
    modules, printed = _modules_after(["calc", "rate", "--dose", "400 mcg/day",
                                       "--concentration", "500 mcg/mL", "--json"])
    assert json.loads(printed)["flow_ml_per_day"] == pytest.approx(0.8)
    assert _heavy(modules) == []
    assert "openitb.commands.fleet" not in modules


def test_root_help_imports_no_command_module() -> None:
    modules, printed = _modules_after(["--help"])
    assert not any(m.startswith("openitb.commands") for m in modules)
    for name in COMMANDS:
        assert name in printed


def test_importing_the_cli_loads_only_the_framework() -> None:
    modules, _ = _modules_after(None)
    assert not any(m.startswith("openitb.commands") for m in modules)
    assert _heavy(modules) == []


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_registered_command_loads_under_its_name(name: str) -> None:
    command = load_command(name)
    assert command.name == name
    assert app.registered_callback is not None


def test_an_unknown_command_is_refused_with_exit_2() -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["nosuch"])
    assert result.exit_code == 2
    assert "nosuch" in result.output
