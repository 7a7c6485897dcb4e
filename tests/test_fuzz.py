"""A short fuzz run (scripts/fuzz.py): ~400 schemathesis requests and the whole malformed-request
corpus; no answer may be a 5xx, and afterwards the server still runs, answers and is idle.

The long run is `.venv/bin/python scripts/fuzz.py --requests 10000`.
"""

from __future__ import annotations

import sys

import httpx
import pytest
from conftest import ROOT, Server, serve_args

sys.path.insert(0, str(ROOT / "scripts"))
import fuzz

MAX_BODY = 1 << 20  # a small body limit keeps the over-the-limit requests quick


@pytest.fixture(scope="module")
def fuzz_server(resolved_model, tmp_path_factory):
    args = serve_args(resolved_model) + [
        "--ctx-size", "256", "--parallel", "16", "--max-body-bytes", str(MAX_BODY),
        "--header-timeout", "2", "--body-timeout", "2",  # the slow requests (4 s) outlast them: 408s
        "--threads", "1",  # see fuzz.start_server
    ]
    s = Server(args, tmp_path_factory.mktemp("fuzz") / "server.log")
    yield s
    s.stop()


def test_openapi_documents_request_bodies(fuzz_server):
    doc = httpx.get(fuzz_server.url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for path, schema in (("/v1/chat/completions", "ChatCompletionRequest"), ("/v1/completions", "CompletionRequest")):
        body = doc["paths"][path]["post"]["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{schema}"}
        assert "model" in doc["components"]["schemas"][schema]["required"]
        responses = doc["paths"][path]["post"]["responses"]
        assert {"200", "400", "401", "403", "404", "413", "429"} <= set(responses)
        assert "422" not in responses
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["message", "type", "param", "code"]
    assert httpx.get(fuzz_server.url + "/openapi.json").json() == doc


def test_openapi_loads_in_schemathesis(fuzz_server):
    import schemathesis

    schema = schemathesis.openapi.from_dict(httpx.get(fuzz_server.url + "/openapi.json").json())
    operations = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    assert {("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("GET", "/v1/models")} <= operations


def test_bound_cost():
    """Requests to a served model are capped at 2 choices of 8 tokens; invalid values and other models stay."""
    served = {"m"}
    body = {"model": "m", "messages": [], "n": 100, "max_tokens": -1, "min_tokens": 500}
    assert fuzz.bound_cost(body, served, 8, 2) == {"model": "m", "messages": [], "n": 2, "max_tokens": 8,
                                                   "min_tokens": 8}
    body = {"model": "m", "prompt": "x", "n": 1000, "best_of": 5}  # n out of range: left for the server
    assert fuzz.bound_cost(body, served, 8, 2) == {"model": "m", "prompt": "x", "n": 1000, "best_of": 2,
                                                   "max_tokens": 8}
    body = {"model": "m", "messages": [], "max_tokens": "x"}  # an invalid limit stays, and no other is added
    assert fuzz.bound_cost(body, served, 8, 2) == {"model": "m", "messages": [], "max_tokens": "x"}
    assert fuzz.bound_cost({"model": "other", "n": 100}, served, 8, 2) == {"model": "other", "n": 100}
    assert fuzz.bound_cost({"model": ["m"], "n": 100}, served, 8, 2) == {"model": ["m"], "n": 100}


def test_fuzz_short(fuzz_server):
    opts = fuzz.Options(url=fuzz_server.url, requests=400, phases="examples,fuzzing", max_time=60,
                        max_body=MAX_BODY, slow_seconds=4, slow_connections=5, concurrent=100, json_path=None)
    r = fuzz.fuzz(opts, proc=fuzz_server.proc, log_path=fuzz_server.log_path)
    print(fuzz.table(r))  # shown with -s
    assert r["server_errors"] == 0, r["failures"]
    assert r["failure_count"] == 0, r["failures"]
    assert all(c["ok"] for c in r["liveness"]), r["liveness"]
    assert fuzz_server.proc.poll() is None
    assert r["stages"]["schemathesis"]["detail"]["requests"] >= 300, r["stages"]["schemathesis"]
    assert r["sources"]["raw:huge"]["by_status"].get("413", 0) >= 2  # over the limit, plain and inflated
    assert r["sources"]["raw:slow"]["by_status"].get("408", 0) > 0  # slow headers and bodies timed out
