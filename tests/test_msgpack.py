"""msgpack request bodies (application/vnd.msgpack, application/msgpack, application/x-msgpack), plain
or gzip/deflate-encoded, on both completion routes: the same answers, validation and errors as JSON,
and the body limit applied to what the body decodes to. Bodies are built with the msgpack package;
the official SDKs are made to send msgpack + gzip (as some Cerebras client plugins do) by a transport
that re-encodes their JSON bodies."""

from __future__ import annotations

import gzip
import json
import zlib

import httpx
import msgpack
import pytest
from conftest import MODEL_ID

from wafer.protocol.errors import APIError
from wafer.protocol.parse import load_msgpack

TYPES = ("application/vnd.msgpack", "application/msgpack", "application/x-msgpack")
CHAT = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Name a colour."}], "max_completion_tokens": 6,
        "temperature": 0}
TEXT = {"model": MODEL_ID, "prompt": "Once upon a time", "max_tokens": 6, "temperature": 0}
ROUTES = (("/v1/chat/completions", CHAT), ("/v1/completions", TEXT))
MAX_BODY = 8 * 1024 * 1024  # the server's default --max-body-bytes


def encode(body, ctype: str = TYPES[0], encoding: str | None = None) -> tuple[bytes, dict]:
    raw = msgpack.packb(body)
    headers = {"content-type": ctype}
    if encoding == "gzip":
        raw = gzip.compress(raw)
    elif encoding == "deflate":
        raw = zlib.compress(raw)
    if encoding:
        headers["content-encoding"] = encoding
    return raw, headers


def post(http, path: str, body, ctype: str = TYPES[0], encoding: str | None = None) -> httpx.Response:
    raw, headers = encode(body, ctype, encoding)
    return http.post(path, content=raw, headers=headers)


def text_of(r: httpx.Response) -> str:
    c = r.json()["choices"][0]
    return c["message"]["content"] if "message" in c else c["text"]


# -- decoding (no server) -------------------------------------------------------------------------
@pytest.mark.parametrize("value", [
    {"model": "m", "messages": [{"role": "user", "content": "é ✓ 😀"}], "temperature": 0.5, "n": 1, "stream": False,
     "stop": None, "logit_bias": {"42": -100}},
    [1, -2, 2**64 - 1, -(2**63), 1.5, True, None, "s", {}, []],
])
@pytest.mark.model_free
def test_decodes_to_what_json_decodes_to(value):
    got, size = load_msgpack(msgpack.packb(value))
    assert got == json.loads(json.dumps(value))
    assert size == len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


@pytest.mark.parametrize("raw,fragment", [
    (msgpack.packb({"a": b"\x00"}), "binary data"),
    (msgpack.packb({"a": msgpack.ExtType(5, b"x")}), "extension types"),
    (msgpack.packb({"a": msgpack.Timestamp(1, 0)}), "extension types"),
    (msgpack.packb({1: "x"}), "map key"),
    (msgpack.packb({"a": float("nan")}), "NaN"),
    (msgpack.packb({"a": float("-inf")}), "NaN and Infinity"),
    (msgpack.packb({}) + b"\x00", "extra data"),
    (msgpack.packb({"model": "abc"})[:-2], "incomplete input"),
    (b"", "incomplete input"),
    (b"\x81\xa1a\xa2\xff\xfe", "not valid UTF-8"),
    (b"\x81\xa1a\xa3\xed\xa0\x80", "not valid UTF-8"),  # an encoded lone surrogate
    (b"\x91" * 100_000 + b"\xc0", "nested too deeply"),
    (b"\xdd\xff\xff\xff\xff", "exceeds max_array_len"),  # a length the data cannot have
    (b"\xc1", "decode error"),  # a reserved byte
])
@pytest.mark.model_free
def test_what_json_cannot_carry_is_a_400(raw, fragment):
    with pytest.raises(APIError) as e:
        load_msgpack(raw)
    err = e.value
    assert (err.status, err.type, err.param, err.code) == (400, "invalid_request_error", "validation_error",
                                                           "wrong_api_format")
    assert err.message.startswith("body: msgpack") and fragment in err.message


# -- HTTP -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path,body", ROUTES, ids=["chat", "text"])
def test_same_answer_as_json(http, path, body):
    ref = http.post(path, json=body).json()
    # every content type, plain and with each Content-Encoding
    for ctype, encoding in ((TYPES[0], None), (TYPES[1], None), (TYPES[2], None), (TYPES[0], "gzip"),
                            (TYPES[1], "deflate"), (TYPES[2], "gzip")):
        r = post(http, path, body, ctype, encoding)
        assert r.status_code == 200, r.text
        assert text_of(r) == text_of(httpx.Response(200, json=ref))
        assert r.json()["usage"]["prompt_tokens"] == ref["usage"]["prompt_tokens"]


@pytest.mark.parametrize("path,body", ROUTES, ids=["chat", "text"])
def test_streaming_answer(http, path, body):
    raw, headers = encode({**body, "stream": True}, encoding="gzip")
    with http.stream("POST", path, content=raw, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1]["usage"]["completion_tokens"] == body.get("max_tokens", body.get("max_completion_tokens"))


