"""Tests for wafer.protocol: request validation, Cerebras-shaped errors, response serialization."""

from __future__ import annotations

import copy
import json
import random

import pytest

from wafer.protocol import (
    APIError,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatLogprobs,
    Choice,
    ChunkChoice,
    CompletionRequest,
    Delta,
    ErrorChunk,
    FunctionCall,
    ImageURLPart,
    LogprobContent,
    Message,
    Model,
    ModelList,
    TextChoice,
    TextCompletion,
    TextLogprobs,
    TimeInfo,
    ToolCall,
    ToolChoiceObject,
    ToolMessage,
    TopLogprob,
    Usage,
    UserMessage,
    bad_request,
    context_length_exceeded,
    dump,
    internal_error,
    load_json,
    model_not_found,
    new_chat_id,
    new_tool_call_id,
    parse_chat_request,
    parse_completion_request,
    queue_exceeded,
    sse,
    system_fingerprint,
)

pytestmark = pytest.mark.model_free  # needs no model file

USER = [{"role": "user", "content": "hi"}]


def chat(**kw):
    body = {"model": "m", "messages": USER}
    body.update(kw)
    return body


def chat_error(body, version: int = 2) -> APIError:
    with pytest.raises(APIError) as ei:
        parse_chat_request(body, version=version)
    return ei.value


def completion_error(body) -> APIError:
    with pytest.raises(APIError) as ei:
        parse_completion_request(body)
    return ei.value


def validation_body(message: str) -> dict:
    return {"message": message, "type": "invalid_request_error", "param": "validation_error", "code": "wrong_api_format"}


# ============================================================================================
# errors


def test_api_error_body_shape():
    e = APIError(400, "boom", param="x", code="c")
    assert e.body() == {"message": "boom", "type": "invalid_request_error", "param": "x", "code": "c"}
    assert list(e.body()) == ["message", "type", "param", "code"]
    assert e.status == 400 and e.headers == {}
    assert isinstance(e, Exception)


def test_error_helpers():
    assert model_not_found("nope").status == 404
    assert model_not_found("nope").body() == {
        "message": "Model does not exist or you do not have access to it.",
        "type": "not_found_error",
        "param": "model",
        "code": "model_not_found",
    }
    q = queue_exceeded(headers={"retry-after": "1"})
    assert (q.status, q.type, q.code, q.param, q.headers) == (
        429,
        "too_many_requests_error",
        "queue_exceeded",
        "queue",
        {"retry-after": "1"},
    )
    i = internal_error("oops")
    assert (i.status, i.type, i.code) == (500, "server_error", "internal_error")
    c = context_length_exceeded("too long")
    assert (c.status, c.code, c.param, c.type) == (400, "context_length_exceeded", "messages", "invalid_request_error")
    b = bad_request("bad", param="p")
    assert b.body() == {"message": "bad", "type": "invalid_request_error", "param": "p", "code": "wrong_api_format"}


# ============================================================================================
# chat: spec examples (exact bodies)


def test_unknown_top_level_key_store():
    e = chat_error(chat(store=True))
    assert e.status == 400
    assert e.body() == validation_body("body.store: property 'body.store' is unsupported")


def test_reasoning_content_rejected_with_role_in_path():
    body = chat(
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "a", "reasoning_content": "thinking"},
            {"role": "user", "content": "again"},
        ]
    )
    e = chat_error(body)
    body = e.body()
    # Cerebras' message, then what to do about it
    assert body["message"].startswith(
        "messages.1.assistant.reasoning_content: property 'messages.1.assistant.reasoning_content' is unsupported"
    )
    assert "as 'reasoning'" in body["message"]
    assert {k: v for k, v in body.items() if k != "message"} == {
        k: v for k, v in validation_body("x").items() if k != "message"
    }


def test_assistant_reasoning_accepted():
    req = parse_chat_request(
        chat(
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "a", "reasoning": "thinking"},
                {"role": "assistant", "content": [{"type": "text", "text": "b"}], "reasoning": [{"type": "text", "text": "r"}]},
                {"role": "user", "content": "again"},
            ]
        )
    )
    assert isinstance(req.messages[1], AssistantMessage)
    assert req.messages[1].reasoning_text == "thinking"
    assert req.messages[2].text == "b" and req.messages[2].reasoning_text == "r"


def test_tools_with_response_format():
    tools = [{"type": "function", "function": {"name": "f"}}]
    for rf in ({"type": "text"}, {"type": "json_object"}):
        e = chat_error(chat(tools=tools, response_format=rf))
        assert e.status == 400
        assert e.body() == {
            "message": '"tools" is incompatible with "response_format"',
            "type": "invalid_request_error",
            "param": "response_format",
            "code": "wrong_api_format",
        }


def test_both_max_tokens():
    e = chat_error(chat(max_tokens=5, max_completion_tokens=6))
    assert e.status == 400
    assert e.body()["code"] == "wrong_api_format"
    assert e.body()["param"] == "max_tokens"
    assert "max_tokens" in e.message and "max_completion_tokens" in e.message
    # one of them null is fine
    assert parse_chat_request(chat(max_tokens=5, max_completion_tokens=None)).max_new_tokens == 5


def test_value_error_message():
    e = chat_error(chat(temperature=3))
    assert e.body() == validation_body("temperature: Input should be less than or equal to 2")


def test_missing_required():
    assert chat_error({"messages": USER}).body() == validation_body("model: Field required")
    assert chat_error({"model": "m"}).message == "messages: Field required"
    assert chat_error({"model": "m", "messages": []}).message.startswith("messages: List should have at least 1 item")


# ============================================================================================
# chat: accepted requests


