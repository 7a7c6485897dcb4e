"""Numpy sampler: temperature, top_p, seed, logit_bias, frequency/presence penalties, logprobs.

Logprobs are those of the model's own distribution (log-softmax of the raw logits), as OpenAI and
vLLM report them; temperature, top_p, biases and penalties shape only the choice of token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TOP_P_CANDIDATES = 128  # top_p first looks among this many best tokens before a full sort


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    logit_bias: dict[int, float] = field(default_factory=dict)
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass
class TokenLogprob:
    token: int
    logprob: float
    top: list[tuple[int, float]]  # (token, logprob), best first


def log_softmax(row: np.ndarray) -> np.ndarray:
    x = row.astype(np.float32, copy=True)
    x -= x.max()
    x -= np.log(np.exp(x).sum())
    return x


def top_k_indices(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values of x, largest first."""
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    k = min(k, x.shape[0])
    idx = np.argpartition(-x, k - 1)[:k]
    return idx[np.argsort(-x[idx], kind="stable")]


class SequenceSampler:
    """Sampling state of one sequence (one choice of one request)."""

    def __init__(self, params: SamplingParams, eog_ids: np.ndarray, stream_index: int = 0):
        self.p = params
        self.eog_ids = eog_ids
        if params.seed is None:
            self.rng = np.random.default_rng()
        else:
            self.rng = np.random.default_rng([params.seed & 0xFFFFFFFFFFFFFFFF, stream_index])
        self.counts: dict[int, int] = {}
        self._bias_ids = np.fromiter(params.logit_bias.keys(), dtype=np.int64, count=len(params.logit_bias))
        self._bias_vals = np.fromiter(params.logit_bias.values(), dtype=np.float32, count=len(params.logit_bias))
        self._penalised = params.frequency_penalty != 0.0 or params.presence_penalty != 0.0
        self.greedy = params.temperature <= 0.0
        self._eog_set = frozenset(int(t) for t in eog_ids)

    def _shape(self, row: np.ndarray, block_eog: bool) -> np.ndarray:
        """The logits the choice is made from (a copy when anything changes them)."""
        if not (len(self._bias_ids) or (self._penalised and self.counts) or block_eog):
            return row
        if block_eog and self.greedy and not len(self._bias_ids) and not (self._penalised and self.counts):
            best = int(row.argmax())
            if best not in self._eog_set:  # blocking end-of-generation changes nothing here
                return row
        x = row.astype(np.float32, copy=True)
        if len(self._bias_ids):
            x[self._bias_ids] += self._bias_vals
        if self._penalised and self.counts:
            ids = np.fromiter(self.counts.keys(), dtype=np.int64, count=len(self.counts))
            cnt = np.fromiter(self.counts.values(), dtype=np.float32, count=len(self.counts))
            x[ids] -= cnt * self.p.frequency_penalty + self.p.presence_penalty
        if block_eog:
            x[self.eog_ids] = -np.inf
        return x

    def sample(self, row: np.ndarray, block_eog: bool = False, allowed=None) -> tuple[int, TokenLogprob | None]:
        """Choose the next token; ``allowed`` (a grammar's ``TokenMask``) restricts the choice."""
        x = self._shape(row, block_eog)
        if self.greedy:
            tok = int(x.argmax())
            if allowed is not None and not allowed.allows(tok):
                tok = int(np.where(allowed.bool(), x, -np.inf).argmax())
        else:
            if allowed is not None:
                x = np.where(allowed.bool(), x, -np.inf)
            tok = self._sample_temperature(x)
        self.counts[tok] = self.counts.get(tok, 0) + 1
        return tok, self._logprob(row, tok)

    def override(self, row: np.ndarray, sampled: int, chosen: int) -> TokenLogprob | None:
        """The engine replaced the sampled token (budget steering): account for ``chosen`` instead."""
        self.counts[sampled] -= 1
        if not self.counts[sampled]:
            del self.counts[sampled]
        self.counts[chosen] = self.counts.get(chosen, 0) + 1
        return self._logprob(row, chosen)

    def _logprob(self, row: np.ndarray, tok: int) -> TokenLogprob | None:
        if not self.p.logprobs:
            return None
        ls = log_softmax(row)
        top = top_k_indices(ls, self.p.top_logprobs)
        return TokenLogprob(tok, float(ls[tok]), [(int(t), float(ls[t])) for t in top])

    def _sample_temperature(self, x: np.ndarray) -> int:
        z = x.astype(np.float64) / self.p.temperature
        z -= z.max()
        top_p = self.p.top_p
        if top_p < 1.0:
            cand = top_k_indices(z, TOP_P_CANDIDATES)
            probs = np.exp(z)
            total = probs.sum()
            cp = np.cumsum(probs[cand]) / total
            if cp[-1] < top_p:  # the nucleus is wider than the candidates: sort everything
                cand = np.argsort(-z, kind="stable")
                cp = np.cumsum(probs[cand]) / total
            keep = int(np.searchsorted(cp, top_p) + 1)  # smallest prefix with mass >= top_p
            cand = cand[:keep]
            p = probs[cand]
            p /= p.sum()
            return int(cand[self._choose(p)])
        probs = np.exp(z)
        probs /= probs.sum()
        return self._choose(probs)

    def _choose(self, probs: np.ndarray) -> int:
        c = np.cumsum(probs)
        u = self.rng.random() * c[-1]
        return int(min(np.searchsorted(c, u, side="right"), len(probs) - 1))
