"""wafer.client against injected faults on a loopback server: retries (attempts, delays with the sleep
injected), retry-after, x-should-retry, timeouts, resets, dropped connections, mid-stream errors."""

from __future__ import annotations

import asyncio
import email.utils
import time

import httpx
import pytest
from test_client_loopback import (
    SSE,
    AsyncSleeps,
    Drop,
    Reply,
    Reset,
    Sleeps,
    Truncated,
    chunk,
    error_body,
    wafer_client,
)

import wafer.client as wc

pytestmark = pytest.mark.model_free  # needs no model file

MSG = [{"role": "user", "content": "hi"}]
BACKOFF = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]  # with jitter 0: min(0.5 * 2**k, 8)


def create(client, **kw):
    return client.chat.completions.create(model="m", messages=MSG, **kw)


@pytest.mark.parametrize(
    "status,exc",
    [
        (408, wc.APIStatusError),
        (409, wc.ConflictError),
        (429, wc.RateLimitError),
        (500, wc.InternalServerError),
        (503, wc.InternalServerError),
    ],
)
def test_retryable_statuses_exhaust_retries(loopback, status, exc):
    loopback.default("/v1/chat/completions", Reply(status, json=error_body(status)))
    sleeps = Sleeps()
    client = wafer_client(loopback.url, sleeps=sleeps)
    with pytest.raises(exc) as err:
        create(client)
    assert type(err.value) is exc and err.value.status_code == status
    assert err.value.body == error_body(status)
    assert err.value.message == f"Error code: {status} - {error_body(status)}"
    assert [r.headers["x-stainless-retry-count"] for r in loopback.requests] == ["0", "1", "2"]
    assert sleeps == BACKOFF[:2]
    assert len({r.body for r in loopback.requests}) == 1  # the same body every attempt


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 402, 413])
def test_other_4xx_not_retried(loopback, status):
    loopback.default("/v1/chat/completions", Reply(status, json=error_body(status)))
    client = wafer_client(loopback.url)
    with pytest.raises(wc.APIStatusError) as err:
        create(client)
    expected = {400: wc.BadRequestError, 401: wc.AuthenticationError, 403: wc.PermissionDeniedError,
                404: wc.NotFoundError, 422: wc.UnprocessableEntityError}.get(status, wc.APIStatusError)
    assert type(err.value) is expected and err.value.status_code == status
    assert len(loopback.requests) == 1 and client._sleep == []


def test_retry_then_success(loopback):
    loopback.on("/v1/chat/completions", Reply(500, json=error_body(500)), Reply(429, json=error_body(429)))
    sleeps = Sleeps()
    client = wafer_client(loopback.url, sleeps=sleeps, jitter=1.0)
    raw = client.chat.completions.with_raw_response.create(model="m", messages=MSG)
    assert raw.retries_taken == 2 and raw.parse().choices[0].message.content == "Hello!"
    assert sleeps == [0.375, 0.75]  # jitter 1 → * (1 - 0.25)


def test_backoff_caps_at_eight_seconds(loopback):
    loopback.default("/v1/chat/completions", Reply(503, json=error_body(503)))
    sleeps = Sleeps()
    client = wafer_client(loopback.url, sleeps=sleeps, max_retries=6)
    with pytest.raises(wc.InternalServerError):
        create(client)
    assert sleeps == BACKOFF and len(loopback.requests) == 7


@pytest.mark.parametrize(
    "headers,expected",
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "60"}, 60.0),
        ({"retry-after": "61"}, 0.5),  # out of (0, 60]: backoff
        ({"retry-after": "0"}, 0.5),
        ({"retry-after": "-10"}, 0.5),
        ({"retry-after": "soon"}, 0.5),
    ],
)
def test_retry_after_headers(loopback, headers, expected):
    loopback.on("/v1/chat/completions", Reply(429, json=error_body(429), headers=headers))
    sleeps = Sleeps()
    create(wafer_client(loopback.url, sleeps=sleeps))
    assert sleeps == [pytest.approx(expected)]


def test_retry_after_http_date(loopback):
    when = email.utils.formatdate(time.time() + 10, usegmt=True)
    loopback.on("/v1/chat/completions", Reply(503, json=error_body(503), headers={"retry-after": when}))
    sleeps = Sleeps()
    create(wafer_client(loopback.url, sleeps=sleeps))
    assert 8 < sleeps[0] <= 10


