"""Objects shared by chat and text completions: usage, time_info, the mid-stream error event."""

from __future__ import annotations

from typing import Literal

from .._models import BaseModel

__all__ = [
    "CompletionTokensDetails",
    "ErrorChunkResponse",
    "ErrorChunkResponseError",
    "FinishReason",
    "LogProbs",
    "LogProbsContent",
    "PromptTokensDetails",
    "TimeInfo",
    "TopLogProb",
    "Usage",
]

FinishReason = Literal["stop", "length", "content_filter", "tool_calls"]


class PromptTokensDetails(BaseModel):
    cached_tokens: int | None = None


class CompletionTokensDetails(BaseModel):
    accepted_prediction_tokens: int | None = None
    reasoning_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class Usage(BaseModel):
    completion_tokens: int | None = None
    completion_tokens_details: CompletionTokensDetails | None = None
    image_tokens: int | None = None
    prompt_tokens: int | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    total_tokens: int | None = None


class TimeInfo(BaseModel):
    """Seconds spent in each phase; ``created`` is a float Unix time."""

    completion_time: float | None = None
    created: float | None = None
    prompt_time: float | None = None
    queue_time: float | None = None
    total_time: float | None = None


class ErrorChunkResponseError(BaseModel):
    id: str | None = None
    code: str | None = None
    message: str | None = None
    param: str | None = None
    type: str | None = None


class ErrorChunkResponse(BaseModel):
    """An error event inside a stream (streams raise it; a 200 body of this shape is returned as is)."""

    error: ErrorChunkResponseError
    status_code: int


class TopLogProb(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class LogProbsContent(BaseModel):
    token: str
    logprob: float
    top_logprobs: list[TopLogProb]
    bytes: list[int] | None = None


class LogProbs(BaseModel):
    """``logprobs`` and ``reasoning_logprobs`` of a chat choice."""

    content: list[LogProbsContent] | None = None
    refusal: list[LogProbsContent] | None = None
