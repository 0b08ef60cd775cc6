"""A bounded CBOR decoder for telemetry payloads (RFC 8949, the subset the protocol uses).

cbor2 decodes everything CBOR can say: tags (bignums, dates, regular expressions, shared and
cyclic references), indefinite lengths, unbounded nesting. A pump must not spend memory or time
on what an attacker chose, so every payload is first scanned here, head by head, with limits:
nesting depth, items per container and in all, integers of at most 64 bits, no indefinite
lengths, no duplicate map keys, map keys that are text or integers, and tags only from an
allowlist (empty: the protocol uses none, so shared references, bignums and the rest are
refused). Only a payload that passes is built, by cbor2. Every refusal is a ``CborError`` with a short reason; the scan
does not recurse and allocates nothing in proportion to what a length field claims.

Encoding stays with ``cbor2.dumps(canonical=True)``, which produces only this subset (``dumps``).
A value that many payloads carry unchanged (a read_status's 24 h history) can be encoded once
(``Encoded``) and spliced into each: canonical CBOR of a map is its head and its pairs in key
order, each value encoded on its own, so the bytes are the same as encoding it in place.
"""

from __future__ import annotations

from typing import Any

import cbor2

MAX_DEPTH = 16
MAX_CONTAINER = 1024
MAX_ITEMS = 4096
ALLOWED_TAGS: frozenset[int] = frozenset()


class CborError(ValueError):
    pass


def _scan(data: bytes) -> None:
    """Walk the heads of every item without building anything; CborError on any excess.

    Iterative (the enclosing containers' counts on a list), so the Python stack never grows with
    the input; strings are skipped by their length. The current container's count lives in a
    local: this loop runs once per item of every reply a programmer reads."""
    n = len(data)
    pos = 0
    items = 0
    left = 1  # items still to read in the current container (a map counts key and value)
    keys: set[object] | None = None  # keys seen in the current map (None: not in a map)
    outer: list[tuple[int, set[object] | None]] = []  # the enclosing containers
    while True:
        if left == 0:
            if not outer:
                break
            left, keys = outer.pop()
            continue
        left -= 1
        if pos >= n:
            raise CborError("truncated")
        b = data[pos]
        pos += 1
        major, info = b >> 5, b & 0x1F
        if info < 24:
            arg = info
        elif info <= 27:
            size = 1 << (info - 24)
            if pos + size > n:
                raise CborError("truncated")
            arg = int.from_bytes(data[pos:pos + size], "big")
            pos += size
        elif info == 31:
            raise CborError("indefinite lengths are not accepted")
        else:
            raise CborError(f"reserved additional information {info}")
        items += 1
        if items > MAX_ITEMS:
            raise CborError(f"more than {MAX_ITEMS} items")
        if keys is not None and left & 1:  # a map key (key and value counted down in pairs)
            if major == 3:
                key: object = data[pos:pos + arg]
            elif major <= 1:
                key = (major, arg)
            else:
                raise CborError("map keys must be text or integers")
            if key in keys:
                raise CborError("duplicate map key")
            keys.add(key)
        if major == 3 or major == 2:
            pos += arg
            if pos > n:
                raise CborError("truncated")
        elif major == 4 or major == 5:
            if arg > MAX_CONTAINER:
                kind = "an array" if major == 4 else "a map"
                raise CborError(f"{kind} of {arg} items; at most {MAX_CONTAINER}")
            if len(outer) >= MAX_DEPTH:
                raise CborError(f"nested deeper than {MAX_DEPTH}")
            outer.append((left, keys))
            left, keys = (arg, None) if major == 4 else (2 * arg, set())
        elif major == 6:
            if arg not in ALLOWED_TAGS:
                raise CborError(f"tag {arg} is not accepted")
            left += 1  # pragma: no cover - the allowlist is empty: the tagged item follows
        elif major == 7:
            if info < 24 and arg not in (20, 21, 22):
                raise CborError(f"simple value {arg} is not accepted")
            if info == 24:
                raise CborError("simple values of one byte are not accepted")
    if pos != n:
        raise CborError("bytes after the data item")


class Encoded:
    """``value`` encoded once (canonical CBOR); ``dumps`` writes these bytes where it stands.
    Keep ``value`` unchanged after building one (it is kept for reading, not re-encoded)."""

    __slots__ = ("value", "data")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.data: bytes = cbor2.dumps(value, canonical=True)


def _splice(encoder: Any, value: Any) -> None:
    if not isinstance(value, Encoded):
        raise cbor2.CBOREncodeTypeError(f"cannot encode a {type(value).__name__}")
    encoder.write(value.data)


def dumps(value: Any) -> bytes:
    """Canonical CBOR of ``value``; an ``Encoded`` inside it is written as encoded."""
    return cbor2.dumps(value, canonical=True, default=_splice)


def loads(data: bytes) -> Any:
    """One CBOR data item, exactly filling ``data``; CborError otherwise.

    The bounds are checked by a scan of the heads first; only then does cbor2's C decoder build
    the value, from bytes that contain nothing but definite-length strings, arrays, maps,
    integers of at most 64 bits, floats, booleans and null."""
    _scan(data)
    try:
        return cbor2.loads(data)
    except Exception as exc:  # after the scan, only a text string that is not UTF-8 is left
        if isinstance(exc, UnicodeDecodeError) or "unicode" in str(exc).lower():
            raise CborError("text is not UTF-8") from None
        raise CborError(f"not decodable ({type(exc).__name__})") from None
