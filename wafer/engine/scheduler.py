"""Continuous batching: one token budget per step, shared by decodes and prefill chunks.

Each step, every running sequence that is decoding gets one token; what is left of the budget goes
to prefill chunks, first of requests already running, then of waiting requests admitted in arrival
order while sequence slots and KV cells last. When the KV cache cannot hold the next step, the most
recently admitted request is preempted: its cells are freed and it is recomputed later (its
generated tokens are kept, so it resumes where it stopped).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .sequence import Request, Sequence


@dataclass
class Work:
    seq: Sequence
    start: int
    end: int

    @property
    def samples(self) -> bool:
        return self.end == len(self.seq.tokens)


class QueueFull(Exception):
    pass


class Scheduler:
    def __init__(self, kv_cells: int, n_slots: int, token_budget: int, max_waiting: int):
        self.kv_cells = kv_cells
        self.token_budget = max(token_budget, n_slots)
        self.max_waiting = max_waiting
        self.free_slots: list[int] = list(range(n_slots - 1, -1, -1))
        self.n_slots = n_slots
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.preemptions = 0

    # -- queue -------------------------------------------------------------------------------
    def add(self, req: Request) -> None:
        if len(self.waiting) >= self.max_waiting:
            raise QueueFull()
        self.waiting.append(req)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    @property
    def used_cells(self) -> int:
        return sum(r.kv_cells for r in self.running)

    # -- slots -------------------------------------------------------------------------------
    def _admit(self, req: Request) -> None:
        for s in req.seqs:
            s.slot = self.free_slots.pop()
        self.running.append(req)

    def release(self, seq: Sequence) -> int | None:
        """Return a finished sequence's slot to the pool; the caller clears its KV cells."""
        slot, seq.slot = seq.slot, None
        if slot is not None:
            self.free_slots.append(slot)
        return slot

    def remove(self, req: Request) -> list[int]:
        """Take a request out of the scheduler; returns the slots whose KV cells must be cleared."""
        if req in self.running:
            self.running.remove(req)
        else:
            try:
                self.waiting.remove(req)
            except ValueError:
                pass
        slots = [s for s in (self.release(q) for q in req.seqs) if s is not None]
        return slots

    def _preempt(self, req: Request) -> list[int]:
        slots = self.remove(req)
        for s in req.seqs:
            s.num_computed = 0
            s.shared = 0
        self.waiting.appendleft(req)
        self.preemptions += 1
        return slots

    # -- one step ----------------------------------------------------------------------------
    def schedule(self) -> tuple[list[Work], list[int]]:
        """Work for the next step, and the slots whose KV cells must be cleared first."""
        cleared: list[int] = []
        decoding = self._decoding()
        # Make room for one token per decoding sequence, preempting the newest requests.
        while self.used_cells + len(decoding) > self.kv_cells and len(self.running) > 1:
            cleared += self._preempt(self.running[-1])
            decoding = self._decoding()
        budget = self.token_budget
        free_cells = self.kv_cells - self.used_cells
        work: list[Work] = []
        for s in decoding:
            work.append(Work(s, s.num_computed, s.num_computed + 1))
        budget -= len(decoding)
        free_cells -= len(decoding)
        for req in self.running:
            for s in req.seqs:
                if budget <= 0 or free_cells <= 0:
                    return work, cleared
                if s.finished or s.parent is not None:
                    continue
                left = len(s.tokens) - s.num_computed
                if left > 1:
                    k = min(left, budget, free_cells)
                    work.append(Work(s, s.num_computed, s.num_computed + k))
                    budget -= k
                    free_cells -= k
        while self.waiting and budget > 0:
            req = self.waiting[0]
            if req.cancelled:
                self.waiting.popleft()
                continue
            need = len(req.seqs[0].tokens) + len(req.seqs)
            if len(self.free_slots) < len(req.seqs) or need > free_cells:
                break
            self.waiting.popleft()
            self._admit(req)
            for s in req.seqs:
                if s.parent is not None or budget <= 0:
                    continue
                k = min(len(s.tokens) - s.num_computed, budget)
                work.append(Work(s, s.num_computed, s.num_computed + k))
                budget -= k
                free_cells -= k
        return work, cleared

    def _decoding(self) -> list[Sequence]:
        return [
            s
            for r in self.running
            for s in r.seqs
            if not s.finished and s.parent is None and len(s.tokens) - s.num_computed == 1
        ]
