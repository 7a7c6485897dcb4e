"""The engine: one thread per model driving llama.cpp, fed through a thread-safe inbox.

``submit`` hands a tokenized request to the engine thread and returns at once; the engine calls the
request's ``sink`` with lists of events (``ChoiceDelta``, then ``RequestDone`` or
``RequestFailed``) from its own thread. The server's sink forwards them to its event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

from .grammar import Grammars
from .events import LogprobEntry, RequestDone, RequestFailed
from .llama import ContextConfig, LlamaContext, LlamaModel
from .output import OutputText, to_entry
from .kv_cache import KVCache
from .sampler import log_softmax, top_k_indices
from .scheduler import QueueFull, Scheduler, Work, enqueue, over_queue_threshold, queue_threshold_exceeded
from .sequence import GenerationParams, Request, Sequence
from .step_costs import StepCosts

log = logging.getLogger("wafer.engine")

__all__ = ["Engine", "EngineConfig", "QueueFull", "ContextOverflow"]


class ContextOverflow(ValueError):
    """The prompt plus the requested tokens do not fit the model's context."""


@dataclass
class EngineConfig:
    ctx_size: int = 0  # per-request context = cells per KV stream; 0: the model's own, within kv_memory
    kv_cells: int = 0  # total KV cells over all streams; 0: parallel x ctx_size
    parallel: int = 8  # KV streams = concurrent sequences (n > 1 uses n of them)
    token_budget: int = 256  # tokens per step (decodes + drafts + prefill chunks) while sequences decode
    prefill_budget: int = 1024  # tokens per step when no sequence is decoding (nobody waits on a step)
    max_waiting: int = 256  # queued requests beyond which submit() raises QueueFull
    threads: int = 0  # 0: all cores
    flash_attn: bool = True
    prefix_cache: bool = True
    cache_ram: int = 2048  # MiB of host memory for KV snapshots (0: none; resident prefixes are still reused)
    kv_memory: int = 0  # MiB the KV streams may take when ctx_size and kv_cells are 0; 0: min(RAM / 4, 8 GiB)
    cache_ttl_min: float = 300.0  # cached prefixes unused for less than this are evicted last
    cache_ttl_max: float = 3600.0  # cached prefixes unused for this long are dropped


