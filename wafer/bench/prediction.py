"""``wafer bench prediction``: predicted outputs on a code edit, and what verifying a draft costs.

Workload: a ~300-line Python file, "rename the method ``restock`` to ``add_stock`` everywhere, reply with
the whole file", prediction = the original file. Per ``--draft-max`` k: a fresh ``wafer serve
--no-prefix-cache --draft-max k``, one request at a time, the plain request then the predicted one:
wall time, decode tok/s (output tokens / the server's completion_time), acceptance, whether both
outputs are the same. Then the limit of the speed-up on this machine: one llama_decode of k tokens of
one sequence with logits at each, after the file (raw loop), vs k = 1.
"""

from __future__ import annotations

import statistics
import time

from .report import md_table
from .scenario import Run, add_common, ask

NAME = "prediction"
HELP = "predicted outputs on a 300-line code edit: wall time with vs without the prediction per --draft-max; verify cost"
LINES = 300
KS = (1, 2, 4, 8, 16, 32)


def add_args(p) -> None:
    add_common(p, default_model="qwen2.5-coder-0.5b")
    p.add_argument("--ks", default="8,16,32", help="--draft-max values to try")
    p.add_argument("--max-tokens", type=int, default=3000, help="max_completion_tokens of each request")


def source_file(lines: int = LINES) -> str:
    """A deterministic Python module of ``lines`` lines (small dataclasses with two methods each)."""
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


def edit(system, code: str, prediction: str | None, max_tokens: int):
    body = {"temperature": 0, "max_completion_tokens": max_tokens, "messages": [
        {"role": "user", "content": "Rename the method `restock` to `add_stock` everywhere in this file. "
                                    "Reply with the whole updated file in one python code block, nothing else.\n\n"
                                    f"```python\n{code}```"}]}
    if prediction is not None:
        body["prediction"] = {"type": "content", "content": prediction}
    return ask(system, body)


def verify_cost(model_path: str, threads: int, ks=KS, repeats: int = 5) -> dict:
    """Milliseconds of one llama_decode of k tokens of one sequence (logits at each) after the workload's
    prompt (the file), vs k = 1: what verifying a k-token draft costs."""
    from .rawloop import RawLoop

    loop = RawLoop(model_path, n_ctx=4096, threads=threads)
    try:
        prompt = loop.tokenize(source_file())
        loop.prefill(prompt, 0)
        out = {}
        for k in ks:
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                loop.decode([(0, prompt[:k], len(prompt))], all_logits=True)
                times.append(time.perf_counter() - t0)
                loop.remove(0, len(prompt))
            out[k] = statistics.median(times) * 1000
    finally:
        loop.close()
    return {"context": len(prompt), "ms": out, "max_speedup": {k: k * out[ks[0]] / out[k] for k in out}}


def run(args) -> int:
    r = Run.from_args(NAME, args)
    code = source_file()
    expected = "```python\n" + code.replace("def restock(", "def add_stock(") + "```"
    results = r.header(file_lines=LINES, runs={})
    for k in [int(x) for x in args.ks.split(",")]:
        def measure(w) -> dict:
            edit(w, "x", None, 4)  # warm-up
            return {"plain": edit(w, code, None, args.max_tokens),
                    "pred": edit(w, code, "```python\n" + code + "```", args.max_tokens)}

        got = r.on(r.wafer(2, ["--no-prefix-cache", "--draft-max", str(k)]), measure)
        if "skipped" in got:
            raise RuntimeError(f"wafer could not start: {got['skipped']}")
        plain, pred = got["plain"], got["pred"]
        details = pred.usage.get("completion_tokens_details") or {}
        results["runs"][str(k)] = {
            "plain_wall_s": plain.e2e, "pred_wall_s": pred.e2e, "time_ratio": pred.e2e / plain.e2e,
            # output tokens (completion_tokens less the rejected prediction tokens it bills) / completion time
            "plain_tok_s": plain.output_tokens / plain.time_info["completion_time"],
            "pred_tok_s": pred.output_tokens / pred.time_info["completion_time"],
            "completion_tokens": plain.usage["completion_tokens"], "same_output": plain.text == pred.text,
            "output_is_the_edit": plain.text.strip() == expected.strip(),
            "accepted": details.get("accepted_prediction_tokens"), "rejected": details.get("rejected_prediction_tokens"),
            "acceptance": (details.get("accepted_prediction_tokens") or 0) / pred.usage["completion_tokens"],
        }
    results["verify_cost"] = verify_cost(r.path, r.threads)
    results["best_draft_max"] = int(min(results["runs"], key=lambda k: results["runs"][k]["time_ratio"]))
    r.write(results, render([results]))
    return 0


def render(results: list[dict]) -> str:
    """The runs per --draft-max (best in bold), then the verify cost per k and the best speed-up it allows."""
    rows = []
    for res in results:
        for k, x in sorted(res["runs"].items(), key=lambda kv: int(kv[0])):
            best = int(k) == res.get("best_draft_max")
            bold = (lambda v: f"**{v}**") if best else str
            rows.append([res["model"], bold(k), f"{x['completion_tokens']:,}", f"{x['plain_wall_s']:.1f}",
                         f"{x['pred_wall_s']:.1f}", bold(f"{x['time_ratio']:.2f}"), f"{x['plain_tok_s']:.1f}",
                         f"{x['pred_tok_s']:.1f}", f"{x['accepted']:,} / {x['rejected']:,}",
                         "yes" if x["same_output"] else "no"])
    runs = md_table(["model", "--draft-max", "output tokens", "plain s", "predicted s", "time ratio", "plain tok/s",
                     "predicted tok/s", "accepted / rejected", "same output"], rows)
    ks = sorted({int(k) for res in results for k in res["verify_cost"]["ms"]})
    rows = []
    for res in results:
        v = res["verify_cost"]
        ms = {int(k): x for k, x in v["ms"].items()}
        up = {int(k): x for k, x in v["max_speedup"].items()}
        rows.append([f"{res['model']}, ms (after {v['context']:,} tokens)"] + [f"{ms[k]:.1f}" if k in ms else "–" for k in ks])
        rows.append([f"{res['model']}, best possible speed-up (k × t₁ / t_k)"]
                    + [f"{up[k]:.2f}" if k in up else "–" for k in ks])
    verify = md_table(["k"] + [str(k) for k in ks], rows)
    when = ", ".join(f"{res['model']} {res['date']} ({res['threads']} threads)" for res in results)
    return f"{runs}\n\nVerify cost: one llama_decode of k tokens of one sequence, logits at each:\n\n{verify}\n\nRuns: {when}.\n"
