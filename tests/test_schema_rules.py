"""Unit tests for wafer.protocol.schema_rules (strict structured-output / tool schemas)."""

from __future__ import annotations

import copy

import pytest
from jsonschema import Draft202012Validator
from schema_corpus import SCHEMAS

from wafer.protocol.errors import APIError
from wafer.protocol.schema_rules import (
    MAX_DEPTH,
    MAX_PROPERTIES,
    MAX_SCHEMA_CHARS,
    check_strict_schema,
)

pytestmark = pytest.mark.model_free  # needs no model file

W = "response_format.json_schema.schema"


def obj(properties: dict, **extra) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False, **extra}


def check(schema, version=2, param="response_format", where=W):
    return check_strict_schema(schema, version=version, param=param, where=where)


def rejects(schema, version=2, param="response_format", where=W) -> str:
    """Assert a 400 wrong_api_format for ``param``; return the message."""
    with pytest.raises(APIError) as info:
        check(schema, version, param, where)
    err = info.value
    assert err.status == 400
    body = err.body()
    assert body["type"] == "invalid_request_error"
    assert body["param"] == param
    assert body["code"] == "wrong_api_format"
    return body["message"]


# -- valid schemas and normalization -------------------------------------------


@pytest.mark.parametrize("name,schema,prompt", SCHEMAS, ids=[s[0] for s in SCHEMAS])
def test_corpus_passes_version_2_unchanged(name, schema, prompt):
    Draft202012Validator.check_schema(schema)
    before = copy.deepcopy(schema)
    assert check(schema, version=2) == before
    assert check(schema, version=1) == before
    assert schema == before
    assert prompt


def test_corpus_is_large_and_names_unique():
    names = [name for name, _, _ in SCHEMAS]
    assert len(names) >= 34
    assert len(set(names)) == len(names)


def test_returns_a_copy():
    schema = obj({"a": obj({"b": {"type": "string"}})})
    out = check(schema)
    assert out == schema
    assert out is not schema
    assert out["properties"]["a"] is not schema["properties"]["a"]


def test_v1_adds_missing_additional_properties_everywhere_without_mutating():
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
            "b": {"type": "array", "items": {"properties": {}, "required": []}},
        },
        "required": ["a", "b"],
    }
    before = copy.deepcopy(schema)
    out = check(schema, version=1)
    assert schema == before
    assert out["additionalProperties"] is False
    assert out["properties"]["a"]["additionalProperties"] is False
    assert out["properties"]["b"]["items"]["additionalProperties"] is False


def test_v1_definitions_become_defs_and_refs_are_rewritten():
    schema = obj(
        {"home": {"$ref": "#/definitions/addr"}, "other": {"$ref": "#/$defs/name"}},
        definitions={"addr": obj({"city": {"$ref": "#/definitions/name"}})},
        **{"$defs": {"name": {"type": "string"}}},
    )
    before = copy.deepcopy(schema)
    out = check(schema, version=1)
    assert schema == before
    assert "definitions" not in out
    assert out["$defs"] == {"name": {"type": "string"}, "addr": obj({"city": {"$ref": "#/$defs/name"}})}
    assert out["properties"]["home"] == {"$ref": "#/$defs/addr"}
    assert out["properties"]["other"] == {"$ref": "#/$defs/name"}


def test_allowed_annotations_and_keyword_like_property_names():
    schema = obj(
        {
            "minItems": {"type": "integer", "minimum": 0, "exclusiveMaximum": 10, "description": "a count"},
            "oneOf": {"type": "string", "format": "email", "pattern": ".+", "minLength": 1, "maxLength": 9, "default": "x"},
            "$ref": {"enum": ["a", {"not": 1}], "title": "t", "examples": ["a"], "$comment": "c"},
        },
        **{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "urn:x", "$defs": {"uniqueItems": {"const": {"if": 1}}}},
    )
    assert check(schema) == schema


def test_items_false_with_prefix_items_and_non_recursive_ref_chain():
    schema = obj(
        {"pair": {"type": "array", "prefixItems": [{"$ref": "#/$defs/a"}, {"type": "null"}], "items": False}},
        **{"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/b"}, {"$ref": "#/$defs/b"}]}, "b": {"type": "string"}}},
    )
    assert check(schema) == schema