SPEC_EXAMPLE = {
    "model": "gpt-oss-120b",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Florence?"}]},
    ],
    "max_completion_tokens": 1024,
    "temperature": 0.7,
    "top_p": 1,
    "stream": True,
    "stream_options": {"include_usage": True},
    "reasoning_effort": "low",
    "reasoning_format": "parsed",
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Get weather",
                "parameters": {
                    "type": "object",
                    "properties": {"location": {"type": "string"}},
                    "required": ["location"],
                    "additionalProperties": False,
                },
                "strict": True,
            },
        }
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
}


def _roundtrip(req) -> dict:
    return json.loads(req.model_dump_json(exclude_none=True, by_alias=True))


def test_spec_example_roundtrip():
    req = parse_chat_request(copy.deepcopy(SPEC_EXAMPLE))
    assert _roundtrip(req) == SPEC_EXAMPLE
    assert req.max_new_tokens == 1024
    assert req.is_stream
    assert [f.name for f in req.function_tools] == ["weather"]
    assert req.effective_tool_choice == "auto"


FULL_CHAT = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "s", "name": "sys"},
        {"role": "developer", "content": [{"type": "text", "text": "d"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "high"}},
                {"type": "image", "image": "aGVsbG8="},
            ],
            "name": "u",
        },
        {
            "role": "assistant",
            "content": None,
            "reasoning": "r",
            "tool_calls": [
                {"id": "abc123def", "type": "function", "function": {"name": "f", "arguments": "{}"}, "index": 0}
            ],
        },
        {"role": "tool", "content": [{"type": "text", "text": "42"}], "tool_call_id": "abc123def", "name": "f"},
    ],
    "clear_thinking": False,
    "disable_reasoning": False,
    "frequency_penalty": -2,
    "logit_bias": {"50256": -100, "1": 100.0},
    "logprobs": True,
    "max_completion_tokens": -1,
    "min_completion_tokens": -1,
    "model_parameters": {"anything": [1, {"x": None}]},
    "n": 3,
    "parallel_tool_calls": False,
    "prediction": {"type": "content", "content": "predicted"},
    "presence_penalty": 2,
    "prompt_cache_key": "k" * 1024,
    "reasoning_effort": "none",
    "reasoning_format": "hidden",
    "seed": 1234,
    "service_tier": "flex",
    "stop": ["a", "b", "c", "d"],
    "stream": False,
    "stream_options": {"include_usage": None},
    "temperature": 0,
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": False}}],
    "top_logprobs": 20,
    "top_p": 0,
    "user": "someone",
}


def test_every_chat_field_accepted():
    # every field at once; "prediction" with n/logprobs/tools is a cross-field 400 (test_prediction.py),
    # so the cross-field rules run on the body without it
    without_prediction = copy.deepcopy(FULL_CHAT)
    without_prediction.pop("prediction")
    parse_chat_request(without_prediction, version=2)
    req = ChatCompletionRequest.model_validate(copy.deepcopy(FULL_CHAT))
    assert req.max_new_tokens is None  # -1 = model maximum
    assert req.min_new_tokens == -1
    assert req.stop_list == ["a", "b", "c", "d"]
    assert req.num_choices == 3
    assert req.logit_bias_ids == {50256: -100.0, 1: 100.0}
    assert req.num_top_logprobs == 20
    assert isinstance(req.effective_tool_choice, ToolChoiceObject)
    assert isinstance(req.messages[2], UserMessage)
    assert isinstance(req.messages[2].content[1], ImageURLPart)
    assert req.messages[2].text == "look"
    assert isinstance(req.messages[4], ToolMessage)
    assert req.prediction.text == "predicted"
    rt = _roundtrip(req)
    expected = copy.deepcopy(FULL_CHAT)
    expected["messages"][3].pop("content")  # null = not sent
    expected["stream_options"] = {}
    assert rt == json.loads(json.dumps(expected))


def test_json_schema_response_format():
    rf = {
        "type": "json_schema",
        "json_schema": {"name": "n", "description": "d", "schema": {"type": "object"}, "strict": True},
    }
    req = parse_chat_request(chat(response_format=rf))
    assert req.response_format.json_schema.schema_ == {"type": "object"}
    assert _roundtrip(req)["response_format"] == rf
    e = chat_error(chat(response_format={"type": "json_schema", "json_schema": {"schema": {}}}))
    assert e.message == "response_format.json_schema.name: Field required"
    e = chat_error(chat(response_format={"type": "json_schema", "json_schema": {"name": "n", "schema_": {}}}))
    assert e.message.startswith("response_format.json_schema.schema_: property")
    e = chat_error(chat(response_format={"type": "xml"}))
    assert e.message.startswith("response_format: ") and e.param == "validation_error"


def test_all_optional_fields_accept_null():
    optional = [k for k in FULL_CHAT if k not in ("model", "messages")]
    req = parse_chat_request(chat(**{k: None for k in optional}))
    assert _roundtrip(req) == chat()
    assert req.max_new_tokens is None and req.min_new_tokens == 0 and req.stop_list == []
    assert req.num_choices == 1 and req.effective_tool_choice == "none"
    assert req.temperature_or_default == 1.0 and req.parallel_tool_calls_or_default is True


def test_max_new_tokens_accessor():
    assert parse_chat_request(chat(max_tokens=7)).max_new_tokens == 7
    assert parse_chat_request(chat(max_completion_tokens=9)).max_new_tokens == 9
    assert parse_chat_request(chat(max_tokens=-1)).max_new_tokens is None
    assert parse_chat_request(chat(max_completion_tokens=0)).max_new_tokens == 0
    assert parse_chat_request(chat(min_tokens=4)).min_new_tokens == 4
    assert parse_chat_request(chat(min_completion_tokens=3, min_tokens=5)).min_new_tokens == 3
    assert chat_error(chat(max_tokens=-2)).message == "max_tokens: Input should be greater than or equal to -1"