def test_x_should_retry_overrides_status(loopback):
    loopback.on("/v1/chat/completions", Reply(400, json=error_body(400), headers={"x-should-retry": "true"}))
    client = wafer_client(loopback.url)
    assert create(client).id == "chatcmpl-1" and len(loopback.requests) == 2
    loopback.reset()
    loopback.on("/v1/chat/completions", Reply(500, json=error_body(500), headers={"x-should-retry": "false"}))
    with pytest.raises(wc.InternalServerError):
        create(client)
    assert len(loopback.requests) == 1
    loopback.reset()
    loopback.on("/v1/chat/completions", Reply(500, json=error_body(500), headers={"x-should-retry": "TRUE"}))
    create(client)  # not exactly "true"/"false": the status rule applies (500 → retried)
    assert len(loopback.requests) == 2


def test_max_retries_zero_and_with_options(loopback):
    loopback.default("/v1/chat/completions", Reply(500, json=error_body(500)))
    client = wafer_client(loopback.url, max_retries=0)
    with pytest.raises(wc.InternalServerError):
        create(client)
    assert len(loopback.requests) == 1
    loopback.reset()
    more = client.with_options(max_retries=4, warm_tcp_connection=False)
    with pytest.raises(wc.InternalServerError):
        create(more)
    assert len(loopback.requests) == 5 and more._sleep == BACKOFF[:4]
    with pytest.raises(TypeError):
        wc.Cerebras(api_key="k", base_url=loopback.url, max_retries=None, warm_tcp_connection=False)


def test_slow_read_times_out_and_retries(loopback):
    loopback.default("/v1/chat/completions", Reply(json={}, delay=1.0))
    sleeps = Sleeps()
    client = wafer_client(loopback.url, sleeps=sleeps, timeout=0.15, max_retries=1)
    t = time.monotonic()
    with pytest.raises(wc.APITimeoutError) as err:
        create(client)
    assert time.monotonic() - t < 0.9
    assert isinstance(err.value, wc.APIConnectionError) and err.value.message == "Request timed out."
    assert isinstance(err.value.__cause__, httpx.TimeoutException)
    assert len(loopback.requests) == 2 and sleeps == [0.5]
    assert loopback.requests[0].headers["x-stainless-read-timeout"] == "0.15"


def test_per_request_timeout(loopback):
    loopback.on("/v1/chat/completions", Reply(json={}, delay=1.0))
    client = wafer_client(loopback.url, max_retries=0)
    with pytest.raises(wc.APITimeoutError):
        create(client, timeout=httpx.Timeout(0.1, connect=1.0))
    assert loopback.requests[0].headers["x-stainless-read-timeout"] == "0.1"


@pytest.mark.parametrize("fault", [Reset(), Drop(), Truncated()])
def test_broken_connections_retried_then_connection_error(loopback, fault):
    loopback.default("/v1/chat/completions", fault)
    sleeps = Sleeps()
    client = wafer_client(loopback.url, sleeps=sleeps)
    with pytest.raises(wc.APIConnectionError) as err:
        create(client)
    assert type(err.value) is wc.APIConnectionError and err.value.message == "Connection error."
    assert err.value.request.url.path == "/v1/chat/completions"
    assert len(loopback.requests) == 3 and sleeps == BACKOFF[:2]


def test_fault_then_recovery(loopback):
    loopback.on("/v1/chat/completions", Reset(), Drop())
    raw = wafer_client(loopback.url).chat.completions.with_raw_response.create(model="m", messages=MSG)
    assert raw.retries_taken == 2 and raw.parse().id == "chatcmpl-1"


def test_connection_refused():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    client = wafer_client(f"http://127.0.0.1:{port}", sleeps=sleeps)
    with pytest.raises(wc.APIConnectionError):
        client.models.list()
    assert sleeps == BACKOFF[:2]


def test_warming_swallows_failures(loopback):
    loopback.default("/v1/tcp_warming", Reply(500, json=error_body(500)))
    sleeps = Sleeps()
    client = wafer_client(loopback.url, sleeps=sleeps, warm_tcp_connection=True)
    assert loopback.paths() == ["/v1/tcp_warming"] * 3 and sleeps == BACKOFF[:2]
    assert all(r.headers["x-stainless-read-timeout"] == "1" for r in loopback.requests)
    assert "content-type" not in loopback.requests[0].headers
    assert create(client).id == "chatcmpl-1"


def test_stream_mid_stream_error_raises_by_status_code(loopback):
    err_event = {"error": {"message": "boom", "code": "queue_exceeded", "type": "", "param": "", "id": ""}, "status_code": 429}
    loopback.on("/v1/chat/completions", SSE([chunk(role="assistant"), chunk("Hi"), err_event]))
    client = wafer_client(loopback.url)
    got = []
    with pytest.raises(wc.RateLimitError) as err:
        for c in create(client, stream=True):
            got.append(c.choices[0].delta.content)
    assert got == [None, "Hi"] and len(loopback.requests) == 1  # never retried mid-stream
    assert err.value.status_code == 429 and err.value.message == "boom"
    assert err.value.body == err_event["error"] and err.value.response.status_code == 200


