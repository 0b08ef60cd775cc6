"""The session record: who programmed which pump when, what was read, what changed, each
override and its reason, and each refusal. Written as one JSON document, atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass
class SessionRecord:
    who: str
    role: str
    pump: str
    started: str
    ended: str | None = None
    reads: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)

    def read(self, at: datetime, what: str, summary: dict[str, Any]) -> None:
        self.reads.append({"at": at.isoformat(), "what": what, "summary": summary})

    def change(self, at: datetime, action: str, entry: dict[str, Any]) -> None:
        self.changes.append({"at": at.isoformat(), "action": action, **entry})
        reason = entry.get("override_reason")
        if reason:
            self.overrides.append({"at": at.isoformat(), "action": action,
                                   "classification": entry.get("classification"),
                                   "guardrail": entry.get("guardrail"), "reason": reason})

    def refused(self, at: datetime, action: str, code: str, reason: str) -> None:
        self.refusals.append({"at": at.isoformat(), "action": action, "code": code,
                              "reason": reason})

    def to_dict(self) -> dict[str, Any]:
        return {"who": self.who, "role": self.role, "pump": self.pump, "started": self.started,
                "ended": self.ended, "reads": self.reads, "changes": self.changes,
                "overrides": self.overrides, "refusals": self.refusals}

    def write(self, path: Path, now: Callable[[], datetime]) -> None:
        """Write the record atomically: temporary file, fsync, rename, fsync of the directory."""
        self.ended = now().isoformat()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
