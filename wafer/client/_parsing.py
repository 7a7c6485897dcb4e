"""``chat.completions.parse``: the request's ``response_format`` from a type, and the answer parsed back."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pydantic

from ._exceptions import ContentParseError, LengthFinishReasonError
from ._models import construct
from ._schema import PydanticFunctionTool, type_to_response_format
from .types.chat.chat_completion import ChatCompletionResponse
from .types.chat.parsed import ParsedChatCompletion

__all__ = ["parse_chat_completion", "response_format_param"]


def _is_type(response_format: Any) -> bool:
    return isinstance(response_format, type) or (
        not isinstance(response_format, dict) and hasattr(response_format, "__origin__")
    )


def response_format_param(response_format: Any) -> Any:
    """A type becomes a strict ``json_schema``; a dict (or omit/None) is sent as given."""
    return type_to_response_format(response_format) if _is_type(response_format) else response_format


def _validate(tp: Any, text: str) -> Any:
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        return tp.model_validate_json(text)
    return pydantic.TypeAdapter(tp).validate_json(text)


def _parse_content(completion: Any, choice: Any, tp: Any) -> Any:
    content = choice.message.content
    if choice.finish_reason == "length":
        raise LengthFinishReasonError(
            "the answer was cut by the token limit (finish_reason 'length'), so it cannot be parsed",
            completion=completion,
            content=content,
        )
    if content is None or tp is None:
        return None
    try:
        return _validate(tp, content)
    except (pydantic.ValidationError, json.JSONDecodeError, ValueError) as err:
        raise ContentParseError(
            f"choice {choice.index}: the content does not match {getattr(tp, '__name__', tp)}: {err}",
            completion=completion,
            content=content,
        ) from err


def _parse_arguments(completion: Any, call: Any, tools: dict[str, Any]) -> Any:
    model = tools.get(call.function.name or "")
    if model is None:
        return None
    try:
        return _validate(model, call.function.arguments or "{}")
    except (pydantic.ValidationError, ValueError) as err:
        raise ContentParseError(
            f"tool call {call.id}: the arguments do not match {model.__name__}: {err}",
            completion=completion,
            content=call.function.arguments,
        ) from err


def parse_chat_completion(completion: Any, response_format: Any, tools: Iterable[Any] | None) -> Any:
    """``ParsedChatCompletion``: each message's ``parsed`` (and tool calls' ``parsed_arguments``) filled.

    Anything that is not a chat completion (an error event on HTTP 200) is returned unchanged.
    """
    if not isinstance(completion, ChatCompletionResponse):
        return completion
    tp = response_format if _is_type(response_format) else None
    by_name = {t["function"]["name"]: t.model for t in tools or () if isinstance(t, PydanticFunctionTool)}
    data = completion.model_dump(exclude_unset=True, by_alias=True)
    for raw, choice in zip(data["choices"], completion.choices):
        raw["message"]["parsed"] = _parse_content(completion, choice, tp)
        for raw_call, call in zip(raw["message"].get("tool_calls") or [], choice.message.tool_calls or []):
            raw_call["parsed_arguments"] = _parse_arguments(completion, call, by_name)
    parsed = construct(ParsedChatCompletion, data)
    parsed._rate_limits = completion._rate_limits
    return parsed
