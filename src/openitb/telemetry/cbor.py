"""A bounded CBOR decoder for telemetry payloads (RFC 8949, the subset the protocol uses).

cbor2 decodes everything CBOR can say: tags (bignums, dates, regular expressions, shared and
cyclic references), indefinite lengths, unbounded nesting. A pump must not spend memory or time
on what an attacker chose, so payloads are decoded here instead, with limits: nesting depth,
items per container and in all, integers of at most 64 bits, no indefinite lengths, no duplicate
map keys, map keys that are text or integers, and tags only from an allowlist (empty: the
protocol uses none, so shared references, bignums and the rest are refused). Every refusal is a
``CborError`` with a short reason; no input can make the decoder recurse deeper than
``MAX_DEPTH`` or allocate more than the frame it reads.

Encoding stays with ``cbor2.dumps(canonical=True)``, which produces only this subset.
"""

from __future__ import annotations

import struct
from typing import Any

MAX_DEPTH = 16
MAX_CONTAINER = 1024
MAX_ITEMS = 4096
ALLOWED_TAGS: frozenset[int] = frozenset()


class CborError(ValueError):
    pass


class _Reader:
    __slots__ = ("data", "pos", "items")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.items = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise CborError("truncated")
        out = self.data[self.pos:end]
        self.pos = end
        return out

    def head(self) -> tuple[int, int, int]:
        """(major type, additional info, argument)."""
        b = self.take(1)[0]
        major, info = b >> 5, b & 0x1F
        if info < 24:
            return major, info, info
        if info == 24:
            return major, info, self.take(1)[0]
        if info == 25:
            return major, info, int.from_bytes(self.take(2), "big")
        if info == 26:
            return major, info, int.from_bytes(self.take(4), "big")
        if info == 27:
            return major, info, int.from_bytes(self.take(8), "big")
        if info == 31:
            raise CborError("indefinite lengths are not accepted")
        raise CborError(f"reserved additional information {info}")

    def item(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CborError(f"nested deeper than {MAX_DEPTH}")
        self.items += 1
        if self.items > MAX_ITEMS:
            raise CborError(f"more than {MAX_ITEMS} items")
        major, info, arg = self.head()
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major == 2:
            return self.take(arg)
        if major == 3:
            try:
                return self.take(arg).decode("utf-8")
            except UnicodeDecodeError:
                raise CborError("text is not UTF-8") from None
        if major == 4:
            if arg > MAX_CONTAINER:
                raise CborError(f"an array of {arg} items; at most {MAX_CONTAINER}")
            return [self.item(depth + 1) for _ in range(arg)]
        if major == 5:
            if arg > MAX_CONTAINER:
                raise CborError(f"a map of {arg} entries; at most {MAX_CONTAINER}")
            out: dict[Any, Any] = {}
            for _ in range(arg):
                key = self.item(depth + 1)
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise CborError("map keys must be text or integers")
                if key in out:
                    raise CborError("duplicate map key")
                out[key] = self.item(depth + 1)
            return out
        if major == 6:
            if arg not in ALLOWED_TAGS:
                raise CborError(f"tag {arg} is not accepted")
            return self.item(depth + 1)  # pragma: no cover - the allowlist is empty
        # major 7: simple values and floats
        if info < 24:
            simple = {20: False, 21: True, 22: None}
            if arg in simple:
                return simple[arg]
            raise CborError(f"simple value {arg} is not accepted")
        if info == 25:
            return struct.unpack(">e", arg.to_bytes(2, "big"))[0]
        if info == 26:
            return struct.unpack(">f", arg.to_bytes(4, "big"))[0]
        if info == 27:
            return struct.unpack(">d", arg.to_bytes(8, "big"))[0]
        raise CborError("simple values of one byte are not accepted")


def loads(data: bytes) -> Any:
    """One CBOR data item, exactly filling ``data``; CborError otherwise."""
    r = _Reader(data)
    value = r.item(0)
    if r.pos != len(data):
        raise CborError("bytes after the data item")
    return value
