"""Constrained decoding with llguidance: token masks on the engine's logits.

``Grammars`` (one per model) turns grammar text (Lark or llguidance JSON, built by the chat layer)
into a compiled ``Grammar``; compiled grammars are cached by their text, and each sequence gets a
``GrammarState`` (a copy of the compiled matcher) that yields the allowed tokens before every sample
and consumes the chosen token after it.

Budget steering (beyond Cerebras): when a sequence's remaining token budget runs low, the state
checks that a short way to close the grammar still fits; when the sampled token would leave no room,
it takes the token of a greedy "closer" instead (closing quotes/brackets first, no new items), so
strict outputs still parse when ``max_completion_tokens`` is small. The closer's cost is measured by
running it on a copy of the matcher, so it is exact for the path it takes.
"""

from __future__ import annotations

import threading
import warnings
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np

CACHE_SIZE = 256  # compiled grammars kept per model
STEER_HORIZON = 512  # budget steering looks at sequences with at most this many tokens left
STEER_EVERY = 16  # far from the end, the closing cost is re-measured every this many tokens
STEER_MARGIN = 16  # ... and every token once the budget is within the cost plus this margin
CLOSE_LIMIT = 96  # the closer gives up beyond this many tokens
REPEAT_PENALTY = 60.0  # per earlier use of a token in the same closing path


class GrammarError(ValueError):
    """The grammar does not compile (a 400 for the request that sent it)."""


@dataclass
class Grammar:
    key: str
    matcher: object  # llguidance.LLMatcher in its initial state; copied per sequence
    compile_s: float


class Grammars:
    """The compiled grammars of one model, and what masks need to know of its vocabulary."""

    def __init__(self, model, cache_size: int = CACHE_SIZE):
        self.model = model
        self.n_vocab = model.n_vocab
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Grammar] = OrderedDict()
        self._lock = threading.Lock()
        self._tok_lock = threading.Lock()
        self._tokenizer = None
        self._close_scores: np.ndarray | None = None
        self.compile_times: deque[float] = deque(maxlen=10000)  # seconds, newest last
        self.mask_times: deque[float] = deque(maxlen=100000)  # seconds per mask (mask + unpacking)

    @property
    def tokenizer(self):
        """llguidance's view of the vocabulary (built on first use: ~1 s for a 150k vocabulary)."""
        if self._tokenizer is None:
            with self._tok_lock:
                if self._tokenizer is None:
                    import llguidance.llamacpp

                    eog = [int(t) for t in np.flatnonzero(self.model.eog)]
                    with warnings.catch_warnings():  # it calls a llama.cpp function deprecated in 0.3.36
                        warnings.simplefilter("ignore", DeprecationWarning)
                        self._tokenizer = llguidance.llamacpp.lltokenizer_from_vocab(self.model.vocab, eos_token=eog)
        return self._tokenizer

    def compile(self, text: str) -> Grammar:
        """Compile (or fetch) a grammar; raises GrammarError. Thread-safe; drops the GIL while compiling."""
        with self._lock:
            g = self._cache.get(text)
            if g is not None:
                self._cache.move_to_end(text)
                return g
        import llguidance

        tok = self.tokenizer
        t0 = time.perf_counter()
        m = llguidance.LLMatcher(tok, text, log_level=0)
        dt = time.perf_counter() - t0
        if m.is_error():
            raise GrammarError(m.get_error())
        g = Grammar(text, m, dt)
        with self._lock:
            self.compile_times.append(dt)
            self._cache[text] = g
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return g

    @property
    def close_scores(self) -> np.ndarray:
        """How much each token helps to close a JSON-like structure quickly (higher is better); the
        end of generation is best whenever the grammar allows it."""
        if self._close_scores is None:
            scores = np.empty(self.n_vocab, dtype=np.float32)
            for i, p in enumerate(self.model.pieces):
                if self.model.eog[i]:  # allowed only when the output is complete: take it
                    scores[i] = 1e6
                elif not p:
                    scores[i] = -1e4
                    continue
                quotes = p.count(b'"')  # ends a string (where a string may end; else it is not allowed)
                closers = p.count(b"}") + p.count(b"]")
                commas = p.count(b",")
                openers = p.count(b"{") + p.count(b"[")
                other = len(p) - quotes - closers - commas - openers - p.count(b" ")
                scores[i] = 200 * quotes + 100 * closers - 150 * (commas + openers) - other
            self._close_scores = scores
        return self._close_scores

    def stats(self) -> dict:
        def pct(xs, q):
            return round(float(np.percentile(np.fromiter(xs, float), q)) * 1e6, 1) if xs else None

        masks, compiles = list(self.mask_times), list(self.compile_times)
        return {
            "grammars_cached": len(self._cache),
            "masks": len(masks),
            "mask_us_p50": pct(masks, 50),
            "mask_us_p99": pct(masks, 99),
            "compiles": len(compiles),
            "compile_us_p50": pct(compiles, 50),
            "compile_us_p99": pct(compiles, 99),
        }

    def state(self, grammar: Grammar) -> "GrammarState":
        return GrammarState(self, grammar.matcher.deep_copy())


