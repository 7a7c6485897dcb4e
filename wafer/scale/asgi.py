"""Run one forwarded HTTP request through an ASGI application in-process, as a stream of messages.

An engine replica serves the single-process server's application without a socket: ``relay`` builds
the ASGI scope from a ``Forwarded`` request, hands the body over ``receive`` and yields what the
application sends — ``("start", status, headers)`` once, then ``("body", bytes)`` pieces — as they
come, so server-sent events stream through. When the consumer stops early (the ingress cancelled
the call because its client went away), ``receive`` answers ``http.disconnect`` and later ``send``\\ s
raise ``OSError``, exactly what the application sees when a real connection drops: it cancels the
engine requests and frees their sequences and KV cells.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from .forward import Forwarded

_END = object()
_running: set[asyncio.Task] = set()  # applications still finishing after their consumer left


def scope_of(fwd: Forwarded, server: tuple[str, int] = ("wafer-replica", 80)) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": fwd.method,
        "scheme": "http",
        "path": fwd.path,
        "raw_path": fwd.path.encode(),
        "root_path": "",
        "query_string": fwd.query,
        "headers": list(fwd.headers),
        "client": fwd.client,
        "server": server,
    }


async def relay(app, fwd: Forwarded) -> AsyncIterator[tuple]:
    queue: asyncio.Queue = asyncio.Queue()
    gone = asyncio.Event()
    body_given = False

    async def receive() -> dict:
        nonlocal body_given
        if not body_given:
            body_given = True
            return {"type": "http.request", "body": fwd.body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if gone.is_set():
            raise OSError("the client went away")
        queue.put_nowait(message)

    async def run() -> None:
        try:
            await app(scope_of(fwd), receive, send)
        except Exception as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            queue.put_nowait(e)
        finally:
            queue.put_nowait(_END)

    task = asyncio.ensure_future(run())
    _running.add(task)
    task.add_done_callback(_running.discard)
    try:
        while True:
            msg = await queue.get()
            if msg is _END:
                return
            if isinstance(msg, Exception):
                raise msg
            if msg["type"] == "http.response.start":
                yield ("start", msg["status"], [(bytes(k), bytes(v)) for k, v in msg.get("headers", ())])
            elif msg["type"] == "http.response.body":
                if msg.get("body"):
                    yield ("body", bytes(msg["body"]))
                if not msg.get("more_body", False):
                    return
    finally:
        gone.set()  # an application still running sees the client leave, and cleans up on its own
