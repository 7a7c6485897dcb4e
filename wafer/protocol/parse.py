"""Turning a raw JSON body into a validated request, or into an ``APIError``.

``parse_chat_request`` / ``parse_completion_request`` never raise anything but
``APIError``, whatever they are given.  Error bodies follow Cerebras (spec 4.1):

* unknown key at the top level: ``body.store: property 'body.store' is unsupported``;
  nested: ``messages.1.assistant.reasoning_content: property '…' is unsupported``
  (the message role is part of the path, as in Cerebras' paths);
* wrong value / type / missing key: ``<dotted.path>: <pydantic message>``, e.g.
  ``temperature: Input should be less than or equal to 2``, ``model: Field required``;

all with status 400, ``type: invalid_request_error``, ``param: validation_error``,
``code: wrong_api_format``.  Only the first error is reported (an unknown
property wins over other errors, then pydantic's order, which is field order).

Cross-field rules are 400 ``wrong_api_format`` with ``param`` naming the field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from .chat import MAX_STOP, AssistantMessage, ChatCompletionRequest, ToolChoiceObject, ToolMessage
from .completions import MAX_TOKEN_ID, CompletionRequest
from .errors import APIError, bad_request, validation_error

__all__ = [
    "parse_chat_request",
    "parse_completion_request",
    "load_json",
    "load_msgpack",
    "check_chat_request",
    "check_completion_request",
    "error_from_validation",
    "TOOL_NAME_RE",
]

#: DOCS: function names may use a-z, A-Z, 0-9, underscores and dashes, at most 64 characters.
TOOL_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")

# union branch tags used in wafer.protocol.chat / completions; removed from error paths
_INTERNAL_TAGS = frozenset(
    {
        "~str",
        "~list",
        "~object",
        "~text",
        "~image_url",
        "~image",
        "~json_object",
        "~json_schema",
        "~strings",
        "~tokens",
        "~token_lists",
        "[key]",
    }
)

_INSTANCE_OF = re.compile(r" or instance of \w+$")


# --------------------------------------------------------------------------------------------
# pydantic ValidationError -> APIError


def _path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and p in _INTERNAL_TAGS))


def _format_error(err: dict) -> str:
    loc = tuple(err.get("loc") or ())
    etype = err.get("type")
    if etype == "extra_forbidden":
        path = _path(loc)
        if len(loc) == 1:
            path = "body." + path
        if loc and loc[-1] == "reasoning_content":  # a common mistake: say what to send instead
            return (f"{path}: property '{path}' is unsupported; send the assistant's earlier reasoning back "
                    f"as 'reasoning' (reasoning_content is another provider's field name)")
        return f"{path}: property '{path}' is unsupported"
    path = _path(loc) or "body"
    msg = str(err.get("msg") or "Invalid value")
    if etype in ("model_type", "model_attributes_type", "dict_type"):
        msg = _INSTANCE_OF.sub("", msg)
    return f"{path}: {msg}"


def error_from_validation(exc: ValidationError) -> APIError:
    """The most relevant error of a pydantic ``ValidationError`` as a Cerebras-style 400."""
    try:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        first = next((e for e in errors if e.get("type") == "extra_forbidden"), errors[0])
        return validation_error(_format_error(first))
    except Exception:  # pragma: no cover - defensive
        return validation_error("body: Invalid request")


# --------------------------------------------------------------------------------------------
# JSON decoding helper


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _lone_surrogate(value: object) -> bool:
    """Whether a decoded JSON value holds a string with an unpaired UTF-16 surrogate (not encodable)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def load_json(body: bytes | bytearray | str) -> object:
    """Decode a request body; invalid JSON (including ``NaN``/``Infinity`` and ``\\ud800``-style escapes of
    unpaired surrogates, which are not Unicode text) becomes a 400 ``APIError``."""
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise validation_error("body: JSON is nested too deeply") from None
    except (ValueError, TypeError) as e:
        detail = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
        raise validation_error(f"body: JSON decode error ({detail})") from None
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    if _SURROGATE_ESCAPE.search(raw) and _lone_surrogate(value):  # scanned only when an escape is there
        raise validation_error("body: JSON decode error (a string holds an unpaired UTF-16 surrogate escape)")
    return value


