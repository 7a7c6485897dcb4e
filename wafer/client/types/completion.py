"""Text completion objects (spec 3.5), names as in cerebras-cloud-sdk."""

from __future__ import annotations

from typing import Dict, List, Literal, Optional, Union

from typing_extensions import TypeAlias

from .._models import BaseModel
from .shared import ErrorChunkResponse, ErrorChunkResponseError, FinishReason, TimeInfo, Usage

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
    text_offset: Optional[List[int]] = None
    token_logprobs: Optional[List[float]] = None
    tokens: Optional[List[str]] = None
    top_logprobs: Optional[List[Dict[str, float]]] = None


class CompletionResponseChoice(BaseModel):
    index: int
    finish_reason: Optional[FinishReason] = None
    logprobs: Optional[CompletionResponseChoiceLogprobs] = None
    text: Optional[str] = None
    tokens: Optional[List[int]] = None


class CompletionResponse(BaseModel):
    id: str
    choices: List[CompletionResponseChoice]
    created: int
    model: str
    object: Literal["text_completion"]
    system_fingerprint: str
    time_info: Optional[TimeInfo] = None
    usage: Optional[Usage] = None


Completion: TypeAlias = Union[CompletionResponse, ErrorChunkResponse]

CompletionResponseTimeInfo = TimeInfo
CompletionResponseUsage = Usage