def test_unreachable_cycle_is_accepted():
    defs = {"a": {"anyOf": [{"$ref": "#/$defs/b"}, {"type": "null"}]}, "b": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}}
    assert check(obj({"x": {"type": "string"}}, **{"$defs": defs}))["$defs"] == defs


# -- rule 1: schemas are objects ----------------------------------------------


@pytest.mark.parametrize("schema", [None, [], "object", True, 3])
def test_root_must_be_an_object(schema):
    assert rejects(schema) == f"{W}: schema must be a JSON object"


def test_subschema_must_be_an_object():
    assert rejects(obj({"a": True})) == f"{W}.properties.a: schema must be a JSON object"
    assert rejects(obj({"a": {"type": "array", "items": [{"type": "string"}]}})) == (
        f"{W}.properties.a.items: schema must be a JSON object"
    )


# -- rule 2: type --------------------------------------------------------------


def test_type_list_shorthand_rejected():
    message = rejects(obj({"a": {"type": ["string", "null"]}}))
    assert message == (
        f'{W}.properties.a: The shorthand "type": [...] is not supported; use anyOf '
        '(e.g. anyOf: [{"type": "string"}, {"type": "null"}])'
    )


def test_unknown_type_rejected():
    assert rejects(obj({"a": {"type": "float"}})).startswith(f"{W}.properties.a: type must be one of string, number")


# -- rule 3: anyOf -------------------------------------------------------------


def test_anyof_at_most_five_branches():
    five = [{"type": t} for t in ("string", "integer", "number", "boolean", "null")]
    assert check(obj({"a": {"anyOf": five}}))
    message = rejects(obj({"a": {"anyOf": five + [{"type": "array", "items": {"type": "string"}}]}}))
    assert message == f"{W}.properties.a.anyOf: anyOf may have at most 5 branches"


@pytest.mark.parametrize("branches", [[], {"type": "string"}, "x"])
def test_anyof_must_be_non_empty_list(branches):
    assert rejects(obj({"a": {"anyOf": branches}})) == f"{W}.properties.a.anyOf: anyOf must be a non-empty list of schemas"


