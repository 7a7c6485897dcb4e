"""Rate-limit awareness (spec 6b): the ``x-ratelimit-*`` headers parsed, and an opt-in limiter.

Cerebras sends ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}-{minute,hour,day}`` on every
response; resets are seconds as floats (some deployments send Go durations such as ``2m59.56s``).
``RateLimitInfo.from_headers`` reads them all; responses, streams and raw responses expose it as
``.rate_limits``.

``RateLimiter`` is given to a client (``Cerebras(rate_limiter=RateLimiter(...))``) and makes it wait
before sending instead of collecting 429s. It keeps, per model:

- the windows the server last reported, spent locally by each request sent since (one request, and the
  estimated tokens: prompt characters / 4 plus ``max_completion_tokens``), a window with too little left
  making the next request wait until its reset;
- optional limits of its own (``requests_per_minute``, ``tokens_per_minute``), continuously refilled
  buckets, for servers that send no headers;
- a 429 blocks the model's requests until its ``retry-after`` (or the exhausted window's reset).

A wait longer than ``max_wait`` raises ``RateLimitWaitError`` without sending.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ._exceptions import CerebrasError

__all__ = ["RateLimitInfo", "RateLimitWaitError", "RateLimitWindow", "RateLimiter", "parse_duration"]

_HEADER = re.compile(r"^x-ratelimit-(limit|remaining|reset)-(requests|tokens)(?:-([a-z]+))?$")
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> float | None:
    """Seconds from ``"11.38"`` (float seconds) or a Go duration (``"2m59.56s"``); None if neither."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    parts = _GO_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _GO_UNIT[u] for n, u in parts)


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class RateLimitWindow:
    """One limit: ``kind`` "requests" or "tokens", ``period`` "minute", "hour", "day" (or "" if unnamed)."""

    kind: str
    period: str
    limit: float | None = None
    remaining: float | None = None
    reset: float | None = None  # seconds until the window resets, when the response was received


@dataclass(frozen=True)
class RateLimitInfo:
    windows: Mapping[tuple, RateLimitWindow]
    #: ``time.monotonic()`` when the headers were read
    observed_at: float = field(default_factory=time.monotonic)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo | None:
        found: dict[tuple, dict] = {}
        for name, value in headers.items():
            m = _HEADER.match(name.lower())
            if not m:
                continue
            what, kind, period = m.group(1), m.group(2), m.group(3) or ""
            parsed = parse_duration(value) if what == "reset" else _number(value)
            if parsed is not None:
                found.setdefault((kind, period), {})[what] = parsed
        if not found:
            return None
        return cls({key: RateLimitWindow(key[0], key[1], **vals) for key, vals in found.items()})

    def window(self, kind: str, period: str) -> RateLimitWindow | None:
        return self.windows.get((kind, period))

    requests_minute = property(lambda self: self.window("requests", "minute"))
    requests_hour = property(lambda self: self.window("requests", "hour"))
    requests_day = property(lambda self: self.window("requests", "day"))
    tokens_minute = property(lambda self: self.window("tokens", "minute"))
    tokens_hour = property(lambda self: self.window("tokens", "hour"))
    tokens_day = property(lambda self: self.window("tokens", "day"))


class RateLimitWaitError(CerebrasError):
    """The limiter would have to wait longer than its ``max_wait`` before sending."""

    def __init__(self, wait: float, model: str) -> None:
        super().__init__(f"rate limit of {model!r}: sending now would need a {wait:.1f} s wait (over max_wait)")
        self.wait = wait
        self.model = model


class _Bucket:
    """Continuously refilled: ``capacity`` units, refilled over ``period`` seconds; may go into debt."""

    def __init__(self, capacity: float, period: float, now: float) -> None:
        self.capacity, self.rate, self.level, self.t = capacity, capacity / period, capacity, now

    def wait(self, cost: float, now: float) -> float:
        level = min(self.capacity, self.level + (now - self.t) * self.rate)
        return max(0.0, (min(cost, self.capacity) - level) / self.rate)

    def take(self, cost: float, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.t) * self.rate) - min(cost, self.capacity)
        self.t = now