def test_stop_list():
    assert parse_chat_request(chat(stop="x")).stop_list == ["x"]
    assert parse_chat_request(chat(stop="")).stop_list == []
    assert parse_chat_request(chat(stop=["a", ""])).stop_list == ["a"]
    e = chat_error(chat(stop=["a", "b", "c", "d", "e"]))
    assert (e.status, e.param, e.code) == (400, "stop", "wrong_api_format")
    assert chat_error(chat(stop=5)).message == "stop: Input should be a valid string or an array of strings"
    assert chat_error(chat(stop=["a", 1])).message == "stop.1: Input should be a valid string"


# ============================================================================================
# chat: rejected values


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("temperature", -0.1, "temperature: Input should be greater than or equal to 0"),
        ("top_p", 1.5, "top_p: Input should be less than or equal to 1"),
        ("frequency_penalty", 2.5, "frequency_penalty: Input should be less than or equal to 2"),
        ("presence_penalty", -3, "presence_penalty: Input should be greater than or equal to -2"),
        ("n", 0, "n: Input should be greater than or equal to 1"),
        ("n", 129, "n: Input should be less than or equal to 128"),
        ("top_logprobs", 21, "top_logprobs: Input should be less than or equal to 20"),
        ("prompt_cache_key", "k" * 1025, "prompt_cache_key: String should have at most 1024 characters"),
        ("reasoning_effort", "max", "reasoning_effort: Input should be 'none', 'low', 'medium' or 'high'"),
        ("service_tier", "gold", "service_tier: Input should be 'auto', 'default', 'flex' or 'priority'"),
        ("reasoning_format", "x", "reasoning_format: Input should be 'none', 'parsed', 'text_parsed', 'raw' or 'hidden'"),
        ("model", 5, "model: Input should be a valid string"),
        ("messages", "hi", "messages: Input should be a valid list"),
        ("stream", "true", "stream: Input should be a valid boolean"),
        ("stream", 1, "stream: Input should be a valid boolean"),
        ("temperature", "0.5", "temperature: Input should be a valid number"),
        ("temperature", float("nan"), "temperature: Input should be a finite number"),
        ("n", True, "n: Input should be a valid integer"),
        ("n", 2.0, "n: Input should be a valid integer"),
        ("seed", 2**70, "seed: Input should be less than or equal to 18446744073709551615"),
        ("logit_bias", {"1": "x"}, "logit_bias.1: Input should be a valid number"),
        ("model_parameters", [1], "model_parameters: Input should be a valid dictionary"),
        ("tool_choice", "any", "tool_choice: Input should be 'none', 'auto' or 'required'"),
        ("tool_choice", 3, "tool_choice: Input should be 'none', 'auto', 'required' or a tool choice object"),
        ("stream_options", {"include_usage": True, "x": 1}, "stream_options.x: property 'stream_options.x' is unsupported"),
        ("prediction", {"type": "content"}, "prediction.content: Field required"),
    ],
)
def test_rejected_values(field, value, message):
    e = chat_error(chat(**{field: value}))
    assert e.body() == validation_body(message)


def test_float_fields_accept_integers():
    req = parse_chat_request(chat(temperature=1, top_p=0, frequency_penalty=-2))
    assert req.temperature == 1.0 and isinstance(req.temperature, float)


def test_top_logprobs_needs_logprobs():
    for lp in (None, False):
        body = chat(top_logprobs=2)
        if lp is not None:
            body["logprobs"] = lp
        e = chat_error(body)
        assert (e.status, e.param, e.code) == (400, "top_logprobs", "wrong_api_format")
    assert parse_chat_request(chat(logprobs=True, top_logprobs=0)).num_top_logprobs == 0
    assert parse_chat_request(chat(logprobs=True)).num_top_logprobs == 0
    assert parse_chat_request(chat(logprobs=False)).num_top_logprobs == 0


@pytest.mark.parametrize(
    "name,ok",
    [
        ("get_weather", True),
        ("a-b_C9", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("", False),
        ("has space", False),
        ("dot.name", False),
        ("naïve", False),
        ("trailing\n", False),
    ],
)
def test_tool_function_name(name, ok):
    body = chat(tools=[{"type": "function", "function": {"name": name}}])
    if ok:
        assert parse_chat_request(body).tools[0].function.name == name
    else:
        e = chat_error(body)
        assert (e.status, e.param, e.code) == (400, "tools", "wrong_api_format")


def test_tool_choice_must_name_a_tool():
    tools = [{"type": "function", "function": {"name": "f"}}]
    e = chat_error(chat(tools=tools, tool_choice={"type": "function", "function": {"name": "g"}}))
    assert e.param == "tool_choice"
    assert parse_chat_request(chat(tools=tools, tool_choice="required")).effective_tool_choice == "required"
    assert parse_chat_request(chat(tools=tools)).effective_tool_choice == "auto"


@pytest.mark.parametrize("key", ["a", "-1", "1.5", "", " 1", "１", "99999999999", "1" * 5000])
def test_logit_bias_bad_keys(key):
    e = chat_error(chat(logit_bias={key: 1}))
    assert (e.status, e.param, e.code) == (400, "logit_bias", "wrong_api_format")


@pytest.mark.parametrize("value", [-100.5, 101, 1e9])
def test_logit_bias_bad_values(value):
    e = chat_error(chat(logit_bias={"5": value}))
    assert (e.status, e.param) == (400, "logit_bias")


def test_nested_unknown_keys():
    cases = [
        (
            chat(tools=[{"type": "function", "function": {"name": "f", "extra": 1}}]),
            "tools.0.function.extra",
        ),
        (chat(tools=[{"type": "function", "function": {"name": "f"}, "x": 1}]), "tools.0.x"),
        (
            chat(response_format={"type": "json_schema", "json_schema": {"name": "n", "foo": 1}}),
            "response_format.json_schema.foo",
        ),
        (chat(response_format={"type": "text", "foo": 1}), "response_format.foo"),
        (chat(messages=[{"role": "user", "content": "x", "extra": 1}]), "messages.0.user.extra"),
        (chat(messages=[{"role": "user", "content": [{"type": "text", "text": "x", "y": 2}]}]), "messages.0.user.content.0.y"),
        (
            chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u", "z": 1}}]}]),
            "messages.0.user.content.0.image_url.z",
        ),
        (
            chat(
                messages=[
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}", "q": 1}}],
                    }
                ]
            ),
            "messages.0.assistant.tool_calls.0.function.q",
        ),
        (chat(messages=[{"role": "tool", "content": "x", "tool_call_id": "1", "w": 1}]), "messages.0.tool.w"),
        (chat(tool_choice={"type": "function", "function": {"name": "f", "v": 1}}), "tool_choice.function.v"),
        (chat(prediction={"type": "content", "content": "x", "v": 1}), "prediction.v"),
    ]
    for body, path in cases:
        assert chat_error(body).body() == validation_body(f"{path}: property '{path}' is unsupported"), path


