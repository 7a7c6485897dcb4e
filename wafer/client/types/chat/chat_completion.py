"""Chat completion, chunk and error-event objects (spec 3.1-3.4), names as in cerebras-cloud-sdk.

``ChatCompletion`` is the union the SDK returns from ``create()`` and yields from its streams:
a full response, a chunk, or an error event, told apart by validation (``object`` differs).
"""

from __future__ import annotations

from typing import List, Literal, Optional, Union

from typing_extensions import TypeAlias

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
    "ChatCompletion",
    "CompletionCreateResponse",
    "ChatCompletionResponse",
    "ChatCompletionResponseChoice",
    "ChatCompletionResponseChoiceMessage",
    "ChatCompletionResponseChoiceMessageToolCall",
    "ChatCompletionResponseChoiceMessageToolCallFunction",
    "ChatCompletionResponseChoiceLogprobs",
    "ChatCompletionResponseTimeInfo",
    "ChatCompletionResponseUsage",
    "ChatChunkResponse",
    "ChatChunkResponseChoice",
    "ChatChunkResponseChoiceDelta",
    "ChatChunkResponseChoiceDeltaToolCall",
    "ChatChunkResponseChoiceDeltaToolCallFunction",
    "ErrorChunkResponse",
    "ErrorChunkResponseError",
    "LogProbs",
    "LogProbsContent",
    "TopLogProb",
]

Role = Literal["assistant", "user", "system", "tool"]


class ToolCallFunction(BaseModel):
    arguments: Optional[str] = None
    name: Optional[str] = None


class ToolCall(BaseModel):
    function: ToolCallFunction
    type: Literal["function"]
    id: Optional[str] = None
    index: Optional[int] = None


class ChatCompletionResponseChoiceMessage(BaseModel):
    role: Role
    content: Optional[str] = None
    reasoning: Optional[str] = None
    tool_calls: Optional[List[ToolCall]] = None


class ChatCompletionResponseChoice(BaseModel):
    index: int
    message: ChatCompletionResponseChoiceMessage
    finish_reason: Optional[FinishReason] = None
    logprobs: Optional[LogProbs] = None
    reasoning_logprobs: Optional[LogProbs] = None


class ChatCompletionResponse(BaseModel):
    id: str
    choices: List[ChatCompletionResponseChoice]
    created: int
    model: str
    object: Literal["chat.completion"]
    system_fingerprint: str
    service_tier: Optional[str] = None
    time_info: Optional[TimeInfo] = None
    usage: Optional[Usage] = None


class ChatChunkResponseChoiceDelta(BaseModel):
    content: Optional[str] = None
    reasoning: Optional[str] = None
    role: Optional[Role] = None
    tokens: Optional[List[int]] = None
    tool_calls: Optional[List[ToolCall]] = None


class ChatChunkResponseChoice(BaseModel):
    index: int
    delta: Optional[ChatChunkResponseChoiceDelta] = None
    finish_reason: Optional[FinishReason] = None
    logprobs: Optional[LogProbs] = None
    reasoning_logprobs: Optional[LogProbs] = None
    text: Optional[str] = None
    tokens: Optional[List[int]] = None


class ChatChunkResponse(BaseModel):
    id: str
    created: int
    model: str
    object: Literal["chat.completion.chunk"]
    system_fingerprint: str
    choices: Optional[List[ChatChunkResponseChoice]] = None
    service_tier: Optional[str] = None
    time_info: Optional[TimeInfo] = None
    usage: Optional[Usage] = None


ChatCompletion: TypeAlias = Union[ChatCompletionResponse, ChatChunkResponse, ErrorChunkResponse]
CompletionCreateResponse: TypeAlias = ChatCompletion

# the SDK's longer names for the shared pieces
ChatCompletionResponseChoiceMessageToolCall = ChatChunkResponseChoiceDeltaToolCall = ToolCall
ChatCompletionResponseChoiceMessageToolCallFunction = ChatChunkResponseChoiceDeltaToolCallFunction = ToolCallFunction
ChatCompletionResponseChoiceLogprobs = LogProbs
ChatCompletionResponseTimeInfo = TimeInfo
ChatCompletionResponseUsage = Usage
