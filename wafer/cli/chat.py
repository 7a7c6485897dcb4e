"""``wafer chat``: a terminal chat, streaming, with tok/s and time_info after each answer."""

from __future__ import annotations

import json
import os
import queue
import sys
import time
from typing import Iterator


class HTTPBackend:
    def __init__(self, url: str, model: str | None, api_key: str | None):
        import httpx

        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=httpx.Timeout(600, connect=5))
        key = api_key or os.environ.get("CEREBRAS_API_KEY") or "none"
        self.client.headers["Authorization"] = f"Bearer {key}"
        if model is None:
            models = self.client.get("/v1/models").json()["data"]
            model = models[0]["id"]
        self.model = model
        self.defaults = self._server_defaults(model)

    def _server_defaults(self, model: str) -> dict:
        """What the server fills in for omitted sampling parameters (its /wafer/models), or {}."""
        try:
            data = self.client.get("/wafer/models").json()["data"]
        except Exception:  # noqa: BLE001 - not a wafer server, or an older one: nothing to show
            return {}
        return next((m.get("defaults") or {} for m in data if m.get("id") == model), {})

    def stream(self, messages: list[dict], opts: dict) -> Iterator[tuple[str, dict | None]]:
        body = {"model": self.model, "messages": messages, "stream": True, **opts}
        with self.client.stream("POST", "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                r.read()
                raise RuntimeError(f"HTTP {r.status_code}: {r.text}")
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise RuntimeError(chunk["error"].get("message"))
                for c in chunk.get("choices") or []:
                    if c.get("delta", {}).get("content"):
                        yield c["delta"]["content"], None
                if chunk.get("usage"):
                    yield "", {"usage": chunk["usage"], "time_info": chunk.get("time_info") or {}}


class LocalBackend:
    """The engine in this process (no server)."""

    def __init__(self, spec: str | None, cache_dir: str | None):
        from ..engine.engine import EngineConfig
        from ..models import DEFAULT_MODEL, resolve_model
        from ..server.registry import ServedModel

        resolved = resolve_model(spec or DEFAULT_MODEL, cache_dir=cache_dir)
        self.served = ServedModel.load(resolved.id, str(resolved.path), EngineConfig(parallel=2))
        self.model = resolved.id
        self.defaults = self.served.recommended.api()  # as `wafer serve` fills in omitted parameters

    def stream(self, messages: list[dict], opts: dict) -> Iterator[tuple[str, dict | None]]:
        from ..chat.messages import to_template_messages
        from ..engine.events import ChoiceDelta, RequestDone, RequestFailed
        from ..engine.sampler import SamplingParams
        from ..engine.sequence import GenerationParams

        engine = self.served.engine
        text = self.served.template.render(to_template_messages(messages))
        prompt = engine.tokenize(text, add_special=False)
        sampling = {**self.defaults, **{k: opts[k] for k in ("temperature", "top_p") if k in opts}}
        params = GenerationParams(
            SamplingParams(temperature=sampling.get("temperature", 1.0), top_p=sampling.get("top_p", 1.0),
                           seed=opts.get("seed")),
            max_new_tokens=opts.get("max_completion_tokens"),
        )
        q: queue.Queue = queue.Queue()
        engine.submit(prompt, params, q.put)
        while True:
            for ev in q.get():
                if isinstance(ev, ChoiceDelta):
                    yield ev.text, None
                elif isinstance(ev, RequestDone):
                    yield "", {"usage": {"prompt_tokens": ev.usage.prompt_tokens,
                                         "completion_tokens": ev.usage.completion_tokens},
                               "time_info": ev.time_info.__dict__}
                    return
                elif isinstance(ev, RequestFailed):
                    raise RuntimeError(ev.message)


def _answer(backend, messages: list[dict], opts: dict) -> str:
    out = []
    t0 = time.perf_counter()
    first = None
    stats = None
    for text, final in backend.stream(messages, opts):
        if text:
            if first is None:
                first = time.perf_counter()
            out.append(text)
            sys.stdout.write(text)
            sys.stdout.flush()
        if final:
            stats = final
    sys.stdout.write("\n")
    if stats:
        u, ti = stats["usage"], stats["time_info"]
        ct = ti.get("completion_time") or 0
        rate = (u["completion_tokens"] / ct) if ct else 0.0
        ttft = (first - t0) if first else 0.0
        print(
            f"[{u['completion_tokens']} tokens, {rate:.1f} tok/s, TTFT {ttft * 1000:.0f} ms | "
            f"queue {ti.get('queue_time', 0) * 1000:.0f} ms, prompt {ti.get('prompt_time', 0) * 1000:.0f} ms, "
            f"completion {ct * 1000:.0f} ms, total {ti.get('total_time', 0) * 1000:.0f} ms]",
            file=sys.stderr,
        )
    return "".join(out)


def _sampling_note(defaults: dict, opts: dict) -> str:
    parts = []
    for k in ("temperature", "top_p"):
        if k in opts:
            parts.append(f"{k} {opts[k]:g}")
        elif k in defaults:
            parts.append(f"{k} {defaults[k]:g} (model's recommendation)")
    return ", ".join(parts) or "API default sampling"


def run_chat(args) -> int:
    try:
        if args.local:
            backend = LocalBackend(args.model, args.cache_dir)
        else:
            backend = HTTPBackend(args.url or "http://127.0.0.1:8080", args.model, args.api_key)
    except Exception as e:  # noqa: BLE001 - a CLI reports, it does not trace
        print(f"wafer chat: cannot start: {e}", file=sys.stderr)
        return 1
    opts: dict = {}
    if args.temperature is not None:
        opts["temperature"] = args.temperature
    if args.top_p is not None:
        opts["top_p"] = args.top_p
    if args.seed is not None:
        opts["seed"] = args.seed
    if args.max_tokens is not None:
        opts["max_completion_tokens"] = args.max_tokens
    messages: list[dict] = [{"role": "system", "content": args.system}] if args.system else []
    if args.prompt:
        messages.append({"role": "user", "content": " ".join(args.prompt)})
        try:
            _answer(backend, messages, opts)
        except RuntimeError as e:
            print(f"wafer chat: {e}", file=sys.stderr)
            return 1
        return 0
    print(f"wafer chat with {backend.model} ({_sampling_note(backend.defaults, opts)}) — empty line or Ctrl-D to "
          "quit, /reset to start over", file=sys.stderr)
    while True:
        try:
            line = input("> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not line.strip():
            return 0
        if line.strip() == "/reset":
            messages = messages[:1] if args.system else []
            continue
        messages.append({"role": "user", "content": line})
        try:
            answer = _answer(backend, messages, opts)
        except RuntimeError as e:
            print(f"wafer chat: {e}", file=sys.stderr)
            messages.pop()
            continue
        messages.append({"role": "assistant", "content": answer})
