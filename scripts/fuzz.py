#!/usr/bin/env python
"""Fuzz a wafer server: no answer may be a 5xx, and the server must stay alive and idle afterwards.

    .venv/bin/python scripts/fuzz.py [--url URL] [--requests N] [--model M] [--json OUT]

Without ``--url`` a server is started (``python -m wafer serve --ctx-size 256 --parallel 16
--threads 1``) and stopped at the end. Three stages:

1. schemathesis against ``{url}/openapi.json`` (every operation; examples, coverage and fuzzing
   phases; check ``not_a_server_error``) until ``--requests`` requests have been sent, in rounds
   with fresh seeds. Requests that name a served model really generate, kept short by
   ``bound_cost`` (see ``fuzz_hooks.py``, which also records every request schemathesis sends).
2. a malformed-request corpus over raw sockets: invalid JSON and UTF-8, wrong types for every
   top-level field, bodies over and under the size limit, deep nesting, duplicate keys, binary and
   compressed garbage, truncated, mis-sized and chunked bodies, slow (slowloris) headers and bodies
   while a normal request must still succeed, odd methods and HTTP versions, long URLs and headers,
   many concurrent garbage connections.
3. liveness: ``/health`` is 200, a real chat completion answers, ``/wafer/stats`` goes idle.

Every request is counted by source and status; an answer >= 500, a request that hangs, a failed
liveness check or a server process that died make the exit status 1. A table goes to stdout, the
details to ``--json`` (default ``scripts/results/fuzz.json``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
DEFAULT_JSON = SCRIPTS / "results" / "fuzz.json"
DEFAULT_MODEL = "smollm2-135m"
DEFAULT_MAX_BODY = 8 * 1024 * 1024  # wafer serve's --max-body-bytes default
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
CLASSES = ("2xx", "3xx", "4xx", "5xx", "dropped", "timeout", "closed")


# --------------------------------------------------------------------------------------------
# counting


def status_class(status: int | str) -> str:
    """``"2xx"`` … ``"5xx"`` for an HTTP status; ``"dropped"``, ``"timeout"`` and ``"closed"`` as they are."""
    return f"{status // 100}xx" if isinstance(status, int) else str(status)


class Tally:
    """Requests by source and status, and the ones that count as failures (thread-safe)."""

    def __init__(self, keep_slowest: int = 20) -> None:
        self.by_source: dict[str, Counter] = {}
        self.failures: list[dict] = []
        self.slowest: list[dict] = []
        self._keep = keep_slowest
        self._lock = threading.Lock()

    def add(self, source: str, status: int | str, case: str = "", *, hang_ok: bool = False,
            expect: str | None = None, request: object = None, elapsed: float | None = None) -> None:
        """Count one request. A status >= 500, a timeout (unless ``hang_ok``) and an answer that
        ``expect`` does not allow (statuses or classes, ``|``-separated: ``"413"``, ``"2xx|429"``)
        are failures."""
        problem = None
        if isinstance(status, int) and status >= 500:
            problem = "server error"
        elif status == "timeout" and not hang_ok:
            problem = "no answer (hang)"
        elif expect and isinstance(status, int) and not {str(status), status_class(status)} & set(expect.split("|")):
            problem = f"expected {expect}"
        with self._lock:
            self.by_source.setdefault(source, Counter())[status] += 1
            if elapsed is not None and (len(self.slowest) < self._keep or elapsed > self.slowest[-1]["elapsed_s"]):
                entry = {"elapsed_s": round(elapsed, 3), "source": source, "case": case, "status": status}
                if request is not None:
                    entry["request"] = request
                self.slowest = sorted([*self.slowest, entry], key=lambda e: -e["elapsed_s"])[: self._keep]
            if problem:
                entry = {"source": source, "case": case, "status": status, "problem": problem}
                if request is not None:
                    entry["request"] = request
                self.failures.append(entry)

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.by_source.values())

    def server_errors(self) -> int:
        return sum(n for c in self.by_source.values() for s, n in c.items() if isinstance(s, int) and s >= 500)

    def summary(self) -> dict:
        out = {}
        for source, counts in sorted(self.by_source.items()):
            classes = Counter()
            for s, n in counts.items():
                classes[status_class(s)] += n
            out[source] = {"total": sum(counts.values()), "by_class": dict(classes),
                           "by_status": {str(s): n for s, n in sorted(counts.items(), key=lambda kv: str(kv[0]))}}
        return out


# --------------------------------------------------------------------------------------------
# a server of our own


def log_errors(log_path: Path, limit: int = 20) -> list[dict]:
    """The tracebacks (and fatal errors) of a server log, grouped by exception type and innermost
    wafer frame: ``{"count", "exception", "where", "traceback"}`` (one full traceback each)."""
    lines = log_path.read_text(errors="replace").splitlines()
    groups: dict[tuple[str, str], dict] = {}
    i = 0
    while i < len(lines):
        if lines[i].startswith("Traceback") or lines[i].startswith("Fatal Python error"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            block = lines[i:j + 1]
            exception = lines[j] if j < len(lines) else lines[i]
            frames = [line.strip() for line in block if line.strip().startswith('File "') and "/wafer/" in line]
            where = frames[-1] if frames else ""
            group = groups.setdefault((exception.split(":")[0], where), {
                "count": 0, "exception": exception, "where": where, "traceback": "\n".join(block)})
            group["count"] += 1
            i = j + 1
        else:
            i += 1
    return sorted(groups.values(), key=lambda g: -g["count"])[:limit]


def start_server(model: str, max_body: int, threads: int, log: Path):
    """The server ``fuzz.py`` starts itself: a ``wafer.launch.WaferServer``, as the soak and the tests start
    theirs. One llama.cpp thread by default: with as many threads as cores, the fuzzing client's own CPU use
    stalls every decode step."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from wafer.launch import WaferServer

    return WaferServer(["--model", model, "--threads", str(threads), "--parallel", "16", "--log-level", "warning",
                        "--ctx-size", "256", "--max-body-bytes", str(max_body)], log)


# --------------------------------------------------------------------------------------------
# stage 1: schemathesis


def served_ids(url: str, headers: dict | None = None) -> list[str]:
    """The model ids ``GET /v1/models`` lists."""
    r = httpx.get(url + "/v1/models", headers=headers, timeout=30)
    r.raise_for_status()
    return [m["id"] for m in r.json()["data"]]


