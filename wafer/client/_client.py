"""``Cerebras`` and ``AsyncCerebras``: configuration, the retry loop, warming, ``with_options``.

The retry loop is written once, without I/O (``_attempts`` yields what to do: send, sleep, close,
read), and run by a blocking driver in ``Cerebras`` and an awaiting one in ``AsyncCerebras``.
"""

from __future__ import annotations

import abc
import asyncio
import importlib.util
import os
import random
import threading
import time
from collections.abc import Callable, Generator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

import httpx
import pydantic

from ._constants import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECTION_LIMITS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    RAW_RESPONSE_HEADER,
    SDK_COMPAT_VERSION,
    WARMING_TIMEOUT,
)
from ._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    CerebrasError,
    make_status_error,
    status_error_from_response,
)
from ._logs import logger
from ._models import construct, validate
from ._ratelimit import RateLimiter, RateLimitInfo
from ._request import (
    FinalRequestOptions,
    json_dumps,
    merge,
    platform_headers,
    stringify_query,
)
from ._response import (
    APIResponse,
    AsyncAPIResponse,
    ResponseViews,
)
from ._retries import parse_retry_after, retry_delay, should_retry
from ._streaming import AsyncStream, Stream
from ._types import NOT_GIVEN, NotGiven, Timeout, is_given

if TYPE_CHECKING:
    from .resources.chat import AsyncChat, Chat
    from .resources.completions import Completions
    from .resources.models import Models

__all__ = ["AsyncCerebras", "AsyncClient", "Cerebras", "Client", "DefaultAsyncHttpxClient", "DefaultHttpxClient"]

log = logger

_HTTP2 = importlib.util.find_spec("h2") is not None
_HTTPX_DEFAULT_TIMEOUT = httpx.Timeout(5.0)
_MISSING_KEY = (
    "The api_key client option must be set either by passing api_key to the client "
    "or by setting the CEREBRAS_API_KEY environment variable"
)

# one step of the retry loop: ("send", (request, stream)), ("sleep", seconds), ("close" | "read", response)
Step = tuple


def _http_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
    kwargs.setdefault("limits", DEFAULT_CONNECTION_LIMITS)
    kwargs.setdefault("follow_redirects", True)
    kwargs.setdefault("http2", _HTTP2)
    return kwargs