def test_message_validation():
    cases = [
        ({"role": "bot", "content": "x"}, "messages.0: Input tag 'bot' found using 'role'"),
        ({"content": "x"}, "messages.0: Unable to extract tag using discriminator 'role'"),
        ("x", "messages.0: Input should be a valid dictionary"),
        ({"role": "user"}, "messages.0.user.content: Field required"),
        ({"role": "user", "content": 5}, "messages.0.user.content: Input should be a valid string or an array of content parts"),
        ({"role": "user", "content": [{"type": "audio"}]}, "messages.0.user.content.0: Input should be a content part"),
        ({"role": "user", "content": [{"type": "text"}]}, "messages.0.user.content.0.text: Field required"),
        ({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}, "messages.0.user.content.0.image_url.url: Field required"),
        ({"role": "system", "content": None}, "messages.0.system.content: Input should be a valid string or an array"),
        (
            {"role": "assistant", "content": [{"type": "image", "image": "x"}]},
            "messages.0.assistant.content.0: Input should be a content part with type 'text'",
        ),
        ({"role": "tool", "content": "x"}, "messages.0.tool.tool_call_id: Field required"),
        (
            {"role": "assistant", "tool_calls": [{"id": "1", "type": "custom", "function": {"name": "f", "arguments": ""}}]},
            "messages.0.assistant.tool_calls.0.type: Input should be 'function'",
        ),
        (
            {"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f"}}]},
            "messages.0.assistant.tool_calls.0.function.arguments: Field required",
        ),
    ]
    for msg, expected in cases:
        e = chat_error(chat(messages=[msg]))
        assert e.param == "validation_error", msg
        assert e.message.startswith(expected), (msg, e.message)


def test_developer_and_assistant_without_content():
    req = parse_chat_request(chat(messages=[{"role": "developer", "content": "d"}, {"role": "assistant"}, *USER]))
    assert req.messages[1].text == ""


@pytest.mark.parametrize("data", [None, [], [USER], "x", 1, 1.5, True, {}])
def test_non_object_bodies(data):
    e = chat_error(data)
    assert e.status == 400 and e.code == "wrong_api_format"
    e = completion_error(data)
    assert e.status == 400 and e.code == "wrong_api_format"


def test_unknown_key_reported_before_other_errors():
    e = chat_error(chat(temperature=5, store=True))
    assert e.message == "body.store: property 'body.store' is unsupported"


# ============================================================================================
# API version 2 tool-message rules


def _tool_conv(*msgs):
    return chat(messages=[{"role": "user", "content": "q"}, *msgs])


