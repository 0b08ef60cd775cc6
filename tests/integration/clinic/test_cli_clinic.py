"""`itb users create` and `itb serve --check` against a temporary database."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from openitb.cli import app


def test_first_admin_then_serve_check(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    runner = CliRunner()
    r = runner.invoke(app, ["users", "create", "alice", "--role", "admin", "--database-url", url],
                      input="a-long-password\na-long-password\n")
    assert r.exit_code == 0, r.output
    assert "created alice (admin)" in r.output
    bad = runner.invoke(app, ["users", "create", "bob", "--role", "wizard", "--database-url",
                              url], input="a-long-password\na-long-password\n")
    assert bad.exit_code == 2 and "role" in bad.output
    again = runner.invoke(app, ["users", "create", "alice", "--role", "nurse",
                                "--database-url", url],
                          input="a-long-password\na-long-password\n")
    assert again.exit_code == 1 and "taken" in again.output
    check = runner.invoke(app, ["serve", "--check", "--database-url", url])
    assert check.exit_code == 0 and "migrated" in check.output
    demo = runner.invoke(app, ["serve", "--demo", "--check", "--database-url", url])
    assert demo.exit_code == 1 and "real clinic" in demo.output


def test_serve_demo_check_seeds_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    runner = CliRunner()
    first = runner.invoke(app, ["serve", "--demo", "--check", "--database-url", url])
    assert first.exit_code == 0 and "seeding the demo clinic" in first.output
    assert "nurse.kim" in first.output and "openitb-demo" in first.output
    second = runner.invoke(app, ["serve", "--demo", "--check", "--database-url", url])
    assert second.exit_code == 0 and "seeding" not in second.output
    bad = runner.invoke(app, ["serve", "--check", "--database-url", "mysql://x"])
    assert bad.exit_code == 2 and "OPENITB_DATABASE_URL" in bad.output
