"""Engine grammar units: the JSON string scanner and the budget-steering closer on the test model."""

from __future__ import annotations

import numpy as np
import pytest

from wafer.chat.structured import json_grammar
from wafer.engine.grammar import ESC, OUT, STR, Grammars, closer_scores, scan

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                   "n": {"type": "integer"}, "ok": {"type": "boolean"}},
    "required": ["name", "tags", "n", "ok"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    "state,piece,after",
    [(OUT, b'{"a', STR), (STR, b'b"', OUT), (STR, b"\\", ESC), (ESC, b'"', STR), (STR, b'\\"x', STR), (OUT, b'""', OUT)],
)
def test_scan(state, piece, after):
    assert scan(state, piece) == after


def test_closer_prefers_closing():
    pieces = [b'"', b'",', b"}", b"]", b",", b"{", b"abc", b"123", b" true", b""]
    eog = np.array([False] * 9 + [True])
    out, inside = closer_scores(pieces, eog)
    assert out[2] > out[4] > out[7] and out[3] > out[4]  # brackets, then comma, then digits
    assert out[0] < out[7] and out[5] < out[7]  # never open a string or a container
    assert out[8] > out[7]  # a literal in one token
    assert inside[0] > inside[6] and inside[1] > inside[0]  # end the string, better with the comma
    assert out[9] == inside[9] == max(out.max(), inside.max())  # end of generation when allowed


@pytest.fixture(scope="module")
def grammars(tokenizer):
    return Grammars(tokenizer)


def test_closing_cost_reaches_a_valid_document(grammars, tokenizer):
    import json

    st = grammars.state(grammars.compile(json_grammar(SCHEMA)))
    prefix = '{"name": "a very long name that goes on'
    for t in tokenizer.tokenize(prefix, False, True):
        st.consume(t)
    assert st.json_state == STR
    cost = st.closing_cost(st.m, st.json_state, 96)
    assert cost <= 20
    # following the closer's tokens completes a document that parses
    text = prefix.encode()
    bm = np.empty_like(st.bitmask)
    steps = 0
    while not st.m.is_accepting():
        t = st._closer_token(st.m, bm, st.json_state)
        st.consume(t)
        text += tokenizer.pieces[t]
        steps += 1
    assert steps == cost  # the estimate is the path the closer takes
    assert json.loads(text)["name"].startswith("a very long name")


def test_vet_replaces_a_token_that_leaves_no_room(grammars, tokenizer):
    st = grammars.state(grammars.compile(json_grammar(SCHEMA)))
    for t in tokenizer.tokenize('{"name": "x', False, True):
        st.consume(t)
    word = tokenizer.tokenize(" word", False, False)[0]
    assert st.vet(word, 200) == word  # plenty of room
    cost = st.closing_cost(st.m, st.json_state, 96)
    assert st.vet(word, cost) != word  # exactly enough room to close: the closer's token instead
