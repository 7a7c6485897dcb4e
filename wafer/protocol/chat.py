"""Chat-completion request models (spec 2.1-2.5).

Every object has ``extra="forbid"`` (the OAS declares ``additionalProperties: false``
everywhere, and Cerebras rejects unknown keys).  Validation is *strict*: JSON
types must match exactly (``"1"`` is not a number, ``1`` is not a boolean,
``2.0`` is not an integer); integers are accepted where numbers are expected.
Optional fields default to ``None`` which means "not sent" (an explicit JSON
``null`` is treated the same way, as the OAS allows ``null`` for every optional
field).

Unions that Cerebras models with ``oneOf`` are written with a callable
discriminator so that only the matching branch is validated and errors point at
one place.  Branch tags that start with ``~`` are internal and are removed from
error paths by ``wafer.protocol.parse``; message tags (the role) are kept, since
Cerebras puts the role in its paths (``messages.1.assistant.reasoning_content``).

Use ``wafer.protocol.parse.parse_chat_request`` to build a request from a JSON
body: it also applies the cross-field rules and turns every problem into an
``APIError``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

__all__ = [
    "WireModel",
    "TextPart",
    "ImageURL",
    "ImageURLPart",
    "ImagePart",
    "ContentPart",
    "TextOnlyPart",
    "Content",
    "TextContent",
    "Stop",
    "Penalty",
    "ToolChoice",
    "SystemMessage",
    "DeveloperMessage",
    "UserMessage",
    "AssistantMessage",
    "ToolMessage",
    "Message",
    "ToolCallFunction",
    "ToolCall",
    "FunctionDefinition",
    "Tool",
    "ToolChoiceFunction",
    "ToolChoiceObject",
    "ResponseFormatText",
    "ResponseFormatJsonObject",
    "JsonSchemaSpec",
    "ResponseFormatJsonSchema",
    "ResponseFormat",
    "StreamOptions",
    "Prediction",
    "ChatCompletionRequest",
    "MAX_N",
    "MAX_STOP",
    "content_text",
    "stop_to_list",
]

#: Upper bound for ``n`` (and ``best_of``-style fan-out). Cerebras documents no bound; 128 keeps one
#: request from monopolising the engine.
MAX_N = 128
#: Maximum number of stop sequences (OAS ``maxItems: 4``).
MAX_STOP = 4

_CONFIG = ConfigDict(
    extra="forbid",
    strict=True,
    allow_inf_nan=False,
    protected_namespaces=(),
)


class WireModel(BaseModel):
    """Base for every request object: unknown keys rejected, exact JSON types."""

    model_config = _CONFIG


# --------------------------------------------------------------------------------------------
# union helpers


def _str_or_list(v: Any) -> str | None:
    if isinstance(v, str):
        return "~str"
    if isinstance(v, list):
        return "~list"
    return None


def _str_or_object(v: Any) -> str | None:
    if isinstance(v, str):
        return "~str"
    if isinstance(v, (dict, BaseModel)):  # a model instance when serializing
        return "~object"
    return None


def _type_tag(*allowed: str):
    def tag(v: Any) -> str | None:
        if isinstance(v, dict):
            t = v.get("type")
        elif isinstance(v, BaseModel):  # serializing
            t = getattr(v, "type", None)
        else:
            return None
        if isinstance(t, str) and t in allowed:
            return "~" + t
        return None

    return tag


# --------------------------------------------------------------------------------------------
# content parts


class TextPart(WireModel):
    type: Literal["text"]
    text: str


class ImageURL(WireModel):
    url: str
    detail: Optional[str] = None


class ImageURLPart(WireModel):
    type: Literal["image_url"]
    image_url: ImageURL


class ImagePart(WireModel):
    type: Literal["image"]
    image: str


ContentPart = Annotated[
    Union[
        Annotated[TextPart, Tag("~text")],
        Annotated[ImageURLPart, Tag("~image_url")],
        Annotated[ImagePart, Tag("~image")],
    ],
    Discriminator(
        _type_tag("text", "image_url", "image"),
        custom_error_type="content_part",
        custom_error_message="Input should be a content part with type 'text', 'image_url' or 'image'",
    ),
]

TextOnlyPart = Annotated[
    Union[Annotated[TextPart, Tag("~text")]],
    Discriminator(
        _type_tag("text"),
        custom_error_type="content_part",
        custom_error_message="Input should be a content part with type 'text'",
    ),
]

#: content of system / developer / user messages
Content = Annotated[
    Union[Annotated[str, Tag("~str")], Annotated[list[ContentPart], Tag("~list")]],
    Discriminator(
        _str_or_list,
        custom_error_type="content_type",
        custom_error_message="Input should be a valid string or an array of content parts",
    ),
]

#: content of assistant / tool messages, assistant reasoning, prediction content
TextContent = Annotated[
    Union[Annotated[str, Tag("~str")], Annotated[list[TextOnlyPart], Tag("~list")]],
    Discriminator(
        _str_or_list,
        custom_error_type="content_type",
        custom_error_message="Input should be a valid string or an array of text parts",
    ),
]


def content_text(content: Any, sep: str = "\n") -> str:
    """Plain text of a message content: the string itself, or the text parts joined by ``sep``.

    Image parts are skipped; ``None`` gives ``""``.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return sep.join(p.text for p in content if isinstance(p, TextPart))


