"""Service tiers (``service_tier``) and the ``queue_threshold`` header, as Cerebras defines them.

* Tiers order the engine's waiting queue: ``priority`` > ``default`` > ``flex`` (first come, first
  served within a tier); a request without ``service_tier`` is ``default``.
* ``priority`` exists only on dedicated endpoints: a wafer server is one with
  ``--dedicated-endpoint``; otherwise a priority request is a 400, as on Cerebras' shared endpoints.
* ``auto`` uses the highest tier available: ``priority`` on a dedicated endpoint, else ``default``.
* The response echoes the requested ``service_tier``; for ``auto`` it adds ``service_tier_used``,
  the tier that served it.
* ``queue_threshold`` (integer milliseconds, 50-20000; only for ``flex`` and ``auto``): when the
  model's recent queue times (``QueueTimes``, the ``time_info.queue_time`` of the requests that
  finished in the last ``WINDOW`` seconds) average more than the threshold, the request is refused
  up front with a 429 ``queue_exceeded``; a request that is queued anyway and waits longer than the
  threshold is failed by the engine with the same 429 instead of waiting on.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from fastapi import Request

from ..protocol.errors import bad_request, queue_exceeded

#: service tier -> the engine's queue order (GenerationParams.priority; lower runs first)
ORDER = {"priority": 0, "default": 1, "flex": 2}
THRESHOLD_MS = (50, 20000)
WINDOW = 10.0  # seconds of finished requests the queue-time average covers


@dataclass(frozen=True)
class Tier:
    requested: str | None  # as sent; None when the request has no service_tier
    used: str  # priority, default or flex
    queue_threshold: float | None = None  # seconds (the queue_threshold header of a flex/auto request)

    @property
    def order(self) -> int:
        return ORDER[self.used]

    def response_fields(self) -> dict[str, str]:
        """``service_tier`` (and ``service_tier_used`` for auto) for the response and its chunks."""
        if self.requested is None:
            return {}
        if self.requested == "auto":
            return {"service_tier": "auto", "service_tier_used": self.used}
        return {"service_tier": self.requested}


def resolve(request: Request, requested: str | None, dedicated: bool) -> Tier:
    """The tier a request runs in (raises the 400 of ``priority`` on a shared endpoint, or of a bad
    ``queue_threshold`` header on a flex/auto request)."""
    if requested == "priority" and not dedicated:
        raise bad_request('service_tier: "priority" is only available on dedicated endpoints; use "default", '
                          '"flex" or "auto"', "service_tier")
    used = requested or "default"
    if requested == "auto":
        used = "priority" if dedicated else "default"
    threshold = queue_threshold(request) if requested in ("flex", "auto") else None
    return Tier(requested, used, threshold)


def queue_threshold(request: Request) -> float | None:
    """The ``queue_threshold`` header in seconds (None when absent); a 400 unless 50-20000 ms."""
    raw = request.headers.get("queue_threshold")
    if raw is None:
        return None
    lo, hi = THRESHOLD_MS
    v = raw.strip()
    if not (v.isascii() and v.isdigit() and lo <= int(v) <= hi):
        raise bad_request(f"queue_threshold: the header must be an integer number of milliseconds from {lo} to {hi}, "
                          f"got {raw!r}", "queue_threshold")
    return int(v) / 1000


class QueueTimes:
    """The queue times of a model's recently finished requests (thread-safe)."""

    def __init__(self, window: float = WINDOW, clock=time.monotonic):
        self.window = window
        self.clock = clock
        self._times: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._times.append((self.clock(), seconds))

    def average(self) -> float:
        """The mean queue time over the window (0 with no recent request)."""
        with self._lock:
            limit = self.clock() - self.window
            while self._times and self._times[0][0] < limit:
                self._times.popleft()
            return sum(t for _, t in self._times) / len(self._times) if self._times else 0.0

    def admit(self, tier: Tier) -> None:
        """Refuse (429 ``queue_exceeded``) a request whose queue_threshold the recent queue times exceed."""
        if tier.queue_threshold is None:
            return
        avg = self.average()
        if avg > tier.queue_threshold:
            raise queue_exceeded(
                f"The expected queue time ({math.ceil(avg * 1000)} ms) exceeds the queue_threshold of "
                f"{round(tier.queue_threshold * 1000)} ms; the request was not queued.", {"retry-after": "1"})
