"""Predicted outputs on a code-edit workload: a ~300-line Python file, a small requested change, the
original file as the prediction. Wall time and decode speed with vs without the prediction in the same
run (same server, one request at a time), acceptance, the best --draft-max, and what a k-token verify
costs against a 1-token decode on this machine (the limit of the speed-up).

    .venv/bin/python bench/bench_prediction.py --model qwen2.5-coder-0.5b [--ks 8,16,32]

Prints a table, writes bench/results/prediction-<model>.json.
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

from bench.bench_serve import start_server  # noqa: E402


def source_file(lines: int = 300) -> str:
    """A deterministic ~300-line Python module (classes with small methods)."""
    out = ['"""Inventory of a small shop."""', "", "from dataclasses import dataclass", ""]
    i = 0
    while len(out) < lines:
        out += [
            "",
            "@dataclass",
            f"class Item{i}:",
            f'    """Item number {i} of the inventory."""',
            "",
            "    name: str",
            f"    price: float = {i + 1}.5",
            f"    stock: int = {i * 3 % 17}",
            "",
            "    def total(self) -> float:",
            "        return self.price * self.stock",
            "",
            "    def restock(self, n: int) -> None:",
            "        self.stock += n",
        ]
        i += 1
    return "\n".join(out[:lines]) + "\n"


def request(url: str, model: str, code: str, prediction: str | None, max_tokens: int) -> dict:
    body = {"model": model, "temperature": 0, "max_completion_tokens": max_tokens, "messages": [
        {"role": "user", "content": "Rename the method `restock` to `add_stock` everywhere in this file. "
                                    "Reply with the whole updated file in one python code block, nothing else.\n\n"
                                    f"```python\n{code}```"}]}
    if prediction is not None:
        body["prediction"] = {"type": "content", "content": prediction}
    t0 = time.perf_counter()
    r = httpx.post(url + "/v1/chat/completions", json=body, timeout=1800)
    r.raise_for_status()
    wall = time.perf_counter() - t0
    d = r.json()
    u = d["usage"]
    return {"wall_s": wall, "completion_tokens": u["completion_tokens"], "text": d["choices"][0]["message"]["content"],
            "completion_s": d["time_info"]["completion_time"], "details": u.get("completion_tokens_details")}


def verify_cost(model_path: str, threads: int, ks=(1, 2, 4, 8, 16, 32), repeats: int = 5) -> dict:
    """Milliseconds of one llama_decode of k tokens of one sequence (logits at each) after the
    workload's prompt (the 300-line file), vs k = 1: what verifying a k-token draft costs."""
    from wafer.engine.llama import ContextConfig, LlamaContext, LlamaModel

    m = LlamaModel(model_path)
    ctx = LlamaContext(m, ContextConfig(n_ctx=8192, n_seq_max=1, n_batch=4096, n_threads=threads, flash_attn=True))
    prompt = m.tokenize(source_file(), False, False)
    out = {}
    try:
        ctx.batch.clear()
        ctx.batch.add(0, prompt, 0, True)
        assert ctx.decode() == 0
        for k in ks:
            times = []
            for _ in range(repeats):
                ctx.batch.clear()
                ctx.batch.add_all_logits(0, prompt[:k], len(prompt))
                t0 = time.perf_counter()
                assert ctx.decode() == 0
                times.append(time.perf_counter() - t0)
                ctx.seq_rm(0, len(prompt), -1)
            out[k] = statistics.median(times) * 1000
    finally:
        ctx.close()
        m.close()
    return {"context": len(prompt), "ms": out, "max_speedup": {k: k * out[1] / out[k] for k in out}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--ks", default="8,16,32", help="--draft-max values to try")
    ap.add_argument("--max-tokens", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    from wafer.models import resolve_model

    resolved = resolve_model(args.model)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    code = source_file()
    expected = "```python\n" + code.replace("def restock(", "def add_stock(") + "```"
    results: dict = {"model": resolved.id, "file": Path(resolved.path).name, "threads": args.threads,
                     "date": time.strftime("%Y-%m-%d %H:%M"), "file_lines": 300, "runs": {}}
    for k in [int(x) for x in args.ks.split(",")]:
        proc, url = start_server(args.model, args.threads, 2, out_dir / f"server-{resolved.id}.log",
                                 ["--no-prefix-cache", "--draft-max", str(k)])
        try:
            request(url, resolved.id, "x", None, 4)  # warm up
            plain = request(url, resolved.id, code, None, args.max_tokens)
            pred = request(url, resolved.id, code, "```python\n" + code + "```", args.max_tokens)
        finally:
            proc.terminate()
            proc.wait(30)
        d = pred["details"] or {}
        results["runs"][k] = {
            "plain_wall_s": plain["wall_s"], "pred_wall_s": pred["wall_s"],
            "time_ratio": pred["wall_s"] / plain["wall_s"],
            "plain_tok_s": plain["completion_tokens"] / plain["completion_s"],
            # output tokens only: completion_tokens also bills the rejected prediction tokens
            "pred_tok_s": (pred["completion_tokens"] - ((pred["details"] or {}).get("rejected_prediction_tokens") or 0))
            / pred["completion_s"],
            "completion_tokens": plain["completion_tokens"], "same_output": plain["text"] == pred["text"],
            "output_is_the_edit": plain["text"].strip() == expected.strip(),
            "accepted": d.get("accepted_prediction_tokens"), "rejected": d.get("rejected_prediction_tokens"),
            "acceptance": (d.get("accepted_prediction_tokens") or 0) / pred["completion_tokens"],
        }
    results["verify_cost"] = verify_cost(str(resolved.path), args.threads)

    print(f"\nmodel {resolved.id} ({results['file']}), {args.threads} threads, 300-line file, rename a method")
    print(f"{'draft-max':>10}{'tokens':>8}{'plain s':>9}{'pred s':>8}{'pred/plain':>11}{'plain tok/s':>12}"
          f"{'pred tok/s':>11}{'accepted':>9}{'rejected':>9}{'same':>6}")
    for k, r in results["runs"].items():
        print(f"{k:>10}{r['completion_tokens']:>8}{r['plain_wall_s']:>9.1f}{r['pred_wall_s']:>8.1f}{r['time_ratio']:>11.3f}"
              f"{r['plain_tok_s']:>12.1f}{r['pred_tok_s']:>11.1f}{r['accepted']:>9}{r['rejected']:>9}"
              f"{str(r['same_output']):>6}")
    best = min(results["runs"], key=lambda k: results["runs"][k]["time_ratio"])
    results["best_draft_max"] = best
    print(f"best --draft-max: {best}")
    v = results["verify_cost"]
    print(f"verify cost (one decode of k tokens, logits at each, after the {v['context']}-token file):")
    print("  " + "  ".join(f"k={k}: {ms:.1f} ms ({v['max_speedup'][k]:.2f}x max)" for k, ms in v["ms"].items()))
    out = out_dir / f"prediction-{resolved.id}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
