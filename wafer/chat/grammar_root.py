"""``grammar_root`` of ``/v1/completions``: the output constrained to one rule of a JSON and
function-call grammar, compiled by llguidance like every other constraint.

The rules, one per value Cerebras documents:

| rule | the output is |
|---|---|
| ``value`` | one JSON value (object, array, string, number, ``true``, ``false``, ``null``) |
| ``object``, ``array``, ``string``, ``number`` | one JSON value of that type |
| ``func`` | one function call: ``{"name": <string>, "arguments": <object>}`` |
| ``funcarray`` | a JSON array of one or more function calls |
| ``fcall`` | a function-call answer: a ``funcarray`` |
| ``nofcall`` | a plain-text answer: any text that does not start with ``[`` (so it is not a call) |
| ``root`` | either: an ``fcall`` or a ``nofcall`` |
| ``insidevalue`` | the inside of a JSON string: characters and escape sequences, no quotes |
| ``ws`` | JSON whitespace only (spaces, tabs, newlines) |

JSON is written in the layout of wafer's other JSON constraints (``structured.JSON_LAYOUT``).
"""

from __future__ import annotations

import json
from typing import get_args

from ..protocol.completions import GrammarRoot
from .structured import JSON_LAYOUT

FUNC = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "arguments": {"type": "object"}},
    "required": ["name", "arguments"],
    "additionalProperties": False,
}


def _json(schema: dict) -> str:
    return "%json " + json.dumps({"x-guidance": JSON_LAYOUT, **schema})


RULES: dict[str, str] = {
    "root": "fcall | nofcall",
    "fcall": "funcarray",
    "nofcall": "NOFCALL",
    "funcarray": _json({"type": "array", "items": FUNC, "minItems": 1}),
    "func": _json(FUNC),
    "value": _json({}),
    "object": _json({"type": "object"}),
    "array": _json({"type": "array"}),
    "string": _json({"type": "string"}),
    "number": _json({"type": "number"}),
    "insidevalue": "INSIDE",
    "ws": "WS",
}
TERMINALS = (
    r"NOFCALL: /([^\[][\s\S]*)?/",
    r'INSIDE: /(\\(["\\\/bfnrt]|u[0-9a-fA-F]{4})|[^"\\\x00-\x1f])*/',
    r"WS: /[ \t\n\r]*/",
)
#: the values of ``grammar_root``
ROOTS = tuple(RULES)
assert set(ROOTS) == set(get_args(GrammarRoot)), "a grammar_root value without a rule (or a rule without a value)"


def grammar_root_grammar(root: str) -> str:
    """Lark grammar text whose start is the rule ``root`` (one of ``ROOTS``)."""
    if root not in RULES:
        raise ValueError(f"unknown grammar root {root!r}")
    lines = ["%llguidance {}", f"start: {root}"]
    lines += [f"{name}: {body}" for name, body in RULES.items()]
    lines += TERMINALS
    return "\n".join(lines) + "\n"
