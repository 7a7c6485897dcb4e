"""Request-level helpers: reading bodies, API version, waiting for disconnects, error responses."""

from __future__ import annotations

import asyncio
import re
import zlib

from fastapi import Request
from starlette.requests import ClientDisconnect
from fastapi.responses import JSONResponse, Response

from ..protocol.errors import APIError, bad_request, validation_error
from ..protocol.parse import load_json, load_msgpack

BIG_BODY = 64 * 1024  # bodies above this size are rendered and tokenized in a worker thread


def error_response(err: APIError) -> Response:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers or None)


async def off_loop_if_big(request: Request, fn, *args):
    """``fn(*args)`` in a worker thread when the request body was over BIG_BODY (rendering and
    tokenizing a big prompt would stall the event loop; tokenizing drops the GIL), else inline."""
    if request.state.body_bytes > BIG_BODY:
        return await asyncio.to_thread(fn, *args)
    return fn(*args)


def too_large(size: int, limit: int) -> APIError:
    return APIError(413, f"Request body too large: more than {limit} bytes (got {size}).", code="request_too_large",
                    headers={"connection": "close"})


async def read_raw_body(request: Request, limit: int, timeout: float) -> bytes:
    """The raw body, at most ``limit`` bytes (413 beyond), received within ``timeout`` seconds (408)."""
    chunks: list[bytes] = []
    size = 0

    async def read() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(size, limit)
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), timeout) if timeout else await read()
    except ClientDisconnect:  # gone before the body was complete: nobody reads the answer
        raise APIError(499, "The client closed the connection while sending the body.", code="client_closed") from None
    except asyncio.TimeoutError:
        raise APIError(408, f"The request body was not received within {timeout:g} s.", code="request_timeout",
                       headers={"connection": "close"}) from None
    return b"".join(chunks)


def _decompress(raw: bytes, enc: str, limit: int) -> bytes:
    """gzip/deflate bodies, inflated to at most ``limit`` bytes (a zip bomb is a 413, not an OOM)."""
    if enc in ("", "identity"):
        return raw
    if enc not in ("gzip", "deflate"):
        raise bad_request(f"Unsupported Content-Encoding: {enc!r}", "content-encoding")
    d = zlib.decompressobj(zlib.MAX_WBITS | 16 if enc == "gzip" else zlib.MAX_WBITS)
    try:
        out = d.decompress(raw, limit + 1)
        if len(out) > limit:
            raise too_large(len(out), limit)
        if not d.eof:
            raise bad_request(f"Body could not be decompressed ({enc}): truncated data", "body")
    except zlib.error as e:
        raise bad_request(f"Body could not be decompressed ({enc}): {e}", "body") from None
    return out


#: Content-Type values of msgpack bodies (Cerebras accepts all three); any other type is read as JSON
MSGPACK_TYPES = frozenset({"application/vnd.msgpack", "application/msgpack", "application/x-msgpack"})

#: the behaviour versions of the API (X-Cerebras-Version-Patch)
API_VERSIONS = (1, 2)
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")


async def read_body(request: Request) -> object:
    """The decoded request body: JSON, or msgpack for the msgpack content types, either one possibly
    gzip/deflate-encoded (Content-Encoding); a 400 in the Cerebras shape when it does not decode.
    Bodies over the server's limit are a 413 (as received, inflated and, for msgpack, in their JSON
    form), bodies slower than its body timeout a 408."""
    policy = request.app.state.policy
    raw = await read_raw_body(request, policy.max_body_bytes, policy.body_timeout)
    enc = request.headers.get("content-encoding", "").strip().lower()
    raw = _decompress(raw, enc, policy.max_body_bytes)
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in MSGPACK_TYPES:
        request.state.body_bytes = len(raw)
        return load_json(raw)
    value, size = load_msgpack(raw)
    if size > policy.max_body_bytes:
        raise too_large(size, policy.max_body_bytes)
    request.state.body_bytes = size
    return value


def api_version(request: Request) -> int:
    """The request's API behaviour version: its ``X-Cerebras-Version-Patch`` header, else the server's
    default (``--api-version``). A value that is not a supported version is a 400."""
    v = request.headers.get("x-cerebras-version-patch")
    if v is None:
        return request.app.state.registry.options.api_version
    where = "header.x-cerebras-version-patch"
    v = v.strip()
    if not _INTEGER.fullmatch(v):
        raise validation_error(f"{where}: Input should be a valid integer, unable to parse string as an integer")
    if int(v) not in API_VERSIONS:
        raise validation_error(f"{where}: unsupported API version {int(v)}; the supported versions are "
                               f"{' and '.join(map(str, API_VERSIONS))}")
    return int(v)


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
