"""Structured outputs: decode speed with a strict JSON schema vs unconstrained on the same prompts,
for wafer and for llama-server (its json_schema -> GBNF grammar) in the same run; wafer's mask time
per token and grammar compile time (p50/p99, measured in the engine).

    .venv/bin/python bench/bench_structured.py --model smollm2-135m [--repeats 3] [--no-peer]

Each pair runs the strict request first, then the same prompt unconstrained with exactly as many
tokens (min = max = the strict output's length), one request at a time, so both decode the same
number of tokens after the same prompt. Decode tok/s = (tokens - 1) / (last token - first token),
measured by a lean streaming client; "weighted" is all decoded tokens over all decode time, strict
vs unconstrained (long outputs weigh more than short ones). Compile times come from compiling every schema of
tests/schema_corpus.py once (43 schemas). Prints a table, writes bench/results/structured-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench.bench_serve import _sse_events, start_server  # noqa: E402
from bench.peers import measure_llama_server  # noqa: E402
from schema_corpus import SCHEMAS  # noqa: E402


def obj(props: dict) -> dict:
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


S, I = {"type": "string"}, {"type": "integer"}
CASES = [  # (name, schema, prompt): outputs of 100-200 tokens
    ("essay", obj({"title": S, "paragraphs": {"type": "array", "items": S}}),
     "Write a short essay about sailing ships as JSON with a title and three paragraphs."),
    ("recipe", obj({"name": S, "servings": I, "ingredients": {"type": "array", "items": obj({"item": S, "amount": S})},
                    "steps": {"type": "array", "items": S}}),
     "Give a recipe for pancakes as JSON."),
    ("movies", obj({"movies": {"type": "array", "items": obj({"title": S, "year": I, "director": S, "summary": S})}}),
     "List three classic science fiction movies as JSON."),
    ("profile", obj({"name": S, "email": {"type": "string", "format": "email"}, "bio": S,
                     "address": obj({"street": S, "city": S, "country": S}),
                     "skills": {"type": "array", "items": obj({"skill": S, "level": {"enum": ["junior", "senior"]}})}}),
     "Invent a user profile for a software engineer as JSON."),
]


def run(url: str, model: str, prompt: str, max_tokens: int, schema: dict | None = None, exact: bool = False) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0, "stream": True,
            "max_tokens": max_tokens}
    if exact:
        body["min_tokens"] = max_tokens  # llama-server's name; wafer accepts it too
        body["min_completion_tokens"] = max_tokens
    if schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "out", "strict": True, "schema": schema}}
    first = last = None
    count, usage, text = 0, None, []
    for now, ev in _sse_events(url, body):
        if ev.startswith(b"{") and b'"content"' in ev:
            d = json.loads(ev)
            piece = (d.get("choices") or [{}])[0].get("delta", {}).get("content")
            if piece:
                text.append(piece)
                count += 1
                first = first or now
                last = now
        if b'"usage"' in ev:
            usage = json.loads(ev).get("usage") or usage
    n = (usage or {}).get("completion_tokens") or count
    return {"tokens": n, "tok_s": (n - 1) / (last - first) if last and last > first else 0.0, "text": "".join(text)}


def pairs(url: str, model: str, repeats: int, max_tokens: int) -> dict:
    out = {}
    for name, schema, prompt in CASES:
        strict, free, ratios, valid, secs = [], [], [], 0, [0.0, 0.0]
        for _ in range(repeats):
            s = run(url, model, prompt, max_tokens, schema)
            f = run(url, model, prompt, s["tokens"], exact=True)
            strict.append(s["tok_s"])
            free.append(f["tok_s"])
            ratios.append(s["tok_s"] / f["tok_s"])
            secs[0] += (s["tokens"] - 1) / s["tok_s"]
            secs[1] += (f["tokens"] - 1) / f["tok_s"]
            try:
                json.loads(s["text"])
                valid += 1
            except ValueError:
                pass
        out[name] = {"tokens": s["tokens"], "strict_tok_s": statistics.median(strict),
                     "unconstrained_tok_s": statistics.median(free), "ratio": statistics.median(ratios),
                     "valid_json": f"{valid}/{repeats}", "decode_s": secs, "decoded": repeats * (s["tokens"] - 1)}
    return out


def compile_corpus(url: str, model: str) -> None:
    """Send every corpus schema once (1 token each) so the engine compiles each grammar once."""
    with httpx.Client(timeout=120) as c:
        for _, schema, _ in SCHEMAS:
            c.post(url + "/v1/chat/completions", json={
                "model": model, "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 1,
                "response_format": {"type": "json_schema", "json_schema": {"name": "o", "strict": True, "schema": schema}},
            }).raise_for_status()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--no-peer", action="store_true", help="skip llama-server")
    args = ap.parse_args()

    from wafer.models import resolve_model

    resolved = resolve_model(args.model)
    results: dict = {"model": resolved.id, "file": Path(resolved.path).name, "threads": args.threads,
                     "repeats": args.repeats, "date": time.strftime("%Y-%m-%d %H:%M")}
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    proc, url = start_server(args.model, args.threads, 4, out_dir / f"server-{resolved.id}.log", ["--no-prefix-cache"])
    try:
        run(url, resolved.id, "warm up", 8, CASES[0][1])
        results["wafer"] = pairs(url, resolved.id, args.repeats, args.max_tokens)
        masks = httpx.get(url + "/wafer/stats").json()[resolved.id]["grammar"]
        compile_corpus(url, resolved.id)
        grammar = httpx.get(url + "/wafer/stats").json()[resolved.id]["grammar"]
        results["wafer_grammar"] = {**grammar, "mask_us_p50": masks["mask_us_p50"], "mask_us_p99": masks["mask_us_p99"],
                                    "masks": masks["masks"]}
    finally:
        proc.terminate()
        proc.wait(30)

    def peer(purl: str) -> dict:
        run(purl, resolved.id, "warm up", 8)
        return pairs(purl, resolved.id, args.repeats, args.max_tokens)

    results["llama_server"] = measure_llama_server(not args.no_peer, str(resolved.path), args.threads, out_dir, peer)

    print(f"\nmodel {resolved.id} ({results['file']}), {args.threads} threads, median of {args.repeats}, one request at a time")
    print(f"{'':14}{'case':10}{'tokens':>7}{'strict tok/s':>14}{'free tok/s':>12}{'strict/free':>13}{'valid':>7}")
    for peer in ("wafer", "llama_server"):
        r = results[peer]
        if "skipped" in r:
            print(f"{peer:14}skipped: {r['skipped']}")
            continue
        for name, c in r.items():
            print(f"{peer:14}{name:10}{c['tokens']:>7}{c['strict_tok_s']:>14.1f}{c['unconstrained_tok_s']:>12.1f}"
                  f"{c['ratio']:>13.3f}{c['valid_json']:>7}")
        cases = list(r.values())
        r["median_ratio"] = statistics.median(c["ratio"] for c in cases)
        # all decoded tokens over all decode time: long outputs weigh more than 20-token ones
        r["weighted_ratio"] = sum(c["decode_s"][1] for c in cases) / sum(c["decode_s"][0] for c in cases)
        print(f"{peer:14}{'median':10}{'':>7}{'':>14}{'':>12}{r['median_ratio']:>13.3f}")
        print(f"{peer:14}{'weighted':10}{'':>7}{'':>14}{'':>12}{r['weighted_ratio']:>13.3f}")
    if "skipped" not in results["llama_server"]:
        rel = [results["wafer"][n]["strict_tok_s"] / results["llama_server"][n]["strict_tok_s"] for n, _, _ in CASES]
        results["wafer_strict_over_llama_server_strict"] = statistics.median(rel)
        print(f"\nwafer strict tok/s / llama-server strict tok/s (median over cases): {statistics.median(rel):.2f}")
    g = results["wafer_grammar"]
    print(f"wafer mask per token: p50 {g['mask_us_p50']} us, p99 {g['mask_us_p99']} us ({g['masks']} masks); "
          f"grammar compile: p50 {g['compile_us_p50']} us, p99 {g['compile_us_p99']} us ({g['compiles']} grammars)")
    out = out_dir / f"structured-{resolved.id}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
