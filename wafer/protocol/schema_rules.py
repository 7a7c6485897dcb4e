"""Cerebras' rules for strict JSON schemas (spec sections 2.4 and 9).

``check_strict_schema`` checks the schema of ``response_format.json_schema``
(``strict: true``) or of a strict tool's ``function.parameters`` and returns a
normalized deep copy; the input is never mutated.  Every violation is a 400
``wrong_api_format`` whose message starts with the JSON path of the offending
node.  Every subschema is checked: ``properties`` values, ``items``,
``prefixItems`` entries, ``anyOf`` branches, ``$defs``/``definitions`` entries
and a schema-valued ``additionalProperties``.

1. A schema (and every subschema) is a JSON object.
2. ``"type"`` is one JSON type name; the list shorthand is rejected.
3. ``anyOf`` is a non-empty list of at most 5 schemas.
4. Objects (``"type": "object"`` or a ``properties`` key) list every property in
   ``required`` and set ``additionalProperties: false``.  Version 1 adds a
   missing one to the copy; version 2 rejects it.
5. ``definitions``: rejected in version 2; in version 1 the copy moves it to
   ``$defs`` and rewrites ``#/definitions/`` refs to ``#/$defs/``.
6. ``items: true`` is rejected (``items: false`` next to ``prefixItems`` is fine).
7. ``$ref`` is ``#/$defs/NAME`` (``#/definitions/NAME`` too in version 1) and
   names a root definition; recursion (a ref cycle reachable from the root, or
   ``#``) is rejected.
8. Keywords outside ``ALLOWED_KEYWORDS`` are rejected with Cerebras' message,
   ``Unsupported JSON schema fields: {'items', 'minItems'}``.
9. wafer's own limits (Cerebras publishes none): ``MAX_DEPTH`` nested objects
   (``$ref`` is not followed; ``$defs`` entries count from the level of the
   schema holding them), ``MAX_SCHEMA_CHARS`` characters of compact JSON,
   ``MAX_PROPERTIES`` properties in all.
10. ``enum`` is a non-empty list; ``required`` is a list of strings.
"""

from __future__ import annotations

import copy
import json
from typing import NoReturn

from wafer.protocol.errors import bad_request

__all__ = ["ALLOWED_KEYWORDS", "MAX_DEPTH", "MAX_PROPERTIES", "MAX_SCHEMA_CHARS", "check_strict_schema"]

MAX_DEPTH = 5
MAX_SCHEMA_CHARS = 15000
MAX_PROPERTIES = 100

ALLOWED_KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "prefixItems",
    "enum", "const", "anyOf", "$ref", "$defs", "definitions",
    "description", "title", "default", "examples", "$schema", "$id", "$comment",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "format", "pattern", "minLength", "maxLength",
})
JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
MAX_ANYOF = 5


def check_strict_schema(schema: object, *, version: int, param: str, where: str) -> dict:
    """Check ``schema`` against the strict rules; return a normalized deep copy.

    ``param`` is the error's ``param`` (``"response_format"`` or ``"tools"``);
    ``where`` prefixes the paths in messages (``"tools.0.function.parameters"``).
    """
    if not isinstance(schema, dict):
        raise bad_request(f"{where}: schema must be a JSON object", param=param)
    try:
        size = len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False))
        if size > MAX_SCHEMA_CHARS:
            raise bad_request(f"{where}: schema is too long ({size} characters; at most {MAX_SCHEMA_CHARS})", param=param)
        out = copy.deepcopy(schema)
        _Checker(version, param, out).check(out, where)
    except RecursionError:
        raise bad_request(f"{where}: schema is nested too deeply", param=param) from None
    return out


