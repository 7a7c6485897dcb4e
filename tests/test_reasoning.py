"""Reasoning models: parser state machines, engine trackers, and the HTTP contract on tiny scripted
models of each family (tests/tiny_models.py: deterministic bigram GGUFs built here; the reasoning
segments they write are fixed by their scripts, not learned)."""

from __future__ import annotations

import json
import random

import pytest
from conftest import MODEL_ID, Server, sdk_clients
from tiny_models import PROMPT_END, build_tiny_model

from wafer.chat.reasoning import DEEPSEEK_R1, GLM, GPT_OSS, QWEN3, ReasoningParser, clear_earlier_thinking, detect_family
from wafer.engine.reasoning import HarmonySpec, ThinkSpec


# -- parser units ---------------------------------------------------------------------------------
def split(family, inside: bool, text: str, seed: int) -> tuple[str, str]:
    rng = random.Random(seed)
    p, parts, i = ReasoningParser(family, inside), [], 0
    while i < len(text):
        k = rng.randint(1, 4)
        parts += p.feed(text[i : i + k])
        i += k
    parts += p.finish()
    return "".join(t for k, t in parts if k == "reasoning"), "".join(t for k, t in parts if k == "content")


@pytest.mark.parametrize(
    "family,inside,text,reasoning,content",
    [
        (QWEN3, False, "<think>\nplan it\n</think>\n\nAnswer.", "\nplan it\n", "Answer."),
        (QWEN3, False, "No thinking at all.", "", "No thinking at all."),
        (QWEN3, False, '{"a": "<think>x</think>"}', "", '{"a": "<think>x</think>"}'),  # tags inside JSON: content
        (QWEN3, False, "  <think>ab</think>cd", "ab", "cd"),
        (QWEN3, False, "<think>cut by the length limit <", "cut by the length limit <", ""),
        (QWEN3, False, "<thin", "", "<thin"),  # looked like a tag, was not
        (DEEPSEEK_R1, True, "reasoning only</think>The answer", "reasoning only", "The answer"),
        (DEEPSEEK_R1, True, "never closed", "never closed", ""),
        (GLM, False, "<think>a</think>b <think>c</think>", "a", "b <think>c</think>"),
        (GPT_OSS, False, "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>Hi!",
         "Think.", "Hi!"),
        (GPT_OSS, False, "<|channel|>final<|message|>Only final", "", "Only final"),
        (GPT_OSS, False, "<|channel|>analysis<|message|>cut <|", "cut <|", ""),
        (GPT_OSS, False, "<|channel|>final <|constrain|>json<|message|>{}", "", "{}"),
    ],
)
def test_parser_any_split(family, inside, text, reasoning, content):
    for seed in range(20):
        assert split(family, inside, text, seed) == (reasoning, content)


def test_detect_family():
    from tiny_models import TEMPLATES

    assert {f: detect_family(TEMPLATES[f]).name for f in TEMPLATES} == {f: f for f in TEMPLATES}
    assert detect_family("{{ messages }}") is None


def test_think_tracker_counts_and_forces():
    t = ThinkSpec(open_id=1, close_id=2, close_tokens=[2, 9], budget=3).tracker()
    assert t.may_open
    for tok in (1, 5, 6):
        t.feed(tok)
    assert t.reasoning and t.tokens == 3 and t.closing() == [2, 9]
    for tok in (2, 9, 7):
        t.feed(tok)
    assert t.content and not t.reasoning and t.tokens == 4
    t2 = ThinkSpec(open_id=1, close_id=2, close_tokens=[2]).tracker()
    t2.feed(5)  # no <think> first: content, nothing counted
    assert t2.content and t2.tokens == 0


def test_harmony_tracker_counts_non_final_messages():
    t = HarmonySpec(channel_id=1, message_id=2, end_ids=frozenset({3}), final_ids=[8], close_tokens=[]).tracker()
    for tok in (1, 7, 2, 5, 5, 3, 4, 1, 8, 2):  # <|channel|>analysis<|message|>x x<|end|><|start|><|channel|>final<|message|>
        t.feed(tok)
    assert t.content and t.tokens == 6


def test_clear_thinking_drops_earlier_turns_only():
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "reasoning": "r1"},
            {"role": "user", "content": "c"}, {"role": "assistant", "content": "d", "reasoning": "r2"}]
    cleared = clear_earlier_thinking(msgs, True)
    assert "reasoning" not in cleared[1] and cleared[3]["reasoning"] == "r2"
    assert clear_earlier_thinking(msgs, False) == msgs


