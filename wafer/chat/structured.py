"""``response_format`` -> grammar text for the engine (llguidance JSON-schema grammars).

- ``json_schema`` with ``strict: true``: the schema is checked against Cerebras' strict-mode rules
  (``protocol.schema_rules``; violations are 400s) and the output is constrained to it.
- ``json_schema`` with ``strict`` false or absent: Cerebras documents it as "like JSON mode, using the
  schema as a guide". wafer constrains the output to one JSON object (as ``json_object``) and adds
  the schema to the system prompt as guidance, without enforcing it (nor checking its rules).
- ``json_object``: the output is one JSON object.
- ``text`` or absent: unconstrained.

JSON is generated in Python's ``json.dumps`` layout (``", "`` and ``": "``, no newlines), the most
common layout in training data; constrained whitespace also stops small models from looping on
newlines.
"""

from __future__ import annotations

import json

from ..protocol.schema_rules import check_strict_schema

JSON_LAYOUT = {"whitespace_flexible": False, "key_separator": ": ", "item_separator": ", "}
ANY_OBJECT = {"type": "object"}


def json_grammar(schema: dict) -> str:
    """Grammar text for JSON values of ``schema``."""
    import llguidance

    return llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=JSON_LAYOUT)


def response_format_grammar(rf, version: int) -> str | None:
    """The grammar that enforces a request's ``response_format`` (None: unconstrained)."""
    kind = getattr(rf, "type", None)
    if kind == "json_object":
        return json_grammar(ANY_OBJECT)
    if kind == "json_schema":
        spec = rf.json_schema
        if spec.strict and spec.schema_ is not None:
            where = "response_format.json_schema.schema"
            schema = check_strict_schema(spec.schema_, version=version, param="response_format", where=where)
            return json_grammar(schema)
        return json_grammar(ANY_OBJECT)
    return None


def schema_guidance(rf) -> str | None:
    """System-prompt text for a non-strict ``json_schema`` (the schema guides, the grammar only makes JSON)."""
    if getattr(rf, "type", None) != "json_schema" or rf.json_schema.strict or rf.json_schema.schema_ is None:
        return None
    spec = rf.json_schema
    about = f" ({spec.description})" if spec.description else ""
    return (
        f"Respond with a JSON object named {spec.name!r}{about} that follows this JSON schema:\n"
        f"{json.dumps(spec.schema_, ensure_ascii=False)}"
    )
