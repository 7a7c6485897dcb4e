"""``wafer bench``: the sweep on every system (results.json, report.md, PNGs), the focused benchmarks
(``wafer bench SCENARIO``), and the docs' tables and findings rendered from results (``--render``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

from .workloads import WORKLOADS, WorkloadConfig

SYSTEMS = ("wafer", "llama-server", "llama-cpp-python", "raw")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", default=None,
                   help="catalogue name or GGUF path (default smollm2-135m); with --url, the model id to send")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="llama.cpp threads of every system")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma separated, from {', '.join(WORKLOADS)}")
    p.add_argument("--concurrency", default="1,2,4,8,16,32", help="levels: concurrent streams (comma separated)")
    p.add_argument("--requests-per-level", type=int, default=None,
                   help="requests per level, conversations for multi-turn (default max(4, 2 x concurrency))")
    p.add_argument("--rounds", type=int, default=None,
                   help="requests per level = ROUNDS x concurrency (at least 2), instead of --requests-per-level")
    p.add_argument("--mode", choices=["closed", "rate"], default="closed",
                   help="closed: C clients back to back; rate: Poisson arrivals at --rate, at most C in flight")
    p.add_argument("--rate", type=float, default=None, help="requests per second in rate mode")
    p.add_argument("--seed", type=int, default=0, help="workload and arrival seed")
    p.add_argument("--systems", default=None, help=f"comma separated, from {', '.join(SYSTEMS)} (default all)")
    p.add_argument("--url", default=None,
                   help="bench only this OpenAI-compatible endpoint (base URL, e.g. http://host:8000/v1)")
    p.add_argument("--api-key", default=None, help="bearer key for --url")
    p.add_argument("--label", default=None,
                   help="what --url is (e.g. '2 replicas'), kept in the results for the rendered tables")
    p.add_argument("--out", default=None, help="output directory (default bench/results/serve-sweep-<model>)")
    p.add_argument("--prompt-len", type=int, default=WorkloadConfig.prompt_len, help="chat prompt tokens")
    p.add_argument("--output-len", type=int, default=WorkloadConfig.output_len, help="chat output tokens")
    p.add_argument("--slot-ctx", type=int, default=None,
                   help="context per sequence of the peers and the raw loop (default: sized from the workloads)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    p.add_argument("--cache-dir", default=None, help="model cache directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--render-readme", nargs="+", metavar=("README", "RESULTS"), default=None,
                   help="point README's sweep blocks (ratio table, findings, full results) at these results.json "
                        "files and render every block of README; run nothing")
    p.add_argument("--render", nargs="+", metavar="DOC", default=None,
                   help="rewrite every <!-- bench:KIND FILE... --> block of these documents from its results "
                        "files; run nothing")
    sub = p.add_subparsers(dest="scenario", metavar="SCENARIO",
                           help="a focused benchmark instead of the sweep (wafer bench SCENARIO --help)")
    for mod in scenarios():
        mod.add_args(sub.add_parser(mod.NAME, help=mod.HELP, description=mod.__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter))


def scenarios() -> tuple:
    from . import prediction, prefix_cache, serve_vs_raw, step_costs, structured

    return serve_vs_raw, prefix_cache, structured, prediction, step_costs


def _list(spec: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise SystemExit(f"wafer bench: unknown {what} {', '.join(bad) or '(none)'} (choose from {', '.join(allowed)})")
    return list(dict.fromkeys(items))


def _levels(spec: str) -> list[int]:
    try:
        levels = sorted({int(x) for x in spec.split(",") if x.strip()})
    except ValueError:
        levels = []
    if not levels or levels[0] < 1:
        raise SystemExit(f"wafer bench: --concurrency expects positive integers, got {spec!r}")
    return levels


def _slot_ctx(plan) -> int:
    from .workloads import context_needed

    need = max(context_needed(plan.scripts(w, c)) for w in plan.workloads for c in plan.levels)
    return math.ceil((need * 1.25 + 256) / 256) * 256


def build_systems(args, plan, names: list[str]) -> tuple[dict, list, dict]:
    """The model description, the systems to run (in order) and how the servers are sized."""
    from .systems import Endpoint, LlamaCppPython, LlamaServer, Raw, Wafer

    if args.url:
        model_id = args.model
        if model_id is None:
            from .client import get_json

            listing = asyncio.run(get_json(args.url.rstrip("/"), "/models", args.api_key)) or {}
            model_id = next((m.get("id") for m in listing.get("data") or () if m.get("id")), "default")
        return {"id": model_id}, [Endpoint(args.url, model_id, args.api_key, args.timeout)], {}
    from ..models import DEFAULT_MODEL, resolve_model

    spec = args.model or DEFAULT_MODEL
    resolved = resolve_model(spec, cache_dir=Path(args.cache_dir) if args.cache_dir else None)
    path = str(resolved.path)
    model = {"id": resolved.id, "path": path, "file": resolved.path.name, "size_bytes": resolved.path.stat().st_size,
             "quant": resolved.quant}
    slot_ctx, parallel = args.slot_ctx or _slot_ctx(plan), max(plan.levels)
    systems = []
    for name in names:
        if name == "wafer":
            systems.append(Wafer(spec, resolved.id, args.threads, parallel, args.cache_dir, args.timeout,
                                 kv_cells=parallel * slot_ctx))
        elif name == "llama-server":
            systems.append(LlamaServer(path, resolved.id, args.threads, parallel, slot_ctx, args.timeout))
        elif name == "llama-cpp-python":
            from ..engine.llama import LlamaModel

            m = LlamaModel(path)
            eog = [int(t) for t in m.eog_ids]
            m.close()
            systems.append(LlamaCppPython(path, resolved.id, args.threads, slot_ctx, eog, args.timeout))
        else:
            systems.append(Raw(path, args.threads, parallel, slot_ctx))
    return model, systems, {"slot_ctx": slot_ctx, "parallel": parallel}


def run_bench(args) -> int:
    if args.render_readme or args.render:
        return render(args)
    if args.scenario:
        mod = next(m for m in scenarios() if m.NAME == args.scenario)
        try:
            return mod.run(args)
        except (ValueError, OSError, RuntimeError) as e:  # unknown model, a server that failed, a bad option
            print(f"wafer bench {args.scenario}: {e}", file=sys.stderr)
            return 1
    from .runner import Plan

    if args.mode == "rate" and not (args.rate and args.rate > 0):
        raise SystemExit("wafer bench: --mode rate needs a positive --rate")
    plan = Plan(workloads=_list(args.workloads, WORKLOADS, "workload"), levels=_levels(args.concurrency),
                requests_per_level=args.requests_per_level, rounds=args.rounds, seed=args.seed, mode=args.mode, rate=args.rate,
                cfg=WorkloadConfig(prompt_len=args.prompt_len, output_len=args.output_len))
    names = ["endpoint"] if args.url else _list(args.systems or ",".join(SYSTEMS), SYSTEMS, "system")
    try:
        model, systems, sizing = build_systems(args, plan, names)
    except (ValueError, OSError, RuntimeError) as e:  # unknown model, bad file, failed pull
        print(f"wafer bench: {e}", file=sys.stderr)
        return 1
    out = Path(args.out or Path("bench") / "results" / f"serve-sweep-{model['id']}")
    config = {"threads": args.threads, "url": args.url, "label": args.label, **sizing}
    results = run_systems(systems, plan, model, out, "wafer " + shlex.join(sys.argv[1:]), config,
                          progress=not args.no_progress)
    from .report import console

    print(console(results))
    print(f"\nwafer bench: wrote {out / 'results.json'}, {out / 'report.md'} and {len(results['plots'])} plot pair(s)")
    return 0


def render(args) -> int:
    from .render import render_doc

    jobs = []
    if args.render_readme:
        readme, *files = args.render_readme
        jobs.append((Path(readme), [Path(f) for f in files] or None))
    jobs += [(Path(d), None) for d in args.render or ()]
    for doc, files in jobs:
        try:
            n = render_doc(doc, files)
        except (OSError, ValueError) as e:
            print(f"wafer bench: {e}", file=sys.stderr)
            return 1
        print(f"wafer bench: rendered {n} block(s) of {doc}")
    return 0


def run_systems(systems: list, plan, model: dict, out: Path, command: str, config: dict,
                progress: bool = True) -> dict:
    """Run ``plan`` on each system in turn (one at a time), then write results.json, the PNGs and report.md."""
    from tqdm import tqdm

    from .report import SCHEMA, machine_info, markdown, ratios
    from .runner import measure
    from .systems import Skipped

    out.mkdir(parents=True, exist_ok=True)
    results = {
        "schema": SCHEMA, "created": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": command, "model": model,
        "machine": machine_info(),
        "config": {**config, "concurrency": plan.levels, "mode": plan.mode, "rate": plan.rate,
                   "requests_per_level": plan.requests_per_level, "rounds": plan.rounds, "seed": plan.seed, "workloads": plan.workloads,
                   "systems": [s.name for s in systems], "workload_config": dict(plan.cfg.__dict__)},
        "workloads": {w: plan.cfg.describe(w) for w in plan.workloads},
        "systems": {},
    }
    per_system = plan.total_requests()
    bar = tqdm(total=per_system * len(systems), unit="req", disable=not progress, dynamic_ncols=True)
    try:
        for i, system in enumerate(systems):
            bar.set_postfix_str(f"{system.name} starting")
            reason = None
            try:
                system.start(out)
                part = measure(system, plan, bar)
            except Skipped as e:
                reason = str(e)
            except (ValueError, RuntimeError, OSError) as e:
                reason = f"failed: {e}"
            finally:
                system.stop()
            if reason is None:
                results["systems"][system.name] = {"status": "ok", "reason": None, **system.info(), **part}
            else:  # no numbers from a system that did not run to the end
                results["systems"][system.name] = {"status": "skipped", "reason": reason, **system.info(),
                                                   "workloads": {}}
            bar.update(max(0, (i + 1) * per_system - bar.n))
            (out / "results.json").write_text(json.dumps(results, indent=2))
    finally:
        bar.close()
    results["ratios"] = ratios(results)
    try:
        from .plots import plot

        results["plots"] = plot(results, out)
    except ImportError:
        print("wafer bench: matplotlib is not installed (pip install 'wafer[bench]'): no plots", file=sys.stderr)
        results["plots"] = {}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "report.md").write_text(markdown(results))
    return results
