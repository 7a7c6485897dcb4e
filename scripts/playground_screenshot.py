"""Make docs/playground.png: a wafer server, the playground in headless Chromium, one streamed answer.

    .venv/bin/python scripts/playground_screenshot.py [--model smollm2-135m] [--out docs/playground.png]

Needs Debian's chromium (scripts/setup.sh --test installs it) and Playwright (the test extra).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wafer.bench.systems import free_port  # noqa: E402

PROMPT = "Write a Python function that checks whether a string is a palindrome, with a short explanation."


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--out", default=str(ROOT / "docs" / "playground.png"))
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=860)
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed (scripts/setup.sh --test installs it)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "wafer", "serve", "--port", str(port), "--model", args.model,
                                 "--model", "smollm2-135m"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            deadline = time.time() + 180
            while True:
                log.seek(0)
                if "ready on" in log.read():
                    break
                if proc.poll() is not None or time.time() > deadline:
                    log.seek(0)
                    print(log.read(), file=sys.stderr)
                    return 1
                time.sleep(0.2)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium)
                page = browser.new_page(viewport={"width": args.width, "height": args.height}, color_scheme="light")
                page.goto(url + "/")
                page.wait_for_function("document.querySelectorAll('#model option').length >= 1")
                page.select_option("#model", args.model)
                page.fill("#system", "You are a concise coding assistant.")
                page.fill("#temperature", "0")
                page.fill("#max-tokens", "400")
                page.fill("#input", PROMPT)
                page.click("#send")
                page.wait_for_function("() => { const a = document.querySelector('.msg.assistant');"
                                       " return a && !a.classList.contains('streaming'); }", timeout=180_000)
                page.fill("#input", "Now make it ignore case and spaces.")
                page.screenshot(path=args.out)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