class _Checker:
    def __init__(self, version: int, param: str, root: dict) -> None:
        self.version = version
        self.param = param
        self.root = root
        self.properties = 0
        self.owner: str | None = None  # the root definition being walked; None for the rest of the schema
        self.refs: dict[str | None, list[tuple[str, str]]] = {None: []}  # owner -> [(target name, path)]

    def fail(self, path: str, message: str) -> NoReturn:
        raise bad_request(f"{path}: {message}", param=self.param)

    def check(self, root: dict, where: str) -> None:
        self.walk(root, where, 0)
        defs = root.get("$defs", {})
        for refs in self.refs.values():
            for name, path in refs:
                if name not in defs:
                    self.fail(path, f'$ref "#/$defs/{name}" does not resolve')
        self.find_cycle(None, set(), set())

    def find_cycle(self, owner: str | None, active: set, done: set) -> None:
        active.add(owner)
        for name, path in self.refs.get(owner, []):
            if name in active:
                self.fail(path, "recursive schemas are not supported")
            if name not in done:
                self.find_cycle(name, active, done)
        active.discard(owner)
        done.add(owner)

    def walk(self, node: object, path: str, depth: int) -> None:
        if not isinstance(node, dict):
            self.fail(path, "schema must be a JSON object")
        unsupported = set(node) - ALLOWED_KEYWORDS
        if unsupported:
            self.fail(path, "Unsupported JSON schema fields: {" + ", ".join(repr(k) for k in sorted(unsupported)) + "}")
        kind = node.get("type")
        if isinstance(kind, list):
            self.fail(path, 'The shorthand "type": [...] is not supported; use anyOf '
                            '(e.g. anyOf: [{"type": "string"}, {"type": "null"}])')
        if "type" in node and kind not in JSON_TYPES:
            self.fail(path, f"type must be one of {', '.join(JSON_TYPES)}")
        if "enum" in node and not (isinstance(node["enum"], list) and node["enum"]):
            self.fail(f"{path}.enum", "enum must be a non-empty list")
        if kind == "object" or "properties" in node:
            depth += 1
            self.check_object(node, path, depth)
        if node.get("items") is True:
            self.fail(f"{path}.items", "items: true is not supported")
        if "$ref" in node:
            self.check_ref(node, path)

        children: list[tuple[object, str]] = [(v, f"{path}.properties.{k}") for k, v in node.get("properties", {}).items()]
        if node.get("items", False) is not False:
            children.append((node["items"], f"{path}.items"))
        if isinstance(node.get("additionalProperties"), dict):
            children.append((node["additionalProperties"], f"{path}.additionalProperties"))
        for key in ("prefixItems", "anyOf"):
            if key not in node:
                continue
            branches = node[key]
            if not isinstance(branches, list) or not branches:
                self.fail(f"{path}.{key}", f"{key} must be a non-empty list of schemas")
            if key == "anyOf" and len(branches) > MAX_ANYOF:
                self.fail(f"{path}.anyOf", f"anyOf may have at most {MAX_ANYOF} branches")
            children += [(b, f"{path}.{key}.{i}") for i, b in enumerate(branches)]
        for child, child_path in children:
            self.walk(child, child_path, depth)
        self.walk_definitions(node, path, depth)

    def check_object(self, node: dict, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.fail(path, f"schema nesting depth exceeds {MAX_DEPTH}")
        props = node.get("properties", {})
        if not isinstance(props, dict):
            self.fail(f"{path}.properties", "properties must be an object")
        self.properties += len(props)
        if self.properties > MAX_PROPERTIES:
            self.fail(f"{path}.properties", f"a schema may have at most {MAX_PROPERTIES} properties in total")
        required = node.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            self.fail(f"{path}.required", "required must be a list of strings")
        missing = [k for k in props if k not in required]
        if missing:
            self.fail(path, f"every property must be listed in required; missing: {', '.join(missing)}")
        if "additionalProperties" not in node:
            if self.version >= 2:
                self.fail(path, "additionalProperties must be set to false for every object (API version 2)")
            node["additionalProperties"] = False
        elif node["additionalProperties"] is not False:
            self.fail(f"{path}.additionalProperties", "additionalProperties must be false")

    def check_ref(self, node: dict, path: str) -> None:
        ref = node["$ref"]
        prefixes = ("#/$defs/",) if self.version >= 2 else ("#/$defs/", "#/definitions/")
        if ref == "#":
            self.fail(f"{path}.$ref", "recursive schemas are not supported")
        if self.version >= 2 and isinstance(ref, str) and ref.startswith("#/definitions/"):
            self.fail(f"{path}.$ref", f'$ref {json.dumps(ref)}: "definitions" is not supported; use '
                                      f'{json.dumps("#/$defs/" + ref[len("#/definitions/"):])}')
        prefix = next((p for p in prefixes if isinstance(ref, str) and ref.startswith(p)), None)
        name = ref[len(prefix):] if prefix else ""
        if not name or "/" in name:
            self.fail(f"{path}.$ref", f'$ref {json.dumps(ref)} is not supported; use a local reference "#/$defs/NAME"')
        name = name.replace("~1", "/").replace("~0", "~")
        node["$ref"] = "#/$defs/" + ref[len(prefix):]
        self.refs[self.owner].append((name, f"{path}.$ref"))

    def walk_definitions(self, node: dict, path: str, depth: int) -> None:
        if "definitions" in node and self.version >= 2:
            self.fail(f"{path}.definitions", '"definitions" is not supported; use "$defs"')
        at_root = node is self.root
        for key in ("$defs", "definitions"):
            defs = node.get(key, {})
            if not isinstance(defs, dict):
                self.fail(f"{path}.{key}", f"{key} must be an object")
            for name, sub in defs.items():
                if at_root:
                    self.owner = name
                    self.refs.setdefault(name, [])
                self.walk(sub, f"{path}.{key}.{name}", depth)
            if at_root:
                self.owner = None
        if "definitions" in node:
            defs = node.pop("definitions")
            clash = set(defs) & set(node.get("$defs", {}))
            if clash:
                self.fail(path, f'{", ".join(sorted(clash))} defined in both "definitions" and "$defs"')
            node["$defs"] = {**node.get("$defs", {}), **defs}