def load_msgpack(body: bytes | bytearray) -> tuple[object, int]:
    """Decode a msgpack request body to the value its JSON form would give, and the size of that JSON
    form in bytes (the body limit applies to it: msgpack is denser than JSON).

    Only what JSON can carry is accepted: maps with string keys, arrays, strings (valid UTF-8),
    integers, finite floats, booleans and nil. Binary data, extension types (timestamps included),
    non-string keys, NaN/Infinity, trailing bytes and truncated data are 400s, as invalid JSON is.
    """
    import msgpack

    try:
        value = msgpack.unpackb(bytes(body), raw=False, strict_map_key=True, timestamp=0)
    except (RecursionError, msgpack.exceptions.StackError):
        raise validation_error("body: msgpack is nested too deeply") from None
    except msgpack.ExtraData:
        raise validation_error("body: msgpack decode error (extra data after the first object)") from None
    except UnicodeDecodeError:
        raise validation_error("body: msgpack decode error (a string is not valid UTF-8)") from None
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise validation_error(f"body: msgpack decode error ({str(e) or type(e).__name__})") from None
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8"))
    except RecursionError:
        raise validation_error("body: msgpack is nested too deeply") from None
    except ValueError:
        raise validation_error("body: msgpack decode error (NaN and Infinity are not valid JSON numbers)") from None
    except (TypeError, UnicodeEncodeError):
        raise validation_error("body: msgpack decode error (binary data, extension types and non-string map keys "
                               "have no JSON equivalent)") from None
    return value, size


# --------------------------------------------------------------------------------------------
# shared cross-field rules


def _check_stop(stop: object) -> None:
    if isinstance(stop, list) and len(stop) > MAX_STOP:
        raise bad_request(f"stop: at most {MAX_STOP} stop sequences are allowed, got {len(stop)}", param="stop")


def _check_logit_bias(bias: dict[str, float] | None) -> None:
    if not bias:
        return
    for k, v in bias.items():
        if not (len(k) <= 10 and k.isascii() and k.isdigit()) or int(k) > MAX_TOKEN_ID:
            raise bad_request(
                f"logit_bias: key {k!r} is not a token id (keys must be integer token ids written as strings)",
                param="logit_bias",
            )
        if not -100 <= v <= 100:
            raise bad_request(f"logit_bias.{k}: bias must be between -100 and 100, got {v}", param="logit_bias")


# --------------------------------------------------------------------------------------------
# chat


def _all_answered(pending: dict[str, bool], at: int) -> None:
    """Every tool call of the assistant message ``at`` has its tool message."""
    missing = [t for t, done in pending.items() if not done]
    if missing:
        raise bad_request(
            f"messages.{at}.assistant.tool_calls: tool call {missing[0]!r} is not answered by a "
            f"tool message immediately following it",
            param="messages",
        )


def _check_tool_pairing(req: ChatCompletionRequest) -> None:
    """API version 2 (spec 2.3/9): tool calls answered immediately, no unknown or duplicate ids."""
    seen_ids: set[str] = set()
    pending: dict[str, bool] | None = None  # tool call id -> answered, for the last assistant turn
    pending_at = -1
    for i, m in enumerate(req.messages):
        if isinstance(m, ToolMessage):
            tid = m.tool_call_id
            if pending is None or tid not in pending:
                raise bad_request(
                    f"messages.{i}.tool.tool_call_id: {tid!r} does not match any tool call of the "
                    f"assistant message immediately before",
                    param="messages",
                )
            if pending[tid]:
                raise bad_request(
                    f"messages.{i}.tool.tool_call_id: tool call {tid!r} already has a response",
                    param="messages",
                )
            pending[tid] = True
            continue
        if pending is not None:
            _all_answered(pending, pending_at)
        pending = None
        if isinstance(m, AssistantMessage) and m.tool_calls:
            pending = {}
            pending_at = i
            for k, tc in enumerate(m.tool_calls):
                if tc.id in seen_ids:
                    raise bad_request(
                        f"messages.{i}.assistant.tool_calls.{k}.id: duplicate tool call id {tc.id!r}",
                        param="messages",
                    )
                seen_ids.add(tc.id)
                pending[tc.id] = False
    if pending is not None:
        _all_answered(pending, pending_at)


