"""Text completion objects (spec 3.5), names as in cerebras-cloud-sdk."""

from __future__ import annotations

from typing import Literal, TypeAlias

from .._models import BaseModel
from .shared import (
    ErrorChunkResponse,
    ErrorChunkResponseError,
    FinishReason,
    TimeInfo,
    Usage,
)

__all__ = [
    "Completion",
    "CompletionResponse",
    "CompletionResponseChoice",
    "CompletionResponseChoiceLogprobs",
    "CompletionResponseTimeInfo",
    "CompletionResponseUsage",
    "ErrorChunkResponse",
    "ErrorChunkResponseError",
]


class CompletionResponseChoiceLogprobs(BaseModel):
    text_offset: list[int] | None = None
    token_logprobs: list[float] | None = None
    tokens: list[str] | None = None
    top_logprobs: list[dict[str, float]] | None = None


class CompletionResponseChoice(BaseModel):
    index: int
    finish_reason: FinishReason | None = None
    logprobs: CompletionResponseChoiceLogprobs | None = None
    text: str | None = None
    tokens: list[int] | None = None


class CompletionResponse(BaseModel):
    id: str
    choices: list[CompletionResponseChoice]
    created: int
    model: str
    object: Literal["text_completion"]
    system_fingerprint: str
    time_info: TimeInfo | None = None
    usage: Usage | None = None


Completion: TypeAlias = CompletionResponse | ErrorChunkResponse

CompletionResponseTimeInfo = TimeInfo
CompletionResponseUsage = Usage