#: Valid ranges (wafer.protocol) of the fields ``bound_cost`` lowers: values outside them stay as
#: generated, so that the server still sees (and rejects) them.
_FANOUT = {"n": (1, 128), "best_of": (0, 20)}
_LIMITS = ("max_completion_tokens", "max_tokens", "min_completion_tokens", "min_tokens")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def bound_cost(body: object, served, max_tokens: int = 8, max_n: int = 2) -> object:
    """Bound the work of a body that names a served model, in place: at most ``max_n`` choices
    (``n``, ``best_of``) of at most ``max_tokens`` new tokens. Only valid values are lowered
    (``-1``, "as many as fit", included), and a body with no token limit gets one, so that a fuzz
    request costs a few engine steps; invalid values are left for the server to reject."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or body["model"] not in served:
        return body
    for key, (low, high) in _FANOUT.items():
        v = body.get(key)
        if _is_int(v) and low <= v <= high and v > max_n:
            body[key] = max_n
    for key in _LIMITS:
        v = body.get(key)
        if _is_int(v) and (v == -1 or v > max_tokens):
            body[key] = max_tokens
    if all(body.get(k) is None for k in ("max_completion_tokens", "max_tokens")):
        body["max_completion_tokens" if "messages" in body else "max_tokens"] = max_tokens
    return body


def run_schemathesis(url: str, tally: Tally, budget: int, *, workers: int = 4,
                     phases: str = "examples,coverage,fuzzing", max_time: float = 900, seed: int = 1,
                     served: list[str] | None = None, api_key: str | None = None, max_tokens: int = 8,
                     request_timeout: float = 120, workdir: Path | None = None, echo: bool = False) -> dict:
    """Run schemathesis (CLI, in a subprocess) until ``budget`` requests have been sent or
    ``max_time`` seconds have passed; add every request to ``tally`` as ``schemathesis:<phase>``.

    The first round runs ``phases``, later rounds the fuzzing phase with a new seed each. A round
    is stopped (SIGINT) as soon as the budget is reached. Hypothesis' and schemathesis' files stay
    in a temporary directory."""
    started = time.time()
    rounds = []
    records: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="wafer-fuzz-", dir=workdir) as tmp:
        tmp = Path(tmp)
        log = tmp / "requests.jsonl"
        log.touch()
        env = dict(os.environ)
        env.update({
            "SCHEMATHESIS_HOOKS": "fuzz_hooks",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SCRIPTS), env.get("PYTHONPATH")])),
            "WAFER_FUZZ_LOG": str(log),
            "WAFER_FUZZ_SERVED": ",".join(served or []),
            "WAFER_FUZZ_MAX_TOKENS": str(max_tokens),
            "HYPOTHESIS_STORAGE_DIRECTORY": str(tmp / "hypothesis"),
        })
        round_no = 0
        while True:
            sent = _count_lines(log)
            left = budget - sent
            remaining_time = max_time - (time.time() - started)
            if left <= 0 or remaining_time < 5:
                break
            round_phases = phases if round_no == 0 else "fuzzing"
            cmd = [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
                   "--checks", "not_a_server_error", "--phases", round_phases,
                   "--max-examples", str(max(10, -(-left // 4))), "--workers", str(workers),
                   "--seed", str(seed + round_no), "--generation-database", "none",
                   "--request-timeout", str(request_timeout), "--suppress-health-check", "all",
                   "--continue-on-failure", "--output-sanitize", "false", "--no-color"]
            if api_key:
                cmd += ["--header", f"Authorization: Bearer {api_key}"]
            out_path = tmp / f"round{round_no}.txt"
            with open(out_path, "w") as out:
                proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
                stopped = _watch(proc, log, budget, started + max_time)
            text = out_path.read_text(errors="replace")
            if echo:
                print(text[-3000:])
            new = _count_lines(log) - sent
            rounds.append({"phases": round_phases, "seed": seed + round_no, "exit_code": proc.returncode,
                           "stopped_at_budget": stopped, "requests": new, "output_tail": text[-1500:]})
            round_no += 1
            if new == 0:
                break
        for line in log.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:  # a line cut short by an interrupted round
                continue
    for r in records:
        request = r.get("request")
        if request is not None and "response" in r:
            request = dict(request, answer=r["response"])
        tally.add(f"schemathesis:{r.get('phase') or 'other'}", r["status"], r["op"], request=request,
                  elapsed=r.get("elapsed"))
    return {"requests": len(records), "duration_s": round(time.time() - started, 1), "rounds": rounds}


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def _watch(proc: subprocess.Popen, log: Path, budget: int, deadline: float) -> bool:
    """Wait for ``proc``; interrupt it once ``log`` has ``budget`` lines or at ``deadline``.
    True when it was stopped for the budget."""
    stopped = False
    while proc.poll() is None:
        if not stopped and (_count_lines(log) >= budget or time.time() > deadline):
            stopped = _count_lines(log) >= budget
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.25)
    proc.wait()
    return stopped


# --------------------------------------------------------------------------------------------
# raw HTTP


@dataclass
class Case:
    """One raw exchange: ``chunks`` are bytes to send or float pauses (seconds)."""

    source: str
    name: str
    chunks: list
    expect: str | None = None  # the statuses or classes an answer may have ("413", "4xx", "2xx|429")
    hang_ok: bool = False  # no answer within ``timeout`` is acceptable (the request is incomplete)
    end: str = "read"  # after the last chunk: "read" the answer, "half_close" and read, "close" at once
    timeout: float = 60.0


def http_request(method: str, target: str, body: bytes = b"", headers: dict | list | None = None, *,
                 version: str = "HTTP/1.1", length: bool = True, host: str = "127.0.0.1") -> bytes:
    """Request bytes; ``headers`` as a dict or a list of (name, value) pairs (str or bytes)."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {(n.decode("latin-1") if isinstance(n, bytes) else n).lower() for n, _ in pairs}
    if "host" not in names and host:
        pairs.insert(0, ("Host", host))
    if length and body and "content-length" not in names and "transfer-encoding" not in names:
        pairs.append(("Content-Length", str(len(body))))
    head = f"{method} {target} {version}\r\n".encode("latin-1") if isinstance(target, str) else (
        method.encode() + b" " + target + b" " + version.encode() + b"\r\n")
    for n, v in pairs:
        n = n if isinstance(n, bytes) else n.encode("latin-1")
        v = v if isinstance(v, bytes) else str(v).encode("latin-1")
        head += n + b": " + v + b"\r\n"
    return head + b"\r\n" + body


def exchange(addr: tuple[str, int], chunks: list, *, timeout: float = 60.0, end: str = "read") -> int | str:
    """Send ``chunks`` on a fresh connection; the answer's status, ``"dropped"`` (the server closed
    without an answer), ``"timeout"``, or ``"closed"`` when ``end`` is ``"close"`` (we hang up
    without reading). A send the server cut short (it may answer early, e.g. 413) is read on."""
    try:
        sock = socket.create_connection(addr, timeout=timeout)
    except OSError:
        return "dropped"
    deadline = time.time() + timeout
    try:
        try:
            for chunk in chunks:
                if isinstance(chunk, (int, float)):
                    time.sleep(chunk)
                else:
                    sock.sendall(chunk)
            if end == "close":
                return "closed"
            if end == "half_close":
                sock.shutdown(socket.SHUT_WR)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass
        return _read_status(sock, deadline)
    finally:
        sock.close()


def _status_of(head: bytes) -> int | None:
    parts = head.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1][:3].isdigit():
        return int(parts[1][:3])
    return None


def _read_status(sock: socket.socket, deadline: float) -> int | str:
    """The status of the first final (non-1xx) answer on ``sock``, ``"dropped"`` or ``"timeout"``."""
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            status = _status_of(buf)
            if status is None:
                return "dropped"
            if not 100 <= status < 200:
                return status
            buf = buf[end + 4:]  # an interim answer (100 Continue): the final one follows
            continue
        left = deadline - time.time()
        if left <= 0:
            return "timeout"
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return "timeout"
        except OSError:
            data = b""
        if not data:
            status = _status_of(buf)
            return status if status is not None and status >= 200 else "dropped"
        buf += data


