"""A served pump's state directory: identity, keys, controller memory, patient bolus book.

    DIR/pump.json            serial, profile, created (UTC)
    DIR/keys.json            the pump's per-role keys (mode 0600)
    DIR/clinician.key.json   key file for the clinician programmer (mode 0600)
    DIR/patient.key.json     key file for the patient therapy manager (mode 0600)
    DIR/memory/              controller snapshots + write-ahead journal (pump/memory.py)
    DIR/ptm.json             patient bolus limits and recent activations

Every file is written atomically: temporary file, fsync, rename, fsync of the directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from openitb.devices import default_catheter, get_pump
from openitb.errors import InvalidInput, RefusedOperation
from openitb.pump.controller import PumpController
from openitb.pump.memory import (
    FileMemory,
    MemoryCorrupted,
    MemoryUnrecoverable,
    MemoryWriteFailed,
)
from openitb.pump.patient_bolus import PatientBolusBook
from openitb.pumpservice import files
from openitb.telemetry.session import Role

KEY_LEN = 32
SERIAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")


def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


@dataclass(frozen=True)
class Identity:
    serial: str
    profile: str
    created: str


@dataclass(frozen=True)
class KeyFile:
    serial: str
    role: Role
    key: bytes


def check_serial(serial: str) -> str:
    if not SERIAL_RE.match(serial):
        raise InvalidInput("serial", serial, "1-40 letters, digits, '.', '_' or '-', starting "
                           "with a letter or digit")
    return serial


def create(directory: Path, profile: str, serial: str, now: datetime, seed: int | None = None,
           catheter_length_cm: float | None = None) -> tuple[Identity, dict[Role, bytes]]:
    """Manufacture a pump into an empty directory and make its keys; refuse to overwrite.
    ``catheter_length_cm``: the implanted (trimmed) catheter; default the catheter's full length."""
    get_pump(profile)
    check_serial(serial)
    cath = default_catheter()
    length = cath.check_length(cath.max_length_cm if catheter_length_cm is None
                               else catheter_length_cm)
    catheter_nl = round(cath.volume(length).value * 1_000_000)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (directory / "pump.json").exists():
        raise RefusedOperation(f"{directory} already holds pump; choose an empty directory",
                               code="exists")
    directory.chmod(0o700)  # it holds the keys (files.check_private)
    rng = np.random.default_rng(seed)
    controller = PumpController.manufacture(profile, now, rng, catheter_volume_nl=catheter_nl,
                                            memory=FileMemory(directory / "memory"))
    controller.checkpoint()  # the first snapshot: the base of the journal
    keys = {Role.CLINICIAN: secrets.token_bytes(KEY_LEN), Role.PATIENT: secrets.token_bytes(KEY_LEN)}
    ident = Identity(serial, profile, now.isoformat())
    atomic_write(directory / "keys.json",
                 json.dumps({"serial": serial, **{r.value: k.hex() for r, k in keys.items()}}),
                 0o600)
    for role, key in keys.items():
        atomic_write(directory / f"{role.value}.key.json",
                     json.dumps({"serial": serial, "role": role.value, "key": key.hex()}), 0o600)
    atomic_write(directory / "ptm.json", json.dumps(PatientBolusBook().to_dict()))
    # pump.json last: its presence marks a complete pump.
    atomic_write(directory / "pump.json", json.dumps(ident.__dict__))
    return ident, keys


def load_identity(directory: Path) -> Identity:
    d = files.load(directory / "pump.json", files.IdentityDoc, "state")
    return Identity(d.serial, d.profile, d.created)


def _key(hex_text: Any, what: str) -> bytes:
    try:
        key = bytes.fromhex(hex_text)
    except (TypeError, ValueError):
        raise InvalidInput(what, "<hidden>", f"{KEY_LEN * 2} hex digits") from None
    if len(key) != KEY_LEN:
        raise InvalidInput(what, "<hidden>", f"{KEY_LEN * 2} hex digits")
    return key


def load_keys(directory: Path) -> dict[Role, bytes]:
    # files.py: the directory and the file must be private, the file of the KeysDoc schema.
    files.check_private(directory, "state")
    path = directory / "keys.json"
    files.check_private(path, "keys")
    d = files.load(path, files.KeysDoc, "keys")
    return {r: _key(getattr(d, r.value), f"keys.{r.value}") for r in Role}


def load_key_file(path: Path) -> KeyFile:
    files.check_private(path, "key_file")
    d = files.load(path, files.KeyFileDoc, "key_file")
    return KeyFile(d.serial, Role(d.role), _key(d.key, "key_file.key"))


LOCK_FILE = "serve.lock"


def lock_state(directory: Path) -> int:
    """Take the state directory for this process (an exclusive flock, released by the kernel
    when the process ends, SIGKILL included). Two pumps served from one directory would
    interleave their journals; the second is refused and nothing is touched. Returns the
    descriptor, to be kept open for as long as the pump is served."""
    check_writable(directory)  # the lock file is written there: the same refusal, first
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RefusedOperation(f"state directory {directory} is already served by another "
                               "process (`itb pump serve`): stop it first; nothing was touched",
                               code="in_use") from None
    return fd


def check_writable(directory: Path) -> None:
    """Refuse a state directory the pump cannot write (before anything is served): a pump that
    answers commands it cannot store would report changes that a restart undoes."""
    for d in (directory, directory / "memory"):
        try:
            FileMemory(d).check_writable()
        except MemoryWriteFailed as exc:
            raise RefusedOperation(f"state directory {exc}; the pump cannot store its state, so "
                                   "it will not serve. Make it writable by this user (e.g. "
                                   f"chmod u+w {d}) and serve again", code="unwritable") from None


def load_controller(directory: Path, ident: Identity, now: datetime) -> PumpController:
    """The pump's last known good state from its memory (see pump/memory.py), or a refusal
    naming the files when none is left. Writes a fresh snapshot, so the directory must be
    writable (``check_writable``)."""
    memory = FileMemory(directory / "memory")
    try:
        return PumpController.restore(memory, ident.profile, now)
    except (MemoryUnrecoverable, MemoryCorrupted) as exc:
        raise RefusedOperation(f"{exc}", code="memory_unrecoverable") from None
    except MemoryWriteFailed as exc:
        raise RefusedOperation(f"the pump's memory cannot be written ({exc}); it will not "
                               "serve", code="unwritable") from None


def load_book(directory: Path) -> PatientBolusBook:
    # A ptm.json of the wrong shape is refused (files.PtmDoc), never read as "no limits".
    path = directory / "ptm.json"
    d = files.load(path, files.PtmDoc, "ptm")
    try:
        return PatientBolusBook.from_dict(d.model_dump())
    except ValueError as exc:
        raise InvalidInput("ptm", str(path), f"patient bolus limits within range ({exc})"
                           ) from None


def save_book(directory: Path, book: PatientBolusBook) -> None:
    atomic_write(directory / "ptm.json", json.dumps(book.to_dict()))
