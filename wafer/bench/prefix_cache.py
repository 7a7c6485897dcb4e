"""``wafer bench prefix-cache``: prompt caching, TTFT cold vs warm and the tokens a conversation prefills.

A ~``--system-tokens`` system prompt (policy text + 4 tool schemas as JSON). Cold: a fresh session id at
the start of the system prompt, so nothing is cached; warm: the same system prompt as the request before,
another user question (medians of ``--repeats`` pairs). TTFT = request sent -> first content chunk.
Then a ``--turns``-turn conversation (300-token system prompt, 24-token answers): prompt tokens
prefilled vs the total without a cache. For wafer (``--parallel 4``, its prompt cache on) and
llama-server (one slot, whose slot reuses its previous prompt's common prefix).
"""

from __future__ import annotations

import json
import statistics
import uuid

from .report import md_table
from .scenario import Run, add_common, ask, ttft
from .workloads import heldout_words

NAME = "prefix-cache"
HELP = "prompt caching: TTFT cold vs warm with a ~2k-token system prompt, and a 10-turn conversation's prefill"
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


def add_args(p) -> None:
    add_common(p, peer=True)
    p.add_argument("--system-tokens", type=int, default=2000, help="size of the shared system prompt")
    p.add_argument("--repeats", type=int, default=3, help="cold/warm pairs (medians)")
    p.add_argument("--turns", type=int, default=10, help="turns of the conversation")


def system_prompt(n_tokens: int, session: str) -> str:
    """About ``n_tokens`` tokens: held-out prose, ~1.45 tokens per word with the tool schemas' share, and the tools."""
    words = heldout_words()
    body = " ".join(words[i % len(words)] for i in range(int(n_tokens / 1.45)))
    return (f"Session {session}. You are the support assistant of a hardware shop. Policies follow.\n{body}\n\n"
            f"Tools you may call (JSON schemas):\n{json.dumps(TOOLS)}")


def _ask(system, messages: list[dict], max_tokens: int = 4):
    return ask(system, {"messages": messages, "temperature": 0, "max_completion_tokens": max_tokens})


def ttft_cold_warm(system, n_tokens: int, repeats: int) -> dict:
    """Cold, then warm while the prefix is still resident in the server's KV memory, then warm again after an
    unrelated request took its place (wafer: the stream's cells went to host memory and come back by a
    snapshot restore; llama-server: its slot's prompt cache)."""
    cold, warm, host = [], [], []
    for i in range(repeats):
        sysmsg = {"role": "system", "content": system_prompt(n_tokens, uuid.uuid4().hex[:8])}
        cold.append(_ask(system, [sysmsg, {"role": "user", "content": f"Question {i}: where is my order?"}]))
        warm.append(_ask(system, [sysmsg, {"role": "user", "content": f"Question {i}: is it raining in Paris?"}]))
        filler = {"role": "system", "content": system_prompt(300, "filler " + uuid.uuid4().hex[:8])}
        _ask(system, [filler, {"role": "user", "content": "Something else entirely."}])
        host.append(_ask(system, [sysmsg, {"role": "user", "content": f"Question {i}: when do you open?"}]))
    out = {
        "prompt_tokens": statistics.median(r.prompt_tokens for r in cold),
        "cold_ttft_s": statistics.median(ttft(r) for r in cold),
        "warm_ttft_s": statistics.median(ttft(r) for r in warm),
        "warm_cached_tokens": statistics.median(r.cached_tokens or 0 for r in warm),
        "warm_host_ttft_s": statistics.median(ttft(r) for r in host),
        "warm_host_cached_tokens": statistics.median(r.cached_tokens or 0 for r in host),
    }
    out["warm_over_cold"] = out["warm_ttft_s"] / out["cold_ttft_s"]
    out["warm_host_over_cold"] = out["warm_host_ttft_s"] / out["cold_ttft_s"]
    return out


def conversation(system, turns: int) -> dict:
    msgs = [{"role": "system", "content": system_prompt(300, "conversation")}]
    prompt_total = cached_total = 0
    for t in range(turns):
        msgs.append({"role": "user", "content": f"Turn {t + 1}: tell me one short fact about the number {t + 7}."})
        r = _ask(system, msgs, max_tokens=24)
        prompt_total += r.prompt_tokens
        cached_total += r.cached_tokens or 0
        msgs.append({"role": "assistant", "content": r.text})
    return {"turns": turns, "prompt_tokens_total": prompt_total, "cached_tokens_total": cached_total,
            "prefilled_tokens": prompt_total - cached_total,
            "prefilled_over_no_cache": (prompt_total - cached_total) / prompt_total}


def run(args) -> int:
    r = Run.from_args(NAME, args)
    results = r.header(system_tokens=args.system_tokens, repeats=args.repeats)

    def measure(system) -> dict:
        _ask(system, [{"role": "user", "content": "warm up"}])
        return {"ttft": ttft_cold_warm(system, args.system_tokens, args.repeats),
                "conversation": conversation(system, args.turns)}

    results["wafer"] = r.on(r.wafer(4), measure)
    results["llama_server"] = r.peer(not args.no_peer, measure)
    r.write(results, render([results]))
    return 0


def render(results: list[dict]) -> str:
    """A row per model and server: prompt tokens, cold and warm TTFT, cached tokens, the conversation's prefill."""
    rows = []
    for res in results:
        for key, name in (("wafer", "wafer"), ("llama_server", "llama-server")):
            part = res.get(key) or {"skipped": "not run"}
            if "skipped" in part:
                rows.append([res["model"], name, f"skipped: {part['skipped']}"] + [""] * 7)
                continue
            t, c = part["ttft"], part["conversation"]
            if "warm_host_ttft_s" in t:
                host = [f"{t['warm_host_ttft_s'] * 1000:.1f}", f"{t['warm_host_over_cold']:.3f}",
                        f"{t['warm_host_cached_tokens']:.0f}"]
            else:  # results from before the host-memory measurement
                host = ["–", "–", "–"]
            rows.append([res["model"], name, f"{t['prompt_tokens']:.0f}", f"{t['cold_ttft_s'] * 1000:.1f}",
                         f"{t['warm_ttft_s'] * 1000:.1f}", f"{t['warm_over_cold']:.3f}",
                         f"{t['warm_cached_tokens']:.0f}", *host,
                         f"{c['prefilled_tokens']} / {c['prompt_tokens_total']} ({c['prefilled_over_no_cache']:.2f})"])
    header = ["model", "server", "prompt tokens", "cold TTFT ms", "warm (resident) TTFT ms", "warm/cold",
              "cached", "warm after eviction TTFT ms", "warm/cold", "cached",
              "conversation: prefilled / prompt tokens"]
    when = ", ".join(f"{res['model']} {res['date']} (median of {res.get('repeats', '–')}, {res['threads']} threads)"
                     for res in results)
    return f"{md_table(header, rows)}\n\nRuns: {when}.\n"