def run_cases(url: str, tally: Tally, cases: list[Case], threads: int = 8) -> None:
    """Run ``cases`` (``threads`` at a time) and count their answers."""
    addr = _addr(url)

    def one(case: Case) -> None:
        t0 = time.time()
        status = exchange(addr, case.chunks, timeout=case.timeout, end=case.end)
        tally.add(f"raw:{case.source}", status, case.name, hang_ok=case.hang_ok, expect=case.expect,
                  elapsed=time.time() - t0, request=_preview(case.chunks))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, cases))


def _preview(chunks: list, limit: int = 1500) -> str:
    """The start of what a case sends, for reports (bytes as Python escapes)."""
    sizes = [len(c) for c in chunks if isinstance(c, bytes)]
    head = b""
    for c in chunks:
        if isinstance(c, bytes) and len(head) < limit:
            head += c[: limit - len(head)]
    text = repr(head)[2:-1]
    return text + (f"... ({sum(sizes)} bytes)" if sum(sizes) > limit else "")


def _addr(url: str) -> tuple[str, int]:
    u = urlsplit(url)
    return u.hostname or "127.0.0.1", u.port or 80


# --------------------------------------------------------------------------------------------
# stage 2: the malformed corpus


def base_chat(model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Say hi"}], "max_completion_tokens": 4,
            "temperature": 0}


def base_completion(model: str) -> dict:
    return {"model": model, "prompt": "Once upon a time", "max_tokens": 4, "temperature": 0}


INVALID_JSON = [
    b"", b" ", b"{", b"}", b"[", b"]", b"{]", b"[}", b'{"model":', b'{"model"}', b'{"model": }', b"{,}",
    b'{"model": "x",}', b'{"model": "x" "messages": []}', b"{'model': 'x'}", b"{model: 1}", b"nul", b"tru",
    b"NaN", b"Infinity", b"-Infinity", b'{"temperature": NaN}', b'{"temperature": Infinity}',
    b'{"temperature": -Infinity}', b'{"temperature": 1e999999}', b'{"n": 01}', b'{"n": 1.}', b'{"n": .5}',
    b'{"n": +1}', b'{"n": 0x10}', b'{"max_tokens": 1' + b"0" * 5000 + b"}", b"{} {}", b"{}garbage", b"[]]",
    b'{"model": "\\x41"}', b'{"model": "\\u12"}', b'{"model": "\\ud800"}', b'{"model": "\\udc00\\ud800"}',
    b'{"model": "a\x00b"}', b'{"model": "tab\there"}', b'{"model": "new\nline"}', b"\xef\xbb\xbf{}",
    b"/* comment */ {}", b"// comment\n{}", b'{"a": 1} // trailing', b"\x00" * 16, b"\r\n\r\n",
]

INVALID_UTF8 = [
    b'{"model": "\xff"}', b'{"model": "\xc3\x28"}', b'{"model": "\xa0\xa1"}', b'{"model": "\xe2\x28\xa1"}',
    b'{"model": "\xe2\x82\x28"}', b'{"model": "\xf0\x28\x8c\xbc"}', b'{"model": "\xf8\xa1\xa1\xa1\xa1"}',
    b'{"model": "\xc0\xaf"}', b'{"model": "\xed\xa0\x80"}', b'{"model": "\xf4\x90\x80\x80"}',
    b'{"model": "x", "messages": [{"role": "user", "content": "\xff\xfe\xfd"}]}', b"\xfe\xff\x00{\x00}",
    "{}".encode("utf-16"), '{"model": "x"}'.encode("utf-16-le"), '{"model": "x"}'.encode("utf-32"),
]

#: values of every JSON type (and edge numbers) put into each top-level field in turn
WRONG_VALUES = [True, 0, -1, 1.5, 2**64, 1e308, "", "x", [], [1], ["x"], {}, {"a": 1}]


def _json(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _post(path: str, body: bytes, headers: list | None = None, **kw) -> bytes:
    return http_request("POST", path, body, [("Content-Type", "application/json"), *(headers or [])], **kw)


def _nest(depth: int, open_: str = "[", close: str = "]", inner: str = "") -> bytes:
    return (open_ * depth + inner + close * depth).encode()


def _deep_schema(levels: int) -> bytes:
    """A JSON schema nested ``levels`` JSON levels deep (objects in ``properties``)."""
    n = levels // 2
    return b'{"type": "object", "properties": {"a": ' * n + b'{"type": "string"}' + b"}}" * n


def _with(obj: dict, key: str, raw: bytes) -> bytes:
    """``obj`` as JSON with ``raw`` (JSON text) as the value of ``key`` (which ``obj`` has, as ``None``)."""
    return _json(obj).replace(b'"%s": null' % key.encode(), b'"%s": %s' % (key.encode(), raw), 1)


def _pad_to(obj: dict, key: str, size: int) -> bytes:
    """``obj`` as JSON, its string ``key`` grown so that the body is ``size`` bytes."""
    filler = max(0, size - len(_json(obj)))
    return _json(dict(obj, **{key: obj[key] + "a" * filler}))


def _lorem(n: int) -> str:
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "wizards", "box", "jugs"]
    rnd = random.Random(n)
    out, size = [], 0
    while size < n:
        w = rnd.choice(words)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n]


def request_fields() -> dict[str, list[str]]:
    """The top-level JSON keys of each completion route's request model."""
    from wafer.protocol.chat import ChatCompletionRequest
    from wafer.protocol.completions import CompletionRequest

    def keys(model) -> list[str]:
        return [f.alias or name for name, f in model.model_fields.items()]

    return {CHAT: keys(ChatCompletionRequest), COMPLETIONS: keys(CompletionRequest)}


