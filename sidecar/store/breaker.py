"""A circuit breaker for Redis: after a few failures in a short window, calls stop waiting on
Redis for a while (they fail at once, not sent) and a probe in the background checks it, at
intervals that grow while it stays down. So while Redis is down, a denial costs microseconds
instead of a deadline each, and a recovering Redis is not met by every waiting call at once.

Pure logic: the connection (store/connection.py) feeds it outcomes and runs the probe.
"""

from __future__ import annotations

__all__ = ["Breaker"]


class Breaker:
    """Open after ``failures`` failures within ``window_s``; stay open until a probe passes.

    ``probe_in(now)`` says how long to wait before the next probe: ``first_s``, doubling on
    each failed probe up to ``longest_s``.
    """

    def __init__(
        self,
        *,
        failures: int = 3,
        window_s: float = 1.0,
        first_s: float = 0.1,
        longest_s: float = 2.0,
    ) -> None:
        self.failures = failures
        self.window_s = window_s
        self.first_s = first_s
        self.longest_s = longest_s
        self.open = False
        self._recent: list[float] = []
        self._interval = first_s

    def failed(self, now: float) -> bool:
        """A call failed at ``now``; True when that opens the breaker."""
        self._recent = [t for t in self._recent if now - t < self.window_s]
        self._recent.append(now)
        if self.open or len(self._recent) < self.failures:
            return False
        self.open = True
        self._interval = self.first_s
        return True

    def probe_in(self) -> float:
        """Seconds to wait before the next probe; each call doubles the one after."""
        wait = self._interval
        self._interval = min(self._interval * 2, self.longest_s)
        return wait

    def closed(self) -> None:
        """A call or probe succeeded: calls go to Redis again (cheap when nothing failed)."""
        if self.open or self._recent:
            self.open = False
            self._recent.clear()
            self._interval = self.first_s
