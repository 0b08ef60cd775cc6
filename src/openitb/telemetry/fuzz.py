"""Mutated frames for fuzzing the pump side (tests and benchmarks)."""

from __future__ import annotations

import random


def mutated(frame: bytes, rng: random.Random, max_flips: int, start: int = 0) -> bytes:
    """``frame`` with 1 to ``max_flips`` bytes at distinct positions (from ``start``) changed.

    Distinct positions, each flipped by a non-zero mask: the result always differs from
    ``frame`` (two flips of one byte could cancel and resend a genuine command)."""
    buf = bytearray(frame)
    for pos in rng.sample(range(start, len(buf)), rng.randint(1, max_flips)):
        buf[pos] ^= rng.randint(1, 255)
    return bytes(buf)
