"""Predicted outputs: speculative verification of the prediction gives the same output as decoding
without it (T=0, both catalogue models), with usage accounting, streaming, and the 400s.

Servers run without the prefix cache so that the request with and without a prediction compute their
prompt the same way (prompt caching changes llama.cpp's batch shapes, hence the last bits of the
logits)."""

from __future__ import annotations

import httpx
import pytest
from conftest import MODEL_ID, QWEN_ID, Server, serve_args

TEXT = """def area(width, height):
    return width * height

def perimeter(width, height):
    return 2 * (width + height)

def describe(width, height):
    return f"{width}x{height} rectangle"
"""
PROMPT = "Repeat this Python code exactly, in a python code block, and nothing else:\n\n" + TEXT


@pytest.fixture(scope="module")
def qwen_plain(tmp_path_factory):
    from wafer.models import resolve_model

    resolve_model(QWEN_ID, pull=True, progress=False)
    s = Server(["--model", QWEN_ID, "--no-prefix-cache"], tmp_path_factory.mktemp("qwen-plain") / "server.log")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ngram_server(resolved_model, tmp_path_factory):
    s = Server(serve_args(resolved_model) + ["--no-prefix-cache", "--speculate", "ngram"],
               tmp_path_factory.mktemp("ngram") / "server.log")
    yield s
    s.stop()


def complete(url: str, model: str, prediction: str | None = None, stream: bool = False, **kw) -> tuple[str, dict]:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "temperature": 0,
            "max_completion_tokens": 160, **kw}
    if prediction is not None:
        body["prediction"] = {"type": "content", "content": prediction}
    if not stream:
        r = httpx.post(url + "/v1/chat/completions", json=body, timeout=300)
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["message"]["content"], r.json()["usage"]
    import json

    text, usage = [], None
    with httpx.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}, timeout=300) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                ev = json.loads(line[6:])
                for c in ev.get("choices") or []:
                    text.append(c.get("delta", {}).get("content") or "")
                usage = ev.get("usage") or usage
    return "".join(text), usage


def variants(out: str) -> dict[str, str]:
    lines = out.split("\n")
    swapped = list(lines)
    if len(lines) > 5:
        swapped[2], swapped[4] = swapped[4], swapped[2]
    return {
        "exact": out,
        "edit": out.replace("width * height", "height * width", 1),
        "insert": "\n".join(lines[:3] + ["# an inserted comment line"] + lines[3:]),
        "delete": "\n".join(lines[:2] + lines[3:]),
        "reorder": "\n".join(swapped),
        "unrelated": "The quick brown fox jumps over the lazy dog. " * 6,
    }


@pytest.mark.parametrize("which", ["smollm2", "qwen"])
def test_same_output_with_any_prediction(which, plain_server, request):
    url, model = (plain_server.url, MODEL_ID) if which == "smollm2" else (request.getfixturevalue("qwen_plain").url, QWEN_ID)
    base, base_usage = complete(url, model)
    assert base and "completion_tokens_details" not in base_usage
    for name, pred in variants(base).items():
        out, usage = complete(url, model, pred)
        assert out == base, name
        d = usage["completion_tokens_details"]
        # rejected prediction tokens are billed as completion tokens (spec 8.2)
        assert usage["completion_tokens"] == base_usage["completion_tokens"] + d["rejected_prediction_tokens"], name
        assert d["accepted_prediction_tokens"] + d["rejected_prediction_tokens"] >= 1
        if name == "exact":
            assert d["rejected_prediction_tokens"] == 0 and d["accepted_prediction_tokens"] > 0.9 * usage["completion_tokens"]
        if name == "unrelated":
            assert d["accepted_prediction_tokens"] <= 2


def test_usage_counts_by_hand(plain_server):
    """accepted = prediction tokens the output followed; rejected = prediction tokens not in the output."""
    from wafer.engine.llama import LlamaModel

    base, usage = complete(plain_server.url, MODEL_ID)
    m = LlamaModel(plain_server_model_path(plain_server))
    try:
        n_pred = len(m.tokenize(base, False, False))
        extra = " # tail that the model never writes"
        n_extra = len(m.tokenize(base + extra, False, False)) - n_pred
    finally:
        m.close()
    _, u = complete(plain_server.url, MODEL_ID, base)
    assert u["completion_tokens_details"] == {"accepted_prediction_tokens": n_pred, "rejected_prediction_tokens": 0}
    _, u = complete(plain_server.url, MODEL_ID, base + extra)
    d = u["completion_tokens_details"]
    assert (d["accepted_prediction_tokens"], d["rejected_prediction_tokens"]) == (n_pred, n_extra)


