"""Structured outputs through HTTP: strict json_schema, json_object, the 400 rules, streaming, n > 1,
budget steering. Outputs are validated with ``jsonschema`` on both catalogue models."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import jsonschema
import pytest
from conftest import MODEL_ID, QWEN_ID, sdk_clients
from schema_corpus import SCHEMAS

FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def validate(text: str, schema: dict) -> object:
    value = json.loads(text)
    jsonschema.Draft202012Validator(schema, format_checker=FORMATS).validate(value)
    return value


def rf(schema: dict, strict: bool | None = True, name: str = "answer") -> dict:
    spec = {"name": name, "schema": schema}
    if strict is not None:
        spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}


def ask(client, model: str, prompt: str, **kw):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], **{"temperature": 0, **kw}
    )


def run_corpus(url: str, model: str) -> dict[str, tuple[str, str]]:
    """Every corpus schema at once (continuous batching), alternating the two official clients."""
    with sdk_clients(url) as clients, ThreadPoolExecutor(8) as pool:

        def one(i: int):
            name, schema, prompt = SCHEMAS[i]
            r = ask(clients[i % 2], model, prompt, response_format=rf(schema), max_completion_tokens=160)
            return name, (r.choices[0].message.content, r.choices[0].finish_reason)

        return dict(pool.map(one, range(len(SCHEMAS))))


@pytest.fixture(scope="module")
def smol_outputs(server):
    return run_corpus(server.url, MODEL_ID)


@pytest.fixture(scope="module")
def qwen_outputs(qwen_server):
    return run_corpus(qwen_server.url, QWEN_ID)


@pytest.mark.parametrize("name,schema", [(n, s) for n, s, _ in SCHEMAS], ids=[n for n, _, _ in SCHEMAS])
def test_corpus_smollm2(smol_outputs, name, schema):
    text, finish = smol_outputs[name]
    validate(text, schema)
    assert finish == "stop"


@pytest.mark.parametrize("name,schema", [(n, s) for n, s, _ in SCHEMAS], ids=[n for n, _, _ in SCHEMAS])
def test_corpus_qwen(qwen_outputs, name, schema):
    text, finish = qwen_outputs[name]
    validate(text, schema)
    assert finish == "stop"


def test_corpus_is_large_and_varied():
    assert len(SCHEMAS) >= 30
    text = json.dumps([s for _, s, _ in SCHEMAS])
    for keyword in ("anyOf", "enum", "$ref", "prefixItems", "format", "pattern", "minimum", '"array"', '"null"'):
        assert keyword in text


MOVIE = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "director": {"type": "string"},
        "year": {"type": "integer"},
        "plot": {"type": "string"},
    },
    "required": ["title", "director", "year", "plot"],
    "additionalProperties": False,
}


def test_json_object_is_one_object(cerebras, openai_client):
    for client in (cerebras, openai_client):
        r = ask(client, MODEL_ID, "Describe a cat in JSON.", response_format={"type": "json_object"}, max_completion_tokens=120)
        assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_json_object_on_qwen(qwen_clients):
    r = ask(qwen_clients[0], QWEN_ID, "Describe a cat as JSON.", response_format={"type": "json_object"}, max_completion_tokens=120)
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_text_format_is_unconstrained(cerebras):
    plain = ask(cerebras, MODEL_ID, "Say hello.", max_completion_tokens=12)
    text = ask(cerebras, MODEL_ID, "Say hello.", max_completion_tokens=12, response_format={"type": "text"})
    assert text.choices[0].message.content == plain.choices[0].message.content


def test_non_strict_schema_is_json_guided_by_the_schema(cerebras):
    r = ask(cerebras, MODEL_ID, "Recommend a movie.", response_format=rf(MOVIE, strict=False), max_completion_tokens=120)
    assert isinstance(json.loads(r.choices[0].message.content), dict)
    # the schema is shown to the model as guidance: the prompt is longer than without it
    plain = ask(cerebras, MODEL_ID, "Recommend a movie.", max_completion_tokens=1)
    assert r.usage.prompt_tokens > plain.usage.prompt_tokens + 20


def test_streaming_strict_output_validates(cerebras, openai_client):
    for client in (cerebras, openai_client):
        stream = ask(client, MODEL_ID, "Recommend a movie.", response_format=rf(MOVIE), max_completion_tokens=120, stream=True)
        parts, finish = [], None
        for chunk in stream:
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
        validate("".join(parts), MOVIE)
        assert finish == "stop"


def test_every_choice_is_masked_with_n(cerebras):
    r = ask(cerebras, MODEL_ID, "Recommend a movie.", response_format=rf(MOVIE), max_completion_tokens=120,
            n=3, temperature=1.0, seed=7)
    assert len(r.choices) == 3
    values = [validate(c.message.content, MOVIE) for c in r.choices]
    assert len({json.dumps(v) for v in values}) > 1  # sampled independently


@pytest.mark.parametrize("budget", [30, 45, 70])
def test_small_budget_still_closes(cerebras, budget):
    """Budget steering: the output closes within max_completion_tokens (minimal instance ~20 tokens)."""
    r = ask(cerebras, MODEL_ID, "Write a long movie plot.", response_format=rf(MOVIE), max_completion_tokens=budget,
            temperature=1.0, seed=3)
    validate(r.choices[0].message.content, MOVIE)
    assert r.usage.completion_tokens <= budget


def test_budget_too_small_is_cut(cerebras):
    r = ask(cerebras, MODEL_ID, "Recommend a movie.", response_format=rf(MOVIE), max_completion_tokens=5)
    assert r.choices[0].finish_reason == "length"
    with pytest.raises(ValueError):
        json.loads(r.choices[0].message.content)


def test_grammars_are_cached_by_schema(server, http):
    schema = {"type": "object", "properties": {"cache_probe": {"type": "integer"}}, "required": ["cache_probe"],
              "additionalProperties": False}
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Count."}], "response_format": rf(schema),
            "max_completion_tokens": 10}
    http.post("/v1/chat/completions", json=body).raise_for_status()
    before = server.stats()["grammar"]
    http.post("/v1/chat/completions", json=body).raise_for_status()
    after = server.stats()["grammar"]
    assert after["compiles"] == before["compiles"]
    assert after["masks"] > before["masks"]


# -- the 400 rules --------------------------------------------------------------------------------
def post(http, body: dict, version: int | None = None) -> httpx.Response:
    headers = {"X-Cerebras-Version-Patch": str(version)} if version else {}
    return http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}],
                                                   "max_completion_tokens": 4, **body}, headers=headers)


def obj(props: dict, **extra) -> dict:
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False, **extra}


BAD_SCHEMAS = [
    ("type_list", obj({"a": {"type": ["string", "null"]}}), None, 'shorthand "type"'),
    ("anyof_6", obj({"a": {"anyOf": [{"type": "string"}] * 6}}), None, "at most 5"),
    ("not_required", {"type": "object", "properties": {"a": {"type": "string"}}, "required": [],
                      "additionalProperties": False}, None, "required"),
    ("additional_true", {**obj({"a": {"type": "string"}}), "additionalProperties": True}, None, "additionalProperties"),
    ("additional_missing_v2", {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, 2,
     "additionalProperties"),
    ("definitions_v2", {**obj({"a": {"$ref": "#/definitions/x"}}), "definitions": {"x": {"type": "string"}}}, 2,
     "definitions"),
    ("items_true", obj({"a": {"type": "array", "items": True}}), None, "items"),
    ("unsupported", obj({"a": {"type": "array", "items": {"type": "string"}, "minItems": 1}}), None,
     "Unsupported JSON schema fields: {'minItems'}"),
    ("recursive", {**obj({"a": {"$ref": "#/$defs/n"}}), "$defs": {"n": obj({"next": {"$ref": "#/$defs/n"}})}}, None,
     "recursive"),
    ("deep", obj({"a": obj({"b": obj({"c": obj({"d": obj({"e": obj({"f": {"type": "string"}})})})})})}), None, "depth"),
]


@pytest.mark.parametrize("name,schema,version,needle", BAD_SCHEMAS, ids=[b[0] for b in BAD_SCHEMAS])
def test_strict_schema_rules_are_400(http, name, schema, version, needle):
    r = post(http, {"response_format": rf(schema)}, version)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "wrong_api_format" and body["param"] == "response_format"
    assert body["type"] == "invalid_request_error"
    assert needle in body["message"]


def test_v1_quietly_adds_additional_properties(http):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    r = post(http, {"response_format": rf(schema), "max_completion_tokens": 20}, version=1)
    assert r.status_code == 200, r.text
    assert set(json.loads(r.json()["choices"][0]["message"]["content"])) == {"a"}
    assert post(http, {"response_format": rf(schema)}).status_code == 400  # version 2, the default, rejects it


def test_grammar_compile_error_is_400_not_500(http):
    r = post(http, {"response_format": rf(obj({"a": {"type": "string", "pattern": "(unclosed"}}))})
    assert r.status_code == 400, r.text
    assert r.json()["param"] == "response_format"


def test_tools_with_response_format_is_400(http):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    r = post(http, {"response_format": {"type": "json_object"}, "tools": tools})
    assert r.status_code == 400
    assert r.json()["message"] == '"tools" is incompatible with "response_format"'


def test_sdk_raises_bad_request_for_rules(cerebras):
    from cerebras.cloud.sdk import BadRequestError

    with pytest.raises(BadRequestError) as e:
        ask(cerebras, MODEL_ID, "Hi", response_format=rf(obj({"a": {"type": ["string", "null"]}})))
    assert e.value.status_code == 400


def test_server_survives_bad_schemas(server, http):
    for _, schema, version, _ in BAD_SCHEMAS:
        post(http, {"response_format": rf(schema)}, version)
    assert post(http, {}).status_code == 200
    server.wait_idle()


def test_wafer_client_parse(base_url):
    """Our SDK's parse(): the pydantic model is sent as a strict schema and the answer validates."""
    import pydantic

    from wafer.client import Cerebras

    class Movie(pydantic.BaseModel):
        title: str
        year: int
        director: str

    with Cerebras(api_key="k", base_url=base_url, max_retries=0) as client:
        r = client.chat.completions.parse(model=MODEL_ID, messages=[{"role": "user", "content": "Recommend a movie."}],
                                          response_format=Movie, temperature=0, max_completion_tokens=60)
    assert isinstance(r.parsed, Movie)
