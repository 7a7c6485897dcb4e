"""The systems under test, each started by the bench on loopback with the same GGUF and threads.

Every HTTP system gets the same request bodies plus, where the workload fixes the output length,
its own way of generating exactly that many tokens (greedy, max_tokens = length): wafer
``min_completion_tokens``, llama-server ``ignore_eos``, llama-cpp-python a ``logit_bias`` banning
the end-of-generation tokens; an ``--url`` endpoint gets plain bodies. A system that cannot be
built, installed or started raises Skipped with the reason and is reported with no numbers.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from ..launch import NotReady, Process, WaferServer, free_port
from . import client, peers
from .client import Record
from .runner import arrivals, run_level
from .workloads import Request, Script

IGNORES_PREDICTION = "accepts the prediction field and ignores it (no predicted outputs)"


class Skipped(Exception):
    """The system cannot run on this machine; the message says why."""


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


class HttpSystem:
    """An OpenAI-compatible server reached through the lean streaming client."""

    name = "endpoint"
    kind = "http"
    log_prefix = ""  # its log: <log_dir>/<log_prefix><name>.log

    def __init__(self, model_id: str, api_key: str | None = None, timeout: float = 600.0):
        self.model_id = model_id
        self.api_key = api_key
        self.timeout = timeout
        self.base_url: str | None = None  # the OpenAI base URL (.../v1)
        self.root: str | None = None  # the server's root URL, for its own paths (/health, /wafer/stats)
        self.server: Process | None = None
        self.version: str | None = None
        self.notes: list[str] = []

    def start(self, log_dir: Path) -> None:
        """Start the server (log in ``log_dir``); Skipped when it cannot run here."""

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def unsupported(self, workload: str) -> str | None:
        """Why this system cannot run ``workload`` (None: it can)."""
        return None

    def workload_notes(self, workload: str) -> list[str]:
        return []

    def body(self, req: Request) -> dict:
        """The body this system receives for ``req``."""
        return {**req.body, "model": self.model_id}

    async def send(self, req: Request) -> Record:
        return await client.stream(self.base_url, req.path, self.body(req), self.api_key, self.timeout)

    def run_level(self, scripts: list[Script], concurrency: int, mode: str = "closed", rate: float | None = None,
                  seed: int = 0, on_request=None) -> tuple[list[Record], float]:
        return asyncio.run(run_level(self.send, scripts, concurrency, mode, rate, seed, on_request))

    def info(self) -> dict:
        return {"kind": self.kind, "version": self.version, "url": self.base_url,
                "command": " ".join(self.server.cmd) if self.server else None, "notes": self.notes}

    def log_path(self, log_dir: Path) -> Path:
        return log_dir / f"{self.log_prefix}{self.name}.log"

    def _answers(self, path: str, base: str | None = None) -> bool:
        return asyncio.run(client.get_json(base or self.base_url, path, self.api_key, timeout=2)) is not None

    def _launch(self, cmd: list[str], port: int, log_dir: Path, ready, what: str, env: dict | None = None) -> None:
        """Start ``cmd`` (serving on ``port``) and wait until ``ready()``; Skipped when it exits or times out."""
        self.root = f"http://127.0.0.1:{port}"
        self.base_url = self.root + "/v1"
        self.server = Process(cmd, self.log_path(log_dir), env)
        try:
            self.server.wait_ready(ready, what)
        except NotReady as e:
            raise Skipped(str(e)) from e


class Endpoint(HttpSystem):
    """Any OpenAI-compatible endpoint (``--url``): plain bodies, nothing started."""

    def __init__(self, url: str, model_id: str, api_key: str | None = None, timeout: float = 600.0):
        super().__init__(model_id, api_key, timeout)
        self.base_url = url.rstrip("/")
        self.notes = ["plain OpenAI-compatible bodies: output lengths are whatever the endpoint generates"]

    def start(self, log_dir: Path) -> None:
        if asyncio.run(client.get_json(self.base_url, "/models", self.api_key)) is None:
            self.notes.append("GET /models did not answer 200")


class Wafer(HttpSystem):
    name = "wafer"

    def __init__(self, model: str, model_id: str, threads: int, parallel: int, cache_dir: str | None = None,
                 timeout: float = 600.0, kv_cells: int = 0, extra: list[str] = ()):
        super().__init__(model_id, timeout=timeout)
        self.model, self.threads, self.parallel, self.cache_dir = model, threads, parallel, cache_dir
        self.kv_cells = kv_cells  # the KV memory llama-server gets (parallel x slot context), for equal footing
        self.extra = list(extra)  # more `wafer serve` options
        from .. import __version__

        self.version = __version__

    def start(self, log_dir: Path) -> None:
        args = ["--model", self.model, "--threads", str(self.threads), "--parallel", str(self.parallel),
                "--no-access-log", "--log-level", "warning", *self.extra]
        if self.cache_dir:
            args += ["--cache-dir", self.cache_dir]
        if self.kv_cells:
            args += ["--kv-size", str(self.kv_cells)]
        try:
            self.server = WaferServer(args, self.log_path(log_dir))
        except NotReady as e:
            raise Skipped(str(e)) from e
        self.root = self.server.url
        self.base_url = self.root + "/v1"

    def body(self, req: Request) -> dict:
        body = super().body(req)
        if req.fixed_output:
            body["min_completion_tokens"] = req.fixed_output
        return body


class LlamaServer(HttpSystem):
    name = "llama-server"

    def __init__(self, model_path: str, model_id: str, threads: int, parallel: int, slot_ctx: int,
                 timeout: float = 600.0):
        super().__init__(model_id, timeout=timeout)
        self.model_path, self.threads, self.parallel, self.slot_ctx = model_path, threads, parallel, slot_ctx
        self.notes = ["continuous batching, default prompt cache; fixed lengths via ignore_eos"]

    def start(self, log_dir: Path) -> None:
        binary = peers.llama_server(build=False)
        if binary is None:
            print("wafer bench: building llama-server in the bench cache (several minutes the first time)...",
                  file=sys.stderr, flush=True)
            try:
                binary = peers.llama_server(build=True)
            except (subprocess.CalledProcessError, OSError, IndexError) as e:
                raise Skipped(f"llama-server could not be built: {e}") from e
            if binary is None:
                raise Skipped("llama-server is not built and cannot be built here (cmake is not installed)")
        v = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
        self.version = next((line.split(":", 1)[1].strip() for line in (v.stdout + v.stderr).splitlines()
                             if line.startswith("version:")), None)
        port = free_port()
        cmd = [str(binary), "-m", self.model_path, "--host", "127.0.0.1", "--port", str(port),
               "-t", str(self.threads), "-tb", str(self.threads), "--parallel", str(self.parallel),
               "-c", str(self.parallel * self.slot_ctx), "--cont-batching", "--jinja", "-fa", "on", "--no-webui"]
        self._launch(cmd, port, log_dir, lambda: self._answers("/health", self.root), "llama-server")

    def workload_notes(self, workload: str) -> list[str]:
        return [IGNORES_PREDICTION] if workload == "code-edit" else []

    def body(self, req: Request) -> dict:
        body = super().body(req)
        if req.fixed_output:
            body["ignore_eos"] = True
        return body


class LlamaCppPython(HttpSystem):
    name = "llama-cpp-python"

    def __init__(self, model_path: str, model_id: str, threads: int, slot_ctx: int, eog_ids: list[int],
                 timeout: float = 600.0):
        super().__init__(model_id, timeout=timeout)
        self.model_path, self.threads, self.slot_ctx, self.eog_ids = model_path, threads, slot_ctx, eog_ids
        self.version = package_version("llama-cpp-python")
        self.notes = ["one request at a time (no parallel decoding), interrupt_requests off; fixed lengths via "
                      "logit_bias on the end-of-generation tokens"]

    def start(self, log_dir: Path) -> None:
        try:
            deps = peers.llama_cpp_python_server()
        except RuntimeError as e:
            raise Skipped(str(e)) from e
        port = free_port()
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", self.model_path, "--model_alias", self.model_id,
               "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(self.threads),
               "--n_threads_batch", str(self.threads), "--n_ctx", str(self.slot_ctx), "--flash_attn", "true",
               "--interrupt_requests", "false", "--verbose", "false"]
        self._launch(cmd, port, log_dir, lambda: self._answers("/models"), "llama_cpp.server",
                     env={**os.environ, "PYTHONPATH": peers.pythonpath(deps)})

    def workload_notes(self, workload: str) -> list[str]:
        if workload == "json-schema":
            return ["response_format sent as its dialect {type: json_object, schema}"]
        return [IGNORES_PREDICTION] if workload == "code-edit" else []

    def body(self, req: Request) -> dict:
        body = super().body(req)
        if req.fixed_output:
            body["logit_bias"] = {str(t): -1e9 for t in self.eog_ids}
        fmt = body.get("response_format")
        if fmt and fmt.get("type") == "json_schema":
            body["response_format"] = {"type": "json_object", "schema": fmt["json_schema"]["schema"]}
        return body


class Raw:
    """The raw llama.cpp loop in this process: the no-server ceiling (chat-shaped workloads only)."""

    name = "raw"
    kind = "in-process"
    UNSUPPORTED = {
        "multi-turn": "the raw loop keeps no conversation state between requests",
        "json-schema": "the raw loop has no grammar-constrained sampling",
        "code-edit": "the raw loop has no predicted outputs (speculative verification)",
    }

    def __init__(self, model_path: str, threads: int, max_concurrency: int, slot_ctx: int):
        self.model_path, self.threads, self.slot_ctx = model_path, threads, slot_ctx
        self.max_concurrency = max_concurrency
        self.version = f"llama-cpp-python {package_version('llama-cpp-python')}"
        self.notes = ["in-process greedy loop, one llama_batch per step, one KV stream per sequence, common "
                      "prompt prefix of a level prefilled once and copied to each stream; prompts rendered with "
                      "the GGUF's chat template"]
        self.loop = None
        self.model = None
        self.template = None

    def start(self, log_dir: Path) -> None:
        from ..chat.template import template_for_model
        from ..engine.llama import LlamaModel
        from .rawloop import RawLoop

        self.model = LlamaModel(self.model_path)
        m = self.model
        self.template = template_for_model(m.metadata, m.token_text(m.bos_id), m.token_text(m.eos_id))
        n_seq = self.max_concurrency + 1
        self.loop = RawLoop(self.model_path, n_ctx=n_seq * self.slot_ctx, threads=self.threads, n_seq=n_seq)

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.close()
            self.loop = None
        if self.model is not None:
            self.model.close()
            self.model = None

    def unsupported(self, workload: str) -> str | None:
        return self.UNSUPPORTED.get(workload)

    def workload_notes(self, workload: str) -> list[str]:
        return []

    def tokens(self, req: Request) -> list[int]:
        return self.model.tokenize(self.template.render(req.body["messages"]), add_special=False)

    def run_level(self, scripts: list[Script], concurrency: int, mode: str = "closed", rate: float | None = None,
                  seed: int = 0, on_request=None) -> tuple[list[Record], float]:
        reqs = [r for s in scripts for r in s]
        prompts = [self.tokens(r) for r in reqs]
        n_out = [r.fixed_output or r.body["max_tokens"] for r in reqs]
        offsets = arrivals(len(reqs), rate, seed) if mode == "rate" else None
        done = (lambda r: on_request(None)) if on_request else None
        out, wall = self.loop.batched(prompts, n_out, concurrency, offsets, ban_eog=all(r.fixed_output for r in reqs),
                                      on_done=done)
        records = [Record(t_send=r["t_send"], ok=True, t_first=r["t_first"], t_last=r["t_last"], t_end=r["t_end"],
                          itl=r["itl"], output_tokens=r["n_tokens"], prompt_tokens=r["prompt_tokens"],
                          cached_tokens=r["cached_tokens"]) for r in out]
        return records, wall

    def info(self) -> dict:
        return {"kind": self.kind, "version": self.version, "url": None, "command": None, "notes": self.notes}
