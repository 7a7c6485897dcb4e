"""Strict JSON schemas from pydantic models, following Cerebras' structured-output rules (spec 2.4).

Cerebras constrains decoding to a ``json_schema`` with ``strict: true`` when the schema keeps to its
subset. ``to_strict_json_schema`` rewrites what pydantic generates into that subset:

- every object gets ``additionalProperties: false`` and lists all its properties in ``required``
  (fields with defaults become required: the model must write them; nullable fields stay nullable);
- nullability is ``anyOf: [..., {"type": "null"}]`` (a ``"type": [..]`` list is rewritten), ``oneOf``
  becomes ``anyOf``, a one-element ``allOf`` is merged, ``const`` becomes a one-value ``enum``;
- definitions live in ``$defs`` (``definitions`` is renamed); a ``$ref`` with sibling keys is inlined;
- keywords Cerebras rejects or that pydantic adds as metadata are dropped (``title``, ``default``,
  ``format``, ``pattern``, length/size/range bounds, ``examples``...): pydantic still checks them when the
  answer is parsed.

What cannot be expressed strictly raises ``StrictSchemaError``: free-form mappings (``dict[str, X]``),
objects without ``properties``, ``items`` that accept anything, ``anyOf`` with more than 5 branches.
"""

from __future__ import annotations

import re
from typing import Any

import pydantic

__all__ = [
    "PydanticFunctionTool",
    "StrictSchemaError",
    "pydantic_function_tool",
    "schema_name",
    "to_strict_json_schema",
    "type_to_response_format",
]

MAX_ANY_OF = 5

#: the keywords a strict schema keeps; all others are dropped
_KEPT = {"type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum", "anyOf", "$ref", "$defs", "description"}


class StrictSchemaError(ValueError):
    """The model's schema has a part that Cerebras' strict mode cannot express."""


def schema_name(name: str) -> str:
    """A ``json_schema.name`` / function name Cerebras accepts: ``[a-zA-Z0-9_-]{1,64}``."""
    return (re.sub(r"[^a-zA-Z0-9_-]", "_", name) or "schema")[:64]


def _json_schema(model: Any) -> dict[str, Any]:
    if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
        return model.model_json_schema()
    return pydantic.TypeAdapter(model).json_schema()


def to_strict_json_schema(model: Any) -> dict[str, Any]:
    """The strict schema of a pydantic model class (or any type a ``pydantic.TypeAdapter`` takes)."""
    schema = _json_schema(model)
    defs = {**schema.pop("definitions", {}), **schema.pop("$defs", {})}
    if set(schema) == {"$ref"}:  # a recursive model: pydantic puts the root itself in $defs
        schema = _resolve(schema["$ref"], defs)
    root = _strict(schema, defs, "#")
    if defs:
        root["$defs"] = {name: _strict(d, defs, f"#/$defs/{name}") for name, d in defs.items()}
    if root.get("type") != "object":
        raise StrictSchemaError("a structured-output schema must be an object at the top level")
    return root


def _resolve(ref: str, defs: dict[str, Any]) -> dict[str, Any]:
    name = ref.rsplit("/", 1)[-1]
    if not ref.startswith(("#/$defs/", "#/definitions/")) or name not in defs:
        raise StrictSchemaError(f"cannot resolve $ref {ref!r}")
    return defs[name]


def _strict(node: Any, defs: dict[str, Any], path: str) -> dict[str, Any]:
    if not isinstance(node, dict) or not node:
        raise StrictSchemaError(f"{path}: a schema that accepts anything cannot be strict")
    node = dict(node)
    if "$ref" in node:
        node["$ref"] = node["$ref"].replace("#/definitions/", "#/$defs/")
        siblings = {k: v for k, v in node.items() if k != "$ref" and k in _KEPT}
        if not siblings:
            return {"$ref": node["$ref"]}
        node = {**_resolve(node.pop("$ref"), defs), **siblings}
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise StrictSchemaError(f"{path}: allOf with {len(parts)} parts is not supported")
        return _strict({**parts[0], **{k: v for k, v in node.items() if k in _KEPT}}, defs, path)
    if "oneOf" in node:
        node["anyOf"] = node.pop("oneOf")
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if isinstance(node.get("type"), list):
        types = node.pop("type")
        rest = {k: v for k, v in node.items() if k in _KEPT}
        return _strict({"anyOf": [{**rest, "type": t} if t != "null" else {"type": "null"} for t in types]}, defs, path)

    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEPT}
    if "anyOf" in out:
        branches = out["anyOf"]
        if len(branches) > MAX_ANY_OF:
            raise StrictSchemaError(f"{path}: anyOf has {len(branches)} branches (Cerebras allows {MAX_ANY_OF})")
        out["anyOf"] = [_strict(b, defs, f"{path}/anyOf/{i}") for i, b in enumerate(branches)]
    if out.get("type") == "object" or "properties" in out:
        extra = out.get("additionalProperties")
        if isinstance(extra, dict) or extra is True:
            raise StrictSchemaError(f"{path}: free-form mappings (dict[str, ...]) cannot be strict")
        properties = out.get("properties")
        if properties is None:
            raise StrictSchemaError(f"{path}: an object without properties cannot be strict")
        out["properties"] = {k: _strict(v, defs, f"{path}/properties/{k}") for k, v in properties.items()}
        out["required"] = list(properties)
        out["additionalProperties"] = False
    if out.get("type") == "array" or "items" in out or "prefixItems" in out:
        if "prefixItems" in out:
            out["prefixItems"] = [_strict(s, defs, f"{path}/prefixItems/{i}") for i, s in enumerate(out["prefixItems"])]
            out["items"] = False
        elif out.get("items") is False:
            pass
        else:
            out["items"] = _strict(out.get("items"), defs, f"{path}/items")
    return out


def type_to_response_format(model: Any, *, name: str | None = None, description: str | None = None) -> dict[str, Any]:
    """``response_format`` for ``chat.completions.create``: a strict ``json_schema`` of ``model``."""
    json_schema: dict[str, Any] = {"name": schema_name(name or getattr(model, "__name__", "response")), "strict": True}
    if description:
        json_schema["description"] = description
    json_schema["schema"] = to_strict_json_schema(model)
    return {"type": "json_schema", "json_schema": json_schema}


class PydanticFunctionTool(dict):
    """A tool definition (a plain dict on the wire) that remembers the model of its arguments."""

    def __init__(self, definition: dict[str, Any], model: Any) -> None:
        super().__init__(definition)
        self.model = model


def pydantic_function_tool(model: type[pydantic.BaseModel], *, name: str | None = None, description: str | None = None) -> PydanticFunctionTool:
    """A strict function tool whose arguments are ``model``; ``parse()`` fills ``parsed_arguments``."""
    function: dict[str, Any] = {"name": schema_name(name or model.__name__)}
    doc = description or (model.__doc__ or "").strip()
    if doc:
        function["description"] = doc
    function["parameters"] = to_strict_json_schema(model)
    function["strict"] = True
    return PydanticFunctionTool({"type": "function", "function": function}, model)
