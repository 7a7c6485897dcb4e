"""Request-level helpers: reading bodies, API version, waiting for disconnects, error responses."""

from __future__ import annotations

import asyncio
import gzip
import zlib

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ..protocol.errors import APIError, bad_request
from ..protocol.parse import load_json

MAX_BODY = 32 * 1024 * 1024


def error_response(err: APIError) -> Response:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers or None)


async def read_json(request: Request) -> object:
    """The JSON body (gzip/deflate Content-Encoding accepted), or a 400 in the Cerebras shape."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise APIError(413, f"Request body too large: {len(raw)} bytes (limit {MAX_BODY}).", code="request_too_large")
    enc = request.headers.get("content-encoding", "").strip().lower()
    try:
        if enc == "gzip":
            raw = gzip.decompress(raw)
        elif enc == "deflate":
            raw = zlib.decompress(raw)
        elif enc not in ("", "identity"):
            raise bad_request(f"Unsupported Content-Encoding: {enc!r}", "content-encoding")
    except (OSError, EOFError, zlib.error) as e:
        raise bad_request(f"Body could not be decompressed ({enc}): {e}", "body") from e
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if "msgpack" in ctype:
        raise bad_request("msgpack request bodies are not supported by wafer; send JSON", "content-type")
    return load_json(raw)


def api_version(request: Request) -> int:
    v = request.headers.get("x-cerebras-version-patch")
    try:
        return int(v) if v else 1
    except ValueError:
        raise bad_request(f"X-Cerebras-Version-Patch must be an integer, got {v!r}", "X-Cerebras-Version-Patch")


async def wait_disconnect(request: Request) -> None:
    """Returns when the client goes away (the body has been read already)."""
    while True:
        msg = await request.receive()
        if msg["type"] == "http.disconnect":
            return


async def until_done_or_disconnect(request: Request, coro):
    """Run ``coro``; if the client disconnects first, cancel it and return None."""
    task = asyncio.ensure_future(coro)
    watcher = asyncio.ensure_future(wait_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        return None
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
