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
STEER_EVERY = 32  # far from the end, the closing cost is re-measured every this many tokens
STEER_MARGIN = 16  # ... and every structural token once the budget is within the cost plus this margin
STEER_TIGHT = 4  # ... and every token once it is within the cost plus this
CLOSE_LIMIT = 96  # the closer gives up beyond this many tokens
REPEAT_PENALTY = 60.0  # per earlier use of a token in the same closing path
CLOSER_TOP = 32  # candidates the closer tries one by one before it computes a full mask


class GrammarError(ValueError):
    """The grammar does not compile (a 400 for the request that sent it)."""


@dataclass
class Grammar:
    matcher: object  # llguidance.LLMatcher in its initial state; copied per sequence


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
            # a comma moves on to the next property; after a bracket it opens another item instead
            commas += 1 if not closers else -3
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
        self._structural: np.ndarray | None = None
        self._closer_order: tuple[np.ndarray, np.ndarray] | None = None
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
        g = Grammar(m)
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

    @property
    def closer_order(self) -> tuple[np.ndarray, np.ndarray]:
        """The best CLOSER_TOP tokens for the closer, best first (outside, inside a string)."""
        if self._closer_order is None:
            self._closer_order = tuple(np.argsort(-sc, kind="stable")[:CLOSER_TOP] for sc in self.close_scores)
        return self._closer_order

    def warm(self) -> None:
        """Build what grammars need of the vocabulary (seconds of CPU on a 150k vocabulary) ahead of
        the first structured request."""
        _ = self.tokenizer, self.closer_order, self.structural

    @property
    def structural(self) -> np.ndarray:
        """Tokens with a JSON structural character (only these can change how far the end is)."""
        if self._structural is None:
            chars = set(b'{}[],:"\\')
            self._structural = np.array([bool(chars.intersection(p)) for p in self.model.pieces], dtype=bool)
        return self._structural

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


class TokenMask:
    """A grammar's bitmask over the vocabulary; unpacked to booleans only when a sampler needs them
    (greedy sampling usually just tests its best token)."""

    __slots__ = ("bits", "n", "_bool")

    def __init__(self, bits: np.ndarray, n: int):
        self.bits = bits
        self.n = n
        self._bool: np.ndarray | None = None

    def allow(self, token: int) -> None:
        """Also allow ``token`` (the mask is this step's own copy)."""
        self.bits[token >> 5] |= np.int32(np.uint32(1 << (token & 31)).view(np.int32))
        self._bool = None

    def allows(self, token: int) -> bool:
        return bool((int(self.bits[token >> 5]) >> (token & 31)) & 1)

    def any(self) -> bool:
        return bool(self.bits.any())

    def bool(self) -> np.ndarray:
        if self._bool is None:
            self._bool = np.unpackbits(self.bits.view(np.uint8), count=self.n, bitorder="little").view(bool)
        return self._bool


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
    def allowed(self) -> "TokenMask":
        """The tokens the grammar allows next (end-of-generation included when it may end)."""
        t0 = time.perf_counter()
        self.m.unsafe_compute_mask_ptr(self.bitmask.ctypes.data, self.bitmask.nbytes)
        self.g.mask_times.append(time.perf_counter() - t0)
        return TokenMask(self.bitmask, self.g.n_vocab)

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
    def _closer_token(
        self, m, bitmask: np.ndarray, state: int, used: dict[int, int] | None = None, forced: bool = True
    ) -> int | None:
        """The closer's next token: the one the grammar forces, else the best-scored one it allows (less each time it was
        used, so that inside e.g. a formatted string the closer moves on). The best candidates are
        tried one by one (under a microsecond each); a full mask only when none of them fits."""
        ff = m.compute_ff_tokens() if forced else None
        if ff:  # as closing_cost counts them
            return ff[0]
        inside = state != OUT
        scores = self.g.close_scores[inside]
        best, best_score = None, -np.inf
        for t in self.g.closer_order[inside]:
            t = int(t)
            base = float(scores[t])
            if base <= best_score:
                break
            score = base - REPEAT_PENALTY * used.get(t, 0) if used else base
            if score > best_score and m.validate_tokens([t]):
                best, best_score = t, score
        if best is not None:
            return best
        m.unsafe_compute_mask_ptr(bitmask.ctypes.data, bitmask.nbytes)
        allowed = TokenMask(bitmask, self.g.n_vocab).bool()
        sc = np.where(allowed, scores, -np.inf)
        if used:
            ids = np.fromiter(used.keys(), np.int64, len(used))
            sc[ids] -= REPEAT_PENALTY * np.fromiter(used.values(), np.float32, len(used))
        best = int(sc.argmax())
        return best if allowed[best] else None

    def closing_cost(self, m, state: int, limit: int) -> int:
        """Tokens the greedy closer needs from matcher state ``m`` (and JSON string ``state``) to a
        complete output; ``limit + 1`` when it needs more than ``limit``. Stretches the grammar
        forces (property names, separators) are taken in one go without computing masks."""
        if m.is_accepting() or m.is_stopped():
            return 0
        m = m.deep_copy()
        bm = np.empty_like(self.bitmask)
        used: dict[int, int] = {}
        pieces = self.g.model.pieces
        steps = 0
        while steps < limit:
            forced = m.compute_ff_tokens()
            if forced:
                if not m.consume_tokens(forced):
                    return limit + 1
                steps += len(forced)
                for t in forced:
                    used[t] = used.get(t, 0) + 1
                    state = scan(state, pieces[t])
            else:
                t = self._closer_token(m, bm, state, used, forced=False)
                if t is None or not m.consume_token(t):
                    return limit + 1
                used[t] = used.get(t, 0) + 1
                state = scan(state, pieces[t])
                steps += 1
            if m.is_accepting() or m.is_stopped():
                return steps if steps <= limit else limit + 1
        return limit + 1

    def vet(self, token: int, remaining: int) -> int:
        """``token`` if the output can still close within the budget after it, else the closer's token.
        ``remaining`` counts the tokens left including this one."""
        if remaining > STEER_HORIZON:
            return token
        self._since += 1
        slack = remaining - 1 - self._cost
        near = self._cost <= CLOSE_LIMIT and slack < STEER_MARGIN
        if self._since < STEER_EVERY and not near:
            return token
        if near and slack > STEER_TIGHT and not self.g.structural[token]:
            return token  # text inside a string or digits of a number: the way to close is unchanged
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
