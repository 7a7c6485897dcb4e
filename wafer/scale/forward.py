"""What the ingress hands an engine replica: one HTTP request, and the text the router matches.

``Forwarded`` carries the request as the ingress received it (method, path, query, headers, body) plus
``prompt``: the text a prefix-aware router compares with what each replica has served. Ray Serve's
prefix router reads a ``prompt`` (or ``messages``) attribute of the call's arguments; wafer gives it the
chat messages' contents in order (system prompt first, each earlier turn before the next), or the text
completion's prompt, so a conversation's next turn and requests sharing a system prompt match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

COMPLETION_PATHS = ("/v1/chat/completions", "/v1/completions")


@dataclass
class Forwarded:
    method: str
    path: str
    query: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    client: tuple[str, int] | None = None
    prompt: str = ""  # what the router matches; "" routes on load alone
    stream: bool = False  # the client asked for server-sent events


def describe(path: str, body: bytes, content_type: str = "") -> tuple[str, bool]:
    """(the text prefix routing matches, whether the request streams) of a completion request; ("", False)
    for anything else or a body that does not parse (the replica answers that with the usual 400)."""
    if path not in COMPLETION_PATHS or not body:
        return "", False
    try:
        if "msgpack" in content_type:
            import msgpack

            data = msgpack.unpackb(body, raw=False)
        else:
            data = json.loads(body)
    except Exception:  # noqa: BLE001 - any malformed body: the replica's parser reports it
        return "", False
    if not isinstance(data, dict):
        return "", False
    stream = data.get("stream") is True
    if path == "/v1/chat/completions":
        messages = data.get("messages")
        if not isinstance(messages, list):
            return "", stream
        return "".join(_text(m.get("content")) for m in messages if isinstance(m, dict)), stream
    return _text(data.get("prompt")), stream


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for v in value:
            if isinstance(v, str):
                parts.append(v)
            elif isinstance(v, dict) and isinstance(v.get("text"), str):
                parts.append(v["text"])
            elif isinstance(v, int):  # a prompt of token ids
                parts.append(f"<{v}>")
            elif isinstance(v, list):
                parts.append(_text(v))
        return "".join(parts)
    return ""
