"""Server-sent events: a WHATWG decoder and the ``Stream`` / ``AsyncStream`` iterators (spec 6.8).

Each ``data:`` event is JSON cast to the stream's item type; ``[DONE]`` ends the stream (so does EOF);
an event with a truthy ``error`` (or ``event: error``) raises the exception of its ``status_code``.
The HTTP response is closed when iteration ends, breaks or fails, and by ``close()`` / ``with``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    TypeVar,
)

import httpx

from ._exceptions import make_status_error

if TYPE_CHECKING:
    from ._ratelimit import RateLimitInfo

__all__ = ["AsyncStream", "SSEDecoder", "ServerSentEvent", "Stream"]

_T = TypeVar("_T")
_EOL = re.compile(rb"\r\n|\r|\n")


class ServerSentEvent:
    def __init__(self, *, event: str | None = None, data: str = "", id: str | None = None, retry: int | None = None):
        self.event = event or None
        self.data = data
        self.id = id
        self.retry = retry

    def json(self) -> Any:
        return json.loads(self.data)

    def __repr__(self) -> str:
        return f"ServerSentEvent(event={self.event}, data={self.data}, id={self.id}, retry={self.retry})"


class SSEDecoder:
    """Incremental: ``feed(bytes)`` returns the events completed so far; an unterminated event at EOF is dropped."""

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[str] = []
        self._last_id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        self._buf += chunk
        events = []
        pos = 0
        for m in _EOL.finditer(self._buf):
            if m.group() == b"\r" and m.end() == len(self._buf):
                break  # a "\r\n" may be split across chunks
            sse = self.decode_line(self._buf[pos : m.start()].decode("utf-8"))
            pos = m.end()
            if sse is not None:
                events.append(sse)
        self._buf = self._buf[pos:]
        return events

    def finish(self) -> list[ServerSentEvent]:
        """End of the body: a trailing "\\r" still ends a line; the event it may leave open is dropped."""
        events = self.feed(b"\n") if self._buf.endswith(b"\r") else []
        self._buf = b""
        return events

    def iter_bytes(self, chunks: Iterator[bytes]) -> Iterator[ServerSentEvent]:
        for chunk in chunks:
            yield from self.feed(chunk)
        yield from self.finish()

    async def aiter_bytes(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[ServerSentEvent]:
        async for chunk in chunks:
            for sse in self.feed(chunk):
                yield sse
        for sse in self.finish():
            yield sse

    def decode_line(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not self._event and not self._data and not self._last_id and self._retry is None:
                return None
            sse = ServerSentEvent(event=self._event, data="\n".join(self._data), id=self._last_id, retry=self._retry)
            self._event, self._data, self._retry = None, [], None  # the last event id is kept (WHATWG)
            return sse
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id" and "\0" not in value:
            self._last_id = value
        elif field == "retry":
            try:
                self._retry = int(value)
            except ValueError:
                pass
        return None


def _item(client: Any, sse: ServerSentEvent, cast_to: Any, response: httpx.Response) -> Any:
    """One event as an item of the stream, or the exception its error payload stands for."""
    data = sse.json()
    if (sse.event is None or sse.event == "error") and isinstance(data, Mapping) and data.get("error"):
        error = data.get("error")
        message = error.get("message") if isinstance(error, Mapping) else None
        if not message or not isinstance(message, str):
            message = "An error occurred during streaming"
        raise make_status_error(message, body=data, response=response)
    if sse.event is not None:
        data = {"data": data, "event": sse.event}
    return client._process_data(data, cast_to, response)


class _StreamBase(Generic[_T]):
    response: httpx.Response

    def __init__(self, *, cast_to: Any, response: httpx.Response, client: Any, options: Any = None) -> None:
        self.response = response
        self._cast_to = cast_to
        self._client = client
        self._options = options
        self._decoder = SSEDecoder()

    @property
    def rate_limits(self) -> RateLimitInfo | None:
        from ._ratelimit import RateLimitInfo

        return RateLimitInfo.from_headers(self.response.headers)


class Stream(_StreamBase[_T]):
    """``for chunk in stream``; ``next(stream)``; ``with stream:``; ``stream.close()``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._iterator = self.__stream__()

    def __next__(self) -> _T:
        return self._iterator.__next__()

    def __iter__(self) -> Iterator[_T]:
        yield from self._iterator

    def __stream__(self) -> Iterator[_T]:
        try:
            for sse in self._decoder.iter_bytes(self.response.iter_bytes()):
                if sse.data.startswith("[DONE]"):
                    break
                yield _item(self._client, sse, self._cast_to, self.response)
        finally:
            self.response.close()

    def __enter__(self) -> Stream[_T]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP response (releases the connection; the server sees the client go)."""
        self.response.close()


class AsyncStream(_StreamBase[_T]):
    """``async for chunk in stream``; ``await anext(stream)``; ``async with stream:``; ``await stream.close()``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._iterator = self.__stream__()

    async def __anext__(self) -> _T:
        return await self._iterator.__anext__()

    async def __aiter__(self) -> AsyncIterator[_T]:
        async for item in self._iterator:
            yield item

    async def __stream__(self) -> AsyncIterator[_T]:
        try:
            async for sse in self._decoder.aiter_bytes(self.response.aiter_bytes()):
                if sse.data.startswith("[DONE]"):
                    break
                yield _item(self._client, sse, self._cast_to, self.response)
        finally:
            await self.response.aclose()

    async def __aenter__(self) -> AsyncStream[_T]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.response.aclose()
