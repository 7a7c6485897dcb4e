"""Prompt caching: TTFT cold vs warm with a ~2k-token system prompt + tool definitions, and the
tokens a 10-turn conversation prefills, for wafer and (when it can be built here) llama-server.

    .venv/bin/python bench/bench_prefix_cache.py --model smollm2-135m [--system-tokens 2000] [--repeats 3]

Cold = the system prompt starts with a fresh session id, so nothing is cached; warm = the same
system prompt as a previous request with another user question. TTFT is measured by a lean
streaming client (request sent -> first content chunk). Prints a table, writes JSON to
bench/results/prefix-cache-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_serve import _sse_events, start_server  # noqa: E402
from bench.peers import measure_llama_server  # noqa: E402

TOOLS = [
    {"type": "function", "function": {"name": name, "description": desc, "parameters": {
        "type": "object", "properties": {p: {"type": "string", "description": f"The {p}."} for p in params},
        "required": params, "additionalProperties": False}}}
    for name, desc, params in [
        ("get_weather", "Current weather for a city.", ["city", "unit"]),
        ("search_docs", "Search the product documentation.", ["query", "section"]),
        ("create_ticket", "Open a support ticket.", ["title", "body", "priority"]),
        ("lookup_order", "Find an order by id.", ["order_id"]),
    ]
]


def system_prompt(n_tokens: int, session: str) -> str:
    text = (ROOT / "wafer" / "models" / "data" / "heldout.txt").read_text()
    words = text.split()
    # about 1.3 tokens per word for English prose on these tokenizers
    body = " ".join(words[i % len(words)] for i in range(int(n_tokens / 1.45)))
    return (f"Session {session}. You are the support assistant of a hardware shop. Policies follow.\n{body}\n\n"
            f"Tools you may call (JSON schemas):\n{json.dumps(TOOLS)}")


def ask(url: str, model: str, messages: list[dict], max_tokens: int = 4) -> dict:
    body = {"model": model, "messages": messages, "temperature": 0, "stream": True,
            "max_completion_tokens": max_tokens, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = None
    usage = None
    text = []
    for now, ev in _sse_events(url, body):
        if ev.startswith(b"[DONE]"):
            break
        chunk = json.loads(ev)
        for c in chunk.get("choices") or []:
            if c.get("delta", {}).get("content"):
                first = first or now
                text.append(c["delta"]["content"])
        if chunk.get("usage"):
            usage = chunk["usage"]
    cached = ((usage or {}).get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return {"ttft": (first or time.perf_counter()) - t0, "prompt_tokens": usage["prompt_tokens"],
            "cached_tokens": cached, "text": "".join(text)}


def ttft_cold_warm(url: str, model: str, n_tokens: int, repeats: int) -> dict:
    cold, warm = [], []
    for i in range(repeats):
        sysmsg = {"role": "system", "content": system_prompt(n_tokens, uuid.uuid4().hex[:8])}
        c = ask(url, model, [sysmsg, {"role": "user", "content": f"Question {i}: where is my order?"}])
        w = ask(url, model, [sysmsg, {"role": "user", "content": f"Question {i}: is it raining in Paris?"}])
        cold.append(c)
        warm.append(w)
    out = {
        "prompt_tokens": statistics.median(r["prompt_tokens"] for r in cold),
        "cold_ttft_s": statistics.median(r["ttft"] for r in cold),
        "warm_ttft_s": statistics.median(r["ttft"] for r in warm),
        "warm_cached_tokens": statistics.median(r["cached_tokens"] for r in warm),
    }
    out["warm_over_cold"] = out["warm_ttft_s"] / out["cold_ttft_s"]
    return out


def conversation(url: str, model: str, turns: int) -> dict:
    msgs = [{"role": "system", "content": system_prompt(300, "conversation")}]
    prompt_total = cached_total = 0
    for t in range(turns):
        msgs.append({"role": "user", "content": f"Turn {t + 1}: tell me one short fact about the number {t + 7}."})
        r = ask(url, model, msgs, max_tokens=24)
        prompt_total += r["prompt_tokens"]
        cached_total += r["cached_tokens"]
        msgs.append({"role": "assistant", "content": r["text"]})
    return {"turns": turns, "prompt_tokens_total": prompt_total, "cached_tokens_total": cached_total,
            "prefilled_tokens": prompt_total - cached_total,
            "prefilled_over_no_cache": (prompt_total - cached_total) / prompt_total}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--system-tokens", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--no-peer", action="store_true", help="skip llama-server")
    args = ap.parse_args()

    from wafer.models import resolve_model

    resolved = resolve_model(args.model)
    results: dict = {"model": resolved.id, "file": Path(resolved.path).name, "threads": args.threads,
                     "date": time.strftime("%Y-%m-%d %H:%M")}
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    proc, url = start_server(args.model, args.threads, 4, out_dir / f"server-{resolved.id}.log")
    try:
        ask(url, resolved.id, [{"role": "user", "content": "warm up"}])
        results["wafer"] = {"ttft": ttft_cold_warm(url, resolved.id, args.system_tokens, args.repeats),
                            "conversation": conversation(url, resolved.id, args.turns)}
    finally:
        proc.terminate()
        proc.wait(30)

    def peer(purl: str) -> dict:
        ask(purl, resolved.id, [{"role": "user", "content": "warm up"}])
        return {"ttft": ttft_cold_warm(purl, resolved.id, args.system_tokens, args.repeats),
                "conversation": conversation(purl, resolved.id, args.turns)}

    results["llama_server"] = measure_llama_server(not args.no_peer, str(resolved.path), args.threads, out_dir, peer)

    print(f"\nmodel {resolved.id} ({results['file']}), {args.threads} threads, median of {args.repeats}")
    print(f"{'':14}{'prompt tok':>11}{'cold TTFT ms':>14}{'warm TTFT ms':>14}{'warm/cold':>11}{'cached':>8}"
          f"{'10-turn prefilled / total':>28}")
    for name in ("wafer", "llama_server"):
        r = results[name]
        if "skipped" in r:
            print(f"{name:14}skipped: {r['skipped']}")
            continue
        t, c = r["ttft"], r["conversation"]
        print(f"{name:14}{t['prompt_tokens']:>11.0f}{t['cold_ttft_s'] * 1000:>14.1f}{t['warm_ttft_s'] * 1000:>14.1f}"
              f"{t['warm_over_cold']:>11.3f}{t['warm_cached_tokens']:>8.0f}"
              f"{c['prefilled_tokens']:>14} / {c['prompt_tokens_total']:<6} ({c['prefilled_over_no_cache']:.2f})")
    out = out_dir / f"prefix-cache-{resolved.id}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
