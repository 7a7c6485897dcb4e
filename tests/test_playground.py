"""The web playground at / in a real headless Chromium (Debian's ``chromium``, driven by Playwright
through ``executable_path``; scripts/setup.sh --test installs both).

One server serves SmolLM2 and a tiny scripted Qwen3-style reasoning model (tests/tiny_models.py), so
switching models and the thinking display are checked without a second real model."""

from __future__ import annotations

import json
import shutil

import httpx
import jsonschema
import pytest

from conftest import MODEL_ID, Server
from tiny_models import PROMPT_END, build_tiny_model

TINY = "tiny-qwen3"
TINY_SCRIPT = [PROMPT_END["qwen3"], "<think>", "Let", " me", " think", "</think>", "Hello", "<|im_end|>"]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is not installed: run scripts/setup.sh --test (it installs Debian's chromium package)")
    return path


@pytest.fixture(scope="module")
def pg_server(resolved_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("playground")
    tiny = build_tiny_model(d / f"{TINY}.gguf", "qwen3", TINY_SCRIPT)
    s = Server(["--model", str(resolved_model.path) if resolved_model.id != MODEL_ID else MODEL_ID,
                "--model", str(tiny), "--parallel", "4", "--ctx-size", "2048"], d / "server.log")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser, pg_server):
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = ctx.new_page()
    pg.set_default_timeout(120_000)  # a shared 2-core machine can be slow; every wait ends on a real event
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(pg_server.url + "/")
    pg.wait_for_function("document.querySelectorAll('#model option').length >= 2")
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def ask(pg, text: str) -> None:
    pg.fill("#input", text)
    pg.click("#send")


def last_answer(pg, timeout: float = 180_000):
    """The last assistant message, once it has finished."""
    pg.wait_for_function("() => { const a = [...document.querySelectorAll('.msg.assistant')].pop();"
                         " return a && !a.classList.contains('streaming'); }", timeout=timeout)
    return pg.locator(".msg.assistant").last


def test_page_is_served_without_the_internet(pg_server):
    r = httpx.get(pg_server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for asset in ("/playground/app.js", "/playground/markdown.js", "/playground/app.css"):
        assert httpx.get(pg_server.url + asset).status_code == 200
    # every script and stylesheet is the server's own
    assert "http://" not in r.text and "https://" not in r.text
    info = httpx.get(pg_server.url + "/wafer/models").json()["data"]
    smol = next(m for m in info if m["id"] == MODEL_ID)
    assert smol["defaults"] == {"temperature": 0.2, "top_p": 0.9} and smol["reasoning"] is None
    tiny = next(m for m in info if m["id"] == TINY)
    assert tiny["reasoning"] == "qwen3" and tiny["defaults"] == {}


def test_tokens_stream_with_the_api_numbers(page, pg_server):
    page.select_option("#model", MODEL_ID)
    page.fill("#temperature", "0")
    page.fill("#max-tokens", "60")
    # count how many distinct lengths the answer passes through while it streams
    page.evaluate("""() => { window.lengths = new Set();
        new MutationObserver(() => { const a = document.querySelector('.msg.assistant.streaming .body.markdown');
          if (a) window.lengths.add(a.textContent.length); })
        .observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true}); }""")
    ask(page, "Write a short story about a lighthouse keeper.")
    page.wait_for_function("() => { const a = document.querySelector('.msg.assistant.streaming .body.markdown');"
                           " return a && a.textContent.length > 0; }")
    answer = last_answer(page)
    assert page.evaluate("window.lengths.size") >= 3, "the answer did not arrive in several pieces"
    text = answer.locator(".body.markdown").inner_text()
    assert len(text) > 30
    data = answer.evaluate("el => ({...el.dataset})")
    assert int(data["completionTokens"]) > 10 and int(data["promptTokens"]) > 10
    assert float(data["tokPerS"]) > 0 and int(data["ttftMs"]) > 0
    assert data["finish"] in ("length", "stop")
    stats = answer.locator(".stats").inner_text()
    for label in ("TTFT", "tok/s", "prompt", "cached", "time_info", "queue", "completion", "total"):
        assert label in stats
    # the same system prompt and first turn again: the prompt cache answers part of it
    page.click("#clear")
    page.fill("#max-tokens", "4")
    ask(page, "Write a short story about a lighthouse keeper.")
    again = last_answer(page)
    assert int(again.evaluate("el => el.dataset.cachedTokens")) > 0


def test_stop_cancels_and_the_server_frees_the_request(page, pg_server):
    page.select_option("#model", MODEL_ID)
    page.fill("#temperature", "0")
    page.fill("#max-tokens", "")
    ask(page, "Write a very long essay about the history of the Roman Empire, with many chapters.")
    page.wait_for_function("() => { const a = document.querySelector('.msg.assistant.streaming .body.markdown');"
                           " return a && a.textContent.length > 20; }")
    assert pg_server.stats(MODEL_ID)["running_requests"] == 1, "the request should still be running"
    page.click("#stop")
    answer = last_answer(page, timeout=10_000)
    assert answer.evaluate("el => el.dataset.finish") == "stopped"
    st = pg_server.wait_idle(MODEL_ID, timeout=10)
    assert st["running_requests"] == 0 and st["kv_cells_running"] == 0
    assert page.is_visible("#send") and not page.is_visible("#stop")


def test_switch_models_and_reasoning_apart_from_the_answer(page):
    assert page.input_value("#temperature") == "0.2"  # SmolLM2's recommendation is the starting point
    page.select_option("#model", TINY)
    assert page.input_value("#temperature") == ""  # no recommendation: the API default
    assert page.is_enabled("#reasoning-format") and page.input_value("#reasoning-format") == "parsed"
    page.fill("#temperature", "0")
    ask(page, "hi")
    answer = last_answer(page)
    assert answer.locator(".who").inner_text() == TINY
    assert answer.locator(".thinking").is_visible()
    assert answer.locator(".thinking .body").inner_text() == "Let me think"
    assert answer.locator(".body.markdown").inner_text() == "Hello"
    assert "reasoning" in answer.locator(".stats").inner_text()
    # raw: the thinking arrives inside the content and is still shown apart
    page.select_option("#reasoning-format", "raw")
    ask(page, "hi again")
    answer = last_answer(page)
    assert answer.locator(".thinking .body").inner_text() == "Let me think"
    assert answer.locator(".body.markdown").inner_text() == "Hello"
    # and back to SmolLM2, whose recommended settings return
    page.select_option("#model", MODEL_ID)
    assert page.input_value("#temperature") == "0.2" and page.input_value("#top-p") == "0.9"
    assert page.is_disabled("#reasoning-format")
    page.fill("#max-tokens", "8")
    ask(page, "Say hello.")
    answer = last_answer(page)
    assert answer.locator(".who").inner_text() == MODEL_ID


def test_json_mode_returns_valid_json(page):
    page.select_option("#model", MODEL_ID)
    page.check('input[name="mode"][value="json"]')
    assert page.is_visible("#schema")
    schema = json.loads(page.input_value("#schema"))
    page.fill("#temperature", "0")
    page.fill("#max-tokens", "200")
    ask(page, "Describe Paris, France as JSON.")
    answer = last_answer(page)
    raw = answer.evaluate("el => el.dataset.content")
    value = json.loads(raw)
    jsonschema.validate(value, schema)
    assert answer.locator(".body.markdown").evaluate("el => el.dataset.validJson") == "true"
    assert json.loads(answer.locator(".body.markdown code").inner_text()) == value  # shown pretty-printed


def test_tools_calls_shown_and_results_sent_back(page):
    page.select_option("#model", MODEL_ID)
    page.check('input[name="mode"][value="tools"]')
    page.select_option("#tool-choice", "function:get_weather")
    page.fill("#temperature", "0")
    page.fill("#max-tokens", "60")
    ask(page, "What is the weather in Paris?")
    answer = last_answer(page)
    assert answer.evaluate("el => el.dataset.finish") == "tool_calls"
    assert "get_weather" in answer.locator(".call-name").inner_text()
    args = json.loads(answer.locator(".call pre").inner_text())
    assert isinstance(args.get("city"), str)
    answer.locator("textarea.tool-result").fill('{"temperature_c": 21, "sky": "sunny"}')
    page.select_option("#tool-choice", "none")
    answer.locator("button.send-results").click()
    follow = last_answer(page)
    assert follow.evaluate("el => el.dataset.finish") in ("stop", "length")
    assert follow.locator(".body.markdown").inner_text().strip()
    assert page.locator(".msg.tool").count() == 1


def test_errors_are_the_apis_messages(page):
    page.fill("#temperature", "5")
    ask(page, "hi")
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == "temperature: Input should be less than or equal to 2"
    assert page.locator(".msg.assistant.failed").count() == 1
    page.fill("#temperature", "0")
    page.check('input[name="mode"][value="json"]')
    page.fill("#schema", "{not json")
    page.fill("#input", "hi")
    page.click("#send")
    assert "The JSON schema is not valid JSON" in page.inner_text("#error")
    assert page.input_value("#input") == "hi"  # nothing was sent; the text is kept


def test_markdown_and_code_are_rendered_safely(page):
    html = page.evaluate("""() => Markdown.render(
        "# Title\\n\\nSome **bold** and `code` <script>x</script>\\n\\n- one\\n- two\\n\\n"
        + "```python\\ndef f(x):\\n    return x  # hi\\n```\\n\\n| a | b |\\n|---|---|\\n| 1 | 2 |\\n")""")
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "<ul><li>one</li><li>two</li></ul>" in html
    assert '<span class="tok-kw">def</span>' in html and '<span class="tok-com"># hi</span>' in html
    assert "<table>" in html and "<td>1</td>" in html
    assert 'href="javascript' not in page.evaluate("() => Markdown.render('[x](javascript:alert(1))')")


def test_phone_layout(browser, pg_server):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    pg = ctx.new_page()
    pg.goto(pg_server.url + "/")
    pg.wait_for_function("document.querySelectorAll('#model option').length >= 2")
    assert pg.evaluate("document.documentElement.scrollWidth") <= 390
    assert not pg.locator("#system").is_visible() or pg.evaluate(
        "document.getElementById('settings').getBoundingClientRect().right") <= 0
    pg.click("#toggle-settings")
    pg.wait_for_function("document.getElementById('settings').getBoundingClientRect().left >= 0")
    assert pg.locator("#system").is_visible()
    pg.click("#toggle-settings")
    assert pg.locator("#input").is_visible() and pg.locator("#send").is_visible()
    ctx.close()


def test_api_key_field_when_keys_are_on(browser, resolved_model, tmp_path):
    tiny = build_tiny_model(tmp_path / f"{TINY}.gguf", "qwen3", TINY_SCRIPT)
    s = Server(["--model", str(tiny), "--api-key", "sk-playground", "--parallel", "1", "--ctx-size", "512"],
               tmp_path / "server.log")
    try:
        ctx = browser.new_context()
        pg = ctx.new_page()
        pg.goto(s.url + "/")
        pg.wait_for_selector("#key-section:not([hidden])")
        assert "Not authenticated" in pg.inner_text("#error")
        pg.fill("#api-key", "sk-wrong")
        pg.dispatch_event("#api-key", "change")
        pg.wait_for_function("document.getElementById('error').textContent.includes('Wrong API Key')")
        pg.fill("#api-key", "sk-playground")
        pg.dispatch_event("#api-key", "change")
        pg.wait_for_function("document.querySelectorAll('#model option').length === 1")
        pg.fill("#temperature", "0")
        ask(pg, "hi")
        answer = last_answer(pg)
        assert answer.locator(".body.markdown").inner_text() == "Hello"
        ctx.close()
    finally:
        s.stop()
