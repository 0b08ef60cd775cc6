"""Frames sent together over real TCP: every reply comes back, in order, verified; replies held
back to leave together are never lost before an error or a close."""

from __future__ import annotations

from openitb.telemetry.frames import HEADER, Frame, MessageType, encode, frame_length

from .helpers import Served


def _read_frame(t: object) -> bytes:
    head = t._read(HEADER.size)  # type: ignore[attr-defined]
    return bytes(head + t._read(frame_length(head) - HEADER.size))  # type: ignore[attr-defined]


def test_pipelined_reads_are_all_answered_in_order(served: Served) -> None:
    c, t = served.client()  # the fixture's pump is running
    assert c._key is not None
    seqs, frames = [], []
    for _ in range(40):  # more than one write's worth of held-back replies (MAX_PENDING)
        c._seq += 1
        seqs.append(c._seq)
        frames.append(encode(Frame(MessageType.COMMAND, c._seq,
                                   {"command": "read_status", "args": {}}), c._key))
    t._sock.sendall(b"".join(frames))
    for seq in seqs:  # each verified with the session key, answering its own request
        reply = c._answer(_read_frame(t), seq)
        assert reply.payload["ok"] is True and reply.payload["request_seq"] == seq
    assert c.command("read_status")["state"] == "running"  # one at a time still answered
    t.close()


def test_held_back_replies_leave_before_the_error_that_closes_the_link(served: Served) -> None:
    c, t = served.client()
    assert c._key is not None
    c._seq += 1
    good = encode(Frame(MessageType.COMMAND, c._seq, {"command": "read_status", "args": {}}),
                  c._key)
    t._sock.sendall(good + b"XX" + bytes(10))  # a good frame, then a header that is not one
    assert c._answer(_read_frame(t), c._seq).payload["ok"] is True
    error = _read_frame(t)
    assert error[3] == MessageType.ERROR
    assert t._sock.recv(1) == b""  # and then the link is closed
    t.close()


def test_a_refused_hello_budget_still_gets_its_answers(served: Served) -> None:
    # a peer without a session, out of budget after two refusals: both refusals are delivered
    hello = encode(Frame(MessageType.HELLO, 1, {"role": "clinician",
                                                "client_nonce": bytes(16)}), b"k" * 32)
    import socket

    s = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    s.sendall(hello + hello)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    first = frame_length(data[:HEADER.size])
    assert data[3] == data[first + 3] == MessageType.ERROR
    assert len(data) == first + frame_length(data[first:first + HEADER.size])
