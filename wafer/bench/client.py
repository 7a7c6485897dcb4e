"""A lean asyncio streaming client for OpenAI-compatible chat completions.

Raw asyncio streams and HTTP/1.1 (one connection per request): the client shares the machine's
cores with the server, so every microsecond it spends per token would be measured as server time.
Per request it records when the request was sent, the arrival time of every content chunk (TTFT =
the first, ITL = the gaps), the end, the output tokens (usage.completion_tokens less rejected prediction
tokens from the final chunk when the server sends it, else the number of content chunks), the text,
the usage and time_info objects of the final chunk, and any error. It is the one SSE client of
``wafer bench``: the sweep's levels and the focused benchmarks' single requests alike.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Record:
    """One request's measurements (times from time.perf_counter)."""

    t_send: float
    ok: bool = False
    t_first: float = 0.0
    t_last: float = 0.0
    t_end: float = 0.0
    itl: list[float] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    text: str = ""
    usage: dict | None = None
    time_info: dict | None = None
    status: int | None = None
    error: str | None = None

    @property
    def ttft(self) -> float | None:
        return self.t_first - self.t_send if self.t_first else None

    @property
    def e2e(self) -> float:
        return self.t_end - self.t_send

    def fail(self, error: str, status: int | None = None) -> "Record":
        self.ok, self.error, self.status, self.t_end = False, error, status, time.perf_counter()
        return self


class _Chunks:
    """The body of an HTTP/1.1 response: chunked, Content-Length or read to EOF."""

    def __init__(self, reader: asyncio.StreamReader, headers: dict[str, str]):
        self.reader = reader
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.left = int(headers["content-length"]) if "content-length" in headers else None

    async def next(self) -> bytes:
        r = self.reader
        if self.chunked:
            size = int((await r.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return b""
            data = await r.readexactly(size)
            await r.readline()
            return data
        if self.left is not None:
            data = await r.read(min(self.left, 65536)) if self.left else b""
            self.left -= len(data)
            return data
        return await r.read(65536)

    async def all(self, limit: int = 4096) -> bytes:
        out = b""
        while len(out) < limit and (data := await self.next()):
            out += data
        return out


async def _open(url: str):
    u = urlsplit(url)
    tls = u.scheme == "https"
    port = u.port or (443 if tls else 80)
    reader, writer = await asyncio.open_connection(
        u.hostname, port, ssl=ssl.create_default_context() if tls else None, limit=1 << 20)
    return reader, writer, u


async def stream(base_url: str, path: str, body: dict, api_key: str | None = None, timeout: float = 600.0) -> Record:
    """POST ``body`` to ``base_url + path`` with stream=true and measure the streamed answer."""
    rec = Record(t_send=time.perf_counter())
    try:
        return await asyncio.wait_for(_stream(rec, base_url, path, body, api_key), timeout)
    except asyncio.TimeoutError:
        return rec.fail(f"timeout after {timeout:g} s")
    except (OSError, asyncio.IncompleteReadError, ValueError) as e:
        return rec.fail(f"{type(e).__name__}: {e}")


def stream_one(base_url: str, body: dict, path: str = "/chat/completions", api_key: str | None = None,
               timeout: float = 600.0) -> Record:
    """``stream`` one request on its own (outside an event loop), with ``stream: true`` and usage asked for."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    return asyncio.run(stream(base_url, path, body, api_key, timeout))


async def _stream(rec: Record, base_url: str, path: str, body: dict, api_key: str | None) -> Record:
    reader, writer, u = await _open(base_url)
    try:
        data = json.dumps(body).encode()
        head = (f"POST {u.path.rstrip('/')}{path} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/json\r\n"
                f"Accept: text/event-stream\r\nConnection: close\r\nContent-Length: {len(data)}\r\n")
        if api_key:
            head += f"Authorization: Bearer {api_key}\r\n"
        writer.write(head.encode() + b"\r\n" + data)
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.split(None, 2)
        rec.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        chunks = _Chunks(reader, headers)
        if rec.status != 200:
            text = (await chunks.all()).decode("utf-8", "replace").strip()
            return rec.fail(f"HTTP {rec.status}: {text[:300]}", rec.status)
        return await _events(rec, chunks)
    finally:
        writer.close()


async def _events(rec: Record, chunks: _Chunks) -> Record:
    pending = b""
    n_chunks = 0
    usage = None
    text: list[str] = []
    while data := await chunks.next():
        now = time.perf_counter()
        pending += data
        if b"\r" in pending:
            pending = pending.replace(b"\r\n", b"\n")
        *events, pending = pending.split(b"\n\n")
        for ev in events:
            payload = b"".join(line[5:].strip() for line in ev.split(b"\n") if line.startswith(b"data:"))
            if not payload:
                continue
            if payload == b"[DONE]":
                return _finish(rec, n_chunks, usage, text)
            obj = json.loads(payload)
            if obj.get("error"):
                err = obj["error"]
                return rec.fail(f"stream error: {err.get('message', err) if isinstance(err, dict) else err}")
            for choice in obj.get("choices") or ():
                if content := (choice.get("delta") or {}).get("content"):
                    text.append(content)
                    if n_chunks:
                        rec.itl.append(now - rec.t_last)
                    else:
                        rec.t_first = now
                    rec.t_last = now
                    n_chunks += 1
            usage = obj.get("usage") or usage
            rec.time_info = obj.get("time_info") or rec.time_info
    return _finish(rec, n_chunks, usage, text)


def _finish(rec: Record, n_chunks: int, usage: dict | None, text: list[str]) -> Record:
    rec.t_end = time.perf_counter()
    rec.text, rec.usage = "".join(text), usage
    rec.output_tokens = n_chunks
    if usage:
        details = usage.get("completion_tokens_details") or {}
        # completion_tokens bills rejected prediction tokens too (OpenAI, Cerebras): they were not generated
        rejected = details.get("rejected_prediction_tokens") or 0
        rec.output_tokens = (usage.get("completion_tokens") or n_chunks) - rejected
        rec.accepted_prediction_tokens = details.get("accepted_prediction_tokens")
        rec.prompt_tokens = usage.get("prompt_tokens")
        rec.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if not n_chunks:
        return rec.fail("no content in the stream", rec.status)
    rec.ok = True
    return rec


async def get_json(base_url: str, path: str, api_key: str | None = None, timeout: float = 10.0):
    """GET ``base_url + path`` and parse the JSON answer (None unless 200)."""
    async def go():
        reader, writer, u = await _open(base_url)
        try:
            auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
            writer.write(f"GET {u.path.rstrip('/')}{path} HTTP/1.1\r\nHost: {u.netloc}\r\n{auth}"
                         f"Connection: close\r\n\r\n".encode())
            status = (await reader.readline()).split(None, 2)
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                k, _, v = line.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            body = await _Chunks(reader, headers).all(1 << 20)
            return json.loads(body) if len(status) > 1 and status[1] == b"200" else None
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(go(), timeout)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
        return None
