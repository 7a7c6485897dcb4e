"""``wafer serve``: load the models, then serve HTTP until interrupted."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def engine_config(args):
    from ..engine.engine import EngineConfig

    return EngineConfig(
        ctx_size=args.ctx_size,
        kv_cells=args.kv_size,
        parallel=args.parallel,
        token_budget=args.token_budget,
        prefill_budget=args.prefill_budget,
        max_waiting=args.max_queue,
        threads=args.threads,
        flash_attn=not args.no_flash_attn,
        prefix_cache=not args.no_prefix_cache,
        cache_slots=args.cache_slots,
        cache_ttl_min=args.cache_ttl_min,
        cache_ttl_max=args.cache_ttl_max,
    )


def build_registry(args):
    from ..models import DEFAULT_MODEL, resolve_model
    from ..server.registry import Registry, ServedModel, ServeOptions

    template = Path(args.chat_template).read_text() if args.chat_template else None
    registry = Registry(ServeOptions(reasoning_budgets=parse_budgets(args.reasoning_budget),
                                     accept_reasoning_content=args.accept_reasoning_content,
                                     speculate_ngram=args.speculate == "ngram", draft_max=args.draft_max))
    cache = Path(args.cache_dir) if args.cache_dir else None
    for spec in args.models or [DEFAULT_MODEL]:
        resolved = resolve_model(spec, cache_dir=cache, pull=not args.no_pull)
        print(f"wafer: loading {resolved.id} from {resolved.path}", file=sys.stderr, flush=True)
        registry.add(ServedModel.load(resolved.id, str(resolved.path), engine_config(args), template))
    for a in args.alias:
        alias, sep, target = a.partition("=")
        if not sep or not alias or not target:
            raise SystemExit(f"--alias expects ID=MODEL, got {a!r}")
        registry.alias(alias, target)
    return registry


def parse_budgets(spec: str | None) -> dict[str, int]:
    """``low=512,medium=2048,high=8192`` over the defaults (EFFORT_BUDGETS)."""
    from ..chat.reasoning import EFFORT_BUDGETS

    budgets = dict(EFFORT_BUDGETS)
    for part in filter(None, (spec or "").split(",")):
        level, sep, value = part.partition("=")
        if not sep or level not in ("low", "medium", "high") or not value.isdigit():
            raise SystemExit(f"--reasoning-budget expects low=N,medium=N,high=N, got {part!r}")
        budgets[level] = int(value)
    return budgets


def run_serve(args) -> int:
    import uvicorn

    from ..server.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        registry = build_registry(args)
    except (ValueError, OSError, RuntimeError) as e:  # unknown model, bad file, failed pull
        print(f"wafer: {e}", file=sys.stderr)
        return 1
    url = f"http://{args.host}:{args.port}"

    def ready() -> None:
        ids = ", ".join(k for k, _ in registry.ids())
        print(f"wafer: ready on {url} (models: {ids}; OpenAI SDK base_url {url}/v1)", flush=True)

    app = create_app(registry, on_ready=ready)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level.lower(),
                            timeout_graceful_shutdown=30, access_log=False)
    uvicorn.Server(config).run()
    return 0
