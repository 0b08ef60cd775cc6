"""Non-volatile memory port: a write-ahead journal of the controller's inputs, plus snapshots.

The controller is deterministic, so its state is a snapshot plus the inputs that followed it:
each ``advance`` target, each command, each note. Every input is appended to the journal
*before* it is applied; a command that changes the pump is fsynced before it is applied (so
before it is acknowledged), and a failed write leaves the pump as it was. Reads and the passing
of time are appended without an fsync: a process crash keeps them (they are in the page cache);
a power loss may lose them, and they are recomputed from the clock on restore.

Files (``FileMemory``; ``InMemory`` holds the same bytes in RAM)::

    snapshot.json        {"format": 2, "seq": K, "state": {...}, "sha256": ...}: state after K
    snapshot.prev.json   the snapshot before it (recovery falls back to it)
    journal.jsonl        records K+1, K+2, ... one canonical JSON object a line
    journal.prev.jsonl   the records between the previous snapshot and the current one

A record is ``{"seq", "op", "before", ..., "sum"}``: ``before`` is a fingerprint of the state
it applies to (a replay that diverges is detected), ``sum`` a checksum of the line. Only the
last line can be torn (a crash mid-write: it was never acknowledged) and is dropped. Anything
else wrong is damage: recovery takes the newest snapshot from which the journal replays without
a gap, names every damaged file, keeps it aside (``*.damaged-N``) and raises the memory alarm.
If no good snapshot is left the pump refuses to serve; it never starts from factory state.

A snapshot is written every ``every`` records and on clean shutdown (``checkpoint``), not per
command: temporary file, fsync, hard link of the current one to ``.prev``, rename, fsync of the
directory; a crash between any two steps leaves a recoverable set.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from openitb.errors import OpenITBError
from openitb.pump.eventlog import canonical
from openitb.pump.memory_schema import RECORD, SNAPSHOT_FORMAT, SnapshotDoc, describe

SNAPSHOT, SNAPSHOT_PREV = "snapshot.json", "snapshot.prev.json"
JOURNAL, JOURNAL_PREV = "journal.jsonl", "journal.prev.jsonl"
DEFAULT_EVERY = 2000  # journal records between snapshots
MAX_LINE = 1_000_000  # bytes; a record is a few hundred


class MemoryCorrupted(OpenITBError):
    """A memory file is not what the pump wrote (named in the message)."""


class MemoryUnrecoverable(OpenITBError):
    """No good snapshot is left: the pump must not serve (it would start from nothing)."""


class MemoryWriteFailed(OpenITBError):
    """A journal or snapshot write failed; the input it carried was not applied."""


def seal(state: dict[str, Any], seq: int = 0) -> dict[str, Any]:
    return {"format": SNAPSHOT_FORMAT, "seq": seq, "state": state,
            "sha256": hashlib.sha256(canonical(state).encode()).hexdigest()}


def sealed(state: dict[str, Any], seq: int) -> bytes:
    """``canonical(seal(state, seq))``, encoding the state once."""
    text = canonical(state)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return (f'{{"format":{SNAPSHOT_FORMAT},"seq":{seq},"sha256":"{digest}","state":{text}}}'
            ).encode("ascii")


def unseal(data: bytes, name: str = SNAPSHOT) -> tuple[int, dict[str, Any]]:
    """``(seq, state)`` of a snapshot's bytes, or :class:`MemoryCorrupted` saying what is wrong."""
    if not data.strip():
        raise MemoryCorrupted(f"{name}: empty")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MemoryCorrupted(f"{name}: not JSON ({exc})"[:300]) from None
    try:
        SnapshotDoc.model_validate(doc)
    except ValidationError as exc:
        raise MemoryCorrupted(f"{name}: {describe(exc)}") from None
    if _state_digest(data, doc) != doc["sha256"]:
        raise MemoryCorrupted(f"{name}: checksum mismatch (the state was altered)")
    return doc["seq"], doc["state"]


def _state_digest(data: bytes, doc: dict[str, Any]) -> str:
    """SHA-256 of the state's canonical JSON. A snapshot as the pump writes it is canonical, its
    state last: hash those bytes as they are, without re-encoding 1 MB (a file laid out
    otherwise is re-encoded)."""
    head = (f'{{"format":{doc["format"]},"seq":{doc["seq"]},"sha256":"{doc["sha256"]}",'
            '"state":').encode()
    if data.startswith(head) and data.endswith(b"}"):
        return hashlib.sha256(data[len(head):-1]).hexdigest()
    return hashlib.sha256(canonical(doc["state"]).encode()).hexdigest()