# --------------------------------------------------------------------------------------------
# messages


class ToolCallFunction(WireModel):
    name: str
    arguments: str


class ToolCall(WireModel):
    id: str
    type: Literal["function"]
    function: ToolCallFunction
    index: Optional[int] = None


class SystemMessage(WireModel):
    role: Literal["system"]
    content: Content
    name: Optional[str] = None

    @property
    def text(self) -> str:
        return content_text(self.content)


class DeveloperMessage(WireModel):
    """Developer message; for wafer functionally the same as a system message."""

    role: Literal["developer"]
    content: Content
    name: Optional[str] = None

    @property
    def text(self) -> str:
        return content_text(self.content)


class UserMessage(WireModel):
    role: Literal["user"]
    content: Content
    name: Optional[str] = None

    @property
    def text(self) -> str:
        return content_text(self.content)


class AssistantMessage(WireModel):
    """A previous assistant turn. Reasoning comes back as ``reasoning`` (``reasoning_content`` is rejected)."""

    role: Literal["assistant"]
    content: Optional[TextContent] = None
    reasoning: Optional[TextContent] = None
    tool_calls: Optional[list[ToolCall]] = None
    name: Optional[str] = None

    @property
    def text(self) -> str:
        return content_text(self.content)

    @property
    def reasoning_text(self) -> str:
        return content_text(self.reasoning)


class ToolMessage(WireModel):
    role: Literal["tool"]
    content: TextContent
    tool_call_id: str
    name: Optional[str] = None

    @property
    def text(self) -> str:
        return content_text(self.content)


Message = Annotated[
    Union[SystemMessage, DeveloperMessage, UserMessage, AssistantMessage, ToolMessage],
    Field(discriminator="role"),
]


# --------------------------------------------------------------------------------------------
# tools


class FunctionDefinition(WireModel):
    name: str
    description: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None
    #: OAS: bool, default false. ``null`` is accepted and means false.
    strict: Optional[bool] = None


class Tool(WireModel):
    #: a free string in the OAS; only ``"function"`` has a meaning
    type: str
    function: FunctionDefinition


class ToolChoiceFunction(WireModel):
    name: str


class ToolChoiceObject(WireModel):
    type: str
    function: ToolChoiceFunction


ToolChoice = Annotated[
    Union[
        Annotated[Literal["none", "auto", "required"], Tag("~str")],
        Annotated[ToolChoiceObject, Tag("~object")],
    ],
    Discriminator(
        _str_or_object,
        custom_error_type="tool_choice_type",
        custom_error_message="Input should be 'none', 'auto', 'required' or a tool choice object",
    ),
]


# --------------------------------------------------------------------------------------------
# response_format


class ResponseFormatText(WireModel):
    type: Literal["text"]


class ResponseFormatJsonObject(WireModel):
    type: Literal["json_object"]


class JsonSchemaSpec(WireModel):
    name: str
    description: Optional[str] = None
    #: the JSON schema itself (wire key ``schema``; renamed because BaseModel.schema exists)
    schema_: Optional[dict[str, Any]] = Field(default=None, alias="schema")
    strict: Optional[bool] = None


class ResponseFormatJsonSchema(WireModel):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[
    Union[
        Annotated[ResponseFormatText, Tag("~text")],
        Annotated[ResponseFormatJsonObject, Tag("~json_object")],
        Annotated[ResponseFormatJsonSchema, Tag("~json_schema")],
    ],
    Discriminator(
        _type_tag("text", "json_object", "json_schema"),
        custom_error_type="response_format_type",
        custom_error_message="Input should be an object with type 'text', 'json_object' or 'json_schema'",
    ),
]


# --------------------------------------------------------------------------------------------
# misc objects


class StreamOptions(WireModel):
    include_usage: Optional[bool] = None


class Prediction(WireModel):
    type: Literal["content"]
    content: TextContent

    @property
    def text(self) -> str:
        return content_text(self.content, sep="")


Stop = Annotated[
    Union[Annotated[str, Tag("~str")], Annotated[list[str], Tag("~list")]],
    Discriminator(
        _str_or_list,
        custom_error_type="stop_type",
        custom_error_message="Input should be a valid string or an array of strings",
    ),
]

Penalty = Annotated[float, Field(ge=-2, le=2)]


