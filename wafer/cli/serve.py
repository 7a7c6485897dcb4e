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
        cache_ram=args.cache_ram,
        kv_memory=args.kv_memory,
        cache_ttl_min=args.cache_ttl_min,
        cache_ttl_max=args.cache_ttl_max,
    )


def build_registry(args):
    from ..models import DEFAULT_MODEL, resolve_model
    from ..server.registry import Registry, ServedModel, ServeOptions

    template = Path(args.chat_template).read_text() if args.chat_template else None
    registry = Registry(ServeOptions(reasoning_budgets=parse_budgets(args.reasoning_budget),
                                     accept_reasoning_content=args.accept_reasoning_content,
                                     speculate_ngram=args.speculate == "ngram", draft_max=args.draft_max,
                                     api_version=args.api_version, dedicated=args.dedicated_endpoint,
                                     model_sampling_defaults=args.sampling_defaults == "model"))
    cache = Path(args.cache_dir) if args.cache_dir else None
    for spec in args.models or [DEFAULT_MODEL]:
        resolved = resolve_model(spec, cache_dir=cache, pull=not args.no_pull)
        print(f"wafer: loading {resolved.id} from {resolved.path}", file=sys.stderr, flush=True)
        served = ServedModel.load(resolved.id, str(resolved.path), engine_config(args), template,
                                  source_repo=source_repo(spec, resolved))
        registry.add(served)
        if served.defaults:
            given = ", ".join(f"{k} {v:g}" for k, v in served.defaults.items())
            print(f"wafer: {resolved.id}: {given} when a request sets none (the model's recommendation; "
                  "--sampling-defaults api for the API's 1.0)", file=sys.stderr, flush=True)
    for a in args.alias:
        alias, sep, target = a.partition("=")
        if not sep or not alias or not target:
            raise SystemExit(f"--alias expects ID=MODEL, got {a!r}")
        registry.alias(alias, target)
    if args.cerebras_ids is not None:
        registry.cerebras_ids(args.cerebras_ids or next(iter(registry.models)))
    return registry


def source_repo(spec: str, resolved) -> str | None:
    """The Hugging Face repo of a model given as a repo id (catalogue models know theirs)."""
    from ..models.hf import parse_hf_spec

    if resolved.source != "hf":
        return None
    parsed = parse_hf_spec(spec)
    return parsed.repo_id if parsed else None


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


def build_policy(args, keys=None, limiter=None):
    """The gate's policy from the flags; ``keys`` and ``limiter`` given by a scaled-out deployment (keys
    read once by the driver, rate limits kept in its state actor)."""
    from ..server.auth import KeySet
    from ..server.gate import Policy
    from ..server.ratelimit import RateLimiter

    return Policy(
        keys=keys if keys is not None else KeySet.from_env(args.api_key, args.api_keys_file),
        limiter=limiter if limiter is not None else RateLimiter(rate_limits(args)),
        max_body_bytes=args.max_body_bytes,
        body_timeout=args.body_timeout,
        max_messages=args.max_messages,
        request_timeout=args.request_timeout,
        access_log=not args.no_access_log,
    )


def rate_limits(args) -> dict[str, int]:
    from ..server.auth import parse_limits

    return parse_limits([args.rate_limit], "--rate-limit")


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scaled_out(args) -> bool:
    return bool(args.replicas or args.ray_address or args.min_replicas is not None or args.max_replicas is not None)


def run_serve(args) -> int:
    if scaled_out(args):
        return run_scaled_out(args)
    import uvicorn

    from ..server.app import create_app
    from ..server.conn import protocol_class

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        policy = build_policy(args)
    except (ValueError, OSError) as e:  # a bad keys file or --rate-limit
        print(f"wafer: {e}", file=sys.stderr)
        return 1
    if policy.keys.open and not _loopback(args.host):
        print(f"wafer: WARNING: no API key is configured and the server listens on {args.host}: anyone who can "
              "reach it can use it. Set --api-key, $WAFER_API_KEYS or --api-keys-file.", file=sys.stderr, flush=True)
    try:
        registry = build_registry(args)
    except (ValueError, OSError, RuntimeError) as e:  # unknown model, bad file, failed pull
        print(f"wafer: {e}", file=sys.stderr)
        return 1
    url = f"http://{args.host}:{args.port}"

    def ready() -> None:
        ids = ", ".join(k for k, _ in registry.ids())
        auth = "open (no API key)" if policy.keys.open else f"{len(policy.keys.keys)} API key(s)"
        print(f"wafer: ready on {url} (models: {ids}; {auth}; OpenAI SDK base_url {url}/v1)", flush=True)

    app = create_app(registry, on_ready=ready, policy=policy)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level.lower(),
                            timeout_graceful_shutdown=args.grace_period, access_log=False,
                            http=protocol_class(args.header_timeout),
                            limit_concurrency=args.max_connections or None)
    draining_server(config, policy, registry).run()
    return 0


def draining_server(config, policy, registry):
    """uvicorn's server, which on SIGTERM/SIGINT stops accepting, lets in-flight requests finish
    (``--grace-period``), marks the policy as draining (``/ready`` answers 503) and exits 0 instead
    of re-raising the signal after the drain. A second before the grace period ends, requests still
    running are failed with a 503 (an error event on streams), so no client sees a cut connection."""
    import asyncio

    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            if not policy.draining:
                grace = config.timeout_graceful_shutdown or 0
                print(f"wafer: signal {sig}: draining (up to {grace:g} s), then exiting", file=sys.stderr, flush=True)
                policy.draining = True
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    loop = None
                if loop is not None:
                    loop.call_later(max(0.0, grace - 1.0), self.fail_remaining)
            super().handle_exit(sig, frame)
            self._captured_signals.clear()  # a drained shutdown is a clean exit

        @staticmethod
        def fail_remaining() -> None:
            for m in registry.models.values():
                m.engine.fail_all()

    return Server(config)


def run_scaled_out(args) -> int:
    """``--replicas N`` (or ``--ray-address``, autoscaling bounds): the deployment on Ray Serve."""
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import ray.serve  # noqa: F401 - the optional extra

        from ..scale.deploy import run_scaled
    except ImportError as e:
        print(f"wafer: --replicas needs Ray Serve: pip install 'wafer[ray]' ({e})", file=sys.stderr)
        return 1
    args.replicas = args.replicas or max(1, args.min_replicas or 1)
    if args.imbalance is None:
        args.imbalance = float(max(1, args.parallel // 2))
    return run_scaled(args)
