"""Per-key rate limits shared by every replica: the buckets live in the state actor.

``LimitsBook`` is the actor's side: the single-process ``RateLimiter`` (same buckets, estimates, 429s
and headers), driven by key name. ``SharedLimiter`` is what a replica's gate uses instead of its own
limiter: ``for_key`` gives a ``SharedKeyLimits`` whose ``admit`` charges the book (one actor call),
whose ``settle`` gives back the unused estimate (fire and forget) and whose ``headers`` are the
book's state as of the request's last call — ``refresh`` (at the gate) or ``admit`` (at the route).
"""

from __future__ import annotations

import time

from ..protocol.errors import APIError
from ..server.ratelimit import RateLimiter, Ticket


class LimitsBook:
    def __init__(self, defaults: dict[str, int] | None = None, clock=time.monotonic):
        self.limiter = RateLimiter(defaults, clock)

    def admit(self, key: str, own: dict | None, tokens: int) -> dict:
        kl = self.limiter.for_key(key, own)
        try:
            ticket = kl.admit(tokens)
        except APIError as e:
            return {"error": {"status": e.status, "message": e.message, "type": e.type, "param": e.param,
                              "code": e.code, "headers": e.headers}, "headers": kl.headers()}
        return {"tokens": ticket.tokens, "headers": kl.headers()}

    def settle(self, key: str, own: dict | None, charged: int, used: int) -> None:
        self.limiter.for_key(key, own).settle(Ticket(charged), used)

    def headers(self, key: str, own: dict | None) -> dict:
        return self.limiter.for_key(key, own).headers()


class SharedKeyLimits:
    def __init__(self, actor, key: str, own: dict | None):
        self.actor, self.key, self.own = actor, key, own
        self._headers: dict[str, str] = {}

    async def refresh(self) -> None:
        self._headers = await self.actor.headers.remote(self.key, self.own)

    async def admit(self, tokens: int) -> Ticket:
        r = await self.actor.admit.remote(self.key, self.own, tokens)
        self._headers = r["headers"]
        if "error" in r:
            raise APIError(**r["error"])
        return Ticket(r["tokens"])

    def settle(self, ticket: Ticket, used: int) -> None:
        self.actor.settle.remote(self.key, self.own, ticket.tokens, used)
        ticket.tokens = used

    def headers(self) -> dict[str, str]:
        return dict(self._headers)


class SharedLimiter:
    def __init__(self, actor):
        self.actor = actor

    def for_key(self, name: str, own: dict | None = None) -> SharedKeyLimits:
        return SharedKeyLimits(self.actor, name, own)
