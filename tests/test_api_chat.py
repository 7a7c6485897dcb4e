"""Chat completions through HTTP on smollm2-135m, with the official SDKs (strict validation on)."""

from __future__ import annotations

import asyncio
import re

import pytest

from conftest import MODEL_ID

MSG = [{"role": "user", "content": "Write one sentence about the sea."}]


def greedy(cerebras, **kw):
    return cerebras.chat.completions.create(model=MODEL_ID, messages=kw.pop("messages", MSG), temperature=0, **kw)


def test_non_stream_shape(cerebras):
    r = greedy(cerebras, max_completion_tokens=24)
    assert type(r).__name__ == "ChatCompletionResponse"
    assert re.fullmatch(r"chatcmpl-[0-9a-f-]{36}", r.id)
    assert re.fullmatch(r"fp_[0-9a-f]{20}", r.system_fingerprint)
    assert r.object == "chat.completion" and r.model == MODEL_ID
    c = r.choices[0]
    assert c.index == 0 and c.message.role == "assistant" and c.message.content
    assert c.finish_reason in ("stop", "length")
    u = r.usage
    assert u.prompt_tokens > 5 and 0 < u.completion_tokens <= 24
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details.cached_tokens == 0
    t = r.time_info
    assert min(t.queue_time, t.prompt_time, t.completion_time) >= 0
    assert t.total_time + 1e-6 >= t.queue_time + t.prompt_time + t.completion_time
    assert abs(t.created - r.created) < 1.5


