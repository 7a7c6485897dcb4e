"""Parity: the same scenarios with the official cerebras-cloud-sdk and with wafer.client, on a scripted
loopback server; the requests sent (method, path, query, every header, body bytes), the retry delays
(sleep and jitter injected) and the results (types, dicts, exceptions and their attributes) must match."""

from __future__ import annotations

import asyncio
import time
import types

import httpx
import pytest
from test_client_loopback import (
    CHAT,
    SSE,
    Drop,
    Reply,
    chunk,
    error_body,
)

import wafer.client as wc

sdk = pytest.importorskip("cerebras.cloud.sdk")
from cerebras.cloud.sdk import _base_client as sdk_base

MSG = [{"role": "user", "content": "hi"}]
TEXT = {
    "id": "chatcmpl-t",
    "choices": [{"index": 0, "finish_reason": "length", "text": " and there", "logprobs": {"tokens": [" and"], "token_logprobs": [-1.5], "top_logprobs": [{" and": -1.5}], "text_offset": [3]}}],
    "created": 1769297019,
    "model": "m",
    "object": "text_completion",
    "system_fingerprint": "fp_1",
    "usage": {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13},
}
OPENROUTER = {"data": [{"id": "cerebras/m", "name": "M", "created": 0, "context_length": 8192, "max_output_length": 4096, "pricing": {"prompt": "0.1", "completion": "0.2"}}]}
FINAL = chunk(finish="stop", usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}, time_info={"total_time": 0.1})


def summarize(value):
    """Comparable form of a result: model type and dict, stream items, exception class and attributes."""
    if isinstance(value, BaseException):
        return ("raised", type(value).__name__, getattr(value, "status_code", None), str(value), getattr(value, "body", None))
    if isinstance(value, (list, tuple)):
        return [summarize(v) for v in value]
    if isinstance(value, dict):
        return {k: summarize(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return (type(value).__name__, value.to_dict(), value.to_dict(exclude_unset=False))
    return value


def run_sdk(fn, lib, monkeypatch, url, sleeps, **kw):
    monkeypatch.setattr(sdk_base, "time", types.SimpleNamespace(sleep=sleeps.append, time=time.time))
    monkeypatch.setattr(sdk_base, "random", lambda: 0.5)
    return fn(lib, lambda **o: lib.Cerebras(**{"api_key": "csk-test", "base_url": url, **kw, **o}))


def run_wafer(fn, lib, monkeypatch, url, sleeps, **kw):
    def make(**o):
        client = wc.Cerebras.__new__(wc.Cerebras)
        client._sleep, client._random = sleeps.append, (lambda: 0.5)
        wc.Cerebras.__init__(client, **{"api_key": "csk-test", "base_url": url, **kw, **o})
        return client

    return fn(lib, make)


def compare(loopback, monkeypatch, script, scenario, **client_kw):
    outcomes = []
    for lib, runner in ((sdk, run_sdk), (wc, run_wafer)):
        loopback.reset()
        script(loopback)
        sleeps: list = []
        try:
            result = summarize(runner(scenario, lib, monkeypatch, loopback.url, sleeps, **client_kw))
        except Exception as exc:  # noqa: BLE001 — the exception is part of the result
            result = summarize(exc)
        sent = [(r.method, r.path, r.query, r.headers, r.body) for r in loopback.requests]
        outcomes.append((result, sent, sleeps))
    (sdk_result, sdk_sent, sdk_sleeps), (our_result, our_sent, our_sleeps) = outcomes
    assert our_sent == sdk_sent
    assert our_sleeps == sdk_sleeps
    assert our_result == sdk_result
    return our_result, our_sent


# ---- scenarios ------------------------------------------------------------------------------------


def every_parameter(lib, make):
    c = make(warm_tcp_connection=False)
    return c.chat.completions.create(
        messages=({"role": "user", "content": "héllo"} for _ in range(1)),
        model="m",
        temperature=None,
        max_completion_tokens=5,
        stop=["x"],
        logit_bias={"42": -100},
        seed=1,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}],
        tool_choice="auto",
        parallel_tool_calls=False,
        reasoning_effort="low",
        reasoning_format="parsed",
        service_tier="auto",
        user="u",
        cf_ray="ray",
        x_amz_cf_id="amz",
        x_delay_time=1.5,
        extra_headers={"X-Custom": "1", "X-Stainless-Lang": lib.Omit()},
        extra_query={"q": "1", "list": ["a", "b"]},
        extra_body={"extra": True, "seed": lib.Omit()},
        timeout=20,
    )


