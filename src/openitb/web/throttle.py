"""Sign-in throttling: growing delays per client address and per account, never a lockout.

Policy (docs/clinic.md, "Security model"):
- Per client address (the socket's peer; no forwarded header is trusted): the first
  ``ADDRESS_FREE`` failures within ``WINDOW_S`` cost nothing; after that each attempt must wait
  ``2 ** (failures - ADDRESS_FREE)`` seconds after the last failure, up to ``ADDRESS_MAX_S``. A
  success does not clear it (an attacker cannot reset it by signing in to an account of its own).
- Per account (the normalised user name, from every address): after ``ACCOUNT_FREE`` failures the
  delay grows the same way but stops at ``ACCOUNT_MAX_S``: someone failing on purpose can slow the
  owner by at most that much per attempt, not lock them out, while a guesser spread over many
  addresses is held to one guess per ``ACCOUNT_MAX_S``. The owner's success clears it.
- A refused (throttled) attempt checks no password and does not count as a failure.
Failures are forgotten ``WINDOW_S`` after they happened. State is per server process and bounded
(``MAX_KEYS``, the least recently failed forgotten first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

WINDOW_S = 15 * 60
ADDRESS_FREE, ADDRESS_MAX_S = 3, 15 * 60
ACCOUNT_FREE, ACCOUNT_MAX_S = 10, 30
MAX_KEYS = 20_000
_KEEP = 64  # failures remembered per key (enough to reach every cap)


class LoginThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        self.clock, self.max_keys = clock, max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and now - q[0] > WINDOW_S:
            q.popleft()
        return q

    @staticmethod
    def _delay(failures: int, free: int, cap: float) -> float:
        return 0.0 if failures < free else float(min(2 ** min(failures - free, 30), cap))

    def _wait(self, key: str, free: int, cap: float) -> float:
        q = self._recent(key)
        if not q:
            return 0.0
        return max(0.0, q[-1] + self._delay(len(q), free, cap) - self.clock())

    def wait_seconds(self, account: str | None, address: str) -> float:
        """0 if a sign-in may be tried now, else how long to wait."""
        with self._lock:
            wait = self._wait("addr:" + address, ADDRESS_FREE, ADDRESS_MAX_S)
            if account:
                wait = max(wait, self._wait("acct:" + account, ACCOUNT_FREE, ACCOUNT_MAX_S))
            return wait

    def failed(self, account: str | None, address: str) -> None:
        with self._lock:
            for key in ("addr:" + address, *(["acct:" + account] if account else [])):
                q = self._recent(key)
                q.append(self.clock())
                while len(q) > _KEEP:
                    q.popleft()
                self._failures[key] = q
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._failures.pop("acct:" + account, None)