def _asst(*ids):
    return {
        "role": "assistant",
        "tool_calls": [{"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids],
    }


def _tool(i):
    return {"role": "tool", "content": "r", "tool_call_id": i}


def test_v2_good_conversation():
    body = _tool_conv(_asst("a", "b"), _tool("b"), _tool("a"), {"role": "assistant", "content": "ok"}, *USER)
    body["tools"] = [{"type": "function", "function": {"name": "f"}}]
    body["tool_choice"] = "auto"
    parse_chat_request(body, version=2)


@pytest.mark.parametrize(
    "msgs,fragment",
    [
        ((_asst("a", "b"), _tool("a"), {"role": "user", "content": "x"}), "'b' is not answered"),
        ((_asst("a"),), "'a' is not answered"),
        ((_asst("a"), {"role": "user", "content": "x"}, _tool("a")), "'a' is not answered"),
        ((_tool("zzz"),), "'zzz' does not match"),
        ((_asst("a"), _tool("a"), _tool("b")), "'b' does not match"),
        ((_asst("a"), _tool("a"), _tool("a")), "already has a response"),
        ((_asst("a", "a"), _tool("a")), "duplicate tool call id 'a'"),
        ((_asst("a"), _tool("a"), _asst("a"), _tool("a")), "duplicate tool call id 'a'"),
    ],
)
def test_v2_tool_pairing(msgs, fragment):
    body = _tool_conv(*msgs)
    parse_chat_request(copy.deepcopy(body), version=1)  # version 1 accepts all of these
    for e in (chat_error(copy.deepcopy(body), version=2), chat_error(body)):  # version 2 is the default
        assert (e.status, e.param, e.code) == (400, "messages", "wrong_api_format")
        assert fragment in e.message


def test_v2_tool_choice_without_tools():
    for tc in ("none", "auto", "required", {"type": "function", "function": {"name": "f"}}):
        parse_chat_request(chat(tool_choice=tc), version=1)  # v1: accepted
        for e in (chat_error(chat(tool_choice=tc), version=2), chat_error(chat(tool_choice=tc))):
            assert (e.status, e.param) == (400, "tool_choice")
    parse_chat_request(chat(tool_choice=None), version=2)


# ============================================================================================
# text completions


def comp(**kw):
    body = {"model": "m", "prompt": "Once upon a time"}
    body.update(kw)
    return body


def test_completion_prompt_forms():
    assert isinstance(parse_completion_request(comp()), CompletionRequest)
    assert parse_completion_request(comp()).prompts == ["Once upon a time"]
    assert parse_completion_request(comp(prompt="")).prompts == [""]
    assert parse_completion_request(comp(prompt=["a", "b"])).prompts == ["a", "b"]
    assert parse_completion_request(comp(prompt=[1, 2, 3])).prompts == [[1, 2, 3]]
    assert parse_completion_request(comp(prompt=[[1], [2, 3]])).prompts == [[1], [2, 3]]
    for bad in ([], [[]], [-1], ["a", 1], [1, "a"], [True], 5, None, {"a": 1}, [[1], 2]):
        e = completion_error(comp(prompt=bad))
        assert e.param == "validation_error" and e.message.startswith("prompt"), (bad, e.message)
    assert completion_error({"model": "m"}).message == "prompt: Field required"


FULL_COMPLETION = {
    "model": "m",
    "prompt": ["a", "b"],
    "best_of": 3,
    "echo": True,
    "frequency_penalty": 1.5,
    "grammar_root": "root",
    "logit_bias": {"7": 5},
    "logprobs": 5,
    "max_tokens": 16,
    "min_tokens": 2,
    "n": 2,
    "presence_penalty": -1,
    "prompt_cache_key": "k",
    "reasoning_format": "raw",
    "return_raw_tokens": True,
    "seed": 7,
    "stop": "\n",
    "stream": False,
    "stream_options": {"include_usage": True},
    "suffix": "end",
    "temperature": 0.5,
    "top_p": 0.9,
    "user": "u",
}


def test_every_completion_field_accepted():
    req = parse_completion_request(copy.deepcopy(FULL_COMPLETION))
    assert _roundtrip(req) == FULL_COMPLETION
    assert req.max_new_tokens == 16 and req.min_new_tokens == 2
    assert req.num_choices == 2 and req.num_candidates == 3
    assert req.stop_list == ["\n"] and req.num_logprobs == 5
    nulls = parse_completion_request(comp(**{k: None for k in FULL_COMPLETION if k not in ("model", "prompt")}))
    assert _roundtrip(nulls) == comp()
    assert nulls.max_new_tokens is None and nulls.num_candidates == 1 and nulls.num_logprobs is None


def test_completion_rules():
    assert completion_error(comp(best_of=1, n=2)).param == "best_of"
    assert completion_error(comp(best_of=0)).param == "best_of"
    assert completion_error(comp(best_of=2, stream=True)).param == "best_of"
    parse_completion_request(comp(best_of=1, stream=True))
    parse_completion_request(comp(best_of=4, n=4))
    assert completion_error(comp(best_of=21)).message == "best_of: Input should be less than or equal to 20"
    assert completion_error(comp(logprobs=21)).message == "logprobs: Input should be less than or equal to 20"
    assert completion_error(comp(logprobs=True)).message == "logprobs: Input should be a valid integer"
    assert completion_error(comp(logprobs=-1)).param == "validation_error"
    assert completion_error(comp(echo="yes")).message == "echo: Input should be a valid boolean"
    assert completion_error(comp(stop=["1", "2", "3", "4", "5"])).param == "stop"
    assert completion_error(comp(logit_bias={"x": 1})).param == "logit_bias"
    assert completion_error(comp(max_tokens=-5)).param == "validation_error"
    assert completion_error(comp(messages=USER)).body() == validation_body(
        "body.messages: property 'body.messages' is unsupported"
    )
    assert completion_error(comp(max_completion_tokens=5)).message.startswith("body.max_completion_tokens")
    assert completion_error(comp(prompt_cache_key="k" * 1025)).param == "validation_error"


# ============================================================================================
# load_json


def test_load_json():
    assert load_json(b'{"a": 1}') == {"a": 1}
    for bad in (b"{", b"", b'{"temperature": NaN}', b"[Infinity]", b"\xff"):
        with pytest.raises(APIError) as ei:
            load_json(bad)
        assert ei.value.status == 400
    with pytest.raises(APIError):
        load_json(b"[" * 100000 + b"]" * 100000)


# ============================================================================================
# responses: wire shapes


WIRE_CHAT = (
    '{"id":"chatcmpl-c26a99f0-d64b-41e1-b3d1-91c6d3b45401",'
    '"choices":[{"finish_reason":"stop","index":0,"message":{"content":"Olá!","role":"assistant"}}],'
    '"created":1761231230,"model":"qwen-3-coder-480b","system_fingerprint":"fp_386b539e7b02ce3613b7",'
    '"object":"chat.completion",'
    '"usage":{"prompt_tokens":22,"completion_tokens":4,"total_tokens":26,"prompt_tokens_details":{"cached_tokens":0}},'
    '"time_info":{"queue_time":0.0001114,"prompt_time":0.00203661,"completion_time":0.00354778,'
    '"total_time":0.006747245788574219,"created":1761231230.5353851}}'
)

WIRE_FINAL_CHUNK = (
    '{"id":"chatcmpl-07ac2555-5f70-4250-bf47-c33cb5e4e22f","choices":[{"delta":{},"finish_reason":"stop","index":0}],'
    '"created":1761231233,"model":"qwen-3-coder-480b","system_fingerprint":"fp_386b539e7b02ce3613b7",'
    '"object":"chat.completion.chunk","usage":{"prompt_tokens":22,"completion_tokens":3,"total_tokens":25,'
    '"prompt_tokens_details":{"cached_tokens":0}},"time_info":{"queue_time":0.000533844,"prompt_time":0.00128098,'
    '"completion_time":0.003694258,"total_time":0.007519960403442383,"created":1761231233.440385}}'
)


def make_chat_completion() -> ChatCompletion:
    return ChatCompletion(
        id="chatcmpl-c26a99f0-d64b-41e1-b3d1-91c6d3b45401",
        choices=[Choice(finish_reason="stop", index=0, message=Message(content="Olá!"))],
        created=1761231230,
        model="qwen-3-coder-480b",
        system_fingerprint="fp_386b539e7b02ce3613b7",
        usage=Usage.make(22, 4),
        time_info=TimeInfo(
            queue_time=0.0001114,
            prompt_time=0.00203661,
            completion_time=0.00354778,
            total_time=0.006747245788574219,
            created=1761231230.5353851,
        ),
    )


def chunk(choices, **kw) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id="chatcmpl-07ac2555-5f70-4250-bf47-c33cb5e4e22f",
        choices=choices,
        created=1761231233,
        model="qwen-3-coder-480b",
        system_fingerprint="fp_386b539e7b02ce3613b7",
        **kw,
    )


def make_final_chunk() -> ChatCompletionChunk:
    return chunk(
        [ChunkChoice(delta=Delta(), finish_reason="stop", index=0)],
        usage=Usage.make(22, 3),
        time_info=TimeInfo(
            queue_time=0.000533844,
            prompt_time=0.00128098,
            completion_time=0.003694258,
            total_time=0.007519960403442383,
            created=1761231233.440385,
        ),
    )


def test_chat_completion_matches_wire_bytes():
    assert dump(make_chat_completion()) == WIRE_CHAT.encode()


def test_final_chunk_matches_wire_bytes():
    assert dump(make_final_chunk()) == WIRE_FINAL_CHUNK.encode()
    assert sse(make_final_chunk()) == b"data: " + WIRE_FINAL_CHUNK.encode() + b"\n\n"


def test_chunk_deltas_omit_nulls():
    role = json.loads(dump(chunk([ChunkChoice(delta=Delta(role="assistant"), index=0)])))
    assert role["choices"] == [{"delta": {"role": "assistant"}, "index": 0}]
    content = json.loads(dump(chunk([ChunkChoice(delta=Delta(content="Oi"))])))
    assert content["choices"] == [{"delta": {"content": "Oi"}, "index": 0}]
    assert "usage" not in content and "time_info" not in content and "service_tier" not in content
    empty = json.loads(dump(chunk([ChunkChoice()])))
    assert empty["choices"] == [{"delta": {}, "index": 0}]
    # a delta with empty-string content keeps it
    assert json.loads(dump(chunk([ChunkChoice(delta=Delta(content=""))])))["choices"][0]["delta"] == {"content": ""}


def test_tool_call_delta_matches_wire():
    tc = ToolCall(
        function=FunctionCall(name="weather", arguments='{"location": "Florence,Italy"}'), id="27781e665", index=0
    )
    c = chunk([ChunkChoice(delta=Delta(tool_calls=[tc]), index=0)])
    assert json.dumps(json.loads(dump(c))["choices"][0], separators=(",", ":")) == (
        '{"delta":{"tool_calls":[{"function":{"name":"weather","arguments":"{\\"location\\": \\"Florence,Italy\\"}"},'
        '"type":"function","id":"27781e665","index":0}]},"index":0}'
    )
    # non-stream message with only tool calls has no content key
    msg = json.loads(dump(Message(tool_calls=[tc])))
    assert "content" not in msg and msg["role"] == "assistant"


def test_reasoning_message_order():
    assert dump(Message(content="Hello!", reasoning="The user")) == (
        b'{"content":"Hello!","reasoning":"The user","role":"assistant"}'
    )


def test_text_completion_shape():
    tc = TextCompletion(
        id="chatcmpl-b1743f2d-8c20-4ad5-a77c-426521ae1b1c",
        choices=[
            TextChoice(
                index=0,
                finish_reason="length",
                logprobs=TextLogprobs(
                    text_offset=[30, 34],
                    token_logprobs=[-3.39, -4.32],
                    tokens=[" and", " there"],
                    top_logprobs=[{".": -1.13, " and": -3.39}, {" I": -0.95, " there": -4.32}],
                ),
                text=" and there was no moon,",
            )
        ],
        created=1769297019,
        model="gpt-oss-120b",
        system_fingerprint="fp_feb5e1faa8274e54bef0",
        time_info=TimeInfo(completion_time=0.0024, prompt_time=0.00035, queue_time=0.00025, total_time=0.0043, created=1769297019.26),
        usage=Usage(prompt_tokens=7, completion_tokens=6, total_tokens=13),
    )
    d = json.loads(dump(tc))
    assert list(d) == ["id", "choices", "created", "model", "object", "system_fingerprint", "time_info", "usage"]
    assert d["object"] == "text_completion"
    assert list(d["choices"][0]) == ["index", "finish_reason", "logprobs", "text"]
    assert d["usage"] == {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13}


def test_models_list_shape():
    ml = ModelList(data=[Model(id="zai-glm-4.7", owned_by="Cerebras"), Model(id="gpt-oss-120b", owned_by="Cerebras")])
    assert dump(ml) == (
        b'{"object":"list","data":[{"id":"zai-glm-4.7","object":"model","created":0,"owned_by":"Cerebras"},'
        b'{"id":"gpt-oss-120b","object":"model","created":0,"owned_by":"Cerebras"}]}'
    )


def test_error_chunk():
    ec = ErrorChunk.from_error(queue_exceeded("boom"))
    assert json.loads(dump(ec)) == {
        "error": {"id": "", "code": "queue_exceeded", "message": "boom", "param": "queue", "type": "too_many_requests_error"},
        "status_code": 429,
    }
    ec = ErrorChunk.from_error(internal_error("x"))
    assert json.loads(dump(ec))["error"]["param"] == ""


def test_logprobs_non_finite_clamped():
    lp = LogprobContent(token="a", logprob=float("-inf"), top_logprobs=[TopLogprob(token="a", logprob=float("nan"))])
    d = json.loads(dump(lp))
    assert d == {"token": "a", "logprob": -9999.0, "top_logprobs": [{"token": "a", "logprob": -9999.0}]}


def test_usage_make():
    u = Usage.make(10, 5, cached_tokens=3, reasoning_tokens=2, accepted_prediction_tokens=0, rejected_prediction_tokens=1)
    assert json.loads(dump(u)) == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 3},
        "completion_tokens_details": {"accepted_prediction_tokens": 0, "rejected_prediction_tokens": 1, "reasoning_tokens": 2},
    }


