"""``chat.completions.run_tools``: call Python functions for the model until it answers.

Each function becomes a tool whose parameters are a pydantic model built from its signature (strict
schema by default, see ``_schema``). The loop: ask the model; if it calls tools, validate each call's
arguments, call the function, append the assistant turn and one ``tool`` message per call, and ask
again; stop at the first answer without tool calls. Arguments that do not validate (or an unknown tool
name) are not fatal: the error goes back to the model as the tool's result, so it can correct itself.
An exception raised by a function propagates, unless ``return_tool_errors=True`` sends it back too.

The loop is written once as a generator of steps (``("create", kwargs)`` and ``("call", (fn, kwargs))``)
and run by a blocking driver (``Cerebras``) or an awaiting one (``AsyncCerebras``, which also awaits
coroutine functions).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Generator, Iterable
from typing import Any

import pydantic

from ._exceptions import ToolLoopLimitError
from ._schema import schema_name, to_strict_json_schema

__all__ = ["FunctionTool", "ToolRun", "function_tool", "tool_steps"]


class FunctionTool:
    """A Python function offered to the model as a tool."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None, strict: bool = True) -> None:
        self.fn = fn
        self.name = schema_name(name or fn.__name__)
        doc = inspect.getdoc(fn) or ""
        self.description = description if description is not None else doc.split("\n\n", 1)[0].strip()
        self.strict = strict
        self.arguments_model = _arguments_model(fn, self.name)

    def to_param(self) -> dict[str, Any]:
        """The ``tools`` entry of the request."""
        if self.strict:
            parameters = to_strict_json_schema(self.arguments_model)
        else:
            parameters = self.arguments_model.model_json_schema()
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = parameters
        function["strict"] = self.strict
        return {"type": "function", "function": function}

    def validate(self, arguments: str) -> dict[str, Any]:
        """The keyword arguments of the call (raises ``pydantic.ValidationError``)."""
        model = self.arguments_model.model_validate_json(arguments or "{}")
        return {name: getattr(model, name) for name in type(model).model_fields}

    def __repr__(self) -> str:
        return f"FunctionTool({self.name!r})"


def _arguments_model(fn: Callable[..., Any], name: str) -> type[pydantic.BaseModel]:
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.annotation is inspect.Parameter.empty:
            raise TypeError(f"tool {name!r}: parameter {param.name!r} needs a type annotation")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (param.annotation, default)
    hints = getattr(fn, "__annotations__", {})
    if any(isinstance(v, str) for v in hints.values()):  # postponed annotations
        resolved = inspect.get_annotations(fn, eval_str=True)
        fields = {k: (resolved.get(k, t), d) for k, (t, d) in fields.items()}
    return pydantic.create_model(f"{name}_arguments", __config__=pydantic.ConfigDict(extra="forbid"), **fields)


def function_tool(fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None, strict: bool = True) -> Any:
    """``FunctionTool(fn)``; usable as a decorator, with or without arguments."""
    if fn is None:
        return lambda f: FunctionTool(f, name=name, description=description, strict=strict)
    return FunctionTool(fn, name=name, description=description, strict=strict)


@dataclasses.dataclass
class ToolRun:
    """The end of a tool loop."""

    #: the last response: the model's answer
    completion: Any
    #: the whole conversation: the messages given, every assistant turn and tool result
    messages: list[dict[str, Any]]
    #: every model response, in order
    completions: list[Any]

    @property
    def content(self) -> str | None:
        return self.completion.choices[0].message.content


def _result_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, pydantic.BaseModel):
        return result.model_dump_json()
    return json.dumps(result, default=str, ensure_ascii=False)


def _assistant_turn(message: Any) -> dict[str, Any]:
    turn: dict[str, Any] = {"role": "assistant"}
    if message.content:
        turn["content"] = message.content
    turn["tool_calls"] = [
        {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments or "{}"}}
        for c in message.tool_calls
    ]
    return turn


def tool_steps(
    tools: Iterable[FunctionTool | Callable[..., Any]],
    messages: Iterable[dict[str, Any]],
    *,
    max_turns: int,
    return_tool_errors: bool,
    create_kwargs: dict[str, Any],
) -> Generator[tuple, Any, ToolRun]:
    """The loop as steps: yields ``("create", kwargs)`` → a completion, ``("call", (fn, kwargs))`` →
    the function's result (or the exception it raised); returns the ``ToolRun``."""
    if create_kwargs.get("stream"):
        raise TypeError("run_tools does not stream: leave out `stream`")
    funcs = [t if isinstance(t, FunctionTool) else FunctionTool(t) for t in tools]
    by_name = {f.name: f for f in funcs}
    params = [f.to_param() for f in funcs]
    conversation = list(messages)
    completions = []
    for _ in range(max_turns):
        completion = yield ("create", {**create_kwargs, "messages": list(conversation), "tools": params})
        completions.append(completion)
        message = completion.choices[0].message
        if not message.tool_calls:
            return ToolRun(completion=completion, messages=conversation, completions=completions)
        conversation.append(_assistant_turn(message))
        for call in message.tool_calls:
            tool = by_name.get(call.function.name or "")
            if tool is None:
                content = json.dumps({"error": f"there is no tool named {call.function.name!r}"})
            else:
                try:
                    kwargs = tool.validate(call.function.arguments or "{}")
                except pydantic.ValidationError as err:
                    content = json.dumps({"error": f"invalid arguments: {err}"}, ensure_ascii=False)
                else:
                    result = yield ("call", (tool.fn, kwargs))
                    if isinstance(result, Exception):
                        if not return_tool_errors:
                            raise result
                        result = {"error": f"{type(result).__name__}: {result}"}
                    content = _result_text(result)
            conversation.append({"role": "tool", "tool_call_id": call.id, "content": content})
    raise ToolLoopLimitError(f"the model still called tools after {max_turns} turns", messages=conversation)


def run_tool_steps(steps: Generator[tuple, Any, ToolRun], create: Callable[..., Any]) -> ToolRun:
    """Carry out the loop's steps, blocking."""
    outcome: Any = None
    try:
        while True:
            op, arg = steps.send(outcome)
            if op == "create":
                outcome = create(**arg)
                continue
            fn, kwargs = arg
            try:
                outcome = fn(**kwargs)
            except Exception as err:
                outcome = err
    except StopIteration as done:
        return done.value


async def arun_tool_steps(steps: Generator[tuple, Any, ToolRun], create: Callable[..., Any]) -> ToolRun:
    """Carry out the loop's steps, awaiting the model and any coroutine a tool returns."""
    outcome: Any = None
    try:
        while True:
            op, arg = steps.send(outcome)
            if op == "create":
                outcome = await create(**arg)
                continue
            fn, kwargs = arg
            try:
                outcome = fn(**kwargs)
                if inspect.isawaitable(outcome):
                    outcome = await outcome
            except Exception as err:
                outcome = err
    except StopIteration as done:
        return done.value