def test_every_parameter(loopback, monkeypatch):
    result, sent = compare(loopback, monkeypatch, lambda lb: lb.on("/v1/chat/completions", Reply(json={**CHAT, "service_tier_used": "default"})), every_parameter)
    assert result[0] == "ChatCompletionResponse" and result[1]["service_tier_used"] == "default"
    method, path, query, headers, body = sent[0]
    assert (method, path, query) == ("POST", "/v1/chat/completions", "q=1&list=a&list=b")
    assert headers["x-delay-time"] == "1.5" and "x-stainless-lang" not in headers
    assert body.startswith(b'{"messages":[{"role":"user","content":"h\xc3\xa9llo"}],"model":"m","logit_bias":{"42":-100},"max_completion_tokens":5')


def test_headers_warming_and_with_options(loopback, monkeypatch):
    def scenario(lib, make):
        c = make(default_headers={"X-A": "1"}, default_query={"dq": True}, timeout=httpx.Timeout(30, connect=2))
        c2 = c.with_options(max_retries=0, default_headers={"X-B": "2"}, timeout=7.5)
        return [c.models.list(), c2.models.retrieve("org/model name"), c2.with_options(set_default_headers={"X-C": "3"}, warm_tcp_connection=False).models.list()]

    loopback_models = {"object": "list", "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "wafer"}]}
    _, sent = compare(
        loopback,
        monkeypatch,
        lambda lb: lb.default("/v1/models", Reply(json=loopback_models)).default("/v1/models/org%2Fmodel%20name", Reply(json=loopback_models["data"][0])),
        scenario,
    )
    assert [s[1] for s in sent] == ["/v1/tcp_warming", "/v1/tcp_warming", "/v1/models", "/v1/models/org%2Fmodel%20name", "/v1/models"]
    assert sent[1][3]["x-stainless-read-timeout"] == "1" and sent[3][3]["x-stainless-read-timeout"] == "7.5"
    assert sent[2][2] == "dq=true" and sent[3][3]["x-b"] == "2" and "x-a" not in sent[4][3]


def test_env_vars(loopback, monkeypatch):
    monkeypatch.setenv("CEREBRAS_API_KEY", "csk-env")
    monkeypatch.setenv("CEREBRAS_BASE_URL", loopback.url)
    monkeypatch.setenv("CEREBRAS_CUSTOM_HEADERS", "X-Env: a\nX-Both: env\nnot a header")

    def scenario(lib, make):
        return lib.Cerebras(default_headers={"X-Both": "explicit"}, warm_tcp_connection=False).chat.completions.create(model="m", messages=MSG)

    _, sent = compare(loopback, monkeypatch, lambda lb: None, scenario)
    assert sent[0][3]["authorization"] == "Bearer csk-env" and sent[0][3]["x-both"] == "explicit"
    monkeypatch.delenv("CEREBRAS_API_KEY")
    result, _ = compare(loopback, monkeypatch, lambda lb: None, lambda lib, make: lib.Cerebras())
    assert result[1] == "CerebrasError"


def test_stream_and_done(loopback, monkeypatch):
    events = [chunk(role="assistant"), chunk("Hel"), chunk("lo"), chunk(), FINAL, "data: [DONE]\n\n", chunk("never")]
    result, _ = compare(
        loopback,
        monkeypatch,
        lambda lb: lb.on("/v1/chat/completions", SSE(events)),
        lambda lib, make: list(make(warm_tcp_connection=False).chat.completions.create(model="m", messages=MSG, stream=True)),
    )
    assert len(result) == 5 and all(r[0] == "ChatChunkResponse" for r in result)


def test_mid_stream_error(loopback, monkeypatch):
    err = {"error": {"message": "boom", "code": "queue_exceeded", "type": "", "param": "", "id": ""}, "status_code": 429}

    def scenario(lib, make):
        got = []
        try:
            for c in make(warm_tcp_connection=False).chat.completions.create(model="m", messages=MSG, stream=True):
                got.append(c)
        except lib.APIError as exc:
            got.append(exc)
        return got

    result, _ = compare(loopback, monkeypatch, lambda lb: lb.on("/v1/chat/completions", SSE([chunk(role="assistant"), err])), scenario)
    assert result[-1][1] == "RateLimitError"


def test_completions_and_models(loopback, monkeypatch):
    def scenario(lib, make):
        c = make(warm_tcp_connection=False)
        out = [c.completions.create(model="m", prompt=[1, 2, 3], max_tokens=6, logprobs=1, echo=False)]
        out.append(list(c.completions.create(model="m", prompt="x", stream=True)))
        out.append(c.models.list(format="openrouter"))
        try:
            c.models.retrieve("")
        except ValueError as exc:
            out.append(str(exc))
        return out

    def script(lb):
        lb.on("/v1/completions", Reply(json=TEXT), SSE([{**TEXT, "choices": [{"index": 0, "text": "a"}]}]))
        lb.on("/v1/models", Reply(json=OPENROUTER))

    result, sent = compare(loopback, monkeypatch, script, scenario)
    assert result[2][0] == "OpenRouterModelsResponse" and sent[2][2] == "format=openrouter"


@pytest.mark.parametrize(
    "replies",
    [
        [Reply(429, json=error_body(429), headers={"retry-after": "1"}), Reply(503, json=error_body(503)), Reply(json=CHAT)],
        [Reply(500, json=error_body(500))] * 3,
        [Reply(400, json=error_body(400), headers={"x-should-retry": "true"}), Reply(500, json=error_body(500), headers={"x-should-retry": "false"})],
        [Reply(404, json={"message": "Model does not exist", "type": "not_found_error", "param": "model", "code": "model_not_found"})],
        [Reply(502, body=b"bad gateway")] * 3,
        [Reply(json={"error": {"message": "on a 200"}, "status_code": 500})],
        [Drop(), Reply(json=CHAT)],
        [Drop()] * 3,
    ],
    ids=["429-503-ok", "500x3", "should-retry", "404", "text-502", "error-on-200", "drop-ok", "drop-x3"],
)
def test_retries_and_errors(loopback, monkeypatch, replies):
    compare(
        loopback,
        monkeypatch,
        lambda lb: lb.on("/v1/chat/completions", *replies),
        lambda lib, make: make(warm_tcp_connection=False).chat.completions.create(model="m", messages=MSG),
    )


def test_timeout(loopback, monkeypatch):
    compare(
        loopback,
        monkeypatch,
        lambda lb: lb.default("/v1/chat/completions", Reply(json=CHAT, delay=0.6)),
        lambda lib, make: make(warm_tcp_connection=False, timeout=0.1, max_retries=1).chat.completions.create(model="m", messages=MSG),
    )


def test_raw_and_streaming_responses(loopback, monkeypatch):
    def scenario(lib, make):
        c = make(warm_tcp_connection=False)
        raw = c.chat.completions.with_raw_response.create(model="m", messages=MSG)
        out = [raw.status_code, raw.headers["x-test"], raw.retries_taken, raw.parse(), raw.json(), raw.method]
        with c.with_streaming_response.chat.completions.create(model="m", messages=MSG, stream=True) as r:
            out.append([line for line in r.iter_lines() if line])
        with c.models.with_streaming_response.list() as r:
            out.append(r.parse())
        out.append(c.with_raw_response.models.list().parse(to=str))
        return out

    def script(lb):
        lb.on("/v1/chat/completions", Reply(json=CHAT, headers={"x-test": "yes"}), SSE([chunk("a")]))
        lb.default("/v1/models", Reply(json={"object": "list", "data": []}))

    _, sent = compare(loopback, monkeypatch, script, scenario)
    assert [s[3]["x-stainless-raw-response"] for s in sent] == ["raw", "stream", "stream", "raw"]


def test_strict_response_validation(loopback, monkeypatch):
    compare(
        loopback,
        monkeypatch,
        lambda lb: lb.on("/v1/chat/completions", Reply(json={"id": 1})),
        lambda lib, make: make(warm_tcp_connection=False, _strict_response_validation=True).chat.completions.create(model="m", messages=MSG),
    )
    # without it, invalid data is still built (as the first variant of the union)
    result, _ = compare(
        loopback,
        monkeypatch,
        lambda lb: lb.on("/v1/chat/completions", Reply(json={"id": "x", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}}]})),
        lambda lib, make: make(warm_tcp_connection=False).chat.completions.create(model="m", messages=MSG),
    )
    assert result[0] == "ChatCompletionResponse"