def line_sum(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(body).encode()).hexdigest()[:16]


def parse_line(line: bytes) -> dict[str, Any]:
    """One journal record, validated (schema and checksum), or ValueError saying what is wrong."""
    if len(line) > MAX_LINE:
        raise ValueError(f"{len(line)} bytes (at most {MAX_LINE})")
    try:
        rec = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})"[:200]) from None
    try:
        RECORD.validate_json(line)
    except ValidationError as exc:
        raise ValueError(describe(exc)) from None
    body = {k: v for k, v in rec.items() if k != "sum"}
    if line_sum(body) != rec["sum"]:
        raise ValueError("checksum mismatch")
    out: dict[str, Any] = rec
    return out


@dataclass
class Recovery:
    """What :func:`recover` found: a base snapshot and the records to replay on it."""

    base: dict[str, Any]
    base_seq: int
    records: list[dict[str, Any]]
    damage: list[str] = field(default_factory=list)  # what is wrong, file by file
    damaged: list[str] = field(default_factory=list)  # names to keep aside

    @property
    def last_seq(self) -> int:
        return self.records[-1]["seq"] if self.records else self.base_seq


def _journal_records(name: str, data: bytes, damage: list[str], damaged: list[str],
                     where: str) -> list[dict[str, Any]]:
    out = []
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if not line:
            continue
        try:
            out.append(parse_line(line))
        except ValueError as exc:
            if last:
                break  # torn: the write never completed, so it was never acknowledged
            damage.append(f"{where}{name} line {i + 1}: {exc}")
            damaged.append(name)
            break  # nothing after a bad record can be replayed in order
    return out


def recover(read: Callable[[str], bytes | None], where: str = "") -> Recovery:
    """Find the newest state the files prove: a snapshot plus an unbroken run of records.

    ``read(name)`` gives a file's bytes or None when it does not exist; ``where`` prefixes the
    names in messages (the directory). Pure: changes nothing.
    """
    damage: list[str] = []
    damaged: list[str] = []
    bases: list[tuple[int, dict[str, Any]]] = []
    for name in (SNAPSHOT, SNAPSHOT_PREV):
        data = read(name)
        if data is None:
            if name == SNAPSHOT:
                damage.append(f"{where}{SNAPSHOT}: missing")
            continue
        try:
            bases.append(unseal(data, where + name))
        except MemoryCorrupted as exc:
            damage.append(str(exc))
            damaged.append(name)
    by_seq: dict[int, dict[str, Any]] = {}
    for name in (JOURNAL_PREV, JOURNAL):
        data = read(name)
        if data is None:
            if name == JOURNAL and bases:
                damage.append(f"{where}{JOURNAL}: missing")
            continue
        for rec in _journal_records(name, data, damage, damaged, where):
            seen = by_seq.get(rec["seq"])
            if seen is not None and seen["sum"] != rec["sum"]:
                damage.append(f"{where}{name}: record {rec['seq']} differs from an earlier copy")
                damaged.append(name)
                continue
            by_seq[rec["seq"]] = rec
    if not bases:
        raise MemoryUnrecoverable(
            "; ".join(damage) + ". No good snapshot is left, so the pump's state cannot be "
            "recovered; it will not start from factory settings. The files are untouched: "
            "restore the memory directory from a backup, or replace the pump")
    best: tuple[int, int, dict[str, Any]] | None = None
    for seq, state in bases:
        end = seq
        while end + 1 in by_seq:
            end += 1
        if best is None or end > best[1]:
            best = (seq, end, state)
    assert best is not None
    base_seq, end, state = best
    newest = max(by_seq, default=0)
    if newest > end:
        damage.append(f"journal records {end + 1} to {newest} cannot be replayed (a record "
                      f"before them is missing or damaged); the state after record {end} is "
                      "restored")
    return Recovery(state, base_seq, [by_seq[s] for s in range(base_seq + 1, end + 1)],
                    damage, sorted(set(damaged)))


def _aside(recovery: Recovery) -> list[str]:
    """Files to keep aside on resume: the damaged ones and, after any damage, both journals
    (records past the restored state must never be mistaken for new ones)."""
    if not recovery.damage:
        return []
    return sorted(set(recovery.damaged) | {JOURNAL, JOURNAL_PREV})


