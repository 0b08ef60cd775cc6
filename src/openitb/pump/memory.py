"""Non-volatile memory port: a snapshot plus a journal.

The controller's state is a JSON-able dict. Each snapshot carries a sha256 of its canonical
JSON, so a corrupted memory is detected on load (the controller then enters its safe state).
:class:`FileMemory` writes atomically: temp file, fsync, rename (and fsyncs the directory).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Protocol

from openitb.pump.eventlog import canonical


class MemoryCorrupted(Exception):
    pass


def seal(state: dict[str, Any]) -> dict[str, Any]:
    return {"state": state, "sha256": hashlib.sha256(canonical(state).encode()).hexdigest()}


def unseal(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict) or "state" not in doc or "sha256" not in doc:
        raise MemoryCorrupted("snapshot is not a sealed document")
    if hashlib.sha256(canonical(doc["state"]).encode()).hexdigest() != doc["sha256"]:
        raise MemoryCorrupted("snapshot checksum mismatch")
    state: dict[str, Any] = doc["state"]
    return state


class MemoryPort(Protocol):
    def write_snapshot(self, state: dict[str, Any]) -> None: ...
    def append_journal(self, record: dict[str, Any]) -> None: ...
    def read_snapshot(self) -> dict[str, Any] | None: ...
    def read_journal(self) -> list[dict[str, Any]]: ...


class InMemory:
    """A memory port held in RAM (tests, simulation)."""

    def __init__(self) -> None:
        self.snapshot: str | None = None
        self.journal: list[str] = []

    def write_snapshot(self, state: dict[str, Any]) -> None:
        self.snapshot = canonical(seal(state))
        self.journal = []

    def append_journal(self, record: dict[str, Any]) -> None:
        self.journal.append(canonical(record))

    def read_snapshot(self) -> dict[str, Any] | None:
        if self.snapshot is None:
            return None
        try:
            doc = json.loads(self.snapshot)
        except ValueError as exc:
            raise MemoryCorrupted(str(exc)) from None
        return unseal(doc)

    def read_journal(self) -> list[dict[str, Any]]:
        return [json.loads(r) for r in self.journal]


class FileMemory:
    """Snapshot ``snapshot.json`` and journal ``journal.jsonl`` in a directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.snapshot_path = self.dir / "snapshot.json"
        self.journal_path = self.dir / "journal.jsonl"

    def _atomic_write(self, path: Path, text: str) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_snapshot(self, state: dict[str, Any]) -> None:
        self._atomic_write(self.snapshot_path, canonical(seal(state)))
        self._atomic_write(self.journal_path, "")

    def append_journal(self, record: dict[str, Any]) -> None:
        with open(self.journal_path, "a", encoding="utf-8") as f:
            f.write(canonical(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_snapshot(self) -> dict[str, Any] | None:
        if not self.snapshot_path.exists():
            return None
        try:
            doc = json.loads(self.snapshot_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise MemoryCorrupted(str(exc)) from None
        return unseal(doc)

    def read_journal(self) -> list[dict[str, Any]]:
        if not self.journal_path.exists():
            return []
        out = []
        for line in self.journal_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                break  # a torn last line: the write never completed
        return out