class _Corpus:
    """Stage 2's cases, built group by group (``corpus`` runs every ``*_cases`` method)."""

    def __init__(self, model: str, max_body: int, api_key: str | None, seed: int) -> None:
        self.model, self.max_body = model, max_body
        self.auth = [("Authorization", f"Bearer {api_key}")] if api_key else []
        self.rnd = random.Random(seed)
        self.valid = _json(base_chat(model))  # a small valid chat request
        self.cases: list[Case] = []

    def add(self, source: str, name: str, data: bytes | list, **kw) -> None:
        self.cases.append(Case(source, name, data if isinstance(data, list) else [data], **kw))

    def post(self, path: str, body: bytes, headers: list | None = None, **kw) -> bytes:
        return _post(path, body, [*self.auth, *(headers or [])], **kw)

    def json_cases(self) -> None:
        """Invalid JSON and UTF-8, and whole bodies of the wrong JSON type."""
        model, add, post = self.model, self.add, self.post
        bases = {CHAT: base_chat(model), COMPLETIONS: base_completion(model)}
        for path in (CHAT, COMPLETIONS):
            for i, body in enumerate(INVALID_JSON):
                add("invalid_json", f"{path} #{i} {body[:40]!r}", post(path, body), expect="4xx")
            for i, body in enumerate(INVALID_UTF8):
                add("invalid_utf8", f"{path} #{i} {body[:40]!r}", post(path, body))
            for top in ([], [bases[path]], "x", 1, None, True):
                add("wrong_types", f"{path} body={json.dumps(top)[:40]}", post(path, _json(top)), expect="4xx")

    def field_cases(self) -> None:
        """Every top-level field of both request models, in turn, with values of every JSON type."""
        add, post = self.add, self.post
        bases = {CHAT: base_chat(self.model), COMPLETIONS: base_completion(self.model)}
        for path, keys in request_fields().items():
            for key in keys:
                for value in WRONG_VALUES:
                    body = dict(bases[path], **{key: value})
                    add("wrong_types", f"{path} {key}={json.dumps(value)[:30]}", post(path, _json(body)))

    def size_cases(self) -> None:
        """One body just over the limit (413), a compressed one that inflates past it, big ones under it."""
        model, max_body, add, post = self.model, self.max_body, self.add, self.post
        over = _pad_to(base_chat("no-such-model") | {"user": ""}, "user", max_body + 1)
        add("huge", f"chat body of {max_body + 1} bytes (limit + 1)", post(CHAT, over), expect="413")
        bomb = gzip.compress(b'{"model": "x", "prompt": "' + b"a" * (max_body + 1) + b'"}', 9)
        add("huge", "gzip bomb inflating past the limit", post(COMPLETIONS, bomb, [("Content-Encoding", "gzip")]),
            expect="413")
        under = _pad_to(base_chat("no-such-model") | {"user": ""}, "user", max_body - 1024)
        add("huge", f"chat body of {max_body - 1024} bytes (unknown model)", post(CHAT, under), expect="4xx")
        text = _lorem(min(1 << 20, max_body // 4))
        body = _json(dict(base_chat(model), messages=[{"role": "user", "content": text}]))
        add("huge", f"chat prompt of {len(text)} characters", post(CHAT, body), expect="4xx")
        body = _json(dict(base_completion(model), prompt=text))
        add("huge", f"completion prompt of {len(text)} characters", post(COMPLETIONS, body), expect="4xx")
        ids = [1] * min(500_000, max_body // 4)
        body = _json(dict(base_completion(model), prompt=ids))
        add("huge", f"completion prompt of {len(ids)} token ids", post(COMPLETIONS, body), expect="4xx")
        many = [{"role": "user", "content": "hi"}] * min(100_000, max_body // 64)
        add("huge", f"{len(many)} messages", post(CHAT, _json(dict(base_chat(model), messages=many))), expect="4xx")
        add("huge", "20000 stop strings", post(CHAT, _json(dict(base_chat(model), stop=["x"] * 20000))), expect="4xx")
        bias = {str(i): 1 for i in range(min(100_000, max_body // 16))}
        add("huge", f"logit_bias with {len(bias)} keys", post(CHAT, _json(dict(base_chat(model), logit_bias=bias))))
        add("huge", "1000 prompts", post(COMPLETIONS, _json(dict(base_completion(model), prompt=["hi"] * 1000))))

    def nesting_cases(self) -> None:
        """Nesting far too deep to parse, and deep but parseable inside fields the server walks."""
        model, add, post = self.model, self.add, self.post
        for depth in (100_000, 10_000, 1_000):
            add("nesting", f"{depth} nested arrays", post(CHAT, _nest(depth)), expect="4xx")
            add("nesting", f"{depth} nested objects", post(COMPLETIONS, _nest(depth, '{"a":', "}", "1")), expect="4xx")
        add("nesting", "100000 unclosed arrays", post(CHAT, b"[" * 100_000), expect="4xx")
        add("nesting", "100000 nested arrays as content",
            post(CHAT, b'{"model": "%s", "messages": [{"role": "user", "content": ' % model.encode()
                 + _nest(100_000) + b"}]}"), expect="4xx")
        for depth in (200, 500, 900):
            schema = _deep_schema(depth)
            fmt = b'{"type": "json_schema", "json_schema": {"name": "x", "schema": %s}}' % schema
            add("nesting", f"response_format schema {depth} deep",
                post(CHAT, _with(dict(base_chat(model), response_format=None), "response_format", fmt)))
            tools = b'[{"type": "function", "function": {"name": "f", "parameters": %s}}]' % schema
            add("nesting", f"tool parameters {depth} deep",
                post(CHAT, _with(dict(base_chat(model), tools=None), "tools", tools)))
            add("nesting", f"model_parameters {depth} deep", post(CHAT, _with(
                dict(base_chat(model), model_parameters=None), "model_parameters", b'{"a": ' + _nest(depth) + b"}")))
            content = b'[{"role": "user", "content": %s}]' % _nest(depth)
            add("nesting", f"content {depth} deep",
                post(CHAT, _with(dict(base_chat(model), messages=None), "messages", content)), expect="4xx")

    def duplicate_key_cases(self) -> None:
        """Duplicate keys (json.loads keeps the last one)."""
        model, add, post = self.model, self.add, self.post
        for i, body in enumerate([
            b'{"model": "x", "model": "%s", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}',
            b'{"model": "%s", "messages": 1, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}',
            b'{"model": "%s", "messages": [{"role": "user", "role": "system", "content": "hi", "content": 1}]}',
            b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "max_tokens": -5}',
            b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}], "stream": true, "stream": 0}',
        ]):
            add("duplicate_keys", f"chat #{i}", post(CHAT, body % model.encode()))
        add("duplicate_keys", "completion prompt twice",
            post(COMPLETIONS, b'{"model": "%s", "prompt": 5, "prompt": "hi", "max_tokens": 4}' % model.encode()))

    def text_cases(self) -> None:
        """Lone surrogates (valid JSON for Python, not encodable as UTF-8) and NULs where text is used."""
        model, add, post = self.model, self.add, self.post
        sur, chat, comp = "\ud800", base_chat(model), base_completion(model)
        hi = [{"role": "user", "content": "hi"}]
        call = {"id": "1", "type": "function", "function": {"name": "f", "arguments": sur}}
        schema = {"type": "object", "properties": {sur: {"type": "string"}}}
        for name, path, body in [
            ("surrogate in content", CHAT, dict(chat, messages=[{"role": "user", "content": f"a{sur}b"}])),
            ("surrogate in system content", CHAT, dict(chat, messages=[{"role": "system", "content": "\udfff"}, *hi])),
            ("surrogate in a content part", CHAT, dict(chat, messages=[{"role": "user", "content": [
                {"type": "text", "text": sur}]}])),
            ("surrogate in prompt", COMPLETIONS, dict(comp, prompt="\udc00")),
            ("surrogate in prompt list", COMPLETIONS, dict(comp, prompt=["ok", sur])),
            ("surrogate in suffix", COMPLETIONS, dict(comp, suffix=sur)),
            ("surrogate as model", CHAT, dict(chat, model=sur)),
            ("surrogate as unknown key", CHAT, dict(chat, **{sur: 1})),
            ("surrogate in stop", CHAT, dict(chat, stop=[sur])),
            ("surrogate in logit_bias key", CHAT, dict(chat, logit_bias={sur: 1})),
            ("surrogate in user", CHAT, dict(chat, user=sur)),
            ("surrogate in prompt_cache_key", CHAT, dict(chat, prompt_cache_key=sur)),
            ("surrogate in role", CHAT, dict(chat, messages=[{"role": sur, "content": "hi"}])),
            ("surrogate in message name", CHAT, dict(chat, messages=[{"role": "user", "content": "hi", "name": sur}])),
            ("surrogate in tool name", CHAT, dict(chat, tools=[{"type": "function", "function": {"name": sur}}])),
            ("surrogate in tool description", CHAT, dict(chat, tools=[{"type": "function", "function": {
                "name": "f", "description": sur}}])),
            ("surrogate in schema", CHAT, dict(chat, response_format={"type": "json_schema", "json_schema": {
                "name": "x", "schema": schema}})),
            ("surrogate in prediction", CHAT, dict(chat, prediction={"type": "content", "content": sur})),
            ("surrogate in tool call arguments", CHAT, dict(chat, messages=[
                *hi, {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "1", "content": "x"}])),
            ("surrogate in tool result", CHAT, dict(chat, messages=[
                *hi, {"role": "assistant", "tool_calls": [dict(call, function={"name": "f", "arguments": "{}"})]},
                {"role": "tool", "tool_call_id": "1", "content": sur}])),
            ("NUL in content", CHAT, dict(chat, messages=[{"role": "user", "content": "a\x00b"}])),
            ("NUL in prompt", COMPLETIONS, dict(comp, prompt="\x00")),
            ("NUL in stop", CHAT, dict(chat, stop="\x00")),
        ]:
            add("surrogates", name, post(path, _json(body)))

    def binary_cases(self) -> None:
        """Random binary bodies."""
        rnd, auth, add = self.rnd, self.auth, self.add
        for i in range(20):
            blob = rnd.randbytes(rnd.choice([1, 7, 64, 1000, 65536]))
            ctype = rnd.choice(["application/json", "application/octet-stream", "text/plain"])
            add("binary", f"{len(blob)} random bytes as {ctype}",
                http_request("POST", rnd.choice([CHAT, COMPLETIONS]), blob, [*auth, ("Content-Type", ctype)]),
                expect="4xx")

    def encoding_cases(self) -> None:
        """Content-Encoding and Content-Type variants."""
        model, rnd, auth, add, post = self.model, self.rnd, self.auth, self.add, self.post
        valid = _json(base_chat(model))
        for name, body, enc, expect in [
            ("gzip garbage", rnd.randbytes(200), "gzip", "4xx"),
            ("deflate garbage", rnd.randbytes(200), "deflate", "4xx"),
            ("gzip header then garbage", b"\x1f\x8b\x08\x00" + rnd.randbytes(100), "gzip", "4xx"),
            ("gzip truncated", gzip.compress(valid)[:-10], "gzip", "4xx"),
            ("gzip empty", b"", "gzip", "4xx"),
            ("gzip of valid JSON", gzip.compress(valid), "gzip", "2xx|429"),
            ("GZIP (upper case) of valid JSON", gzip.compress(valid), "GZIP", "2xx|429"),
            ("deflate (zlib) of valid JSON", zlib.compress(valid), "deflate", "2xx|429"),
            ("raw deflate of valid JSON", zlib.compress(valid)[2:-4], "deflate", None),
            ("gzip of invalid UTF-8", gzip.compress(b'{"model": "\xff"}'), "gzip", "4xx"),
            ("gzip twice, declared once", gzip.compress(gzip.compress(valid)), "gzip", "4xx"),
            ("gzip, gzip", gzip.compress(gzip.compress(valid)), "gzip, gzip", None),
            ("br", valid, "br", "4xx"),
            ("compress", valid, "compress", "4xx"),
            ("identity", valid, "identity", "2xx|429"),
            ("non-ASCII encoding name", valid, "gz\xefp", "4xx"),
        ]:
            add("encoding", name, post(CHAT, body, [("Content-Encoding", enc)]), expect=expect)

        # Content-Type
        for ctype in ["application/msgpack", "application/x-msgpack", "text/plain", "application/x-www-form-urlencoded",
                      "multipart/form-data; boundary=x", "application/json; charset=utf-16",
                      "application/json; charset=",
                      "", ";;;", "application/json\x7f", "a" * 10000]:
            add("content_type", f"Content-Type {ctype[:40]!r}",
                http_request("POST", CHAT, valid, [*auth, ("Content-Type", ctype)]))
        add("content_type", "no Content-Type", http_request("POST", CHAT, valid, auth))

    def framing_cases(self) -> None:
        """Bodies shorter or longer than their Content-Length, and chunked bodies, valid and broken."""
        max_body, valid, add, post = self.max_body, self.valid, self.add, self.post
        for name, cut, end in [("half of the body, then half-close", 0.5, "half_close"),
                               ("no body, then half-close", 0, "half_close"),
                               ("half of the body, then close", 0.5, "close"),
                               ("all but 1 byte, then close", -1, "close"),
                               ("all but 1 byte, then half-close", -1, "half_close")]:
            n = len(valid) - 1 if cut == -1 else int(len(valid) * cut)
            data = post(CHAT, valid, [("Content-Length", str(len(valid)))])
            add("truncated", name, data[: len(data) - len(valid) + n], end=end, hang_ok=True, timeout=5)
        add("truncated", "Content-Length 1 GB, 10 bytes sent", post(CHAT, b"{" * 10, [("Content-Length", str(10**9))]),
            end="half_close", hang_ok=True, timeout=5)
        add("truncated", "whole request, then close before the answer", post(CHAT, valid), end="close")

        # Content-Length that does not match the body
        for name, headers, body, expect in [
            ("Content-Length shorter than the body", [("Content-Length", "5")], valid, "4xx"),
            ("Content-Length 0 with a body", [("Content-Length", "0")], valid, "4xx"),
            ("Content-Length -1", [("Content-Length", "-1")], valid, None),
            ("Content-Length not a number", [("Content-Length", "abc")], valid, None),
            ("Content-Length 1e3", [("Content-Length", "1e3")], valid, None),
            ("Content-Length 2**70", [("Content-Length", str(2**70))], valid, None),
            ("two different Content-Length", [("Content-Length", str(len(valid))), ("Content-Length", "3")], valid,
             None),
            ("Content-Length with spaces", [("Content-Length", f"  {len(valid)}  ")], valid, None),
            ("Content-Length and chunked", [("Content-Length", "3"), ("Transfer-Encoding", "chunked")],
             _chunked([valid]), None),
            ("Content-Length list", [("Content-Length", f"{len(valid)}, {len(valid)}")], valid, None),
        ]:
            add("length_mismatch", name, post(CHAT, body, headers, length=False), expect=expect, hang_ok=True,
                timeout=10)

        # chunked bodies
        chunked = [("Transfer-Encoding", "chunked")]
        for name, body, expect, hang_ok in [
            ("valid chunks", _chunked([valid[:10], valid[10:30], valid[30:]]), "2xx|429", False),
            ("one-byte chunks", _chunked([valid[i:i + 1] for i in range(len(valid))]), "2xx|429", False),
            ("upper-case hex sizes", b"%X\r\n%s\r\n0\r\n\r\n" % (len(valid), valid), "2xx|429", False),
            ("chunk extensions", b"%x;name=value\r\n%s\r\n0\r\n\r\n" % (len(valid), valid), None, False),
            ("trailer headers", _chunked([valid])[:-2] + b"X-Trailer: 1\r\n\r\n", None, False),
            ("invalid hex size", b"zz\r\n" + valid + b"\r\n0\r\n\r\n", None, True),
            ("negative size", b"-5\r\n" + valid + b"\r\n0\r\n\r\n", None, True),
            ("size overflow", b"ffffffffffffffffffffffff\r\n" + valid + b"\r\n0\r\n\r\n", None, True),
            ("size larger than the data, then half-close", b"1000\r\n" + valid + b"\r\n", None, True),
            ("no last chunk, then half-close", b"%x\r\n%s\r\n" % (len(valid), valid), None, True),
            ("missing CRLF after data", b"%x\r\n%s0\r\n\r\n" % (len(valid), valid), None, True),
            ("garbage JSON in chunks", _chunked([b"{", b"nope"]), "4xx", False),
        ]:
            add("chunked", name, post(CHAT, body, chunked, length=False), expect=expect, hang_ok=hang_ok,
                end="half_close" if hang_ok else "read", timeout=10 if hang_ok else 60)
        step = 1 << 20
        pieces = [b'{"model": "x", "user": "'] + [b"a" * step] * (max_body // step + 1) + [b'"}']
        add("chunked", f"{sum(map(len, pieces))} bytes chunked (over the limit)", post(CHAT, _chunked(pieces), chunked,
                                                                                      length=False), expect="413")

    def request_line_cases(self) -> None:
        """Odd methods, request lines and HTTP versions."""
        rnd, valid, add = self.rnd, self.valid, self.add
        for name, data in [
            ("FOO", http_request("FOO", "/health")), ("PROPFIND", http_request("PROPFIND", CHAT)),
            ("lower-case get", http_request("get", "/health")), ("CONNECT", http_request("CONNECT", "127.0.0.1:443")),
            ("1000-letter method", http_request("X" * 1000, "/health")),
            ("method with NUL", http_request("G\x00T", "/")),
            ("HEAD /health", http_request("HEAD", "/health")), ("OPTIONS *", http_request("OPTIONS", "*")),
            ("TRACE", http_request("TRACE", "/")), ("DELETE chat", http_request("DELETE", CHAT)),
            ("PUT chat with body", http_request("PUT", CHAT, valid)),
            ("HTTP/1.0 without Host", http_request("GET", "/health", version="HTTP/1.0", host="")),
            ("HTTP/1.1 without Host", http_request("GET", "/health", host="")),
            ("HTTP/2.0", http_request("GET", "/health", version="HTTP/2.0")),
            ("HTTP/9.9", http_request("GET", "/health", version="HTTP/9.9")),
            ("HTTP/0.9 request line", b"GET /health\r\n\r\n"), ("no version", b"GET /health \r\n\r\n"),
            ("lower-case version", http_request("GET", "/health", version="http/1.1")),
            ("absolute-form target", http_request("GET", "http://example.com/health")),
            ("target without slash", http_request("GET", "health")), ("empty target", b"GET  HTTP/1.1\r\n\r\n"),
            ("blank lines only", b"\r\n\r\n\r\n\r\n"), ("LF line ends", b"GET /health HTTP/1.1\nHost: x\n\n"),
            ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            ("TLS client hello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + rnd.randbytes(160)),
            ("random line", rnd.randbytes(100) + b"\r\n\r\n"),
        ]:
            add("methods", name, data, hang_ok=True, timeout=10)

    def header_cases(self) -> None:
        """Long URLs and headers, many headers, odd header bytes and values."""
        valid, auth, add, post = self.valid, self.auth, self.add, self.post
        for n in (8 << 10, 64 << 10, 1 << 20):
            add("long", f"path of {n} bytes", http_request("GET", "/" + "a" * n, headers=auth), hang_ok=True,
                timeout=20)
            add("long", f"query of {n} bytes", http_request("GET", "/v1/models?format=" + "b" * n, headers=auth),
                hang_ok=True, timeout=20)
            add("long", f"header value of {n} bytes", http_request("GET", "/health", headers=[("X-Long", "c" * n)]),
                hang_ok=True, timeout=20)
            add("long", f"model id path of {n} bytes", http_request("GET", "/v1/models/" + "d" * n, headers=auth),
                hang_ok=True, timeout=20)
        add("long", "header name of 64 KiB", http_request("GET", "/health", headers=[("X" * 65536, "1")]),
            hang_ok=True, timeout=20)
        for n in (1000, 10000):
            add("long", f"{n} headers", http_request("GET", "/health", headers=[(f"X-H{i}", "v") for i in range(n)]),
                hang_ok=True, timeout=20)
        big_key = [("Authorization", "Bearer " + "k" * (1 << 20))]
        add("long", "Authorization of 1 MiB", http_request("POST", CHAT, valid, big_key), hang_ok=True, timeout=20)
        for name, headers in [
            ("NUL in a header value", [(b"X-A", b"a\x00b")]), ("header without colon", [(b"NoColon", b"")]),
            ("obs-fold continuation line", [(b"X-A", b"a\r\n  folded")]),
            ("non-ASCII header bytes", [(b"X-A", b"\xff\xfe")]),
            ("space before colon", [(b"X-A ", b"1")]), ("empty header name", [(b"", b"1")]),
            ("Authorization Basic", [(b"Authorization", b"Basic eDp5")]),
            ("Authorization empty", [(b"Authorization", b"")]),
            ("Authorization non-ASCII", [(b"Authorization", b"Bearer \xff\xfe")]),
            ("Transfer-Encoding gzip, chunked", [(b"Transfer-Encoding", b"gzip, chunked")]),
            ("Transfer-Encoding identity", [(b"Transfer-Encoding", b"identity")]),
            ("Expect 100-continue", [(b"Expect", b"100-continue")]), ("Expect garbage", [(b"Expect", b"\xff")]),
            ("X-Cerebras-Version-Patch abc", [(b"X-Cerebras-Version-Patch", b"abc")]),
            ("X-Cerebras-Version-Patch huge", [(b"X-Cerebras-Version-Patch", b"9" * 5000)]),
            ("X-Cerebras-Version-Patch -1", [(b"X-Cerebras-Version-Patch", b"-1")]),
            ("X-Cerebras-Version-Patch 1.5", [(b"X-Cerebras-Version-Patch", b"1.5")]),
            ("X-Cerebras-Version-Patch 2", [(b"X-Cerebras-Version-Patch", b"2")]),
            ("Connection: upgrade websocket", [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")]),
            ("Upgrade h2c", [(b"Connection", b"Upgrade, HTTP2-Settings"), (b"Upgrade", b"h2c"),
                             (b"HTTP2-Settings", b"AAA")]),
        ]:
            body = valid if not any(n == b"Transfer-Encoding" for n, _ in headers) else _chunked([valid])
            add("headers", name, post(CHAT, body, headers, length=b"Transfer-Encoding" not in dict(headers)),
                hang_ok=True, timeout=20)

    def path_cases(self) -> None:
        """GET endpoints with odd paths and parameters; pipelined requests."""
        model, valid, auth, add, post = self.model, self.valid, self.auth, self.add, self.post
        for target in ["/v1/models?format=%ff%fe", "/v1/models?format=openrouter&format=bad", "/v1/models?format=",
                       "/v1/models?%00=%00", "/v1/models/%00", "/v1/models/..%2f..%2fetc%2fpasswd",
                       "/v1/models/" + "/" * 1000, f"/v1/models/{model}?format=bad", f"/v1/models/{model}/../..",
                       "/v1/models/%ff", "/%ff", "/%", "/%zz", "/wafer/stats?x=" + "%" * 100, "/health?" + "&" * 5000,
                       "/health#fragment", "/./health", "//health", "/v1//models", "/metrics?name[]=1",
                       "/ready?x=\x7f"]:
            add("gets", target[:60], http_request("GET", target, headers=auth), hang_ok=True, timeout=20)
        add("gets", "GET /health with a body", http_request("GET", "/health", b'{"a": 1}'))
        add("gets", "GET chat", http_request("GET", CHAT, headers=auth))
        add("gets", "POST /v1/models", http_request("POST", "/v1/models", valid, auth))

        # pipelining: a valid request followed by garbage on the same connection (the first answer counts)
        add("pipelining", "valid then garbage", [post(CHAT, valid) + b"\x00GARBAGE\r\n\r\n"], hang_ok=True)
        add("pipelining", "ten /health at once", [http_request("GET", "/health") * 10], expect="2xx")


def corpus(model: str, max_body: int, *, api_key: str | None = None, seed: int = 1) -> list[Case]:
    """Every malformed request of stage 2 except the slow and the concurrent ones."""
    c = _Corpus(model, max_body, api_key, seed)
    for group in (c.json_cases, c.field_cases, c.size_cases, c.nesting_cases, c.duplicate_key_cases, c.text_cases,
                  c.binary_cases, c.encoding_cases, c.framing_cases, c.request_line_cases, c.header_cases,
                  c.path_cases):
        group()
    return c.cases


def _chunked(pieces: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"


def run_slow(url: str, tally: Tally, model: str, *, seconds: float = 8, connections: int = 10,
             api_key: str | None = None) -> dict:
    """Slowloris: ``connections`` requests whose headers, and as many whose bodies, trickle in for
    ``seconds`` (then the rest is sent at once; the server may have answered 408 by then). Normal
    chat completions sent meanwhile must succeed (each is counted, a failed one is a failure);
    returns how many were sent, their worst latency and the failed ones."""
    addr = _addr(url)
    auth = [("Authorization", f"Bearer {api_key}")] if api_key else []
    body = _json(base_chat(model))
    whole = _post(CHAT, body, auth)
    head_end = whole.index(b"\r\n\r\n") + 4

    def trickle(data: bytes, start: int, every: float) -> list:
        """``data[:start]`` at once, then a byte every ``every`` seconds for ``seconds``, then the rest."""
        steps = int(seconds / every)
        chunks: list = [data[:start]]
        for i in range(start, min(len(data) - 1, start + steps)):
            chunks += [every, data[i:i + 1]]
        chunks.append(data[min(len(data) - 1, start + steps):])
        return chunks

    cases = [Case("slow", "headers trickling in", trickle(whole, 20, 0.5), hang_ok=True, timeout=seconds + 60)
             for _ in range(connections)]
    cases += [Case("slow", "body trickling in", trickle(whole, head_end, 0.25), hang_ok=True, timeout=seconds + 60)
              for _ in range(connections)]
    checks = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            t0 = time.time()
            ok, status, detail = chat(url, model, api_key=api_key)
            checks.append({"ok": ok, "detail": detail, "latency_s": round(time.time() - t0, 3)})
            tally.add("raw:slow", status, "normal chat completion while slow requests are open", expect="2xx")
            done.wait(1.0)

    prober = threading.Thread(target=probe, daemon=True)
    with ThreadPoolExecutor(len(cases)) as pool:
        futures = [pool.submit(exchange, addr, c.chunks, timeout=c.timeout) for c in cases]
        time.sleep(1.0)  # the slow requests are under way
        prober.start()
        results = [f.result() for f in futures]
    done.set()
    prober.join()
    for c, status in zip(cases, results):
        tally.add("raw:slow", status, c.name, hang_ok=True)
    failed = [c for c in checks if not c["ok"]]
    return {"probes": len(checks), "failed": failed[:5],
            "max_latency_s": max((c["latency_s"] for c in checks), default=None)}


def run_concurrent_garbage(url: str, tally: Tally, n: int = 100, *, seed: int = 2) -> None:
    """``n`` connections at once, each sending random garbage (or a cut-off request) and closing."""
    rnd = random.Random(seed)
    addr = _addr(url)
    payloads = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            payloads.append(("random bytes", rnd.randbytes(rnd.randint(1, 4096)), True))
        elif kind == 1:
            payloads.append(("random bytes then CRLFCRLF", rnd.randbytes(rnd.randint(1, 512)) + b"\r\n\r\n", True))
        elif kind == 2:
            req = _post(CHAT, rnd.randbytes(rnd.randint(1, 2048)))
            payloads.append(("POST with random body", req, False))
        else:
            req = _post(COMPLETIONS, b'{"model": "x", "prompt": "' + rnd.randbytes(64) + b'"}')
            payloads.append(("request cut off", req[: rnd.randint(1, len(req) - 1)], True))
    barrier = threading.Barrier(n)

    def one(item) -> None:
        name, data, hang_ok = item
        try:
            sock = socket.create_connection(addr, timeout=30)
        except OSError:
            tally.add("raw:concurrent", "dropped", name)
            return
        try:
            barrier.wait(30)
        except threading.BrokenBarrierError:
            pass
        try:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            status = _read_status(sock, time.time() + (5 if hang_ok else 30))
        finally:
            sock.close()
        tally.add("raw:concurrent", status, name, hang_ok=hang_ok)

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(one, payloads))


# --------------------------------------------------------------------------------------------
# stage 3: liveness


def chat(url: str, model: str, *, api_key: str | None = None, timeout: float = 60) -> tuple[bool, int | str, str]:
    """A short real chat completion: (ok, status, detail); ok when it answers 200 with a
    ``chat.completion`` whose first choice has non-empty content."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    try:
        r = httpx.post(url + CHAT, json={"model": model, "messages": [{"role": "user", "content": "Say hi"}],
                                         "max_completion_tokens": 8, "temperature": 0},
                       headers=headers, timeout=timeout)
    except httpx.TimeoutException as e:
        return False, "timeout", repr(e)
    except httpx.HTTPError as e:
        return False, "dropped", repr(e)
    try:
        data = r.json()
        content = data["choices"][0]["message"]["content"]
        ok = r.status_code == 200 and data.get("object") == "chat.completion" and isinstance(content, str) and content
    except (ValueError, KeyError, IndexError, TypeError):
        ok = False
    return bool(ok), r.status_code, f"{r.status_code} {r.text[:300]}"


def health_ok(url: str, timeout: float = 30) -> tuple[bool, str]:
    """``GET /health`` answers 200."""
    try:
        r = httpx.get(url + "/health", timeout=timeout)
    except httpx.HTTPError as e:
        return False, f"{type(e).__name__}: {e}"
    return r.status_code == 200, f"{r.status_code} {r.text[:200]}"


def idle_ok(url: str, timeout: float = 30) -> tuple[bool, str]:
    """``/wafer/stats`` shows every engine idle (no running or waiting request, no running KV cell)."""
    deadline = time.time() + timeout
    detail = ""
    while True:
        try:
            stats = httpx.get(url + "/wafer/stats", timeout=30).json()
            busy = {mid: {k: st.get(k) for k in ("running_requests", "waiting_requests", "kv_cells_running")}
                    for mid, st in stats.items()
                    if st.get("running_requests") or st.get("waiting_requests") or st.get("kv_cells_running")}
            if not busy:
                return True, "idle"
            detail = json.dumps(busy)
        except (httpx.HTTPError, ValueError, AttributeError) as e:
            detail = f"{type(e).__name__}: {e}"
        if time.time() > deadline:
            return False, detail
        time.sleep(0.25)


def liveness(url: str, model: str, *, api_key: str | None = None) -> list[dict]:
    """The closing checks: health, one real chat completion, engines idle."""
    out = []
    for name, check in [("health", lambda: health_ok(url)),
                        ("chat completion", lambda: chat(url, model, api_key=api_key)[::2]),  # (ok, detail)
                        ("engine idle", lambda: idle_ok(url))]:
        ok, detail = check()
        out.append({"check": name, "ok": ok, "detail": detail})
    return out


# --------------------------------------------------------------------------------------------
# the whole run


@dataclass
class Options:
    """The settings of a run (``main``'s command-line options)."""

    url: str | None = None
    requests: int = 10_000
    model: str = DEFAULT_MODEL
    json_path: Path | None = DEFAULT_JSON
    workers: int = 4
    phases: str = "examples,coverage,fuzzing"
    max_time: float = 900
    max_body: int = DEFAULT_MAX_BODY
    slow_seconds: float = 35  # past wafer serve's 30 s header and body timeouts
    slow_connections: int = 20
    concurrent: int = 300
    api_key: str | None = None
    seed: int = 1
    max_tokens: int = 8
    verbose: bool = False


def fuzz(opts: Options, *, proc: subprocess.Popen | None = None, log_path: Path | None = None) -> dict:
    """Run the three stages against ``opts.url``; the results as a dict (``ok`` and the rest as
    written to the JSON file). ``proc`` and ``log_path``, the server's process and log when known,
    add the check that it still runs and the errors its log shows."""
    url = opts.url.rstrip("/")
    tally = Tally()
    started = time.time()
    headers = {"Authorization": f"Bearer {opts.api_key}"} if opts.api_key else None
    stages: dict = {}

    def alive() -> bool:
        return proc is None or proc.poll() is None

    def stage(name: str, fn) -> None:
        t0 = time.time()
        if opts.verbose:
            print(f"fuzz: {name} ...", flush=True)
        result = fn()
        stages[name] = {"duration_s": round(time.time() - t0, 1), "healthy_after": health_ok(url)[0] and alive()}
        if result:
            stages[name]["detail"] = result

    served = served_ids(url, headers)
    stage("schemathesis", lambda: run_schemathesis(
        url, tally, opts.requests, workers=opts.workers, phases=opts.phases, max_time=opts.max_time,
        seed=opts.seed, served=served, api_key=opts.api_key, max_tokens=opts.max_tokens, echo=opts.verbose))
    stage("corpus", lambda: run_cases(url, tally, corpus(opts.model, opts.max_body, api_key=opts.api_key,
                                                         seed=opts.seed)))
    stage("slow", lambda: run_slow(url, tally, opts.model, seconds=opts.slow_seconds,
                                   connections=opts.slow_connections, api_key=opts.api_key))
    stage("concurrent", lambda: run_concurrent_garbage(url, tally, opts.concurrent, seed=opts.seed + 1))
    checks = liveness(url, opts.model, api_key=opts.api_key)
    if proc is not None:
        checks.append({"check": "server process running", "ok": alive(),
                       "detail": "running" if alive() else f"exit code {proc.returncode}"})
    st = stages["schemathesis"]["detail"]
    if opts.requests and st["requests"] == 0:
        checks.append({"check": "schemathesis ran", "ok": False,
                       "detail": st["rounds"][0]["output_tail"][-500:] if st["rounds"] else "no round started"})
    duration = time.time() - started
    ok = tally.server_errors() == 0 and not tally.failures and all(c["ok"] for c in checks)
    return {
        "ok": ok,
        "url": url,
        "requests_total": tally.total,
        "server_errors": tally.server_errors(),
        "duration_s": round(duration, 1),
        "requests_per_s": round(tally.total / duration, 1) if duration else None,
        "sources": tally.summary(),
        "failure_count": len(tally.failures),
        "failures": tally.failures[:200],
        "liveness": checks,
        "stages": stages,
        "slowest": tally.slowest,
        "server_log_errors": log_errors(log_path) if log_path else None,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in opts.__dict__.items()},
    }


def table(result: dict) -> str:
    """The per-source table and the totals, as text."""
    rows = [("source", "total", *CLASSES)]
    totals = Counter()
    for source, s in result["sources"].items():
        rows.append((source, str(s["total"]), *(str(s["by_class"].get(c, 0)) for c in CLASSES)))
        totals["total"] += s["total"]
        for c in CLASSES:
            totals[c] += s["by_class"].get(c, 0)
    rows.append(("all", str(totals["total"]), *(str(totals[c]) for c in CLASSES)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    lines += [
        "",
        f"answers >= 500: {result['server_errors']}",
        f"failures: {result['failure_count']}",
        f"duration: {result['duration_s']} s, {result['requests_per_s']} requests/s",
        "liveness: " + ", ".join(f"{c['check']} {'ok' if c['ok'] else 'FAILED (' + c['detail'][:200] + ')'}"
                                 for c in result["liveness"]),
    ]
    for f in result["failures"][:20]:
        lines.append(f"  FAILURE {f['source']}: {f['case']} -> {f['status']} ({f['problem']})")
    for g in result.get("server_log_errors") or ():
        lines.append(f"server log: {g['count']} x {g['exception'][:150]}")
        if g["where"]:
            lines.append(f"    at {g['where']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="server to fuzz (default: start one)")
    p.add_argument("--requests", type=int, default=10_000, help="schemathesis requests to send (default 10000)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model for the corpus and the liveness checks")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})")
    p.add_argument("--workers", type=int, default=4, help="schemathesis workers (default 4)")
    p.add_argument("--phases", default="examples,coverage,fuzzing", help="schemathesis phases of the first round")
    p.add_argument("--max-time", type=float, default=900, help="schemathesis time budget in seconds (default 900)")
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY,
                   help="the server's body limit (passed to the server this script starts)")
    p.add_argument("--slow-seconds", type=float, default=35, help="how long slow requests trickle (default 35)")
    p.add_argument("--concurrent", type=int, default=300, help="concurrent garbage connections (default 300)")
    p.add_argument("--max-tokens", type=int, default=8,
                   help="most new tokens (and at most 2 choices) of a schemathesis request to a served model")
    p.add_argument("--server-threads", type=int, default=1, help="llama.cpp threads of the server this script starts")
    p.add_argument("--api-key", help="bearer key sent with every request")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--verbose", "-v", action="store_true", help="show progress and schemathesis' output")
    a = p.parse_args(argv)
    opts = Options(url=a.url, requests=a.requests, model=a.model, json_path=a.json, workers=a.workers,
                   phases=a.phases, max_time=a.max_time, max_body=a.max_body_bytes, slow_seconds=a.slow_seconds,
                   concurrent=a.concurrent, api_key=a.api_key, seed=a.seed, max_tokens=a.max_tokens,
                   verbose=a.verbose)
    server = log_path = None
    if not opts.url:
        log_path = Path(tempfile.mkdtemp(prefix="wafer-fuzz-server-")) / "server.log"
        server = start_server(opts.model, opts.max_body, a.server_threads, log_path)
        opts.url = server.url
        print(f"fuzz: started {opts.url} (log {log_path})", flush=True)
    try:
        result = fuzz(opts, proc=server.proc if server else None, log_path=log_path)
    finally:
        if server is not None:
            server.stop(40)
    print(table(result))
    if opts.json_path:
        opts.json_path.parent.mkdir(parents=True, exist_ok=True)
        opts.json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"results: {opts.json_path}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
