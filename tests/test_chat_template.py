"""Chat templates with Hugging Face semantics."""

from __future__ import annotations

import pytest

from wafer.chat.messages import UnsupportedContent, to_template_messages
from wafer.chat.template import ChatTemplate, TemplateError

pytestmark = pytest.mark.model_free  # needs no model file


def test_hf_globals_and_filters():
    t = ChatTemplate(
        "{{ bos_token }}{% for m in messages %}{{ m['content'] | tojson }}{% endfor %}"
        "{% if tools %}{{ tools | tojson }}{% endif %}{{ strftime_now('%Y') | length }}"
        "{% if add_generation_prompt %}<gen>{% endif %}",
        bos_token="<s>",
    )
    out = t.render([{"role": "user", "content": "é <b>&"}], tools=[{"a": 1}])
    assert out == '<s>"é <b>&"[{"a": 1}]4<gen>'


def test_raise_exception():
    t = ChatTemplate("{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}{% endif %}ok")
    assert t.render([{"role": "user", "content": "x"}]) == "ok"
    with pytest.raises(TemplateError, match="first must be user"):
        t.render([{"role": "system", "content": "x"}])


def test_sandbox_blocks_attribute_access():
    t = ChatTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        t.render([])


def test_trim_and_lstrip_blocks():
    t = ChatTemplate("{% for m in messages %}\n  {{ m['content'] }}\n{% endfor %}")
    assert t.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == "  a\n  b\n"


def test_loopcontrols():
    t = ChatTemplate("{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m['content'] }}{% endfor %}")
    assert t.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == "a"


def test_messages_conversion():
    msgs = to_template_messages([
        {"role": "system", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "x1", "type": "function", "function": {"name": "f", "arguments": '{"q": 1}'}}]},
        {"role": "tool", "content": "r", "tool_call_id": "x1"},
    ])
    assert msgs[0]["content"] == "AB"
    assert msgs[1]["tool_calls"][0]["function"]["arguments"] == {"q": 1}
    assert msgs[2]["tool_call_id"] == "x1"
    with pytest.raises(UnsupportedContent):
        to_template_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}])


def test_smollm2_template_multi_turn_prefix_stable(tokenizer):
    """Turn N+1's prompt starts with turn N's prompt plus the answer (what prefix caching relies on)."""
    from wafer.chat.template import template_for_model

    m = tokenizer
    t = template_for_model(m.metadata, m.token_text(m.bos_id), m.token_text(m.eos_id))
    turn1 = [{"role": "user", "content": "Hi"}]
    p1 = t.render(turn1)
    p2 = t.render(turn1 + [{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}])
    assert p2.startswith(p1 + "Hello!")
    assert "You are a helpful AI assistant named SmolLM" in p1
