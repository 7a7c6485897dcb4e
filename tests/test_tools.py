"""Tool calling: parser and grammar units, template rendering, and HTTP on both catalogue models
(qwen2.5-coder-0.5b renders tools with its own template; smollm2-135m uses wafer's fallback)."""

from __future__ import annotations

import json
import random
from typing import Literal

import httpx
import jsonschema
import pytest
from conftest import MODEL_ID, QWEN_ID

from wafer.chat.tools import CLOSE, OPEN, ToolCallParser, apply_fallback, tool_grammar
from wafer.engine.grammar import Grammars

WEATHER_ARGS = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a city",
                                            "strict": True, "parameters": WEATHER_ARGS}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "Get the local time in a city",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                        "required": ["city"]}}}
TOOLS = [WEATHER, TIME]
ASK = [{"role": "user", "content": "What's the weather like in Paris?"}]


# -- parser ---------------------------------------------------------------------------------------
def parse_in_pieces(text: str, seed: int, parser: ToolCallParser | None = None) -> tuple[str, list[dict]]:
    """Feed ``text`` in random pieces of 1 to 7 characters."""
    rng = random.Random(seed)
    p, content, calls, i = parser or ToolCallParser(), [], [], 0
    while i < len(text):
        k = rng.randint(1, 7)
        c, new = p.feed(text[i : i + k])
        content.append(c)
        calls += new
        i += k
    c, new = p.finish()
    return "".join(content) + c, calls + new


CALL = f'{OPEN}\n{{"name": "f", "arguments": {{"a": 1, "s": "x < y"}}}}\n{CLOSE}'


@pytest.mark.parametrize(
    "text,content,names",
    [
        ("Just text, no calls.  ", "Just text, no calls.  ", []),
        (f"Let me look.\n{CALL}", "Let me look.", ["f"]),
        (f"{CALL}\n{CALL}\n", "", ["f", "f"]),
        (f"{CALL}\nDone.", "Done.", ["f"]),
        ("a <tool is not a call <tool_", "a <tool is not a call <tool_", []),
        (f'{OPEN}\n{{"name": "f", "arguments": {{"a": 1}}}}', "", ["f"]),  # cut before the closing tag
        (f"{OPEN}not json{CLOSE} tail", f"{OPEN}not json{CLOSE} tail", []),
        (f'{OPEN}{{"name": "f", "arguments": "{{\\"a\\": 2}}"}}{CLOSE}', "", ["f"]),  # arguments as a string
    ],
)
def test_parser_any_split(text, content, names):
    for seed in range(20):
        got_content, calls = parse_in_pieces(text, seed)
        assert got_content == content
        assert [c["name"] for c in calls] == names
        for c in calls:
            assert isinstance(json.loads(c["arguments"]), dict)


BARE = '{\n  "name": "get_weather",\n  "arguments": {\n    "city": "Paris"\n  }\n}'


@pytest.mark.parametrize(
    "text,is_call",
    [
        (BARE, True),
        (f"```json\n{BARE}\n```", True),
        (f"  ```\n{BARE}\n```\n", True),
        (BARE.replace("get_weather", "get_wether"), False),  # not a tool of the request
        ('{"answer": 42}', False),
        ("```python\nprint('hi')\n```", False),
        (f"Here you go: {BARE}", False),  # not the whole output
        ("{\n  \"name\": \"get_weather\", \"arguments\": {", False),  # cut: stays content
    ],
)
def test_bare_json_call_in_auto_mode(text, is_call):
    for seed in range(10):
        content, calls = parse_in_pieces(text, seed, ToolCallParser({"get_weather"}))
        if is_call:
            assert content == "" and [c["name"] for c in calls] == ["get_weather"]
            assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
        else:
            assert calls == [] and content.strip() == text.strip()


def test_bare_call_detection_releases_plain_text_at_once():
    p = ToolCallParser({"get_weather"})
    assert p.feed("```py") == ("```py", [])  # decided: not a call, streamed without waiting
    p = ToolCallParser({"get_weather"})
    assert p.feed('```json\n{"na') == ("", [])  # may still be a call: held


def test_parser_never_streams_a_partial_trigger():
    p = ToolCallParser()
    assert p.feed("Hello <tool") == ("Hello", [])
    content, calls = p.feed('_call>\n{"name": "f", "arguments": {}}\n</tool_call>')
    assert content == "" and calls == [{"name": "f", "arguments": "{}"}]


