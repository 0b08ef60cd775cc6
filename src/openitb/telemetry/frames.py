"""Binary telemetry frames between a programmer and a pump (docs/telemetry.md).

Layout, all integers big-endian:

    offset size field
    0      2    magic b"IT"
    2      1    version (1)
    3      1    message type (MessageType)
    4      4    sequence number (uint32)
    8      4    payload length N (uint32, at most MAX_PAYLOAD)
    12     N    payload: one CBOR map
    12+N   32   HMAC-SHA256 over bytes [0, 12+N) with the frame's key
    44+N   4    CRC-32 (zlib) over bytes [0, 44+N)

The CRC catches corruption on the link; the HMAC proves the sender holds the key. Decoding checks
in that order, so a corrupted frame is reported as such rather than as a forgery, and the HMAC is
checked over the raw bytes before the payload is decoded (with the bounded decoder of cbor.py):
nothing an unauthenticated sender wrote is interpreted.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from openitb.telemetry import cbor

MAGIC = b"IT"
VERSION = 1
HEADER = struct.Struct(">2sBBII")
MAC_LEN = 32
CRC_LEN = 4
MAX_PAYLOAD = 16 * 1024
MIN_FRAME = HEADER.size + MAC_LEN + CRC_LEN


class MessageType(IntEnum):
    HELLO = 1  # programmer -> pump: open a session
    WELCOME = 2  # pump -> programmer: session accepted
    COMMAND = 3  # programmer -> pump
    RESPONSE = 4  # pump -> programmer
    ERROR = 5  # pump -> programmer: frame or session error
    BYE = 6  # either way: end the session


class FrameError(Exception):
    """A frame that cannot be accepted; ``code`` is the wire error code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    type: MessageType
    seq: int
    payload: dict[str, Any]


def mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def encode(frame: Frame, key: bytes) -> bytes:
    body = cbor.dumps(frame.payload)
    if len(body) > MAX_PAYLOAD:
        raise FrameError("too_large", f"payload of {len(body)} bytes; at most {MAX_PAYLOAD}")
    if not 0 <= frame.seq <= 0xFFFFFFFF:
        raise FrameError("bad_sequence", f"sequence {frame.seq} outside 0..2^32-1")
    head = HEADER.pack(MAGIC, VERSION, int(frame.type), frame.seq, len(body))
    signed = head + body + mac(key, head + body)
    return signed + struct.pack(">I", zlib.crc32(signed))


def frame_length(header: bytes) -> int:
    """Total frame length from its first 12 bytes (for stream readers); checks the header."""
    if len(header) < HEADER.size:
        raise FrameError("bad_length", f"{len(header)} bytes; a header has {HEADER.size}")
    magic, version, _mtype, _seq, length = HEADER.unpack(header[: HEADER.size])
    if magic != MAGIC:
        raise FrameError("bad_magic", f"frame starts with {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise FrameError("bad_version", f"version {version}; this pump speaks {VERSION}")
    if length > MAX_PAYLOAD:
        raise FrameError("too_large", f"payload length {length}; at most {MAX_PAYLOAD}")
    return int(HEADER.size + length + MAC_LEN + CRC_LEN)


@dataclass(frozen=True)
class RawFrame:
    """A frame whose length, CRC and header are checked but whose payload is not decoded:
    nothing an unauthenticated sender wrote is interpreted until its HMAC verifies."""

    type: MessageType
    seq: int
    body: bytes
    signed: bytes
    tag: bytes

    def verifies(self, key: bytes) -> bool:
        return hmac.compare_digest(mac(key, self.signed), self.tag)

    def payload(self) -> dict[str, Any]:
        """Decode the payload with the bounded decoder; call only after ``verifies``."""
        try:
            payload = cbor.loads(self.body)
        except cbor.CborError as exc:
            raise FrameError("bad_payload", f"the payload is not accepted CBOR ({exc})") from None
        if not isinstance(payload, dict) or not all(isinstance(k, str) for k in payload):
            raise FrameError("bad_payload", "the payload must be a CBOR map with text keys")
        return payload

    def open(self, key: bytes) -> Frame:
        """Verify the HMAC with ``key`` over the raw bytes, then decode the payload."""
        if not self.verifies(key):
            raise FrameError("bad_mac", "HMAC mismatch: not signed with this session's key")
        return Frame(self.type, self.seq, self.payload())


def split(data: bytes) -> RawFrame:
    """Check length, header and CRC; return the frame with its payload still undecoded."""
    if len(data) < MIN_FRAME:
        raise FrameError("bad_length", f"{len(data)} bytes; a frame has at least {MIN_FRAME}")
    expected_len = frame_length(data)
    if len(data) != expected_len:
        raise FrameError("bad_length", f"{len(data)} bytes; the header says {expected_len}")
    (crc,) = struct.unpack(">I", data[-CRC_LEN:])
    if zlib.crc32(data[:-CRC_LEN]) != crc:
        raise FrameError("bad_crc", "CRC-32 mismatch: the frame was corrupted")
    _magic, _version, mtype, seq, length = HEADER.unpack(data[: HEADER.size])
    try:
        message_type = MessageType(mtype)
    except ValueError:
        raise FrameError("bad_type", f"message type {mtype} is unknown") from None
    end = HEADER.size + length
    return RawFrame(message_type, seq, data[HEADER.size:end], data[:end],
                    data[end:end + MAC_LEN])


def decode(data: bytes, key: bytes) -> Frame:
    """Decode a frame whose HMAC verifies with ``key`` (checked before the payload is read)."""
    return split(data).open(key)