# -- HTTP on tiny models --------------------------------------------------------------------------
SCRIPTS = {
    "qwen3": [[PROMPT_END["qwen3"], "<think>", "Let", " me", " think", "</think>", "Hello", "<|im_end|>"],
              ["\n\n", "Hi", "<|im_end|>"]],
    "deepseek_r1": [PROMPT_END["deepseek_r1"], "Let", " me", " think", "</think>", "Hello", "<｜end▁of▁sentence｜>"],
    "glm": [PROMPT_END["glm"], "<think>", "Let", " me", " think", "</think>", "Hello", "<|endoftext|>"],
    "gpt_oss": [PROMPT_END["gpt_oss"], "<|channel|>", "analysis", "<|message|>", "Let", " me", " think", "<|end|>",
                "<|return|>"],
    "gpt_oss_final": [PROMPT_END["gpt_oss"], "<|channel|>", "final", "<|message|>", "Hello", "<|return|>"],
}
# (reasoning, content, reasoning_tokens) each model writes when it thinks
EXPECTED = {
    "qwen3": ("Let me think", "Hello", 5),
    "deepseek_r1": ("Let me think", "Hello", 4),
    "glm": ("Let me think", "Hello", 5),
    "gpt_oss": ("Let me think", "", 7),
    "gpt_oss_final": ("", "Hello", 0),
}
DEFAULT_FORMAT = {"qwen3": "raw", "deepseek_r1": "raw", "glm": "text_parsed", "gpt_oss": "text_parsed",
                  "gpt_oss_final": "text_parsed"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    args = []
    for name, script in SCRIPTS.items():
        family = "gpt_oss" if name.startswith("gpt_oss") else name
        path = build_tiny_model(d / f"tiny-{name}.gguf", family, script)
        args += ["--model", str(path)]
    s = Server(args + ["--parallel", "4", "--ctx-size", "1024", "--kv-size", "8192",
                       "--reasoning-budget", "low=2,medium=1000,high=2000", "--accept-reasoning-content"],
               d / "server.log")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def clients(tiny):
    with sdk_clients(tiny.url) as c:
        yield c


def model_id(name: str) -> str:
    return f"tiny-{name}"


def field(obj, name: str):
    """A field of an SDK object; the openai SDK keeps fields it does not know in model_extra."""
    value = getattr(obj, name, None)
    return value if value is not None else (getattr(obj, "model_extra", None) or {}).get(name)


REASONING_KEYS = ("reasoning_format", "reasoning_effort", "disable_reasoning", "clear_thinking")


def ask(client, name: str, stream: bool, **kw):
    """The reasoning parameters go in extra_body, which both official SDKs send as given."""
    extra = {k: kw.pop(k) for k in REASONING_KEYS if k in kw}
    r = client.chat.completions.create(model=model_id(name), messages=[{"role": "user", "content": "Hi"}],
                                       temperature=0, max_completion_tokens=30, stream=stream, extra_body=extra, **kw)
    if not stream:
        c = r.choices[0]
        return field(c.message, "reasoning"), c.message.content or None, r.usage, c.finish_reason
    reasoning, content, usage, finish = [], [], None, None
    for ch in r:
        if ch.choices:
            d = ch.choices[0].delta
            reasoning.append(field(d, "reasoning") or "")
            content.append(d.content or "")
            finish = ch.choices[0].finish_reason or finish
        usage = ch.usage or usage
    return "".join(reasoning) or None, "".join(content) or None, usage, finish


def expected(name: str, fmt: str) -> tuple[str | None, str | None]:
    reasoning, content, _ = EXPECTED[name]
    fmt = DEFAULT_FORMAT[name] if fmt == "none" else fmt
    if fmt in ("parsed", "text_parsed"):
        return reasoning or None, content or None
    if fmt == "hidden":
        return None, content or None
    wrapped = reasoning if name.startswith("gpt_oss") or not reasoning else f"<think>{reasoning}</think>"
    return None, (wrapped + content) or None  # raw


@pytest.mark.parametrize("stream", [False, True], ids=["once", "stream"])
@pytest.mark.parametrize("fmt", ["parsed", "text_parsed", "raw", "hidden", "none"])
@pytest.mark.parametrize("name", list(SCRIPTS))
def test_every_format_family_and_mode(clients, name, fmt, stream):
    client = clients[0] if fmt != "raw" else clients[1]  # both official SDKs
    reasoning, content, usage, finish = ask(client, name, stream, reasoning_format=fmt)
    assert (reasoning, content) == expected(name, fmt)
    assert finish == "stop"
    details = usage.completion_tokens_details
    assert field(details, "reasoning_tokens") == EXPECTED[name][2]


def test_parsed_splits_logprobs(clients):
    r = clients[0].chat.completions.create(model=model_id("qwen3"), messages=[{"role": "user", "content": "Hi"}],
                                           temperature=0, logprobs=True, reasoning_format="parsed")
    c = r.choices[0]
    assert "".join(t.token for t in c.reasoning_logprobs.content).startswith("<think>Let me think")
    assert "".join(t.token for t in c.logprobs.content) == "Hello"
    r = clients[0].chat.completions.create(model=model_id("qwen3"), messages=[{"role": "user", "content": "Hi"}],
                                           temperature=0, logprobs=True, reasoning_format="text_parsed")
    assert r.choices[0].reasoning_logprobs is None and len(r.choices[0].logprobs.content) == 6


@pytest.mark.parametrize("stream", [False, True], ids=["once", "stream"])
def test_reasoning_logprobs_only_in_version_2(clients, stream):
    """``reasoning_logprobs`` came with API version 2 (the default, above): under version 1 the reasoning
    tokens' logprobs stay in ``logprobs``, before the answer's, and no chunk or choice has the field."""
    for client in clients:
        r = client.chat.completions.create(model=model_id("qwen3"), messages=[{"role": "user", "content": "Hi"}],
                                           temperature=0, logprobs=True, stream=stream,
                                           extra_body={"reasoning_format": "parsed"},
                                           extra_headers={"X-Cerebras-Version-Patch": "1"})
        choices = [ch.choices[0] for ch in r if ch.choices] if stream else r.choices
        assert all(field(c, "reasoning_logprobs") is None for c in choices)
        tokens = "".join(t.token for c in choices if c.logprobs for t in c.logprobs.content)
        assert tokens.startswith("<think>Let me think") and tokens.endswith("Hello")
        reasoning = "".join(field(c.delta if stream else c.message, "reasoning") or "" for c in choices)
        assert reasoning == "Let me think"  # the text is still split: only the logprobs differ


@pytest.mark.parametrize("switch", [{"disable_reasoning": True}, {"reasoning_effort": "none"}])
def test_thinking_off(clients, switch):
    # qwen3: the template writes an empty think block; the model answers at once
    reasoning, content, usage, _ = ask(clients[0], "qwen3", False, reasoning_format="parsed", **switch)
    assert (reasoning, content, usage.completion_tokens_details.reasoning_tokens) == (None, "Hi", 0)
    # glm: the template inserts <think></think>
    reasoning, content, usage, _ = ask(clients[0], "glm", False, reasoning_format="parsed", **switch)
    assert (reasoning, content, usage.completion_tokens_details.reasoning_tokens) == (None, "Hello", 0)
    # deepseek_r1 cannot switch it off in the template: wafer closes the block at once (budget 0)
    reasoning, content, usage, _ = ask(clients[0], "deepseek_r1", False, reasoning_format="parsed", **switch)
    assert reasoning is None and usage.completion_tokens_details.reasoning_tokens == 1  # the forced </think>


def test_budget_forcing(clients):
    """reasoning_effort low = 2 thinking tokens here (--reasoning-budget): wafer closes the segment."""
    reasoning, content, usage, finish = ask(clients[0], "qwen3", False, reasoning_format="parsed", reasoning_effort="low")
    assert (reasoning, content, finish) == ("Let", "Hi", "stop")  # </think>\n\n injected; "\n\n" leads to "Hi"
    assert usage.completion_tokens_details.reasoning_tokens == 3
    # gpt-oss: the analysis message is closed and the final channel opened by wafer
    reasoning, content, usage, _ = ask(clients[0], "gpt_oss", True, reasoning_format="parsed", reasoning_effort="low")
    assert reasoning is None and content == "Let me think"
    assert usage.completion_tokens_details.reasoning_tokens == 4


def test_structured_output_applies_after_reasoning(clients):
    r = clients[0].chat.completions.create(
        model=model_id("qwen3"), messages=[{"role": "user", "content": "Hi"}], temperature=0,
        max_completion_tokens=40, reasoning_format="parsed", response_format={"type": "json_object"})
    c = r.choices[0]
    assert c.message.reasoning == "Let me think"
    assert isinstance(json.loads(c.message.content), dict)
    # Qwen3's default with a JSON format is hidden: reasoning dropped, still counted
    r = clients[0].chat.completions.create(
        model=model_id("qwen3"), messages=[{"role": "user", "content": "Hi"}], temperature=0,
        max_completion_tokens=40, response_format={"type": "json_object"})
    assert r.choices[0].message.reasoning is None and isinstance(json.loads(r.choices[0].message.content), dict)
    assert r.usage.completion_tokens_details.reasoning_tokens == 5


def test_tool_call_after_reasoning(clients):
    tools = [{"type": "function", "function": {"name": "f", "strict": True, "parameters": {
        "type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"], "additionalProperties": False}}}]
    r = clients[0].chat.completions.create(
        model=model_id("qwen3"), messages=[{"role": "user", "content": "Hi"}], temperature=0, max_completion_tokens=60,
        reasoning_format="parsed", tools=tools, tool_choice="required", parallel_tool_calls=False)
    c = r.choices[0]
    assert c.message.reasoning == "Let me think" and c.finish_reason == "tool_calls"
    assert c.message.tool_calls[0].function.name == "f" and "x" in json.loads(c.message.tool_calls[0].function.arguments)