# -- grammars -------------------------------------------------------------------------------------
def drive(grammars: Grammars, grammar: str, model, text: str) -> tuple[bool, bool]:
    """(every token of ``text`` allowed, grammar complete afterwards)."""
    st = grammars.state(grammars.compile(grammar))
    for t in model.tokenize(text, False, True):
        if not st.allowed().allows(t):
            return False, False
        st.consume(t)
    return True, st.m.is_accepting()


@pytest.fixture(scope="module")
def grammars(tokenizer):
    return Grammars(tokenizer)


BODIES = [("get_weather", WEATHER_ARGS), ("get_time", {"type": "object"})]
GOOD = f'{OPEN}\n{{"name": "get_weather", "arguments": {{"city": "Paris", "unit": "celsius"}}}}\n{CLOSE}'


@pytest.mark.parametrize(
    "mode,parallel,text,ok,complete",
    [
        ("required", True, GOOD, True, True),
        ("required", True, GOOD + "\n" + GOOD, True, True),
        ("required", False, GOOD + "\n", False, False),  # one call, then the output ends
        ("required", True, "Sure. " + GOOD, False, False),  # no text before a required call
        ("required", True, GOOD.replace("celsius", "kelvin"), False, False),  # strict: enum enforced
        ("required", True, GOOD.replace("get_weather", "get_wether"), False, False),  # known names only
        ("auto", True, "Sure, let me check. " + GOOD + " More text.", True, True),
        ("auto", True, "No call at all.", True, True),
        ("auto", False, "Text " + GOOD + " more", False, False),
        ("auto", True, f'{OPEN}\n{{"name": "get_time", "arguments": {{"anything": [1, 2]}}}}\n{CLOSE}', True, True),
    ],
)
def test_tool_grammar_text_trigger(grammars, tokenizer, mode, parallel, text, ok, complete):
    assert drive(grammars, tool_grammar(BODIES, mode, parallel, None), tokenizer, text) == (ok, complete)


# -- rendering ------------------------------------------------------------------------------------
HISTORY = ASK + [
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "abc123def", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
    {"role": "tool", "tool_call_id": "abc123def", "content": '{"temp": 21}'},
]
# the same turns as sent on the wire (arguments are a JSON string there)
WIRE_HISTORY = json.loads(json.dumps(HISTORY).replace('{"city": "Paris", "unit": "celsius"}', json.dumps(json.dumps({"city": "Paris", "unit": "celsius"}))))


def test_fallback_renders_calls_and_results_as_text():
    msgs = apply_fallback([dict(m) for m in HISTORY], [WEATHER])
    assert msgs[0]["role"] == "system" and '"name": "get_weather"' in msgs[0]["content"] and OPEN in msgs[0]["content"]
    assert msgs[2] == {"role": "assistant", "content": f'{OPEN}\n{{"name": "get_weather", "arguments": {{"city": "Paris", "unit": "celsius"}}}}\n{CLOSE}'}
    assert msgs[3] == {"role": "user", "content": '<tool_response>\n{"temp": 21}\n</tool_response>'}
    assert apply_fallback([dict(m) for m in HISTORY], None)[0]["role"] == "user"  # tools not shown: no prompt


def test_qwen_template_renders_tool_turns_natively():
    import gguf

    from wafer.chat.template import ChatTemplate
    from wafer.models import resolve_model

    path = resolve_model(QWEN_ID, pull=True, progress=False).path
    field = gguf.GGUFReader(path).fields["tokenizer.chat_template"]
    text = ChatTemplate(bytes(field.parts[field.data[0]]).decode()).render(HISTORY, tools=[WEATHER])
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in text
    assert f'{OPEN}\n{{"name": "get_weather", "arguments": {{"city": "Paris", "unit": "celsius"}}}}\n{CLOSE}' in text
    assert '<tool_response>\n{"temp": 21}\n</tool_response>' in text


# -- HTTP: qwen2.5-coder-0.5b (native template) ---------------------------------------------------
def chat(client, model, messages, **kw):
    return client.chat.completions.create(model=model, messages=messages, **{"temperature": 0, "max_completion_tokens": 120, **kw})