class GrammarState:
    """The grammar of one sequence."""

    def __init__(self, grammars: Grammars, matcher):
        self.g = grammars
        self.m = matcher
        self.bitmask = np.full((self.g.n_vocab + 31) // 32, -1, dtype=np.int32)
        self._cost = 0  # last measured closing cost
        self._since = STEER_EVERY  # tokens since it was measured
        self._used: dict[int, int] = {}  # tokens the closer chose so far (as in closing_cost)

    # -- masks ---------------------------------------------------------------------------------
    def _fill(self, m, bitmask: np.ndarray) -> np.ndarray:
        m.unsafe_compute_mask_ptr(bitmask.ctypes.data, bitmask.nbytes)
        return np.unpackbits(bitmask.view(np.uint8), count=self.g.n_vocab, bitorder="little").view(bool)

    def allowed(self) -> np.ndarray:
        """Boolean mask of the tokens the grammar allows next (end-of-generation included when it may end)."""
        t0 = time.perf_counter()
        a = self._fill(self.m, self.bitmask)
        self.g.mask_times.append(time.perf_counter() - t0)
        return a

    def consume(self, token: int) -> None:
        self.m.consume_token(token)

    @property
    def done(self) -> bool:
        """Nothing but end-of-generation can follow (the output is complete)."""
        return self.m.is_stopped()

    @property
    def error(self) -> str:
        return self.m.get_error() if self.m.is_error() else ""

    # -- budget steering -------------------------------------------------------------------------
    def _closer_token(self, m, bitmask: np.ndarray, used: dict[int, int] | None = None) -> int | None:
        a = self._fill(m, bitmask)
        ids = np.flatnonzero(a)
        if len(ids) == 0:
            return None
        scores = self.g.close_scores[ids]
        if used:  # a token the closer already took without closing anything (e.g. inside a
            # formatted string) is worth less each time, so the closer moves on
            scores = scores - REPEAT_PENALTY * np.fromiter((used.get(int(t), 0) for t in ids), np.float32, len(ids))
        return int(ids[int(scores.argmax())])

    def closing_cost(self, m, limit: int) -> int:
        """Tokens the greedy closer needs from matcher state ``m`` (consumed) to a complete output;
        ``limit + 1`` when it needs more than ``limit``."""
        if m.is_accepting() or m.is_stopped():
            return 0
        m = m.deep_copy()
        bm = np.empty_like(self.bitmask)
        used: dict[int, int] = {}
        for steps in range(1, limit + 1):
            t = self._closer_token(m, bm, used)
            used[t] = used.get(t, 0) + 1
            if t is None or not m.consume_token(t):
                return limit + 1
            if m.is_accepting() or m.is_stopped():
                return steps
        return limit + 1

    def vet(self, token: int, remaining: int) -> int:
        """``token`` if the output can still close within the budget after it, else the closer's token.
        ``remaining`` counts the tokens left including this one."""
        if remaining > STEER_HORIZON:
            return token
        self._since += 1
        near = self._cost <= CLOSE_LIMIT and remaining <= self._cost + STEER_MARGIN
        if self._since < STEER_EVERY and not near:
            return token
        self._since = 0
        trial = self.m.deep_copy()
        cost = self.closing_cost(trial, CLOSE_LIMIT) if trial.consume_token(token) else CLOSE_LIMIT + 1
        self._cost = cost
        if cost <= remaining - 1 or cost > CLOSE_LIMIT:  # fits; or no short way to close is known
            return token
        closer = self._closer_token(self.m, np.empty_like(self.bitmask), self._used)
        if closer is None:
            return token
        self._used[closer] = self._used.get(closer, 0) + 1
        self._cost = remaining - 1  # at the edge: measure again at the next token
        return closer