def test_stream_matches_non_stream(cerebras):
    full = greedy(cerebras, max_completion_tokens=32)
    chunks = list(greedy(cerebras, max_completion_tokens=32, stream=True))
    assert all(type(c).__name__ == "ChatChunkResponse" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content is None
    final = chunks[-1]
    assert final.choices[0].finish_reason == full.choices[0].finish_reason
    assert final.usage.completion_tokens == full.usage.completion_tokens
    assert final.usage.prompt_tokens == full.usage.prompt_tokens
    assert final.time_info.total_time > 0
    assert all(c.usage is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == full.choices[0].message.content
    assert len({c.id for c in chunks}) == 1


def test_async_sdk_stream(base_url):
    from cerebras.cloud.sdk import AsyncCerebras

    async def main():
        async with AsyncCerebras(api_key="k", base_url=base_url, _strict_response_validation=True) as a:
            r = await a.chat.completions.create(model=MODEL_ID, messages=MSG, temperature=0, max_completion_tokens=16)
            s = await a.chat.completions.create(
                model=MODEL_ID, messages=MSG, temperature=0, max_completion_tokens=16, stream=True
            )
            parts = [c.choices[0].delta.content or "" async for c in s]
            return r.choices[0].message.content, "".join(parts)

    whole, streamed = asyncio.run(main())
    assert whole == streamed and whole


def test_openai_sdk(openai_client):
    r = openai_client.chat.completions.create(model=MODEL_ID, messages=MSG, temperature=0, max_completion_tokens=16)
    assert r.choices[0].message.content
    chunks = list(
        openai_client.chat.completions.create(
            model=MODEL_ID, messages=MSG, temperature=0, max_completion_tokens=16, stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == r.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens


def test_alias_serves_cerebras_id(cerebras):
    a = greedy(cerebras, max_completion_tokens=8)
    b = cerebras.chat.completions.create(model="llama3.1-8b", messages=MSG, temperature=0, max_completion_tokens=8)
    assert b.model == "llama3.1-8b"
    assert a.choices[0].message.content == b.choices[0].message.content


def test_max_tokens_and_length(cerebras):
    r = greedy(cerebras, max_tokens=5)
    assert r.usage.completion_tokens == 5 and r.choices[0].finish_reason == "length"


def test_min_completion_tokens_blocks_eos(cerebras):
    msgs = [{"role": "user", "content": "Say OK."}]
    short = greedy(cerebras, messages=msgs, max_completion_tokens=64)
    assert short.choices[0].finish_reason == "stop"
    n = short.usage.completion_tokens + 10
    r = greedy(cerebras, messages=msgs, max_completion_tokens=n, min_completion_tokens=n)
    assert r.usage.completion_tokens == n and r.choices[0].finish_reason == "length"


def test_stop_strings(cerebras):
    base = greedy(cerebras, max_completion_tokens=40).choices[0].message.content
    words = base.split()
    assert len(words) > 4
    stop = " " + words[3]
    cut = base[: base.index(stop)]
    r = greedy(cerebras, max_completion_tokens=40, stop=[stop, "zzzz-never"])
    assert r.choices[0].message.content == cut and r.choices[0].finish_reason == "stop"
    chunks = list(greedy(cerebras, max_completion_tokens=40, stop=stop, stream=True))
    deltas = [c.choices[0].delta.content or "" for c in chunks]
    assert "".join(deltas) == cut
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_seed_reproducible(cerebras):
    kw = dict(model=MODEL_ID, messages=MSG, max_completion_tokens=24, temperature=1.2)
    a = cerebras.chat.completions.create(seed=42, **kw).choices[0].message.content
    b = cerebras.chat.completions.create(seed=42, **kw).choices[0].message.content
    others = {cerebras.chat.completions.create(seed=s, **kw).choices[0].message.content for s in (1, 2, 3)}
    assert a == b
    assert len(others | {a}) > 1


def test_top_p_zero_is_greedy(cerebras):
    g = greedy(cerebras, max_completion_tokens=20).choices[0].message.content
    r = cerebras.chat.completions.create(
        model=MODEL_ID, messages=MSG, max_completion_tokens=20, temperature=1.5, top_p=0.0, seed=7
    )
    assert r.choices[0].message.content == g


def test_logprobs(cerebras):
    r = greedy(cerebras, max_completion_tokens=8, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == 8
    assert "".join(e.token for e in content) == r.choices[0].message.content
    for e in content:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3
        assert e.top_logprobs[0].token == e.token  # greedy picks the most likely token
        assert abs(e.top_logprobs[0].logprob - e.logprob) < 1e-5
        assert [t.logprob for t in e.top_logprobs] == sorted((t.logprob for t in e.top_logprobs), reverse=True)
        assert bytes(e.bytes).decode("utf-8", "replace") == e.token
    chunks = list(greedy(cerebras, max_completion_tokens=8, logprobs=True, top_logprobs=2, stream=True))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [e.token for e in streamed] == [e.token for e in content]


def test_logit_bias(cerebras, tokenizer):
    r = greedy(cerebras, max_completion_tokens=6, logprobs=True)
    first = r.choices[0].logprobs.content[0].token
    first_id = tokenizer.tokenize(first, add_special=False)[0]
    banned = greedy(cerebras, max_completion_tokens=6, logprobs=True, logit_bias={str(first_id): -100})
    assert banned.choices[0].logprobs.content[0].token != first
    forced_id = tokenizer.tokenize(" banana", add_special=False)
    assert len(forced_id) == 1
    forced = greedy(cerebras, max_completion_tokens=3, logit_bias={str(forced_id[0]): 100})
    assert forced.choices[0].message.content.startswith(" banana")


def test_penalties_reduce_repetition(http):
    def repeats(**kw) -> int:
        body = {"model": MODEL_ID, "prompt": "sea sea sea sea sea sea sea sea", "max_tokens": 40, "temperature": 0,
                "return_raw_tokens": True, **kw}
        toks = http.post("/v1/completions", json=body).json()["choices"][0]["tokens"]
        return len(toks) - len(set(toks))

    plain = repeats()
    assert plain >= 5
    assert repeats(frequency_penalty=2.0) < plain
    assert repeats(presence_penalty=2.0) < plain


def test_n_choices(cerebras):
    r = cerebras.chat.completions.create(model=MODEL_ID, messages=MSG, n=3, temperature=1.0, seed=5, max_completion_tokens=12)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.message.content for c in r.choices)
    assert len({c.message.content for c in r.choices}) > 1  # independent samples
    g = cerebras.chat.completions.create(model=MODEL_ID, messages=MSG, n=2, temperature=0, max_completion_tokens=12)
    assert g.choices[0].message.content == g.choices[1].message.content
    assert g.usage.completion_tokens == 24
    chunks = list(
        cerebras.chat.completions.create(model=MODEL_ID, messages=MSG, n=2, temperature=0, max_completion_tokens=12, stream=True)
    )
    by = {0: "", 1: ""}
    for c in chunks:
        for ch in c.choices:
            by[ch.index] += ch.delta.content or ""
    assert by[0] == by[1] == g.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == 24


@pytest.mark.parametrize(
    "extra",
    [
        {"user": "u-1"},
        {"service_tier": "auto"},
        {"prompt_cache_key": "k"},
        {"stream_options": {"include_usage": True}},
        {"model_parameters": {}},
        {"parallel_tool_calls": False},
        {"reasoning_effort": "low", "reasoning_format": "parsed"},
        {"clear_thinking": True, "disable_reasoning": True},
        {"prediction": {"type": "content", "content": "The sea"}},
    ],
)
def test_accepted_parameters(http, extra):
    body = {"model": MODEL_ID, "messages": MSG, "max_completion_tokens": 4, "temperature": 0, **extra}
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]


def test_cerebras_headers_ignored(http):
    h = {"CF-RAY": "x", "X-Amz-Cf-Id": "y", "X-delay-time": "0.5", "queue_threshold": "100", "X-Stainless-Lang": "python"}
    r = http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": MSG, "max_completion_tokens": 2}, headers=h)
    assert r.status_code == 200


def test_multi_turn_and_content_parts(cerebras):
    msgs = [
        {"role": "system", "content": [{"type": "text", "text": "You are terse."}]},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": [{"type": "text", "text": "Name a colour."}]},
    ]
    r = greedy(cerebras, messages=msgs, max_completion_tokens=8)
    assert r.choices[0].message.content
    assert r.usage.prompt_tokens > greedy(cerebras, max_completion_tokens=1).usage.prompt_tokens - 20
