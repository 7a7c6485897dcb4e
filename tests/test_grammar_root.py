"""grammar_root on /v1/completions: every value Cerebras lists is a rule of wafer's JSON and function-call
grammar (compiled by llguidance), checked on strings each rule must accept or refuse, and over HTTP: the
output of each value follows its rule, streamed or not, through both official SDKs and raw httpx."""

from __future__ import annotations

import json
import re
from typing import get_args

import pytest
from conftest import MODEL_ID

from wafer.chat.grammar_root import ROOTS, grammar_root_grammar
from wafer.engine.grammar import Grammars
from wafer.protocol.completions import GrammarRoot

FUNC = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
# rule -> (texts it accepts, texts it refuses)
LANGUAGE = {
    "value": (['{"a": 1}', "[1, 2]", '"s"', "-1.5e3", "true", "null"], ["", "nul", "{", "'s'", '{"a": 1} x']),
    "object": (["{}", '{"a": [1, {"b": null}]}'], ["[]", '"s"', "1", "{"]),
    "array": (["[]", '[1, "a", {}]'], ["{}", "1", "[1,"]),
    "string": (['""', '"a \\"quoted\\" word é\\n"'], ["1", "'a'", '"a'], ),
    "number": (["0", "-12", "3.25", "1e-7"], ["01", "1.", "-", '"1"', "NaN"]),
    "func": ([FUNC], ['{"name": "f"}', '{"name": 1, "arguments": {}}', f"[{FUNC}]",
                      '{"name": "f", "arguments": {}, "x": 1}']),
    "funcarray": ([f"[{FUNC}]", f"[{FUNC}, {FUNC}]"], ["[]", FUNC, "[1]"]),
    "fcall": ([f"[{FUNC}]"], ["[]", FUNC, "plain text"]),
    "nofcall": (["plain text", "", "{not a call}", "a [bracket] later"], ["[", "[1]", f"[{FUNC}]"]),
    "root": (["plain text", "", f"[{FUNC}]"], ["[1]", "[plain", "[]"]),
    "insidevalue": (["", "plain words", 'with \\"escapes\\" and \\n and \\u00e9'], ['"', "a\\", "a\\x", "new\nline"]),
    "ws": (["", " ", "\n\t \r\n"], ["x", " x", "{}"]),
}


def accepts(grammars: Grammars, root: str, text: str) -> bool:
    m = grammars.compile(grammar_root_grammar(root)).matcher.deep_copy()
    tokens = grammars.tokenizer.tokenize_str(text)
    return m.consume_tokens(tokens) and m.is_accepting()


@pytest.fixture(scope="module")
def grammars(tokenizer):
    return Grammars(tokenizer)


@pytest.mark.model_free
def test_every_documented_value_has_a_rule():
    assert sorted(ROOTS) == sorted(get_args(GrammarRoot))
    assert len(ROOTS) == 12
    with pytest.raises(ValueError):
        grammar_root_grammar("start")


@pytest.mark.parametrize("root", ROOTS)
def test_language_of_each_rule(grammars, root):
    good, bad = LANGUAGE[root]
    for text in good:
        assert accepts(grammars, root, text), f"{root} should accept {text!r}"
    for text in bad:
        assert not accepts(grammars, root, text), f"{root} should refuse {text!r}"


# -- HTTP -----------------------------------------------------------------------------------------
def _json(text: str):
    return json.loads(text)


def _is_func(v) -> bool:
    return isinstance(v, dict) and set(v) == {"name", "arguments"} and isinstance(v["name"], str) \
        and isinstance(v["arguments"], dict)


def _is_call_array(v) -> bool:
    return isinstance(v, list) and len(v) >= 1 and all(_is_func(x) for x in v)


def _calls_or_text(text: str) -> bool:
    if not text.startswith("["):
        return True
    try:
        return _is_call_array(json.loads(text))
    except ValueError:
        return False


CHECKS = {
    "value": lambda t: _json(t) is not None or t == "null",
    "object": lambda t: isinstance(_json(t), dict),
    "array": lambda t: isinstance(_json(t), list),
    "string": lambda t: isinstance(_json(t), str),
    "number": lambda t: isinstance(_json(t), (int, float)) and not isinstance(_json(t), bool),
    "func": lambda t: _is_func(_json(t)),
    "funcarray": lambda t: _is_call_array(_json(t)),
    "fcall": lambda t: _is_call_array(_json(t)),
    "nofcall": lambda t: not t.startswith("["),
    "root": _calls_or_text,
    "insidevalue": lambda t: isinstance(json.loads(f'"{t}"'), str),
    "ws": lambda t: re.fullmatch(r"[ \t\n\r]*", t) is not None,
}
PROMPTS = {
    "func": 'Call the weather tool for Paris as JSON: ',
    "funcarray": 'Tool calls as a JSON array: ',
    "fcall": 'Tool calls as a JSON array: ',
    "insidevalue": 'The city is "',
}


CLOSED = ("object", "array", "string", "func", "funcarray", "fcall")  # budget steering closes them in time


@pytest.mark.parametrize("root", ROOTS)
def test_output_follows_the_rule(cerebras, openai_client, http, root):
    prompt = PROMPTS.get(root, "Here is the answer in JSON: ")
    outputs = []
    r = cerebras.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=32, temperature=0, grammar_root=root)
    outputs.append((r.choices[0].text, r.choices[0].finish_reason))
    r = openai_client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=32, temperature=1, seed=7,
                                         extra_body={"grammar_root": root})
    outputs.append((r.choices[0].text, r.choices[0].finish_reason))
    stream = cerebras.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=32, temperature=1, seed=3,
                                         grammar_root=root, stream=True)
    chunks = [c for c in stream if c.choices]
    outputs.append(("".join(c.choices[0].text or "" for c in chunks), chunks[-1].choices[0].finish_reason))
    body = {"model": MODEL_ID, "prompt": prompt, "n": 2, "max_tokens": 32, "temperature": 1, "grammar_root": root}
    r = http.post("/v1/completions", json=body)  # each choice's sequence has its own grammar state
    assert r.status_code == 200, r.text
    outputs += [(c["text"], c["finish_reason"]) for c in r.json()["choices"]]
    for text, finish in outputs:
        assert CHECKS[root](text), (root, text)
        if root in CLOSED:
            assert finish == "stop", (root, text)


def test_bad_grammar_root_is_a_400(http, cerebras):
    from cerebras.cloud.sdk import BadRequestError

    for bad in ("start", "ROOT", "", 1):
        r = http.post("/v1/completions", json={"model": MODEL_ID, "prompt": "x", "grammar_root": bad})
        assert r.status_code == 400 and r.json()["param"] == "validation_error"
        assert r.json()["message"].startswith("grammar_root: Input should be 'root'")
    with pytest.raises(BadRequestError):
        cerebras.completions.create(model=MODEL_ID, prompt="x", grammar_root="json")
    r = http.post("/v1/completions", json={"model": MODEL_ID, "prompt": "x", "max_tokens": 2, "grammar_root": None})
    assert r.status_code == 200  # null: no constraint
