"""``wafer bench structured``: decode speed with a strict JSON schema vs unconstrained on the same prompts.

For wafer and llama-server (its json_schema -> GBNF grammar) in the same run, one request at a time:
each case runs the strict request first, then the same prompt unconstrained with exactly as many
tokens (min = max = the strict output's length), so both decode the same number of tokens after the
same prompt. Decode tok/s = (tokens - 1) / (last token - first token); "weighted" is all decoded
tokens over all decode time, strict vs unconstrained (long outputs weigh more than short ones). wafer's
mask time per token and grammar compile time (p50/p99) come from its /wafer/stats, after compiling
the bench's schemas and, in a source checkout, every schema of tests/schema_corpus.py once.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import statistics

from ..launch import ROOT
from .client import get_json
from .report import md_table
from .scenario import Run, add_common, ask

NAME = "structured"
HELP = "structured outputs: strict JSON schema vs unconstrained decode speed, wafer and llama-server; mask and compile times"


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


def add_args(p) -> None:
    add_common(p, peer=True)
    p.add_argument("--repeats", type=int, default=3, help="strict/unconstrained pairs per case (medians)")
    p.add_argument("--max-tokens", type=int, default=200, help="max_tokens of the strict requests")


def corpus() -> list[dict]:
    """The schemas of tests/schema_corpus.py when this is a source checkout (none otherwise)."""
    path = ROOT / "tests" / "schema_corpus.py"
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location("schema_corpus", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return [schema for _, schema, _ in mod.SCHEMAS]


def _fmt(schema: dict, name: str = "out") -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


def one(system, prompt: str, max_tokens: int, schema: dict | None = None, exact: bool = False) -> dict:
    body = {"messages": [{"role": "user", "content": prompt}], "temperature": 0, "max_tokens": max_tokens}
    if exact:
        body["min_tokens"] = max_tokens  # llama-server's name; wafer accepts it too
        body["min_completion_tokens"] = max_tokens
    if schema is not None:
        body["response_format"] = _fmt(schema)
    rec = ask(system, body)
    n = rec.output_tokens
    return {"tokens": n, "tok_s": (n - 1) / (rec.t_last - rec.t_first) if rec.t_last > rec.t_first else 0.0,
            "text": rec.text}


def pairs(system, repeats: int, max_tokens: int) -> dict:
    out = {}
    for name, schema, prompt in CASES:
        strict, free, ratios, valid, secs = [], [], [], 0, [0.0, 0.0]
        for _ in range(repeats):
            s = one(system, prompt, max_tokens, schema)
            f = one(system, prompt, s["tokens"], exact=True)
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
    cases = list(out.values())
    out["median_ratio"] = statistics.median(c["ratio"] for c in cases)
    # all decoded tokens over all decode time: long outputs weigh more than 20-token ones
    out["weighted_ratio"] = sum(c["decode_s"][1] for c in cases) / sum(c["decode_s"][0] for c in cases)
    return out


def _grammar(system) -> dict:
    stats = asyncio.run(get_json(system.root, "/wafer/stats")) or {}
    return (stats.get(system.model_id) or {}).get("grammar") or {}


def run(args) -> int:
    r = Run.from_args(NAME, args)
    results = r.header(repeats=args.repeats, max_tokens=args.max_tokens)
    schemas = corpus()

    def on_wafer(w) -> dict:
        one(w, "warm up", 8, CASES[0][1])
        part = pairs(w, args.repeats, args.max_tokens)
        masks = _grammar(w)
        for i, schema in enumerate(schemas):  # compile each once: 1 token each
            ask(w, {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 1,
                    "response_format": _fmt(schema, f"o{i}")})
        grammar = _grammar(w)
        results["wafer_grammar"] = {**grammar, "mask_us_p50": masks.get("mask_us_p50"),
                                    "mask_us_p99": masks.get("mask_us_p99"), "masks": masks.get("masks")}
        return part

    def on_peer(s) -> dict:
        one(s, "warm up", 8)
        return pairs(s, args.repeats, args.max_tokens)

    results["wafer"] = r.on(r.wafer(4, ["--no-prefix-cache"]), on_wafer)
    results["llama_server"] = r.peer(not args.no_peer, on_peer)
    if "skipped" not in results["wafer"] and "skipped" not in results["llama_server"]:
        rel = [results["wafer"][n]["strict_tok_s"] / results["llama_server"][n]["strict_tok_s"] for n, _, _ in CASES]
        results["wafer_strict_over_llama_server_strict"] = statistics.median(rel)
    r.write(results, render([results]))
    return 0


def _cases(part: dict) -> list[dict]:
    return [part[name] for name, _, _ in CASES if name in part]


def _valid(part: dict) -> str:
    ok = total = 0
    for c in _cases(part):
        a, b = c["valid_json"].split("/")
        ok, total = ok + int(a), total + int(b)
    return f"{ok}/{total}"


def _speed(part: dict) -> str:
    return "–" if "skipped" in part else f"{part['median_ratio']:.3f} ({part['weighted_ratio']:.3f})"


def render(results: list[dict]) -> str:
    """Strict / unconstrained per server, wafer strict / llama-server strict, valid JSON; then wafer's grammar times."""
    rows, grammar = [], []
    for res in results:
        w, ls = res["wafer"], res.get("llama_server") or {"skipped": "not run"}
        rel = res.get("wafer_strict_over_llama_server_strict")
        rows.append([res["model"], _speed(w), _speed(ls) if "skipped" not in ls else f"skipped: {ls['skipped']}",
                     "–" if rel is None else f"{rel:.2f}", _valid(w), "–" if "skipped" in ls else _valid(ls),
                     f"{res['date']}, median of {res['repeats']}"])
        g = res.get("wafer_grammar") or {}

        def us(key: str, scale: float = 1.0, digits: int = 0) -> str:
            return "–" if g.get(key) is None else f"{g[key] / scale:.{digits}f}"

        grammar.append([res["model"], us("mask_us_p50"), us("mask_us_p99"), us("masks"), us("compile_us_p50", 1000, 1),
                        us("compile_us_p99", 1000, 1), us("compiles")])
    speed = md_table(["model", "wafer strict / unconstrained tok/s, median (weighted)", "llama-server, same",
                      "wafer strict ÷ llama-server strict tok/s", "valid JSON wafer", "valid JSON llama-server",
                      "run"], rows)
    times = md_table(["model", "mask µs p50", "mask µs p99", "masks", "compile ms p50", "compile ms p99", "grammars"],
                     grammar)
    return f"{speed}\n\nwafer's grammar, measured in the engine:\n\n{times}\n"
