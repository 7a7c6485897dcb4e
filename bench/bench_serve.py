"""wafer through HTTP streaming vs the raw llama.cpp low-level loop, same model, same run.

Measures, for one model:
  * single stream: TTFT and per-stream decode tok/s through `wafer serve` (SSE, greedy, fixed
    output length) vs the raw loop (bench/rawloop.py) on the same prompt tokens -> ratios;
  * aggregate decode tok/s through HTTP at 1, 4 and 16 concurrent streams.
Prints a table and writes JSON (bench/results/serve-<model>.json by default).

    .venv/bin/python bench/bench_serve.py --model smollm2-135m [--tokens 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import socket
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rawloop import RawLoop  # noqa: E402
from wafer.bench.systems import free_port  # noqa: E402

PROMPT = "Write a detailed essay about the history of sailing ships and the people who built them."


def start_server(model: str, threads: int, parallel: int, log: Path, extra: list[str] = ()) -> tuple[subprocess.Popen, str]:
    port = free_port()
    f = open(log, "w")
    p = subprocess.Popen(
        [sys.executable, "-m", "wafer", "serve", "--model", model, "--port", str(port), "--threads", str(threads),
         "--parallel", str(parallel), "--log-level", "warning", *extra],
        stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        if p.poll() is not None:
            raise SystemExit(f"wafer serve exited:\n{log.read_text()}")
        if "ready on" in log.read_text():
            return p, f"http://127.0.0.1:{port}"
        time.sleep(0.1)
    raise SystemExit("wafer serve did not become ready")


def _sse_events(url: str, body: dict):
    """POST and yield (arrival time, event JSON bytes) for each SSE event.

    A deliberately lean HTTP/1.1 client (blocking socket, buffered chunked decoding, no per-event
    JSON parsing): client and server share this machine's 2 cores, so every microsecond the client
    spends per token is taken from llama.cpp's threads and would be measured as server time.
    """
    host, port = url.split("//")[1].split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = sock.makefile("rb")
    try:
        data = json.dumps(body).encode()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (host.encode(), len(data)) + data)
        status = f.readline()
        if b" 200 " not in status:
            raise RuntimeError(status.decode())
        while f.readline() not in (b"\r\n", b""):
            pass
        pending = b""
        while True:
            size = int(f.readline().strip() or b"0", 16)
            if size == 0:
                return
            pending += f.read(size)
            f.readline()
            now = time.perf_counter()
            *events, pending = pending.split(b"\n\n")
            for ev in events:
                if ev.startswith(b"data: "):
                    yield now, ev[6:]
    finally:
        f.close()
        sock.close()


def stream_once(url: str, model: str, messages, n_tokens: int, t0: float | None = None) -> dict:
    body = {"model": model, "messages": messages, "temperature": 0, "stream": True,
            "max_completion_tokens": n_tokens, "min_completion_tokens": n_tokens}
    t0 = t0 or time.perf_counter()
    first = last = None
    usage = None
    for now, ev in _sse_events(url, body):
        if b'"content"' in ev:
            if first is None:
                first = now
            last = now
        if b'"usage"' in ev:
            usage = json.loads(ev)["usage"]
    n = usage["completion_tokens"]
    return {
        "ttft": first - t0,
        "decode_tok_s": (n - 1) / (last - first) if last > first else 0.0,
        "tokens": n,
        "wall": time.perf_counter() - t0,
        "prompt_tokens": usage["prompt_tokens"],
    }


def concurrent(url: str, model: str, messages, n_tokens: int, n: int) -> dict:
    """n streams at once, one blocking client thread each."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        res = list(pool.map(lambda _: stream_once(url, model, messages, n_tokens, t0), range(n)))
    wall = time.perf_counter() - t0
    return {
        "streams": n,
        "aggregate_tok_s": sum(r["tokens"] for r in res) / wall,
        "per_stream_tok_s": statistics.median(r["decode_tok_s"] for r in res),
        "ttft_p50": statistics.median(r["ttft"] for r in res),
        "wall": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--out", default=None)
    ap.add_argument("--prefix-cache", action="store_true",
                    help="keep wafer's prompt cache on (off by default: every run repeats the same prompt, which "
                         "the cache would serve instead of prefilling, unlike the raw loop)")
    args = ap.parse_args()

    from wafer.chat.template import template_for_model
    from wafer.engine.llama import LlamaModel
    from wafer.models import resolve_model

    resolved = resolve_model(args.model)
    path = str(resolved.path)
    messages = [{"role": "user", "content": PROMPT}]
    m = LlamaModel(path)
    prompt_text = template_for_model(m.metadata, m.token_text(m.bos_id), m.token_text(m.eos_id)).render(messages)
    prompt_ids = m.tokenize(prompt_text, add_special=False)
    m.close()

    log = ROOT / "bench" / "results" / f"server-{resolved.id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    levels = [int(x) for x in args.concurrency.split(",")]
    proc, url = start_server(args.model, args.threads, max(levels), log,
                             [] if args.prefix_cache else ["--no-prefix-cache"])
    results: dict = {"model": resolved.id, "file": Path(path).name, "quant": resolved.quant, "tokens": args.tokens,
                     "prompt_tokens": len(prompt_ids), "threads": args.threads, "machine": platform.machine(),
                     "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"),
                     "prefix_cache": args.prefix_cache}
    try:
        concurrent(url, resolved.id, messages, 8, 1)  # warm-up
        raw_runs, wafer_runs = [], []
        raw = RawLoop(path, n_ctx=32768, threads=args.threads)
        raw.greedy(prompt_ids, 8, stop_at_eog=False)  # warm-up
        for _ in range(args.repeats):  # interleave so drift on a shared machine hits both alike
            raw_runs.append(raw.greedy(prompt_ids, args.tokens, stop_at_eog=False))
            time.sleep(0.3)  # let the other side's threads go idle
            wafer_runs.append(concurrent(url, resolved.id, messages, args.tokens, 1))
            time.sleep(0.3)
        raw.close()
        raw_tok_s = statistics.median(r["decode_tok_s"] for r in raw_runs)
        raw_ttft = statistics.median(r["ttft"] for r in raw_runs)
        w_tok_s = statistics.median(r["per_stream_tok_s"] for r in wafer_runs)
        w_ttft = statistics.median(r["ttft_p50"] for r in wafer_runs)
        results["single_stream"] = {
            "raw_decode_tok_s": raw_tok_s, "wafer_decode_tok_s": w_tok_s, "decode_ratio": w_tok_s / raw_tok_s,
            "raw_ttft_s": raw_ttft, "wafer_ttft_s": w_ttft, "ttft_ratio": w_ttft / raw_ttft,
        }
        results["concurrency"] = [concurrent(url, resolved.id, messages, args.tokens, n) for n in levels]
    finally:
        proc.terminate()
        proc.wait(30)

    s = results["single_stream"]
    print(f"\nmodel {resolved.id} ({Path(path).name}), prompt {len(prompt_ids)} tokens, output {args.tokens} tokens, "
          f"{args.threads} threads, median of {args.repeats}")
    print(f"{'':28}{'raw llama.cpp loop':>20}{'wafer (HTTP SSE)':>20}{'wafer/raw':>12}")
    print(f"{'decode tok/s (1 stream)':28}{s['raw_decode_tok_s']:>20.1f}{s['wafer_decode_tok_s']:>20.1f}{s['decode_ratio']:>12.3f}")
    print(f"{'TTFT ms (1 stream)':28}{s['raw_ttft_s'] * 1000:>20.1f}{s['wafer_ttft_s'] * 1000:>20.1f}{s['ttft_ratio']:>12.3f}")
    print(f"\n{'streams':>8}{'aggregate tok/s':>18}{'per-stream tok/s':>18}{'TTFT p50 ms':>14}")
    for c in results["concurrency"]:
        print(f"{c['streams']:>8}{c['aggregate_tok_s']:>18.1f}{c['per_stream_tok_s']:>18.1f}{c['ttft_p50'] * 1000:>14.1f}")
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"serve-{resolved.id}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
