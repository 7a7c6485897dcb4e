"""Raw responses (spec 6.7): ``.with_raw_response`` and ``.with_streaming_response``.

``with_raw_response.<method>(...)`` sends the header ``X-Stainless-Raw-Response: raw`` and returns an
``APIResponse`` (headers, status, ``.parse()`` = what the method would have returned). With
``with_streaming_response`` the header says ``stream``: the body is not read until asked for, and the
call is a context manager that closes the response on exit.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import cached_property
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    TypeVar,
)

import httpx

from ._constants import RAW_RESPONSE_HEADER
from ._exceptions import APIResponseValidationError, StreamAlreadyConsumed
from ._logs import logger
from ._models import BaseModel, is_model_type

if TYPE_CHECKING:
    from ._ratelimit import RateLimitInfo
    from ._request import FinalRequestOptions

__all__ = ["APIResponse", "AsyncAPIResponse", "AsyncResponseContextManager", "ResponseContextManager", "ResponseView"]

log = logger
R = TypeVar("R")


class _BaseAPIResponse(Generic[R]):
    http_response: httpx.Response
    retries_taken: int

    def __init__(
        self,
        *,
        raw: httpx.Response,
        cast_to: Any,
        client: Any,
        stream: bool,
        stream_cls: Any,
        options: FinalRequestOptions,
        retries_taken: int = 0,
    ) -> None:
        self.http_response = raw
        self._cast_to = cast_to
        self._client = client
        self._is_sse_stream = stream
        self._stream_cls = stream_cls
        self._options = options
        self._parsed: dict[Any, Any] = {}
        self.retries_taken = retries_taken

    headers = property(lambda self: self.http_response.headers)
    http_request = property(lambda self: self.http_response.request)
    status_code = property(lambda self: self.http_response.status_code)
    url = property(lambda self: self.http_response.url)
    method = property(lambda self: self.http_request.method)
    http_version = property(lambda self: self.http_response.http_version)
    is_closed = property(lambda self: self.http_response.is_closed)

    @property
    def elapsed(self) -> datetime.timedelta:
        return self.http_response.elapsed

    @property
    def rate_limits(self) -> RateLimitInfo | None:
        from ._ratelimit import RateLimitInfo

        return RateLimitInfo.from_headers(self.headers)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self.status_code} {self.http_response.reason_phrase}] type={self._cast_to}>"

    def _parse(self, to: Any = None) -> Any:
        response = self.http_response
        if self._is_sse_stream:
            stream_cls = to or self._stream_cls or self._client._default_stream_cls
            cast_to = getattr(stream_cls, "__args__", (self._cast_to,))[0]
            stream_cls = getattr(stream_cls, "__origin__", stream_cls)
            return stream_cls(cast_to=cast_to, response=response, client=self._client, options=self._options)

        cast_to = to if to is not None else self._cast_to
        if cast_to is type(None):
            return None
        if cast_to is str:
            return response.text
        if cast_to is bytes:
            return response.content
        if cast_to in (int, float):
            return cast_to(response.text)
        if cast_to is bool:
            return response.text.lower() == "true"
        if cast_to is httpx.Response:
            return response

        content_type = response.headers.get("content-type", "*").split(";")[0]
        if not content_type.endswith("json"):
            if is_model_type(cast_to):
                try:
                    return self._from_json(response.json(), cast_to)
                except ValueError as exc:
                    log.debug("Could not read JSON from response data due to %s - %s", type(exc), exc)
            if self._client._strict_response_validation:
                raise APIResponseValidationError(
                    response=response,
                    body=response.text,
                    message=f"Expected Content-Type response header to be `application/json` but received `{content_type}` instead.",
                )
            return response.text
        return self._from_json(response.json(), cast_to)

    def _from_json(self, data: object, cast_to: Any) -> Any:
        value = self._client._process_data(data, cast_to, self.http_response)
        if isinstance(value, BaseModel):
            value._rate_limits = self.rate_limits
        return value

    def _finish_parse(self, to: Any) -> Any:
        parsed = self._parse(to)
        post_parser = self._options.post_parser
        if callable(post_parser):
            parsed = post_parser(parsed)
        self._parsed[to if to is not None else self._cast_to] = parsed
        return parsed


class APIResponse(_BaseAPIResponse[R]):
    def parse(self, *, to: Any = None) -> R:
        """What the method would have returned (or the body cast to ``to``); cached."""
        key = to if to is not None else self._cast_to
        if key in self._parsed:
            return self._parsed[key]
        if not self._is_sse_stream:
            self.read()
        return self._finish_parse(to)

    def read(self) -> bytes:
        try:
            return self.http_response.read()
        except httpx.StreamConsumed as exc:
            raise StreamAlreadyConsumed() from exc

    def text(self) -> str:
        self.read()
        return self.http_response.text

    def json(self) -> object:
        self.read()
        return self.http_response.json()

    def close(self) -> None:
        self.http_response.close()

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        yield from self.http_response.iter_bytes(chunk_size)

    def iter_text(self, chunk_size: int | None = None) -> Iterator[str]:
        yield from self.http_response.iter_text(chunk_size)

    def iter_lines(self) -> Iterator[str]:
        yield from self.http_response.iter_lines()


class AsyncAPIResponse(_BaseAPIResponse[R]):
    async def parse(self, *, to: Any = None) -> R:
        key = to if to is not None else self._cast_to
        if key in self._parsed:
            return self._parsed[key]
        if not self._is_sse_stream:
            await self.read()
        return self._finish_parse(to)

    async def read(self) -> bytes:
        try:
            return await self.http_response.aread()
        except httpx.StreamConsumed as exc:
            raise StreamAlreadyConsumed() from exc

    async def text(self) -> str:
        await self.read()
        return self.http_response.text

    async def json(self) -> object:
        await self.read()
        return self.http_response.json()

    async def close(self) -> None:
        await self.http_response.aclose()

    async def iter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        async for chunk in self.http_response.aiter_bytes(chunk_size):
            yield chunk

    async def iter_text(self, chunk_size: int | None = None) -> AsyncIterator[str]:
        async for chunk in self.http_response.aiter_text(chunk_size):
            yield chunk

    async def iter_lines(self) -> AsyncIterator[str]:
        async for chunk in self.http_response.aiter_lines():
            yield chunk


class ResponseContextManager(Generic[R]):
    """Sends the request on ``__enter__``; closes the response on ``__exit__``."""

    def __init__(self, request: Callable[[], Any]) -> None:
        self._request = request
        self._response: Any = None

    def __enter__(self) -> Any:
        self._response = self._request()
        return self._response

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._response is not None:
            self._response.close()


class AsyncResponseContextManager(Generic[R]):
    def __init__(self, request: Awaitable[Any]) -> None:
        self._request = request
        self._response: Any = None

    async def __aenter__(self) -> Any:
        self._response = await self._request
        return self._response

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._response is not None:
            await self._response.close()


def _with_raw_header(kwargs: dict[str, Any], value: str) -> dict[str, Any]:
    return {**kwargs, "extra_headers": {**(kwargs.get("extra_headers") or {}), RAW_RESPONSE_HEADER: value}}


def raw_response_wrapper(func: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **_with_raw_header(kwargs, "raw"))

    return wrapped


def streamed_response_wrapper(func: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        kwargs = _with_raw_header(kwargs, "stream")
        if is_async:
            return AsyncResponseContextManager(func(*args, **kwargs))
        return ResponseContextManager(functools.partial(func, *args, **kwargs))

    return wrapped


class ResponseView:
    """``<resource or client>.with_raw_response`` / ``.with_streaming_response``: the same tree of
    resources, whose API methods (``_api_methods``) are wrapped."""

    def __init__(self, target: Any, wrap: Callable[[Callable[..., Any], bool], Callable[..., Any]]) -> None:
        self._target = target
        self._wrap = wrap

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(self._target, name)
        if name in getattr(self._target, "_api_methods", ()):
            client = getattr(self._target, "_client", self._target)
            return self._wrap(attr, client._is_async)
        if hasattr(attr, "_api_methods"):
            return ResponseView(attr, self._wrap)
        raise AttributeError(f"{type(self._target).__name__}.{name} has no raw-response form")


class ResponseViews:
    """``with_raw_response`` and ``with_streaming_response`` of a client or a resource."""

    #: the methods the views wrap (resources list theirs; a client has none of its own)
    _api_methods: tuple = ()

    @cached_property
    def with_raw_response(self) -> Any:
        """The same methods, returning the ``APIResponse`` (headers, status, ``.parse()``):
        ``client.with_raw_response.chat.completions.create(...)``."""
        return ResponseView(self, raw_response_wrapper)

    @cached_property
    def with_streaming_response(self) -> Any:
        """The same methods as context managers whose body is read only when asked for:
        ``with client.chat.completions.with_streaming_response.create(...) as response:``."""
        return ResponseView(self, streamed_response_wrapper)