class _Window:
    """A window the server reported: ``remaining`` until ``reset_at``, then assumed full again."""

    def __init__(self, w: RateLimitWindow, observed_at: float) -> None:
        self.limit = w.limit
        self.remaining = w.remaining
        self.reset_at = observed_at + w.reset if w.reset is not None else None

    def _roll(self, now: float) -> None:
        if self.reset_at is not None and now >= self.reset_at:
            self.remaining, self.reset_at = self.limit, None

    def wait(self, cost: float, now: float) -> float:
        self._roll(now)
        if self.remaining is None or self.remaining >= cost or self.reset_at is None:
            return 0.0
        return self.reset_at - now

    def take(self, cost: float, now: float) -> None:
        self._roll(now)
        if self.remaining is None:
            return
        if self.remaining < cost and self.reset_at is not None:  # this request waited for the reset
            self.remaining, self.reset_at = self.limit, None
        if self.remaining is not None:
            self.remaining -= cost


class _ModelState:
    def __init__(self) -> None:
        self.buckets: dict[str, _Bucket] = {}
        self.windows: dict[tuple, _Window] = {}
        self.blocked_until = 0.0


class RateLimiter:
    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        max_wait: float | None = 60.0,
        default_completion_tokens: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.max_wait = max_wait
        self.default_completion_tokens = default_completion_tokens
        self._clock = clock
        self._lock = threading.Lock()
        self._models: dict[str, _ModelState] = {}

    def _state(self, model: str, now: float) -> _ModelState:
        st = self._models.get(model)
        if st is None:
            st = self._models[model] = _ModelState()
            if self.requests_per_minute:
                st.buckets["requests"] = _Bucket(self.requests_per_minute, 60.0, now)
            if self.tokens_per_minute:
                st.buckets["tokens"] = _Bucket(self.tokens_per_minute, 60.0, now)
        return st

    def estimate_tokens(self, body: object) -> int:
        """Prompt characters / 4 plus the completion budget of a chat or text completion body."""
        if not isinstance(body, Mapping):
            return 0
        prompt = body.get("messages", body.get("prompt", ""))
        budget = body.get("max_completion_tokens", body.get("max_tokens"))
        if not isinstance(budget, int) or budget < 0:
            budget = self.default_completion_tokens
        return len(str(prompt)) // 4 + budget

    def reserve(self, model: str, tokens: int) -> float:
        """Seconds to wait before sending one request of ``tokens``; the capacity is taken now."""
        with self._lock:
            now = self._clock()
            st = self._state(model, now)
            cost = {"requests": 1, "tokens": tokens}
            wait = max(0.0, st.blocked_until - now)
            for kind, bucket in st.buckets.items():
                wait = max(wait, bucket.wait(cost[kind], now))
            for (kind, _), window in st.windows.items():
                wait = max(wait, window.wait(cost[kind], now))
            if self.max_wait is not None and wait > self.max_wait:
                raise RateLimitWaitError(wait, model)
            for kind, bucket in st.buckets.items():
                bucket.take(cost[kind], now)
            for (kind, _), window in st.windows.items():
                window.take(cost[kind], now + wait)
            return wait

    def update(self, model: str, info: RateLimitInfo | None, *, status: int, retry_after: float | None) -> None:
        """Take in a response: the server's windows replace ours; a 429 blocks the model for a while."""
        with self._lock:
            now = self._clock()
            st = self._state(model, now)
            if info is not None:
                st.windows = {key: _Window(w, now) for key, w in info.windows.items()}
            if status == 429:
                pause = retry_after if retry_after is not None and retry_after > 0 else None
                if pause is None:
                    resets = [w.reset_at - now for w in st.windows.values() if w.reset_at is not None and (w.remaining or 0) <= 0]
                    pause = min(resets) if resets else 0.0
                st.blocked_until = max(st.blocked_until, now + pause)
