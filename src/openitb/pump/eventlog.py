"""Append-only event log, each entry hash-chained (sha256 over previous hash + canonical JSON).

Fixed capacity: the oldest entries are dropped and counted; the hash of the last dropped entry is
kept as the anchor, so removing, altering or reordering any retained entry is detected.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def entry_hash(prev: str, body: dict[str, Any]) -> str:
    return hashlib.sha256((prev + canonical(body)).encode("ascii")).hexdigest()


class EventLog:
    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.entries: list[dict[str, Any]] = []
        self.dropped = 0
        self.anchor = GENESIS  # hash of the last dropped entry
        self.head = GENESIS  # hash of the newest entry (kept apart, like a register)
        self.next_seq = 0

    def append(self, at: str, kind: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {"seq": self.next_seq, "at": at, "kind": kind, "data": data or {}}
        h = entry_hash(self.head, body)
        entry = {**body, "prev": self.head, "hash": h}
        self.entries.append(entry)
        self.head = h
        self.next_seq += 1
        if len(self.entries) > self.capacity:
            old = self.entries.pop(0)
            self.anchor = old["hash"]
            self.dropped += 1
        return entry

    def read(self, page: int, page_size: int) -> list[dict[str, Any]]:
        """Page 0 is the oldest retained entries."""
        if page < 0 or page_size < 1:
            raise ValueError("page >= 0 and page_size >= 1")
        return [dict(e) for e in self.entries[page * page_size : (page + 1) * page_size]]

    def pages(self, page_size: int) -> int:
        return -(-len(self.entries) // page_size)

    def verify(self) -> tuple[bool, str]:
        prev = self.anchor
        seq = self.dropped
        for i, e in enumerate(self.entries):
            body = {k: e[k] for k in ("seq", "at", "kind", "data")}
            if e["seq"] != seq:
                return False, f"entry {i}: sequence {e['seq']}, expected {seq}"
            if e["prev"] != prev:
                return False, f"entry {i}: chain broken"
            if entry_hash(prev, body) != e["hash"]:
                return False, f"entry {i}: content altered"
            prev = e["hash"]
            seq += 1
        if prev != self.head or seq != self.next_seq:
            return False, "newest entries removed"
        return True, "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "entries": [dict(e) for e in self.entries],
                "dropped": self.dropped, "anchor": self.anchor, "head": self.head,
                "next_seq": self.next_seq}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EventLog:
        log = cls(d["capacity"])
        log.entries = [dict(e) for e in d["entries"]]
        log.dropped, log.anchor, log.head, log.next_seq = (
            d["dropped"], d["anchor"], d["head"], d["next_seq"])
        return log
