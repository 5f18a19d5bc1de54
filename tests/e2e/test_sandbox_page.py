"""The sandbox chat page in headless Chromium against the real product started as a user does: ``python run.py
serve`` with no WeCom credentials (sandbox mode), on its own SQLite database and a free port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Dialog, Page, async_playwright, expect

from tests.helpers import free_port

pytestmark = pytest.mark.browser

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT = 30.0  # seconds for `run.py serve` to answer /healthz
REPLY_TIMEOUT_MS = 15_000  # the bot's answer must show on the page within this
GENERATED_CUSTOMER_ID = re.compile(r"^wmSandbox[0-9A-Za-z]{10}$")  # the page makes one up on first visit
XSS_TEXT = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} not found: install it with `apt-get install -y chromium` (Debian/Ubuntu; Playwright's download is not used)"
    if os.environ.get("CI") == "true":
        pytest.fail("CI must run the browser tests: " + message)
    pytest.skip(message)


def product_env(**settings: str) -> dict[str, str]:
    """The caller's environment without any SCRM_* setting or config file (so no WeCom credentials: sandbox)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRM_")}
    env.update({"SCRM_CONFIG_FILE": os.devnull, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"})
    env.update({f"SCRM_{k.upper()}": v for k, v in settings.items()})
    return env


@dataclass
class Server:
    base_url: str
    stdout: Path
    stderr: Path


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return int(resp.status)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``python run.py serve`` in a subprocess; always stopped afterwards, even when the test fails."""
    require_chromium()
    port = free_port()
    env = product_env(port=str(port), database_url=f"sqlite+aiosqlite:///{tmp_path / 'scrm.db'}", log_format="text")
    out_path, err_path = tmp_path / "serve.stdout", tmp_path / "serve.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "run.py", "serve"], cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`run.py serve` exited with {proc.returncode}:\n{err_path.read_text('utf-8', 'replace')[-3000:]}")
            try:
                if _get(f"{base_url}/healthz") == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                pytest.fail(f"/healthz did not answer within {START_TIMEOUT:.0f} s:\n{err_path.read_text('utf-8', 'replace')[-3000:]}")
            time.sleep(0.2)
        printed = out_path.read_text("utf-8")
        assert f"{base_url}/sandbox/" in printed, f"serve did not print the sandbox URL:\n{printed}"
        yield Server(base_url, out_path, err_path)
    finally:
        _stop(proc)


async def say(page: Page, text: str) -> None:
    box = page.locator("#message-input")
    await box.fill(text)
    await box.press("Enter")
    # Sent: the page clears the box once the server accepted the message.
    await expect(box).to_have_value("", timeout=REPLY_TIMEOUT_MS)
    await expect(page.locator("#status")).to_have_text("")


async def bot_says(page: Page, text: str) -> None:
    await expect(page.locator(".msg.bot .bubble", has_text=text).last).to_be_visible(timeout=REPLY_TIMEOUT_MS)


async def test_customer_orders_in_the_sandbox_chat_page(server: Server, tmp_path: Path) -> None:
    dialogs: list[str] = []
    page_errors: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 480, "height": 900}, locale="zh-CN")
            page = await context.new_page()
            page.on("dialog", on_dialog)
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            await page.goto(f"{server.base_url}/sandbox/", wait_until="domcontentloaded")
            await expect(page).to_have_title("微信客服沙箱")
            await expect(page.locator("#customer-id")).to_have_value(GENERATED_CUSTOMER_ID)

            await say(page, "帮助")
            await bot_says(page, "要3箱矿泉水")
            await say(page, "要3箱矿泉水")
            await bot_says(page, "合计：¥108.00")
            await say(page, "确认")
            await bot_says(page, "已确认")

            # Customer text is shown as text, never interpreted as HTML.
            await say(page, XSS_TEXT)
            mine = page.locator(".msg.customer .bubble", has_text="<script>alert(1)</script>")
            await expect(mine).to_have_count(1, timeout=REPLY_TIMEOUT_MS)
            assert await mine.inner_text() == XSS_TEXT
            await bot_says(page, "抱歉，我暂时没理解")  # the bot quotes it back: escaped as well
            assert await page.locator("#messages script, #messages img").count() == 0

            customer_texts = await page.locator(".msg.customer .bubble").all_inner_texts()
            assert customer_texts == ["帮助", "要3箱矿泉水", "确认", XSS_TEXT]
            assert await page.locator(".msg.bot").count() == 4

            shot = tmp_path / "sandbox-page.png"
            await page.screenshot(path=str(shot))
            data = shot.read_bytes()
            assert len(data) > 1000 and data.startswith(b"\x89PNG\r\n\x1a\n")
            await context.close()
        finally:
            await browser.close()
    assert dialogs == [], f"a dialog fired: {dialogs}"
    assert page_errors == [], f"JavaScript errors on the page: {page_errors}"
