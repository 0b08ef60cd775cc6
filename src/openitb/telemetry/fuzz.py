"""Mutated frames for fuzzing the pump side (tests and benchmarks)."""

from __future__ import annotations

import random
import struct
import zlib
from typing import Any

import cbor2

from openitb.telemetry.frames import HEADER, MAGIC, MAX_PAYLOAD, VERSION, MessageType, mac


def mutated(frame: bytes, rng: random.Random, max_flips: int, start: int = 0) -> bytes:
    """``frame`` with 1 to ``max_flips`` bytes at distinct positions (from ``start``) changed.

    Distinct positions, each flipped by a non-zero mask: the result always differs from
    ``frame`` (two flips of one byte could cancel and resend a genuine command)."""
    buf = bytearray(frame)
    for pos in rng.sample(range(start, len(buf)), rng.randint(1, max_flips)):
        buf[pos] ^= rng.randint(1, 255)
    return bytes(buf)


# Authenticated fuzzing: a session opened with a genuine key, then frames that are signed with
# the session key but wrong in every other way (sequence, type, command, role, arguments), or
# signed and then damaged. Used by the stateful fuzz test and by the benchmark.
QUANTITY_JUNK = ("9**9**9 mL", "2*200 mcg/day", "1e-300 mcg", "1e999 mL", "nan mL", "-1 mL",
                 "400", "400 mgc/day", "0.5 mg/mL", "20 mL", "1 h", "50 mcg", "400 mcg/day",
                 "3 mL", "15 min", "x" * 300, "", " ", "1" * 30 + " mL")
COMMAND_JUNK = ("", "A", "x" * 41, "read_status ", "Read_Status", "\x00", "bye", "patient_bolus",
                "../etc", "program" * 3)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A CBOR-encodable value of a random shape: the arguments an attacker could send."""
    pick = rng.randrange(12 if depth < 3 else 8)
    if pick == 0:
        return rng.choice(QUANTITY_JUNK)
    if pick == 1:
        return rng.choice([0, -1, 1, 2**31, 2**63 - 1, -(2**63), rng.randint(-10**6, 10**6)])
    if pick == 2:
        return rng.choice([0.0, -0.0, 1e-300, 1e308, float("nan"), float("inf"), 0.5])
    if pick == 3:
        return rng.choice([True, False, None])
    if pick == 4:
        return rng.randbytes(rng.randint(0, 40))
    if pick == 5:
        return "".join(rng.choice("abc 0123456789./*-_:+TZ") for _ in range(rng.randint(0, 30)))
    if pick == 6:
        return rng.choice(["2026-03-02T08:00:00+00:00", "2026-03-02T08:00:00", "yesterday"])
    if pick == 7:
        return rng.choice(["low_reservoir", "eri", "memory_error", "janitor"])
    if pick in (8, 9):
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["mode", "dose", "steps", "start", "x", "bolus", "duration"]):
            random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


ARG_NAMES = ("page", "page_size", "last", "prescription", "concentration", "dose", "duration",
             "volume", "threshold", "kind", "time", "lockout", "max_per_day", "junk")


def random_args(rng: random.Random) -> dict[str, Any]:
    return {rng.choice(ARG_NAMES): random_value(rng) for _ in range(rng.randint(0, 4))}


def random_command(rng: random.Random, names: tuple[str, ...]) -> str:
    return rng.choice(names) if rng.random() < 0.85 else rng.choice(COMMAND_JUNK)


def signed_frame(mtype: int, seq: int, body: bytes, key: bytes) -> bytes:
    """A frame around exactly ``body`` (which need not be valid CBOR), signed with ``key``."""
    head = HEADER.pack(MAGIC, VERSION, mtype, seq & 0xFFFFFFFF, len(body))
    signed = head + body + mac(key, head + body)
    return signed + struct.pack(">I", zlib.crc32(signed))


def authenticated_frame(rng: random.Random, key: bytes, next_seq: int,
                        names: tuple[str, ...], damage_from: int = 0) -> tuple[bytes, int, bool]:
    """One hostile frame for a session with ``key``: (frame, its sequence, whether it carries a
    valid MAC). Mostly well-formed commands with wrong arguments; also old, equal and far
    sequences, other message types, damaged CBOR, and signed frames damaged afterwards (from
    byte ``damage_from``: 12 keeps the header's length, so a stream stays in step)."""
    roll = rng.random()
    seq = next_seq
    if roll < 0.1:
        seq = rng.choice([0, max(0, next_seq - 1), next_seq - 2, 0xFFFFFFFF])
    mtype = int(MessageType.COMMAND)
    if roll > 0.95:
        mtype = rng.choice([1, 2, 4, 5, 6])
    payload = {"command": random_command(rng, names), "args": random_args(rng)}
    if 0.9 < roll <= 0.95:
        body = rng.choice([b"\xd8\x1c\x81\x00", b"\xbf\x61a\x01\xff", b"\x9f" * 40,
                           rng.randbytes(rng.randint(0, 60)),
                           cbor2.dumps(payload) + b"\x00"])
    else:
        try:
            body = cbor2.dumps(payload, canonical=True)
        except (ValueError, TypeError):
            body = b"\xa0"
    if len(body) > MAX_PAYLOAD:
        body = b"\xa0"
    frame = signed_frame(mtype, seq, body, key)
    if rng.random() < 0.2:  # damaged after signing: the MAC (or CRC) no longer holds
        return mutated(frame, rng, 3, damage_from), seq, False
    return frame, seq, True