def test_ids_and_fingerprint():
    cid = new_chat_id()
    assert cid.startswith("chatcmpl-") and len(cid) == len("chatcmpl-") + 36 and cid != new_chat_id()
    t = new_tool_call_id()
    assert len(t) == 9 and t.isalnum() and t == t.lower()
    fp = system_fingerprint("model.gguf", "0.1.0")
    assert fp == system_fingerprint("model.gguf", "0.1.0") != system_fingerprint("other.gguf", "0.1.0")
    assert fp.startswith("fp_") and len(fp) == 23 and int(fp[3:], 16) >= 0


# ============================================================================================
# responses are accepted by the official SDKs


def _full_chat_completion() -> ChatCompletion:
    lp = ChatLogprobs(
        content=[LogprobContent(token="Hi", logprob=-0.1, bytes=[72, 105], top_logprobs=[TopLogprob(token="Hi", logprob=-0.1)])]
    )
    return ChatCompletion(
        id=new_chat_id(),
        choices=[
            Choice(finish_reason="stop", index=0, message=Message(content="Hi", reasoning="think"), logprobs=lp),
            Choice(
                finish_reason="tool_calls",
                index=1,
                message=Message(tool_calls=[ToolCall(function=FunctionCall(name="f", arguments="{}"), id="abc", index=0)]),
            ),
        ],
        created=1,
        model="m",
        system_fingerprint=system_fingerprint("x"),
        usage=Usage.make(3, 4, reasoning_tokens=1),
        time_info=TimeInfo(queue_time=0, prompt_time=0.1, completion_time=0.2, total_time=0.3, created=1.5),
    )


