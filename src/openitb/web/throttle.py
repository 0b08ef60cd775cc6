"""Sign-in throttling: after too many failed sign-ins for one username within a window, further
attempts are refused until the window passes (per server process, wall-clock monotonic time)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MAX_FAILURES = 5
WINDOW_S = 15 * 60


class LoginThrottle:
    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures, self.window_s, self.clock = max_failures, window_s, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def wait_seconds(self, username: str) -> float:
        """0 if a sign-in may be tried now, else how long to wait."""
        key = username.strip().lower()
        with self._lock:
            q = self._recent(key)
            if len(q) < self.max_failures:
                return 0.0
            return max(0.0, self.window_s - (self.clock() - q[0]))

    def failed(self, username: str) -> None:
        key = username.strip().lower()
        with self._lock:
            self._recent(key).append(self.clock())

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username.strip().lower(), None)
