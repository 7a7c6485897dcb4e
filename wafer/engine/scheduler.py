"""Continuous batching: one token budget per step, shared by decodes and prefill chunks.

Each step, every running sequence that is decoding gets one token; what is left of the budget goes
to prefill chunks, first of requests already running, then of waiting requests admitted in queue
order (service tier, then arrival: ``enqueue``) while sequence slots and KV cells last. Before its first chunk a sequence takes the longest
cached prefix of its tokens from the prefix cache; if a running request is computing a longer
common prefix right now, it waits for it instead of computing the same tokens twice.

When the KV cache cannot hold the next step, cache entries are evicted (least recently used, old
ones first); if that is not enough, the most recently admitted request is preempted: it leaves what
it computed in the prefix cache and goes back to the head of the queue with its generated tokens
kept, so it resumes where it stopped, usually without recomputing much.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .events import RequestFailed
from .prefix_cache import PrefixCache
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


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


class Scheduler:
    def __init__(self, kv_cells: int, n_slots: int, token_budget: int, max_waiting: int,
                 cache: PrefixCache, cache_slots: int = 0, prefill_budget: int = 0):
        self.kv_cells = kv_cells
        self.parallel = n_slots
        self.token_budget = max(token_budget, n_slots)
        self.prefill_budget = max(prefill_budget, self.token_budget)
        self.max_waiting = max_waiting
        self.cache = cache
        self.n_ids = n_slots + cache_slots
        self.free_slots: list[int] = list(range(self.n_ids - 1, -1, -1))
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
    def used_cells(self) -> int:
        """KV cells in use: the prefix cache's plus what running sequences hold outside it."""
        return self.cache.cells + sum(r.kv_cells for r in self.running)

    @property
    def running_seqs(self) -> int:
        return sum(1 for r in self.running for s in r.seqs if s.slot is not None)

    # -- slots -------------------------------------------------------------------------------
    def _admit(self, req: Request) -> None:
        for s in req.seqs:
            s.slot = self.free_slots.pop()
        self.running.append(req)

    def release(self, seq: Sequence) -> None:
        """A sequence stops running: its id goes back to the pool unless the cache keeps it."""
        if seq.slot is None:
            return
        if self.cache.release(seq):
            self.free_slots.append(seq.slot)
        seq.slot = None
        seq.node = None

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

    def _preempt(self, req: Request) -> None:
        self.remove(req)
        for s in req.seqs:
            s.num_computed = s.shared = s.tree_end = 0
            s.prepared = False
            s.wait = None
        self.waiting.appendleft(req)
        self.preemptions += 1

    def _free_ids(self, ids: list[int]) -> None:
        self.free_slots.extend(ids)

    def drop_cache(self) -> None:
        """Forget every prefix-cache entry no running request uses; their ids return to the pool."""
        self._free_ids(self.cache.clear())

    def _room(self, cells: int) -> int:
        """Free cells, after evicting cache entries (old first, then young) to reach ``cells``."""
        free = self.kv_cells - self.used_cells
        for young in (False, True):
            if free >= cells:
                break
            _, ids = self.cache.evict(cells=cells - free, allow_young=young)
            self._free_ids(ids)
            free = self.kv_cells - self.used_cells
        return free

    def _ids(self, n: int) -> bool:
        for young in (False, True):
            if len(self.free_slots) >= n:
                break
            _, ids = self.cache.evict(slots=n - len(self.free_slots), allow_young=young)
            self._free_ids(ids)
        return len(self.free_slots) >= n

    # -- prefix sharing ----------------------------------------------------------------------
    def _prepare(self, s: Sequence) -> bool:
        """Before a sequence's first chunk: share what is cached. False: wait (for a parent's prompt
        or for a running request that is computing a longer common prefix)."""
        if s.prepared:
            return True
        if s.parent is not None:
            return False
        if s.wait is not None:
            src, upto = s.wait
            if src.slot is not None and not src.finished and src.num_computed < upto:
                return False
            s.wait = None
        elif self.cache.enabled and not s.req.params.prompt_logprobs:
            src = self._computing_source(s)
            if src is not None:
                s.wait = src
                return False
        got = self.cache.acquire(s, share=not s.req.params.prompt_logprobs)
        s.prepared = True
        if s.index == 0 and s.req.cached_tokens is None:
            s.req.cached_tokens = got
        return True

    def _computing_source(self, s: Sequence) -> tuple[Sequence, int] | None:
        """A running sequence whose prompt shares more with ``s`` than the cache has yet."""
        mine = np.asarray(s.tokens[: len(s.tokens) - 1], dtype=np.int64)
        cached = self.cache.peek(s.tokens)
        best = None
        for r in self.running:
            src = r.seqs[0]
            if r is s.req or src.slot is None or src.finished:
                continue
            n = common_prefix(r.prompt_np, mine)
            if n > cached and src.num_computed < n and (best is None or n > best[1]):
                best = (src, n)
        return best

    # -- one step ----------------------------------------------------------------------------
    def schedule(self) -> list[Work]:
        """Work for the next step."""
        self._free_ids(self.cache.expire())
        decoding = self._decoding()
        # Room for one token per decoding sequence: evict cache entries, then preempt the newest.
        while self._room(len(decoding)) < len(decoding) and len(self.running) > 1:
            self._preempt(self.running[-1])
            decoding = self._decoding()
        work: list[Work] = [Work(s, s.num_computed, s.num_computed + 1) for s in decoding]
        busy = {id(s) for s in decoding}
        # A big prefill chunk stalls every decoding stream for its duration; with none, use more.
        budget = (self.token_budget if decoding else self.prefill_budget) - len(work)
        scheduled = len(work)
        free = self.kv_cells - self.used_cells - scheduled  # drafts never evict anything
        for w in work:
            d = w.seq.drafter
            if d is not None and budget > 0 and free > 0:
                s = w.seq
                w.draft = d.propose(s.tokens[s.num_prompt :], min(budget, free, s.req.max_new - s.num_generated - 1))
                g = s.grammar
                if w.draft and g is not None and (s.reasoning is None or s.reasoning.content):
                    w.draft = w.draft[: g.m.validate_tokens(w.draft)]  # verify only what the grammar allows
                budget -= len(w.draft)
                free -= len(w.draft)
                scheduled += len(w.draft)

        def chunk(s: Sequence) -> bool:
            """Schedule a prefill chunk of ``s``; False when the KV cache is full."""
            nonlocal budget, scheduled
            k = min(len(s.tokens) - s.num_computed, budget)
            k = min(k, self._room(scheduled + k) - scheduled)
            if k <= 0:
                return False
            work.append(Work(s, s.num_computed, s.num_computed + k))
            budget -= k
            scheduled += k
            return True

        for req in self.running:
            for s in req.seqs:
                if budget <= 0:
                    return work
                if s.finished or id(s) in busy or not self._prepare(s):
                    continue
                if not chunk(s):
                    return work
        while self.waiting and budget > 0:
            req = self.waiting[0]
            if req.cancelled:
                self.waiting.popleft()
                continue
            n = len(req.seqs)
            if self.running_seqs + n > self.parallel or not self._ids(n):
                break
            need = len(req.seqs[0].tokens) - self.cache.peek(req.seqs[0].tokens) + n
            if self._room(scheduled + need) - scheduled < need:
                break
            self.waiting.popleft()
            self._admit(req)
            for s in req.seqs:
                if budget > 0 and self._prepare(s):
                    chunk(s)
        return work

    def _decoding(self) -> list[Sequence]:
        return [
            s
            for r in self.running
            for s in r.seqs
            if not s.finished and s.prepared and s.parent is None and len(s.tokens) - s.num_computed == 1
        ]