def check_chat_request(req: ChatCompletionRequest, version: int = 2) -> None:
    """Cross-field rules for a chat request (raises ``APIError``)."""
    if req.max_tokens is not None and req.max_completion_tokens is not None:
        raise bad_request(
            '"max_tokens" and "max_completion_tokens" cannot both be set; use "max_completion_tokens"',
            param="max_tokens",
        )
    _check_stop(req.stop)
    if req.top_logprobs is not None and req.logprobs is not True:
        raise bad_request('"top_logprobs" requires "logprobs" to be true', param="top_logprobs")
    if req.tools and req.response_format is not None:
        raise bad_request('"tools" is incompatible with "response_format"', param="response_format")
    for i, tool in enumerate(req.tools or ()):
        if not TOOL_NAME_RE.fullmatch(tool.function.name):
            raise bad_request(
                f"tools.{i}.function.name: {tool.function.name!r} is not a valid function name "
                f"(a-z, A-Z, 0-9, '_' and '-', 1 to 64 characters)",
                param="tools",
            )
    if isinstance(req.tool_choice, ToolChoiceObject) and req.tools:
        name = req.tool_choice.function.name
        if name not in {t.function.name for t in req.tools}:
            raise bad_request(f"tool_choice: function {name!r} is not among \"tools\"", param="tool_choice")
    _check_logit_bias(req.logit_bias)
    if req.prediction is not None:
        for field, bad in (("n", (req.n or 1) > 1), ("logprobs", bool(req.logprobs)), ("tools", bool(req.tools))):
            if bad:
                raise bad_request(f'"prediction" cannot be used with "{field}"', param="prediction")
    if version >= 2:
        if req.tool_choice is not None and not req.tools:
            raise bad_request('"tool_choice" is only allowed when "tools" are given', param="tool_choice")
        _check_tool_pairing(req)


def _from_anything(model: type, data: object) -> Any:
    if not isinstance(data, dict):
        raise validation_error("body: Input should be a valid dictionary")
    return model.model_validate(data)


def _parse(model: type, data: object, check) -> Any:
    """Validate ``data`` as ``model`` and apply ``check``; only ``APIError`` ever escapes."""
    try:
        req = _from_anything(model, data)
        check(req)
        return req
    except APIError:
        raise
    except ValidationError as e:
        raise error_from_validation(e) from None
    except RecursionError:
        raise validation_error("body: Input is nested too deeply") from None
    except Exception as e:  # never let anything else escape
        raise validation_error(f"body: Invalid request ({type(e).__name__})") from None


def parse_chat_request(data: object, *, version: int = 2) -> ChatCompletionRequest:
    """Validate a decoded JSON body as a chat request. ``version`` is the API behaviour version
    (``X-Cerebras-Version-Patch``; 2, Cerebras' default since 2026-07-21, when the header is absent):
    2 checks tool messages and ``tool_choice`` strictly, 1 does not."""
    return _parse(ChatCompletionRequest, data, lambda req: check_chat_request(req, version))


# --------------------------------------------------------------------------------------------
# text completions


def check_completion_request(req: CompletionRequest) -> None:
    """Cross-field rules for a text-completion request (raises ``APIError``)."""
    _check_stop(req.stop)
    n = req.num_choices
    if req.best_of is not None:
        if req.best_of < n:
            raise bad_request(
                f'"best_of" ({req.best_of}) must be greater than or equal to "n" ({n})', param="best_of"
            )
        if req.best_of > 1 and req.stream:
            raise bad_request('"best_of" greater than 1 cannot be used with "stream"', param="best_of")
    _check_logit_bias(req.logit_bias)


def parse_completion_request(data: object) -> CompletionRequest:
    """Validate a decoded JSON body as a text-completion request."""
    return _parse(CompletionRequest, data, check_completion_request)