def plain_server_model_path(server) -> str:
    from wafer.models import resolve_model

    return str(resolve_model(MODEL_ID, pull=False, progress=False).path)


def test_streaming_with_prediction(plain_server):
    base, _ = complete(plain_server.url, MODEL_ID)
    out, usage = complete(plain_server.url, MODEL_ID, variants(base)["edit"], stream=True)
    assert out == base
    assert usage["completion_tokens_details"]["accepted_prediction_tokens"] > 0


def test_prediction_with_stop_and_max_tokens(plain_server):
    base, _ = complete(plain_server.url, MODEL_ID, max_completion_tokens=40)
    out, usage = complete(plain_server.url, MODEL_ID, base, max_completion_tokens=40)
    assert out == base and usage["completion_tokens"] == 40 + usage["completion_tokens_details"]["rejected_prediction_tokens"]
    stop = base.split("\n")[2][:6]
    base_s, _ = complete(plain_server.url, MODEL_ID, stop=[stop])
    out_s, _ = complete(plain_server.url, MODEL_ID, base, stop=[stop])
    assert out_s == base_s and stop not in out_s


def test_prediction_with_structured_output(plain_server):
    schema = {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"],
              "additionalProperties": False}
    rf = {"type": "json_schema", "json_schema": {"name": "c", "strict": True, "schema": schema}}
    base, _ = complete(plain_server.url, MODEL_ID, response_format=rf)
    out, usage = complete(plain_server.url, MODEL_ID, base, response_format=rf)
    assert out == base and usage["completion_tokens_details"]["accepted_prediction_tokens"] > 0
    # a prediction the grammar forbids from the start: drafts are cut to nothing, the output is the same
    out, usage = complete(plain_server.url, MODEL_ID, "not json at all " * 5, response_format=rf)
    assert out == base


def test_speculate_ngram_same_output(ngram_server, plain_server):
    """--speculate ngram drafts from the prompt (the code to repeat is in it)."""
    base, _ = complete(plain_server.url, MODEL_ID)
    out, usage = complete(ngram_server.url, MODEL_ID)
    assert out == base and "completion_tokens_details" not in usage
    assert ngram_server.stats()["tokens_generated"] > 0


@pytest.mark.parametrize("extra,field", [({"n": 2}, "n"), ({"logprobs": True}, "logprobs"),
                                         ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools")])
def test_prediction_incompatible_400(http, extra, field):
    r = http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": [{"role": "user", "content": "x"}],
                                                "prediction": {"type": "content", "content": "y"}, **extra})
    assert r.status_code == 400
    assert r.json()["param"] == "prediction" and f'"{field}"' in r.json()["message"]



def test_drafts_leave_no_kv_cells_behind(plain_server):
    """Rejected draft cells are removed and finished sequences release everything (read back from llama.cpp)."""
    base, _ = complete(plain_server.url, MODEL_ID, max_completion_tokens=60)
    for pred in variants(base).values():
        complete(plain_server.url, MODEL_ID, pred, max_completion_tokens=60)
    st = plain_server.wait_idle()
    assert st["kv_slots_occupied"] == [] and st["kv_cells_running"] == 0


def test_drafts_batch_with_other_requests(plain_server):
    """A predicted request verifies its drafts in the same steps as other requests' decodes."""
    from concurrent.futures import ThreadPoolExecutor

    base, _ = complete(plain_server.url, MODEL_ID, max_completion_tokens=60)
    with ThreadPoolExecutor(4) as pool:
        futs = [pool.submit(complete, plain_server.url, MODEL_ID, base if i % 2 == 0 else None, max_completion_tokens=60)
                for i in range(4)]
        results = [f.result() for f in futs]
    for i, (out, usage) in enumerate(results):
        assert out
        assert ("completion_tokens_details" in usage) == (i % 2 == 0)
    st = plain_server.wait_idle()
    assert st["kv_slots_occupied"] == []
