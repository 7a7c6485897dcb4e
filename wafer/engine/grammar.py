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


OUT, STR, ESC = 0, 1, 2  # JSON lexical state: outside strings, inside one, after a backslash in one
TRIGGER = b"<tool_call>"  # a tool call's JSON starts after it (free text before may hold quotes)


def scan(state: int, piece: bytes) -> int:
    """The JSON string state after ``piece``."""
    for b in piece:
        if state == OUT:
            state = STR if b == 0x22 else OUT
        elif state == STR:
            state = ESC if b == 0x5C else OUT if b == 0x22 else STR
        else:
            state = STR
    return state


def _score_from_out(p: bytes) -> float:
    """How much ``p``, written outside any string, helps to close the JSON in few tokens."""
    closers = commas = openers = in_str = 0
    word = bytearray()
    state = OUT
    for b in p:
        if state != OUT:
            in_str += 1
            state = scan(state, bytes([b]))
        elif b == 0x22:
            state = STR
        elif b in b"}]":
            closers += 1
        elif b == 0x2C:
            commas += 1
        elif b in b"{[":
            openers += 1
        elif b != 0x20:
            word.append(b)
    # a word completes a literal (true, false, null) in fewer tokens when longer; digits and signs
    # only lengthen a number
    other = len(word) * 0.5 if word.isalpha() else -float(len(word) + word.startswith(b"-"))  # "-" needs a digit
    unfinished = 300 if state != OUT else 0  # opens a string it does not close
    return 100 * closers + 50 * min(commas, 1) - 150 * openers - unfinished - in_str + other


def closer_scores(pieces: list[bytes], eog: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every token for the greedy closer: (outside a string, inside a string).

    Outside: closing brackets first, then a comma (to the next required property; where "]" or "}"
    may close, they win), never opening containers or strings that stay open. Inside: end the string
    at once (then as outside); where it may not end yet (a format, a pattern, a minimum length),
    single characters, which the repeat penalty rotates through. End of generation beats everything
    wherever the grammar allows it.
    """
    out = np.empty(len(pieces), dtype=np.float32)
    inside = np.empty(len(pieces), dtype=np.float32)
    for i, p in enumerate(pieces):
        if eog[i]:
            out[i] = inside[i] = 1e6
            continue
        if not p:
            out[i] = inside[i] = -1e4
            continue
        out[i] = _score_from_out(p)
        end = -1
        state = STR
        for k in range(len(p)):
            state = scan(state, p[k : k + 1])
            if state == OUT:
                end = k
                break
        inside[i] = 1000 - end + _score_from_out(p[end + 1 :]) if end >= 0 else -float(len(p))
    return out, inside


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
        self._close_scores: tuple[np.ndarray, np.ndarray] | None = None
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
    def close_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """The closer's token scores outside and inside a JSON string (see ``closer_scores``)."""
        if self._close_scores is None:
            self._close_scores = closer_scores(self.model.pieces, self.model.eog)
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
        self.json_state = OUT
        self._tail = b""  # the last bytes of output, to see a tool-call trigger split over tokens

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
        self.json_state = self._scan(token)
        self._tail = (self._tail + self.g.model.pieces[token])[-len(TRIGGER) :]

    def _scan(self, token: int) -> int:
        """The JSON string state after ``token`` (a tool call's JSON starts fresh after its trigger)."""
        piece = self.g.model.pieces[token]
        if (self._tail + piece).endswith(TRIGGER):
            return OUT
        return scan(self.json_state, piece)

    @property
    def done(self) -> bool:
        """Nothing but end-of-generation can follow (the output is complete)."""
        return self.m.is_stopped()

    @property
    def error(self) -> str:
        return self.m.get_error() if self.m.is_error() else ""

    # -- budget steering -------------------------------------------------------------------------
    def _closer_token(self, m, bitmask: np.ndarray, state: int, used: dict[int, int] | None = None) -> int | None:
        a = self._fill(m, bitmask)
        ids = np.flatnonzero(a)
        if len(ids) == 0:
            return None
        scores = self.g.close_scores[0 if state == OUT else 1][ids]
        if used:  # a token the closer already took without closing anything (e.g. inside a
            # formatted string) is worth less each time, so the closer moves on
            scores = scores - REPEAT_PENALTY * np.fromiter((used.get(int(t), 0) for t in ids), np.float32, len(ids))
        return int(ids[int(scores.argmax())])

    def closing_cost(self, m, state: int, limit: int) -> int:
        """Tokens the greedy closer needs from matcher state ``m`` (and JSON string ``state``) to a
        complete output; ``limit + 1`` when it needs more than ``limit``."""
        if m.is_accepting() or m.is_stopped():
            return 0
        m = m.deep_copy()
        bm = np.empty_like(self.bitmask)
        used: dict[int, int] = {}
        pieces = self.g.model.pieces
        for steps in range(1, limit + 1):
            t = self._closer_token(m, bm, state, used)
            if t is None or not m.consume_token(t):
                return limit + 1
            used[t] = used.get(t, 0) + 1
            state = scan(state, pieces[t])
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
        ok = trial.consume_token(token)
        cost = self.closing_cost(trial, self._scan(token), CLOSE_LIMIT) if ok else CLOSE_LIMIT + 1
        self._cost = cost
        if cost <= remaining - 1 or cost > CLOSE_LIMIT:  # fits; or no short way to close is known
            return token
        closer = self._closer_token(self.m, np.empty_like(self.bitmask), self.json_state, self._used)
        if closer is None:
            return token
        self._used[closer] = self._used.get(closer, 0) + 1
        self._cost = remaining - 1  # at the edge: measure again at the next token
        return closer
