"""``client.chat.completions``: ``POST /v1/chat/completions``, plus ``parse`` and ``run_tools``."""

from __future__ import annotations

import inspect
from functools import cached_property, lru_cache, partial
from typing import Any, Callable, Dict, Iterable, List, Literal, Optional, Union

from .._parsing import parse_chat_completion, response_format_param
from .._tools import FunctionTool, ToolRun, tool_steps
from .._types import NOT_GIVEN, Body, Headers, NotGiven, Omit, Query, Timeout, omit
from ..types.chat.chat_completion import ChatCompletion
from ._base import APIResource, create_options

__all__ = ["Chat", "AsyncChat", "ChatCompletions", "AsyncChatCompletions"]


class ChatCompletions(APIResource):
    _api_methods = ("create", "parse")

    def create(
        self,
        *,
        messages: Iterable[Dict[str, Any]],
        model: str,
        clear_thinking: Optional[bool] | Omit = omit,
        disable_reasoning: Optional[bool] | Omit = omit,
        frequency_penalty: Optional[float] | Omit = omit,
        logit_bias: Optional[Dict[str, float]] | Omit = omit,
        logprobs: Optional[bool] | Omit = omit,
        max_completion_tokens: Optional[int] | Omit = omit,
        max_tokens: Optional[int] | Omit = omit,
        min_completion_tokens: Optional[int] | Omit = omit,
        min_tokens: Optional[int] | Omit = omit,
        model_parameters: Optional[Dict[str, object]] | Omit = omit,
        n: Optional[int] | Omit = omit,
        parallel_tool_calls: Optional[bool] | Omit = omit,
        prediction: Optional[Dict[str, Any]] | Omit = omit,
        presence_penalty: Optional[float] | Omit = omit,
        prompt_cache_key: Optional[str] | Omit = omit,
        reasoning_effort: Optional[Literal["none", "low", "medium", "high"]] | Omit = omit,
        reasoning_format: Literal["none", "parsed", "text_parsed", "raw", "hidden"] | Omit = omit,
        response_format: Optional[Dict[str, Any]] | Omit = omit,
        seed: Optional[int] | Omit = omit,
        service_tier: Optional[Literal["auto", "default", "flex", "priority"]] | Omit = omit,
        stop: Union[str, List[str], None] | Omit = omit,
        stream: Optional[bool] | Omit = omit,
        stream_options: Optional[Dict[str, Any]] | Omit = omit,
        temperature: Optional[float] | Omit = omit,
        tool_choice: Union[str, Dict[str, Any], None] | Omit = omit,
        tools: Optional[Iterable[Dict[str, Any]]] | Omit = omit,
        top_logprobs: Optional[int] | Omit = omit,
        top_p: Optional[float] | Omit = omit,
        user: Optional[str] | Omit = omit,
        cf_ray: str | Omit = omit,
        x_amz_cf_id: str | Omit = omit,
        x_delay_time: float | Omit = omit,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
        timeout: Union[Timeout, NotGiven] = NOT_GIVEN,
    ) -> Any:
        """A ``ChatCompletionResponse``, or a ``Stream`` of ``ChatChunkResponse`` with ``stream=True``."""
        return self._send(create_options("/v1/chat/completions", locals()), stream)

    def _send(self, options: Any, stream: Any) -> Any:
        return self._client.request(ChatCompletion, options, stream=bool(stream), stream_cls=self._client._default_stream_cls)

    def parse(self, *, messages: Iterable[Dict[str, Any]], model: str, response_format: Any = omit, **kwargs: Any) -> Any:
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
        messages: Iterable[Dict[str, Any]],
        model: str,
        tools: Iterable[Union[FunctionTool, Callable[..., Any]]],
        max_turns: int = 10,
        return_tool_errors: bool = False,
        **kwargs: Any,
    ) -> ToolRun:
        """Ask the model, call the Python functions it asks for (arguments validated), repeat until it
        answers; returns a ``ToolRun`` (``.completion``, ``.content``, ``.messages``). See ``_tools``."""
        steps = tool_steps(
            tools,
            messages,
            max_turns=max_turns,
            return_tool_errors=return_tool_errors,
            create_kwargs={**kwargs, "model": model},
        )
        outcome: Any = None
        try:
            while True:
                op, arg = steps.send(outcome)
                if op == "create":
                    outcome = self.create(**arg)
                else:
                    fn, fn_kwargs = arg
                    try:
                        outcome = fn(**fn_kwargs)
                    except Exception as err:
                        outcome = err
        except StopIteration as done:
            return done.value


class AsyncChatCompletions(ChatCompletions):
    """``create`` and ``parse`` are shared (they return awaitables here); ``run_tools`` awaits."""

    async def run_tools(  # type: ignore[override]
        self,
        *,
        messages: Iterable[Dict[str, Any]],
        model: str,
        tools: Iterable[Union[FunctionTool, Callable[..., Any]]],
        max_turns: int = 10,
        return_tool_errors: bool = False,
        **kwargs: Any,
    ) -> ToolRun:
        steps = tool_steps(
            tools,
            messages,
            max_turns=max_turns,
            return_tool_errors=return_tool_errors,
            create_kwargs={**kwargs, "model": model},
        )
        outcome: Any = None
        try:
            while True:
                op, arg = steps.send(outcome)
                if op == "create":
                    outcome = await self.create(**arg)
                else:
                    fn, fn_kwargs = arg
                    try:
                        outcome = fn(**fn_kwargs)
                        if inspect.isawaitable(outcome):
                            outcome = await outcome
                    except Exception as err:
                        outcome = err
        except StopIteration as done:
            return done.value


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
