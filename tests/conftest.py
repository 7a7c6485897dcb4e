"""Fixtures: the default model and live `wafer serve` processes on loopback."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from wafer.launch import ROOT, WaferServer  # noqa: F401  (ROOT: the repository root, for the tests)

MODEL_SPEC = os.environ.get("WAFER_TEST_MODEL", "smollm2-135m")
MODEL_ID = "smollm2-135m"
QWEN_ID = "qwen2.5-coder-0.5b"  # the catalogue model with a tool-calling template (pulled by scripts/test)


@pytest.fixture(scope="session")
def resolved_model():
    """The default model (pulled by scripts/test beforehand)."""
    from wafer.models import resolve_model

    return resolve_model(MODEL_SPEC, pull=True, progress=False)


@pytest.fixture(scope="session")
def model_path(resolved_model) -> str:
    return str(resolved_model.path)


def serve_args(resolved) -> list[str]:
    """Serve the test model as `smollm2-135m` (and as `llama3.1-8b`, a Cerebras id)."""
    args = ["--model", MODEL_SPEC, "--alias", f"llama3.1-8b={resolved.id}"]
    if resolved.id != MODEL_ID:
        args += ["--alias", f"{MODEL_ID}={resolved.id}"]
    return args


class EngineStats:
    """/wafer/stats of a server at ``self.url`` (a scaled-out deployment's ingress sums its replicas)."""

    url: str

    def stats(self, model: str = MODEL_ID) -> dict:
        stats = httpx.get(self.url + "/wafer/stats", timeout=30).json()
        return stats.get(model) or next(iter(stats.values()))

    def wait_idle(self, model: str = MODEL_ID, timeout: float = 20) -> dict:
        """Wait until the engine holds no request, sequence or KV cell; returns the stats."""
        deadline = time.time() + timeout
        while True:
            st = self.stats(model)
            idle = (
                st["running_requests"] == 0
                and st["waiting_requests"] == 0
                and st["free_slots"] == st["slots"]
                and st["kv_cells_running"] == 0
                and st["kv_slots_occupied"] == st["cache_holder_slots"]  # only the prefix cache holds cells
            )
            if idle or time.time() > deadline:
                return st
            time.sleep(0.05)


class Server(EngineStats, WaferServer):
    """A live `wafer serve` on loopback (see wafer.launch), with the engine's stats."""

    def __init__(self, args: list[str], log_path: Path, timeout: float = 120):
        super().__init__(args, log_path, timeout=timeout)


class External(EngineStats):
    """A server this session did not start (``WAFER_TEST_URL``): tests/test_scale.py runs the API tests
    through a scaled-out deployment's ingress this way."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def stop(self) -> None:
        pass


@pytest.fixture(scope="session")
def server(resolved_model, tmp_path_factory):
    if os.environ.get("WAFER_TEST_URL"):  # started with serve_args(resolved) + --parallel 16 --ctx-size 4096
        yield External(os.environ["WAFER_TEST_URL"])
        return
    # 16 KV streams of 4096 cells (1.5 GB for SmolLM2) rather than the model's 8192
    s = Server(serve_args(resolved_model) + ["--parallel", "16", "--ctx-size", "4096"],
               tmp_path_factory.mktemp("srv") / "server.log")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def base_url(server) -> str:
    return server.url


@pytest.fixture(scope="session")
def cerebras(base_url):
    from cerebras.cloud.sdk import Cerebras

    with Cerebras(api_key="test-key", base_url=base_url, _strict_response_validation=True, max_retries=0) as c:
        yield c


@pytest.fixture(scope="session")
def openai_client(base_url):
    import openai

    with openai.OpenAI(api_key="test-key", base_url=base_url + "/v1", max_retries=0) as c:
        yield c


@pytest.fixture(scope="session")
def http(base_url):
    with httpx.Client(base_url=base_url, timeout=120) as c:
        yield c


@pytest.fixture(scope="session")
def tokenizer(model_path):
    """The test model's vocabulary in-process (for token ids in logit_bias tests)."""
    from wafer.engine.llama import LlamaModel

    m = LlamaModel(model_path)
    yield m
    m.close()


@pytest.fixture(scope="session")
def plain_server(resolved_model, tmp_path_factory):
    """A server without prefix caching: every prompt is computed in one piece, as the raw loop does."""
    s = Server(serve_args(resolved_model) + ["--no-prefix-cache", "--ctx-size", "4096"],
               tmp_path_factory.mktemp("plain") / "server.log")
    yield s
    s.stop()


@pytest.fixture
def loopback():
    """A scripted HTTP server on 127.0.0.1 for the client's fault tests (tests/test_client_loopback.py)."""
    from test_client_loopback import Loopback

    server = Loopback()
    yield server
    server.close()


@pytest.fixture(scope="session")
def qwen_server(tmp_path_factory):
    from wafer.models import resolve_model

    resolve_model(QWEN_ID, pull=True, progress=False)
    s = Server(["--model", QWEN_ID, "--parallel", "16", "--ctx-size", "4096"], tmp_path_factory.mktemp("qwen") / "server.log")
    yield s
    s.stop()


@contextmanager
def sdk_clients(url: str):
    """The official Cerebras and OpenAI clients for a server, closed afterwards."""
    import openai
    from cerebras.cloud.sdk import Cerebras

    with Cerebras(api_key="test-key", base_url=url, _strict_response_validation=True, max_retries=0) as cb, \
            openai.OpenAI(api_key="test-key", base_url=url + "/v1", max_retries=0) as oa:
        yield cb, oa


@pytest.fixture(scope="session")
def qwen_clients(qwen_server):
    with sdk_clients(qwen_server.url) as clients:
        yield clients