class MemoryPort(Protocol):
    """What the controller needs of non-volatile memory."""

    resumed: bool

    @property
    def blank(self) -> bool: ...
    def append(self, body: dict[str, Any], sync: bool) -> int: ...
    def due(self) -> bool: ...
    def checkpoint(self, state: dict[str, Any]) -> None: ...
    def recover(self) -> Recovery: ...
    def resume(self, recovery: Recovery) -> None: ...


_COMMAND_TEXT: dict[str, str] = {}


class _Journaled:
    """The bookkeeping both ports share: sequence numbers and when a snapshot is due."""

    def __init__(self, every: int) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.every = every
        self.seq = 0
        self.since = 0  # records since the last snapshot
        self.snapshots = 0
        self.resumed = False

    def _line(self, body: dict[str, Any]) -> tuple[int, bytes]:
        seq = self.seq + 1
        if body.get("op") == "command" and len(body) == 3:
            # The hot path (every read): the same canonical text, keys in sorted order, with
            # the command's own text computed once per distinct command.
            key = canonical(body["command"]) if body["command"]["args"] else None
            cmd_text = key or _COMMAND_TEXT.setdefault(body["command"]["name"],
                                                       canonical(body["command"]))
            text = (f'{{"before":"{body["before"]}","command":{cmd_text},"op":"command",'
                    f'"seq":{seq}}}')
        else:
            text = canonical({**body, "seq": seq})
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]  # = line_sum of the record
        return seq, f'{text[:-1]},"sum":"{digest}"}}\n'.encode("ascii")

    def due(self) -> bool:
        return self.since >= self.every

    def _resumed_at(self, seq: int) -> None:
        self.seq, self.since, self.resumed = seq, 0, True


class InMemory(_Journaled):
    """The same files and the same order of writes, held in RAM (tests, simulation).

    ``synced`` is how much of the journal an fsync has made durable: ``power_loss()`` drops the
    rest, as a power failure would; a process crash keeps everything written.
    """

    def __init__(self, every: int = DEFAULT_EVERY) -> None:
        super().__init__(every)
        self.files: dict[str, bytes] = {}
        self.synced = 0

    @property
    def blank(self) -> bool:
        return not self.files

    def append(self, body: dict[str, Any], sync: bool) -> int:
        seq, line = self._line(body)
        self.files[JOURNAL] = self.files.get(JOURNAL, b"") + line
        if sync:
            self.synced = len(self.files[JOURNAL])
        self.seq, self.since = seq, self.since + 1
        return seq

    def checkpoint(self, state: dict[str, Any]) -> None:
        if SNAPSHOT in self.files:
            self.files[SNAPSHOT_PREV] = self.files[SNAPSHOT]
        self.files[SNAPSHOT] = sealed(state, self.seq)
        if JOURNAL in self.files:
            self.files[JOURNAL_PREV] = self.files[JOURNAL]
        self.files[JOURNAL] = b""
        self.synced, self.since, self.resumed = 0, 0, True
        self.snapshots += 1

    def power_loss(self) -> None:
        self.files[JOURNAL] = self.files.get(JOURNAL, b"")[: self.synced]

    def recover(self) -> Recovery:
        return recover(self.files.get)

    def resume(self, recovery: Recovery) -> None:
        for name in _aside(recovery):
            if name in self.files:
                n = sum(1 for k in self.files if k.startswith(name + ".damaged-"))
                self.files[f"{name}.damaged-{n}"] = self.files.pop(name)
        self._resumed_at(recovery.last_seq)


Fault = Callable[[str], None]


def _no_fault(step: str) -> None:
    pass