def _chunks() -> list[ChatCompletionChunk]:
    return [
        chunk([ChunkChoice(delta=Delta(role="assistant"))]),
        chunk([ChunkChoice(delta=Delta(reasoning="hmm"))]),
        chunk([ChunkChoice(delta=Delta(content="Oi"), logprobs=ChatLogprobs(content=[LogprobContent(token="Oi", logprob=-1)]))]),
        chunk(
            [
                ChunkChoice(
                    delta=Delta(tool_calls=[ToolCall(function=FunctionCall(name="f", arguments="{}"), id="a", index=0)])
                )
            ]
        ),
        chunk([ChunkChoice()]),
        make_final_chunk(),
    ]


def _text_completion() -> TextCompletion:
    return TextCompletion(
        id=new_chat_id(),
        choices=[
            TextChoice(
                index=0,
                finish_reason="length",
                text=" and",
                logprobs=TextLogprobs(text_offset=[0], token_logprobs=[-1.0], tokens=[" and"], top_logprobs=[{" and": -1.0}]),
                tokens=[290],
            )
        ],
        created=1,
        model="m",
        system_fingerprint="fp_00000000000000000000",
        usage=Usage.make(1, 1),
        time_info=TimeInfo(total_time=0.1, created=1.0),
    )


def test_cerebras_sdk_accepts_responses():
    from cerebras.cloud.sdk._models import construct_type, validate_type
    from cerebras.cloud.sdk.types.chat import chat_completion as sdk_chat
    from cerebras.cloud.sdk.types import completion as sdk_completion
    from cerebras.cloud.sdk.types import model_list_response as sdk_models

    body = json.loads(dump(_full_chat_completion()))
    v = validate_type(type_=sdk_chat.ChatCompletion, value=body)
    assert isinstance(v, sdk_chat.ChatCompletionResponse)
    assert v.choices[0].message.reasoning == "think"
    assert v.choices[1].message.tool_calls[0].function.name == "f"
    assert v.usage.completion_tokens_details.reasoning_tokens == 1

    for c in _chunks():
        v = validate_type(type_=sdk_chat.ChatCompletion, value=json.loads(dump(c)))
        assert isinstance(v, sdk_chat.ChatChunkResponse), c
        # the SDK's own (loose) path lands on the same class
        assert isinstance(construct_type(value=json.loads(dump(c)), type_=sdk_chat.ChatCompletion), sdk_chat.ChatChunkResponse)

    ec = json.loads(dump(ErrorChunk.from_error(queue_exceeded("boom"))))
    assert isinstance(validate_type(type_=sdk_chat.ChatCompletion, value=ec), sdk_chat.ErrorChunkResponse)

    v = validate_type(type_=sdk_completion.Completion, value=json.loads(dump(_text_completion())))
    assert isinstance(v, sdk_completion.CompletionResponse)
    assert v.choices[0].logprobs.top_logprobs == [{" and": -1.0}]

    ml = json.loads(dump(ModelList(data=[Model(id="a"), Model(id="b", created=5)])))
    v = validate_type(type_=sdk_models.ModelListResponse, value=ml)
    assert isinstance(v, sdk_models.ModelMetadataList) and [m.id for m in v.data] == ["a", "b"]