def test_raw_with_json_format_is_400(tiny):
    import httpx

    r = httpx.post(tiny.url + "/v1/chat/completions", json={
        "model": model_id("qwen3"), "messages": [{"role": "user", "content": "Hi"}], "reasoning_format": "raw",
        "response_format": {"type": "json_object"}})
    assert r.status_code == 400 and r.json()["param"] == "reasoning_format"


def test_multi_turn_reasoning_rendering(tiny):
    """The current turn's reasoning is rendered in the family's form; clear_thinking decides earlier turns."""
    import httpx

    turn = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "reasoning": "earlier thoughts"},
            {"role": "user", "content": "c"}]

    def prompt_tokens(name, **kw):
        r = httpx.post(tiny.url + "/v1/chat/completions", json={
            "model": model_id(name), "messages": turn, "max_completion_tokens": 1, **kw})
        assert r.status_code == 200, r.text
        return r.json()["usage"]["prompt_tokens"]

    # GLM keeps earlier thinking only with clear_thinking false
    assert prompt_tokens("glm", clear_thinking=False) > prompt_tokens("glm") == prompt_tokens("glm", clear_thinking=True)
    # --accept-reasoning-content (this server): reasoning_content is read as reasoning
    alt = [dict(m) for m in turn]
    alt[1]["reasoning_content"] = alt[1].pop("reasoning")
    r = httpx.post(tiny.url + "/v1/chat/completions", json={
        "model": model_id("glm"), "messages": alt, "max_completion_tokens": 1, "clear_thinking": False})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == prompt_tokens("glm", clear_thinking=False)


