"""Developer messages act as system messages where the chat template has no developer role of its own
(Qwen2.5's template would drop them, a plain ChatML one would render a role the model never saw), and
``n`` (or ``best_of``) above the server's parallel sequences is a 400 on that parameter, not a context
error. Through both official SDKs and raw httpx."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from conftest import MODEL_ID, QWEN_ID

from wafer.chat.messages import to_template_messages
from wafer.chat.template import ChatTemplate
from wafer.server.registry import ServedModel

INSTRUCTIONS = "Answer in French, in one short sentence."
QUESTION = {"role": "user", "content": "What colour is the sky?"}


def as_role(role: str) -> list[dict]:
    return [{"role": role, "content": INSTRUCTIONS}, QUESTION]


# -- units ----------------------------------------------------------------------------------------
@pytest.mark.model_free
def test_developer_becomes_system_only_when_asked():
    msgs = as_role("developer")
    assert to_template_messages(msgs, developer_as_system=True)[0]["role"] == "system"
    assert to_template_messages(msgs)[0]["role"] == "developer"


@pytest.mark.model_free
def test_which_templates_have_a_developer_role():
    from tiny_models import TEMPLATES

    def has(source: str) -> bool:
        return ServedModel.has_developer_role.fget(SimpleNamespace(template=SimpleNamespace(source=source)))

    assert has(TEMPLATES["gpt_oss"])  # harmony renders developer messages itself
    assert not has(TEMPLATES["qwen3"])
    text = ChatTemplate(TEMPLATES["gpt_oss"]).render(to_template_messages(as_role("developer")))
    assert "<|start|>developer<|message|># Instructions\n\n" + INSTRUCTIONS in text


@pytest.mark.parametrize("model", [QWEN_ID, MODEL_ID])
def test_catalogue_templates_render_developer_as_system(model):
    """The prompt the server renders for a developer message is, character for character, the one of the
    same text as a system message (what ``render_prompt`` does, on the GGUF's own template)."""
    import gguf

    from wafer.models import resolve_model

    field = gguf.GGUFReader(resolve_model(model, pull=True, progress=False).path).fields["tokenizer.chat_template"]
    source = bytes(field.parts[field.data[0]]).decode()
    template = ChatTemplate(source)
    served = SimpleNamespace(template=template)
    assert not ServedModel.has_developer_role.fget(served)

    def render(messages, **kw) -> str:
        return template.render(to_template_messages(messages, developer_as_system=True), **kw)

    assert render(as_role("developer")) == render(as_role("system"))
    assert INSTRUCTIONS in render(as_role("developer"))
    unmapped = template.render(to_template_messages(as_role("developer")))
    if model == QWEN_ID:
        assert INSTRUCTIONS not in unmapped  # what Qwen2.5's template does with a developer message: drops it
    else:
        assert "<|im_start|>developer" in unmapped  # a role SmolLM2 never saw in training
    both = [{"role": "system", "content": "Be brief."}, {"role": "developer", "content": INSTRUCTIONS}, QUESTION]
    assert render(both) == render([both[0], {"role": "system", "content": INSTRUCTIONS}, QUESTION])
    tools = [{"type": "function", "function": {"name": "sky_colour", "parameters": {"type": "object"}}}]
    assert render(as_role("developer"), tools=tools) == render(as_role("system"), tools=tools)


# -- HTTP -----------------------------------------------------------------------------------------
def prompt_tokens(client, model: str, messages: list[dict], **kw) -> int:
    r = client.chat.completions.create(model=model, messages=messages, temperature=0, max_completion_tokens=4, **kw)
    assert r.choices[0].message.content is not None
    return r.usage.prompt_tokens


@pytest.mark.parametrize("model", [QWEN_ID, MODEL_ID])
def test_developer_messages_work_as_system(request, model):
    """Over HTTP the developer message reaches the prompt as the system one does (same prompt tokens;
    Qwen2.5's template used to drop it, leaving its default system prompt)."""
    if model == QWEN_ID:
        cb, oa = request.getfixturevalue("qwen_clients")
        http_url = request.getfixturevalue("qwen_server").url
    else:
        cb, oa = request.getfixturevalue("cerebras"), request.getfixturevalue("openai_client")
        http_url = request.getfixturevalue("base_url")
    import httpx

    system = prompt_tokens(cb, model, as_role("system"))
    assert system != prompt_tokens(cb, model, [QUESTION])
    assert prompt_tokens(cb, model, as_role("developer")) == system
    assert prompt_tokens(oa, model, as_role("developer")) == system
    r = httpx.post(http_url + "/v1/chat/completions", timeout=120, json={
        "model": model, "messages": as_role("developer"), "temperature": 0, "max_completion_tokens": 4})
    assert r.json()["usage"]["prompt_tokens"] == system
    tools = [{"type": "function", "function": {"name": "sky_colour", "parameters": {"type": "object"}}}]
    assert prompt_tokens(cb, model, as_role("developer"), tools=tools, tool_choice="none") == \
        prompt_tokens(cb, model, as_role("system"), tools=tools, tool_choice="none")


def test_n_above_parallel_is_a_400_on_n(server, http, cerebras, openai_client):
    from cerebras.cloud.sdk import BadRequestError as CerebrasBadRequest
    from openai import BadRequestError as OpenAIBadRequest

    parallel = server.stats()["parallel"]
    n = parallel + 1
    for path, body, param in (
        ("/v1/chat/completions", {"messages": [QUESTION], "n": n}, "n"),
        ("/v1/completions", {"prompt": "Hi", "n": n}, "n"),
        ("/v1/completions", {"prompt": "Hi", "best_of": n}, "best_of"),
        ("/v1/chat/completions", {"messages": [QUESTION], "n": n, "stream": True}, "n"),
    ):
        r = http.post(path, json={"model": MODEL_ID, "max_tokens": 2, **body})
        assert r.status_code == 400, r.text
        b = r.json()
        assert (b["param"], b["code"], b["type"]) == (param, "wrong_api_format", "invalid_request_error")
        assert f"{n} sequences" in b["message"] and f"at most {parallel}" in b["message"]
    with pytest.raises(CerebrasBadRequest) as e:
        cerebras.chat.completions.create(model=MODEL_ID, messages=[QUESTION], n=n, max_completion_tokens=2)
    assert e.value.body["param"] == "n"
    with pytest.raises(OpenAIBadRequest) as e:
        openai_client.completions.create(model=MODEL_ID, prompt="Hi", n=n, max_tokens=2)
    assert e.value.body["param"] == "n"
    r = cerebras.chat.completions.create(model=MODEL_ID, messages=[QUESTION], n=parallel, max_completion_tokens=1)
    assert len(r.choices) == parallel  # the limit itself is fine
