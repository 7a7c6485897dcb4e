"""The raw llama.cpp low-level loop: the no-server ceiling wafer is measured against.

Deliberately independent of wafer's engine: its own batch, its own greedy argmax. ``greedy`` decodes
one sequence (the tests' parity reference); ``batched`` decodes many together, one llama_batch per
step (continuous batching, no HTTP, no sampling chain), for the serving benchmark.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections import deque

import llama_cpp as lc
import numpy as np


def _quiet() -> None:
    if os.environ.get("WAFER_LLAMA_LOG"):
        return
    cb = lc.llama_log_callback(lambda level, text, data: None)
    _quiet.cb = cb  # keep alive
    lc.llama_log_set(cb, ctypes.c_void_p(0))


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


class RawLoop:
    def __init__(self, path: str, n_ctx: int = 4096, threads: int | None = None, flash_attn: bool = True,
                 n_seq: int = 1):
        _quiet()
        lc.llama_backend_init()
        mp = lc.llama_model_default_params()
        self.model = lc.llama_model_load_from_file(path.encode(), mp)
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        cp = lc.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = 512
        cp.n_ubatch = 512
        cp.n_seq_max = n_seq
        cp.kv_unified = n_seq > 1  # one pool: sequences may share a prompt prefix's cells
        cp.n_threads = cp.n_threads_batch = threads or os.cpu_count() or 1
        cp.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = lc.llama_init_from_model(self.model, cp)
        self.n_seq = n_seq
        self.n_batch = 512
        self.batch = lc.llama_batch_init(max(512, n_seq), 0, 1)
        self._eog: np.ndarray | None = None

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

    def _decode(self, tokens: list[int], pos0: int, seq: int = 0, logits_last: bool = True) -> None:
        b = self.batch
        for i, t in enumerate(tokens):
            b.token[i] = t
            b.pos[i] = pos0 + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits_last and i == len(tokens) - 1
        b.n_tokens = len(tokens)
        if lc.llama_decode(self.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")

    def greedy(self, prompt: list[int], n_new: int, stop_at_eog: bool = True, chunk: int = 512) -> dict:
        """Greedy-decode up to n_new tokens (prompt prefilled ``chunk`` tokens at a time);
        returns tokens, TTFT and decode time."""
        lc.llama_memory_clear(lc.llama_get_memory(self.ctx), True)
        t0 = time.perf_counter()
        for i in range(0, len(prompt), chunk):
            self._decode(prompt[i : i + chunk], i)
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
            self._decode([tok], pos)
            pos += 1
        t_end = time.perf_counter()
        return {
            "tokens": out,
            "ttft": (t_first or t_end) - t0,
            "decode_time": t_end - (t_first or t_end),
            "decode_tok_s": (len(out) - 1) / (t_end - t_first) if t_first and len(out) > 1 and t_end > t_first else 0.0,
        }

    def _prefill(self, tokens: list[int], seq: int, pos0: int, logits_last: bool = True) -> None:
        for i in range(0, len(tokens), self.n_batch):
            part = tokens[i : i + self.n_batch]
            self._decode(part, pos0 + i, seq, logits_last and i + len(part) == len(tokens))

    def _argmax(self, rows: int, ban_eog: bool) -> np.ndarray:
        logits = np.ctypeslib.as_array(lc.llama_get_logits(self.ctx), shape=(rows, self.n_vocab))
        if ban_eog:
            logits[:, self.eog_ids] = -np.inf
        return logits.argmax(axis=1)

    def batched(self, prompts: list[list[int]], n_out: list[int], concurrency: int,
                arrivals: list[float] | None = None, ban_eog: bool = True, share_prefix: bool = True,
                on_done=None) -> tuple[list[dict], float]:
        """Greedy-decode every prompt, up to ``concurrency`` sequences at a time in one batch per step.

        A sequence starts when a slot is free (and its arrival offset, in seconds from the start,
        has passed): its prompt is prefilled, then it decodes one token per step with the others
        until it has ``n_out`` tokens (or an end-of-generation token when ``ban_eog`` is false).
        With ``share_prefix`` the prompts' common prefix is prefilled once, when the first one
        starts, and copied to the others (what a server's prompt cache gives). Returns per prompt
        {t_send, t_first, t_last, t_end, itl, tokens, n_tokens, prompt_tokens, cached_tokens}
        (perf_counter times) and the wall time.
        """
        if concurrency + 1 > self.n_seq:
            raise ValueError(f"concurrency {concurrency} needs n_seq >= {concurrency + 1}")
        mem = lc.llama_get_memory(self.ctx)
        lc.llama_memory_clear(mem, True)
        shared = common_prefix(prompts) if share_prefix and len(prompts) > 1 else 0
        shared = max(0, min(shared, min((len(p) for p in prompts), default=1) - 1))  # each keeps a token to prefill
        prefix_seq, prefix_ready = self.n_seq - 1, False
        free = list(range(concurrency))[::-1]
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
                lc.llama_memory_seq_rm(mem, seq, -1, -1)
                del active[seq]
                free.append(seq)
                if on_done:
                    on_done(r)

        while pending or active:
            while pending and free and (arrivals is None or t0 + arrivals[pending[0]] <= time.perf_counter()):
                i, seq = pending.popleft(), free.pop()
                rec = {"t_send": time.perf_counter(), "itl": [], "tokens": [], "n_tokens": 0,
                       "prompt_tokens": len(prompts[i]), "cached_tokens": shared if prefix_ready else 0}
                results[i] = rec
                start = 0
                if shared:
                    if not prefix_ready:
                        self._prefill(prompts[i][:shared], prefix_seq, 0, logits_last=False)
                        prefix_ready = True
                    lc.llama_memory_seq_cp(mem, prefix_seq, seq, -1, -1)
                    start = shared
                self._prefill(prompts[i][start:], seq, start)
                active[seq] = {"i": i, "rec": rec, "pos": len(prompts[i])}
                emit(seq, int(self._argmax(1, ban_eog)[0]), time.perf_counter())
            if not active:
                if pending:
                    time.sleep(max(0.0, t0 + arrivals[pending[0]] - time.perf_counter()))
                continue
            seqs = list(active)
            b = self.batch
            for j, s in enumerate(seqs):
                b.token[j] = active[s]["last"]
                b.pos[j] = active[s]["pos"]
                b.n_seq_id[j] = 1
                b.seq_id[j][0] = s
                b.logits[j] = True
                active[s]["pos"] += 1
            b.n_tokens = len(seqs)
            if lc.llama_decode(self.ctx, b) != 0:
                raise RuntimeError("llama_decode failed")
            toks = self._argmax(len(seqs), ban_eog)
            now = time.perf_counter()
            for s, tok in zip(seqs, toks):
                emit(s, int(tok), now)
        return results, time.perf_counter() - t0

    def close(self) -> None:
        lc.llama_batch_free(self.batch)
        lc.llama_free(self.ctx)
        lc.llama_model_free(self.model)
