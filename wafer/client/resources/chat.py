"""``client.chat.completions``: ``POST /v1/chat/completions``, plus ``parse`` and ``run_tools``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from functools import cached_property, lru_cache, partial
from typing import Any, Literal

from .._parsing import parse_chat_completion, response_format_param
from .._tools import FunctionTool, ToolRun, arun_tool_steps, run_tool_steps, tool_steps
from .._types import NOT_GIVEN, Body, Headers, NotGiven, Omit, Query, Timeout, omit
from ..types.chat.chat_completion import ChatCompletion
from ._base import APIResource, create_options

__all__ = ["AsyncChat", "AsyncChatCompletions", "Chat", "ChatCompletions"]


class ChatCompletions(APIResource):
    _api_methods = ("create", "parse")

    def create(
        self,
        *,
        messages: Iterable[dict[str, Any]],
        model: str,
        clear_thinking: bool | None | Omit = omit,
        disable_reasoning: bool | None | Omit = omit,
        frequency_penalty: float | None | Omit = omit,
        logit_bias: dict[str, float] | None | Omit = omit,
        logprobs: bool | None | Omit = omit,
        max_completion_tokens: int | None | Omit = omit,
        max_tokens: int | None | Omit = omit,
        min_completion_tokens: int | None | Omit = omit,
        min_tokens: int | None | Omit = omit,
        model_parameters: dict[str, object] | None | Omit = omit,
        n: int | None | Omit = omit,
        parallel_tool_calls: bool | None | Omit = omit,
        prediction: dict[str, Any] | None | Omit = omit,
        presence_penalty: float | None | Omit = omit,
        prompt_cache_key: str | None | Omit = omit,
        reasoning_effort: Literal["none", "low", "medium", "high"] | None | Omit = omit,
        reasoning_format: Literal["none", "parsed", "text_parsed", "raw", "hidden"] | Omit = omit,
        response_format: dict[str, Any] | None | Omit = omit,
        seed: int | None | Omit = omit,
        service_tier: Literal["auto", "default", "flex", "priority"] | None | Omit = omit,
        stop: str | list[str] | None | Omit = omit,
        stream: bool | None | Omit = omit,
        stream_options: dict[str, Any] | None | Omit = omit,
        temperature: float | None | Omit = omit,
        tool_choice: str | dict[str, Any] | None | Omit = omit,
        tools: Iterable[dict[str, Any]] | None | Omit = omit,
        top_logprobs: int | None | Omit = omit,
        top_p: float | None | Omit = omit,
        user: str | None | Omit = omit,
        cf_ray: str | Omit = omit,
        x_amz_cf_id: str | Omit = omit,
        x_delay_time: float | Omit = omit,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
    ) -> Any:
        """A ``ChatCompletionResponse``, or a ``Stream`` of ``ChatChunkResponse`` with ``stream=True``."""
        return self._send(create_options("/v1/chat/completions", locals()), stream)

    def _send(self, options: Any, stream: Any) -> Any:
        return self._client.request(ChatCompletion, options, stream=bool(stream), stream_cls=self._client._default_stream_cls)

    def parse(self, *, messages: Iterable[dict[str, Any]], model: str, response_format: Any = omit, **kwargs: Any) -> Any:
        """``create()`` with ``response_format`` given as a type (a pydantic model): sends its strict
        ``json_schema`` and returns a ``ParsedChatCompletion`` whose ``choices[i].message.parsed``
        (and ``.parsed``, the first choice's) is the validated object.

        Tools made with ``pydantic_function_tool`` get ``tool_calls[j].parsed_arguments``. Raises
        ``LengthFinishReasonError`` when the answer was cut by the token limit and
        ``ContentParseError`` when it does not validate.
        """
        if kwargs.get("stream"):
            raise TypeError("parse() does not stream: use create(stream=True) and parse the text yourself")
        tools = kwargs.get("tools")
        params = _create_params({**kwargs, "messages": messages, "model": model})
        params["response_format"] = response_format_param(response_format)
        post_parser = partial(parse_chat_completion, response_format=response_format, tools=tools if isinstance(tools, list) else None)
        return self._send(create_options("/v1/chat/completions", params, post_parser=post_parser), False)

    def run_tools(
        self,
        *,
        messages: Iterable[dict[str, Any]],
        model: str,
        tools: Iterable[FunctionTool | Callable[..., Any]],
        max_turns: int = 10,
        return_tool_errors: bool = False,
        **kwargs: Any,
    ) -> ToolRun:
        """Ask the model, call the Python functions it asks for (arguments validated), repeat until it
        answers; returns a ``ToolRun`` (``.completion``, ``.content``, ``.messages``). See ``_tools``."""
        steps = tool_steps(
            tools, messages, max_turns=max_turns, return_tool_errors=return_tool_errors, create_kwargs={**kwargs, "model": model}
        )
        return self._run_tool_steps(steps, self.create)

    _run_tool_steps = staticmethod(run_tool_steps)


class AsyncChatCompletions(ChatCompletions):
    """The same methods, returning awaitables: ``create`` and ``parse`` go through the async client;
    ``run_tools`` awaits each step (``async def`` tools included)."""

    _run_tool_steps = staticmethod(arun_tool_steps)


@lru_cache(maxsize=1)
def _create_signature() -> inspect.Signature:
    return inspect.signature(ChatCompletions.create)


def _create_params(given: dict[str, Any]) -> dict[str, Any]:
    """The arguments ``create()`` would see, in its signature order (that is the body's key order)."""
    parameters = _create_signature().parameters
    unknown = sorted(set(given) - set(parameters))
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {', '.join(unknown)}")
    return {name: given.get(name, p.default) for name, p in parameters.items() if name != "self"}


class Chat(APIResource):
    @cached_property
    def completions(self) -> ChatCompletions:
        return ChatCompletions(self._client)


class AsyncChat(APIResource):
    @cached_property
    def completions(self) -> AsyncChatCompletions:
        return AsyncChatCompletions(self._client)