def stop_to_list(stop: str | list[str] | None) -> list[str]:
    """``stop`` as a list, with empty strings dropped (an empty stop string would end every reply at once)."""
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop] if stop else []
    return [s for s in stop if s]


# --------------------------------------------------------------------------------------------
# the request


class SamplingAccessors:
    """Accessors shared by chat and text-completion requests (both have these fields)."""

    stop: "Stop | None"
    n: int | None
    stream: bool | None
    temperature: float | None
    top_p: float | None
    logit_bias: dict[str, float] | None

    @property
    def stop_list(self) -> list[str]:
        return stop_to_list(self.stop)

    @property
    def num_choices(self) -> int:
        """Choices returned (per prompt for text completions): ``n`` or 1."""
        return 1 if self.n is None else self.n

    @property
    def is_stream(self) -> bool:
        return bool(self.stream)

    @property
    def temperature_or_default(self) -> float:
        return 1.0 if self.temperature is None else self.temperature

    @property
    def top_p_or_default(self) -> float:
        return 1.0 if self.top_p is None else self.top_p

    @property
    def logit_bias_ids(self) -> dict[int, float]:
        """``logit_bias`` with integer token ids (keys are checked by the parser)."""
        return {int(k): v for k, v in (self.logit_bias or {}).items()}


class ChatCompletionRequest(SamplingAccessors, WireModel):
    """``POST /v1/chat/completions`` body (spec 2.1). Field order follows the SDK's params."""

    model: str
    messages: list[Message] = Field(min_length=1)
    clear_thinking: Optional[bool] = None
    disable_reasoning: Optional[bool] = None
    frequency_penalty: Optional[Penalty] = None
    logit_bias: Optional[dict[str, float]] = None
    logprobs: Optional[bool] = None
    max_completion_tokens: Optional[Annotated[int, Field(ge=-1)]] = None
    max_tokens: Optional[Annotated[int, Field(ge=-1)]] = None
    min_completion_tokens: Optional[Annotated[int, Field(ge=-1)]] = None
    min_tokens: Optional[Annotated[int, Field(ge=-1)]] = None
    model_parameters: Optional[dict[str, Any]] = None
    n: Optional[Annotated[int, Field(ge=1, le=MAX_N)]] = None
    parallel_tool_calls: Optional[bool] = None
    prediction: Optional[Prediction] = None
    presence_penalty: Optional[Penalty] = None
    prompt_cache_key: Optional[Annotated[str, Field(max_length=1024)]] = None
    reasoning_effort: Optional[Literal["none", "low", "medium", "high"]] = None
    reasoning_format: Optional[Literal["none", "parsed", "text_parsed", "raw", "hidden"]] = None
    response_format: Optional[ResponseFormat] = None
    seed: Optional[Annotated[int, Field(ge=-(2**63), le=2**64 - 1)]] = None
    service_tier: Optional[Literal["auto", "default", "flex", "priority"]] = None
    stop: Optional[Stop] = None
    stream: Optional[bool] = None
    stream_options: Optional[StreamOptions] = None
    temperature: Optional[Annotated[float, Field(ge=0, le=2)]] = None
    tool_choice: Optional[ToolChoice] = None
    tools: Optional[list[Tool]] = None
    top_logprobs: Optional[Annotated[int, Field(ge=0, le=20)]] = None
    top_p: Optional[Annotated[float, Field(ge=0, le=1)]] = None
    user: Optional[str] = None

    # ---- convenience accessors for the engine layer -----------------------------------------

    @property
    def max_new_tokens(self) -> int | None:
        """``max_completion_tokens`` or else ``max_tokens``; ``None`` when unset or ``-1`` (= model maximum)."""
        v = self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens
        return None if v is None or v == -1 else v

    @property
    def min_new_tokens(self) -> int:
        """``min_completion_tokens`` or else ``min_tokens``; ``0`` when unset (model decides), ``-1`` = max sequence length."""
        v = self.min_completion_tokens if self.min_completion_tokens is not None else self.min_tokens
        return 0 if v is None else v






    @property
    def function_tools(self) -> list[FunctionDefinition]:
        """The function definitions of tools whose ``type`` is ``"function"`` (others have no meaning)."""
        return [t.function for t in self.tools or () if t.type == "function"]

    @property
    def effective_tool_choice(self) -> str | ToolChoiceObject:
        """``tool_choice`` with the documented default: ``"none"`` without tools, ``"auto"`` with tools."""
        if self.tool_choice is not None:
            return self.tool_choice
        return "auto" if self.tools else "none"

    @property
    def parallel_tool_calls_or_default(self) -> bool:
        return True if self.parallel_tool_calls is None else self.parallel_tool_calls

    @property
    def wants_logprobs(self) -> bool:
        return bool(self.logprobs)

    @property
    def num_top_logprobs(self) -> int:
        return (self.top_logprobs or 0) if self.logprobs else 0

