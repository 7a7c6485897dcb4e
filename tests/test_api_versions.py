"""API behaviour versions (X-Cerebras-Version-Patch): version 2 is the default, the header selects a
version per request, ``wafer serve --api-version`` sets the default, and every difference between
the versions is checked both ways, through raw HTTP and both official SDKs. (The version-2-only
``reasoning_logprobs`` field is checked on a reasoning model in test_reasoning.py.)"""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import MODEL_ID, Server, sdk_clients, serve_args

ASK = [{"role": "user", "content": "Give me a JSON object."}]
CALL = {"id": "call1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
TOOL_F = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def rf(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "s", "strict": True, "schema": schema}}


# name -> (request fields, what version 2's 400 says, its param). Version 1 accepts every one of them.
DIFFERENCES = {
    "additional_properties_missing": (
        {"response_format": rf({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})},
        "additionalProperties must be set to false", "response_format"),
    "nested_additional_properties_missing": (
        {"response_format": rf({"type": "object", "additionalProperties": False, "required": ["p"], "properties": {
            "p": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}})},
        "properties.p: additionalProperties must be set to false", "response_format"),
    "definitions": (
        {"response_format": rf({"type": "object", "properties": {"a": {"$ref": "#/definitions/n"}}, "required": ["a"],
                                "additionalProperties": False, "definitions": {"n": {"type": "integer"}}})},
        '"definitions" is not supported', "response_format"),
    "strict_tool_additional_properties_missing": (
        {"tools": [{"type": "function", "function": {"name": "f", "strict": True, "parameters": {
            "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}}]},
        "additionalProperties must be set to false", "tools"),
    "tool_choice_without_tools": ({"tool_choice": "auto"}, '"tool_choice" is only allowed when "tools" are given',
                                  "tool_choice"),
    "unanswered_tool_call": (
        {"messages": ASK + [{"role": "assistant", "tool_calls": [CALL]}, {"role": "user", "content": "go on"}]},
        "'call1' is not answered by a tool message", "messages"),
    "orphan_tool_message": (
        {"messages": ASK + [{"role": "tool", "tool_call_id": "nope", "content": "x"}]},
        "'nope' does not match any tool call", "messages"),
    "duplicate_tool_call_ids": (
        {"messages": ASK + [{"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "tool_call_id": "call1",
                                                                          "content": "1"},
                            {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "tool_call_id": "call1",
                                                                          "content": "2"}],
         "tools": [TOOL_F]},
        "duplicate tool call id 'call1'", "messages"),
}


def post(url: str, fields: dict, version: str | None) -> httpx.Response:
    headers = {"X-Cerebras-Version-Patch": version} if version is not None else {}
    body = {"model": MODEL_ID, "messages": ASK, "max_completion_tokens": 2, "temperature": 0, **fields}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=120)


def rejected(r: httpx.Response, needle: str, param: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert (body["type"], body["code"], body["param"]) == ("invalid_request_error", "wrong_api_format", param)
    assert needle in body["message"]


@pytest.fixture(scope="module")
def v1_server(resolved_model, tmp_path_factory):
    """A server whose default is version 1 (``--api-version 1``)."""
    args = serve_args(resolved_model) + ["--api-version", "1", "--ctx-size", "2048", "--parallel", "2", "--kv-size", "4096"]
    s = Server(args, tmp_path_factory.mktemp("v1") / "server.log")
    yield s
    s.stop()


@pytest.mark.parametrize("name", list(DIFFERENCES))
def test_each_difference_both_ways(server, v1_server, name):
    fields, needle, param = DIFFERENCES[name]
    # the default server: version 2 without a header, either version with one
    rejected(post(server.url, fields, None), needle, param)
    rejected(post(server.url, fields, "2"), needle, param)
    assert post(server.url, fields, "1").status_code == 200
    # --api-version 1: version 1 without a header, still either version with one
    assert post(v1_server.url, fields, None).status_code == 200
    rejected(post(v1_server.url, fields, "2"), needle, param)


def test_version_1_repairs_what_version_2_rejects(server):
    """Version 1 quietly adds additionalProperties: false and reads "definitions" as "$defs": the output
    follows the schema as repaired."""
    for name in ("additional_properties_missing", "definitions"):
        r = post(server.url, {**DIFFERENCES[name][0], "max_completion_tokens": 30}, "1")
        assert r.status_code == 200, r.text
        out = json.loads(r.json()["choices"][0]["message"]["content"])
        assert set(out) == {"a"} and isinstance(out["a"], int)


def test_official_sdks_select_the_version(server):
    from cerebras.cloud.sdk import BadRequestError as CerebrasBadRequest
    from openai import BadRequestError as OpenAIBadRequest

    fields, needle, _ = DIFFERENCES["unanswered_tool_call"]
    with sdk_clients(server.url) as (cb, oa):
        for client, error in ((cb, CerebrasBadRequest), (oa, OpenAIBadRequest)):
            with pytest.raises(error) as e:  # the default is version 2
                client.chat.completions.create(model=MODEL_ID, messages=fields["messages"], max_completion_tokens=2)
            assert needle in str(e.value)
            v1 = client.with_options(default_headers={"X-Cerebras-Version-Patch": "1"})
            r = v1.chat.completions.create(model=MODEL_ID, messages=fields["messages"], max_completion_tokens=2)
            assert r.choices[0].message.content is not None
            r = client.chat.completions.create(model=MODEL_ID, messages=ASK, max_completion_tokens=2,
                                               extra_headers={"X-Cerebras-Version-Patch": "1"}, tool_choice="none")
            assert r.choices[0].finish_reason == "length"


@pytest.mark.parametrize("value,fragment", [
    ("abc", "Input should be a valid integer"),
    ("", "Input should be a valid integer"),
    ("2.0", "Input should be a valid integer"),
    ("v2", "Input should be a valid integer"),
    ("3", "unsupported API version 3"),
    ("0", "unsupported API version 0"),
    ("-1", "unsupported API version -1"),
    ("99999999999999999999", "Input should be a valid integer"),
])
def test_malformed_version_header_is_a_400_on_both_routes(server, value, fragment):
    for path, body in (("/v1/chat/completions", {"model": MODEL_ID, "messages": ASK}),
                       ("/v1/completions", {"model": MODEL_ID, "prompt": "Hi"})):
        r = httpx.post(server.url + path, json={**body, "max_tokens": 2}, headers={"X-Cerebras-Version-Patch": value})
        assert r.status_code == 400, r.text
        b = r.json()
        assert b == {"message": b["message"], "type": "invalid_request_error", "param": "validation_error",
                     "code": "wrong_api_format"}
        assert b["message"].startswith("header.x-cerebras-version-patch: ") and fragment in b["message"]


def test_sdk_raises_for_a_malformed_version_header(cerebras):
    from cerebras.cloud.sdk import BadRequestError

    with pytest.raises(BadRequestError) as e:
        cerebras.chat.completions.create(model=MODEL_ID, messages=ASK, max_completion_tokens=2,
                                         extra_headers={"X-Cerebras-Version-Patch": "latest"})
    assert e.value.status_code == 400 and e.value.body["param"] == "validation_error"

