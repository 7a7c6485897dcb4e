"""Per-key rate limits: requests and tokens per minute and per day, as Cerebras applies them.

Cerebras (spec 6b): token buckets that refill continuously (not fixed windows); admission estimates
a request's tokens as prompt + (``max_completion_tokens`` or the context left) and refuses it up
front when a bucket cannot pay; whichever limit is hit first applies. wafer does the same per API
key (one shared bucket set when the server runs without keys), and settles the estimate against
the real usage when the request ends, so unused completion tokens flow back.

Every ``/v1`` response carries the ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}-{minute,
day}`` headers (values as decimal strings, resets in seconds as floats). A window with no limit
reports ``UNLIMITED`` as its limit and remaining, and a reset of 0.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..protocol.errors import APIError, request_quota_exceeded, token_quota_exceeded

UNLIMITED = 1_000_000_000  # what an unlimited window reports (the value Cerebras shows for very high limits)
WINDOWS = {"minute": 60.0, "day": 86400.0}


class Bucket:
    """A token bucket of ``capacity`` refilled at ``capacity / period`` per second; full at start."""

    def __init__(self, capacity: int, period: float, now: float):
        self.capacity = capacity
        self.rate = capacity / period
        self.level = float(capacity)
        self.at = now

    def refill(self, now: float) -> None:
        if now > self.at:
            self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
            self.at = now

    def wait_for(self, n: float) -> float | None:
        """Seconds until ``n`` can be paid (0 now); None when ``n`` exceeds the capacity."""
        if n > self.capacity:
            return None
        return max(0.0, (n - self.level) / self.rate)

    def take(self, n: float) -> None:
        self.level -= n

    def give(self, n: float) -> None:
        self.level = min(self.capacity, self.level + n)

    def reset_in(self) -> float:
        return (self.capacity - self.level) / self.rate if self.level < self.capacity else 0.0


@dataclass
class Ticket:
    """What an admitted request was charged (tokens), to settle against its usage."""

    tokens: int


class KeyLimits:
    """The buckets of one key; None for a window without a limit."""

    def __init__(self, limits: dict[str, int], clock=time.monotonic):
        self.clock = clock
        now = clock()
        self.buckets: dict[tuple[str, str], Bucket | None] = {}
        for kind, short in (("requests", "r"), ("tokens", "t")):
            for window, period in WINDOWS.items():
                cap = limits.get(f"{short}p{window[0]}", 0)
                self.buckets[(kind, window)] = Bucket(cap, period, now) if cap > 0 else None

    def _refill(self) -> None:
        now = self.clock()
        for b in self.buckets.values():
            if b is not None:
                b.refill(now)

    def admit(self, tokens: int) -> Ticket:
        """Charge one request and ``tokens`` estimated tokens, or raise the 429 of the first exhausted
        window (requests before tokens, minute before day). Nothing is charged on refusal."""
        self._refill()
        for kind, n in (("requests", 1), ("tokens", tokens)):
            for window in WINDOWS:
                b = self.buckets[(kind, window)]
                if b is None:
                    continue
                wait = b.wait_for(n)
                if wait is None or wait > 0:
                    raise self._refusal(kind, window, n, b, wait)
        for kind, n in (("requests", 1), ("tokens", tokens)):
            for window in WINDOWS:
                b = self.buckets[(kind, window)]
                if b is not None:
                    b.take(n)
        return Ticket(tokens)

    def settle(self, ticket: Ticket, used: int) -> None:
        """Give back what the admission estimate charged beyond the tokens the request used."""
        self._refill()
        back = ticket.tokens - used
        ticket.tokens = used
        for window in WINDOWS:
            b = self.buckets[("tokens", window)]
            if b is not None:
                if back > 0:
                    b.give(back)
                else:
                    b.take(-back)

    def _refusal(self, kind: str, window: str, n: int, b: Bucket, wait: float | None) -> APIError:
        per = f"{kind.capitalize()} per {window}"
        headers = {}  # the x-ratelimit-* headers are added to every /v1 response by the gate
        if wait is not None:
            headers["retry-after"] = str(max(1, math.ceil(wait)))
            headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
        if kind == "requests":
            return request_quota_exceeded(f"{per} limit exceeded - too many requests sent.", headers)
        msg = f"{per} limit exceeded - too many tokens processed."
        if wait is None:
            msg += (f" This request needs up to {n} tokens (prompt + max_completion_tokens), more than the limit of "
                    f"{b.capacity}; lower max_completion_tokens.")
        return token_quota_exceeded(msg, headers)

    def headers(self) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers of this key's current state."""
        self._refill()
        out = {}
        for (kind, window), b in self.buckets.items():
            out[f"x-ratelimit-limit-{kind}-{window}"] = str(b.capacity if b else UNLIMITED)
            out[f"x-ratelimit-remaining-{kind}-{window}"] = str(max(0, int(b.level)) if b else UNLIMITED)
            out[f"x-ratelimit-reset-{kind}-{window}"] = repr(b.reset_in() if b else 0.0)
        return out


class RateLimiter:
    """KeyLimits per key name: ``defaults`` (``--rate-limit``) overridden by a key's own limits."""

    def __init__(self, defaults: dict[str, int] | None = None, clock=time.monotonic):
        self.defaults = dict(defaults or {})
        self.clock = clock
        self._keys: dict[str, KeyLimits] = {}

    def for_key(self, name: str, own: dict[str, int] | None = None) -> KeyLimits:
        kl = self._keys.get(name)
        if kl is None:
            kl = self._keys[name] = KeyLimits({**self.defaults, **(own or {})}, self.clock)
        return kl
