"""The gate every HTTP request passes: request id, API key, rate-limit headers, size, access log.

A plain ASGI middleware (no per-chunk work on streams beyond one dict lookup): it

* gives each request an id (the client's ``x-request-id`` when it is a sane token, else a new one),
  returned in the ``x-request-id`` response header and written to the access log;
* checks the API key of every ``/v1`` request (``auth.KeySet``) and finds the key's rate-limit
  buckets, which the routes charge (``admit``) and whose state goes out as ``x-ratelimit-*``
  headers on every ``/v1`` response;
* refuses a body whose ``Content-Length`` is over the limit before reading it (413);
* counts requests by route and status and logs one JSON line per request (``wafer.access``) with
  the key's name — never the key.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field

from ..protocol.errors import APIError
from .auth import KeySet, NotAuthenticated
from .http import too_large
from .metrics import Metrics
from .ratelimit import RateLimiter

access_log = logging.getLogger("wafer.access")

_RID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/tcp_warming", "/public/v1/models",
          "/health", "/ready", "/metrics", "/wafer/stats", "/wafer/models", "/openapi.json", "/docs", "/")
OPEN_KEY = "open"  # the bucket set shared by all requests when the server runs without keys


def route_of(path: str) -> str:
    if path in ROUTES:
        return path
    if path.startswith("/v1/models/"):
        return "/v1/models/{model_id}"
    if path.startswith("/public/v1/models/"):
        return "/public/v1/models/{model_id}"
    return "other"


@dataclass
class Policy:
    """Server-wide admission settings (``wafer serve`` flags)."""

    keys: KeySet = field(default_factory=KeySet)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    metrics: Metrics = field(default_factory=Metrics)
    max_body_bytes: int = 8 * 1024 * 1024
    body_timeout: float = 30.0  # seconds to receive a whole request body (slow bodies get a 408)
    max_messages: int = 2048
    request_timeout: float = 600.0  # seconds a request may take end to end (0: no limit)
    access_log: bool = True
    draining: bool = False  # set on SIGTERM/SIGINT: /ready answers 503


def _json_response(status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()):
    data = json.dumps(body).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                         *headers]}
    return start, {"type": "http.response.body", "body": data}


class Gate:
    def __init__(self, app, policy: Policy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy
        t0 = time.perf_counter()
        headers = dict(scope.get("headers") or ())
        rid = headers.get(b"x-request-id", b"").decode("latin-1")
        if not _RID.match(rid):
            rid = "req_" + uuid.uuid4().hex
        path = scope.get("path", "")
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        extra = [(b"x-request-id", rid.encode())]
        status = [0]
        limits = None
        key_name = None

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                more = extra
                if limits is not None:
                    more = more + [(k.encode(), v.encode()) for k, v in limits.headers().items()]
                message = {**message, "headers": [*message.get("headers", ()), *more]}
            await send(message)

        try:
            if path.startswith("/v1/"):
                try:
                    key = policy.keys.check(headers.get(b"authorization", b"").decode("latin-1") or None)
                except NotAuthenticated as e:
                    for m in _json_response(403, {"detail": e.detail}):
                        await send_with_headers(m)
                    return
                except APIError as e:
                    for m in _json_response(e.status, e.body()):
                        await send_with_headers(m)
                    return
                key_name = key.name if key else OPEN_KEY
                limits = policy.limiter.for_key(key_name, key.limits if key else None)
                refresh = getattr(limits, "refresh", None)  # limits kept elsewhere (a scaled-out deployment)
                if refresh is not None:
                    await refresh()
                state["limits"] = limits
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > policy.max_body_bytes:
                err = too_large(int(length), policy.max_body_bytes)
                for m in _json_response(413, err.body(), [(k.encode(), v.encode()) for k, v in err.headers.items()]):
                    await send_with_headers(m)
                return
            await self.app(scope, receive, send_with_headers)
        except Exception:
            status[0] = status[0] or 500  # answered by Starlette's ServerErrorMiddleware, outside the gate
            raise
        finally:
            self._record(scope, state, status[0], time.perf_counter() - t0, key_name)

    def _record(self, scope, state: dict, status: int, seconds: float, key: str | None) -> None:
        route = route_of(scope.get("path", ""))
        m = self.policy.metrics
        m.requests.inc(route, str(status or 499))
        m.duration.observe(seconds, route)
        if not self.policy.access_log or route in ("/metrics", "/health", "/ready"):
            return
        line = {
            "ts": round(time.time(), 3),
            "request_id": state.get("request_id"),
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": status or 499,  # 499: the client went away before a response started
            "ms": round(seconds * 1000, 1),
            "client": (scope.get("client") or ("", 0))[0],
            "key": key,
        }
        for k in ("model", "stream", "prompt_tokens", "completion_tokens", "cached_tokens", "error"):
            if k in state:
                line[k] = state[k]
        access_log.info(json.dumps(line))