def check_calls(calls, names=None):
    assert calls
    assert len({c.id for c in calls}) == len(calls)
    for c in calls:
        assert c.type == "function" and len(c.id) == 9
        args = json.loads(c.function.arguments)
        if c.function.name == "get_weather":
            jsonschema.validate(args, WEATHER_ARGS)
        if names:
            assert c.function.name in names


def test_full_tool_loop_qwen(qwen_clients):
    for client in qwen_clients:  # the official cerebras-cloud-sdk, then openai
        r = chat(client, QWEN_ID, ASK, tools=TOOLS, tool_choice="required")
        msg = r.choices[0].message
        assert r.choices[0].finish_reason == "tool_calls" and msg.content is None
        check_calls(msg.tool_calls, {"get_weather"})
        history = ASK + [msg.model_dump(exclude_none=True)] + [
            {"role": "tool", "tool_call_id": c.id, "content": json.dumps({"temperature": 21, "sky": "sunny"})}
            for c in msg.tool_calls
        ]
        final = chat(client, QWEN_ID, history, tools=TOOLS, tool_choice="none")
        assert final.choices[0].finish_reason in ("stop", "length")
        assert final.choices[0].message.content and not final.choices[0].message.tool_calls
        # the same loop validates under API version 2's tool-message rules
        v2 = client.with_options(default_headers={"X-Cerebras-Version-Patch": "2"})
        assert chat(v2, QWEN_ID, history, tools=TOOLS, max_completion_tokens=5).choices


def test_named_tool_choice_qwen(qwen_clients):
    cb, _ = qwen_clients
    forced = {"type": "function", "function": {"name": "get_time"}}
    r = chat(cb, QWEN_ID, ASK, tools=TOOLS, tool_choice=forced)
    assert r.choices[0].finish_reason == "tool_calls"
    check_calls(r.choices[0].message.tool_calls, {"get_time"})


def test_tool_choice_none_and_auto_qwen(qwen_clients):
    _, oa = qwen_clients
    r = chat(oa, QWEN_ID, ASK, tools=TOOLS, tool_choice="none")
    assert r.choices[0].message.tool_calls is None and r.choices[0].message.content
    r = chat(oa, QWEN_ID, ASK, tools=TOOLS)  # auto: the model decides; this one answers with a
    c = r.choices[0]  # fenced JSON call, which counts as a call of the tool it names
    assert c.finish_reason == "tool_calls" and c.message.content is None
    check_calls(c.message.tool_calls, {"get_weather"})


def test_parallel_calls_qwen(qwen_clients):
    """min_completion_tokens keeps the model from ending after one call, so it makes more."""
    cb, _ = qwen_clients
    r = chat(cb, QWEN_ID, ASK, tools=[WEATHER], tool_choice="required", extra_body={"min_completion_tokens": 40}, max_completion_tokens=100)
    calls = r.choices[0].message.tool_calls
    assert len(calls) >= 2
    check_calls(calls, {"get_weather"})
    assert r.choices[0].finish_reason == "tool_calls"


def test_parallel_tool_calls_false_allows_one_call(qwen_clients):
    cb, _ = qwen_clients
    r = chat(cb, QWEN_ID, ASK, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False,
             extra_body={"min_completion_tokens": 40}, max_completion_tokens=100)
    assert len(r.choices[0].message.tool_calls) == 1
    assert r.choices[0].finish_reason == "tool_calls"


def test_streaming_tool_calls_arrive_whole(qwen_clients):
    for client in qwen_clients:
        stream = chat(client, QWEN_ID, ASK, tools=[WEATHER], tool_choice="required", stream=True,
                      extra_body={"min_completion_tokens": 40}, max_completion_tokens=100)
        calls, finish, content = [], None, ""
        for chunk in stream:
            if not chunk.choices:
                continue
            d = chunk.choices[0].delta
            content += d.content or ""
            for c in d.tool_calls or []:
                assert c.function.name and json.loads(c.function.arguments)  # whole, never fragments
                calls.append(c)
            finish = chunk.choices[0].finish_reason or finish
        assert finish == "tool_calls" and content == ""
        assert [c.index for c in calls] == list(range(len(calls))) and len(calls) >= 2
        check_calls(calls, {"get_weather"})


