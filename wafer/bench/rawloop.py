"""The raw llama.cpp low-level loop: the no-server ceiling wafer is measured against.

Deliberately independent of wafer's engine: its own batch, its own greedy argmax. ``greedy`` decodes
one sequence (the tests' parity reference); ``batched`` decodes many together, one llama_batch per
step (continuous batching, no HTTP, no sampling chain), for the serving benchmark.

KV layout: one stream per sequence (``kv_unified = false``), as wafer's engine and llama-server with
``--parallel`` use it. A context of ``n_seq`` sequences holds ``n_seq`` streams of ``n_ctx / n_seq``
cells each (llama.cpp pads that to a multiple of 256: ``n_ctx_seq``, all allocated up front), and a
sequence's attention spans only its own stream. Sequence id i is stream i; an id >= ``n_seq`` aborts
the process. The facts the loop respects:

- llama.cpp splits one llama_decode into ubatches, each taking, in batch order, sequences with
  consecutive ids and the same number of tokens from each; every ubatch is a pass over the weights.
  So batch entries go in seq-id order, and running sequences take the lowest free id (a packed range).
- Sharing a prompt prefix between streams means copying it. The only legal cross-stream copy is the
  whole stream, ``llama_memory_seq_cp(mem, src, dst, -1, -1)``, then ``llama_memory_seq_rm(mem, dst,
  n_keep, -1)`` (a partial range across streams aborts the process). The copy happens at the start of
  the next llama_decode: until then the destination is not read and the source not written.

``greedy`` uses sequence 0 only. Built with ``n_seq = 1`` (the default) the context is one stream of
``n_ctx`` cells; a lone sequence computes the same there as in one stream of a multi-stream context
(one sequence gives the same ubatches either way, and attention spans only its own cells), so a
1-stream loop is the single-sequence reference for any engine layout.
"""

from __future__ import annotations

import ctypes
import heapq
import os
import time
from collections import deque

import llama_cpp as lc
import numpy as np

_LOG = {}  # the log callback in use, kept alive


def _log_to(fn=None) -> None:
    """Send llama.cpp's log to ``fn(level, text)``; None: nowhere, or to stderr when WAFER_LLAMA_LOG is set."""
    if fn is None and os.environ.get("WAFER_LLAMA_LOG"):
        import llama_cpp._logger as logger

        _LOG["cb"] = logger.llama_log_callback
    else:
        _LOG["cb"] = lc.llama_log_callback(lambda level, text, data: fn(level, text) if fn else None)
    lc.llama_log_set(_LOG["cb"], ctypes.c_void_p(0))


def common_prefix(seqs: list[list[int]]) -> int:
    """Length of the longest prefix every sequence shares."""
    if not seqs:
        return 0
    n = min(len(s) for s in seqs)
    first = seqs[0]
    for i in range(n):
        if any(s[i] != first[i] for s in seqs[1:]):
            return i
    return n


Entry = tuple[int, list[int], int]  # (seq id, tokens, position of the first one)