def test_anyof_branches_are_checked():
    assert rejects(obj({"a": {"anyOf": [{"type": "null"}, "string"]}})) == f"{W}.properties.a.anyOf.1: schema must be a JSON object"
    message = rejects(obj({"a": {"anyOf": [{"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}]}}))
    assert message == f"{W}.properties.a.anyOf.0: additionalProperties must be set to false for every object (API version 2)"


# -- rule 4: objects -------------------------------------------------------------


def test_every_property_must_be_required():
    schema = obj({"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "boolean"}})
    schema["required"] = ["b"]
    for version in (1, 2):
        assert rejects(schema, version) == f"{W}: every property must be listed in required; missing: a, c"


def test_missing_required_counts_as_empty():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    assert rejects(schema) == f"{W}: every property must be listed in required; missing: a"


def test_v2_requires_additional_properties_at_every_level():
    inner = {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}
    assert rejects({"type": "object", "properties": {}, "required": []}) == (
        f"{W}: additionalProperties must be set to false for every object (API version 2)"
    )
    assert rejects(obj({"a": inner})) == (
        f"{W}.properties.a: additionalProperties must be set to false for every object (API version 2)"
    )
    assert rejects(obj({"a": {"type": "array", "items": {"properties": {}}}})) == (
        f"{W}.properties.a.items: additionalProperties must be set to false for every object (API version 2)"
    )


@pytest.mark.parametrize("value", [True, {}, {"type": "string"}, None, 0])
@pytest.mark.parametrize("version", [1, 2])
def test_additional_properties_must_be_false(value, version):
    schema = obj({"a": {"type": "string"}})
    schema["additionalProperties"] = value
    assert rejects(schema, version) == f"{W}.additionalProperties: additionalProperties must be false"


@pytest.mark.parametrize("required", ["a", [1], {"a": True}])
def test_required_must_be_list_of_strings(required):
    schema = obj({"a": {"type": "string"}})
    schema["required"] = required
    assert rejects(schema) == f"{W}.required: required must be a list of strings"


def test_properties_must_be_an_object():
    schema = {"type": "object", "properties": [], "required": [], "additionalProperties": False}
    assert rejects(schema) == f"{W}.properties: properties must be an object"


# -- rule 5: definitions ---------------------------------------------------------


def test_v2_rejects_definitions():
    schema = obj({"a": {"$ref": "#/$defs/x"}}, **{"$defs": {"x": {"type": "string"}}}, definitions={"y": {"type": "string"}})
    assert rejects(schema) == f'{W}.definitions: "definitions" is not supported; use "$defs"'


def test_v2_rejects_definitions_ref():
    schema = obj({"a": {"$ref": "#/definitions/x"}}, **{"$defs": {"x": {"type": "string"}}})
    assert rejects(schema) == f'{W}.properties.a.$ref: $ref "#/definitions/x": "definitions" is not supported; use "#/$defs/x"'
    assert check(schema, version=1)["properties"]["a"] == {"$ref": "#/$defs/x"}  # version 1 rewrites it


def test_v1_definitions_entries_are_checked():
    schema = obj({"a": {"$ref": "#/definitions/x"}}, definitions={"x": {"type": "array", "minItems": 1}})
    assert rejects(schema, version=1) == f"{W}.definitions.x: Unsupported JSON schema fields: {{'minItems'}}"


def test_v1_name_in_both_definitions_and_defs_rejected():
    schema = obj({"a": {"$ref": "#/$defs/x"}}, **{"$defs": {"x": {"type": "string"}}}, definitions={"x": {"type": "integer"}})
    assert rejects(schema, version=1) == f'{W}: x defined in both "definitions" and "$defs"'


# -- rule 6: items ---------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_items_true_rejected(version):
    assert rejects(obj({"a": {"type": "array", "items": True}}), version) == f"{W}.properties.a.items: items: true is not supported"


# -- rule 7: $ref ----------------------------------------------------------------


@pytest.mark.parametrize("ref", ["#/properties/a", "other.json#/$defs/x", "#/$defs/", "#/$defs/x/properties/y", 5, "#x"])
def test_ref_must_be_local_defs_ref(ref):
    schema = obj({"b": {"$ref": ref}}, **{"$defs": {"x": obj({"y": {"type": "string"}})}})
    message = rejects(schema)
    assert message.startswith(f"{W}.properties.b.$ref: $ref ")
    assert message.endswith('is not supported; use a local reference "#/$defs/NAME"')


def test_unresolvable_ref_rejected():
    schema = obj({"b": {"$ref": "#/$defs/missing"}}, **{"$defs": {"x": {"type": "string"}}})
    assert rejects(schema) == f'{W}.properties.b.$ref: $ref "#/$defs/missing" does not resolve'


def test_ref_to_nested_defs_does_not_resolve():
    schema = obj({"a": obj({"b": {"$ref": "#/$defs/x"}}, **{"$defs": {"x": {"type": "string"}}})})
    assert rejects(schema) == f'{W}.properties.a.properties.b.$ref: $ref "#/$defs/x" does not resolve'


def test_ref_escapes_are_decoded():
    schema = obj({"b": {"$ref": "#/$defs/a~1b~0c"}}, **{"$defs": {"a/b~c": {"type": "string"}}})
    assert check(schema) == schema


def test_root_ref_is_recursion():
    assert rejects(obj({"child": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}})) == (
        f"{W}.properties.child.anyOf.0.$ref: recursive schemas are not supported"
    )


def test_self_recursive_def_rejected():
    node = obj({"value": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}})
    schema = obj({"head": {"$ref": "#/$defs/node"}}, **{"$defs": {"node": node}})
    assert rejects(schema) == f"{W}.$defs.node.properties.next.anyOf.0.$ref: recursive schemas are not supported"


def test_mutually_recursive_defs_rejected():
    defs = {"a": obj({"b": {"$ref": "#/$defs/b"}}), "b": {"type": "array", "items": {"$ref": "#/$defs/a"}}}
    message = rejects(obj({"root": {"$ref": "#/$defs/a"}}, **{"$defs": defs}))
    assert message.endswith(".$ref: recursive schemas are not supported")


def test_v1_recursion_through_definitions_rejected():
    defs = {"t": obj({"kids": {"type": "array", "items": {"$ref": "#/definitions/t"}}})}
    message = rejects(obj({"tree": {"$ref": "#/definitions/t"}}, definitions=defs), version=1)
    assert message == f"{W}.definitions.t.properties.kids.items.$ref: recursive schemas are not supported"


# -- rule 8: unsupported keywords ----------------------------------------------


def test_unsupported_fields_message_matches_cerebras():
    schema = obj({"tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3}})
    assert rejects(schema) == f"{W}.properties.tags: Unsupported JSON schema fields: {{'maxItems', 'minItems'}}"


@pytest.mark.parametrize(
    "keyword",
    ["minItems", "maxItems", "oneOf", "allOf", "not", "if", "then", "else", "patternProperties", "uniqueItems",
     "contains", "propertyNames", "minProperties", "maxProperties", "dependentRequired", "dependentSchemas",
     "unevaluatedProperties", "nullable"],
)
def test_each_unsupported_keyword(keyword):
    schema = obj({"a": {"type": "string", keyword: 1}})
    assert rejects(schema, param="tools", where="tools.0.function.parameters") == (
        f"tools.0.function.parameters.properties.a: Unsupported JSON schema fields: {{'{keyword}'}}"
    )


def test_unsupported_field_at_root_and_in_defs():
    assert rejects({**obj({}), "oneOf": []}) == f"{W}: Unsupported JSON schema fields: {{'oneOf'}}"
    schema = obj({"a": {"$ref": "#/$defs/x"}}, **{"$defs": {"x": {"type": "string", "contentEncoding": "base64"}}})
    assert rejects(schema) == f"{W}.$defs.x: Unsupported JSON schema fields: {{'contentEncoding'}}"


# -- rule 9: limits --------------------------------------------------------------


def nested(levels: int) -> dict:
    schema = obj({"leaf": {"type": "string"}})
    for _ in range(levels - 1):
        schema = obj({"child": schema})
    return schema


def test_depth_limit():
    assert check(nested(MAX_DEPTH))
    path = W + ".properties.child" * MAX_DEPTH
    assert rejects(nested(MAX_DEPTH + 1)) == f"{path}: schema nesting depth exceeds {MAX_DEPTH}"


def test_depth_counts_objects_through_arrays_and_anyof():
    schema = nested(MAX_DEPTH - 1)
    leaf = schema
    for _ in range(MAX_DEPTH - 2):
        leaf = leaf["properties"]["child"]
    leaf["properties"]["leaf"] = {"type": "array", "items": {"anyOf": [obj({"x": {"type": "string"}}), {"type": "null"}]}}
    assert check(schema)
    leaf["properties"]["leaf"]["items"]["anyOf"][0] = obj({"x": obj({})})
    assert rejects(schema).endswith(f"anyOf.0.properties.x: schema nesting depth exceeds {MAX_DEPTH}")


def test_deeply_nested_non_objects_do_not_crash():
    schema: dict = {"type": "string"}
    for _ in range(1000):  # about 13000 characters: under the length limit, over Python's recursion limit
        schema = {"anyOf": [schema]}
    assert rejects(obj({"a": schema})) == f"{W}: schema is nested too deeply"


def test_length_limit():
    ok = obj({"a": {"type": "string", "description": "x" * (MAX_SCHEMA_CHARS - 200)}})
    assert check(ok)
    big = obj({"a": {"type": "string", "description": "é" * MAX_SCHEMA_CHARS}})
    assert rejects(big).startswith(f"{W}: schema is too long (")


def test_property_count_limit():
    half = MAX_PROPERTIES // 2
    ok = obj({f"a{i}": obj({f"b{j}": {"type": "integer"} for j in range(half - 1)}) for i in range(2)})
    assert check(ok)
    too_many = obj({f"p{i}": {"type": "integer"} for i in range(MAX_PROPERTIES + 1)})
    assert rejects(too_many) == f"{W}.properties: a schema may have at most {MAX_PROPERTIES} properties in total"


def test_property_count_includes_defs():
    defs = {"d": obj({f"p{i}": {"type": "integer"} for i in range(MAX_PROPERTIES)})}
    assert rejects(obj({"x": {"$ref": "#/$defs/d"}}, **{"$defs": defs})).endswith(f"at most {MAX_PROPERTIES} properties in total")


# -- rule 10: enum ---------------------------------------------------------------


@pytest.mark.parametrize("enum", [[], "a", {"a": 1}, None])
def test_enum_must_be_non_empty_list(enum):
    assert rejects(obj({"a": {"enum": enum}})) == f"{W}.properties.a.enum: enum must be a non-empty list"
