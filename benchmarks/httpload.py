"""A small HTTP/1.1 keep-alive client for the load benchmarks: one socket, a prepared request,
the response read by its Content-Length. The load generator runs on the same two cores as the
server; httpx spends about a millisecond of CPU per request, which would be measured as the
server's. Real HTTP over a real socket, nothing stubbed: the status line and body are read whole.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass


class KeepAlive:
    def __init__(self, port: int, cookie: str = "", host: str = "127.0.0.1") -> None:
        self.port, self.host, self.cookie = port, host, cookie
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self) -> socket.socket:
        s = socket.create_connection((self.host, self.port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = s, b""
        return s

    def get(self, path: str) -> tuple[int, bytes]:
        """(status, body) of GET ``path``; reconnects once if the server closed the socket."""
        extra = f"Cookie: {self.cookie}\r\n" if self.cookie else ""
        req = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{extra}\r\n".encode()
        for attempt in (0, 1):
            s = self.sock or self._connect()
            try:
                s.sendall(req)
                return self._response(s)
            except (ConnectionError, EOFError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _read(self, s: socket.socket) -> None:
        chunk = s.recv(1 << 16)
        if not chunk:
            raise EOFError("the server closed the connection")
        self.buf += chunk

    def _response(self, s: socket.socket) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._read(s)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(b":") for ln in lines[1:])}
        if headers.get(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._read(s)
                size_line, _, self.buf = self.buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self._read(s)
                body, self.buf = body + self.buf[:size], self.buf[size + 2:]
                if size == 0:
                    break
        else:
            length = int(headers.get(b"content-length", b"0"))
            while len(self.buf) < length:
                self._read(s)
            body, self.buf = self.buf[:length], self.buf[length:]
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, body

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buf = None, b""


def latencies(client: KeepAlive, paths: list[str]) -> list[float]:
    out = []
    for p in paths:
        t0 = time.perf_counter()
        status, _ = client.get(p)
        out.append(time.perf_counter() - t0)
        assert status == 200, (p, status)
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (uvicorn's workers), from /proc;
    0.0 where /proc is not there."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    pids = {pid}
    try:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == pid:
                    pids.add(int(entry))
        for p in pids:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        return 0.0
    return total


@dataclass
class Sustained:
    requests: int
    errors: int
    seconds: float
    server_cpu_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / max(1, self.requests)


def sustained(port: int, cookie: str, seconds: float, clients: int, patients: int,
              server_pid: int, dashboard_share: float = 0.1) -> Sustained:
    """``clients`` threads, each on its own keep-alive connection, for ``seconds``: the
    dashboard with ``dashboard_share``, a random patient's page otherwise."""
    import random

    counts, errs = [0] * clients, [0] * clients
    start = threading.Barrier(clients + 1)
    stop = [0.0]

    def work(k: int) -> None:
        c = KeepAlive(port, cookie)
        r = random.Random(k)
        start.wait()
        while time.perf_counter() < stop[0]:
            path = "/" if r.random() < dashboard_share else f"/patients/{r.randint(1, patients)}"
            try:
                ok = c.get(path)[0] == 200
            except (OSError, EOFError, ValueError):
                ok = False
                c.close()
            counts[k] += 1
            errs[k] += 0 if ok else 1
        c.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    cpu0 = process_tree_cpu_s(server_pid)
    t0 = time.perf_counter()
    stop[0] = t0 + seconds
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return Sustained(sum(counts), sum(errs), elapsed, process_tree_cpu_s(server_pid) - cpu0)
