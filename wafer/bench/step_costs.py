"""``wafer bench step-costs``: what one engine step costs, in ms and in ubatches, by its shape.

A step's shape: N sequences decoding one token each, with or without a prefill chunk of C tokens of
one more sequence in the same llama_decode. llama.cpp splits a llama_decode into ubatches (in batch
order, sequences with consecutive ids and the same number of tokens from each) and every ubatch is a
pass over the weights, so the ubatch count is the step's cost model: N decoding sequences on ids
0..N-1 take one ubatch, and a chunk of sequence N adds a second one for its other C - 1 tokens.

``measure`` is independent of what runs the step: ``setup(shape)`` puts a system in that state and
returns a callable that runs one step (and returns the ubatches it took, None when unknown, or
(ubatches, seconds) when it times itself). The command measures the raw loop on its stream layout
(``raw_setup``) and wafer's engine (``engine_setup``: a whole engine step, schedule -> run -> update,
with its real requests), each with ``--system``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

from .report import md_table
from .scenario import Run, add_common
from .stats import summary

NAME = "step-costs"
HELP = "engine-step cost: ms and ubatches per step at N decoding sequences, with and without a prefill chunk (raw loop)"

Step = Callable[[], "int | None | tuple[int, float]"]


@dataclass(frozen=True)
class Shape:
    decoding: int  # sequences decoding one token each (ids 0..decoding-1)
    chunk: int = 0  # tokens of a prefill chunk of one more sequence (id = decoding) in the same step


def shapes(seqs: list[int], chunk: int) -> list[Shape]:
    """Each decoding count without and (when ``chunk``) with the chunk."""
    return [Shape(n, c) for n in seqs for c in ((0, chunk) if chunk else (0,))]


def measure(setup: Callable[[Shape], Step], cases: list[Shape], steps: int = 16, warmup: int = 3) -> list[dict]:
    """Per shape: ``warmup`` untimed steps, then ``steps`` timed ones: wall ms per step (summary), this
    process's CPU ms per step (summary: with one llama.cpp thread, the step's cost even on a busy machine),
    the ubatches the step reported, and decode tok/s at the median wall time."""
    rows = []
    for shape in cases:
        step = setup(shape)
        for _ in range(warmup):
            step()
        wall, cpu, ubatches = [], [], set()
        for _ in range(steps):
            t0, c0 = time.perf_counter(), time.process_time()
            n = step()
            elapsed = time.perf_counter() - t0
            cpu.append((time.process_time() - c0) * 1000)
            if isinstance(n, tuple):  # the step timed itself
                n, elapsed = n
            wall.append(elapsed * 1000)
            if n is not None:
                ubatches.add(n)
        ms, ub = summary(wall), sorted(ubatches)
        rows.append({"decoding": shape.decoding, "chunk": shape.chunk, "tokens": shape.decoding + shape.chunk,
                     "ubatches": ub[0] if len(ub) == 1 else (ub or None),  # a list if the steps differed
                     "ms": ms, "cpu_ms": summary(cpu), "decode_tok_s": shape.decoding / ms["p50"] * 1000})
    return rows


def raw_setup(loop, context: list[int], chunk_tokens: list[int]) -> Callable[[Shape], Step]:
    """``setup`` for a RawLoop with at least max(decoding) + 1 streams: the decoding sequences hold ``context``
    (prefilled once into sequence 0, copied whole-stream to the others) and grow by a token per step; the
    chunk (the first ``chunk`` of ``chunk_tokens``, sequence ``decoding`` from position 0) is removed after each
    step so that every step is the same. A step returns the ubatches llama.cpp splits it into."""

    def setup(shape: Shape) -> Step:
        if shape.decoding + (1 if shape.chunk else 0) > loop.n_seq:
            raise ValueError(f"{shape} needs {shape.decoding + 1} streams, the loop has {loop.n_seq}")
        if shape.chunk > len(chunk_tokens):
            raise ValueError(f"{shape} needs {shape.chunk} chunk tokens, there are {len(chunk_tokens)}")
        loop.clear()
        loop.prefill(context, 0, logits_last=False)
        for s in range(1, shape.decoding):
            loop.copy_stream(0, s, len(context))  # applied by the first step
        token, pos = context[-1], [len(context)]
        chunk = [(shape.decoding, chunk_tokens[: shape.chunk], 0)] if shape.chunk else []
        n_ub = loop.ubatches([(s, 1) for s in range(shape.decoding)] + [(shape.decoding, shape.chunk)] * bool(chunk))

        def step() -> int:
            loop.decode([(s, [token], pos[0]) for s in range(shape.decoding)] + chunk)
            if chunk:
                loop.remove(shape.decoding)
            pos[0] += 1
            return n_ub

        return step

    return setup


def engine_setup(engine, context: list[int], chunk_tokens: list[int]) -> Callable[[Shape], Step]:
    """``setup`` for wafer's Engine (in this process) with at least max(decoding) + 1 streams: ``decoding``
    greedy requests on ``context`` that decode for as long as the stream allows, plus, for a chunk shape, one
    request on ``chunk_tokens`` (at least 3 x chunk of them) whose prefill is reset before every timed step,
    with the token budget set to decoding + chunk so that each step carries exactly one chunk. A step runs
    one whole engine step on the engine thread (the engine keeps stepping on its own between them) and
    returns (the ubatches it recorded, its seconds)."""
    from ..engine.sampler import SamplingParams
    from ..engine.sequence import GenerationParams

    live: list = []

    def quiet(events) -> None:
        return None

    def setup(shape: Shape) -> Step:
        for req in live:
            engine.cancel(req)
        live.clear()
        while engine.stats()["running_requests"]:
            time.sleep(0.05)
        engine.call(engine.scheduler.drop_cache)
        sch = engine.scheduler
        sch.token_budget = shape.decoding + shape.chunk if shape.chunk else max(shape.decoding, 1)
        room = engine.ctx_size - max(len(context), len(chunk_tokens)) - 1
        for _ in range(shape.decoding):
            params = GenerationParams(SamplingParams(temperature=0), max_new_tokens=room, min_new_tokens=room)
            live.append(engine.submit(list(context), params, quiet))
        while engine.call(lambda: len(sch._decoding())) < shape.decoding:
            time.sleep(0.02)
        chunked = None
        if shape.chunk:
            chunked = engine.submit(list(chunk_tokens), GenerationParams(SamplingParams(temperature=0), max_new_tokens=1),
                                    quiet)
            live.append(chunked)

        def timed() -> tuple[int, float]:
            if chunked is not None:
                s = chunked.seqs[0]
                if s.seq_id is not None and s.prepared and s.num_computed:  # prefill it again from the start
                    engine.ctx.seq_rm(s.seq_id, 0, -1)
                    s.num_computed = 0
            t0 = time.perf_counter()
            engine._step()
            return engine.step_costs.last_ubatches, time.perf_counter() - t0

        return lambda: engine.call(timed)

    return setup


def add_args(p) -> None:
    add_common(p)
    p.add_argument("--seqs", default="1,8,32", help="decoding sequences per step (comma separated)")
    p.add_argument("--chunk", type=int, default=255, help="prefill chunk tokens in the step (0: none)")
    p.add_argument("--context", type=int, default=256, help="tokens each decoding sequence holds")
    p.add_argument("--steps", type=int, default=16, help="timed steps per shape")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per shape")
    p.add_argument("--system", choices=["raw", "wafer", "both"], default="both",
                   help="the raw loop, wafer's engine (whole steps with real requests), or both")


def run(args) -> int:
    from .workloads import heldout_words

    r = Run.from_args(NAME, args)
    seqs = sorted({int(x) for x in args.seqs.split(",") if x.strip()})
    n_seq = max(seqs) + 1
    n = max(args.context, 3 * args.chunk + 1)
    words = heldout_words()
    config = dict(context=args.context, chunk=args.chunk, steps=args.steps, warmup=args.warmup)
    out = []
    if args.system in ("raw", "both"):
        from .rawloop import RawLoop

        per_seq = max(args.context + args.warmup + args.steps + 1, args.chunk)
        loop = RawLoop(r.path, n_ctx=n_seq * per_seq, threads=r.threads, n_seq=n_seq)
        try:
            tokens = loop.tokenize(" ".join(words[: 2 * n]))[:n]
            if len(tokens) < n:
                raise RuntimeError("the held-out text is too short for this --context and --chunk")
            load = [os.getloadavg()[0]]
            rows = measure(raw_setup(loop, tokens[: args.context], tokens[: args.chunk]), shapes(seqs, args.chunk),
                           args.steps, args.warmup)
            load.append(os.getloadavg()[0])
            out.append(r.header(system="raw loop", layout=f"{n_seq} KV streams of {loop.n_ctx_seq} cells, flash "
                                "attention", **config, load_before_after=load, rows=rows))
        finally:
            loop.close()
    if args.system in ("wafer", "both"):
        from ..engine.engine import Engine, EngineConfig

        ctx = max(1024, n + args.context + 2 * (args.warmup + args.steps) * 4)
        engine = Engine(r.path, EngineConfig(parallel=n_seq, ctx_size=ctx, threads=r.threads,
                                             token_budget=max(seqs) + args.chunk), r.id)
        try:
            context = engine.tokenize(" ".join(words[: 2 * args.context]), add_special=False)[: args.context]
            other = engine.tokenize(" ".join(words[len(words) // 2 :]), add_special=False)[:n]  # no shared prefix
            load = [os.getloadavg()[0]]
            rows = measure(engine_setup(engine, context, other), shapes(seqs, args.chunk), args.steps, args.warmup)
            load.append(os.getloadavg()[0])
            out.append(r.header(system="wafer engine", layout=f"{n_seq} KV streams of {engine.ctx_size} cells, "
                                "flash attention; whole engine steps", **config, load_before_after=load, rows=rows))
        finally:
            engine.shutdown()
    r.write({"runs": out} if len(out) > 1 else out[0], render(out))
    return 0


def render(results: list[dict]) -> str:
    """A row per model, system and shape: ubatches, ms per step (p50, p90, min), decode tok/s."""
    results = [run for res in results for run in (res.get("runs") or [res])]  # a file may hold several systems
    rows = []
    for res in results:
        for x in res["rows"]:
            ub = x["ubatches"]
            cpu = x.get("cpu_ms")
            rows.append([res["model"], res["system"], str(res["threads"]), str(x["decoding"]), str(x["chunk"] or "–"),
                         "–" if ub is None else str(ub), f"{x['ms']['p50']:.2f}", f"{x['ms']['p90']:.2f}",
                         f"{x['ms']['min']:.2f}", "–" if cpu is None else f"{cpu['p50']:.2f}",
                         f"{x['decode_tok_s']:.1f}"])
    table = md_table(["model", "system", "threads", "decoding seqs", "+ chunk tokens", "ubatches", "ms/step p50", "p90",
                      "min", "CPU ms/step p50", "decode tok/s (p50)"], rows)
    runs = "; ".join(f"{res['model']}, {res['threads']} thread(s): {res['layout']}, {res['context']}-token contexts, "
                     f"{res['steps']} steps per shape, {_machine(res)}{_load(res)}{res['date']}" for res in results)
    return f"{table}\n\nRuns: {runs}.\n"


def _machine(res: dict) -> str:
    m = res.get("machine") or {}
    return f"{m['cores']} cores {m.get('cpu') or ''}, " if m.get("cores") else ""


def _load(res: dict) -> str:
    load = res.get("load_before_after")
    return f"load average {load[0]:.1f} → {load[1]:.1f}, " if load else ""
