"""``wafer serve --replicas N``: the Serve application from the serve flags; run, roll and stop it.

Without ``--ray-address`` a local Ray instance starts on loopback (this machine's cores, a small
object store: replies are small), with ``--ray-address`` (``auto``, ``ray://host:10001`` or
``host:6379``) the deployment goes to an existing cluster, whose every node needs wafer installed.
The process stays in the foreground like the single-process server: it prints one ready line, rolls
the engine replicas on SIGHUP (one at a time; Ray stops routing to a replica, lets its requests finish
within ``--grace-period`` and then replaces it) and on SIGTERM/SIGINT removes the application (its
replicas drain the same way) and stops what it started.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid

APP_NAME = "wafer"


def replica_cpus(args) -> int:
    """CPUs a replica reserves (= its llama.cpp threads when --threads is not given): this machine's
    cores shared by the replicas that fit on it."""
    if args.replica_cpus:
        return args.replica_cpus
    if args.threads:
        return args.threads
    return max(1, (os.cpu_count() or 1) // max(1, args.replicas))


def autoscaling_bounds(args) -> tuple[int, int] | None:
    """(min, max) replicas when --min-replicas or --max-replicas is given, else None (a fixed count)."""
    if args.min_replicas is None and args.max_replicas is None:
        return None
    lo = args.min_replicas if args.min_replicas is not None else 1
    hi = args.max_replicas if args.max_replicas is not None else max(lo, args.replicas)
    return lo, hi


def build_app(args, keys, version: str):
    from ray import serve
    from ray.serve.config import RequestRouterConfig

    from .replica import WaferReplica
    from .routing import ROUTERS

    cpus = replica_cpus(args)
    if not args.threads:
        args.threads = cpus
    bounds = autoscaling_bounds(args)
    if bounds:
        lo, hi = bounds
        scaling = {"autoscaling_config": {"min_replicas": lo, "max_replicas": hi,
                                          "initial_replicas": min(max(args.replicas, lo), hi),
                                          "target_ongoing_requests": args.parallel}}
    else:
        scaling = {"num_replicas": args.replicas}
    router_kwargs = {}
    if args.routing == "prefix":
        router_kwargs = {"imbalanced_threshold": args.imbalance, "match_rate_threshold": 0.1}
    engines = serve.deployment(
        WaferReplica,
        name="WaferReplica",
        max_ongoing_requests=args.parallel + args.max_queue,
        ray_actor_options={"num_cpus": cpus},
        graceful_shutdown_timeout_s=args.grace_period,
        graceful_shutdown_wait_loop_s=0.5,
        health_check_period_s=2.0,
        health_check_timeout_s=60.0,
        request_router_config=RequestRouterConfig(request_router_class=ROUTERS[args.routing],
                                                  request_router_kwargs=router_kwargs),
        **scaling,
    ).bind(args, keys, version)  # a new version (an init argument) makes Serve roll the replicas
    ingress = serve.deployment(
        _ingress_class(),
        name="WaferIngress",
        num_replicas=1,
        max_ongoing_requests=max(1000, args.max_connections),
        graceful_shutdown_timeout_s=args.grace_period,
        ray_actor_options={"num_cpus": 0},
    ).bind(engines, args.max_body_bytes, args.body_timeout)
    return ingress


def _ingress_class():
    """The ingress deployment's class: its ASGI app is built in the replica (``__serve_build_asgi_app__``)."""
    from ray import serve

    from .ingress import Ingress

    return serve.ingress()(Ingress)


def connect(args) -> bool:
    """ray.init: the cluster at --ray-address, or a new local instance on loopback (True: started here)."""
    import ray

    if args.ray_address:
        ray.init(address=args.ray_address, namespace=APP_NAME, log_to_driver=args.log_level.lower() == "debug")
        return False
    ray.init(namespace=APP_NAME, include_dashboard=False, num_cpus=os.cpu_count() or 1,
             object_store_memory=256 << 20, _node_ip_address="127.0.0.1",
             log_to_driver=args.log_level.lower() == "debug")
    return True


def run_scaled(args) -> int:
    import ray
    from ray import serve

    from ..cli.serve import rate_limits
    from ..server.auth import KeySet
    from .state import NAME, NAMESPACE, WaferState

    try:
        keys = KeySet.from_env(args.api_key, args.api_keys_file)
        limits = rate_limits(args)
    except (ValueError, OSError) as e:
        print(f"wafer: {e}", file=sys.stderr)
        return 1
    t0 = time.time()
    local = connect(args)
    state = ray.remote(WaferState).options(name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
                                           num_cpus=0, max_restarts=-1).remote(limits)
    ray.get(state.ping.remote())
    serve.start(http_options={"host": args.host, "port": args.port}, logging_config={"log_level": "WARNING"})
    generation = [0]

    def deploy() -> None:
        generation[0] += 1
        version = f"{generation[0]}-{uuid.uuid4().hex[:8]}"
        serve.run(build_app(args, keys, version), name=APP_NAME, route_prefix="/", blocking=False)

    try:
        deploy()
    except Exception as e:  # noqa: BLE001 - a replica that cannot start (bad model, no resources)
        print(f"wafer: the deployment failed: {e}", file=sys.stderr, flush=True)
        _stop(local, state)
        return 1
    url = f"http://{args.host}:{args.port}"
    where = args.ray_address or "a local Ray instance"
    auth = "open (no API key)" if keys.open else f"{len(keys.keys)} API key(s)"
    n = args.replicas
    count = f"{n} replica{'s' if n != 1 else ''}"
    bounds = autoscaling_bounds(args)
    if bounds:
        count += f" (autoscaling {bounds[0]}-{bounds[1]})"
    print(f"wafer: ready on {url} ({count} on {where}, routing {args.routing}; {auth}; "
          f"OpenAI SDK base_url {url}/v1; started in {time.time() - t0:.1f} s)", flush=True)

    stop = threading.Event()
    roll = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: roll.set())
    while not stop.is_set():
        if roll.is_set():
            roll.clear()
            print("wafer: SIGHUP: rolling restart of the engine replicas", file=sys.stderr, flush=True)
            try:
                deploy()
                print("wafer: rolling restart done", file=sys.stderr, flush=True)
            except Exception as e:  # noqa: BLE001
                print(f"wafer: rolling restart failed: {e}", file=sys.stderr, flush=True)
        stop.wait(0.2)
    print(f"wafer: stopping: draining the replicas (up to {args.grace_period:g} s)", file=sys.stderr, flush=True)
    try:
        serve.delete(APP_NAME)
    finally:
        _stop(local, state)
    return 0


def _stop(local: bool, state) -> None:
    import ray
    from ray import serve

    try:
        ray.kill(state)
    except Exception:  # noqa: BLE001
        pass
    if local:
        serve.shutdown()
        ray.shutdown()
