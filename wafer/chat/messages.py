"""API messages -> the dicts chat templates expect (Hugging Face conventions)."""

from __future__ import annotations

import json
from typing import Any


class UnsupportedContent(ValueError):
    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


def _text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for i, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            parts.append(part.get("text") or "")
        else:
            raise UnsupportedContent(
                f"{where}.content.{i}: content of type '{kind}' is not supported by this model (text only)",
                "messages",
            )
    return "".join(parts)


def _arguments(raw: Any) -> Any:
    """Templates index tool-call arguments as a mapping (transformers' convention)."""
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            return raw
        return value if isinstance(value, dict) else raw
    return raw


def to_template_messages(messages: list[dict], developer_as_system: bool = False) -> list[dict]:
    """``developer_as_system``: developer messages become system messages (for templates without a
    developer role of their own, which would drop them or render a role the model never saw)."""
    out = []
    for i, m in enumerate(messages):
        role = m["role"]
        if role == "developer" and developer_as_system:
            role = "system"
        d: dict[str, Any] = {"role": role, "content": _text(m.get("content"), f"messages.{i}")}
        if m.get("name"):
            d["name"] = m["name"]
        if role == "assistant":
            if m.get("reasoning") is not None:
                # templates read it under different names: Qwen3 and GLM reasoning_content, gpt-oss thinking
                text = _text(m.get("reasoning"), f"messages.{i}")
                d["reasoning"] = d["reasoning_content"] = d["thinking"] = text
            if m.get("tool_calls"):
                d["tool_calls"] = [
                    {
                        "id": tc.get("id"),
                        "type": tc.get("type", "function"),
                        "function": {
                            "name": tc["function"]["name"],
                            "arguments": _arguments(tc["function"].get("arguments")),
                        },
                    }
                    for tc in m["tool_calls"]
                ]
        if role == "tool":
            d["tool_call_id"] = m.get("tool_call_id")
        out.append(d)
    return out


def add_system_text(messages: list[dict], text: str) -> list[dict]:
    """``text`` appended to the leading system message, or a new system message at the start."""
    if messages and messages[0]["role"] in ("system", "developer"):
        first = messages[0]
        joined = f"{first['content']}\n\n{text}" if first["content"] else text
        return [{**first, "content": joined}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]
