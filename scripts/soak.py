"""Soak test: sustained streaming load with abrupt disconnects against `wafer serve`.

N client loops send a seeded mix of chat and text completions (mostly streaming, ~10% not) for
--duration seconds: prompts from a few words to ~1,500 tokens, some behind shared long system
prompts (prefix cache), 1-200 output tokens, greedy or sampled, some with JSON mode or stop
strings. A share of requests (--disconnect) hang up on purpose: while queued or prefilling, after
the first token, or mid-stream. Every finished response is checked: HTTP 200, well-formed SSE, a
final chunk with finish_reason and usage, nothing after it, valid JSON in JSON mode; a request that
gets nothing from the server for --stall-timeout seconds counts as an error (a hang, not slowness).

The server's RSS is sampled every 5 s; the baseline is taken after a warm-up (10% of the run, at
least 5 s). After the run the clients stop, the engine must drain to idle (no request, sequence or
running KV cell; only prefix-cache holders occupy KV slots) and RSS must have grown less than 5%.

    .venv/bin/python scripts/soak.py [--url URL [--pid PID]] [--clients 64] [--duration 600]
        [--disconnect 0.2] [--model smollm2-135m] [--seed 0] [--json OUT]

Without --url it starts its own `wafer serve --parallel 16`. Exits non-zero on any unexpected
error, a server that does not drain, RSS growth >= 5% or errors in the server's log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "scripts" / "results"

_VOCABULARY = (  # common English words, about one token each
    "the of and to in is was that for on are with as his they be at one have this from or had by hot word but "
    "what some we can out other were all there when up use your how said an each she which do their time if will "
    "way about many then them write would like so these her long make thing see him two has look more day could go "
    "come did number sound no most people my over know water than call first who may down side been now find any "
    "new work part take get place made live where after back little only round man year came show every good me "
    "give our under name very through just form sentence great think say help low line differ turn cause much mean "
    "before move right boy old too same tell does set three want air well also play small end put home read hand "
    "port large spell add even land here must big high such follow act why ask men change went light kind off need "
    "house picture try us again animal point mother world near build self earth father head stand own page should "
    "country found answer school grow study still learn plant cover food sun four between state keep eye never last "
    "let thought city tree cross farm hard start might story saw far sea draw left late run while press close night "
    "real life few north open seem together next white children begin got walk example ease paper group always music "
    "those both mark often letter until mile river car feet care second book carry took science eat room friend began "
    "idea fish mountain stop once base hear horse cut sure watch color face wood main enough plain girl usual young "
    "ready above ever red list though feel talk bird soon body dog family direct pose leave song measure door product"
)
WORDS = _VOCABULARY.split()
STOPS = [".", "\n", ",", " the", " and", "!", "?", "\n\n"]
MAX_TOKENS = 200  # completion tokens: 1..MAX_TOKENS
MAX_PROMPT_WORDS = 1450  # about a token a word: prompts up to ~1,500 tokens with the chat template
SAMPLE_EVERY = 5.0
ERROR_SAMPLES = 5


# ---- workload -------------------------------------------------------------------------------

@dataclass
class Job:
    """One request: what to send, how to check it and whether (and where) to hang up."""

    kind: str  # chat_stream, chat, text_stream, text
    path: str
    body: bytes
    stream: bool
    json_mode: bool
    max_tokens: int
    cut: str | None = None  # queued, first, mid (streams); early (non-streaming)
    cut_after: int = 0  # events read before hanging up (first, mid)
    delay: float = 0.0  # seconds before hanging up (queued, early)


class Workload:
    """The seeded request mix; the shared system prompts depend on the seed only."""

    def __init__(self, model: str, seed: int, max_words: int = MAX_PROMPT_WORDS, max_tokens: int = MAX_TOKENS):
        self.model, self.max_words, self.max_tokens = model, max_words, max_tokens
        rng = random.Random(f"soak-system:{seed}")
        self.systems = [
            "You are a careful assistant. Background notes follow. " + " ".join(rng.choices(WORDS, k=n))
            for n in (max_words // 8, max_words * 5 // 12, max_words * 3 // 4)
        ]

    def job(self, rng: random.Random, disconnect: float) -> Job:
        stream = rng.random() >= 0.10
        max_tokens = rng.randint(1, self.max_tokens)
        temperature = rng.choice((0.0, 0.7))
        if rng.random() < 0.75:
            body, json_mode = self._chat(rng, max_tokens)
            kind, path = "chat", "/v1/chat/completions"
        else:
            body, json_mode = self._text(rng, max_tokens), False
            kind, path = "text", "/v1/completions"
        body["temperature"] = temperature
        if temperature and rng.random() < 0.5:
            body["seed"] = rng.randrange(2**31)
        if not json_mode and rng.random() < 0.2:
            body["stop"] = rng.sample(STOPS, rng.randint(1, 2))
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
            kind += "_stream"
        job = Job(kind, path, json.dumps(body).encode(), stream, json_mode, max_tokens)
        if rng.random() < disconnect:
            self._cut(rng, job)
        return job

    def _chat(self, rng: random.Random, max_tokens: int) -> tuple[dict, bool]:
        messages = []
        room = self.max_words
        r = rng.random()
        if r < 0.5:
            system = rng.choice(self.systems)
            messages.append({"role": "system", "content": system})
            room -= len(system.split())
        elif r < 0.65:
            messages.append({"role": "system", "content": "You are a helpful assistant."})
        json_mode = rng.random() < 0.15
        user = _words(rng, room)
        if json_mode:
            user += "\nAnswer as a JSON object."
        messages.append({"role": "user", "content": user})
        body = {"model": self.model, "messages": messages, "max_completion_tokens": max_tokens}
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        return body, json_mode

    def _text(self, rng: random.Random, max_tokens: int) -> dict:
        if rng.random() < 0.4:
            prefix = rng.choice(self.systems)
            prompt = prefix + " " + _words(rng, self.max_words - len(prefix.split()))
        else:
            prompt = _words(rng, self.max_words)
        return {"model": self.model, "prompt": prompt, "max_tokens": max_tokens}

    @staticmethod
    def _cut(rng: random.Random, job: Job) -> None:
        if not job.stream:
            job.cut, job.delay = "early", rng.uniform(0, 2.0)
            return
        role = 1 if job.kind == "chat_stream" else 0  # chat streams open with a role-only chunk
        job.cut = rng.choice(("queued", "first", "mid"))
        if job.cut == "queued":
            job.delay = rng.uniform(0, 0.3)
        elif job.cut == "first":
            job.cut_after = role + 1
        else:
            job.cut_after = role + rng.randint(2, max(2, job.max_tokens))


def _words(rng: random.Random, most: int) -> str:
    """Log-uniformly 3..most words."""
    n = int(math.exp(rng.uniform(math.log(3), math.log(max(most, 4)))))
    return " ".join(rng.choices(WORDS, k=n))


# ---- client ---------------------------------------------------------------------------------

class Bad(Exception):
    """A response the server should not have sent: kind, detail."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(kind, detail)
        self.kind, self.detail = kind, detail


