"""wafer.client pieces on their own or against the loopback server: SSE decoding, retry delays, strict
schemas, parse(), the tool runner, rate-limit headers and the limiter, warming, client options."""

from __future__ import annotations

import asyncio
import enum
import json
import threading
import time
from typing import Literal

import httpx
import pydantic
import pytest
from test_client_loopback import (
    CHAT,
    SSE,
    Reply,
    Sleeps,
    chunk,
    error_body,
    wafer_client,
)

import wafer.client as wc
from wafer.client._retries import parse_retry_after, retry_delay, should_retry
from wafer.client._streaming import SSEDecoder

pytestmark = pytest.mark.model_free  # needs no model file

MSG = [{"role": "user", "content": "hi"}]


# ---- SSE ------------------------------------------------------------------------------------------


def decode(*chunks: bytes):
    d = SSEDecoder()
    return [(e.event, e.data, e.id, e.retry) for e in d.iter_bytes(iter(chunks))]


def test_sse_decoder():
    assert decode(b"data: a\n\n") == [(None, "a", None, None)]
    assert decode(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n") == [(None, "a", None, None), (None, "b", None, None), (None, "c", None, None)]
    assert decode(b"data: x\ndata: y\n\n") == [(None, "x\ny", None, None)]  # multi-line data joined
    assert decode(b": keep-alive\n\n", b"event: error\nid: 7\nretry: 10\ndata:{}\n\n") == [("error", "{}", "7", 10)]
    assert decode(b"da", b"ta: sp", b"lit\r", b"\n\r\n") == [(None, "split", None, None)]  # \r\n across chunks
    assert decode(b"data: tail\n") == []  # unterminated at EOF: dropped (WHATWG, as the SDK)
    assert decode(b"\n\n\n") == []
    assert decode("data: é\n\n".encode()) == [(None, "é", None, None)]


# ---- retry rules -----------------------------------------------------------------------------------


def test_retry_rules():
    assert [retry_delay(k, random=lambda: 0.0) for k in range(7)] == [0.5, 1, 2, 4, 8, 8, 8]
    assert retry_delay(0, random=lambda: 1.0) == 0.375
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=lambda: 1445412480.0 - 3) == 3.0
    assert parse_retry_after({}) is None and parse_retry_after(None) is None
    assert retry_delay(0, {"retry-after": "61"}, random=lambda: 0.0) == 0.5
    req = httpx.Request("GET", "http://x")
    assert should_retry(httpx.Response(409, request=req)) and not should_retry(httpx.Response(404, request=req))
    assert should_retry(httpx.Response(404, headers={"x-should-retry": "true"}, request=req))


# ---- strict schemas --------------------------------------------------------------------------------


class Color(enum.Enum):
    red = "red"
    blue = "blue"


class Point(pydantic.BaseModel):
    """A point."""

    x: int = pydantic.Field(ge=0, description="left to right")
    y: int = 0


class Shape(pydantic.BaseModel):
    name: str = pydantic.Field(min_length=1, pattern="^[a-z]+$")
    kind: Literal["polygon"]
    color: Color | None = None
    points: list[Point] = pydantic.Field(min_length=1, max_length=9)
    center: Point = pydantic.Field(description="the middle")
    pair: tuple[int, str]
    parent: Shape | None = None


def walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def test_strict_schema_rules():
    s = wc.to_strict_json_schema(Shape)
    objects = [n for n in walk(s) if n.get("type") == "object"]
    assert objects and all(n["additionalProperties"] is False and n["required"] == list(n["properties"]) for n in objects)
    keys = {k for n in walk(s) for k in n} - {"$defs", "properties"} - set(Shape.model_fields) - set(Point.model_fields) - {"Point", "Shape", "Color"}
    assert keys <= {"type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum", "anyOf", "$ref", "description"}
    assert s["properties"]["kind"] == {"enum": ["polygon"], "type": "string"}
    assert s["properties"]["color"]["anyOf"][1] == {"type": "null"}
    assert s["properties"]["pair"]["items"] is False and len(s["properties"]["pair"]["prefixItems"]) == 2
    assert s["properties"]["center"]["description"] == "the middle" and "$ref" not in s["properties"]["center"]
    assert s["properties"]["parent"]["anyOf"][0] == {"$ref": "#/$defs/Shape"}  # recursion through $defs
    assert set(s["$defs"]) == {"Color", "Point", "Shape"}
    rf = wc.type_to_response_format(Shape)
    assert rf["type"] == "json_schema" and rf["json_schema"]["name"] == "Shape" and rf["json_schema"]["strict"] is True
    assert json.loads(json.dumps(rf)) == rf