# -- HTTP: smollm2-135m (no tool template: wafer's fallback format) -------------------------------
def test_tool_call_via_fallback_smollm2(cerebras, openai_client):
    for client in (cerebras, openai_client):
        r = chat(client, MODEL_ID, ASK, tools=TOOLS, tool_choice="required", parallel_tool_calls=False)
        assert r.choices[0].finish_reason == "tool_calls"
        check_calls(r.choices[0].message.tool_calls)
        history = ASK + [r.choices[0].message.model_dump(exclude_none=True)] + [
            {"role": "tool", "tool_call_id": c.id, "content": "21 degrees"} for c in r.choices[0].message.tool_calls
        ]
        final = chat(client, MODEL_ID, history, tools=TOOLS, tool_choice="none", max_completion_tokens=20)
        assert final.choices[0].message.content


def test_named_strict_tool_via_fallback_streaming(cerebras):
    stream = chat(cerebras, MODEL_ID, ASK, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}},
                  parallel_tool_calls=False, stream=True)
    calls = [c for ch in stream if ch.choices for c in (ch.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1
    check_calls(calls, {"get_weather"})


# -- 400s -----------------------------------------------------------------------------------------
def post(http: httpx.Client, body: dict, version: int | None = None) -> httpx.Response:
    headers = {"X-Cerebras-Version-Patch": str(version)} if version else {}
    return http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": ASK, "max_completion_tokens": 4, **body},
                     headers=headers)


def test_strict_tool_schema_rules_are_400(http):
    bad = {"type": "function", "function": {"name": "f", "strict": True,
                                            "parameters": {"type": "object", "properties": {"a": {"type": ["string", "null"]}},
                                                           "required": ["a"], "additionalProperties": False}}}
    r = post(http, {"tools": [bad]})
    assert r.status_code == 400 and r.json()["param"] == "tools"
    assert r.json()["message"].startswith("tools.0.function.parameters")


@pytest.mark.parametrize(
    "body,version,needle",
    [
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, None, "not a valid function name"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, None, "not among"),
        ({"tool_choice": "auto"}, 2, '"tool_choice" is only allowed when "tools" are given'),
        ({"messages": WIRE_HISTORY[:2]}, 2, "is not answered by a tool message"),
        ({"messages": ASK + [{"role": "tool", "tool_call_id": "zzz", "content": "x"}]}, 2, "zzz"),
    ],
)
def test_tool_validation_400s(http, body, version, needle):
    r = post(http, body, version)
    assert r.status_code == 400, r.text
    assert needle in r.json()["message"]


def test_version_1_is_lenient_about_tool_pairing(http):
    messages = WIRE_HISTORY[:2] + [{"role": "user", "content": "ok"}]
    assert post(http, {"messages": messages}, version=1).status_code == 200
    assert post(http, {"messages": messages}).status_code == 400  # version 2, the default, checks the pairing


def test_bare_calls_of_strict_tools_need_valid_arguments(grammars):
    from wafer.server.chat import _strict_args_valid

    schemas = {"get_weather": WEATHER_ARGS}
    ok = {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "unit": "celsius"})}
    bad = {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "unit": "kelvin"})}
    assert _strict_args_valid(grammars, schemas, ok)
    assert not _strict_args_valid(grammars, schemas, bad)
    assert _strict_args_valid(grammars, schemas, {"name": "get_time", "arguments": "{}"})  # not strict
    p = ToolCallParser({"get_weather"}, lambda call: _strict_args_valid(grammars, schemas, call))
    p.feed(json.dumps({"name": "get_weather", "arguments": {"city": "Paris", "unit": "kelvin"}}))
    content, calls = p.finish()
    assert calls == [] and "kelvin" in content


def test_wafer_client_run_tools_loop_qwen(qwen_server):
    """Our SDK's tool runner end to end: the call is parsed, the function runs, the answer follows."""
    from wafer.client import Cerebras

    seen = []

    def get_weather(city: str, unit: Literal["celsius", "fahrenheit"]) -> dict:
        """Current weather for a city."""
        seen.append((city, unit))
        return {"city": city, "temperature": 21, "unit": unit}

    with Cerebras(api_key="k", base_url=qwen_server.url, max_retries=0) as client:
        run = client.chat.completions.run_tools(model=QWEN_ID, messages=ASK, tools=[get_weather], max_turns=4,
                                                temperature=0, max_completion_tokens=60)
    assert seen and seen[0][0] == "Paris"
    assert len(run.completions) >= 2 and isinstance(run.content, str)
    assert [m["role"] for m in run.messages[:3]] == ["user", "assistant", "tool"]
