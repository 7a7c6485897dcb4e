"""Error shapes and codes through raw HTTP: Cerebras' flat {message, type, param, code}."""

from __future__ import annotations

import pytest

from conftest import MODEL_ID

MSG = [{"role": "user", "content": "hi"}]


def check(r, status: int, code: str | None, param: str | None = None, message: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"message", "type", "param", "code"}, body
    assert body["code"] == code
    if param is not None:
        assert body["param"] == param
    if message is not None:
        assert body["message"] == message
    return body


def chat(http, **kw):
    return http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": MSG, **kw})


def test_unknown_field(http):
    b = check(chat(http, store=True), 400, "wrong_api_format", "validation_error",
              "body.store: property 'body.store' is unsupported")
    assert b["type"] == "invalid_request_error"


def test_reasoning_content_rejected(http):
    msgs = MSG + [{"role": "assistant", "content": "x", "reasoning_content": "y"}, {"role": "user", "content": "z"}]
    r = http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": msgs})
    b = check(r, 400, "wrong_api_format", "validation_error")
    assert "messages.1.assistant.reasoning_content" in b["message"]


def test_both_max_tokens(http):
    check(chat(http, max_tokens=3, max_completion_tokens=3), 400, "wrong_api_format")


@pytest.mark.parametrize(
    "kw",
    [
        {"temperature": 2.5},
        {"temperature": -0.1},
        {"top_p": 1.5},
        {"top_logprobs": 21, "logprobs": True},
        {"top_logprobs": 2},
        {"stop": ["a", "b", "c", "d", "e"]},
        {"n": 0},
        {"frequency_penalty": 3},
        {"presence_penalty": -3},
        {"logit_bias": {"abc": 1}},
        {"logit_bias": {"5": 200}},
        {"max_completion_tokens": -2},
        {"temperature": "hot"},
        {"messages": []},
        {"messages": [{"role": "wizard", "content": "x"}]},
        {"messages": [{"role": "user"}]},
        {"stream": "yes"},
        {"response_format": {"type": "xml"}},
    ],
)
def test_bad_values(http, kw):
    body = {"model": MODEL_ID, "messages": MSG, **kw}
    r = http.post("/v1/chat/completions", json=body)
    check(r, 400, "wrong_api_format")


def test_logit_bias_out_of_vocab(http):
    check(chat(http, logit_bias={"99999999": 1}), 400, "wrong_api_format", "logit_bias")


def test_unknown_model(http):
    check(http.post("/v1/chat/completions", json={"model": "gpt-9", "messages": MSG}), 404, "model_not_found", "model",
          "Model does not exist or you do not have access to it.")
    check(http.post("/v1/completions", json={"model": "gpt-9", "prompt": "x"}), 404, "model_not_found")
    check(http.get("/v1/models/gpt-9"), 404, "model_not_found")


def test_missing_model_field(http):
    check(http.post("/v1/chat/completions", json={"messages": MSG}), 400, "wrong_api_format")


@pytest.mark.parametrize(
    "raw",
    [b"{bad", b"", b"[1,2]", b"null", b'"str"', b"\xff\xfe\x00", b'{"model": "x", "messages": [' * 50, b"1e999999"],
)
def test_malformed_bodies_are_400(http, raw):
    r = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    check(r, 400, "wrong_api_format")


def test_deeply_nested_body(http):
    raw = b'{"model": "x", "messages": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    r = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    check(r, 400, "wrong_api_format")


def test_gzip_body(http):
    import gzip
    import json

    raw = gzip.compress(json.dumps({"model": MODEL_ID, "messages": MSG, "max_completion_tokens": 2}).encode())
    r = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 200, r.text


def test_context_overflow(http, server):
    ctx = server.stats()["ctx_size"]
    check(chat(http, max_completion_tokens=ctx), 400, "context_length_exceeded", "messages")
    long = [{"role": "user", "content": "word " * (ctx + 10)}]
    b = check(http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": long}), 400, "context_length_exceeded")
    assert str(ctx) in b["message"] and "--ctx-size" in b["message"]  # which limit it hit (the test server sets it)
    check(http.post("/v1/completions", json={"model": MODEL_ID, "prompt": "hi", "max_tokens": ctx + 1}), 400,
          "context_length_exceeded")
    # the server is still fine
    assert chat(http, max_completion_tokens=2).status_code == 200


def test_tools_with_response_format(http):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    b = check(chat(http, tools=tools, response_format={"type": "json_object"}), 400, "wrong_api_format")
    assert b["message"] == '"tools" is incompatible with "response_format"'


def test_image_content_to_text_model(http):
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]
    check(http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": msgs}), 400, "wrong_api_format")


def test_sdk_exceptions(cerebras):
    from cerebras.cloud.sdk import BadRequestError, NotFoundError

    with pytest.raises(NotFoundError) as e:
        cerebras.chat.completions.create(model="nope", messages=MSG)
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(BadRequestError) as e:
        cerebras.chat.completions.create(model=MODEL_ID, messages=MSG, temperature=5)
    assert e.value.status_code == 400


def test_unknown_route_and_method(http):
    r = http.get("/v1/nothing")
    assert r.status_code == 404 and set(r.json()) == {"message", "type", "param", "code"}
    r = http.get("/v1/chat/completions")
    assert r.status_code == 405 and set(r.json()) == {"message", "type", "param", "code"}


def test_models_and_warming(http, cerebras):
    ids = [m.id for m in cerebras.models.list().data]
    assert MODEL_ID in ids and "llama3.1-8b" in ids
    assert cerebras.models.retrieve(MODEL_ID).id == MODEL_ID
    assert http.get("/v1/tcp_warming").status_code == 200
    check(http.get("/v1/models", params={"format": "bogus"}), 400, "wrong_api_format")
