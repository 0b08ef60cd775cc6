"""Every ```sh block of the README runs, verbatim but for temporary paths and free ports, and
every command in it must succeed: the README cannot rot.

Substitutions (the only changes to the README's text):
- ``/tmp/p1`` -> a temporary directory; ``7401`` and ``8000`` -> free ports;
- a server the README starts (``itb pump serve ... &``, ``itb serve --demo``, ``make run``) runs
  in the background on a free port (``--port``; for ``make run`` through ``SERVE_ARGS``, with the
  installed virtualenv taken as up to date, ``-o .venv/.installed``), is waited for until it
  answers, and is stopped when its block ends;
- ``itb fleet run`` takes the quick form the README offers (``--patients 500 --years 1``);
- ``. .venv/bin/activate`` activates the repository's virtualenv (the blocks run elsewhere);
- ``make test`` is not run: it runs this very test suite, which cannot recurse (skipped with
  that reason, below).
Each block runs in one ``bash -e`` in a temporary directory holding links to the repository's
``docs``, ``scenarios`` and ``studies`` (the README's relative paths), with ``.venv/bin`` first on
the PATH and the clinic database, session records and outputs in the temporary directory.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
QUICK_FLEET = "--patients 500 --years 1"
WAIT = r'''
wait_port() {  # wait until something answers on 127.0.0.1:$1 (at most 90 s)
  python3 - "$1" <<'PY'
import socket, sys, time
port = int(sys.argv[1]); end = time.time() + 90
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close(); sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit("nothing answered on port %d" % port)
PY
}
wait_http() {  # the clinic answers HTTP on $1
  wait_port "$1"
  python3 - "$1" <<'PY'
import sys, time, urllib.request
port = int(sys.argv[1]); end = time.time() + 90
while time.time() < end:
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/login" % port, timeout=5); sys.exit(0)
    except Exception:
        time.sleep(0.5)
sys.exit("the clinic did not answer on port %d" % port)
PY
}
PIDS=()
stop_all() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -- -"$p" 2>/dev/null; done; wait; }
trap stop_all EXIT
set -m  # each background server in its own process group, stopped as a whole
'''


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def commands(block: str) -> list[str]:
    """Logical command lines (backslash continuations joined), comment-only lines dropped."""
    out: list[str] = []
    cur = ""
    for line in block.splitlines():
        if not cur and line.strip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        if cur.strip():
            out.append(cur.strip())
        cur = ""
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rewrite(cmd: str, tmp: Path, ports: dict[str, int]) -> str:
    """The README's command as run here (see the module docstring)."""
    c = cmd.replace("/tmp/p1", str(tmp / "p1"))
    c = c.replace("7401", str(ports["7401"])).replace("8000", str(ports["8000"]))
    bare = c.split("#", 1)[0].strip()
    if bare == "make test":
        return ": make test skipped here: it runs this test suite, which cannot recurse"
    if bare == "make run":
        port = free_port()
        return (f"OPENITB_DATABASE_URL=sqlite:///{tmp}/run.db make -C {ROOT} -o .venv/.installed"
                f" run SERVE_ARGS='--port {port}' > {tmp}/make-run.log 2>&1 & PIDS+=($!); "
                f"wait_http {port}")
    if bare.startswith("itb serve --demo"):
        port = free_port()
        return (f"OPENITB_DATABASE_URL=sqlite:///{tmp}/demo.db {bare} --port {port} "
                f"> {tmp}/serve.log 2>&1 & PIDS+=($!); wait_http {port}")
    if bare.startswith("itb pump serve") and bare.endswith("&"):
        return f"{bare} PIDS+=($!); wait_port {ports['7401']}"
    if bare.startswith("itb fleet run"):
        return f"{bare} {QUICK_FLEET}"
    if bare == ". .venv/bin/activate":
        return f". {ROOT / '.venv' / 'bin' / 'activate'}"
    return c


def run_block(index: int, tmp: Path) -> subprocess.CompletedProcess[str]:
    text = README.read_text(encoding="utf-8")
    block = sh_blocks(text)[index]
    ports = {"7401": free_port(), "8000": free_port()}
    for d in ("docs", "scenarios", "studies"):
        (tmp / d).symlink_to(ROOT / d)
    lines = [rewrite(c, tmp, ports) for c in commands(block)]
    script = "set -eo pipefail\n" + WAIT + "\n".join(
        f"echo '>>> {i}' >&2\n{line}" for i, line in enumerate(lines)) + "\n"
    (tmp / "block.sh").write_text(script, encoding="utf-8")
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
           "OPENITB_SESSIONS": str(tmp / "sessions"), "PYTHONUNBUFFERED": "1"}
    env.pop("OPENITB_DATABASE_URL", None)
    return subprocess.run(["bash", str(tmp / "block.sh")], cwd=tmp, env=env, text=True,
                          capture_output=True, timeout=900)


BLOCKS = sh_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_shell_blocks_and_offers_the_quick_fleet_form() -> None:
    assert len(BLOCKS) >= 5
    text = README.read_text(encoding="utf-8")
    assert QUICK_FLEET in text  # the quick form the fleet command is run with here


def test_make_test_is_skipped_because_it_would_recurse() -> None:
    # `make test` runs this suite, this test included: running it here would never end.
    # Everything else in its block (`make run`) is run by test_readme_block.
    assert any("make test" in c for b in BLOCKS for c in commands(b))


def test_the_readme_says_where_itb_is_how_to_activate_and_what_serve_args_does() -> None:
    text = README.read_text(encoding="utf-8")
    assert ".venv/bin/itb" in text and ". .venv/bin/activate" in text
    assert 'make run SERVE_ARGS="--port' in text


def test_commands_are_split_and_rewritten_as_documented(tmp_path: Path) -> None:
    cmds = commands("a \\\n  b  # c\n# only a comment\nd &\n")
    assert cmds == ["a    b  # c", "d &"]
    ports = {"7401": 1234, "8000": 5678}
    assert rewrite("itb pump new --state /tmp/p1 --port 7401", tmp_path, ports) == \
        f"itb pump new --state {tmp_path}/p1 --port 1234"
    assert rewrite("make test   # runs", tmp_path, ports).startswith(": make test skipped")


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"block{i}")
def test_readme_block(index: int, tmp_path: Path) -> None:
    r = run_block(index, tmp_path)
    assert r.returncode == 0, (
        f"README sh block {index} failed (exit {r.returncode}); the last command started is "
        f"the last '>>> N' line\n--- stderr ---\n{r.stderr[-6000:]}\n--- stdout ---\n"
        f"{r.stdout[-3000:]}")


def _bolus_block() -> int:
    return next(i for i, b in enumerate(BLOCKS) if "itb ptm bolus" in b)


@pytest.mark.slow
def test_the_readme_patient_bolus_is_given(tmp_path: Path) -> None:
    """The README's `itb ptm bolus` is accepted as written: the block before it sets the patient
    limits (without them every bolus is refused, exit 1, "Bolus not given")."""
    block = commands(BLOCKS[_bolus_block()])
    limits = next(i for i, c in enumerate(block) if c.startswith("itb programmer patient-limits"))
    bolus = next(i for i, c in enumerate(block) if c.startswith("itb ptm bolus"))
    assert limits < bolus
    r = run_block(_bolus_block(), tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    assert f">>> {bolus}" in r.stderr and "Bolus not given" not in r.stderr
    assert re.search(r"Bolus of 10 mcg started \(ends [^)]+\); 1 of 2 today; next allowed at ",
                     r.stdout), r.stdout[-2000:]
