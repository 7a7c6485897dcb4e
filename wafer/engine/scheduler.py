"""Continuous batching: one token budget per step, shared by decodes and prefill chunks.

Each step, every running sequence that is decoding gets one token (plus the draft it verifies, if
any); what is left of the budget goes to prefill chunks, first of requests already running, then of
waiting requests admitted in queue order (service tier, then arrival: ``enqueue``) while KV streams are
free. Before its first chunk a sequence asks the KV owner (``KVCache``) for the longest cached prefix
of its tokens; if a running sequence is computing a longer common prefix right now, it waits for it
instead of computing the same tokens twice. ``n > 1`` children wait for their parent's prompt and are
forked from it.

Every sequence has its own KV stream of ``n_ctx_seq`` cells and a request is admitted only if it fits
one, so a running sequence never runs out of cells. The step's work is sorted by sequence id: llama.cpp
puts sequences with consecutive ids and equal token counts into one ubatch (``ubatch.split``), so the
decodes of sequences on a packed range of ids cost one pass over the weights.

Preemption (after a failed decode): the newest request leaves its streams (their content saved to host
memory) and goes back to the head of the queue with its generated tokens kept, so it resumes where it
stopped, usually without recomputing anything.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from . import ubatch
from .events import RequestFailed
from .kv_cache import KVCache
from .sequence import Request, Sequence


@dataclass
class Work:
    seq: Sequence
    start: int
    end: int
    draft: list[int] = field(default_factory=list)  # tokens to verify after the sequence's next one

    @property
    def samples(self) -> bool:
        return self.end == len(self.seq.tokens)


class QueueFull(Exception):
    pass


def enqueue(waiting: deque[Request], req: Request) -> None:
    """Queue ``req`` behind every waiting request of its service tier or a higher one and ahead of the
    lower tiers (``GenerationParams.priority``): priority > default > flex, first come first served
    within a tier. Scans from the tail, so a queue of one tier appends in O(1)."""
    p = req.params.priority
    i = len(waiting)
    while i and waiting[i - 1].params.priority > p:
        i -= 1
    waiting.insert(i, req)


def over_queue_threshold(req: Request, now: float) -> bool:
    """Whether ``req``, not admitted yet, has waited longer than its ``queue_threshold``."""
    t = req.params.queue_threshold
    return t is not None and req.admitted is None and now - req.arrival > t


def queue_threshold_exceeded(req: Request) -> RequestFailed:
    """Cerebras' 429 for a request that waited longer than its ``queue_threshold`` header allows."""
    ms = round(req.params.queue_threshold * 1000)
    return RequestFailed(429, f"The request waited in the queue longer than its queue_threshold of {ms} ms.",
                         "queue_exceeded", "too_many_requests_error", "queue")


class Scheduler:
    def __init__(self, kv: KVCache, token_budget: int, max_waiting: int, prefill_budget: int = 0,
                 n_ubatch: int = 512):
        self.kv = kv
        self.parallel = kv.n_streams
        self.token_budget = max(token_budget, self.parallel)
        self.prefill_budget = max(prefill_budget, self.token_budget)
        self.max_waiting = max_waiting
        self.n_ubatch = n_ubatch
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.preemptions = 0

    # -- queue -------------------------------------------------------------------------------
    def add(self, req: Request) -> None:
        if len(self.waiting) >= self.max_waiting:
            raise QueueFull()
        enqueue(self.waiting, req)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    @property
    def running_seqs(self) -> int:
        return sum(1 for r in self.running for s in r.seqs if s.seq_id is not None)

    # -- streams -----------------------------------------------------------------------------
    def release(self, seq: Sequence) -> None:
        """A sequence stops running: its stream goes back to the pool, its cells stay as cache."""
        self.kv.release(seq)

    def remove(self, req: Request) -> None:
        """Take a request out of the scheduler (finished, cancelled or failed)."""
        if req in self.running:
            self.running.remove(req)
        else:
            try:
                self.waiting.remove(req)
            except ValueError:
                pass
        for s in req.seqs:
            self.release(s)

    def preempt(self, req: Request) -> None:
        if req in self.running:
            self.running.remove(req)
        for s in req.seqs:
            if s.seq_id is not None:
                self.kv.preempt(s)
            s.num_computed = 0
            s.prepared = False
            s.wait = None
            if s.index > 0 and s.num_generated == 0:
                s.parent = req.seqs[0]
        self.waiting.appendleft(req)
        self.preemptions += 1

    def drop_cache(self) -> None:
        """Forget every cached prefix no running request uses."""
        self.kv.clear()

    # -- prefix sharing ----------------------------------------------------------------------
    def _prepare(self, s: Sequence) -> bool:
        """Before a sequence's first chunk: take what is cached. False: wait (for a parent's prompt
        or for a running request that is computing a longer common prefix)."""
        if s.prepared:
            return True
        if s.parent is not None:
            return False
        if s.wait is not None:
            src, upto = s.wait
            if src.seq_id is not None and not src.finished and src.num_computed < upto:
                return False
        if not self.kv.prepare(s, share=not s.req.params.prompt_logprobs):
            return False
        if s.index == 0 and s.req.cached_tokens is None:
            s.req.cached_tokens = s.num_computed
        return True

    # -- one step ----------------------------------------------------------------------------
    def schedule(self) -> list[Work]:
        """Work for the next step, sorted by sequence id."""
        self.kv.expire()
        decoding = self._decoding()
        work: list[Work] = [Work(s, s.num_computed, s.num_computed + 1) for s in decoding]
        busy = {id(s) for s in decoding}
        # A big prefill chunk stalls every decoding stream for its duration; with none, use more.
        budget = (self.token_budget if decoding else self.prefill_budget) - len(work)
        for w in work:
            d = w.seq.drafter
            if d is not None and budget > 0:
                s = w.seq
                w.draft = d.propose(s.tokens[s.num_prompt :], min(budget, s.req.max_new - s.num_generated - 1))
                g = s.grammar
                if w.draft and g is not None and (s.reasoning is None or s.reasoning.content):
                    w.draft = w.draft[: g.m.validate_tokens(w.draft)]  # verify only what the grammar allows
                budget -= len(w.draft)

        def chunk(s: Sequence) -> None:
            nonlocal budget
            k = min(len(s.tokens) - s.num_computed, budget)
            if k > 0:
                work.append(Work(s, s.num_computed, s.num_computed + k))
                budget -= k

        for req in self.running:
            for s in req.seqs:
                if budget <= 0:
                    break
                if not s.finished and id(s) not in busy and self._prepare(s):
                    chunk(s)
        while self.waiting and budget > 0:
            req = self.waiting[0]
            if req.cancelled:
                self.waiting.popleft()
                continue
            if not self.kv.admit(req.seqs):
                break
            self.waiting.popleft()
            self.running.append(req)
            for s in req.seqs:
                if budget > 0 and self._prepare(s):
                    chunk(s)
        work.sort(key=lambda w: w.seq.seq_id)
        return work

    def ubatches(self, work: list[Work]) -> int:
        """Passes over the weights llama.cpp will make for this work (its split_equal)."""
        return ubatch.count([(w.seq.seq_id, w.end - w.start + len(w.draft)) for w in work], self.n_ubatch)

    def _decoding(self) -> list[Sequence]:
        return [
            s
            for r in self.running
            for s in r.seqs
            if not s.finished and s.prepared and s.parent is None and len(s.tokens) - s.num_computed == 1
        ]