def test_async_requests(loopback, monkeypatch):
    """The async clients send the same requests (their warming differs on purpose: see docs/client.md)."""

    async def scenario(lib):
        async with lib.AsyncCerebras(api_key="k", base_url=loopback.url, warm_tcp_connection=False) as c:
            out = [await c.chat.completions.create(model="m", messages=MSG, max_completion_tokens=3)]
            stream = await c.chat.completions.create(model="m", messages=MSG, stream=True)
            out.append([x async for x in stream])
            out.append(await c.models.list())
            raw = await c.with_raw_response.completions.create(model="m", prompt="p")
            out.append(await raw.parse())
            async with c.chat.completions.with_streaming_response.create(model="m", messages=MSG) as r:
                out.append(await r.json())
            return out

    def script(lb):
        lb.on("/v1/chat/completions", Reply(json=CHAT), SSE([chunk("a"), FINAL]), Reply(json=CHAT))
        lb.on("/v1/models", Reply(json={"object": "list", "data": []}))
        lb.on("/v1/completions", Reply(json=TEXT))

    results = []
    for lib in (sdk, wc):
        loopback.reset()
        script(loopback)
        results.append((summarize(asyncio.run(scenario(lib))), [(r.method, r.path, r.headers, r.body) for r in loopback.requests]))
    assert results[1] == results[0]