@pytest.mark.parametrize(
    "tp",
    [
        pydantic.create_model("Free", tags=(dict, ...)),
        pydantic.create_model("Mapping", tags=(dict[str, int], ...)),
        pydantic.create_model("AnyList", items=(list, ...)),
        pydantic.create_model("Many", v=(int | str | float | bool | list[int] | None, ...)),
        list[int],
    ],
)
def test_strict_schema_rejects(tp):
    with pytest.raises(wc.StrictSchemaError):
        wc.to_strict_json_schema(tp)


def test_type_lists_rewritten():
    class Odd(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(json_schema_extra=lambda s: s["properties"].update(v={"type": ["string", "null"]}))
        v: str | None

    assert wc.to_strict_json_schema(Odd)["properties"]["v"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}


# ---- parse() ---------------------------------------------------------------------------------------


class Answer(pydantic.BaseModel):
    city: str
    temperature: float


def chat_with(content=None, finish="stop", tool_calls=None):
    message = {"role": "assistant"}
    if content is not None:
        message["content"] = content
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {**CHAT, "choices": [{"index": 0, "finish_reason": finish, "message": message}]}


def call(id_, name, arguments):
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def test_parse(loopback):
    loopback.on(
        "/v1/chat/completions",
        Reply(json=chat_with('{"city": "Florence", "temperature": 21.5}'), headers={"x-ratelimit-remaining-requests-day": "9"}),
        Reply(json=chat_with('{"city": "Florence"}')),
        Reply(json=chat_with('{"city": "Flo', finish="length")),
    )
    client = wafer_client(loopback.url)
    r = client.chat.completions.parse(model="m", messages=MSG, response_format=Answer, temperature=0)
    assert type(r).__name__ == "ParsedChatCompletion" and r.parsed == Answer(city="Florence", temperature=21.5)
    assert r.choices[0].message.parsed is r.parsed and r.rate_limits.requests_day.remaining == 9
    body = loopback.requests[0].json
    assert list(body)[:2] == ["messages", "model"] and body["temperature"] == 0
    assert body["response_format"] == wc.type_to_response_format(Answer)
    with pytest.raises(wc.ContentParseError) as err:
        client.chat.completions.parse(model="m", messages=MSG, response_format=Answer)
    assert err.value.content == '{"city": "Florence"}' and isinstance(err.value.__cause__, pydantic.ValidationError)
    with pytest.raises(wc.LengthFinishReasonError):
        client.chat.completions.parse(model="m", messages=MSG, response_format=Answer)
    with pytest.raises(TypeError):
        client.chat.completions.parse(model="m", messages=MSG, response_format=Answer, stream=True)
    with pytest.raises(TypeError):
        client.chat.completions.parse(model="m", messages=MSG, response_format=Answer, no_such_arg=1)


def test_parse_tools_and_raw(loopback):
    tool = wc.pydantic_function_tool(Answer, name="report")
    assert tool["function"]["strict"] is True and tool["function"]["parameters"]["additionalProperties"] is False
    loopback.on(
        "/v1/chat/completions",
        Reply(json=chat_with(tool_calls=[call("c1", "report", {"city": "Rome", "temperature": 30})], finish="tool_calls")),
        Reply(json=chat_with('{"city": "Oslo", "temperature": -3}')),
    )
    client = wafer_client(loopback.url)
    r = client.chat.completions.parse(model="m", messages=MSG, tools=[tool])
    assert r.choices[0].message.tool_calls[0].parsed_arguments == Answer(city="Rome", temperature=30)
    assert r.parsed is None and "response_format" not in loopback.requests[0].json
    raw = client.chat.completions.with_raw_response.parse(model="m", messages=MSG, response_format=Answer)
    assert raw.parse().parsed.city == "Oslo"


def test_parse_async(loopback):
    loopback.on("/v1/chat/completions", Reply(json=chat_with('{"city": "Nice", "temperature": 18}')))

    async def main():
        async with wc.AsyncCerebras(api_key="k", base_url=loopback.url, warm_tcp_connection=False) as a:
            return await a.chat.completions.parse(model="m", messages=MSG, response_format=Answer)

    assert asyncio.run(main()).parsed.city == "Nice"


# ---- tool runner -----------------------------------------------------------------------------------


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
    """Current weather for a city.

    Longer text that is not part of the description."""
    return {"city": city, "temperature": 21 if unit == "celsius" else 70, "unit": unit}


def test_function_tool_definition():
    tool = wc.function_tool(get_weather)
    param = tool.to_param()
    assert param["function"]["name"] == "get_weather" and param["function"]["description"] == "Current weather for a city."
    params = param["function"]["parameters"]
    assert params["required"] == ["city", "unit"] and params["additionalProperties"] is False
    assert params["properties"]["unit"] == {"enum": ["celsius", "fahrenheit"], "type": "string"}
    assert tool.validate('{"city": "Rome"}') == {"city": "Rome", "unit": "celsius"}
    with pytest.raises(pydantic.ValidationError):
        tool.validate('{"city": "Rome", "extra": 1}')
    with pytest.raises(TypeError):
        wc.function_tool(lambda x: x)
    loose = wc.function_tool(name="w", strict=False)(get_weather).to_param()["function"]
    assert loose["name"] == "w" and loose["strict"] is False and loose["parameters"]["required"] == ["city"]


def test_run_tools(loopback):
    loopback.on(
        "/v1/chat/completions",
        Reply(json=chat_with(tool_calls=[call("a1", "get_weather", {"city": "Rome"}), call("a2", "get_weather", {"town": "x"})], finish="tool_calls")),
        Reply(json=chat_with(tool_calls=[call("b1", "nope", {})], finish="tool_calls")),
        Reply(json=chat_with("It is 21 degrees in Rome.")),
    )
    calls = []

    def weather(city: str, unit: str = "celsius") -> dict:
        calls.append(city)
        return get_weather(city)

    run = wafer_client(loopback.url).chat.completions.run_tools(model="m", messages=MSG, tools=[wc.function_tool(weather, name="get_weather")], temperature=0)
    assert run.content == "It is 21 degrees in Rome." and len(run.completions) == 3 and calls == ["Rome"]
    roles = [m["role"] for m in run.messages]
    assert roles == ["user", "assistant", "tool", "tool", "assistant", "tool"]
    assert json.loads(run.messages[2]["content"])["temperature"] == 21 and run.messages[2]["tool_call_id"] == "a1"
    assert "invalid arguments" in run.messages[3]["content"] and "no tool named" in run.messages[5]["content"]
    sent = [r.json for r in loopback.requests]
    assert all(b["tools"][0]["function"]["name"] == "get_weather" and b["temperature"] == 0 for b in sent)
    assert sent[2]["messages"] == run.messages  # the conversation sent last is the one returned


def test_run_tools_errors_and_limit(loopback):
    loopback.default("/v1/chat/completions", Reply(json=chat_with(tool_calls=[call("c", "boom", {})], finish="tool_calls")))

    def boom() -> str:
        raise RuntimeError("kaput")

    client = wafer_client(loopback.url)
    with pytest.raises(RuntimeError, match="kaput"):
        client.chat.completions.run_tools(model="m", messages=MSG, tools=[boom])
    with pytest.raises(wc.ToolLoopLimitError) as err:
        client.chat.completions.run_tools(model="m", messages=MSG, tools=[boom], max_turns=2, return_tool_errors=True)
    assert "RuntimeError: kaput" in err.value.messages[-1]["content"] and len(err.value.messages) == 5


def test_run_tools_async(loopback):
    loopback.on(
        "/v1/chat/completions",
        Reply(json=chat_with(tool_calls=[call("a", "add", {"a": 2, "b": 3}), call("b", "mul", {"a": 2, "b": 3})], finish="tool_calls")),
        Reply(json=chat_with("5 and 6")),
    )

    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    def mul(a: int, b: int) -> int:
        return a * b

    async def main():
        async with wc.AsyncCerebras(api_key="k", base_url=loopback.url, warm_tcp_connection=False) as a:
            return await a.chat.completions.run_tools(model="m", messages=MSG, tools=[add, mul])

    run = asyncio.run(main())
    assert run.content == "5 and 6" and [m["content"] for m in run.messages if m["role"] == "tool"] == ["5", "6"]


# ---- rate limits -----------------------------------------------------------------------------------

RL_HEADERS = {
    "x-ratelimit-limit-requests-day": "1000000000",
    "x-ratelimit-limit-tokens-minute": "1000000000",
    "x-ratelimit-remaining-requests-day": "999997455",
    "x-ratelimit-remaining-tokens-minute": "999998298",
    "x-ratelimit-reset-requests-day": "33011.382867097855",
    "x-ratelimit-reset-tokens-minute": "11.382867097854614",
    "x-ratelimit-reset-requests-minute": "2m59.56s",
}


def test_rate_limit_headers_parsed(loopback):
    info = wc.RateLimitInfo.from_headers(httpx.Headers(RL_HEADERS))
    assert info.requests_day == wc.RateLimitWindow("requests", "day", 1e9, 999997455, 33011.382867097855)
    assert info.tokens_minute.reset == pytest.approx(11.3828, abs=1e-3) and info.requests_minute.reset == pytest.approx(179.56)
    assert info.tokens_hour is None and wc.RateLimitInfo.from_headers({"x-other": "1"}) is None
    loopback.on("/v1/chat/completions", Reply(json=CHAT, headers=RL_HEADERS), SSE([chunk("a")], headers=RL_HEADERS))
    client = wafer_client(loopback.url)
    assert create(client).rate_limits.tokens_minute.remaining == 999998298
    stream = create(client, stream=True)
    assert stream.rate_limits.requests_day.limit == 1e9
    list(stream)


def create(client, **kw):
    return client.chat.completions.create(model="m", messages=MSG, **kw)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_limiter_buckets():
    clock = Clock()
    lim = wc.RateLimiter(requests_per_minute=2, tokens_per_minute=600, clock=clock)
    assert lim.reserve("m", 100) == 0 and lim.reserve("m", 100) == 0
    assert lim.reserve("m", 100) == pytest.approx(30.0)  # third request: one refill of the 2/min bucket
    assert lim.reserve("other", 500) == 0  # per model
    assert lim.reserve("other", 500) == pytest.approx(40.0)  # tokens: 400 missing at 10/s
    clock.t += 120
    assert lim.reserve("m", 10) == 0


def test_limiter_server_windows_and_429():
    clock = Clock()
    lim = wc.RateLimiter(clock=clock, max_wait=None)
    info = wc.RateLimitInfo.from_headers({"x-ratelimit-remaining-requests-minute": "1", "x-ratelimit-limit-requests-minute": "5", "x-ratelimit-reset-requests-minute": "7.5"})
    lim.update("m", info, status=200, retry_after=None)
    assert lim.reserve("m", 0) == 0
    assert lim.reserve("m", 0) == pytest.approx(7.5)  # window spent: wait for its reset
    clock.t += 8
    assert lim.reserve("m", 0) == 0
    lim.update("m", None, status=429, retry_after=3.0)
    assert lim.reserve("m", 0) == pytest.approx(3.0)
    strict = wc.RateLimiter(requests_per_minute=1, max_wait=5, clock=clock)
    strict.reserve("m", 0)
    with pytest.raises(wc.RateLimitWaitError) as err:
        strict.reserve("m", 0)
    assert err.value.wait == pytest.approx(60.0)
    assert lim.estimate_tokens({"messages": [{"content": "x" * 400}], "max_completion_tokens": 50}) > 150


def test_limiter_in_client(loopback):
    headers = {"x-ratelimit-remaining-requests-minute": "0", "x-ratelimit-reset-requests-minute": "2.5"}
    loopback.on("/v1/chat/completions", Reply(json=CHAT, headers=headers), Reply(429, json=error_body(429), headers={"retry-after": "1"}))
    sleeps = Sleeps()
    clock = Clock()
    client = wafer_client(loopback.url, sleeps=sleeps, rate_limiter=wc.RateLimiter(clock=clock))
    create(client)
    assert sleeps == []
    create(client)  # the window is spent: waits 2.5 s first; then a 429 with retry-after 1, and the
    # limiter's own pause after that 429 (1 s more: the injected clock does not move)
    assert sleeps == [pytest.approx(2.5), 1.0, pytest.approx(1.0)]
    assert client.with_options(warm_tcp_connection=False).rate_limiter is client.rate_limiter


# ---- client options, warming -----------------------------------------------------------------------


def test_client_options(loopback, monkeypatch):
    monkeypatch.delenv("CEREBRAS_API_KEY", raising=False)
    with pytest.raises(wc.CerebrasError, match="api_key client option must be set"):
        wc.Cerebras(warm_tcp_connection=False)
    c = wafer_client(loopback.url + "/v1")
    loopback.on("/v1/v1/chat/completions", Reply(json=CHAT))
    create(c)
    assert loopback.paths() == ["/v1/v1/chat/completions"]  # the SDK's base_url convention: no /v1
    assert str(c.base_url).endswith("/v1/") and c.timeout == wc.DEFAULT_TIMEOUT and c.max_retries == 2
    with pytest.raises(ValueError):
        c.with_options(default_headers={}, set_default_headers={})
    with pytest.raises(ValueError):
        c.with_options(default_query={}, set_default_query={})
    with pytest.raises(TypeError):
        wc.Cerebras(api_key="k", http_client=httpx.AsyncClient(), warm_tcp_connection=False)
    own = httpx.Client(timeout=12)
    assert wc.Cerebras(api_key="k", http_client=own, warm_tcp_connection=False).timeout == own.timeout
    with wc.Cerebras(api_key="k", base_url=loopback.url, warm_tcp_connection=False) as closing:
        pass
    assert closing.is_closed()
    assert wc.Client is wc.Cerebras and wc.AsyncClient is wc.AsyncCerebras


def test_async_warming_does_not_block(loopback):
    loopback.default("/v1/tcp_warming", Reply(json={}, delay=0.5))

    async def main():
        t = time.monotonic()
        client = wc.AsyncCerebras(api_key="k", base_url=loopback.url)
        built = time.monotonic() - t
        ticks = 0
        while not client._warming.done():
            await asyncio.sleep(0.01)
            ticks += 1
        await client.close()
        return built, ticks

    built, ticks = asyncio.run(main())
    assert built < 0.1 and ticks > 10  # the loop kept running while the warming request waited
    warm = loopback.requests[0]
    assert warm.path == "/v1/tcp_warming" and warm.headers["x-stainless-read-timeout"] == "1"
    assert warm.headers["x-stainless-async"] == "async:asyncio"

    # constructed outside a loop: the same request, from a background thread
    loopback.reset()
    t = time.monotonic()
    client = wc.AsyncCerebras(api_key="k", base_url=loopback.url, default_headers={"X-A": "1"})
    assert time.monotonic() - t < 0.1
    threads = [th for th in threading.enumerate() if th.name == "wafer-client-warming"]
    for th in threads:
        th.join(5)
    assert loopback.paths() == ["/v1/tcp_warming"] and loopback.requests[0].headers["x-a"] == "1"
    asyncio.run(client.close())


def test_response_models_keep_unknown_fields():
    from wafer.client.types.chat import ChatCompletionResponse

    r = ChatCompletionResponse.model_validate({**CHAT, "new_field": {"a": 1}})
    assert r.new_field == {"a": 1} and r.to_dict()["new_field"] == {"a": 1}
    assert json.loads(r.to_json())["choices"][0]["message"]["content"] == "Hello!"
    assert "prompt_tokens_details" in r.usage.model_fields_set and "image_tokens" not in r.usage.model_fields_set
