"""The wafer CLI: models, pull errors, chat (through a server and in-process), serve errors."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def wafer(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "wafer", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_models_lists_catalogue(resolved_model):
    r = wafer("models")
    assert r.returncode == 0
    lines = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
    assert "smollm2-135m" in lines and "qwen2.5-coder-0.5b" in lines
    assert " yes " in lines["smollm2-135m"]


def test_pull_unknown_model_fails_cleanly():
    r = wafer("pull", "no-such-model")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "no-such-model" in r.stderr


def test_serve_unknown_model_fails_cleanly():
    r = wafer("serve", "--model", "/nonexistent/model.gguf", "--port", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_chat_through_server(base_url):
    r = wafer("chat", "--url", base_url, "--model", "smollm2-135m", "--temperature", "0", "--max-tokens", "8", "Say hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    assert "tok/s" in r.stderr and "prompt" in r.stderr


def test_chat_interactive_through_server(base_url):
    p = subprocess.run([sys.executable, "-m", "wafer", "chat", "--url", base_url, "--max-tokens", "6"],
                       input="Hello\nAnd again\n\n", capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("tok/s") == 2


def test_chat_local(model_path):
    r = wafer("chat", "--local", "--model", model_path, "--temperature", "0", "--max-tokens", "6", "Say hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and "tok/s" in r.stderr
