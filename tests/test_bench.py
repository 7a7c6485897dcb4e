"""`wafer bench`'s own logic on a stub streaming endpoint: no model, no peers built, a few seconds."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import threading
import time

import numpy as np
import pytest

from wafer.bench import report
from wafer.bench.cli import run_systems
from wafer.bench.client import stream
from wafer.bench.runner import Plan, arrivals, run_level
from wafer.bench.stats import level_metrics, percentile, summary
from wafer.bench.systems import Endpoint, LlamaCppPython, LlamaServer, Raw, Skipped, Wafer
from wafer.bench.workloads import WORKLOADS, Request, WorkloadConfig, estimate_tokens, generate, probe
from wafer.cli.main import main as wafer_main
from wafer.launch import ROOT

pytestmark = pytest.mark.model_free  # needs no model file

pytestmark = pytest.mark.model_free  # needs no model file


class Stub:
    """An OpenAI-compatible streaming endpoint: ``chunks`` content chunks, the first after
    ``first_delay`` s and the others ``delay`` s apart, then a usage chunk; every ``fail_every``-th
    request answers 500, and requests carrying a field of ``reject`` answer 400."""

    def __init__(self, chunks=8, first_delay=0.05, delay=0.01, fail_every=0, reject=(), usage=True, crlf=False):
        self.chunks, self.first_delay, self.delay = chunks, first_delay, delay
        self.fail_every, self.reject, self.usage, self.crlf = fail_every, reject, usage, crlf
        self.bodies: list[dict] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", 0))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(5)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    async def handle(self, reader, writer):
        method, path, _ = (await reader.readline()).decode().split(" ", 2)
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode().partition(":")
            if k.lower() == "content-length":
                length = int(v)
        raw = await reader.readexactly(length) if length else b""
        if method == "GET":
            self._reply(writer, 200, {"object": "list", "data": [{"id": "stub-model"}]})
        else:
            body = json.loads(raw)
            self.bodies.append(body)
            if any(f in body for f in self.reject):
                self._reply(writer, 400, {"error": {"message": f"unsupported field {self.reject[0]}"}})
            elif self.fail_every and len(self.bodies) % self.fail_every == 0:
                self._reply(writer, 500, {"error": {"message": "stub failure"}})
            else:
                await self._stream(writer, body, min(self.chunks, body.get("max_tokens") or self.chunks))
        await writer.drain()
        writer.close()

    def _reply(self, writer, status, obj):
        data = json.dumps(obj).encode()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + data)

    async def _stream(self, writer, body, n):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        sep = "\r\n" if self.crlf else "\n"

        def event(obj):
            data = f"data: {obj if isinstance(obj, str) else json.dumps(obj)}{sep}{sep}".encode()
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))

        event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        await writer.drain()
        for i in range(n):
            await asyncio.sleep(self.first_delay if i == 0 else self.delay)
            event({"choices": [{"index": 0, "delta": {"content": f"t{i} "}}]})
            await writer.drain()
        if self.usage:
            usage = {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": n + 10}
            if "prediction" in body:  # billed: completion_tokens counts the rejected prediction tokens too
                usage.update(completion_tokens=n + 7, completion_tokens_details={
                    "accepted_prediction_tokens": n - 1, "rejected_prediction_tokens": 7})
            event({"choices": [], "usage": usage, "time_info": {"completion_time": 0.5}})
        event("[DONE]")
        writer.write(b"0\r\n\r\n")

    def close(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def stub():
    stubs = []

    def make(**kw):
        stubs.append(Stub(**kw))
        return stubs[-1]

    yield make
    for s in stubs:
        s.close()


def chat_scripts(n, max_tokens=100):
    return [[Request({"messages": [{"role": "user", "content": f"hi {i}"}], "max_tokens": max_tokens,
                      "stream": True, "stream_options": {"include_usage": True}})] for i in range(n)]


# -- percentiles ---------------------------------------------------------------------------------

def test_percentile_hand_computed():
    xs = [4.0, 1.0, 3.0, 2.0]
    assert percentile(xs, 0) == 1.0 and percentile(xs, 100) == 4.0
    assert percentile(xs, 50) == pytest.approx(2.5)
    assert percentile(xs, 90) == pytest.approx(3.7)  # rank 0.9 * 3 = 2.7: 3 + 0.7 * (4 - 3)
    assert percentile(xs, 99) == pytest.approx(3.97)
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(xs, 101)


def test_percentile_matches_numpy():
    rng = random.Random(7)
    for n in (1, 2, 3, 10, 101):
        xs = [rng.expovariate(3.0) for _ in range(n)]
        for p in (0, 1, 25, 50, 90, 99, 100):
            assert percentile(xs, p) == pytest.approx(float(np.percentile(xs, p)))


def test_summary():
    s = summary([1, 2, 3, 4, 5])
    assert s == {"n": 5, "mean": 3, "min": 1, "max": 5, "p50": 3, "p90": pytest.approx(4.6), "p99": pytest.approx(4.96)}
    assert summary([]) is None


# -- workloads -----------------------------------------------------------------------------------

def test_workloads_are_seeded():
    for w in WORKLOADS:
        assert generate(w, 3, seed=1, level=4) == generate(w, 3, seed=1, level=4)
        assert generate(w, 3, seed=1, level=4) != generate(w, 3, seed=2, level=4)
        assert generate(w, 3, seed=1, level=4) != generate(w, 3, seed=1, level=8)  # levels don't share caches
    assert probe("chat", 1).body["messages"] != generate("chat", 1, 1, 1)[0][0].body["messages"]


def text_of(req: Request) -> str:
    return " ".join(m["content"] for m in req.body["messages"])


def test_workload_shapes():
    cfg = WorkloadConfig(prompt_len=300, output_len=48)
    for s in generate("chat", 5, 0, 1, cfg):
        (req,) = s
        assert 0.8 * 300 < estimate_tokens(text_of(req)) + 40 < 1.2 * 300
        assert req.fixed_output == req.body["max_tokens"] == 48 and req.body["temperature"] == 0
        assert req.body["stream"] and req.body["stream_options"] == {"include_usage": True}

    shared = generate("shared-prefix", 6, 0, 2, cfg)
    systems = {s[0].body["messages"][0]["content"] for s in shared}
    questions = {s[0].body["messages"][1]["content"] for s in shared}
    assert len(systems) == 1 and len(questions) == 6
    assert estimate_tokens(systems.pop()) == pytest.approx(cfg.prefix_len, rel=0.1)
    assert all(s[0].fixed_output == cfg.short_output for s in shared)

    for conv in generate("multi-turn", 3, 0, 1, cfg):
        assert len(conv) == cfg.turns
        msgs = [r.body["messages"] for r in conv]
        for a, b in zip(msgs, msgs[1:]):
            assert len(b) == len(a) + 2 and b[: len(a)] == a and b[len(a)]["role"] == "assistant"
        assert all(r.fixed_output == cfg.short_output for r in conv)

    (js,) = generate("json-schema", 1, 0, 1, cfg)[0]
    fmt = js.body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["type"] == "object" and js.fixed_output is None
    assert js.body["max_tokens"] == cfg.json_max

    (ce,) = generate("code-edit", 1, 0, 1, cfg)[0]
    code = ce.body["prediction"]["content"]
    assert ce.body["prediction"]["type"] == "content" and code in ce.body["messages"][0]["content"]
    assert 50 <= code.count("\n") <= 80 and "def " in code and ce.fixed_output is None
    assert ce.body["max_tokens"] == pytest.approx(1.3 * estimate_tokens(code, code=True), rel=0.01)
    assert "prediction" not in ce.without("prediction").body

    with pytest.raises(ValueError):
        generate("nope", 1, 0, 1)


def test_plan_counts():
    plan = Plan(workloads=["chat", "multi-turn"], levels=[1, 8])
    assert plan.count(1) == 4 and plan.count(8) == 16
    assert plan.total_requests() == (4 + 16) + 3 * (4 + 16)
    assert Plan(workloads=["chat"], levels=[1, 8], requests_per_level=3).total_requests() == 6


# -- client and runner against the stub ----------------------------------------------------------

def test_closed_loop_measures_the_stub(stub):
    s = stub(chunks=10, first_delay=0.05, delay=0.01, crlf=True)
    records, wall = asyncio.run(run_level(lambda r: stream(s.url, r.path, r.body), chat_scripts(4), concurrency=2))
    m = level_metrics(records, wall, 2)
    assert m["requests"] == 4 and m["ok"] == 4 and m["errors"] == 0
    assert all(r.output_tokens == 10 and r.prompt_tokens == 10 and len(r.itl) == 9 for r in records)
    assert 0.045 <= m["ttft_s"]["p50"] < 0.2
    assert 0.009 <= m["itl_s"]["p50"] < 0.04 and m["itl_s"]["n"] == 36
    assert 0.009 <= m["tpot_s"]["p50"] < 0.04
    assert 25 < m["per_stream_tok_s"]["p50"] <= 110
    assert m["aggregate_tok_s"] == pytest.approx(40 / wall)
    assert 2 * (0.05 + 9 * 0.01) <= wall < 2.0  # two rounds of two streams


def test_chunks_counted_without_usage_and_errors_counted(stub):
    s = stub(chunks=5, first_delay=0.0, delay=0.0, usage=False, fail_every=2)
    records, wall = asyncio.run(run_level(lambda r: stream(s.url, r.path, r.body), chat_scripts(6), concurrency=3))
    m = level_metrics(records, wall, 3)
    assert (m["ok"], m["errors"]) == (3, 3)
    assert m["error_samples"] and m["error_samples"][0].startswith("HTTP 500")
    assert all(r.output_tokens == 5 and r.prompt_tokens is None for r in records if r.ok)
    assert m["output_tokens"] == 15


def test_unreachable_endpoint_is_an_error():
    from wafer.launch import free_port

    rec = asyncio.run(stream(f"http://127.0.0.1:{free_port()}/v1", "/chat/completions", {}))
    assert not rec.ok and rec.error


def test_rate_mode_follows_arrivals(stub):
    offsets = arrivals(2000, rate=50.0, seed=3)
    assert offsets[0] == 0 and np.mean(np.diff(offsets)) == pytest.approx(1 / 50.0, rel=0.1)
    assert arrivals(5, 50.0, 3) == offsets[:5] and arrivals(5, 50.0, 4) != offsets[:5]

    s = stub(chunks=1, first_delay=0.0, delay=0.0)
    expected = arrivals(10, rate=20.0, seed=1)[-1]
    records, wall = asyncio.run(run_level(lambda r: stream(s.url, r.path, r.body), chat_scripts(10), concurrency=4,
                                          mode="rate", rate=20.0, seed=1))
    assert len(records) == 10 and all(r.ok for r in records)
    assert expected <= wall < expected + 1.0
    sends = sorted(r.t_send for r in records)
    assert sends[-1] - sends[0] == pytest.approx(expected, abs=0.25)
    with pytest.raises(ValueError):
        asyncio.run(run_level(lambda r: None, chat_scripts(1), 1, mode="rate"))


# -- systems' dialects ---------------------------------------------------------------------------

def test_system_bodies():
    fixed = generate("chat", 1, 0, 1)[0][0]
    (js,) = generate("json-schema", 1, 0, 1)[0]
    w = Wafer("smollm2-135m", "smollm2-135m", 2, 4).body(fixed)
    assert w["model"] == "smollm2-135m" and w["min_completion_tokens"] == w["max_tokens"] == 64
    assert LlamaServer("x.gguf", "m", 2, 4, 2048).body(fixed)["ignore_eos"] is True
    lcp = LlamaCppPython("x.gguf", "m", 2, 2048, eog_ids=[2, 0])
    assert lcp.body(fixed)["logit_bias"] == {"2": -1e9, "0": -1e9}
    schema = js.body["response_format"]["json_schema"]["schema"]
    assert lcp.body(js)["response_format"] == {"type": "json_object", "schema": schema}
    assert "logit_bias" not in lcp.body(js)
    plain = Endpoint("http://h:1/v1", "m").body(fixed)
    assert plain == {**fixed.body, "model": "m"}
    raw = Raw("x.gguf", 2, 4, 2048)
    assert raw.unsupported("chat") is None and raw.unsupported("shared-prefix") is None
    assert all(raw.unsupported(w) for w in ("multi-turn", "json-schema", "code-edit"))


# -- results, ratios, plots, report --------------------------------------------------------------

class Unavailable(Endpoint):
    name = "llama-server"

    def start(self, log_dir):
        raise Skipped("llama-server is not built and cannot be built here (cmake is not installed)")


def named(system, name):
    system.name = name
    return system


def test_run_systems_results_report_plots(stub, tmp_path):
    fast = stub(chunks=6, first_delay=0.01, delay=0.002, reject=("prediction",))
    slow = stub(chunks=6, first_delay=0.03, delay=0.006)
    systems = [named(Endpoint(fast.url, "m"), "wafer"), Unavailable(fast.url, "m"),
               named(Endpoint(slow.url, "m"), "peer")]
    plan = Plan(workloads=["chat", "code-edit"], levels=[1, 2], requests_per_level=2, seed=5)
    results = run_systems(systems, plan, {"id": "stub-model"}, tmp_path, "wafer bench --url stub", {"threads": 2},
                          progress=False)

    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    for key, typ in [("schema", str), ("created", str), ("command", str), ("model", dict), ("machine", dict),
                     ("config", dict), ("workloads", dict), ("systems", dict), ("ratios", dict), ("plots", dict)]:
        assert isinstance(saved[key], typ), key
    assert saved["schema"] == report.SCHEMA and saved["config"]["concurrency"] == [1, 2]
    assert {"cores", "cpu", "os", "python", "llama_cpp_python", "wafer"} <= set(saved["machine"])

    skipped = saved["systems"]["llama-server"]
    assert skipped["status"] == "skipped" and "cmake" in skipped["reason"] and skipped["workloads"] == {}

    wafer = saved["systems"]["wafer"]
    assert wafer["status"] == "ok"
    for wl in ("chat", "code-edit"):
        levels = wafer["workloads"][wl]["levels"]
        assert [lv["concurrency"] for lv in levels] == [1, 2]
        for lv in levels:
            assert lv["requests"] == 2 and lv["ok"] == 2 and lv["errors"] == 0
            assert isinstance(lv["aggregate_tok_s"], float) and lv["aggregate_tok_s"] > 0
            for k in ("ttft_s", "tpot_s", "itl_s", "per_stream_tok_s", "e2e_s"):
                assert set(lv[k]) == {"n", "mean", "min", "max", "p50", "p90", "p99"}, k
    assert any("no prediction support" in n for n in wafer["workloads"]["code-edit"]["notes"])
    assert any("prediction" in b for b in slow.bodies)  # the peer accepted it: sent as is
    peer_edit = saved["systems"]["peer"]["workloads"]["code-edit"]["levels"][0]
    assert peer_edit["output_tokens_per_request"]["mean"] == 6  # rejected prediction tokens are not output
    assert peer_edit["accepted_prediction_tokens"]["mean"] == 5
    measured = [b for b in fast.bodies if b["messages"][0]["content"].startswith("Rename")]
    assert sum("prediction" in b for b in measured) == 1  # only the rejected probe carried it

    rat = saved["ratios"]["peer"]["chat"]
    assert [r["concurrency"] for r in rat] == [1, 2]
    assert all(r["tok_s_ratio"] > 1 and r["ttft_ratio"] < 1 for r in rat)  # the fast stub is "wafer"
    assert "llama-server" not in saved["ratios"]

    for names in saved["plots"].values():
        for f in names.values():
            assert (tmp_path / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(saved["plots"]) == {"chat", "code-edit"}

    md = (tmp_path / "report.md").read_text()
    assert "| system | C | ok/err | agg tok/s" in md and "tok/s wafer/peer" in md
    assert "skipped: llama-server is not built" in md and "chat-throughput.png" in md
    assert "wafer bench --url stub" in md
    assert "skipped: llama-server" in report.console(saved)


def test_ratio_computation():
    def lv(c, tok_s, ttft):
        return {"concurrency": c, "aggregate_tok_s": tok_s, "ttft_s": {"p50": ttft} if ttft else None}

    def ok(*levels):
        return {"status": "ok", "workloads": {"chat": {"status": "ok", "levels": list(levels)}}}

    results = {"systems": {
        "wafer": ok(lv(1, 100.0, 0.1), lv(2, 150.0, 0.2)),
        "llama-server": ok(lv(1, 50.0, 0.2)),
        "raw": ok(lv(1, 0.0, None), lv(2, 300.0, 0.1)),
        "gone": {"status": "skipped", "reason": "x", "workloads": {}},
    }}
    r = report.ratios(results)
    assert r["llama-server"]["chat"] == [{"concurrency": 1, "tok_s_ratio": 2.0, "ttft_ratio": 0.5}]
    assert r["raw"]["chat"] == [{"concurrency": 1, "tok_s_ratio": None, "ttft_ratio": None},
                                {"concurrency": 2, "tok_s_ratio": 0.5, "ttft_ratio": 2.0}]
    assert "gone" not in r
    assert report.ratios({"systems": {"peer": results["systems"]["raw"]}}) == {}


RESULTS = ROOT / "bench" / "results"
SWEEPS = [RESULTS / "sweep-smollm2-135m" / "results.json", RESULTS / "sweep-qwen2.5-coder-0.5b" / "results.json"]


def test_render_readme(stub, tmp_path):
    s = stub(chunks=3, first_delay=0.0, delay=0.0)
    run_dir = tmp_path / "results" / "serve-sweep-stub"
    run_dir.mkdir(parents=True)
    plan = Plan(workloads=["chat"], levels=[1], requests_per_level=1)
    run_systems([named(Endpoint(s.url, "m"), "wafer"), named(Endpoint(s.url, "m"), "peer")], plan,
                {"id": "stub-model"}, run_dir, "wafer bench x", {"threads": 1}, progress=False)
    readme = tmp_path / "README.md"
    readme.write_text("# Bench\n\nintro\n\n<!-- bench:sweep-ratios -->\nold\n<!-- bench:end -->\n\n"
                      "<!-- bench:sweep-findings old.json -->\n<!-- bench:end -->\n\n## Latest\n\n"
                      "<!-- bench:sweep -->\nold\n<!-- bench:end -->\n\ntail\n")
    assert wafer_main(["bench", "--render-readme", str(readme), str(run_dir / "results.json")]) == 0
    text = readme.read_text()
    assert text.startswith("# Bench\n\nintro\n") and text.endswith("<!-- bench:end -->\n\ntail\n")
    assert "old" not in text and text.count("<!-- bench:end -->") == 3
    assert text.count("results/serve-sweep-stub/results.json -->") == 3  # the markers name their files now
    assert "| stub-model, chat | peer |" in text  # the ratio overview
    assert "- **stub-model**" in text and "wafer / peer: throughput" in text  # the findings
    assert "### wafer bench: stub-model" in text and "(results/serve-sweep-stub/chat-throughput.png)" in text
    again = readme.read_text()
    assert wafer_main(["bench", "--render", str(readme)]) == 0 and readme.read_text() == again  # from its markers
    assert wafer_main(["bench", "--render-readme", str(tmp_path / "missing.md")]) == 1
    (tmp_path / "plain.md").write_text("no blocks\n")
    assert wafer_main(["bench", "--render", str(tmp_path / "plain.md")]) == 1
    (tmp_path / "odd.md").write_text("<!-- bench:nope x.json -->\n<!-- bench:end -->\n")
    assert wafer_main(["bench", "--render", str(tmp_path / "odd.md")]) == 1


def lv(c, tok_s, ttft=0.1):
    return {"concurrency": c, "aggregate_tok_s": tok_s, "ttft_s": {"p50": ttft}}


def sweep(systems: dict, levels=(1, 2, 4), workloads=("chat",)) -> dict:
    return {"model": {"id": "m"}, "created": "2026-12-01 10:00:00 +0000", "machine": {"cores": 2, "cpu": "X"},
            "config": {"threads": 2, "concurrency": list(levels), "workloads": list(workloads)}, "systems": systems}


def ok(*levels, wl="chat"):
    return {"status": "ok", "workloads": {wl: {"status": "ok", "levels": list(levels)}}}


def test_findings_are_computed_from_the_numbers():
    from wafer.bench.findings import findings

    res = sweep({"wafer": ok(lv(1, 100.0, 0.1), lv(2, 150.0, 0.2), lv(4, 120.0, 0.4)),
                 "peer": ok(lv(1, 50.0, 0.2), lv(2, 200.0, 0.1), lv(4, 0.996 * 120, 0.2)),
                 "gone": {"status": "skipped", "reason": "cmake missing", "workloads": {}},
                 "raw": {"status": "ok", "workloads": {"chat": {"status": "skipped", "reason": "no state"}}}})
    text = findings([res])
    assert text.startswith("- **m** (2026-12-01 10:00, 2 cores X, 2 threads, concurrency 1, 2, 4):")
    assert "wafer / peer: throughput 0.75x (C=2) to 2.00x (C=1); below 1.00x at C=2; TTFT p50 0.50x (C=1) to 2.00x (C=2)" in text
    assert "peak aggregate tok/s: wafer 150.0 at C=2 (0.80x of it at C=4), peer 200.0 at C=2 (0.60x of it at C=4)" in text
    assert "wafer's throughput is at least peer's in 2 of 3 workload levels" in text  # 1.004 shows as 1.00: not behind
    assert "not in this run: shared-prefix, multi-turn, json-schema, code-edit" in text
    assert "gone skipped: cmake missing" in text and "raw n/a on chat: no state" in text
    behind = sweep({"wafer": ok(lv(1, 10.0), lv(2, 10.0), lv(4, 10.0)), "peer": ok(lv(1, 20.0), lv(2, 20.0))})
    assert "below 1.00x at every level" in findings([behind])
    assert findings([]) == "No results yet.\n"


def test_ratio_overview_spans_every_level():
    a = sweep({"wafer": ok(lv(1, 100.0), lv(2, 100.0)), "peer": ok(lv(1, 50.0), lv(2, 200.0))}, levels=(1, 2))
    b = sweep({"wafer": ok(lv(1, 30.0), lv(8, 30.0)), "peer": ok(lv(8, 60.0))}, levels=(1, 8))
    b["model"]["id"] = "n"
    table = report.ratio_overview([a, b])
    assert table.splitlines()[0] == "| model, workload | peer | C=1 | C=2 | C=8 |"
    assert "| m, chat | peer | 2.00 | 0.50 |  |" in table and "| n, chat | peer |  |  | 0.50 |" in table


def test_committed_results_render():
    """The results files in bench/results/ render into every kind of block (no model, nothing run)."""
    from wafer.bench import prediction, prefix_cache, serve_vs_raw, structured
    from wafer.bench.findings import findings

    sweeps = [json.loads(f.read_text()) for f in SWEEPS]
    assert "smollm2-135m, chat | llama-server | 1.00 | 0.90 |" in report.ratio_overview(sweeps)
    assert "qwen2.5-coder-0.5b" in findings(sweeps)

    def load(name):
        return [json.loads((RESULTS / f"{name}-{m}.json").read_text()) for m in ("smollm2-135m", "qwen2.5-coder-0.5b")]

    text = serve_vs_raw.render(load("serve"))
    assert "| smollm2-135m | 2026-12-03 16:49 | 47 / 128 | 3 | off | 115.3 | 121.4 | 1.053 |" in text
    assert "| qwen2.5-coder-0.5b | 16 | 72.4 | 4.8 | 1790.7 |" in text
    text = prefix_cache.render(load("prefix-cache"))
    assert "| smollm2-135m | wafer | 2020 | 9089.9 | 204.2 | 0.022 | 2009 | 217.2 | 0.024 | 2009 | 793 / 4710 (0.17) |" in text
    text = structured.render(load("structured"))
    assert "| smollm2-135m | 0.953 (0.949) | 0.935 (0.945) | 0.93 | 20/20 | 0/20 |" in text
    assert "| qwen2.5-coder-0.5b | 60 | 230 | 2078 | 0.6 | 3.8 | 47 |" in text
    text = prediction.render(load("prediction"))
    assert "| qwen2.5-coder-0.5b | **16** | 1,648 | 50.0 | 31.8 | **0.64** | 39.1 | 66.4 | 1,642 / 17 | yes |" in text
    assert "| qwen2.5-coder-0.5b, ms (after 1,655 tokens) | 19.5 | 38.1 | 60.3 | 99.1 | 168.9 | 325.5 |" in text


# -- step costs ----------------------------------------------------------------------------------

def test_step_costs_measure_any_step_runner():
    from wafer.bench.step_costs import Shape, measure, render, shapes

    assert shapes([1, 8], 255) == [Shape(1, 0), Shape(1, 255), Shape(8, 0), Shape(8, 255)]
    assert shapes([4], 0) == [Shape(4, 0)]
    calls = []

    def setup(shape):
        calls.append(("setup", shape))

        def step():
            calls.append(("step", shape))
            time.sleep(0.002 * (1 + shape.decoding / 8 + shape.chunk / 255))
            return 1 + bool(shape.chunk) if shape.decoding < 8 else None
        return step

    rows = measure(setup, shapes([1, 8], 255), steps=5, warmup=2)
    assert [c for c in calls if c[0] == "setup"] == [("setup", s) for s in shapes([1, 8], 255)]
    assert len(calls) == 4 * (1 + 2 + 5)
    assert [(r["decoding"], r["chunk"], r["tokens"], r["ubatches"]) for r in rows] == [
        (1, 0, 1, 1), (1, 255, 256, 2), (8, 0, 8, None), (8, 255, 263, None)]
    for r in rows:
        assert r["ms"]["n"] == 5 and 2 <= r["ms"]["min"] <= r["ms"]["p50"] < 200
        assert r["cpu_ms"]["n"] == 5 and r["cpu_ms"]["p50"] < r["ms"]["p50"]  # sleeping takes no CPU
        assert r["decode_tok_s"] == pytest.approx(r["decoding"] / r["ms"]["p50"] * 1000)
    assert rows[2]["ms"]["p50"] > rows[0]["ms"]["p50"]
    results = {"model": "m", "system": "fake", "layout": "none", "context": 4, "steps": 5, "threads": 1,
               "date": "today", "rows": rows}
    text = render([json.loads(json.dumps(results))])
    assert "| model | system | threads | decoding seqs | + chunk tokens | ubatches |" in text
    assert "| m | fake | 1 | 1 | 255 | 2 |" in text and "| m | fake | 1 | 8 | – | – |" in text


# -- the launcher, the client's text, the scenarios' command line --------------------------------

def test_launch_process(tmp_path):
    from wafer.launch import NotReady, Process

    p = Process([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"], tmp_path / "a.log")
    p.wait_ready(lambda: "up" in p.log_text(), "sleeper", timeout=20)
    p.stop()
    assert p.proc.returncode is not None
    p.stop()  # twice is fine
    bad = Process([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], tmp_path / "b.log")
    with pytest.raises(NotReady, match="exited with status 3: boom"):
        bad.wait_ready(lambda: False, "crasher", timeout=20)
    slow = Process([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "c.log")
    with pytest.raises(NotReady, match="not ready after 0.5 s"):
        slow.wait_ready(lambda: False, "sleeper", timeout=0.5)
    assert slow.proc.poll() is not None  # stopped


def test_stream_one_keeps_text_and_usage(stub):
    from wafer.bench.client import stream_one

    s = stub(chunks=3, first_delay=0.0, delay=0.0)
    rec = stream_one(s.url, {"messages": [{"role": "user", "content": "x"}], "max_tokens": 3})
    assert rec.ok and rec.text == "t0 t1 t2 " and rec.usage["completion_tokens"] == 3
    assert rec.time_info == {"completion_time": 0.5}
    assert s.bodies[-1]["stream"] is True and s.bodies[-1]["stream_options"] == {"include_usage": True}


def test_scenarios_parse():
    import argparse

    from wafer.bench.cli import add_args

    parser = argparse.ArgumentParser()
    add_args(parser)
    a = parser.parse_args(["prefix-cache", "--model", "m", "--no-peer", "--repeats", "2"])
    assert (a.scenario, a.model, a.no_peer, a.repeats, a.system_tokens) == ("prefix-cache", "m", True, 2, 2000)
    a = parser.parse_args(["prediction"])
    assert (a.model, a.ks) == ("qwen2.5-coder-0.5b", "8,16,32")
    a = parser.parse_args(["step-costs", "--seqs", "1,4,16,32"])
    assert (a.seqs, a.chunk, a.context) == ("1,4,16,32", 255, 256)
    a = parser.parse_args(["--model", "m", "--workloads", "chat"])
    assert a.scenario is None and a.workloads == "chat"
    a = parser.parse_args(["--render-readme", "R.md", "a.json", "b.json"])
    assert a.scenario is None and a.render_readme == ["R.md", "a.json", "b.json"]
    for name in ("serve-vs-raw", "structured"):
        assert parser.parse_args([name]).scenario == name
