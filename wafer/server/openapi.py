"""The document at ``/openapi.json``: FastAPI's, completed with what the routes really accept and answer.

The completion routes read their bodies themselves (``read_json``), so FastAPI sees no request
model and documents no request body; the request models' schemas (``wafer.protocol``) are added
here, with the served model ids as examples of ``model``. Responses are documented too: the 200
objects (``wafer.protocol.responses``) and Cerebras' flat error body for the 4xx answers, in place
of FastAPI's 422 (validation errors are answered with 400 here). The result is an OpenAPI 3.1
document that schema-driven tools (schemathesis) load as is.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from ..protocol import model_info as M
from ..protocol import responses as R
from ..protocol.chat import ChatCompletionRequest
from ..protocol.completions import CompletionRequest

REF = "#/components/schemas/{model}"

#: The flat Cerebras error body (spec 4.1), as ``wafer.protocol.errors.APIError.body`` writes it.
ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "type": {"type": "string"},
        "param": {"type": ["string", "null"]},
        "code": {"type": ["string", "null"]},
    },
    "required": ["message", "type", "param", "code"],
}

#: FastAPI's HTTPBearer body, which Cerebras (and wafer) send for a missing or non-bearer credential.
DETAIL_SCHEMA = {
    "title": "Detail",
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}

ERRORS = {
    "400": "Invalid request (bad JSON, a schema violation, a prompt that does not fit the context)",
    "401": "Wrong API key",
    "403": "No or malformed credentials",
    "404": "Unknown model or path",
    "413": "Request body too large",
    "429": "Request queue full or rate limit exceeded",
}

#: The request models, and the 200 bodies of the routes that answer a model object.
BODIES = {
    ("/v1/chat/completions", "post"): (ChatCompletionRequest, R.ChatCompletion),
    ("/v1/completions", "post"): (CompletionRequest, R.TextCompletion),
}
#: the 200 bodies of the discovery routes, one per ``format``
ANSWERS = {
    ("/v1/models", "get"): (R.ModelList, M.OpenRouterModelList, M.HuggingFaceModelList),
    ("/v1/models/{model_id}", "get"): (R.Model, M.OpenRouterModel, M.HuggingFaceModel),
    ("/public/v1/models", "get"): (M.PublicModelList, M.OpenRouterModelList, M.HuggingFaceModelList),
    ("/public/v1/models/{model_id}", "get"): (M.PublicModel, M.OpenRouterModel, M.HuggingFaceModel),
}

#: request body media types of the completion routes (msgpack ones decoded to the same object)
BODY_TYPES = ("application/json", "application/vnd.msgpack", "application/msgpack", "application/x-msgpack")

VERSION_HEADER = {
    "name": "X-Cerebras-Version-Patch",
    "in": "header",
    "required": False,
    "description": "API behaviour version, 1 or 2 (the server's --api-version when absent; 2 by default).",
    "schema": {"type": "integer"},
}

QUEUE_THRESHOLD_HEADER = {
    "name": "queue_threshold",
    "in": "header",
    "required": False,
    "description": "Longest acceptable queue time in milliseconds (50-20000), for service_tier flex and auto: "
                   "429 queue_exceeded when the queue is slower.",
    "schema": {"type": "integer", "minimum": 50, "maximum": 20000},
}


def install(app: FastAPI) -> None:
    """Serve ``document(app)`` at the app's OpenAPI URL, built once on first use."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI document for ``app`` with request bodies and responses filled in."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        webhooks=app.webhooks.routes,
        tags=app.openapi_tags,
        servers=app.servers,
        separate_input_output_schemas=app.separate_input_output_schemas,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    refs, defs = _model_schemas()
    schemas.update(defs)
    schemas["Error"] = ERROR_SCHEMA
    schemas["Detail"] = DETAIL_SCHEMA
    served = _served_ids(app)
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        if served:
            schemas[name]["properties"]["model"]["examples"] = served

    for (path, method), op in _operations(doc):
        op["responses"].pop("422", None)
        op["responses"].update(_errors())
        if (path, method) in BODIES:
            request_model, answer = BODIES[(path, method)]
            op["requestBody"] = {
                "required": True,
                "content": {media: {"schema": refs[request_model]} for media in BODY_TYPES},
            }
            example = _example(request_model, served)
            if example is not None:
                op["requestBody"]["content"]["application/json"]["example"] = example
            op["responses"]["200"] = {
                "description": "The completion (a server-sent event stream when the request has stream: true)",
                "content": {
                    "application/json": {"schema": refs[answer]},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            }
            headers = [VERSION_HEADER, QUEUE_THRESHOLD_HEADER] if path == "/v1/chat/completions" else [VERSION_HEADER]
            op["parameters"] = [*op.get("parameters", []), *headers]
        elif (path, method) in ANSWERS:
            shapes = [refs[m] for m in ANSWERS[(path, method)]]
            op["responses"]["200"]["content"]["application/json"]["schema"] = {"anyOf": shapes}
    if not _mentions(doc["paths"], "#/components/schemas/HTTPValidationError"):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return doc


def _model_schemas() -> tuple[dict[type, dict], dict[str, Any]]:
    """``$ref``s of the request (validation) and response (serialization) models, and the schemas they use."""
    models = [(m, "validation") for m, _ in BODIES.values()]
    models += [(m, "serialization") for _, m in BODIES.values()]
    models += [(m, "serialization") for shapes in ANSWERS.values() for m in shapes]
    keys, top = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)
    return {m: ref for (m, _), ref in keys.items()}, top.get("$defs", {})


def _served_ids(app: FastAPI) -> list[str]:
    registry = getattr(app.state, "registry", None)
    return [mid for mid, _ in registry.ids()] if registry is not None else []


def _example(model: type, served: list[str]) -> dict | None:
    """A small valid request for the first served model (None when nothing is served)."""
    if not served:
        return None
    if model is ChatCompletionRequest:
        return {"model": served[0], "messages": [{"role": "user", "content": "Say hi"}], "max_completion_tokens": 8}
    return {"model": served[0], "prompt": "Once upon a time", "max_tokens": 8}


def _errors() -> dict[str, Any]:
    """The 4xx responses: Cerebras error bodies (403 also in the HTTPBearer shape)."""
    out = {}
    for status, text in ERRORS.items():
        schema: dict[str, Any] = {"$ref": "#/components/schemas/Error"}
        if status == "403":
            schema = {"anyOf": [schema, {"$ref": "#/components/schemas/Detail"}]}
        out[status] = {"description": text, "content": {"application/json": {"schema": schema}}}
    return out


def _operations(doc: dict[str, Any]):
    """(path, method) and the operation object of every operation in ``doc``."""
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
                yield (path, method), op


def _mentions(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_mentions(v, ref) for v in node.values())
    if isinstance(node, list):
        return any(_mentions(v, ref) for v in node)
    return False