@dataclass
class Tally:
    """Counts and error samples of one run."""

    started: int = 0
    completed: int = 0
    disconnected: int = 0  # hung up on purpose
    cut_at_end: int = 0  # still running when the run ended and the grace period ran out
    tokens: int = 0  # completion tokens of completed requests (from usage)
    prompt_tokens: int = 0
    cached_tokens: int = 0
    max_prompt_tokens: int = 0
    partial_events: int = 0  # SSE events read by streams we hung up on
    kinds: Counter = field(default_factory=Counter)
    cuts: Counter = field(default_factory=Counter)
    finish: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    samples: dict = field(default_factory=dict)
    latencies: list = field(default_factory=list)

    def error(self, kind: str, detail: str, job: Job | None = None) -> None:
        self.errors[kind] += 1
        s = self.samples.setdefault(kind, [])
        if len(s) < ERROR_SAMPLES:
            s.append({"detail": detail[:500]} if job is None else
                     {"detail": detail[:500], "kind": job.kind, "cut": job.cut, "body": job.body[:300].decode()})


class Client:
    """Raw HTTP/1.1 over asyncio streams, one connection per request (Connection: close).

    Kept lean because the server shares the machine's cores: no JSON parsing per SSE event except
    for the final one (and the content of JSON-mode requests, which is checked as a whole). The
    stall timer restarts with every chunk received.
    """

    def __init__(self, url: str, tally: Tally, stall: float):
        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.tally, self.stall = tally, stall

    def _head(self, job: Job) -> bytes:
        return (f"POST {job.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(job.body)}\r\nConnection: close\r\n\r\n").encode()

    async def run(self, job: Job) -> None:
        """Send one job and check its response; every outcome lands in the tally."""
        t = self.tally
        t.started += 1
        t.kinds[job.kind] += 1
        writer = None
        hung_up = False
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(self.stall) as deadline:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(self._head(job) + job.body)
                if job.cut in ("queued", "early"):
                    await asyncio.sleep(job.delay)
                    hung_up = True
                else:
                    final = await self._response(reader, job, deadline)
                    hung_up = final is None
                    if final is not None:
                        self._count(final, job, time.monotonic() - t0)
        except TimeoutError:
            t.error("stalled", f"nothing from the server for {self.stall:.0f} s", job)
        except asyncio.CancelledError:
            t.cut_at_end += 1
            raise
        except Bad as e:
            t.error(e.kind, e.detail, job)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            t.error("connection", repr(e), job)
            await asyncio.sleep(0.5)  # a server that refuses connections must not be hammered in a tight loop
        except Exception as e:  # noqa: BLE001 -- a response shaped unlike any the checks expect
            t.error("unexpected_response", repr(e), job)
        finally:
            if writer is not None:
                writer.transport.abort()  # abrupt for a hang-up; the response is complete otherwise
        if hung_up:
            t.disconnected += 1
            t.cuts[job.cut] += 1

    async def _response(self, reader: asyncio.StreamReader, job: Job, deadline: asyncio.Timeout) -> dict | None:
        """The final JSON object (stream) or the body (non-streaming); None when we hung up."""
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise Bad("malformed_status", status_line)
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
        chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        if parts[1] != "200":
            body = await (self._chunked_body(reader) if chunked else reader.read(65536))
            raise Bad(f"http_{parts[1]}", body.decode("utf-8", "replace"))
        if not job.stream:
            n = int(headers.get("content-length", "-1"))
            body = await (reader.readexactly(n) if n >= 0 else self._chunked_body(reader))
            try:
                obj = json.loads(body)
            except ValueError:
                raise Bad("malformed_json", body[:300].decode("utf-8", "replace")) from None
            choice = (obj.get("choices") or [{}])[0]
            text = choice.get("message", {}).get("content") if job.kind == "chat" else choice.get("text")
            return self._check_final(obj, job, text)
        if not headers.get("content-type", "").startswith("text/event-stream") or not chunked:
            raise Bad("not_a_stream", str(headers))
        return await self._sse(reader, job, deadline)

    @staticmethod
    async def _chunked_body(reader: asyncio.StreamReader) -> bytes:
        out = b""
        while size := int((await reader.readline()).strip() or b"0", 16):
            out += (await reader.readexactly(size + 2))[:-2]
        await reader.readline()
        return out

    async def _sse(self, reader: asyncio.StreamReader, job: Job, deadline: asyncio.Timeout) -> dict | None:
        loop = asyncio.get_running_loop()
        pending = b""
        n = 0
        final: bytes | None = None
        done = False
        content: list[str] | None = [] if job.json_mode else None
        while True:
            line = await reader.readline()
            try:
                size = int(line.strip(), 16)
            except ValueError:
                raise Bad("malformed_chunk", repr(line[:100])) from None
            if size == 0:
                await reader.readline()
                break
            pending += (await reader.readexactly(size + 2))[:-2]
            deadline.reschedule(loop.time() + self.stall)
            if b"\n\n" not in pending:
                continue
            *events, pending = pending.split(b"\n\n")
            for ev in events:
                n += 1
                if done or (final is not None and ev != b"data: [DONE]"):
                    raise Bad("event_after_final", ev[:300].decode("utf-8", "replace"))
                if ev == b"data: [DONE]":
                    done = True
                    continue
                if not ev.startswith(b"data: {"):
                    raise Bad("malformed_event", ev[:300].decode("utf-8", "replace"))
                if b'"error":' in ev:
                    raise Bad("error_event", ev[:500].decode("utf-8", "replace"))
                if b'"usage":' in ev:
                    final = ev
                elif content is not None and b'"content":' in ev:
                    content.append(_event(ev)["choices"][0]["delta"]["content"])
            if job.cut_after and n >= job.cut_after and final is None:
                self.tally.partial_events += n
                return None
        if pending.strip():
            raise Bad("trailing_bytes", pending[:300].decode("utf-8", "replace"))
        if final is None:
            raise Bad("no_final_usage", f"{n} events, none with usage")
        obj = _event(final)
        if content is not None:
            content.append((obj.get("choices") or [{}])[0].get("delta", {}).get("content") or "")
        return self._check_final(obj, job, "".join(content) if content is not None else None)

    @staticmethod
    def _check_final(obj: dict, job: Job, text: str | None) -> dict:
        choices = obj.get("choices") or [{}]
        reason = choices[-1].get("finish_reason")
        usage = obj.get("usage") or {}
        n = usage.get("completion_tokens")
        if reason not in ("stop", "length"):
            raise Bad("no_finish_reason", json.dumps(obj)[:500])
        if not isinstance(n, int) or not isinstance(usage.get("prompt_tokens"), int):
            raise Bad("no_final_usage", json.dumps(obj)[:500])
        if n > job.max_tokens or (reason == "length" and n != job.max_tokens):
            raise Bad("usage_mismatch", f"finish_reason={reason} completion_tokens={n} max={job.max_tokens}")
        if job.json_mode and reason == "stop":
            try:
                json.loads(text or "")
            except ValueError:
                raise Bad("invalid_json_output", repr(text)[:500]) from None
        return obj

    def _count(self, obj: dict, job: Job, latency: float) -> None:
        t = self.tally
        usage = obj["usage"]
        t.completed += 1
        t.tokens += usage["completion_tokens"]
        t.prompt_tokens += usage["prompt_tokens"]
        t.cached_tokens += (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        t.max_prompt_tokens = max(t.max_prompt_tokens, usage["prompt_tokens"])
        t.finish[obj["choices"][-1]["finish_reason"]] += 1
        t.latencies.append(latency)


def _event(ev: bytes) -> dict:
    """The JSON object of one ``data:`` event."""
    try:
        return json.loads(ev[6:])
    except ValueError:
        raise Bad("malformed_json", ev[:300].decode("utf-8", "replace")) from None


# ---- server state ---------------------------------------------------------------------------

def read_rss_kb(pid: int) -> int | None:
    """VmRSS of a process in KiB (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def idle_checks(st: dict) -> dict[str, bool]:
    """The engine holds no request, sequence or running KV cell (as conftest's Server.wait_idle)."""
    return {
        "running_requests_0": st["running_requests"] == 0,
        "waiting_requests_0": st["waiting_requests"] == 0,
        "free_slots_eq_slots": st["free_slots"] == st["slots"],
        "kv_cells_running_0": st["kv_cells_running"] == 0,
        "kv_slots_only_cache": st["kv_slots_occupied"] == st["cache_holder_slots"],
    }


def window_rate(samples: list[tuple[float, int]], t0: float, t1: float) -> float | None:
    """Tokens per second between the samples nearest to t0 and t1 (None with fewer than 2 in it)."""
    inside = [(t, n) for t, n in samples if t0 - 1.0 <= t <= t1 + 1.0]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


async def fetch_stats(http: httpx.AsyncClient, model: str) -> dict:
    stats = (await http.get("/wafer/stats")).json()
    return stats.get(model) or next(iter(stats.values()))


async def wait_idle(http: httpx.AsyncClient, model: str, timeout: float) -> tuple[dict | None, float]:
    """Poll until idle or timeout; returns the last stats (None: unreachable) and the seconds waited."""
    t0 = time.monotonic()
    while True:
        try:
            st = await fetch_stats(http, model)
        except (httpx.HTTPError, ValueError):
            st = None
        if (st is not None and all(idle_checks(st).values())) or time.monotonic() - t0 > timeout:
            return st, time.monotonic() - t0
        await asyncio.sleep(0.1)


def log_problems(path: Path) -> list[str]:
    """Lines of a server log that report an error (tracebacks, ERROR/CRITICAL records)."""
    if not path or not Path(path).exists():
        return []
    keys = ("Traceback", "ERROR", "CRITICAL", "Exception in ASGI")
    return [ln.rstrip() for ln in Path(path).read_text(errors="replace").splitlines() if any(k in ln for k in keys)]


# ---- the run --------------------------------------------------------------------------------

async def _soak(url: str, clients: int, duration: float, disconnect: float, seed: int, pid: int | None,
                model: str, grace: float, idle_timeout: float, stall_timeout: float,
                max_rss_growth: float, log_path: Path | None, max_prompt_words: int, max_tokens: int,
                min_sustained: float = 0.9) -> dict:
    tally = Tally()
    client = Client(url, tally, stall_timeout)
    workload = Workload(model, seed, max_prompt_words, max_tokens)
    cpu0 = time.process_time()
    warmup = max(5.0, 0.1 * duration)
    rss: list[tuple[float, int]] = []
    generated: list[tuple[float, int]] = []  # (seconds from the start, the engine's tokens_generated)
    peaks = Counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        before, _ = await wait_idle(http, model, idle_timeout)
        if before is None:
            raise RuntimeError(f"no stats from {url}/wafer/stats")
        t0 = time.monotonic()
        deadline = t0 + duration

        async def loop(i: int) -> None:
            rng = random.Random(f"soak:{seed}:{i}")
            while time.monotonic() < deadline:
                await client.run(workload.job(rng, disconnect))

        async def sampler() -> None:
            while True:
                if pid is not None and (kb := read_rss_kb(pid)) is not None:
                    rss.append((round(time.monotonic() - t0, 1), kb))
                try:
                    st = await fetch_stats(http, model)
                    generated.append((time.monotonic() - t0, st["tokens_generated"]))
                    for k in ("running_requests", "waiting_requests", "running_sequences", "kv_cells_used"):
                        peaks[k] = max(peaks[k], st[k])
                    peaks["host_cache_bytes"] = max(peaks["host_cache_bytes"], st["cache"].get("host_bytes", 0))
                except (httpx.HTTPError, ValueError) as e:
                    tally.error("stats", repr(e))
                await asyncio.sleep(SAMPLE_EVERY)

        async def baseline() -> int | None:
            await asyncio.sleep(warmup)
            return read_rss_kb(pid) if pid is not None else None

        rss_start = read_rss_kb(pid) if pid is not None else None
        sampling = asyncio.create_task(sampler())
        base_task = asyncio.create_task(baseline())
        tasks = [asyncio.create_task(loop(i)) for i in range(clients)]
        await asyncio.sleep(duration)
        load_s = time.monotonic() - t0
        _, pending = await asyncio.wait(tasks, timeout=grace)  # in-flight requests may finish
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        wall_s = time.monotonic() - t0
        rss_base = await base_task
        after, drain_s = await wait_idle(http, model, idle_timeout)
        await asyncio.sleep(1.0)  # let freed memory settle before the final sample
        sampling.cancel()
        rss_final = read_rss_kb(pid) if pid is not None else None
        if rss_final is not None:
            rss.append((round(time.monotonic() - t0, 1), rss_final))

    checks = idle_checks(after) if after is not None else {"stats_reachable": False}
    alive = pid is None or read_rss_kb(pid) is not None
    growth = (rss_final - rss_base) / rss_base if rss_base and rss_final else None
    problems = log_problems(log_path) if log_path else []
    lat = sorted(tally.latencies)
    failures = []
    if sum(tally.errors.values()):
        failures.append(f"{sum(tally.errors.values())} unexpected errors: {dict(tally.errors)}")
    if not all(checks.values()):
        failures.append(f"not idle {idle_timeout:.0f} s after the run: {[k for k, v in checks.items() if not v]}")
    if growth is not None and growth >= max_rss_growth:
        failures.append(f"RSS grew {growth:.1%} (limit {max_rss_growth:.0%})")
    if not alive:
        failures.append("the server process is gone")
    if problems:
        failures.append(f"{len(problems)} error lines in the server log")
    if not tally.completed:
        failures.append("no request completed")
    first, last = window_rate(generated, 0.0, 60.0), window_rate(generated, load_s - 60.0, load_s)
    sustained = last / first if first and last is not None else None
    if duration >= 180 and sustained is not None and sustained < min_sustained:
        failures.append(f"throughput fell: last minute {last:.1f} tok/s is {sustained:.2f}x the first ({first:.1f})")
    cache_cap = ((after or before)["cache"]).get("host_capacity_bytes")
    if cache_cap is not None and peaks["host_cache_bytes"] > cache_cap:
        failures.append(f"host prompt cache held {peaks['host_cache_bytes']} bytes, over its {cache_cap}")
    gen = (after or before)["tokens_generated"] - before["tokens_generated"]
    steps = (after or before)["steps"] - before["steps"]
    return {
        "config": {"url": url, "clients": clients, "duration_s": duration, "disconnect": disconnect, "seed": seed,
                   "model": model, "pid": pid, "warmup_s": warmup, "grace_s": grace, "stall_timeout_s": stall_timeout,
                   "max_prompt_words": max_prompt_words, "max_tokens": max_tokens,
                   "date": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count()},
        "requests": tally.started,
        "completed": tally.completed,
        "disconnected": tally.disconnected,
        "cut_at_end": tally.cut_at_end,
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "error_samples": tally.samples,
        "by_kind": dict(tally.kinds),
        "disconnect_points": dict(tally.cuts),
        "finish_reasons": dict(tally.finish),
        "tokens": tally.tokens,
        "tok_s": tally.tokens / load_s,
        "engine_tok_s_first_minute": first,
        "engine_tok_s_last_minute": last,
        "sustained_ratio": sustained,
        "host_cache_bytes_peak": peaks["host_cache_bytes"],
        "host_cache_capacity_bytes": cache_cap,
        "engine_tokens_generated": gen,
        "engine_tok_s": gen / wall_s,
        "engine_steps": steps,
        "engine_steps_s": steps / wall_s,
        "prompt_tokens": tally.prompt_tokens,
        "cached_prompt_tokens": tally.cached_tokens,
        "max_prompt_tokens": tally.max_prompt_tokens,
        "partial_events": tally.partial_events,
        "latency_s": {"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)],
                      "mean": statistics.fmean(lat)} if lat else None,
        "load_s": load_s,
        "client_cpu_s": time.process_time() - cpu0,
        "load_average": os.getloadavg(),
        "wall_s": wall_s,
        "drain_s": drain_s,
        "peaks": dict(peaks),
        "rss_kb": {"start": rss_start, "baseline": rss_base, "final": rss_final,
                   "peak": max((kb for _, kb in rss), default=None), "growth": growth, "samples": rss},
        "stats_before": before,
        "stats_after": after,
        "idle": all(checks.values()),
        "idle_checks": checks,
        "server_alive": alive,
        "server_log_problems": problems[:20],
        "failures": failures,
        "passed": not failures,
    }


def run_soak(url: str, clients: int = 64, duration: float = 600, disconnect: float = 0.2, seed: int = 0,
             pid: int | None = None, model: str = "smollm2-135m", grace: float = 30.0, idle_timeout: float = 60.0,
             stall_timeout: float = 300.0, max_rss_growth: float = 0.05, log_path: Path | None = None,
             max_prompt_words: int = MAX_PROMPT_WORDS, max_tokens: int = MAX_TOKENS, min_sustained: float = 0.9) -> dict:
    """Run the soak against a live server and return the results (``passed``, ``failures``, counts, RSS,
    engine tok/s in the first and the last minute: a run of 3 minutes or more fails when the last is
    below ``min_sustained`` x the first)."""
    return asyncio.run(_soak(url, clients, duration, disconnect, seed, pid, model, grace, idle_timeout,
                             stall_timeout, max_rss_growth, log_path, max_prompt_words, max_tokens, min_sustained))


def start_server(model: str, parallel: int, log: Path):
    """`python -m wafer serve` on a free loopback port (all cores): a ``wafer.launch.WaferServer``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from wafer.launch import WaferServer

    return WaferServer(["--model", model, "--parallel", str(parallel), "--log-level", "warning"], log)


def print_table(r: dict) -> None:
    def mib(kb: int | None) -> str:
        return f"{kb / 1024:.1f} MiB" if kb else "n/a"

    rss = r["rss_kb"]
    rows = [
        ("requests", r["requests"]),
        ("completed", r["completed"]),
        ("disconnected (on purpose)", f"{r['disconnected']}  {r['disconnect_points']}"),
        ("cut at end of run", r["cut_at_end"]),
        ("unexpected errors", f"{r['errors']}  {r['error_kinds'] or ''}"),
        ("tokens (completed)", r["tokens"]),
        ("aggregate tok/s (completed)", f"{r['tok_s']:.1f}"),
        ("engine tok/s (all generated)", f"{r['engine_tok_s']:.1f}  ({r['engine_steps_s']:.2f} steps/s)"),
        ("engine tok/s first / last minute", "n/a" if r["sustained_ratio"] is None else
         f"{r['engine_tok_s_first_minute']:.1f} / {r['engine_tok_s_last_minute']:.1f}  ({r['sustained_ratio']:.2f}x)"),
        ("host prompt cache peak", f"{mib(r['host_cache_bytes_peak'] // 1024)} of {mib((r['host_cache_capacity_bytes'] or 0) // 1024)}"),
        ("latency p50 / p99", f"{r['latency_s']['p50']:.2f} s / {r['latency_s']['p99']:.2f} s" if r["latency_s"] else "n/a"),
        ("max prompt tokens", r["max_prompt_tokens"]),
        ("RSS baseline", mib(rss["baseline"])),
        ("RSS final (after drain)", mib(rss["final"])),
        ("RSS peak", mib(rss["peak"])),
        ("RSS growth", f"{rss['growth']:.2%}" if rss["growth"] is not None else "n/a"),
        ("idle after drain", f"{r['idle']}  (drained in {r['drain_s']:.1f} s)"),
        ("result", "PASS" if r["passed"] else "FAIL: " + "; ".join(r["failures"])),
    ]
    w = max(len(k) for k, _ in rows)
    c = r["config"]
    print(f"\nsoak: {c['clients']} clients, {c['duration_s']:.0f} s, {c['disconnect']:.0%} disconnects, seed {c['seed']}")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running server (default: start one)")
    ap.add_argument("--pid", type=int, help="the server's process id, for RSS (with --url)")
    ap.add_argument("--server-log", type=Path, help="the server's log, scanned for errors (with --url)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--disconnect", type=float, default=0.2, help="share of requests abandoned on purpose")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--parallel", type=int, default=16, help="--parallel of the server started here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grace", type=float, default=30, help="seconds in-flight requests may finish after the run")
    ap.add_argument("--stall-timeout", type=float, default=300, help="seconds without a byte that count as a hang")
    ap.add_argument("--max-rss-growth", type=float, default=0.05)
    ap.add_argument("--min-sustained", type=float, default=0.9,
                    help="last-minute engine tok/s must be at least this x the first minute's (runs >= 180 s)")
    ap.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="longest completion (1..N, uniform)")
    ap.add_argument("--max-prompt-words", type=int, default=MAX_PROMPT_WORDS, help="longest prompt in words (about a token each)")
    ap.add_argument("--json", type=Path, default=RESULTS / "soak.json")
    args = ap.parse_args()

    args.json.parent.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server started here on `kill` too
    server = None
    url, pid, log = args.url, args.pid, args.server_log
    if url is None:
        log = args.json.with_name(args.json.stem + "-server.log")
        server = start_server(args.model, args.parallel, log)
        url, pid = server.url, server.pid
    try:
        res = run_soak(url, args.clients, args.duration, args.disconnect, args.seed, pid, args.model, args.grace,
                       stall_timeout=args.stall_timeout, max_rss_growth=args.max_rss_growth, log_path=log,
                       max_prompt_words=args.max_prompt_words, max_tokens=args.max_tokens,
                       min_sustained=args.min_sustained)
    finally:
        if server is not None:
            server.stop()
    print_table(res)
    args.json.write_text(json.dumps(res, indent=2))
    print(f"\nwrote {args.json}")
    sys.exit(0 if res["passed"] else 1)


if __name__ == "__main__":
    main()
