"""A PostgreSQL database for a benchmark: a fresh database on the server OPENITB_TEST_POSTGRES
names, or a throwaway server (initdb in a temporary directory, a free port, fsync off, as
.ci/postgres.sh starts one). ``None`` with the reason when there is neither."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindir() -> str | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin")):
        if os.access(os.path.join(d, "postgres"), os.X_OK):
            return d
    found = shutil.which("postgres")
    return os.path.dirname(found) if found else None


def _fresh_database(server_url: str, name: str) -> str:
    import psycopg

    base = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}"


@contextlib.contextmanager
def database(name: str = "openitb_bench") -> Iterator[tuple[str | None, str]]:
    """(url, where) of an empty database, or (None, why not)."""
    given = os.environ.get("OPENITB_TEST_POSTGRES")
    if given:
        try:
            url: str | None = _fresh_database(given, name)
            where = "the server OPENITB_TEST_POSTGRES names"
        except Exception as exc:  # noqa: BLE001 - reported, never silent
            url, where = None, f"OPENITB_TEST_POSTGRES={given}: {exc}"
        yield url, where
        return
    bindir = _bindir()
    if bindir is None:
        yield None, "no PostgreSQL server binary (install postgresql or set OPENITB_TEST_POSTGRES)"
        return
    tmp = tempfile.mkdtemp(prefix="openitb-bench-pg-")
    run_as: list[str] = []
    if os.geteuid() == 0:
        subprocess.run(["sh", "-c", "id postgres >/dev/null 2>&1 || useradd --system "
                        "--no-create-home postgres"], check=True)
        shutil.chown(tmp, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(tmp, "data")
    port = _free_port()
    started = False
    try:
        try:
            subprocess.run([*run_as, f"{bindir}/initdb", "-D", data, "-U", "openitb",
                            "--auth=trust", "-E", "UTF8"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run([*run_as, f"{bindir}/pg_ctl", "-D", data, "-l", f"{tmp}/server.log",
                            "-w", "-o", f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 "
                            "-c fsync=off -c max_connections=100", "start"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            started = True
            url = _fresh_database(f"postgresql://openitb@127.0.0.1:{port}/postgres", name)
            where = f"a throwaway server ({bindir}, port {port})"
        except Exception as exc:  # noqa: BLE001 - reported, never silent
            url, where = None, f"could not start a throwaway server: {exc}"
        yield url, where
    finally:
        if started:
            subprocess.run([*run_as, f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "-w",
                            "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