@pytest.mark.parametrize("encoding", [None, "gzip"])
@pytest.mark.parametrize("bad", [
    {**CHAT, "store": True},  # unknown field
    {**CHAT, "temperature": "0.5"},  # wrong type
    {**CHAT, "temperature": 3},  # out of bounds
    {"messages": CHAT["messages"]},  # model missing
    {**CHAT, "max_tokens": 3},  # cross-field rule
    {**CHAT, "model": "nope"},  # unknown model
    [CHAT],  # not an object
])
def test_same_errors_as_json(http, bad, encoding):
    r = post(http, "/v1/chat/completions", bad, encoding=encoding)
    ref = http.post("/v1/chat/completions", json=bad)
    assert r.status_code == ref.status_code and r.status_code in (400, 404)
    assert r.json() == ref.json()


def test_same_errors_as_json_on_completions(http):
    for bad in ({**TEXT, "suffix": 1}, {**TEXT, "echo": True, "messages": []}, {**TEXT, "grammar_root": "nope"}):
        r = post(http, "/v1/completions", bad, encoding="gzip")
        assert r.status_code == 400 and r.json() == http.post("/v1/completions", json=bad).json()


def test_undecodable_bodies_are_400(http):
    for raw, headers in (
        (b"\xc1", {"content-type": TYPES[0]}),
        (json.dumps(CHAT).encode(), {"content-type": TYPES[1]}),  # JSON sent as msgpack: one fixstr, then extra data
        (gzip.compress(msgpack.packb({"a": b"bin"})), {"content-type": TYPES[2], "content-encoding": "gzip"}),
        (b"not gzip", {"content-type": TYPES[0], "content-encoding": "gzip"}),
    ):
        r = http.post("/v1/chat/completions", content=raw, headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["type"] == "invalid_request_error"


def test_body_limit_applies_to_the_decoded_body(http, server):
    # over the limit as sent: refused before it is read
    r = http.post("/v1/completions", content=b"\x00" * (MAX_BODY + 1), headers={"content-type": TYPES[0]})
    assert r.status_code == 413 and r.json()["code"] == "request_too_large"
    # small as sent, over the limit once inflated (a gzip bomb)
    raw, headers = encode({**TEXT, "prompt": [0] * (MAX_BODY + 10)}, encoding="gzip")
    assert len(raw) < 100_000
    r = http.post("/v1/completions", content=raw, headers=headers)
    assert r.status_code == 413 and r.json()["code"] == "request_too_large"
    # under the limit inflated, over it in its JSON form ("0," per token id)
    body = {**TEXT, "prompt": [0] * (MAX_BODY * 9 // 16)}
    assert len(msgpack.packb(body)) < MAX_BODY < len(json.dumps(body))
    raw, headers = encode(body, encoding="gzip")
    r = http.post("/v1/completions", content=raw, headers=headers)
    assert r.status_code == 413 and r.json()["code"] == "request_too_large", r.text
    assert str(MAX_BODY) in r.json()["message"]
    server.wait_idle()


class MsgpackGzip(httpx.BaseTransport):
    """Re-encodes every JSON request body as gzip-compressed msgpack (as some client plugins send)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[dict] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            raw = gzip.compress(msgpack.packb(json.loads(request.read())))
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-length", "content-type")}
            headers.update({"content-type": "application/vnd.msgpack", "content-encoding": "gzip"})
            request = httpx.Request(request.method, request.url, headers=headers, content=raw,
                                    extensions=request.extensions)
            self.sent.append(dict(request.headers))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_official_sdks_over_msgpack_gzip(base_url):
    import openai
    from cerebras.cloud.sdk import BadRequestError, Cerebras

    transport = MsgpackGzip()
    msgs = CHAT["messages"]
    with Cerebras(api_key="k", base_url=base_url, http_client=httpx.Client(transport=transport),
                  _strict_response_validation=True, max_retries=0, warm_tcp_connection=False) as cb, \
            openai.OpenAI(api_key="k", base_url=base_url + "/v1", http_client=httpx.Client(transport=transport),
                          max_retries=0) as oa:
        for client in (cb, oa):
            r = client.chat.completions.create(model=MODEL_ID, messages=msgs, max_completion_tokens=6, temperature=0)
            assert r.choices[0].message.content and r.usage.completion_tokens == 6
            chunks = list(client.chat.completions.create(model=MODEL_ID, messages=msgs, max_completion_tokens=6,
                                                         temperature=0, stream=True))
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == r.choices[0].message.content
            t = client.completions.create(model=MODEL_ID, prompt="Once upon a time", max_tokens=6, temperature=0)
            assert t.choices[0].text and t.usage.completion_tokens == 6
        with pytest.raises(BadRequestError) as e:
            cb.chat.completions.create(model=MODEL_ID, messages=msgs, temperature=5)
        assert e.value.body["message"] == "temperature: Input should be less than or equal to 2"
    assert len(transport.sent) >= 7
    assert all(h["content-type"] == "application/vnd.msgpack" and h["content-encoding"] == "gzip"
               for h in transport.sent)
