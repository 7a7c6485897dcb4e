"""Requests and their sequences: token accounting, text output, finish conditions.

Accounting follows vLLM's model: a sequence holds ``tokens`` (prompt + generated) of which
``num_computed`` are in the KV cache; each step computes some of the rest, and when that reaches the
end, the logits of the last one give the next token. Prefill, chunked prefill, decode and
recompute after preemption are all the same operation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .detokenizer import IncrementalDetokenizer
from .events import LogprobEntry, TimeInfo, Usage
from .grammar import Grammar, Grammars, GrammarState
from .reasoning import HarmonySpec, HarmonyTracker, ThinkSpec, ThinkTracker
from .sampler import SamplingParams, SequenceSampler
from .speculate import K_MAX, Drafter


@dataclass
class GenerationParams:
    """Everything the engine needs to know about one request."""

    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_new_tokens: int | None = None  # None: up to the context size
    min_new_tokens: int = 0  # -1: up to the context size (EOS blocked throughout)
    stop: list[str] = field(default_factory=list)
    n: int = 1
    best_of: int | None = None  # completions: generate best_of, return the n most likely
    prompt_logprobs: bool = False  # completions with echo + logprobs
    ignore_eos: bool = False
    grammar: Grammar | None = None  # constrains every sequence of the request (compiled by Grammars)
    reasoning: ThinkSpec | HarmonySpec | None = None  # a reasoning model's segments (budget, counts, grammar gating)
    render_special: frozenset[int] = frozenset()  # control tokens whose text is part of the output (Harmony)
    prediction: list[int] | None = None  # predicted output tokens: drafts for speculative verification
    speculate_ngram: bool = False  # draft from the prompt (prompt lookup decoding)
    draft_max: int = K_MAX  # longest draft verified in one step
    timeout: float | None = None  # seconds from arrival after which the engine fails the request (504)
    priority: int = 1  # service tier: 0 priority, 1 default, 2 flex; orders the waiting queue (scheduler.enqueue)
    queue_threshold: float | None = None  # seconds it may wait for admission before a 429 (scheduler.over_queue_threshold)


class Sequence:
    def __init__(self, req: "Request", index: int, sampler: SequenceSampler, model_pieces: list[bytes]):
        self.req = req
        self.index = index
        self.sampler = sampler
        self.tokens: list[int] = list(req.prompt)
        self.num_prompt = len(req.prompt)
        self.num_computed = 0  # tokens whose KV cells its stream holds (positions 0..num_computed-1)
        self.seq_id: int | None = None  # llama.cpp sequence id = its KV stream, while running
        self.parent: Sequence | None = None  # waits for the parent's prompt, then forks from it
        self.prepared = False  # has taken its cached prefix since its last admission
        self.wait: tuple[Sequence, int] | None = None  # waits for a running sequence to compute a shared prefix
        self.detok = IncrementalDetokenizer(model_pieces)
        self.text = ""
        self.emitted = 0
        self.tok_spans: list[tuple[int, int, LogprobEntry | None, int]] = []  # start, end, logprob, token
        self.released = 0
        self.finish_reason: str | None = None
        self.cum_logprob = 0.0
        self.grammar: GrammarState | None = None
        self.reasoning: ThinkTracker | HarmonyTracker | None = None
        self.drafter: Drafter | None = None
        self.verifying = False  # inside a draft verification: the engine releases the stream afterwards

    @property
    def num_generated(self) -> int:
        return len(self.tokens) - self.num_prompt

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


class Request:
    """One API request: a prompt, generation parameters and ``n`` sequences."""

    def __init__(
        self,
        prompt: list[int],
        params: GenerationParams,
        sink: Callable[[list], None],
        context_limit: int,
        request_id: str = "",
        arrival: float | None = None,
    ):
        self.id = request_id
        self.prompt = prompt
        self.prompt_np = np.asarray(prompt, dtype=np.int64)
        self.params = params
        self.sink = sink
        self.arrival = arrival if arrival is not None else time.time()
        self.deadline = self.arrival + params.timeout if params.timeout else None
        self.admitted: float | None = None
        self.prefill_done: float | None = None
        self.finished_at: float | None = None
        self.cancelled = False
        self.context_limit = context_limit
        room = context_limit - len(prompt)
        mx = params.max_new_tokens
        self.max_new = room if mx is None or mx < 0 else min(mx, room)
        mn = params.min_new_tokens
        self.min_new = self.max_new if mn is not None and mn < 0 else min(mn or 0, self.max_new)
        self.seqs: list[Sequence] = []
        self.cached_tokens: int | None = None  # prompt tokens taken from the prefix cache
        self.prompt_logprobs: list[LogprobEntry | None] = []
        self.done = False
        self.output: Any = None  # the engine's OutputText for this request

    @property
    def n_seqs(self) -> int:
        return self.params.best_of or self.params.n

    def build(self, pieces: list[bytes], eog_ids: np.ndarray, grammars: Grammars | None = None) -> None:
        sp = self.params.sampling
        if self.params.best_of and self.params.best_of > 1:
            sp = SamplingParams(**{**sp.__dict__, "logprobs": True})  # best_of ranks by logprob
        for i in range(self.n_seqs):
            s = Sequence(self, i, SequenceSampler(sp, eog_ids, i), pieces)
            if i > 0:
                s.parent = self.seqs[0]
            if self.params.grammar is not None and grammars is not None:
                s.grammar = grammars.state(self.params.grammar)
            if self.params.reasoning is not None:
                s.reasoning = self.params.reasoning.tracker()
            if self.params.prediction:
                s.drafter = Drafter(self.params.prediction, self.params.draft_max)
            elif self.params.speculate_ngram:
                s.drafter = Drafter(self.prompt, self.params.draft_max, follow=False)
            self.seqs.append(s)

    def usage(self) -> Usage:
        for s in self.seqs:
            if s.drafter is not None:
                s.drafter.account(s.tokens[s.num_prompt :])
        accepted = sum(s.drafter.matched for s in self.seqs if s.drafter is not None)
        # OpenAI's definition: tokens of the prediction that are not in the output; as on Cerebras (and
        # OpenAI) they are billed as completion tokens
        rejected = len(self.params.prediction) - accepted if self.params.prediction else None
        return Usage(
            prompt_tokens=len(self.prompt),
            completion_tokens=sum(s.num_generated for s in self.seqs) + (rejected or 0),
            cached_tokens=self.cached_tokens or 0,
            reasoning_tokens=sum(s.reasoning.tokens for s in self.seqs) if self.params.reasoning else None,
            accepted_prediction_tokens=accepted if self.params.prediction else None,
            rejected_prediction_tokens=rejected,
        )

    def time_info(self) -> TimeInfo:
        end = self.finished_at or time.time()
        admitted = self.admitted or end
        prefill = self.prefill_done or end
        return TimeInfo(
            queue_time=max(0.0, admitted - self.arrival),
            prompt_time=max(0.0, prefill - admitted),
            completion_time=max(0.0, end - prefill),
            total_time=max(0.0, end - self.arrival),
            created=self.arrival,
        )