def test_openai_sdk_accepts_responses():
    from openai.types import Completion as OAICompletion
    from openai.types import Model as OAIModel
    from openai.types.chat import ChatCompletion as OAIChatCompletion
    from openai.types.chat import ChatCompletionChunk as OAIChunk

    v = OAIChatCompletion.model_validate(json.loads(dump(_full_chat_completion())))
    assert v.choices[0].message.content == "Hi"
    assert v.choices[1].message.tool_calls[0].id == "abc"
    assert v.usage.prompt_tokens_details.cached_tokens == 0
    for c in _chunks():
        OAIChunk.model_validate(json.loads(dump(c)))
    OAIChatCompletion.model_validate(json.loads(WIRE_CHAT))
    v = OAICompletion.model_validate(json.loads(dump(_text_completion())))
    assert v.choices[0].text == " and"
    OAIModel.model_validate(json.loads(dump(Model(id="a"))))


# ============================================================================================
# fuzzing: only APIError ever escapes


def _rand_scalar(rng: random.Random):
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            1,
            2,
            21,
            129,
            2**64,
            -(2**70),
            0.5,
            -2.5,
            1e308,
            float("nan"),
            float("inf"),
            "",
            "x",
            "user",
            "assistant",
            "tool",
            "system",
            "function",
            "text",
            "image_url",
            "json_schema",
            "auto",
            "12",
            "é" * 3,
            "\x00",
            "~str",
            "[key]",
        ]
    )


_KEYS = [
    "model",
    "messages",
    "prompt",
    "role",
    "content",
    "type",
    "text",
    "tool_calls",
    "tool_call_id",
    "function",
    "name",
    "arguments",
    "id",
    "tools",
    "tool_choice",
    "response_format",
    "json_schema",
    "schema",
    "stop",
    "logit_bias",
    "n",
    "best_of",
    "logprobs",
    "top_logprobs",
    "stream",
    "image_url",
    "url",
    "reasoning",
    "reasoning_content",
    "store",
    "~list",
    "",
]


def _rand_json(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth > 5 or r < 0.4:
        return _rand_scalar(rng)
    if r < 0.7:
        return [_rand_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(_KEYS): _rand_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def _mutate(rng: random.Random, value, depth: int = 0):
    """Replace / drop / add a random part of a valid body."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        value = dict(value)
        k = rng.choice(list(value))
        op = rng.random()
        if op < 0.15:
            del value[k]
        elif op < 0.3:
            value[rng.choice(_KEYS)] = _rand_json(rng)
        elif op < 0.55:
            value[k] = _rand_json(rng)
        else:
            value[k] = _mutate(rng, value[k], depth + 1)
        return value
    if isinstance(value, list) and value and rng.random() < 0.8:
        value = list(value)
        i = rng.randrange(len(value))
        if rng.random() < 0.5:
            value[i] = _mutate(rng, value[i], depth + 1)
        else:
            value.insert(i, _rand_json(rng))
        return value
    return _rand_json(rng)


def _assert_only_api_errors(parse, data):
    try:
        parse(data)
    except APIError as e:
        assert 400 <= e.status < 600
        body = e.body()
        assert isinstance(body["message"], str) and body["message"]
        json.dumps(body)
    # anything else propagates and fails the test


def test_fuzz_random_json():
    rng = random.Random(1234)
    for _ in range(400):
        data = _rand_json(rng)
        _assert_only_api_errors(parse_chat_request, data)
        _assert_only_api_errors(lambda d: parse_chat_request(d, version=2), data)
        _assert_only_api_errors(parse_completion_request, data)


def test_fuzz_mutated_valid_bodies():
    rng = random.Random(99)
    seeds_chat = [SPEC_EXAMPLE, FULL_CHAT, chat(), _tool_conv(_asst("a"), _tool("a"))]
    seeds_comp = [FULL_COMPLETION, comp(), comp(prompt=[[1, 2], [3]])]
    for _ in range(400):
        data = _mutate(rng, copy.deepcopy(rng.choice(seeds_chat)))
        for _ in range(rng.randint(0, 3)):
            data = _mutate(rng, data)
        _assert_only_api_errors(parse_chat_request, data)
        _assert_only_api_errors(lambda d: parse_chat_request(d, version=2), data)
        data = _mutate(rng, copy.deepcopy(rng.choice(seeds_comp)))
        _assert_only_api_errors(parse_completion_request, data)


def test_deeply_nested_and_odd_python_values():
    deep: object = []
    for _ in range(5000):
        deep = [deep]
    nested: dict = {}
    cur = nested
    for _ in range(5000):
        cur["x"] = {}
        cur = cur["x"]
    odd = [
        deep,
        nested,
        chat(model_parameters=nested),
        chat(messages=deep),
        chat(tools=[{"type": "function", "function": {"name": "f", "parameters": nested}}]),
        {1: 2, None: 3},
        chat(**{"1": 1}),
        chat(messages=[{("tuple",): 1}]),
        chat(logit_bias={1: 2}),
        chat(stop=("a", "b")),
        object(),
        chat(messages=[{"role": ["user"], "content": "x"}]),
        chat(messages=[{"role": {"a": 1}, "content": "x"}]),
        comp(prompt=[[1, [2]]]),
        comp(prompt=[2**100]),
    ]
    for data in odd:
        _assert_only_api_errors(parse_chat_request, data)
        _assert_only_api_errors(parse_completion_request, data)


def test_lone_surrogate_escapes_are_400():
    from wafer.protocol.parse import load_json

    assert load_json(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001F600"}  # a pair is text
    for body in (b'{"a": "x\\ud800y"}', b'["\\udfff"]', b'{"\\udc00": 1}', b'{"a": [{"b": "\\ud800"}]}'):
        with pytest.raises(APIError) as e:
            load_json(body)
        assert e.value.status == 400 and "surrogate" in e.value.message