def test_reasoning_content_is_400_by_default(http):
    r = http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "reasoning_content": "r"},
        {"role": "user", "content": "c"}]})
    assert r.status_code == 400 and r.json()["code"] == "wrong_api_format"
    assert "as 'reasoning'" in r.json()["message"]


def test_non_reasoning_model_ignores_reasoning_parameters(cerebras):
    kw = dict(model=MODEL_ID, messages=[{"role": "user", "content": "Hi"}], temperature=0, max_completion_tokens=8)
    plain = cerebras.chat.completions.create(**kw)
    r = cerebras.chat.completions.create(**kw, reasoning_format="parsed", reasoning_effort="high",
                                         disable_reasoning=False, clear_thinking=True)
    assert r.choices[0].message.content == plain.choices[0].message.content
    assert r.choices[0].message.reasoning is None and r.usage.completion_tokens_details is None


def test_qwen3_renders_the_current_turns_reasoning(tiny):
    """Qwen3 keeps reasoning of assistant turns after the last user message, in its <think> form."""
    import httpx

    def prompt_tokens(messages):
        r = httpx.post(tiny.url + "/v1/chat/completions", json={
            "model": model_id("qwen3"), "messages": messages, "max_completion_tokens": 1})
        assert r.status_code == 200, r.text
        return r.json()["usage"]["prompt_tokens"]

    user = {"role": "user", "content": "a"}
    plain = {"role": "assistant", "content": "b"}
    thought = {"role": "assistant", "content": "b", "reasoning": "step one then step two"}
    assert prompt_tokens([user, thought]) > prompt_tokens([user, plain])  # current turn: rendered
    assert prompt_tokens([user, thought, user]) == prompt_tokens([user, plain, user])  # earlier turn: dropped


def test_forced_tokens_leave_no_kv_cells_behind(tiny, clients):
    for _ in range(2):
        ask(clients[0], "qwen3", False, reasoning_format="parsed", reasoning_effort="low")
        ask(clients[0], "gpt_oss", True, reasoning_format="parsed", reasoning_effort="low")
    for name in ("qwen3", "gpt_oss"):
        st = tiny.wait_idle(model_id(name))
        assert st["kv_cells_running"] == 0 and st["running_requests"] == 0
