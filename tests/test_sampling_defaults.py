"""Recommended sampling settings: each catalogue model's, filled in by the server when a request omits
temperature/top_p (``--sampling-defaults api`` gives the API's 1.0 back), and used by ``wafer chat``.

The server checks compare seeded requests: with the same seed, leaving a parameter out must give
exactly the text of sending the recommended value, and not that of the API default."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import MODEL_ID, ROOT, Server, serve_args
from wafer.models.catalogue import CATALOGUE, Recommended, recommended_sampling
from wafer.server.params import chat_params, completion_params

MSG = [{"role": "user", "content": "Tell me something about the ocean."}]
SMOL = {"temperature": 0.2, "top_p": 0.9}


def test_catalogue_recommendations():
    assert CATALOGUE["smollm2-135m"].recommended.api() == SMOL
    qwen = CATALOGUE["qwen2.5-coder-0.5b"].recommended
    assert qwen.api() == {"temperature": 0.7, "top_p": 0.8}
    assert (qwen.top_k, qwen.repetition_penalty) == (20, 1.05)  # recorded; the API has no such parameters


def test_recommendation_lookup():
    assert recommended_sampling("smollm2-135m").api() == SMOL
    # a pulled catalogue file served by path (any quantization)
    assert recommended_sampling("x", "/c/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_0.gguf").api() == SMOL
    assert recommended_sampling("x", "/m/Qwen2.5-Coder-0.5B-Instruct.IQ4_NL.gguf").temperature == 0.7
    # any other GGUF: llama.cpp's general.sampling.* keys (written from generation_config.json)
    meta = {"general.sampling.temp": "0.6", "general.sampling.top_p": "0.95", "general.sampling.top_k": "20"}
    rec = recommended_sampling("other", "/m/other.gguf", meta)
    assert rec.api() == {"temperature": 0.6, "top_p": 0.95} and rec.top_k == 20
    assert recommended_sampling("other", "/m/other.gguf", {"general.sampling.temp": "9"}).api() == {}
    assert recommended_sampling("other", "/m/other.gguf", {}) == Recommended()


def _req(**kw):
    base = dict(temperature=None, top_p=None, seed=None, logit_bias=None, frequency_penalty=None,
                presence_penalty=None, logprobs=None, top_logprobs=None, max_new_tokens=None, min_new_tokens=0,
                stop_list=[], n=None, max_tokens=None, min_tokens=None, best_of=None, echo=None)
    return SimpleNamespace(**{**base, **kw})


def test_params_fill_in_only_what_is_missing():
    s = chat_params(_req(), 100, SMOL).sampling
    assert (s.temperature, s.top_p) == (0.2, 0.9)
    s = chat_params(_req(temperature=0.0), 100, SMOL).sampling
    assert (s.temperature, s.top_p) == (0.0, 0.9)
    s = completion_params(_req(top_p=0.5), 100, SMOL).sampling
    assert (s.temperature, s.top_p) == (0.2, 0.5)
    s = chat_params(_req(), 100, {}).sampling
    assert (s.temperature, s.top_p) == (1.0, 1.0)


def _chat(client, **kw) -> str:
    r = client.chat.completions.create(model=MODEL_ID, messages=MSG, max_completion_tokens=20, **kw)
    return r.choices[0].message.content


def test_server_uses_the_models_recommendation(cerebras):
    for seed in (1, 2):
        omitted = _chat(cerebras, seed=seed)
        assert omitted == _chat(cerebras, seed=seed, **SMOL)
        assert omitted != _chat(cerebras, seed=seed, temperature=1.0, top_p=1.0)
    # only the missing one is filled in
    assert _chat(cerebras, seed=3, top_p=1.0) == _chat(cerebras, seed=3, temperature=0.2, top_p=1.0)
    # text completions too
    kw = dict(model=MODEL_ID, prompt="The ocean is", max_tokens=24, seed=4)
    assert cerebras.completions.create(**kw).choices[0].text == \
        cerebras.completions.create(**kw, **SMOL).choices[0].text


def test_a_first_answer_that_makes_sense(cerebras):
    """The default model at its default settings answers a simple question (seeded: fixed answers)."""
    q = [{"role": "user", "content": "What is the capital of France?"}]
    for seed in range(3):
        r = cerebras.chat.completions.create(model=MODEL_ID, messages=q, max_completion_tokens=40, seed=seed)
        assert "Paris" in r.choices[0].message.content


@pytest.fixture(scope="module")
def api_defaults_server(resolved_model, tmp_path_factory):
    s = Server(serve_args(resolved_model) + ["--sampling-defaults", "api", "--parallel", "2"],
               tmp_path_factory.mktemp("apidefaults") / "server.log")
    yield s
    s.stop()


def test_sampling_defaults_api_flag(api_defaults_server):
    import httpx

    from conftest import sdk_clients

    info = httpx.get(api_defaults_server.url + "/wafer/models").json()["data"]
    smol = next(m for m in info if m["id"] == MODEL_ID)
    assert smol["defaults"] == {} and smol["recommended"] == SMOL
    with sdk_clients(api_defaults_server.url) as (cb, _):
        omitted = _chat(cb, seed=1)
        assert omitted == _chat(cb, seed=1, temperature=1.0, top_p=1.0)
        assert omitted != _chat(cb, seed=1, **SMOL)


def test_wafer_chat_local_starts_from_the_recommendation(model_path):
    r = subprocess.run([sys.executable, "-m", "wafer", "chat", "--local", "--model", model_path, "--seed", "1",
                        "--max-tokens", "40", "What is the capital of France?"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "Paris" in r.stdout
    p = subprocess.run([sys.executable, "-m", "wafer", "chat", "--local", "--model", model_path, "--max-tokens", "4"],
                       input="\n", capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "temperature 0.2 (model's recommendation), top_p 0.9 (model's recommendation)" in p.stderr
