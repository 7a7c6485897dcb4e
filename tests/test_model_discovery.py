"""Model discovery: /v1/models and /public/v1/models in every format, built from the loaded model,
parsed by the official Cerebras SDK with strict response validation, the OpenAI SDK, wafer's client
and raw HTTP; --cerebras-ids makes every Cerebras model id answer on the served model."""

from __future__ import annotations

import httpx
import pytest
from conftest import MODEL_ID, Server, serve_args

from wafer.models.cache import gguf_quant
from wafer.models.catalogue import get_entry
from wafer.models.cerebras import CEREBRAS_MODEL_IDS
from wafer.server.registry import Registry

KEY = "sk-discovery"
AUTH = {"Authorization": f"Bearer {KEY}"}
CTX = 2048


@pytest.fixture(scope="module")
def ids_server(resolved_model, tmp_path_factory):
    args = serve_args(resolved_model) + ["--cerebras-ids", "--api-key", KEY, "--rate-limit", "rpm=600,tpm=200000",
                                         "--ctx-size", str(CTX), "--parallel", "2", "--kv-size", "4096"]  # 2 streams of CTX
    s = Server(args, tmp_path_factory.mktemp("ids") / "server.log")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def clients(ids_server):
    import openai
    from cerebras.cloud.sdk import Cerebras

    with Cerebras(api_key=KEY, base_url=ids_server.url, _strict_response_validation=True, max_retries=0) as cb, \
            openai.OpenAI(api_key=KEY, base_url=ids_server.url + "/v1", max_retries=0) as oa:
        yield cb, oa


@pytest.fixture(scope="module")
def expected(resolved_model):
    entry = get_entry(resolved_model.id)
    return {"quantization": gguf_quant(resolved_model.path), "hugging_face_id": entry.hf_repo if entry else None}


ALL_IDS = {MODEL_ID, *CEREBRAS_MODEL_IDS}


def test_default_format(clients, ids_server):
    cb, oa = clients
    listed = cb.models.list()
    assert type(listed).__name__ == "ModelMetadataList"
    assert {m.id for m in listed.data} >= ALL_IDS
    assert all(m.object == "model" and m.owned_by == "wafer" for m in listed.data)
    assert cb.models.list(format="default").to_dict() == listed.to_dict()
    assert {m.id for m in oa.models.list().data} >= ALL_IDS
    one = cb.models.retrieve("gpt-oss-120b")
    assert type(one).__name__ == "ModelMetadata" and one.id == "gpt-oss-120b"
    assert oa.models.retrieve("qwen-3-coder-480b").id == "qwen-3-coder-480b"


def test_openrouter_format(clients, expected):
    cb, oa = clients
    listed = cb.models.list(format="openrouter")
    assert type(listed).__name__ == "OpenRouterModelsResponse"
    by_id = {m.id: m for m in listed.data}
    assert set(by_id) >= {f"wafer/{i}" for i in ALL_IDS}
    m = by_id["wafer/gpt-oss-120b"]
    assert (m.context_length, m.max_output_length) == (CTX, CTX - 1)
    assert m.quantization == expected["quantization"] and m.hugging_face_id == expected["hugging_face_id"]
    assert (m.pricing.prompt, m.pricing.completion) == ("0", "0")
    assert m.input_modalities == m.output_modalities == ["text"]
    assert {"tools", "json_mode", "structured_outputs"} <= set(m.supported_features)
    assert {"temperature", "top_p", "seed", "stop", "logprobs"} <= set(m.supported_sampling_parameters)
    assert "top_k" not in m.supported_sampling_parameters  # not a parameter of the API
    one = cb.models.retrieve("gpt-oss-120b", format="openrouter")
    assert type(one).__name__ == "OpenRouterModel" and one.to_dict() == m.to_dict()
    page = oa.models.list(extra_query={"format": "openrouter"})  # the OpenAI SDK has no format parameter
    assert {x.id for x in page.data} == set(by_id) and page.data[0].model_extra["context_length"] == CTX


def test_huggingface_format(clients, expected):
    cb, _ = clients
    listed = cb.models.list(format="huggingface")
    assert type(listed).__name__ == "HuggingFaceModelsResponse" and listed.object == "list"
    m = next(x for x in listed.data if x.id == "llama3.1-8b")
    assert m.context_length == CTX and m.owned_by == "wafer" and m.hugging_face_id == expected["hugging_face_id"]
    assert (m.pricing.input, m.pricing.output) == (0.0, 0.0)
    caps = m.capabilities
    assert (caps.function_calling, caps.streaming, caps.structured_outputs, caps.vision) == (True, True, True, False)
    one = cb.models.retrieve(MODEL_ID, format="huggingface")
    assert type(one).__name__ == "HuggingFaceModel" and one.id == MODEL_ID