def physical_memory() -> int:
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def size_streams(cfg: EngineConfig, n_ctx_train: int, bytes_per_token: int) -> tuple[int, str]:
    """Cells per KV stream (= the per-request context) and what limits them: the model's own context,
    --ctx-size, --kv-size, or the KV memory budget. llama.cpp then rounds it up to a multiple of 256."""
    own = n_ctx_train or 4096
    parallel = max(1, cfg.parallel)
    if cfg.kv_cells:
        per, why = cfg.kv_cells // parallel, "--kv-size / --parallel"
        if cfg.ctx_size and cfg.ctx_size < per:
            per, why = cfg.ctx_size, "--ctx-size"
        return max(per, 1), why
    if cfg.ctx_size:
        return cfg.ctx_size, "--ctx-size"
    budget = (cfg.kv_memory << 20) if cfg.kv_memory else min(physical_memory() // 4, 8 << 30)
    fit = budget // (parallel * bytes_per_token) // 256 * 256
    if fit >= own:
        return own, "the model's context"
    return max(fit, 256), "the KV memory budget (--kv-memory)"


class Engine:
    def __init__(self, model_path: str, config: EngineConfig | None = None, model_id: str = "", clock=None):
        import os

        cfg = config or EngineConfig()
        self.model = LlamaModel(model_path)
        self.model_id = model_id
        self.config = cfg
        per_stream, self.ctx_limited_by = size_streams(cfg, self.model.n_ctx_train, self.model.kv_bytes_per_token)
        threads = cfg.threads or os.cpu_count() or 1
        self.ctx = LlamaContext(
            self.model,
            ContextConfig(
                n_seq=min(max(1, cfg.parallel), 256),
                n_ctx_seq=per_stream,
                n_batch=max(cfg.token_budget, cfg.prefill_budget, cfg.parallel),
                n_threads=threads,
                flash_attn=cfg.flash_attn,
            ),
        )
        self.ctx_size = self.ctx.n_ctx_seq  # the real per-request limit, as llama.cpp sized the streams
        self.kv_cells = self.ctx.n_ctx
        self.kv = KVCache(self.ctx, cfg.prefix_cache, cfg.cache_ram << 20, cfg.cache_ttl_min, cfg.cache_ttl_max,
                          **({"clock": clock} if clock else {}))
        self.scheduler = Scheduler(self.kv, cfg.token_budget, cfg.max_waiting, prefill_budget=cfg.prefill_budget,
                                   n_ubatch=self.ctx.n_ubatch)
        self.pieces = self.model.pieces
        self.grammars = Grammars(self.model)
        self._special_sets: dict[frozenset[int], list[bytes]] = {}
        self.eog = self.model.eog
        self._inbox: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self.steps = 0
        self.tokens_generated = 0
        self.step_costs = StepCosts()
        self._thread = threading.Thread(target=self._loop, name=f"wafer-engine-{model_id}", daemon=True)
        self._thread.start()

    # -- public, thread-safe -----------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool, parse_special: bool = True) -> list[int]:
        return self.model.tokenize(text, add_special, parse_special)

    def check_fits(self, prompt_len: int, params: GenerationParams) -> None:
        n = params.best_of or params.n
        limit = (f"the context size of this server is {self.ctx_size} tokens per request "
                 f"(set by {self.ctx_limited_by}; the model's own is {self.model.n_ctx_train})")
        if prompt_len >= self.ctx_size:
            raise ContextOverflow(
                f"Please reduce the length of the messages or completion. The prompt has {prompt_len} "
                f"tokens and {limit}."
            )
        mx = params.max_new_tokens
        if mx is not None and mx >= 0 and prompt_len + mx > self.ctx_size:
            raise ContextOverflow(
                f"Please reduce the length of the messages or completion. The prompt has {prompt_len} "
                f"tokens and {mx} completion tokens were requested, but {limit}."
            )
        if n > self.kv.n_streams:
            raise ContextOverflow(f"n={n} exceeds the {self.kv.n_streams} parallel sequences this server runs "
                                  "(--parallel).")

    def _pieces_for(self, special: frozenset[int]) -> list[bytes]:
        """The output pieces of each token, with ``special`` control tokens rendered as their text."""
        if not special:
            return self.pieces
        with self._lock:
            pieces = self._special_sets.get(special)
            if pieces is None:
                pieces = list(self.pieces)
                for t in special:
                    pieces[t] = self.model.special_pieces[t]
                self._special_sets[special] = pieces
        return pieces

    def submit(
        self,
        prompt: list[int],
        params: GenerationParams,
        sink: Callable[[list], None],
        request_id: str = "",
        arrival: float | None = None,
    ) -> Request:
        """Queue a request. Raises ContextOverflow or QueueFull."""
        if not prompt:
            raise ContextOverflow("The prompt is empty: at least one token is needed.")
        self.check_fits(len(prompt), params)
        req = Request(prompt, params, sink, self.ctx_size, request_id, arrival)
        req.build(self._pieces_for(params.render_special), self.model.eog_ids, self.grammars)
        req.output = OutputText(params.stop)
        with self._lock:
            if len(self.scheduler.waiting) + sum(1 for k, _ in self._inbox if k == "add") >= self.config.max_waiting:
                raise QueueFull()
            self._inbox.append(("add", req))
        self._wake.set()
        return req

    def cancel(self, req: Request) -> None:
        req.cancelled = True
        with self._lock:
            self._inbox.append(("cancel", req))
        self._wake.set()

    def call(self, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Run ``fn`` on the engine thread between two steps and return its result."""
        fut: Future = Future()
        with self._lock:
            self._inbox.append(("call", (fn, fut)))
        self._wake.set()
        return fut.result(timeout)

    def stats(self) -> dict:
        return self.call(self._stats)

    @property
    def alive(self) -> bool:
        """Whether the engine thread runs (it stops on shutdown, or when llama.cpp failed beyond recovery)."""
        return self._thread.is_alive() and not self._stop

    def fail_all(self) -> None:
        """Fail every queued and running request with a 503 (a shutdown whose grace period ran out)."""
        with self._lock:
            self._inbox.append(("call", (self._fail_shutdown, Future())))
        self._wake.set()

    def shutdown(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.ctx.close()
        self.model.close()

    # -- engine thread -----------------------------------------------------------------------
    def _stats(self) -> dict:
        sch = self.scheduler
        kv = self.kv
        occupied = [st.id for st in kv.streams if self.ctx.seq_pos_max(st.id) >= 0]  # read back from llama.cpp
        return {
            "model": self.model_id,
            "running_requests": len(sch.running),
            "waiting_requests": len(sch.waiting),
            "running_sequences": sch.running_seqs,
            "free_slots": len(kv.free()),  # KV streams no running sequence owns
            "slots": kv.n_streams,
            "parallel": kv.n_streams,
            "kv_cells": self.kv_cells,
            "kv_cells_per_stream": self.ctx_size,
            "kv_cells_used": kv.used_cells,  # running sequences + resident cached prefixes
            "kv_cells_running": kv.running_cells,
            "kv_slots_occupied": occupied,
            "cache_holder_slots": [st.id for st in kv.streams if st.owner is None and st.tokens],
            "cache": kv.stats(),
            "preemptions": sch.preemptions,
            "steps": self.steps,
            "step_costs": self.step_costs.stats(),
            "tokens_generated": self.tokens_generated,
            "ctx_size": self.ctx_size,
            "ctx_limited_by": self.ctx_limited_by,
            "grammar": self.grammars.stats(),
        }

    def _drain_inbox(self) -> None:
        with self._lock:
            items, self._inbox = self._inbox, []
            self._wake.clear()
        for kind, obj in items:
            if kind == "add":
                enqueue(self.scheduler.waiting, obj)
            elif kind == "cancel":
                self._drop(obj)
            elif kind == "call":
                fn, fut = obj
                try:
                    fut.set_result(fn())
                except BaseException as e:  # noqa: BLE001 - handed to the caller
                    fut.set_exception(e)

    def _drop(self, req: Request) -> None:
        self.scheduler.remove(req)
        req.done = True

    def _loop(self) -> None:
        while not self._stop:
            self._drain_inbox()
            if not self.scheduler.has_work():
                self._wake.wait(0.5)
                continue
            try:
                self._expire()
                self._step()
            except Exception as e:  # noqa: BLE001 - the engine must survive anything
                log.exception("engine step failed")
                self._fail_all(f"internal engine error: {e}")
        self._fail_shutdown()

    def _fail_shutdown(self) -> None:
        for req in list(self.scheduler.running) + list(self.scheduler.waiting):
            self._fail(req, RequestFailed(503, "The server is shutting down.", "server_shutting_down"))

    def _expire(self) -> None:
        """Fail the requests past their deadline (``GenerationParams.timeout``) or, still queued, past their
        ``queue_threshold``, freeing their cells."""
        now = time.time()
        for req in [*self.scheduler.running, *self.scheduler.waiting]:
            if req.deadline is not None and now > req.deadline:
                self._fail(req, RequestFailed(
                    504, f"The request did not finish within the server's limit of {req.params.timeout:g} s.",
                    "request_timeout", "server_error"))
            elif over_queue_threshold(req, now):
                self._fail(req, queue_threshold_exceeded(req))

    def _fail(self, req: Request, event: RequestFailed) -> None:
        self._drop(req)
        try:
            req.sink([event])
        except Exception:  # noqa: BLE001
            log.exception("sink failed")

    def _fail_all(self, message: str) -> None:
        for req in list(self.scheduler.running):
            self._fail(req, RequestFailed(500, message))
        self.kv.reset()

    # -- one step: schedule -> run -> update ------------------------------------------------------
    def _step(self) -> None:
        work = self.scheduler.schedule()
        if not work:
            return
        rows = self._run(work)
        if rows is not None:
            self._update(rows)

    def _run(self, work: list[Work]) -> list[tuple[Work, int, bool]] | None:
        """Fill the batch (entries sorted by sequence id) and decode it. Returns each work item's
        first logits row (and whether it asked for prompt logprobs), or None when the decode failed."""
        batch = self.ctx.batch
        batch.clear()
        rows: list[tuple[Work, int, bool]] = []
        now = time.time()
        prefill = False
        for w in work:
            s = w.seq
            req = s.req
            if req.admitted is None:
                req.admitted = now
            toks = s.tokens[w.start : w.end]
            prefill = prefill or w.end - w.start > 1
            if w.draft:
                rows.append((w, batch.add_all_logits(s.seq_id, toks + w.draft, w.start), False))
            elif req.params.prompt_logprobs and s.index == 0 and w.start == len(req.prompt_logprobs) - (w.start > 0):
                rows.append((w, batch.add_all_logits(s.seq_id, toks, w.start), True))
            else:
                rows.append((w, batch.add(s.seq_id, toks, w.start, w.samples), False))
        copies = bool(self.kv.pending_dst)
        t0 = time.perf_counter()
        status = self.ctx.decode()
        elapsed = time.perf_counter() - t0
        self.kv.decoded()
        if status != 0:
            self._decode_failed(status, work, copies)
            return None
        self.steps += 1
        self.step_costs.record(sum(1 for w in work if w.samples), prefill, self.scheduler.ubatches(work), elapsed)
        return rows

    def _update(self, rows: list[tuple[Work, int, bool]]) -> None:
        """Advance each sequence past what was computed, sample, and send the events."""
        events: dict[Request, list] = {}
        for w, row, all_logits in rows:
            s = w.seq
            req = s.req
            if all_logits:
                self._prompt_logprobs(req, w, row)
                row = row + (w.end - w.start - 1)
            s.num_computed = w.end
            if w.draft:
                self._verify(s, w.draft, row, events)
                continue
            if not w.samples:
                continue
            logits = self.ctx.logits(row)
            if s.num_generated == 0 and req.prefill_done is None:
                req.prefill_done = time.time()
            if s.num_generated == 0 and s.index == 0:
                self._fork_children(req, s)
                for c in req.seqs[1:]:
                    if c.num_generated == 0 and c.num_computed == c.num_prompt:
                        self._sample(c, logits, events)
            self._sample(s, logits, events)
        finished: list[Request] = []
        for req, evs in events.items():
            if all(s.finished for s in req.seqs):
                finished.append(req)
            else:
                self._emit(req, evs)
        for req in finished:
            self._finish(req, events[req])

    def _verify(self, s: Sequence, draft: list[int], row: int, events: dict) -> None:
        """Sample each drafted position in turn, as plain decoding would, while the draft agrees; then
        drop the KV cells of the rejected draft tokens."""
        s.verifying = True
        accepted = 0
        for i in range(len(draft) + 1):
            before = len(s.tokens)
            self._sample(s, self.ctx.logits(row + i), events)
            if s.finished or len(s.tokens) != before + 1 or i == len(draft) or s.tokens[-1] != draft[i]:
                break
            accepted += 1
        s.verifying = False
        keep = s.num_computed + accepted  # the last token's cell and the accepted drafts' cells
        self.ctx.seq_rm(s.seq_id, keep, -1)
        s.num_computed = keep
        s.drafter.update(draft, accepted)
        if s.finished:
            self.scheduler.release(s)

    def _decode_failed(self, status: int, work: list[Work], copies: bool) -> None:
        if status == 1 and len(self.scheduler.running) > 1 and not copies:
            # No KV slot (cannot happen while every sequence fits its stream): roll back the failed
            # batch's cells and let the newest request resume later.
            for w in work:
                if w.seq.seq_id is not None:
                    self.ctx.seq_rm(w.seq.seq_id, w.start, -1)
            self.scheduler.preempt(self.scheduler.running[-1])
            return
        self._fail_all(f"llama_decode failed with status {status}")

    def _fork_children(self, req: Request, parent: Sequence) -> None:
        for c in req.seqs[1:]:
            if c.parent is parent:
                self.kv.fork(parent, c)
                c.parent = None

    def _prompt_logprobs(self, req: Request, w: Work, first_row: int) -> None:
        s = w.seq
        top_n = req.params.sampling.top_logprobs
        text = self.model.token_text
        if w.start == 0:
            req.prompt_logprobs.append(None)
        for j in range(w.start + 1, min(w.end + 1, s.num_prompt)):
            ls = log_softmax(self.ctx.logits(first_row + (j - 1 - w.start)))
            tok = s.tokens[j]
            top = top_k_indices(ls, top_n)
            req.prompt_logprobs.append(
                LogprobEntry(tok, text(tok), float(ls[tok]), [(int(t), text(t), float(ls[t])) for t in top])
            )

    def _force(self, s: Sequence, tokens: list[int], events: dict) -> None:
        """Append tokens the model did not sample (closing a spent thinking budget); they are computed
        at the next step, and the token after them is sampled then."""
        req = s.req
        out: OutputText = req.output
        stopped = False
        for tok in tokens[: req.max_new - s.num_generated]:
            s.tokens.append(tok)
            s.reasoning.feed(tok)
            self.tokens_generated += 1
            stopped = out.append(s, tok, None)
            if stopped:
                s.finish_reason = "stop"
                break
        if not s.finished and s.num_generated >= req.max_new:
            s.finish_reason = "length"
        self._deliver(s, stopped, events)

    def _deliver(self, s: Sequence, stopped: bool, events: dict) -> None:
        """After new tokens: finish the text if the sequence ended (its stream is released, except during a
        draft verification, which does it afterwards) and queue what can be sent."""
        req = s.req
        out: OutputText = req.output
        if s.finished:
            out.finish(s, stopped)
            if not s.verifying:
                self.scheduler.release(s)
        d = out.delta(s, s.finished)
        events.setdefault(req, [])
        if d is not None:
            events[req].append(d)

    def _sample(self, s: Sequence, logits, events: dict) -> None:
        req = s.req
        rt = s.reasoning
        if rt is not None:
            forced = rt.closing()
            if forced:
                self._force(s, forced, events)
                return
        block_eog = req.params.ignore_eos or s.num_generated < req.min_new
        # a grammar constrains the answer only, not the thinking before it
        g = s.grammar if rt is None or rt.content or rt.may_open else None
        allowed = None
        if g is not None:
            allowed = g.allowed()
            if rt is not None and rt.may_open:  # the model may still choose to think first
                allowed.allow(rt.spec.open_id)
            if not allowed.any():  # cannot happen with a sound grammar; never sample from nothing
                log.warning("grammar allows no token (%s); sampling unconstrained", g.error or "no error")
                allowed = None
            elif block_eog and not allowed.bool()[~self.eog].any():  # the grammar is complete: it ends here
                block_eog = False
        tok, lp = s.sampler.sample(logits, block_eog, allowed)
        if g is not None and not self.eog[tok] and not (rt is not None and rt.may_open and tok == rt.spec.open_id):
            vetted = g.vet(tok, req.max_new - s.num_generated)
            if vetted != tok:
                tok, lp = vetted, s.sampler.override(logits, tok, vetted)
            g.consume(tok)
        if rt is not None:
            rt.feed(tok)
        s.tokens.append(tok)
        self.tokens_generated += 1
        out: OutputText = req.output
        stopped = False
        if self.eog[tok] and not block_eog:
            s.finish_reason = "stop"
        else:
            entry = to_entry(self.model.token_text, lp, len(s.text)) if lp is not None else None
            if lp is not None:
                s.cum_logprob += lp.logprob
            stopped = out.append(s, tok, entry)
            if stopped or (g is not None and g.done):
                s.finish_reason = "stop"
            elif s.num_generated >= req.max_new:
                s.finish_reason = "length"
        self._deliver(s, stopped, events)

    def _emit(self, req: Request, events: list) -> None:
        if not events or req.cancelled:
            return
        try:
            req.sink(events)
        except Exception:  # noqa: BLE001 - a broken consumer must not stop the engine
            log.exception("sink failed; cancelling request")
            self._drop(req)

    def _finish(self, req: Request, events: list) -> None:
        req.finished_at = time.time()
        self.scheduler.remove(req)
        req.done = True
        done = RequestDone(usage=req.usage(), time_info=req.time_info())
        if req.params.best_of and req.params.best_of > req.params.n:
            ranked = sorted(req.seqs, key=lambda q: q.cum_logprob, reverse=True)[: req.params.n]
            done.choices = [q.index for q in ranked]
        if req.params.prompt_logprobs:
            done.prompt_logprobs = req.prompt_logprobs
        events.append(done)
        self._emit(req, events)
