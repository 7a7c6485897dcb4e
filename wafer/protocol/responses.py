"""Response, chunk, usage, time_info, logprobs and models-list objects (spec 3, 7.1).

Field order follows the wire examples of the spec (3.1 non-stream, 3.2/3.3 chunks,
3.5 text completion).  Keys whose value is ``None`` are **omitted** on the wire
(no ``finish_reason`` key in content deltas, no ``content`` next to tool calls,
no ``logprobs`` unless asked for): always serialize with :func:`dump` /
:func:`sse`, which use ``exclude_none``.  No field of these objects carries a
meaningful ``null``; the inner fields of a mid-stream ``ErrorChunk`` default to
``""`` as in the OAS, so they never disappear.

Validation on construction is the lax pydantic default (these objects are built
by our own code); the only coercion of note is that a non-finite ``logprob``
(``-inf``/``nan``, which JSON cannot carry) becomes ``-9999.0``.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .errors import APIError

__all__ = [
    "FinishReason",
    "PromptTokensDetails",
    "CompletionTokensDetails",
    "Usage",
    "TimeInfo",
    "TopLogprob",
    "LogprobContent",
    "ChatLogprobs",
    "FunctionCall",
    "ToolCall",
    "Message",
    "Choice",
    "Delta",
    "ChunkChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "TextLogprobs",
    "TextChoice",
    "TextCompletion",
    "Model",
    "ModelList",
    "ErrorDetail",
    "ErrorChunk",
    "dump",
    "sse",
    "DONE",
    "new_chat_id",
    "new_completion_id",
    "new_tool_call_id",
    "system_fingerprint",
    "MIN_LOGPROB",
]

FinishReason = Literal["stop", "length", "content_filter", "tool_calls"]

#: what a non-finite log-probability is written as (JSON has no -Infinity)
MIN_LOGPROB = -9999.0


def _finite_logprob(v: float) -> float:
    return v if math.isfinite(v) else MIN_LOGPROB


Logprob = Annotated[float, AfterValidator(_finite_logprob)]


class _Out(BaseModel):
    model_config = ConfigDict(protected_namespaces=(), extra="forbid")


# --------------------------------------------------------------------------------------------
# usage / timing


class PromptTokensDetails(_Out):
    cached_tokens: int = 0


class CompletionTokensDetails(_Out):
    accepted_prediction_tokens: Optional[int] = None
    rejected_prediction_tokens: Optional[int] = None
    reasoning_tokens: Optional[int] = None


class Usage(_Out):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: Optional[PromptTokensDetails] = None
    completion_tokens_details: Optional[CompletionTokensDetails] = None
    image_tokens: Optional[int] = None

    @classmethod
    def make(
        cls,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        reasoning_tokens: int | None = None,
        accepted_prediction_tokens: int | None = None,
        rejected_prediction_tokens: int | None = None,
    ) -> "Usage":
        """Usage as Cerebras sends it: ``prompt_tokens_details.cached_tokens`` always present,
        ``completion_tokens_details`` only when one of its counters is given."""
        details = None
        if reasoning_tokens is not None or accepted_prediction_tokens is not None or rejected_prediction_tokens is not None:
            details = CompletionTokensDetails(
                accepted_prediction_tokens=accepted_prediction_tokens,
                rejected_prediction_tokens=rejected_prediction_tokens,
                reasoning_tokens=reasoning_tokens,
            )
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached_tokens),
            completion_tokens_details=details,
        )


class TimeInfo(_Out):
    """Seconds. ``created`` is a float Unix time (as on the wire)."""

    queue_time: Optional[float] = None
    prompt_time: Optional[float] = None
    completion_time: Optional[float] = None
    total_time: Optional[float] = None
    created: Optional[float] = None


# --------------------------------------------------------------------------------------------
# logprobs (chat)


class TopLogprob(_Out):
    token: str
    logprob: Logprob
    bytes: Optional[list[int]] = None


class LogprobContent(_Out):
    token: str
    logprob: Logprob
    bytes: Optional[list[int]] = None
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChatLogprobs(_Out):
    content: Optional[list[LogprobContent]] = None
    refusal: Optional[list[LogprobContent]] = None


# --------------------------------------------------------------------------------------------
# chat completion


class FunctionCall(_Out):
    name: Optional[str] = None
    arguments: Optional[str] = None


class ToolCall(_Out):
    """Wire order: ``function, type, id, index`` (spec 3.3)."""

    function: FunctionCall
    type: Literal["function"] = "function"
    id: Optional[str] = None
    index: Optional[int] = None


class Message(_Out):
    content: Optional[str] = None
    reasoning: Optional[str] = None
    role: Literal["assistant"] = "assistant"
    tool_calls: Optional[list[ToolCall]] = None


class Choice(_Out):
    finish_reason: Optional[FinishReason] = None
    index: int = 0
    message: Message
    logprobs: Optional[ChatLogprobs] = None
    reasoning_logprobs: Optional[ChatLogprobs] = None


class ChatCompletion(_Out):
    id: str
    choices: list[Choice]
    created: int
    model: str
    system_fingerprint: str
    object: Literal["chat.completion"] = "chat.completion"
    service_tier: Optional[str] = None
    #: the tier that served a ``service_tier: "auto"`` request (Cerebras' docs)
    service_tier_used: Optional[str] = None
    usage: Optional[Usage] = None
    time_info: Optional[TimeInfo] = None


# --------------------------------------------------------------------------------------------
# chat chunks


class Delta(_Out):
    content: Optional[str] = None
    reasoning: Optional[str] = None
    role: Optional[Literal["assistant"]] = None
    tool_calls: Optional[list[ToolCall]] = None
    #: deprecated in the SDK; only for ``return_raw_tokens``-style output
    tokens: Optional[list[int]] = None


class ChunkChoice(_Out):
    delta: Delta = Field(default_factory=Delta)
    finish_reason: Optional[FinishReason] = None
    index: int = 0
    logprobs: Optional[ChatLogprobs] = None
    reasoning_logprobs: Optional[ChatLogprobs] = None


class ChatCompletionChunk(_Out):
    id: str
    choices: list[ChunkChoice] = Field(default_factory=list)
    created: int
    model: str
    system_fingerprint: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    service_tier: Optional[str] = None
    #: the tier that served a ``service_tier: "auto"`` request (Cerebras' docs)
    service_tier_used: Optional[str] = None
    usage: Optional[Usage] = None
    time_info: Optional[TimeInfo] = None


# --------------------------------------------------------------------------------------------
# text completion


class TextLogprobs(_Out):
    """OpenAI legacy shape. ``token_logprobs``/``top_logprobs`` entries may be ``None`` for the first
    echoed prompt token (as OpenAI sends them); avoid that if strict SDK validation matters."""

    text_offset: Optional[list[int]] = None
    token_logprobs: Optional[list[Optional[Logprob]]] = None
    tokens: Optional[list[str]] = None
    top_logprobs: Optional[list[Optional[dict[str, Logprob]]]] = None


class TextChoice(_Out):
    index: int = 0
    finish_reason: Optional[FinishReason] = None
    logprobs: Optional[TextLogprobs] = None
    text: str = ""
    tokens: Optional[list[int]] = None


class TextCompletion(_Out):
    """Used both for the whole response and for stream chunks (the SDK parses both as ``CompletionResponse``)."""

    id: str
    choices: list[TextChoice]
    created: int
    model: str
    object: Literal["text_completion"] = "text_completion"
    system_fingerprint: str
    time_info: Optional[TimeInfo] = None
    usage: Optional[Usage] = None


# --------------------------------------------------------------------------------------------
# models


class Model(_Out):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "wafer"


class ModelList(_Out):
    object: Literal["list"] = "list"
    data: list[Model] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------
# mid-stream error


class ErrorDetail(_Out):
    id: str = ""
    code: str = ""
    message: str = ""
    param: str = ""
    type: str = ""


class ErrorChunk(_Out):
    """``{"error": {...}, "status_code": N}`` sent as a ``data:`` event after HTTP 200 (spec 3.4).

    The SDK raises the exception class chosen from ``status_code``."""

    error: ErrorDetail
    status_code: int

    @classmethod
    def from_error(cls, err: APIError, id: str = "") -> "ErrorChunk":
        return cls(
            error=ErrorDetail(
                id=id,
                code=err.code or "",
                message=err.message or "",
                param=err.param or "",
                type=err.type or "",
            ),
            status_code=err.status,
        )


# --------------------------------------------------------------------------------------------
# serialization and ids


def dump(model: BaseModel) -> bytes:
    """Compact JSON bytes with ``None`` fields omitted."""
    return model.__pydantic_serializer__.to_json(model, exclude_none=True)


def sse(model: BaseModel) -> bytes:
    """One SSE event: ``data: <json>\\n\\n``."""
    return b"data: " + model.__pydantic_serializer__.to_json(model, exclude_none=True) + b"\n\n"


#: optional end-of-stream marker (Cerebras' recordings have none; both SDKs accept either)
DONE = b"data: [DONE]\n\n"


def new_chat_id() -> str:
    """``chatcmpl-<uuid4>`` (spec 3.1)."""
    return "chatcmpl-" + str(uuid.uuid4())


#: text completions use the same id form in the Cerebras docs
new_completion_id = new_chat_id


def new_tool_call_id() -> str:
    """9 lowercase hex characters, like the ids on the wire (``27781e665``)."""
    return uuid.uuid4().hex[:9]


def system_fingerprint(*parts: str) -> str:
    """``fp_`` + 20 hex chars derived deterministically from ``parts`` (e.g. model file + wafer version)."""
    h = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return "fp_" + h[:20]
