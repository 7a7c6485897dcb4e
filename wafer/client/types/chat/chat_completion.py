"""Chat completion, chunk and error-event objects (spec 3.1-3.4), names as in cerebras-cloud-sdk.

``ChatCompletion`` is the union the SDK returns from ``create()`` and yields from its streams:
a full response, a chunk, or an error event, told apart by validation (``object`` differs).
"""

from __future__ import annotations

from typing import Literal, TypeAlias

from ..._models import BaseModel
from ..shared import (
    ErrorChunkResponse,
    ErrorChunkResponseError,
    FinishReason,
    LogProbs,
    LogProbsContent,
    TimeInfo,
    TopLogProb,
    Usage,
)

__all__ = [
    "ChatChunkResponse",
    "ChatChunkResponseChoice",
    "ChatChunkResponseChoiceDelta",
    "ChatChunkResponseChoiceDeltaToolCall",
    "ChatChunkResponseChoiceDeltaToolCallFunction",
    "ChatCompletion",
    "ChatCompletionResponse",
    "ChatCompletionResponseChoice",
    "ChatCompletionResponseChoiceLogprobs",
    "ChatCompletionResponseChoiceMessage",
    "ChatCompletionResponseChoiceMessageToolCall",
    "ChatCompletionResponseChoiceMessageToolCallFunction",
    "ChatCompletionResponseTimeInfo",
    "ChatCompletionResponseUsage",
    "CompletionCreateResponse",
    "ErrorChunkResponse",
    "ErrorChunkResponseError",
    "LogProbs",
    "LogProbsContent",
    "TopLogProb",
]

Role = Literal["assistant", "user", "system", "tool"]


class ToolCallFunction(BaseModel):
    arguments: str | None = None
    name: str | None = None


class ToolCall(BaseModel):
    function: ToolCallFunction
    type: Literal["function"]
    id: str | None = None
    index: int | None = None


class ChatCompletionResponseChoiceMessage(BaseModel):
    role: Role
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatCompletionResponseChoice(BaseModel):
    index: int
    message: ChatCompletionResponseChoiceMessage
    finish_reason: FinishReason | None = None
    logprobs: LogProbs | None = None
    reasoning_logprobs: LogProbs | None = None


class ChatCompletionResponse(BaseModel):
    id: str
    choices: list[ChatCompletionResponseChoice]
    created: int
    model: str
    object: Literal["chat.completion"]
    system_fingerprint: str
    service_tier: str | None = None
    time_info: TimeInfo | None = None
    usage: Usage | None = None


class ChatChunkResponseChoiceDelta(BaseModel):
    content: str | None = None
    reasoning: str | None = None
    role: Role | None = None
    tokens: list[int] | None = None
    tool_calls: list[ToolCall] | None = None


class ChatChunkResponseChoice(BaseModel):
    index: int
    delta: ChatChunkResponseChoiceDelta | None = None
    finish_reason: FinishReason | None = None
    logprobs: LogProbs | None = None
    reasoning_logprobs: LogProbs | None = None
    text: str | None = None
    tokens: list[int] | None = None


class ChatChunkResponse(BaseModel):
    id: str
    created: int
    model: str
    object: Literal["chat.completion.chunk"]
    system_fingerprint: str
    choices: list[ChatChunkResponseChoice] | None = None
    service_tier: str | None = None
    time_info: TimeInfo | None = None
    usage: Usage | None = None


ChatCompletion: TypeAlias = ChatCompletionResponse | ChatChunkResponse | ErrorChunkResponse
CompletionCreateResponse: TypeAlias = ChatCompletion

# the SDK's longer names for the shared pieces
ChatCompletionResponseChoiceMessageToolCall = ChatChunkResponseChoiceDeltaToolCall = ToolCall
ChatCompletionResponseChoiceMessageToolCallFunction = ChatChunkResponseChoiceDeltaToolCallFunction = ToolCallFunction
ChatCompletionResponseChoiceLogprobs = LogProbs
ChatCompletionResponseTimeInfo = TimeInfo
ChatCompletionResponseUsage = Usage
