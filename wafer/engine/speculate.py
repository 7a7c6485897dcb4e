"""Drafts for speculative verification: a predicted output (``prediction``) or the request's own
prompt (``--speculate ngram``, prompt lookup decoding).

The engine verifies a draft of k tokens in the same ``llama_decode`` as the sequence's next token
(logits at every drafted position), samples each position from the target model as usual and keeps
the drafted tokens while they equal what it sampled; the first difference is itself a valid sample,
so the output is exactly what decoding without a draft gives (at T=0, the same tokens).

Re-alignment: a prediction is followed by a pointer ``j`` (the next expected prediction token). After
a mismatch the output usually diverges for a few tokens (an edit) and then rejoins the prediction,
later (an insertion or a replacement) or earlier (a deletion). Until it is back in sync, each
proposal looks up the last n output tokens (n = 4..2, then 1 near ``j``) in the prediction and
resumes after the occurrence nearest to ``j``, forward ones first (prior-art.md section 3.4).

k adapts: doubled after a fully accepted draft, halved after a rejection; when even the shortest draft
is rejected outright, drafting stops for 1, 2, 4 ... 64 steps, so an unhelpful prediction costs little.
"""

from __future__ import annotations

K_START = 8  # first draft length
K_MIN, K_MAX = 2, 32
NGRAM = (4, 3, 2)  # n-gram sizes tried for re-alignment, longest first
UNIGRAM_WINDOW = 16  # a single token re-aligns only this close to the pointer
MAX_BACKOFF = 64  # steps without drafting after repeated rejections, at most


class Drafter:
    """Draft state of one sequence."""

    def __init__(self, corpus: list[int], k_max: int = K_MAX, follow: bool = True):
        self.p = list(corpus)
        self.follow = follow  # a prediction (pointer + re-alignment) rather than a lookup corpus
        self.j = 0
        self.synced = follow
        self.k = min(K_START, k_max)
        self.k_max = k_max
        self.accepted = 0  # draft tokens verification accepted
        self.matched = 0  # prediction tokens found in the output (drafted and accepted, or written by the model)
        self.seen = 0  # output tokens accounted for
        self.cooldown = 0  # steps left without drafting
        self.backoff = 1
        self._index: dict[tuple, list[int]] = {}
        for n in NGRAM + (1,):
            for end in range(n, len(self.p) + 1):
                self._index.setdefault(tuple(self.p[end - n : end]), []).append(end)

    def _realign(self, out: list[int]) -> bool:
        """Find where the output rejoins the corpus; sets ``j`` just after the match."""
        for n in NGRAM + (1,):
            if len(out) < n:
                continue
            ends = self._index.get(tuple(out[-n:]))
            if not ends:
                continue
            if n == 1:
                ends = [e for e in ends if abs(e - self.j) <= UNIGRAM_WINDOW]
                if not ends:
                    continue
            if self.follow:  # nearest to the pointer, forward first
                self.j = min(ends, key=lambda e: (abs(e - self.j), e < self.j))
            else:  # prompt lookup: the latest occurrence
                self.j = ends[-1]
            return True
        return False

    def propose(self, out: list[int], limit: int) -> list[int]:
        """Up to ``limit`` tokens expected after the output ``out`` (the sequence's generated tokens)."""
        self.account(out)
        if self.cooldown:  # recent drafts were all rejected: decode plainly for a while
            self.cooldown -= 1
            return []
        k = min(self.k, limit)
        if k <= 0 or self.j >= len(self.p) and self.synced:
            return []
        if not self.synced:
            if not self._realign(out):
                return []
            self.synced = self.follow
        return self.p[self.j : self.j + k]

    def account(self, out: list[int]) -> None:
        """Follow the tokens the model wrote itself since the last call (its own next tokens after a
        verification, or every token while no draft was proposed)."""
        for t in out[self.seen :]:
            if self.synced and self.j < len(self.p) and self.p[self.j] == t:
                self.j += 1
                self.matched = min(self.matched + 1, len(self.p))
            else:
                self.synced = False
        self.seen = len(out)

    def update(self, draft: list[int], accepted: int) -> None:
        """Verification kept ``accepted`` of ``draft`` (the model's own next token is looked at by the
        next proposal)."""
        if not draft:
            return
        self.accepted += accepted
        self.matched = min(self.matched + accepted, len(self.p))
        self.j += accepted
        self.seen += accepted
        self.k = min(self.k * 2, self.k_max) if accepted == len(draft) else max(self.k // 2, K_MIN)
        if accepted:
            self.backoff = 1
        elif self.k == K_MIN:  # nothing accepted even at the shortest draft: back off (1, 2, 4 .. 64 steps)
            self.cooldown, self.backoff = self.backoff, min(self.backoff * 2, MAX_BACKOFF)