@pytest.mark.parametrize(
    "event,exc,message",
    [
        ({"error": {"message": ""}, "status_code": 500}, wc.InternalServerError, "An error occurred during streaming"),
        ({"error": {"message": "bad"}, "status_code": 400}, wc.BadRequestError, "bad"),
        ({"error": "text"}, wc.APIStatusError, "An error occurred during streaming"),
        ("event: error\ndata: {\"error\": {\"message\": \"named\"}, \"status_code\": 503}\n\n", wc.InternalServerError, "named"),
    ],
)
def test_stream_error_variants(loopback, event, exc, message):
    loopback.on("/v1/chat/completions", SSE([chunk(role="assistant"), event]))
    with pytest.raises(exc) as err:
        list(create(wafer_client(loopback.url), stream=True))
    assert type(err.value) is exc and err.value.message == message


def test_stream_status_error_retried_before_first_byte(loopback):
    loopback.on("/v1/chat/completions", Reply(503, json=error_body(503)), SSE([chunk("a"), chunk(finish="stop")]))
    chunks = list(create(wafer_client(loopback.url), stream=True))
    assert [c.choices[0].delta.content for c in chunks] == ["a", None] and len(loopback.requests) == 2


def test_stream_connection_dropped_mid_stream(loopback):
    loopback.on("/v1/chat/completions", SSE([chunk("a"), "data: {\"id\": \"trunc"]))
    stream = create(wafer_client(loopback.url), stream=True)
    first = next(stream)
    assert first.choices[0].delta.content == "a"
    assert list(stream) == []  # an unterminated event at EOF is dropped, as in the SDK
    assert stream.response.is_closed and len(loopback.requests) == 1


def test_stream_close_and_context_manager(loopback):
    loopback.on("/v1/chat/completions", SSE([chunk("a"), chunk("b"), chunk(finish="stop")], gap=0.05))
    with create(wafer_client(loopback.url), stream=True) as stream:
        assert next(stream).choices[0].delta.content == "a"
    assert stream.response.is_closed


def test_error_body_not_json(loopback):
    loopback.on("/v1/chat/completions", Reply(502, body=b"<html>bad gateway</html>"))
    with pytest.raises(wc.InternalServerError) as err:
        create(wafer_client(loopback.url, max_retries=0))
    assert err.value.message == "<html>bad gateway</html>" and err.value.body == "<html>bad gateway</html>"
    loopback.on("/v1/chat/completions", Reply(418, body=b""))
    with pytest.raises(wc.APIStatusError) as err:
        create(wafer_client(loopback.url, max_retries=0))
    assert err.value.message == "Error code: 418"


def test_status_code_in_body_wins(loopback):
    loopback.on("/v1/chat/completions", Reply(400, json={"error": {"message": "m"}, "status_code": 429}))
    with pytest.raises(wc.RateLimitError) as err:
        create(wafer_client(loopback.url))
    assert err.value.status_code == 429 and err.value.body == {"message": "m"}


def test_async_retries_and_faults(loopback):
    loopback.on("/v1/chat/completions", Reply(429, json=error_body(429), headers={"retry-after-ms": "20"}), Reset())
    loopback.on("/v1/models", Reply(json={}, delay=1.0))

    async def main():
        sleeps = AsyncSleeps()
        client = wc.AsyncCerebras.__new__(wc.AsyncCerebras)
        client._sleep, client._random = sleeps, (lambda: 0.0)
        wc.AsyncCerebras.__init__(client, api_key="k", base_url=loopback.url, warm_tcp_connection=False)
        async with client:
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=MSG)
            assert raw.retries_taken == 2 and (await raw.parse()).id == "chatcmpl-1"
            assert sleeps == [0.02, 1.0]
            with pytest.raises(wc.APITimeoutError):
                await client.with_options(timeout=0.1, max_retries=0, warm_tcp_connection=False).models.list()
            loopback.on("/v1/chat/completions", SSE([chunk("a"), {"error": {"message": "x"}, "status_code": 500}]))
            stream = await client.chat.completions.create(model="m", messages=MSG, stream=True)
            with pytest.raises(wc.InternalServerError):
                async for _ in stream:
                    pass
            assert stream.response.is_closed

    asyncio.run(main())
    assert [r.headers["x-stainless-async"] for r in loopback.requests] == ["async:asyncio"] * 5