class RawLoop:
    def __init__(self, path: str, n_ctx: int = 4096, threads: int | None = None, flash_attn: bool = True,
                 n_seq: int = 1, n_batch: int = 512):
        """``n_seq`` KV streams sharing ``n_ctx`` cells (``n_ctx_seq`` each, read back from llama.cpp)."""
        _log_to(None)
        lc.llama_backend_init()
        mp = lc.llama_model_default_params()
        self.model = lc.llama_model_load_from_file(path.encode(), mp)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        self.n_seq, self.n_batch = n_seq, n_batch
        self.threads = threads or os.cpu_count() or 1
        self.flash_attn = flash_attn
        self.ctx = self._context(n_ctx, n_seq, self.threads)
        self.n_ctx = lc.llama_n_ctx(self.ctx)
        self.n_ctx_seq = lc.llama_n_ctx_seq(self.ctx)
        self.mem = lc.llama_get_memory(self.ctx)
        self.batch = lc.llama_batch_init(max(n_batch, n_seq), 0, 1)
        self._eog: np.ndarray | None = None

    def _context(self, n_ctx: int, n_seq: int, threads: int):
        cp = lc.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = cp.n_ubatch = self.n_batch
        cp.n_seq_max = n_seq
        cp.kv_unified = False  # one stream per sequence
        cp.n_threads = cp.n_threads_batch = threads
        cp.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        ctx = lc.llama_init_from_model(self.model, cp)
        if not ctx:
            raise RuntimeError(f"llama.cpp could not create a context of {n_ctx} cells in {n_seq} streams")
        return ctx

    @property
    def eog_ids(self) -> np.ndarray:
        """Ids of the end-of-generation tokens."""
        if self._eog is None:
            eog = [t for t in range(self.n_vocab) if lc.llama_vocab_is_eog(self.vocab, t)]
            self._eog = np.array(eog, dtype=np.int64)
        return self._eog

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        data = text.encode()
        buf = (lc.llama_token * (len(data) + 8))()
        n = lc.llama_tokenize(self.vocab, data, len(data), buf, len(buf), add_special, True)
        return list(buf[:n])

    # -- KV and batches ------------------------------------------------------------------------

    def clear(self) -> None:
        lc.llama_memory_clear(self.mem, True)

    def remove(self, seq: int, p0: int = -1) -> None:
        """Drop ``seq``'s cells from position ``p0`` on (all of them by default)."""
        lc.llama_memory_seq_rm(self.mem, seq, p0, -1)

    def copy_stream(self, src: int, dst: int, n_keep: int) -> None:
        """Give ``dst`` the first ``n_keep`` positions of ``src``: the whole stream is copied (the only
        cross-stream copy llama.cpp allows), then the rest removed. The copy takes place at the start of
        the next llama_decode: until then neither reads ``dst`` nor writes ``src``."""
        lc.llama_memory_seq_cp(self.mem, src, dst, -1, -1)
        lc.llama_memory_seq_rm(self.mem, dst, n_keep, -1)

    def decode(self, entries: list[Entry], logits_last: bool = True, all_logits: bool = False) -> None:
        """One llama_decode of ``entries`` in the order given, with logits at each entry's last token (or at
        every token)."""
        b = self.batch
        i = 0
        for seq, tokens, pos0 in entries:
            for j, t in enumerate(tokens):
                b.token[i] = t
                b.pos[i] = pos0 + j
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = seq
                b.logits[i] = all_logits or (logits_last and j == len(tokens) - 1)
                i += 1
        b.n_tokens = i
        if lc.llama_decode(self.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")

    def prefill(self, tokens: list[int], seq: int, pos0: int = 0, logits_last: bool = True, chunk: int = 0) -> None:
        """Decode ``tokens`` of ``seq`` from ``pos0``, ``chunk`` (default n_batch) tokens per llama_decode."""
        chunk = min(chunk or self.n_batch, self.n_batch)
        for i in range(0, len(tokens), chunk):
            part = tokens[i : i + chunk]
            self.decode([(seq, part, pos0 + i)], logits_last and i + len(part) == len(tokens))

    def ubatches(self, shape: list[tuple[int, int]]) -> int:
        """How many ubatches llama.cpp splits a batch of ``shape`` [(seq id, tokens)] into, in that order.

        Measured, not modelled: the same batch shape is decoded once in a scratch context with this
        loop's layout (streams, batch size, n_seq) made with LLAMA_BATCH_DEBUG set, and the ubatches
        llama.cpp's batch splitter logs are counted. Only the sequence ids, token counts and order matter
        to the split; the scratch context is freed again.
        """
        longest = max((n for _, n in shape), default=1)
        per_seq = max(256, -(-longest // 256) * 256)
        old = os.environ.get("LLAMA_BATCH_DEBUG")
        os.environ["LLAMA_BATCH_DEBUG"] = "1"  # read once, when the context is made
        try:
            scratch = self._context(per_seq * self.n_seq, self.n_seq, 1)
        finally:
            if old is None:
                del os.environ["LLAMA_BATCH_DEBUG"]
            else:
                os.environ["LLAMA_BATCH_DEBUG"] = old
        counted = [0]

        def count(level: int, text: bytes) -> None:
            counted[0] += b"added ubatch" in text

        b = lc.llama_batch_init(sum(n for _, n in shape), 0, 1)
        try:
            i = 0
            for seq, n in shape:
                for j in range(n):
                    b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = 0, j, 1, j == n - 1
                    b.seq_id[i][0] = seq
                    i += 1
            b.n_tokens = i
            _log_to(count)
            try:
                ok = lc.llama_decode(scratch, b) == 0
            finally:
                _log_to(None)
            if not ok:
                raise RuntimeError("llama_decode failed")
        finally:
            lc.llama_batch_free(b)
            lc.llama_free(scratch)
        return counted[0]

    # -- one sequence --------------------------------------------------------------------------

    def greedy(self, prompt: list[int], n_new: int, stop_at_eog: bool = True, chunk: int = 512) -> dict:
        """Greedy-decode up to n_new tokens as sequence 0 alone (prompt prefilled ``chunk`` tokens at a
        time); returns tokens, TTFT and decode time."""
        self.clear()
        t0 = time.perf_counter()
        self.prefill(prompt, 0, chunk=chunk)
        out: list[int] = []
        pos = len(prompt)
        t_first = None
        while len(out) < n_new:
            row = np.ctypeslib.as_array(lc.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
            tok = int(row.argmax())
            if t_first is None:
                t_first = time.perf_counter()
            out.append(tok)
            if stop_at_eog and lc.llama_vocab_is_eog(self.vocab, tok):
                break
            if len(out) == n_new:
                break
            self.decode([(0, [tok], pos)])
            pos += 1
        t_end = time.perf_counter()
        return {
            "tokens": out,
            "ttft": (t_first or t_end) - t0,
            "decode_time": t_end - (t_first or t_end),
            "decode_tok_s": (len(out) - 1) / (t_end - t_first) if t_first and len(out) > 1 and t_end > t_first else 0.0,
        }

    # -- many sequences ------------------------------------------------------------------------

    def _argmax(self, rows: int, ban_eog: bool) -> np.ndarray:
        logits = np.ctypeslib.as_array(lc.llama_get_logits(self.ctx), shape=(rows, self.n_vocab))
        if ban_eog:
            logits[:, self.eog_ids] = -np.inf
        return logits.argmax(axis=1)

    def batched(self, prompts: list[list[int]], n_out: list[int], concurrency: int,
                arrivals: list[float] | None = None, ban_eog: bool = True, share_prefix: bool = True,
                on_done=None) -> tuple[list[dict], float]:
        """Greedy-decode every prompt, up to ``concurrency`` sequences at a time in one batch per step.

        A sequence starts when an id is free (the lowest one: running sequences stay on a packed range)
        and its arrival offset, in seconds from the start, has passed: its prompt is prefilled, then it
        decodes one token per step with the others (entries in seq-id order) until it has ``n_out``
        tokens (or an end-of-generation token when ``ban_eog`` is false). With ``share_prefix`` the
        prompts' common prefix is prefilled once, into the last stream (id n_seq - 1, outside the running
        range), when the first one starts, and copied to each new sequence's stream (what a server's
        prompt cache gives). Returns per prompt {t_send, t_first, t_last, t_end, itl, tokens, n_tokens,
        prompt_tokens, cached_tokens} (perf_counter times) and the wall time.
        """
        shared = common_prefix(prompts) if share_prefix and len(prompts) > 1 else 0
        shared = max(0, min(shared, min((len(p) for p in prompts), default=1) - 1))  # each keeps a token to prefill
        need = concurrency + (1 if shared else 0)
        if need > self.n_seq:
            raise ValueError(f"concurrency {concurrency} needs n_seq >= {need}")
        self.clear()
        holder, prefix_ready = self.n_seq - 1, False
        free = list(range(concurrency))  # a heap: the lowest free id first
        active: dict[int, dict] = {}
        pending = deque(range(len(prompts)))
        results: list[dict] = [{} for _ in prompts]
        eog = set(self.eog_ids.tolist()) if not ban_eog else set()
        t0 = time.perf_counter()

        def emit(seq: int, tok: int, now: float) -> None:
            st = active[seq]
            r = st["rec"]
            r["tokens"].append(tok)
            if r["n_tokens"]:
                r["itl"].append(now - r["t_last"])
            else:
                r["t_first"] = now
            r["t_last"] = now
            r["n_tokens"] += 1
            st["last"] = tok
            if r["n_tokens"] >= n_out[st["i"]] or tok in eog:
                r["t_end"] = now
                self.remove(seq)
                del active[seq]
                heapq.heappush(free, seq)
                if on_done:
                    on_done(r)

        while pending or active:
            while pending and free and (arrivals is None or t0 + arrivals[pending[0]] <= time.perf_counter()):
                i, seq = pending.popleft(), heapq.heappop(free)
                rec = {"t_send": time.perf_counter(), "itl": [], "tokens": [], "n_tokens": 0,
                       "prompt_tokens": len(prompts[i]), "cached_tokens": shared if prefix_ready else 0}
                results[i] = rec
                start = 0
                if shared:
                    if not prefix_ready:
                        self.prefill(prompts[i][:shared], holder, 0, logits_last=False)
                        prefix_ready = True
                    self.copy_stream(holder, seq, shared)  # done by the prefill below
                    start = shared
                self.prefill(prompts[i][start:], seq, start)
                active[seq] = {"i": i, "rec": rec, "pos": len(prompts[i])}
                emit(seq, int(self._argmax(1, ban_eog)[0]), time.perf_counter())
            if not active:
                if pending:
                    time.sleep(max(0.0, t0 + arrivals[pending[0]] - time.perf_counter()))
                continue
            seqs = sorted(active)
            self.decode([(s, [active[s]["last"]], active[s]["pos"]) for s in seqs])
            for s in seqs:
                active[s]["pos"] += 1
            toks = self._argmax(len(seqs), ban_eog)
            now = time.perf_counter()
            for s, tok in zip(seqs, toks):
                emit(s, int(tok), now)
        return results, time.perf_counter() - t0

    def close(self) -> None:
        lc.llama_batch_free(self.batch)
        lc.llama_free(self.ctx)
        lc.llama_model_free(self.model)