def test_public_models_need_no_key(ids_server, expected):
    from cerebras.cloud.sdk.types.model_retrieve_response import PublicModel

    assert httpx.get(ids_server.url + "/v1/models").status_code == 403  # the /v1 list needs a key
    r = httpx.get(ids_server.url + "/public/v1/models")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and {m["id"] for m in body["data"]} >= ALL_IDS
    for raw in body["data"]:
        m = PublicModel.model_validate(raw, strict=True)
        assert m.architecture.modality == "text" and m.architecture.instruct_type == "chatml"
        assert m.architecture.tokenizer not in ("", "unknown")
        assert (m.limits.max_context_length, m.limits.max_completion_tokens) == (CTX, CTX - 1)
        assert (m.limits.requests_per_minute, m.limits.tokens_per_minute) == (600, 200000)  # --rate-limit
        assert m.capabilities.tools and m.capabilities.json_mode and not m.capabilities.vision
        assert m.capabilities.reasoning is False  # smollm2 does not reason
        assert m.supported_parameters.temperature and m.supported_parameters.logit_bias
        assert m.supported_parameters.repetition_penalty is False
        assert m.quantization == expected["quantization"] and m.hugging_face_id == expected["hugging_face_id"]
        assert (m.pricing.prompt, m.pricing.completion) == ("0", "0")
    one = httpx.get(ids_server.url + "/public/v1/models/zai-glm-4.7").json()
    assert one == next(m for m in body["data"] if m["id"] == "zai-glm-4.7")


def test_public_models_through_the_sdk(clients):
    from cerebras.cloud.sdk.types.model_list_response import OpenRouterModelsResponse
    from cerebras.cloud.sdk.types.model_retrieve_response import PublicModel

    cb, _ = clients
    m = cb.get("/public/v1/models/gpt-oss-120b", cast_to=PublicModel)  # strict validation on
    assert m.id == "gpt-oss-120b" and m.limits.max_context_length == CTX
    listed = cb.get("/public/v1/models", cast_to=OpenRouterModelsResponse, options={"params": {"format": "openrouter"}})
    assert any(x.id == "wafer/gpt-oss-120b" for x in listed.data)


def test_discovery_errors(ids_server):
    for path in ("/v1/models/gpt-9", "/public/v1/models/gpt-9"):
        r = httpx.get(ids_server.url + path, headers=AUTH)
        assert r.status_code == 404 and r.json()["code"] == "model_not_found"
    for path in ("/v1/models", "/public/v1/models", f"/v1/models/{MODEL_ID}", f"/public/v1/models/{MODEL_ID}"):
        r = httpx.get(ids_server.url + path, params={"format": "xml"}, headers=AUTH)
        assert r.status_code == 400 and r.json()["param"] == "format"


def test_openapi_documents_discovery_bodies_and_headers(ids_server):
    doc = httpx.get(ids_server.url + "/openapi.json").json()
    for path in ("/v1/models", "/v1/models/{model_id}", "/public/v1/models", "/public/v1/models/{model_id}"):
        schema = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert len(schema["anyOf"]) == 3  # one shape per format
    assert "PublicModel" in doc["components"]["schemas"] and "OpenRouterModel" in doc["components"]["schemas"]
    for path in ("/v1/chat/completions", "/v1/completions"):
        op = doc["paths"][path]["post"]
        assert set(op["requestBody"]["content"]) == {"application/json", "application/vnd.msgpack",
                                                     "application/msgpack", "application/x-msgpack"}
        assert "X-Cerebras-Version-Patch" in {p["name"] for p in op["parameters"]}
    assert "queue_threshold" in {p["name"] for p in doc["paths"]["/v1/chat/completions"]["post"]["parameters"]}


def test_wafer_client_parses_every_format(ids_server):
    from wafer.client import Cerebras

    with Cerebras(api_key=KEY, base_url=ids_server.url, max_retries=0, _strict_response_validation=True) as c:
        assert type(c.models.list(format="openrouter")).__name__ == "OpenRouterModelsResponse"
        assert type(c.models.list(format="huggingface")).__name__ == "HuggingFaceModelsResponse"
        assert type(c.models.retrieve("gpt-oss-120b", format="openrouter")).__name__ == "OpenRouterModel"


def test_cerebras_ids_answer(clients):
    cb, oa = clients
    for model in ("gpt-oss-120b", "zai-glm-4.7", "qwen-3-coder-480b"):
        r = cb.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}],
                                       max_completion_tokens=3)
        assert r.model == model and r.choices[0].message.content is not None
    t = oa.completions.create(model="llama-3.3-70b", prompt="Once", max_tokens=3)
    assert t.model == "llama-3.3-70b" and t.usage.completion_tokens == 3


def test_cerebras_ids_off_by_default(base_url):
    ids = {m["id"] for m in httpx.get(base_url + "/v1/models").json()["data"]}
    assert "gpt-oss-120b" not in ids and "llama3.1-8b" in ids  # only the explicit --alias


class _Fake:
    pass


@pytest.mark.model_free
def test_registry_cerebras_ids_keep_explicit_aliases():
    reg = Registry()
    reg.models = {"a": _Fake(), "b": _Fake()}
    reg.aliases = {"llama3.1-8b": "b"}
    added = reg.cerebras_ids("a")
    assert "llama3.1-8b" not in added and set(added) == set(CEREBRAS_MODEL_IDS) - {"llama3.1-8b"}
    assert reg.aliases["llama3.1-8b"] == "b" and reg.aliases["gpt-oss-120b"] == "a"
    with pytest.raises(ValueError, match="no served model"):
        Registry().cerebras_ids("missing")