class DefaultHttpxClient(httpx.Client):
    """``httpx.Client`` with the SDK's defaults (timeout, limits, redirects, HTTP/2 when h2 is installed)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_http_defaults(kwargs))


class DefaultAsyncHttpxClient(httpx.AsyncClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_http_defaults(kwargs))


class _OwnedHttpxClient(DefaultHttpxClient):
    """The client we made ourselves: closed when garbage-collected."""

    def __del__(self) -> None:
        try:
            if not self.is_closed:
                self.close()
        except Exception:
            pass


class _OwnedAsyncHttpxClient(DefaultAsyncHttpxClient):
    def __del__(self) -> None:
        try:
            if not self.is_closed:
                asyncio.get_running_loop().create_task(self.aclose())
        except Exception:
            pass


def _custom_headers_from_env(default_headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """``CEREBRAS_CUSTOM_HEADERS``: "Name: value" lines, under the explicit ``default_headers``."""
    env = os.environ.get("CEREBRAS_CUSTOM_HEADERS")
    if env is None:
        return default_headers
    parsed = {}
    for line in env.split("\n"):
        name, colon, value = line.partition(":")
        if colon:
            parsed[name.strip()] = value.strip()
    return {**parsed, **(default_headers if isinstance(default_headers, Mapping) else {})}


class _BaseClient(ResponseViews, abc.ABC):
    """What both clients share; ``with_raw_response`` / ``with_streaming_response`` come from ``ResponseViews``."""

    _is_async: bool = False
    _default_stream_cls: type = Stream
    _response_cls: type = APIResponse
    _http_client_cls: type = httpx.Client
    _owned_http_client_cls: type = _OwnedHttpxClient

    api_key: str
    max_retries: int
    timeout: Timeout

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | httpx.URL | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        max_retries: int = DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, object] | None = None,
        http_client: Any = None,
        _strict_response_validation: bool = False,
        warm_tcp_connection: bool = True,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        if api_key is None:
            api_key = os.environ.get("CEREBRAS_API_KEY")
        if api_key is None:
            raise CerebrasError(_MISSING_KEY)
        self.api_key = api_key
        if base_url is None:
            base_url = os.environ.get("CEREBRAS_BASE_URL") or DEFAULT_BASE_URL
        if max_retries is None:
            raise TypeError(
                "max_retries cannot be None. If you want to disable retries, pass `0`; if you want unlimited "
                "retries, pass `math.inf` or a very high number; if you want the default behavior, pass "
                "`wafer.client.DEFAULT_MAX_RETRIES`"
            )
        if http_client is not None and not isinstance(http_client, self._http_client_cls):
            raise TypeError(
                f"Invalid `http_client` argument; Expected an instance of `{self._http_client_cls.__module__}."
                f"{self._http_client_cls.__name__}` but got {type(http_client)}"
            )
        if not is_given(timeout):
            # a custom http_client's own (non-default) timeout is kept
            use_clients = http_client is not None and http_client.timeout != _HTTPX_DEFAULT_TIMEOUT
            timeout = http_client.timeout if use_clients else DEFAULT_TIMEOUT
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self._custom_headers = dict(_custom_headers_from_env(default_headers) or {})
        self._custom_query = dict(default_query or {})
        self._strict_response_validation = _strict_response_validation
        self._rate_limiter = rate_limiter
        self._client = http_client or self._owned_http_client_cls(base_url=base_url, timeout=timeout)
        self._warming: asyncio.Task | None = None
        if warm_tcp_connection:
            self._start_warming()

    # ---- configuration ------------------------------------------------------------------------

    @property
    def base_url(self) -> httpx.URL:
        return self._base_url

    @base_url.setter
    def base_url(self, url: str | httpx.URL) -> None:
        url = httpx.URL(url)
        self._base_url = url if url.raw_path.endswith(b"/") else url.copy_with(raw_path=url.raw_path + b"/")

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def user_agent(self) -> str:
        return f"{type(self).__name__}/Python {SDK_COMPAT_VERSION}"

    def _async_header(self) -> str:
        return "false"

    @property
    def default_headers(self) -> dict[str, Any]:
        return {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
            **platform_headers(SDK_COMPAT_VERSION),
            **self.auth_headers,
            "X-Stainless-Async": self._async_header(),
            **self._custom_headers,
        }

    @property
    def default_query(self) -> dict[str, object]:
        return dict(self._custom_query)

    @property
    def rate_limiter(self) -> RateLimiter | None:
        return self._rate_limiter

    def copy(
        self,
        *,
        api_key: str | None = None,
        base_url: str | httpx.URL | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
        http_client: Any = None,
        max_retries: int | NotGiven = NOT_GIVEN,
        default_headers: Mapping[str, str] | None = None,
        set_default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, object] | None = None,
        set_default_query: Mapping[str, object] | None = None,
        warm_tcp_connection: bool = True,
        rate_limiter: RateLimiter | None | NotGiven = NOT_GIVEN,
        _extra_kwargs: Mapping[str, Any] = {},
    ) -> Any:
        """A new client with the same options, some overridden; it shares the connection pool.

        Like the SDK's, the copy warms its connection again unless ``warm_tcp_connection=False``.
        """
        if default_headers is not None and set_default_headers is not None:
            raise ValueError("The `default_headers` and `set_default_headers` arguments are mutually exclusive")
        if default_query is not None and set_default_query is not None:
            raise ValueError("The `default_query` and `set_default_query` arguments are mutually exclusive")
        headers = self._custom_headers
        if default_headers is not None:
            headers = {**headers, **default_headers}
        elif set_default_headers is not None:
            headers = dict(set_default_headers)
        params = self._custom_query
        if default_query is not None:
            params = {**params, **default_query}
        elif set_default_query is not None:
            params = dict(set_default_query)
        new = self._create_copy(
            api_key=api_key or self.api_key,
            base_url=base_url or self.base_url,
            timeout=self.timeout if isinstance(timeout, NotGiven) else timeout,
            http_client=http_client or self._client,
            max_retries=max_retries if is_given(max_retries) else self.max_retries,
            default_headers=headers,
            default_query=params,
            _strict_response_validation=self._strict_response_validation,
            warm_tcp_connection=warm_tcp_connection,
            rate_limiter=self._rate_limiter if isinstance(rate_limiter, NotGiven) else rate_limiter,
            **_extra_kwargs,
        )
        return new

    with_options = copy

    def _create_copy(self, **kwargs: Any) -> Any:
        new = type(self).__new__(type(self))
        new._sleep, new._random = self._sleep, self._random  # injected ones (tests) carry over
        type(self).__init__(new, **kwargs)
        return new

    # ---- resources ----------------------------------------------------------------------------

    @cached_property
    def completions(self) -> Completions:
        from .resources.completions import Completions

        return Completions(self)

    @cached_property
    def models(self) -> Models:
        from .resources.models import Models

        return Models(self)


    # ---- building requests --------------------------------------------------------------------

    def _build_headers(self, options: FinalRequestOptions, retries_taken: int) -> httpx.Headers:
        custom = options.headers or {}
        headers = httpx.Headers(merge(self.default_headers, custom))
        given = {name.lower() for name in custom}
        if "x-stainless-retry-count" not in given:
            headers["x-stainless-retry-count"] = str(retries_taken)
        if "x-stainless-read-timeout" not in given:
            timeout = self.timeout if isinstance(options.timeout, NotGiven) else options.timeout
            if isinstance(timeout, httpx.Timeout):
                timeout = timeout.read
            if timeout is not None:
                headers["x-stainless-read-timeout"] = str(timeout)
        return headers

    def _prepare_url(self, url: str) -> httpx.URL:
        merged = httpx.URL(url)
        if merged.is_relative_url:
            return self.base_url.copy_with(raw_path=self.base_url.raw_path + merged.raw_path.lstrip(b"/"))
        return merged

    def _build_request(self, options: FinalRequestOptions, retries_taken: int = 0) -> httpx.Request:
        headers = self._build_headers(options, retries_taken)
        params = merge(self.default_query, options.params or {})
        url = self._prepare_url(options.url)
        if params and url.query:  # keep query parameters written into the url
            params = {**dict(url.params.items()), **params}
            url = url.copy_with(raw_path=url.raw_path.split(b"?", 1)[0])
        kwargs: dict[str, Any] = {}
        if "_" in (url.host or ""):  # https://github.com/encode/httpx/discussions/2880
            kwargs["extensions"] = {"sni_hostname": url.host.replace("_", "-")}
        if options.method.lower() != "get":
            body = options.body()
            if options.content is not None:
                if body is not None:
                    raise TypeError("Passing both `content` and `json_data` is not supported")
                kwargs["content"] = options.content
            elif isinstance(body, bytes):
                kwargs["content"] = body
            else:
                kwargs["content"] = json_dumps(body) if body is not None else None
        else:
            headers.pop("Content-Type", None)
        return self._client.build_request(
            method=options.method,
            url=url,
            headers=headers,
            timeout=self.timeout if isinstance(options.timeout, NotGiven) else options.timeout,
            params=stringify_query(params) if params else None,
            **kwargs,
        )

    # ---- the retry loop, without I/O ------------------------------------------------------------

    def _limited_model(self, options: FinalRequestOptions) -> str | None:
        body = options.json_data
        if self._rate_limiter is None or not isinstance(body, Mapping) or not isinstance(body.get("model"), str):
            return None
        return body["model"]

    def _attempts(self, options: FinalRequestOptions, stream: bool) -> Generator[Step, Any, tuple]:
        """Yields the steps of one call; receives each ``send``'s response (or exception); returns
        ``(response, retries_taken)`` or raises the SDK's exception."""
        max_retries = options.max_retries if is_given(options.max_retries) else self.max_retries
        model = self._limited_model(options)
        retries_taken = 0
        while True:
            if model is not None:
                wait = self._rate_limiter.reserve(model, self._rate_limiter.estimate_tokens(options.json_data))
                if wait > 0:
                    yield ("sleep", wait)
            request = self._build_request(options, retries_taken)
            streamed = stream or request.headers.get(RAW_RESPONSE_HEADER) == "stream"
            log.debug("Sending HTTP Request: %s %s", request.method, request.url)
            outcome = yield ("send", (request, streamed))
            if isinstance(outcome, BaseException):
                if retries_taken >= max_retries:
                    if isinstance(outcome, httpx.TimeoutException):
                        raise APITimeoutError(request=request) from outcome
                    raise APIConnectionError(request=request) from outcome
                delay = retry_delay(retries_taken, None, random=self._random)
                log.info("Retrying request to %s in %f seconds after %r", options.url, delay, outcome)
                yield ("sleep", delay)
                retries_taken += 1
                continue
            response: httpx.Response = outcome
            log.debug('HTTP Response: %s %s "%i %s"', request.method, request.url, response.status_code, response.reason_phrase)
            if model is not None:
                self._rate_limiter.update(
                    model,
                    RateLimitInfo.from_headers(response.headers),
                    status=response.status_code,
                    retry_after=parse_retry_after(response.headers),
                )
            if response.is_success:
                return response, retries_taken
            if retries_taken < max_retries and should_retry(response):
                yield ("close", response)
                delay = retry_delay(retries_taken, response.headers, random=self._random)
                log.info("Retrying request to %s in %f seconds after status %i", options.url, delay, response.status_code)
                yield ("sleep", delay)
                retries_taken += 1
                continue
            if not response.is_closed:
                yield ("read", response)
            raise status_error_from_response(response)

    def _result(
        self, cast_to: Any, options: FinalRequestOptions, response: httpx.Response, stream: bool, stream_cls: Any, retries_taken: int
    ) -> tuple[Any, bool]:
        """``(value, done)``: the raw response or ``httpx.Response`` (done), else an ``APIResponse`` to parse."""
        api_response = self._response_cls(
            raw=response,
            cast_to=cast_to,
            client=self,
            stream=stream,
            stream_cls=stream_cls,
            options=options,
            retries_taken=retries_taken,
        )
        if response.request.headers.get(RAW_RESPONSE_HEADER):
            return api_response, True
        if cast_to is httpx.Response:
            return response, True
        return api_response, False

    def _process_data(self, data: object, cast_to: Any, response: httpx.Response) -> Any:
        if data is None:
            return None
        if cast_to is object:
            return data
        try:
            return validate(cast_to, data) if self._strict_response_validation else construct(cast_to, data)
        except pydantic.ValidationError as err:
            raise APIResponseValidationError(response=response, body=data) from err

    def _make_status_error(self, err_msg: str, *, body: object, response: httpx.Response) -> APIStatusError:
        return make_status_error(err_msg, body=body, response=response)

    # ---- low-level calls (for endpoints without a resource) -------------------------------------

    @abc.abstractmethod
    def request(self, cast_to: Any, options: FinalRequestOptions, *, stream: bool = False, stream_cls: Any = None) -> Any:
        """Send with retries (``Cerebras``: returns the result; ``AsyncCerebras``: a coroutine)."""

    def get(self, path: str, *, cast_to: Any, options: Mapping[str, Any] = {}, stream: bool = False, stream_cls: Any = None) -> Any:
        return self.request(cast_to, FinalRequestOptions.build("get", path, options), stream=stream, stream_cls=stream_cls)

    def post(
        self,
        path: str,
        *,
        cast_to: Any,
        body: object = None,
        content: bytes | None = None,
        options: Mapping[str, Any] = {},
        stream: bool = False,
        stream_cls: Any = None,
    ) -> Any:
        if body is not None and content is not None:
            raise TypeError("Passing both `body` and `content` is not supported")
        opts = FinalRequestOptions.build("post", path, options, json_data=body, content=content)
        return self.request(cast_to, opts, stream=stream, stream_cls=stream_cls)

    def put(self, path: str, *, cast_to: Any, body: object = None, options: Mapping[str, Any] = {}) -> Any:
        return self.request(cast_to, FinalRequestOptions.build("put", path, options, json_data=body))

    def patch(self, path: str, *, cast_to: Any, body: object = None, options: Mapping[str, Any] = {}) -> Any:
        return self.request(cast_to, FinalRequestOptions.build("patch", path, options, json_data=body))

    def delete(self, path: str, *, cast_to: Any, body: object = None, options: Mapping[str, Any] = {}) -> Any:
        return self.request(cast_to, FinalRequestOptions.build("delete", path, options, json_data=body))

    def _warming_options(self) -> FinalRequestOptions:
        return FinalRequestOptions(method="get", url="/v1/tcp_warming", timeout=WARMING_TIMEOUT)

    #: jitter source of the retry backoff (replaceable in tests)
    _random: Callable[[], float] = staticmethod(random.random)


