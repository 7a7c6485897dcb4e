"""``wafer bench serve-vs-raw``: wafer through HTTP streaming vs the raw llama.cpp loop, same model, same run.

Single stream: TTFT and per-stream decode tok/s through ``wafer serve`` (SSE, greedy, fixed output
length via ``min_completion_tokens``) vs the raw loop (``rawloop.RawLoop.greedy``) on the same prompt
tokens, interleaved ``--repeats`` times (drift on a shared machine hits both alike), medians -> ratios.
Then aggregate decode tok/s through HTTP with 1, 4 and 16 identical requests at once. wafer runs with
``--no-prefix-cache`` unless ``--prefix-cache``: every run repeats the same prompt, which the cache
would serve instead of prefilling, unlike the raw loop.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from .client import stream
from .report import md_table
from .runner import run_level
from .scenario import Run, add_common, ask, ttft
from .stats import level_metrics
from .workloads import Request

NAME = "serve-vs-raw"
HELP = "wafer through HTTP vs the raw llama.cpp loop: single-stream decode and TTFT ratios, aggregate at 1/4/16"
PROMPT = "Write a detailed essay about the history of sailing ships and the people who built them."


def add_args(p) -> None:
    add_common(p)
    p.add_argument("--tokens", type=int, default=128, help="output tokens per request")
    p.add_argument("--repeats", type=int, default=3, help="interleaved single-stream runs of each (medians)")
    p.add_argument("--concurrency", default="1,4,16", help="levels of simultaneous requests through HTTP")
    p.add_argument("--prefix-cache", action="store_true", help="keep wafer's prompt cache on")


def run(args) -> int:
    from ..chat.template import template_for_model
    from ..engine.llama import LlamaModel
    from .rawloop import RawLoop

    r = Run.from_args(NAME, args, stem="serve")
    messages = [{"role": "user", "content": PROMPT}]
    m = LlamaModel(r.path)
    prompt_ids = m.tokenize(template_for_model(m.metadata, m.token_text(m.bos_id), m.token_text(m.eos_id))
                            .render(messages), add_special=False)
    m.close()
    levels = [int(x) for x in args.concurrency.split(",")]
    results = r.header(tokens=args.tokens, repeats=args.repeats, prompt_tokens=len(prompt_ids),
                       prefix_cache=args.prefix_cache)
    body = {"messages": messages, "temperature": 0, "max_completion_tokens": args.tokens,
            "min_completion_tokens": args.tokens}

    def measure(w) -> dict:
        ask(w, {**body, "max_completion_tokens": 8, "min_completion_tokens": 8})  # warm-up
        raw = RawLoop(r.path, n_ctx=len(prompt_ids) + args.tokens + 16, threads=r.threads)
        raw_runs, wafer_runs = [], []
        try:
            raw.greedy(prompt_ids, 8, stop_at_eog=False)  # warm-up
            for _ in range(args.repeats):
                raw_runs.append(raw.greedy(prompt_ids, args.tokens, stop_at_eog=False))
                time.sleep(0.3)  # let the other side's threads go idle
                rec = ask(w, body)
                wafer_runs.append({"ttft": ttft(rec), "decode_tok_s": (rec.output_tokens - 1) / (rec.t_last - rec.t_first)})
                time.sleep(0.3)
        finally:
            raw.close()
        raw_tok_s = statistics.median(x["decode_tok_s"] for x in raw_runs)
        raw_ttft = statistics.median(x["ttft"] for x in raw_runs)
        w_tok_s = statistics.median(x["decode_tok_s"] for x in wafer_runs)
        w_ttft = statistics.median(x["ttft"] for x in wafer_runs)
        single = {"raw_decode_tok_s": raw_tok_s, "wafer_decode_tok_s": w_tok_s, "decode_ratio": w_tok_s / raw_tok_s,
                  "raw_ttft_s": raw_ttft, "wafer_ttft_s": w_ttft, "ttft_ratio": w_ttft / raw_ttft}
        req = Request({**body, "model": w.model_id, "stream": True, "stream_options": {"include_usage": True}})
        conc = []
        for n in levels:
            records, wall = asyncio.run(run_level(lambda q: stream(w.base_url, q.path, q.body), [[req]] * n, n))
            lv = level_metrics(records, wall, n)
            if lv["errors"]:
                raise RuntimeError(f"wafer: {lv['error_samples'][0]}")
            conc.append({"streams": n, "aggregate_tok_s": lv["aggregate_tok_s"],
                         "per_stream_tok_s": lv["per_stream_tok_s"]["p50"], "ttft_p50": lv["ttft_s"]["p50"],
                         "wall": wall})
        return {"single_stream": single, "concurrency": conc}

    extra = [] if args.prefix_cache else ["--no-prefix-cache"]
    part = r.on(r.wafer(max(levels), extra), measure)
    if "skipped" in part:
        raise RuntimeError(f"wafer could not start: {part['skipped']}")
    results.update(part)
    r.write(results, render([results]))
    return 0


def render(results: list[dict]) -> str:
    """The single-stream table and the aggregate table, a row per results file."""
    rows = []
    for res in results:
        s = res["single_stream"]
        cache = {True: "on", False: "off"}.get(res.get("prefix_cache"), "–")
        rows.append([res["model"], res["date"], f"{res['prompt_tokens']} / {res['tokens']}", str(res.get("repeats", "–")),
                     cache, f"{s['raw_decode_tok_s']:.1f}", f"{s['wafer_decode_tok_s']:.1f}",
                     f"{s['decode_ratio']:.3f}", f"{s['raw_ttft_s'] * 1000:.1f}", f"{s['wafer_ttft_s'] * 1000:.1f}",
                     f"{s['ttft_ratio']:.3f}"])
    single = md_table(["model", "date", "prompt / output tokens", "runs (median)", "wafer prefix cache",
                       "raw decode tok/s", "wafer decode tok/s", "wafer/raw", "raw TTFT ms", "wafer TTFT ms",
                       "wafer/raw"], rows)
    rows = [[res["model"], str(c["streams"]), f"{c['aggregate_tok_s']:.1f}", f"{c['per_stream_tok_s']:.1f}",
             f"{c['ttft_p50'] * 1000:.1f}"] for res in results for c in res["concurrency"]]
    agg = md_table(["model", "streams", "aggregate tok/s", "per-stream tok/s", "TTFT p50 ms"], rows)
    return f"{single}\n\nwafer through HTTP, identical requests at once:\n\n{agg}\n"
