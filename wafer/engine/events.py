"""What the engine tells a request's owner: text deltas per choice, then one final event."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LogprobEntry:
    token_id: int
    token: str
    logprob: float
    top: list[tuple[int, str, float]]  # (token id, token text, logprob), best first
    text_offset: int = 0  # character offset of the token in the choice's text


@dataclass
class ChoiceDelta:
    index: int
    text: str
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[LogprobEntry] = field(default_factory=list)
    finish_reason: str | None = None  # set on the choice's last delta


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int | None = None  # None: not a reasoning request
    accepted_prediction_tokens: int | None = None  # None: no prediction
    rejected_prediction_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class TimeInfo:
    queue_time: float
    prompt_time: float
    completion_time: float
    total_time: float
    created: float


@dataclass
class RequestDone:
    usage: Usage
    time_info: TimeInfo
    choices: list[int] | None = None  # best_of: indices of the sequences returned, in order
    prompt_logprobs: list[LogprobEntry | None] | None = None


@dataclass
class RequestFailed:
    status: int
    message: str
    code: str = "internal_error"
    type: str = "server_error"
    param: str | None = None