class FileMemory(_Journaled):
    """The memory files in a directory. ``fault(step)`` runs before each write step; a test
    raises OSError there to fail the write at that step (the real files, the real syscalls)."""

    def __init__(self, directory: Path, every: int = DEFAULT_EVERY, fault: Fault = _no_fault
                 ) -> None:
        super().__init__(every)
        self.dir = Path(directory)
        self.snapshot_path = self.dir / SNAPSHOT
        self.journal_path = self.dir / JOURNAL
        self.fault = fault
        self._fd: int | None = None
        self._size = 0
        self.broken: str | None = None

    @property
    def blank(self) -> bool:
        return not self.dir.exists() or not any(
            (self.dir / n).exists() for n in (SNAPSHOT, SNAPSHOT_PREV, JOURNAL, JOURNAL_PREV))

    def _read(self, name: str) -> bytes | None:
        try:
            return (self.dir / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise MemoryCorrupted(f"{self.dir / name}: cannot be read ({exc})") from None

    def recover(self) -> Recovery:
        return recover(self._read, f"{self.dir}/")

    def resume(self, recovery: Recovery) -> None:
        """Keep damaged files aside (evidence is never overwritten), then append after the last
        record replayed. The caller writes a fresh snapshot next."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in _aside(recovery):
            if not (self.dir / name).exists():
                continue
            n = 0
            while (self.dir / f"{name}.damaged-{n}").exists():
                n += 1
            os.replace(self.dir / name, self.dir / f"{name}.damaged-{n}")
        self._resumed_at(recovery.last_seq)
        self._open_journal()

    def _open_journal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._fd, self._size = fd, os.fstat(fd).st_size

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def append(self, body: dict[str, Any], sync: bool) -> int:
        if self.broken is not None:
            raise MemoryWriteFailed(f"{self.journal_path}: memory failed earlier ({self.broken});"
                                    " restart the pump")
        if self._fd is None:
            self._open_journal()
        assert self._fd is not None
        seq, line = self._line(body)
        start = self._size
        try:
            self.fault("journal.write")
            if os.write(self._fd, line) != len(line):
                raise OSError("short write")
            if sync:
                self.fault("journal.fsync")
                os.fdatasync(self._fd)
        except OSError as exc:
            self._undo(start, exc)
            if self.broken is not None:
                raise MemoryWriteFailed(
                    f"{self.journal_path}: {exc}; the record could not be removed again, so "
                    "the pump may apply it when it restarts: restart it and interrogate"
                    ) from None
            raise MemoryWriteFailed(f"{self.journal_path}: {exc}; nothing was changed") from None
        self._size = start + len(line)
        self.seq, self.since = seq, self.since + 1
        return seq

    def _undo(self, start: int, exc: OSError) -> None:
        """Cut a failed record off, so that a later append never follows a torn line."""
        assert self._fd is not None
        try:
            if os.fstat(self._fd).st_size == start:
                return  # nothing of it reached the file
            self.fault("journal.truncate")
            os.ftruncate(self._fd, start)
            os.fdatasync(self._fd)
        except OSError as again:
            self.broken = f"{exc}; the torn record could not be removed: {again}"

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _relink(self, src: Path, dst: Path) -> None:
        """``dst`` becomes another name of ``src`` (atomically replacing an older ``dst``)."""
        tmp = dst.with_name(dst.name + ".tmp")
        tmp.unlink(missing_ok=True)
        os.link(src, tmp)
        os.replace(tmp, dst)

    def checkpoint(self, state: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / (SNAPSHOT + ".tmp")
        try:
            self.fault("snapshot.write")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, sealed(state, self.seq))
                self.fault("snapshot.fsync")
                os.fsync(fd)
            finally:
                os.close(fd)
            self.fault("snapshot.rename")
            if self.snapshot_path.exists():
                self._relink(self.snapshot_path, self.dir / SNAPSHOT_PREV)
            os.replace(tmp, self.snapshot_path)
            self.fault("journal.rotate")
            if self.journal_path.exists():
                self._relink(self.journal_path, self.dir / JOURNAL_PREV)
            new = self.dir / (JOURNAL + ".new")
            os.close(os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            os.replace(new, self.journal_path)
            self._open_journal()
            self.fault("snapshot.dirsync")
            self._fsync_dir()
        except OSError as exc:
            # Every step is atomic and the journal still holds every record: nothing is lost.
            # Try again after another ``every`` records.
            self.since = 0
            tmp.unlink(missing_ok=True)
            raise MemoryWriteFailed(f"{self.snapshot_path}: snapshot not written ({exc})"
                                    ) from None
        self.since, self.resumed = 0, True
        self.snapshots += 1

    def check_writable(self) -> None:
        """Refuse an unwritable memory directory now, not at the first command."""
        probe = self.dir / ".write-test"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"ok")
                os.fsync(fd)
            finally:
                os.close(fd)
            probe.unlink()
        except OSError as exc:
            raise MemoryWriteFailed(f"{self.dir} is not writable ({exc.strerror or exc})"
                                    ) from None
