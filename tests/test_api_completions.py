"""Text completions through HTTP."""

from __future__ import annotations

from conftest import MODEL_ID


def test_basic_and_stream(cerebras):
    r = cerebras.completions.create(model=MODEL_ID, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert type(r).__name__ == "CompletionResponse" and r.object == "text_completion"
    assert r.usage.completion_tokens == 8 and r.choices[0].finish_reason == "length"
    chunks = list(cerebras.completions.create(model=MODEL_ID, prompt="The capital of France is", max_tokens=8,
                                              temperature=0, stream=True))
    assert "".join(c.choices[0].text or "" for c in chunks) == r.choices[0].text
    assert chunks[-1].usage.completion_tokens == 8 and chunks[-1].choices[0].finish_reason == "length"


def test_echo_logprobs_and_raw_tokens(cerebras, tokenizer):
    prompt = "The capital of France is"
    r = cerebras.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=4, temperature=0, echo=True, logprobs=2,
                                    return_raw_tokens=True)
    c = r.choices[0]
    assert c.text.startswith(prompt)
    lp = c.logprobs
    ptoks = tokenizer.tokenize(prompt, add_special=True)
    assert len(lp.tokens) == len(ptoks) - 1 + 4  # the first prompt token has no logprob
    assert "".join(lp.tokens) == c.text[len(tokenizer.detokenize(ptoks[:1], special=True)):]
    for off, tok in zip(lp.text_offset, lp.tokens):
        assert c.text[off : off + len(tok)] == tok
    assert all(len(t) <= 2 for t in lp.top_logprobs)
    assert len(c.tokens) == 4


def test_prompt_forms(cerebras, tokenizer, http):
    ids = tokenizer.tokenize("Hello, my name is", add_special=True)
    a = cerebras.completions.create(model=MODEL_ID, prompt="Hello, my name is", max_tokens=5, temperature=0)
    b = cerebras.completions.create(model=MODEL_ID, prompt=ids, max_tokens=5, temperature=0)
    assert a.choices[0].text == b.choices[0].text
    many = cerebras.completions.create(model=MODEL_ID, prompt=["Hello, my name is", "One, two,"], max_tokens=5,
                                       temperature=0, n=2)
    assert [c.index for c in many.choices] == [0, 1, 2, 3]
    assert many.choices[0].text == a.choices[0].text == many.choices[1].text
    assert many.usage.completion_tokens == 20
    r = http.post("/v1/completions", json={"model": MODEL_ID, "prompt": [[ids[0]], ids], "max_tokens": 2})
    assert r.status_code == 200 and len(r.json()["choices"]) == 2


def test_best_of(cerebras):
    r = cerebras.completions.create(model=MODEL_ID, prompt="Once upon a time", max_tokens=6, best_of=3, n=1, seed=1,
                                    temperature=1.0)
    assert len(r.choices) == 1 and r.usage.completion_tokens == 18


def test_best_of_stream_rejected(http):
    r = http.post("/v1/completions", json={"model": MODEL_ID, "prompt": "x", "best_of": 2, "stream": True})
    assert r.status_code == 400 and r.json()["code"] == "wrong_api_format"


def test_stop_and_suffix(cerebras):
    base = cerebras.completions.create(model=MODEL_ID, prompt="1, 2, 3,", max_tokens=12, temperature=0).choices[0].text
    assert " 5" in base
    r = cerebras.completions.create(model=MODEL_ID, prompt="1, 2, 3,", max_tokens=12, temperature=0, stop=" 5")
    assert r.choices[0].text == base[: base.index(" 5")] and r.choices[0].finish_reason == "stop"
