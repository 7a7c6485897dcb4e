"""A scripted HTTP server on 127.0.0.1 for the wafer.client fault and parity tests (and its own tests).

Each request to a path takes the next action queued for it (``server.on(path, *actions)``), else the
path's default; every request is recorded (method, path, query, headers, body). Actions can answer
(JSON, SSE), wait before answering (slow reads), reset the connection (RST), drop it without an answer,
or cut a body short. Everything is bounded: handler threads are daemons and waits are short.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

CHAT = {
    "id": "chatcmpl-1",
    "choices": [{"finish_reason": "stop", "index": 0, "message": {"content": "Hello!", "role": "assistant"}}],
    "created": 1761231230,
    "model": "m",
    "system_fingerprint": "fp_386b539e7b02ce3613b7",
    "object": "chat.completion",
    "usage": {"prompt_tokens": 22, "completion_tokens": 4, "total_tokens": 26, "prompt_tokens_details": {"cached_tokens": 0}},
    "time_info": {"queue_time": 0.0001, "prompt_time": 0.002, "completion_time": 0.003, "total_time": 0.0067, "created": 1761231230.53},
}


def chunk(content: str | None = None, *, role: str | None = None, finish: str | None = None, **extra: Any) -> dict:
    delta = {k: v for k, v in (("role", role), ("content", content)) if v is not None}
    choice: dict = {"delta": delta, "index": 0}
    if finish:
        choice["finish_reason"] = finish
    return {
        "id": "chatcmpl-2",
        "choices": [choice],
        "created": 1761231233,
        "model": "m",
        "system_fingerprint": "fp_386b539e7b02ce3613b7",
        "object": "chat.completion.chunk",
        **extra,
    }


def error_body(status: int, message: str = "boom", code: str = "x") -> dict:
    return {"message": message, "type": "invalid_request_error", "param": None, "code": code}


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line (a slow read)


@dataclass
class SSE:
    """``data:`` events (dicts are JSON-encoded, strings sent as they are), then the connection closes."""

    events: list
    status: int = 200
    headers: dict = field(default_factory=dict)
    gap: float = 0.0


@dataclass
class Reset:
    """Close with an RST, before any answer."""


@dataclass
class Drop:
    """Close without an answer (FIN)."""


@dataclass
class Truncated:
    """Announce ``length`` bytes, send ``body`` (shorter) and close."""

    body: bytes = b'{"id": "chat'
    length: int = 1000


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict  # lower-cased names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Loopback:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._queues: dict[str, deque] = {}
        self._defaults: dict[str, Any] = {"/v1/tcp_warming": Reply(json={}), "/v1/chat/completions": Reply(json=CHAT)}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        handler = _handler(self)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def on(self, path: str, *actions: Any) -> Loopback:
        with self._lock:
            self._queues.setdefault(path, deque()).extend(actions)
        return self

    def default(self, path: str, action: Any) -> Loopback:
        self._defaults[path] = action
        return self

    def next_action(self, path: str) -> Any:
        with self._lock:
            queue = self._queues.get(path)
            if queue:
                return queue.popleft()
        return self._defaults.get(path, Reply(404, json=error_body(404, "no route", "not_found")))

    def reset(self) -> None:
        with self._lock:
            self._queues.clear()
            self.requests.clear()

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def close(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: Loopback) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            with server._lock:
                server.requests.append(
                    Recorded(self.command, parts.path, parts.query, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            action = server.next_action(parts.path)
            if isinstance(action, Reset):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            if isinstance(action, Drop):
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if isinstance(action, Truncated):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(action.length))
                self.end_headers()
                self.wfile.write(action.body)
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if isinstance(action, SSE):
                self.send_response(action.status)
                self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                self.send_header("Connection", "close")
                for k, v in action.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    for ev in action.events:
                        data = ev if isinstance(ev, str) else "data: " + json.dumps(ev) + "\n\n"
                        self.wfile.write(data.encode())
                        self.wfile.flush()
                        if action.gap:
                            server.wait(action.gap)
                except OSError:
                    pass
                self.close_connection = True
                return
            if action.delay:
                server.wait(action.delay)
            payload = action.body if action.body is not None else json.dumps(action.json).encode()
            try:
                self.send_response(action.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in action.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler


class Sleeps(list):
    """An injected sleep: records each delay, returns at once."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class AsyncSleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def wafer_client(url: str, *, sleeps: list | None = None, jitter: float = 0.0, **kw: Any):
    """A wafer.client.Cerebras on ``url`` with an injected sleep and jitter (no warming unless asked)."""
    from wafer.client import Cerebras

    kw.setdefault("warm_tcp_connection", False)
    client = Cerebras.__new__(Cerebras)
    client._sleep = sleeps if sleeps is not None else Sleeps()
    client._random = lambda: jitter
    Cerebras.__init__(client, api_key="csk-test", base_url=url, **kw)
    return client


# ---- the loopback's own tests ----------------------------------------------------------------------


def test_loopback_scripts_and_records(loopback):
    import httpx

    loopback.on("/x", Reply(503, json={"a": 1}), Reply(json={"b": 2}))
    with httpx.Client(base_url=loopback.url, timeout=5) as h:
        assert h.post("/x", json={"q": 1}).status_code == 503
        assert h.post("/x").json() == {"b": 2}
        assert h.get("/x").status_code == 404
        with pytest.raises(httpx.RemoteProtocolError):
            loopback.on("/y", Drop())
            h.get("/y")
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            loopback.on("/z", Reset())
            h.get("/z")
    assert loopback.paths() == ["/x", "/x", "/x", "/y", "/z"]
    assert loopback.requests[0].json == {"q": 1}


def test_loopback_sse_and_slow_reply(loopback):
    import httpx

    loopback.on("/s", SSE([chunk("a"), ": comment\n\n", "data: [DONE]\n\n"]))
    loopback.on("/slow", Reply(json={}, delay=0.5))
    with httpx.Client(base_url=loopback.url) as h:
        text = h.get("/s").text
        assert text.count("data:") == 2 and ": comment" in text
        t = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            h.get("/slow", timeout=0.1)
        assert time.monotonic() - t < 0.45
