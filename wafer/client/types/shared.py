"""Objects shared by chat and text completions: usage, time_info, the mid-stream error event."""

from __future__ import annotations

from typing import List, Literal, Optional

from .._models import BaseModel

__all__ = [
    "FinishReason",
    "PromptTokensDetails",
    "CompletionTokensDetails",
    "Usage",
    "TimeInfo",
    "ErrorChunkResponseError",
    "ErrorChunkResponse",
    "TopLogProb",
    "LogProbsContent",
    "LogProbs",
]

FinishReason = Literal["stop", "length", "content_filter", "tool_calls"]


class PromptTokensDetails(BaseModel):
    cached_tokens: Optional[int] = None


class CompletionTokensDetails(BaseModel):
    accepted_prediction_tokens: Optional[int] = None
    reasoning_tokens: Optional[int] = None
    rejected_prediction_tokens: Optional[int] = None


class Usage(BaseModel):
    completion_tokens: Optional[int] = None
    completion_tokens_details: Optional[CompletionTokensDetails] = None
    image_tokens: Optional[int] = None
    prompt_tokens: Optional[int] = None
    prompt_tokens_details: Optional[PromptTokensDetails] = None
    total_tokens: Optional[int] = None


class TimeInfo(BaseModel):
    """Seconds spent in each phase; ``created`` is a float Unix time."""

    completion_time: Optional[float] = None
    created: Optional[float] = None
    prompt_time: Optional[float] = None
    queue_time: Optional[float] = None
    total_time: Optional[float] = None


class ErrorChunkResponseError(BaseModel):
    id: Optional[str] = None
    code: Optional[str] = None
    message: Optional[str] = None
    param: Optional[str] = None
    type: Optional[str] = None


class ErrorChunkResponse(BaseModel):
    """An error event inside a stream (streams raise it; a 200 body of this shape is returned as is)."""

    error: ErrorChunkResponseError
    status_code: int


class TopLogProb(BaseModel):
    token: str
    logprob: float
    bytes: Optional[List[int]] = None


class LogProbsContent(BaseModel):
    token: str
    logprob: float
    top_logprobs: List[TopLogProb]
    bytes: Optional[List[int]] = None


class LogProbs(BaseModel):
    """``logprobs`` and ``reasoning_logprobs`` of a chat choice."""

    content: Optional[List[LogProbsContent]] = None
    refusal: Optional[List[LogProbsContent]] = None