class Cerebras(_BaseClient):
    """Synchronous client with the ``cerebras.cloud.sdk.Cerebras`` contract.

    Beyond it: ``rate_limiter=RateLimiter(...)`` (opt-in waiting instead of 429s), ``.rate_limits`` on
    responses, ``chat.completions.parse`` and ``chat.completions.run_tools``.
    """

    _sleep: Callable[[float], Any] = staticmethod(time.sleep)

    def _start_warming(self) -> None:
        self._warm()

    def _warm(self) -> None:
        """``GET /v1/tcp_warming`` with a 1 s timeout per attempt, through the retry loop; errors are swallowed."""
        try:
            self.request(str, self._warming_options())
        except Exception as e:
            log.debug(f"TCP Warming had exception: {e}")

    @cached_property
    def chat(self) -> Chat:
        from .resources.chat import Chat

        return Chat(self)

    def _drive(self, steps: Generator[Step, Any, tuple]) -> tuple:
        outcome: Any = None
        try:
            while True:
                op, arg = steps.send(outcome)
                outcome = None
                if op == "send":
                    request, streamed = arg
                    try:
                        outcome = self._client.send(request, stream=streamed)
                    except Exception as err:
                        outcome = err
                elif op == "sleep":
                    self._sleep(arg)
                elif op == "close":
                    arg.close()
                elif op == "read":
                    arg.read()
        except StopIteration as done:
            return done.value

    def request(self, cast_to: Any, options: FinalRequestOptions, *, stream: bool = False, stream_cls: Any = None) -> Any:
        response, retries_taken = self._drive(self._attempts(options, stream))
        value, done = self._result(cast_to, options, response, stream, stream_cls, retries_taken)
        return value if done else value.parse()

    def is_closed(self) -> bool:
        return self._client.is_closed

    def close(self) -> None:
        """Close the connection pool (also the one given as ``http_client``)."""
        if hasattr(self, "_client"):
            self._client.close()

    def __enter__(self) -> Cerebras:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _async_library() -> str:
    """``asyncio`` / ``trio`` for the ``X-Stainless-Async`` header (sniffio when installed)."""
    try:
        import sniffio

        return sniffio.current_async_library()
    except Exception:
        pass
    try:
        asyncio.get_running_loop()
        return "asyncio"
    except RuntimeError:
        return "false"


