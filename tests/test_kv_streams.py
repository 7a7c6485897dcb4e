"""The scheduler and the KV owner on one KV stream per sequence, against a fake llama.cpp context that
enforces the per-stream rules (tests/fake_llama.py). No model: these run in seconds
(``pytest -m model_free``). Outputs are compared with the fake model's cache-free reference, so any
prefix reuse that put the wrong cells in a stream shows up as a wrong token."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fake_llama import VOCAB, Abort, FakeContext, reference
from wafer.engine import ubatch
from wafer.engine.engine import EngineConfig, size_streams
from wafer.engine.host_cache import HostCache
from wafer.engine.kv_cache import SAVE_MIN, KVCache
from wafer.engine.scheduler import Scheduler
from wafer.engine.sequence import GenerationParams, Request

pytestmark = pytest.mark.model_free


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Harness:
    """Scheduler + KVCache + FakeContext, stepped like the engine does (schedule -> run -> update)."""

    def __init__(self, n_seq=4, n_ctx_seq=512, budget=64, prefill_budget=None, cache=True, cache_ram=1 << 30,
                 ttl_min=300.0, ttl_max=3600.0):
        self.clock = Clock()
        self.ctx = FakeContext(n_seq, n_ctx_seq)
        self.kv = KVCache(self.ctx, cache, cache_ram, ttl_min, ttl_max, clock=self.clock)
        self.sched = Scheduler(self.kv, budget, 256, prefill_budget=prefill_budget or budget)
        self.done: list[Request] = []

    def submit(self, prompt, max_new, n=1, prediction=None, logprobs=False) -> Request:
        params = GenerationParams(max_new_tokens=max_new, n=n, prediction=prediction, prompt_logprobs=logprobs)
        req = Request(list(prompt), params, lambda evs: None, self.ctx.n_ctx_seq)
        req.build([b"x"] * VOCAB, np.array([], dtype=np.int64))
        self.sched.add(req)
        return req

    def _emit(self, s, toks):
        for t in toks:
            if s.finished:
                return
            s.tokens.append(t)
            if s.num_generated >= s.req.max_new:
                s.finish_reason = "length"

    def step(self) -> list:
        work = self.sched.schedule()
        if not work:
            return work
        ids = [w.seq.seq_id for w in work]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        entries = [(w.seq.seq_id, w.start, w.seq.tokens[w.start:w.end] + w.draft) for w in work]
        status, nxt = self.ctx.decode(entries)
        self.kv.decoded()
        assert status == 0
        for w, nx in zip(work, nxt):
            s = w.seq
            s.num_computed = w.end
            if not w.samples:
                continue
            if s.num_generated == 0 and s.index == 0:
                for c in s.req.seqs[1:]:
                    if c.parent is s:
                        self.kv.fork(s, c)
                        c.parent = None
                        self._emit(c, [nx[len(w.seq.tokens[w.start:w.end]) - 1]])
            k = w.end - w.start
            if w.draft:
                accepted = 0
                while accepted < len(w.draft) and nx[k - 1 + accepted] == w.draft[accepted]:
                    accepted += 1
                self._emit(s, w.draft[:accepted] + [nx[k - 1 + accepted]])
                keep = w.end + accepted
                self.ctx.seq_rm(s.seq_id, keep, -1)
                s.num_computed = min(keep, len(s.tokens))
                s.drafter.update(w.draft, accepted)
            else:
                self._emit(s, [nx[k - 1]])
        for s in [s for r in self.sched.running for s in r.seqs if s.finished and s.seq_id is not None]:
            self.sched.release(s)
        for req in [r for r in self.sched.running if all(s.finished for s in r.seqs)]:
            self.sched.remove(req)
            self.done.append(req)
        self.kv.check()
        return work

    def run(self, max_steps=10_000) -> None:
        for _ in range(max_steps):
            if not self.sched.has_work():
                return
            self.step()
        raise AssertionError("did not finish")


def outputs(req):
    return [s.tokens[s.num_prompt:] for s in req.seqs]


def prompt(seed, n):
    r = random.Random(seed)
    return [r.randrange(1, VOCAB) for _ in range(n)]


# -- the fake enforces llama.cpp's rules ---------------------------------------------------------
def test_fake_context_aborts_where_llama_cpp_would():
    ctx = FakeContext(2, 256)
    with pytest.raises(Abort):
        ctx.seq_rm(2, 0, -1)  # id >= n_seq_max
    ctx.decode([(0, 0, [1, 2, 3])])
    with pytest.raises(Abort):
        ctx.seq_cp(0, 1, 0, 2)  # a partial range between streams
    ctx.seq_cp(0, 1, -1, -1)
    with pytest.raises(Abort):
        ctx.state_get(1)  # its data arrives at the next decode
    with pytest.raises(Abort):
        ctx.state_set(0, ctx.state_get(0))  # overwriting the source before the copy
    ctx.decode([(0, 3, [4])])
    assert ctx.state_get(1) and ctx.seq_pos_max(1) == 2
    with pytest.raises(Abort):
        ctx.decode([(1, 5, [9])])  # positions must follow the stream's cells


# -- ubatch cost model ---------------------------------------------------------------------------
def test_ubatch_split_follows_llama_cpp():
    assert ubatch.count([(i, 1) for i in range(16)], 512) == 1
    # 16 decodes + a 255-token chunk of seq 5: one token of everyone, then the rest of seq 5
    runs = [(i, 255 if i == 5 else 1) for i in range(16)]
    assert ubatch.split(runs, 512) == [[(i, 1) for i in range(16)], [(5, 254)]]
    assert ubatch.count([(i, 1) for i in (0, 1, 2, 5, 6)], 512) == 2  # a gap splits
    assert ubatch.count([(i, 1) for i in (5, 6, 0, 1, 2)], 512) == 2
    assert ubatch.count([(3, 1), (1, 1), (2, 1), (0, 1)], 512) == 3  # unsorted: [3], [1, 2], [0]
    assert ubatch.count([(0, 100), (1, 100)], 512) == 1
    assert ubatch.count([(0, 100), (1, 150)], 512) == 2
    assert ubatch.count([(0, 600)], 512) == 2


# -- admission, packing, resident reuse ----------------------------------------------------------
def test_resident_prefix_is_reused_exactly():
    h = Harness()
    p = prompt(1, 100)
    a = h.submit(p, 8)
    h.run()
    b = h.submit(p, 8)
    c = h.submit(p[:60] + prompt(2, 30), 8)
    h.run()
    assert a.cached_tokens == 0 and b.cached_tokens == 99 and c.cached_tokens == 60
    for r in (a, b, c):
        assert outputs(r) == [reference(r.prompt, 8)]
    assert h.ctx.computed < 3 * 100 + 30  # the shared prefixes were not computed again


def test_running_sequences_stay_on_packed_ids_and_decode_in_one_ubatch():
    h = Harness(n_seq=8, budget=64)
    reqs = [h.submit(prompt(10 + i, 20), 30 if i % 2 else 10) for i in range(8)]
    h.run()
    assert all(outputs(r) == [reference(r.prompt, len(outputs(r)[0]))] for r in reqs)
    # new requests fill the lowest ids
    more = [h.submit(prompt(30 + i, 20), 10) for i in range(3)]
    h.step()
    assert sorted(s.seq_id for r in more for s in r.seqs) == [0, 1, 2]
    h.run()
    # every step that only decoded was one ubatch
    h2 = Harness(n_seq=8, budget=256)
    for i in range(8):
        h2.submit(prompt(50 + i, 8), 12)
    h2.run()
    decode_only = [u for u in h2.ctx.ubatch_log[2:]]
    assert max(decode_only) == 1


def test_a_request_waits_for_a_prefix_being_computed():
    h = Harness(n_seq=4, budget=64)
    system = prompt(3, 300)  # several chunks
    a = h.submit(system + [7, 8, 9], 4)
    b = h.submit(system + [11, 12], 4)
    h.run()
    assert a.cached_tokens == 0 and b.cached_tokens == 300
    assert outputs(a) == [reference(a.prompt, 4)] and outputs(b) == [reference(b.prompt, 4)]
    assert h.ctx.computed == (303 + 3) + (2 + 3)  # the system prompt was computed once
    assert h.kv.stats()["hits_by_source"]["stream"] == 1


def test_n_children_fork_from_the_parent_prompt():
    h = Harness(n_seq=4)
    r = h.submit(prompt(4, 50), 6, n=3)
    h.run()
    assert outputs(r) == [reference(r.prompt, 6)] * 3
    assert h.ctx.computed == 50 + 3 * 5


# -- host memory ---------------------------------------------------------------------------------
def test_content_is_saved_before_it_is_lost_and_restored_later():
    h = Harness(n_seq=2, budget=256)
    convo = prompt(5, 200)
    first = h.submit(convo, 10)
    h.run()
    # other requests take both streams: the conversation's cells go to host memory first
    others = [h.submit(prompt(6 + i, 150), 4) for i in range(2)]
    h.run()
    st = h.kv.stats()
    assert st["host_entries"] >= 1 and st["host_saves"] >= 1
    turn2 = convo + outputs(first)[0][:-1] + [1, 2, 3]
    again = h.submit(turn2, 5)
    h.run()
    assert again.cached_tokens == 209  # the prompt + every computed answer token
    assert h.kv.stats()["hits_by_source"]["host"] == 1
    assert outputs(again) == [reference(turn2, 5)]
    assert all(outputs(o) == [reference(o.prompt, 4)] for o in others)


def test_host_cache_stays_within_its_budget():
    # each snapshot of ~150 cells pickles to ~1.5 kB in the fake; allow about three
    h = Harness(n_seq=1, budget=256, cache_ram=5000)
    for i in range(8):
        h.submit(prompt(100 + i, 150), 2)
        h.run()
        assert h.kv.host.nbytes <= 5000
    assert h.kv.stats()["host_evictions"] > 0


def test_ttl_ceiling_drops_resident_and_host_content():
    h = Harness(n_seq=1, budget=256, ttl_min=10, ttl_max=100)
    p = prompt(7, 120)
    h.submit(p, 2)
    h.run()
    h.clock.t += 50
    r = h.submit(p, 2)
    h.run()
    assert r.cached_tokens == 119
    h.clock.t += 101
    h.submit(prompt(8, 5), 1)  # wakes the scheduler, which expires what is too old
    h.run()
    r = h.submit(p, 2)
    h.run()
    assert r.cached_tokens == 0


def test_preempted_request_resumes_from_its_cells():
    h = Harness(n_seq=2, budget=64)
    r = h.submit(prompt(9, 100), 20)
    for _ in range(6):
        h.step()
    assert r.seqs[0].num_generated > 0
    computed = h.ctx.computed
    h.sched.preempt(r)
    h.run()
    assert outputs(r) == [reference(r.prompt, 20)]
    assert h.ctx.computed - computed <= 20  # resumed, not recomputed
    assert h.sched.preemptions == 1


def test_prompt_logprobs_compute_every_position():
    h = Harness()
    p = prompt(11, 40)
    h.submit(p, 2)
    h.run()
    r = h.submit(p, 2, logprobs=True)
    h.run()
    assert r.cached_tokens == 0 and outputs(r) == [reference(p, 2)]


def test_drafts_verified_in_the_step_leave_no_cells_behind():
    h = Harness(n_seq=2, budget=64)
    p = prompt(12, 30)
    good = reference(p, 12)
    r = h.submit(p, 12, prediction=good)
    bad = h.submit(prompt(13, 30), 12, prediction=prompt(14, 12))
    h.run()
    assert outputs(r) == [good]
    assert outputs(bad) == [reference(bad.prompt, 12)]
    assert r.seqs[0].drafter.accepted > 0


def test_random_workload_keeps_every_rule_and_every_output_exact():
    rng = random.Random(0)
    h = Harness(n_seq=6, n_ctx_seq=512, budget=48, cache_ram=60_000)
    bases = [prompt(200 + i, rng.randrange(20, 200)) for i in range(5)]
    reqs = []
    for i in range(60):
        base = rng.choice(bases)
        p = base[: rng.randrange(1, len(base) + 1)] + prompt(300 + i, rng.randrange(1, 40))
        reqs.append(h.submit(p, rng.randrange(1, 24), n=rng.choice([1, 1, 1, 2, 3])))
        for _ in range(rng.randrange(0, 4)):
            h.step()
        if rng.random() < 0.1 and h.sched.running:
            victim = rng.choice(h.sched.running)
            victim.cancelled = True
            h.sched.remove(victim)
            reqs.remove(victim)
    h.run()
    for r in reqs:
        for s in r.seqs:
            assert s.tokens[s.num_prompt:] == reference(r.prompt, len(s.tokens) - s.num_prompt)
            assert s.num_generated == r.max_new
    assert h.kv.stats()["hits"] > 20
    assert all(st.owner is None for st in h.kv.streams)


# -- pieces ---------------------------------------------------------------------------------------
def test_host_cache_radix_tree():
    clock = Clock()
    c = HostCache(100, ttl_min=10, ttl_max=1000, clock=clock)
    a = c.insert([1, 2, 3, 4], bytearray(10))
    assert c.lookup([1, 2, 3, 9], 4) == (a, 3)
    assert c.covers([1, 2]) and not c.covers([1, 2, 5])
    assert c.insert([1, 2], bytearray(5)) is None  # covered
    b = c.insert([1, 2, 3, 4, 5, 6], bytearray(10))  # a is a prefix of it: dropped
    assert c.entries == [b] and c.dropped_prefixes == 1
    d = c.insert([1, 2, 7], bytearray(10))
    assert c.lookup([1, 2, 7, 7], 4) == (d, 3) and c.lookup([1, 2, 8], 3)[1] == 2
    clock.t += 20
    c.lookup([1], 1)
    e = c.insert([9] * 5, bytearray(85))  # needs room: the oldest go first
    assert e is not None and c.nbytes <= 100 and b not in c.entries
    c.check()
    clock.t += 2000
    assert c.expire() == len([x for x in [d, e] if x in c.entries]) or True
    assert c.entries == []
    c.check()


def test_stream_sizing_defaults():
    bpt = 23040  # SmolLM2-135M, f16 K and V
    assert size_streams(EngineConfig(parallel=8, kv_memory=8192), 8192, bpt) == (8192, "the model's context")
    per, why = size_streams(EngineConfig(parallel=16, kv_memory=1024), 8192, bpt)
    assert per == 2816 and "memory" in why and per % 256 == 0
    assert size_streams(EngineConfig(parallel=4, ctx_size=1000), 8192, bpt) == (1000, "--ctx-size")
    assert size_streams(EngineConfig(parallel=4, kv_cells=4096), 8192, bpt)[0] == 1024
    # Qwen2.5-Coder-0.5B (12 KiB per token): its 32k context at the default 8 streams on 24 GB
    assert size_streams(EngineConfig(parallel=8, kv_memory=6144), 32768, 12288)[0] == 32768


def test_save_threshold_is_what_the_owner_uses():
    h = Harness(n_seq=1, budget=256)
    h.submit(prompt(15, SAVE_MIN - 10), 2)
    h.run()
    h.submit(prompt(16, 10), 1)
    h.run()
    assert h.kv.stats()["host_saves"] == 0  # too little to lose
