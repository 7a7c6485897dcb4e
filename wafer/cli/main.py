"""``wafer``: serve | chat | pull | models | bench."""

from __future__ import annotations

import argparse
import sys


def _serve_args(p: argparse.ArgumentParser) -> None:
    from ..engine.engine import EngineConfig

    d = EngineConfig()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--model", "-m", action="append", dest="models", metavar="MODEL",
        help="catalogue name, local .gguf path or Hugging Face repo id (repeatable; default smollm2-135m)",
    )
    p.add_argument("--alias", action="append", default=[], metavar="ID=MODEL",
                   help="also answer to ID for the served model MODEL, e.g. llama3.1-8b=smollm2-135m (repeatable)")
    p.add_argument("--cerebras-ids", nargs="?", const="", default=None, metavar="MODEL",
                   help="every Cerebras model id (gpt-oss-120b, llama3.1-8b, ...) also answers on MODEL (default: the "
                        "first served model), so unchanged Cerebras code runs; --alias ids take precedence")
    p.add_argument("--api-version", type=int, choices=(1, 2), default=2,
                   help="API behaviour version of requests without an X-Cerebras-Version-Patch header (default 2, "
                        "Cerebras' default since 2026-07-21)")
    p.add_argument("--dedicated-endpoint", action="store_true",
                   help="serve service_tier 'priority' (first in the queue), as Cerebras' dedicated endpoints do; "
                        "without it a priority request is a 400, as on Cerebras' shared endpoints")
    p.add_argument("--ctx-size", type=int, default=d.ctx_size,
                   help="context per request = KV cells per stream (default: the model's own, within --kv-memory)")
    p.add_argument("--kv-size", type=int, default=d.kv_cells,
                   help="KV cells over all streams; each of the --parallel streams gets kv-size / parallel "
                        "(default: parallel x ctx-size)")
    p.add_argument("--kv-memory", type=int, default=d.kv_memory, metavar="MIB",
                   help="memory the KV streams may take when neither --ctx-size nor --kv-size is set "
                        "(default: a quarter of RAM, at most 8192 MiB)")
    p.add_argument("--parallel", type=int, default=d.parallel,
                   help="KV streams per model: concurrent sequences (default %(default)s)")
    p.add_argument("--token-budget", type=int, default=d.token_budget,
                   help="tokens per engine step (decodes + prefill chunks) while sequences decode")
    p.add_argument("--prefill-budget", type=int, default=d.prefill_budget,
                   help="tokens per engine step when no sequence is decoding")
    p.add_argument("--max-queue", type=int, default=d.max_waiting,
                   help="waiting requests per model before 429 queue_exceeded")
    p.add_argument("--threads", type=int, default=d.threads, help="llama.cpp threads (default: all cores)")
    p.add_argument("--no-flash-attn", action="store_true", help="disable flash attention")
    p.add_argument("--no-prefix-cache", action="store_true", help="disable automatic prompt (prefix) caching")
    p.add_argument("--cache-ram", type=int, default=d.cache_ram, metavar="MIB",
                   help="host memory for KV snapshots of cached prefixes (0: none; default %(default)s)")
    p.add_argument("--cache-ttl-min", type=float, default=d.cache_ttl_min,
                   help="seconds a cached prefix is kept after its last use unless the memory is needed")
    p.add_argument("--cache-ttl-max", type=float, default=d.cache_ttl_max,
                   help="seconds after its last use a cached prefix is dropped")
    p.add_argument("--chat-template", metavar="FILE", help="Jinja chat template overriding the GGUF's")
    p.add_argument("--reasoning-budget", metavar="low=N,medium=N,high=N", default=None,
                   help="thinking tokens per reasoning_effort before wafer closes the thinking itself "
                        "(default low=512,medium=2048,high=8192)")
    p.add_argument("--speculate", choices=["off", "ngram"], default="off",
                   help="ngram: requests without a prediction draft from their own prompt (prompt lookup decoding)")
    p.add_argument("--draft-max", type=int, default=32,
                   help="longest draft (prediction or --speculate ngram) verified in one step")
    p.add_argument("--sampling-defaults", choices=["model", "api"], default="model",
                   help="a request without temperature/top_p gets the model's recommended values (model, the "
                        "default) or the API's 1.0 (api)")
    p.add_argument("--accept-reasoning-content", action="store_true",
                   help="accept assistant messages' reasoning_content (as reasoning) instead of Cerebras' 400")
    p.add_argument("--cache-dir", help="model cache directory (default: $WAFER_CACHE_DIR or XDG cache)")
    p.add_argument("--no-pull", action="store_true", help="fail instead of pulling a missing catalogue model")
    g = p.add_argument_group("access and limits")
    g.add_argument("--api-key", action="append", default=[], metavar="KEY",
                   help="accept this bearer key (repeatable; also $WAFER_API_KEYS, comma separated). "
                        "No key at all: the server is open")
    g.add_argument("--api-keys-file", metavar="FILE",
                   help="one key per line: KEY [NAME] [rpm=N] [rpd=N] [tpm=N] [tpd=N] (per-key limits)")
    g.add_argument("--rate-limit", metavar="rpm=N,rpd=N,tpm=N,tpd=N", default="",
                   help="limits of every key (of all requests when open): requests and tokens per minute/day")
    g.add_argument("--max-body-bytes", type=int, default=8 * 1024 * 1024, help="largest request body (413 beyond)")
    g.add_argument("--max-messages", type=int, default=2048, help="most messages in one chat request (400 beyond)")
    g.add_argument("--request-timeout", type=float, default=600.0,
                   help="seconds a request may run from arrival to its last token (504 beyond; 0: none)")
    g.add_argument("--body-timeout", type=float, default=30.0, help="seconds to receive a request body (408 beyond)")
    g.add_argument("--header-timeout", type=float, default=30.0,
                   help="seconds to receive a request's line and headers (408 and close beyond)")
    g.add_argument("--max-connections", type=int, default=1024,
                   help="open connections before new ones get 503 (uvicorn's limit_concurrency)")
    g.add_argument("--grace-period", type=float, default=30.0,
                   help="on SIGTERM/SIGINT: seconds in-flight requests get to finish before they are cut")
    r = p.add_argument_group("scale-out on Ray Serve (pip install 'wafer[ray]'; docs/scale-out.md)")
    r.add_argument("--replicas", type=int, default=0,
                   help="serve N engine replicas behind one ingress on Ray Serve (default: one process, no Ray)")
    r.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="deploy on this Ray cluster (auto, host:6379, ray://host:10001); default: a local Ray "
                        "instance on loopback")
    r.add_argument("--min-replicas", type=int, default=None, help="autoscaling: fewest engine replicas")
    r.add_argument("--max-replicas", type=int, default=None, help="autoscaling: most engine replicas")
    r.add_argument("--routing", choices=["prefix", "round-robin", "pow2"], default="prefix",
                   help="how the ingress picks a replica: prefix affinity balanced against load (default), round "
                        "robin, or the less loaded of two random replicas")
    r.add_argument("--imbalance", type=float, default=None,
                   help="prefix routing gives way to load when replicas' ongoing requests differ by more than this "
                        "(default: half of --parallel)")
    r.add_argument("--replica-cpus", type=int, default=0,
                   help="CPUs each replica reserves (default --threads, else this machine's cores / --replicas)")
    p.add_argument("--no-access-log", action="store_true", help="no JSON access log line per request")
    p.add_argument("--log-level", default="info")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wafer", description="A self-hosted Cerebras Inference API on llama.cpp.")
    sub = parser.add_subparsers(dest="cmd", required=True)

    ps = sub.add_parser("serve", help="serve the Cerebras API over HTTP")
    _serve_args(ps)

    pc = sub.add_parser("chat", help="chat in the terminal (with a running server or in-process)")
    pc.add_argument("--url", default=None, help="server URL (default http://127.0.0.1:8080); ignored with --local")
    pc.add_argument("--local", action="store_true", help="run the model in this process instead of using a server")
    pc.add_argument("--model", "-m", default=None, help="model id (server) or catalogue name/path (--local)")
    pc.add_argument("--system", default=None, help="system prompt")
    pc.add_argument("--temperature", type=float, default=None, help="default: the model's recommended temperature")
    pc.add_argument("--top-p", type=float, default=None, help="default: the model's recommended top_p")
    pc.add_argument("--seed", type=int, default=None, help="sampling seed (reproducible answers)")
    pc.add_argument("--max-tokens", type=int, default=None)
    pc.add_argument("--api-key", default=None)
    pc.add_argument("--cache-dir", default=None)
    pc.add_argument("prompt", nargs="*", help="a single prompt to answer (otherwise interactive)")

    pp = sub.add_parser("pull", help="download a catalogue model and convert it to the fastest layout")
    pp.add_argument("name")
    pp.add_argument("--keep-original", action="store_true", help="keep the shipped GGUF next to the converted one")
    pp.add_argument("--no-optimize", action="store_true", help="keep the shipped quantization as is")
    pp.add_argument("--max-ppl-increase", type=float, default=None,
                    help="quality bound for the conversion: largest relative perplexity increase (default 0.10)")
    pp.add_argument("--cache-dir", default=None)

    pm = sub.add_parser("models", help="list the model catalogue and what is pulled")
    pm.add_argument("--cache-dir", default=None)
    pm.add_argument("--json", action="store_true")

    from ..bench.cli import add_args as _bench_args

    pb = sub.add_parser("bench", help="benchmark serving against llama-server, llama-cpp-python and the raw loop")
    _bench_args(pb)

    args = parser.parse_args(argv)
    if args.cmd == "serve":
        from .serve import run_serve

        return run_serve(args)
    if args.cmd == "chat":
        from .chat import run_chat

        return run_chat(args)
    if args.cmd == "pull":
        from .pull import run_models, run_pull  # noqa: F401

        return run_pull(args)
    if args.cmd == "models":
        from .pull import run_models

        return run_models(args)
    if args.cmd == "bench":
        from ..bench.cli import run_bench

        return run_bench(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