class AsyncCerebras(_BaseClient):
    """Asynchronous client with the ``cerebras.cloud.sdk.AsyncCerebras`` contract.

    Warming does not block the event loop: constructed inside a running asyncio loop, the client warms its
    own connection pool in a background task; constructed outside one, a background thread sends the
    same warming request.
    """

    _is_async = True
    _default_stream_cls = AsyncStream
    _response_cls = AsyncAPIResponse
    _http_client_cls = httpx.AsyncClient
    _owned_http_client_cls = _OwnedAsyncHttpxClient

    @staticmethod
    async def _sleep(seconds: float) -> None:
        import anyio

        await anyio.sleep(seconds)

    def _async_header(self) -> str:
        return f"async:{_async_library()}"

    def _start_warming(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self._warming = loop.create_task(self._warm())
            return
        # no loop to run on yet: the same request from a short-lived sync client, off the caller's thread
        sync = dict(
            api_key=self.api_key,
            base_url=self.base_url,
            max_retries=self.max_retries,
            default_headers=self._custom_headers,
            default_query=self._custom_query,
            warm_tcp_connection=False,
        )
        threading.Thread(target=_warm_in_thread, args=(sync,), name="wafer-client-warming", daemon=True).start()

    async def _warm(self) -> None:
        try:
            await self.request(str, self._warming_options())
        except Exception as e:
            log.debug(f"TCP Warming had exception: {e}")

    @cached_property
    def chat(self) -> AsyncChat:
        from .resources.chat import AsyncChat

        return AsyncChat(self)

    async def _drive(self, steps: Generator[Step, Any, tuple]) -> tuple:
        outcome: Any = None
        try:
            while True:
                op, arg = steps.send(outcome)
                outcome = None
                if op == "send":
                    request, streamed = arg
                    try:
                        outcome = await self._client.send(request, stream=streamed)
                    except Exception as err:
                        outcome = err
                elif op == "sleep":
                    await self._sleep(arg)
                elif op == "close":
                    await arg.aclose()
                elif op == "read":
                    await arg.aread()
        except StopIteration as done:
            return done.value

    async def request(self, cast_to: Any, options: FinalRequestOptions, *, stream: bool = False, stream_cls: Any = None) -> Any:
        response, retries_taken = await self._drive(self._attempts(options, stream))
        value, done = self._result(cast_to, options, response, stream, stream_cls, retries_taken)
        return value if done else await value.parse()

    def is_closed(self) -> bool:
        return self._client.is_closed

    async def close(self) -> None:
        if self._warming is not None and not self._warming.done():
            self._warming.cancel()
        if hasattr(self, "_client"):
            await self._client.aclose()

    async def __aenter__(self) -> AsyncCerebras:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _warm_in_thread(options: dict[str, Any]) -> None:
    client = Cerebras(**options)
    try:
        client._warm()
    finally:
        client.close()


Client = Cerebras
AsyncClient = AsyncCerebras
