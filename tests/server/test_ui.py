"""The web chat page of `jikji serve` in a real browser.

Playwright drives Debian's Chromium (launched by path: browser downloads are not possible
here) against the real release binary and real models. Every test records the requests
the page makes and fails on any that leaves the server's origin (route interception aborts
them), and on console errors or uncaught exceptions.

Screenshots (light and dark, Korean UI) go to $JIKJI_SCREENSHOTS (default
target/ui-screenshots).
"""

import json
import os
import pathlib
import re
import shutil
import tempfile
import time
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import sync_playwright

from conftest import ROOT, SMOL, Server

HANGUL = re.compile("[\uac00-\ud7a3]")
SHOTS = pathlib.Path(os.environ.get("JIKJI_SCREENSHOTS", ROOT / "target" / "ui-screenshots"))
KEY = "sk-ui-test-key"


def chromium_path():
    for p in (os.environ.get("JIKJI_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")):
        if p:
            return p
    pytest.fail("Chromium not found: `apt-get install -y chromium` (or set JIKJI_CHROMIUM)")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Page:
    """A browser tab on one server, with its guards: same-origin requests only, no errors."""

    def __init__(self, browser, server, locale="ko-KR", allow_console=()):
        self.server = server
        self.origin = server.base
        self.foreign = []
        self.errors = []
        self.allow_console = allow_console
        self.ctx = browser.new_context(locale=locale, viewport={"width": 1000, "height": 700})
        self.ctx.route("**/*", self._route)
        self.page = self.ctx.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def _route(self, route):
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" == self.origin:
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def _console(self, msg):
        if msg.type == "error" and not any(a in msg.text for a in self.allow_console):
            self.errors.append(f"console: {msg.text}")

    def open(self):
        self.page.goto(self.origin + "/")
        self.page.wait_for_selector("body[data-ready='true']")
        return self.page

    def close(self):
        self.ctx.close()
        assert self.foreign == [], f"requests to other origins: {self.foreign}"
        assert self.errors == [], f"console errors: {self.errors}"


@pytest.fixture
def tab(browser, qwen):
    t = Page(browser, qwen)
    yield t
    t.close()


def until(page, js, timeout=60.0):
    """Polls `js` (an expression) until it is truthy. Page.wait_for_function would compile
    the predicate with eval, which the page's Content-Security-Policy forbids."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(js):
        assert time.monotonic() < deadline, f"timed out waiting for {js}"
        time.sleep(0.05)


def settings(page, **values):
    page.get_by_test_id("settings-toggle").click()
    for k, v in values.items():
        page.get_by_test_id(k).fill(str(v))
        page.get_by_test_id(k).dispatch_event("change")
    page.get_by_test_id("settings-toggle").click()


def assistant_messages(page):
    return page.locator("[data-testid='message'][data-role='assistant']")


def wait_answer_done(page, timeout=120_000):
    page.wait_for_selector("[data-testid='send']:visible", timeout=timeout)


def ask(page, text):
    page.get_by_test_id("composer").fill(text)
    page.get_by_test_id("composer").press("Enter")


def test_korean_question_gets_a_streamed_korean_answer(tab):
    page = tab.open()
    # The browser prefers Korean: so does the page.
    assert page.get_by_test_id("send").inner_text() == "보내기"
    assert page.locator("html").get_attribute("lang") == "ko"
    # No keys on this server: the key field never shows.
    assert not page.get_by_test_id("api-key").is_visible()
    until(page, "document.getElementById('model-name').textContent.includes('qwen')")
    settings(page, temperature=0, **{"max-tokens": 48})
    # Record every state the answer passes through while it streams.
    page.evaluate("""() => {
      window.__states = [];
      new MutationObserver(() => {
        const m = document.querySelector("[data-role='assistant'] [data-testid='message-content']");
        if (m) window.__states.push(m.textContent);
      }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
    }""")
    ask(page, "한국의 수도는 어디인가요? 한 문장으로 답해 주세요.")
    page.get_by_test_id("stop").wait_for(state="visible")
    wait_answer_done(page)
    answer = assistant_messages(page).last.get_by_test_id("message-content").inner_text()
    assert HANGUL.search(answer), answer
    assert "\ufffd" not in answer, answer
    states = [s for s in dict.fromkeys(page.evaluate("window.__states")) if s]
    assert len(states) >= 3, f"the answer did not stream: {states}"
    assert all("\ufffd" not in s for s in states), states
    assert all(answer.startswith(s.rstrip("▍").strip()) for s in states if s.strip()), states
    stats = assistant_messages(page).last.get_by_test_id("stats").inner_text()
    assert re.search(r"초당 [\d.]+ 토큰 · \d+ 토큰 · 컨텍스트 \d+/1024", stats), stats
    # A reload keeps the conversation.
    page.reload()
    page.wait_for_selector("body[data-ready='true']")
    assert assistant_messages(page).last.get_by_test_id("message-content").inner_text() == answer
    user = page.locator("[data-testid='message'][data-role='user']").last.inner_text()
    assert "한국의 수도는" in user
    # Screenshots of the Korean UI, light and dark.
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.emulate_media(color_scheme="light")
    page.screenshot(path=str(SHOTS / "chat-ko-light.png"))
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=str(SHOTS / "chat-ko-dark.png"))


def test_enter_during_ime_composition_never_sends(tab):
    page = tab.open()
    box = page.get_by_test_id("composer")
    box.click()
    messages = page.get_by_test_id("message")
    # A composition is open (as while typing 한): Enter commits the syllable, it does not send.
    box.dispatch_event("compositionstart", {"data": ""})
    box.fill("안녕하세요")
    box.press("Enter")
    # Chrome marks the key event itself too: isComposing, and keyCode 229 ("Process").
    page.evaluate("""() => {
      const b = document.querySelector("[data-testid='composer']");
      b.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', isComposing: true, bubbles: true, cancelable: true}));
    }""")
    box.dispatch_event("compositionend", {"data": "요"})
    page.evaluate("""() => {
      const b = document.querySelector("[data-testid='composer']");
      b.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', keyCode: 229, bubbles: true, cancelable: true}));
    }""")
    page.wait_for_timeout(300)
    assert messages.count() == 0
    # (A real IME swallows that Enter; the synthetic one may leave a newline behind.)
    assert box.input_value().rstrip("\n") == "안녕하세요"
    # Shift+Enter is a new line.
    box.fill("안녕하세요")
    box.press("End")
    box.press("Shift+Enter")
    box.type("둘째 줄")
    assert box.input_value() == "안녕하세요\n둘째 줄"
    assert messages.count() == 0
    # After the composition, Enter sends.
    settings(page, **{"max-tokens": 2})
    box.press("Enter")
    page.wait_for_selector("[data-testid='message'][data-role='user']")
    assert page.locator("[data-role='user'] [data-testid='message-content']").inner_text() == "안녕하세요\n둘째 줄"
    wait_answer_done(page)


HOSTILE = [
    "<script>window.__pwned = 1</script>",
    "<img src=x onerror=\"window.__pwned = 2\">",
    "[click](javascript:window.__pwned=3)",
    "![x](https://example.invalid/track.png)",
    "<iframe src=\"https://example.invalid\"></iframe>",
    "**<b onmouseover=\"window.__pwned=4\">bold</b>**",
    "| a | b |\n|---|---|\n| <svg onload=\"window.__pwned=5\"> | `<script>x</script>` |",
    "```html\n<script>window.__pwned = 6</script>\n```",
    "- <a href=\"javascript:window.__pwned=7\">x</a>\n  - nested <style>body{display:none}</style>",
]


def test_markdown_renderer_turns_hostile_strings_into_text(tab):
    page = tab.open()
    result = page.evaluate("""async (cases) => {
      const { renderMarkdown } = await import('/ui/markdown.js');
      const out = [];
      for (const src of cases) {
        const div = document.createElement('div');
        div.append(renderMarkdown(src));
        document.body.append(div);
        const bad = div.querySelectorAll('script, img, iframe, svg, style, object, embed, b, link, meta');
        const attrs = [...div.querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => a.name)).filter(n => n.startsWith('on'));
        const hrefs = [...div.querySelectorAll('a')].map(a => a.href);
        out.push({ bad: bad.length, attrs, hrefs, text: div.textContent });
        div.remove();
      }
      await new Promise(r => setTimeout(r, 100));
      return { out, pwned: window.__pwned ?? null };
    }""", HOSTILE)
    assert result["pwned"] is None
    for src, r in zip(HOSTILE, result["out"]):
        assert r["bad"] == 0 and r["attrs"] == [], (src, r)
        assert all(h.startswith("https:") for h in r["hrefs"]), (src, r)
    # The markup is shown as the characters it is.
    assert "<script>window.__pwned = 1</script>" in result["out"][0]["text"]
    assert "<img src=x onerror=" in result["out"][1]["text"]
    assert "<script>window.__pwned = 6</script>" in result["out"][7]["text"]
    # Markdown itself still renders.
    shape = page.evaluate("""async () => {
      const { renderMarkdown } = await import('/ui/markdown.js');
      const d = document.createElement('div');
      d.append(renderMarkdown('# 제목\\n\\n- 하나\\n- **둘**\\n  1. 셋\\n\\n| 가 | 나 |\\n|:--|--:|\\n| 1 | 2 |\\n\\n```rust\\nfn main() {}\\n```\\n\\n[링크](https://jikji.example/) `코드`'));
      return { h1: d.querySelector('h1')?.textContent, li: d.querySelectorAll('li').length,
               strong: d.querySelector('strong')?.textContent, nested: d.querySelectorAll('ul ol').length,
               cells: [...d.querySelectorAll('td')].map(c => c.textContent + ':' + c.className),
               code: d.querySelector('pre code')?.textContent, lang: d.querySelector('.code-lang')?.textContent,
               copy: d.querySelectorAll('.code-block button').length, link: d.querySelector('a')?.getAttribute('rel'),
               inline: d.querySelector('p code')?.textContent };
    }""")
    assert shape == {
        "h1": "제목", "li": 3, "strong": "둘", "nested": 1, "cells": ["1:align-left", "2:align-right"],
        "code": "fn main() {}", "lang": "rust", "copy": 1, "link": "noopener noreferrer nofollow", "inline": "코드",
    }


def test_hostile_user_text_and_model_markdown_are_shown_as_text(tab, tmp_path):
    page = tab.open()
    # Model Markdown enters the page the same way from an imported conversation as from a
    # stream: through the renderer. Import one whose answer is hostile.
    conv = {"format": "jikji-conversations", "version": 1, "conversations": [{
        "title": "hostile", "messages": [
            {"role": "user", "content": HOSTILE[1] + "\n" + HOSTILE[0]},
            {"role": "assistant", "content": "\n\n".join(HOSTILE),
             "reasoning": "생각 중 <script>window.__pwned = 9</script>",
             "tool_calls": [{"name": "<img src=x onerror=\"window.__pwned=10\">", "arguments": "{\"q\": \"<script>\"}"}]},
        ]}]}
    f = tmp_path / "hostile.json"
    f.write_text(json.dumps(conv))
    page.get_by_test_id("import").set_input_files(str(f))
    page.wait_for_selector("[data-role='assistant'] .code-block")
    msgs = page.get_by_test_id("messages")
    assert msgs.locator("script, img, iframe, svg, style, b").count() == 0
    user = page.locator("[data-role='user'] [data-testid='message-content']").inner_text()
    assert user == HOSTILE[1] + "\n" + HOSTILE[0]
    # Reasoning is folded away; tool calls are shown, as text.
    reasoning = page.get_by_test_id("reasoning")
    assert reasoning.get_attribute("open") is None
    assert not page.locator(".reasoning-text").is_visible()
    reasoning.locator("summary").click()
    assert page.locator(".reasoning-text").inner_text() == "생각 중 <script>window.__pwned = 9</script>"
    call = page.get_by_test_id("tool-call")
    assert "<img src=x onerror=" in call.inner_text() and '{"q": "<script>"}' in call.inner_text()
    # And typed by the user, then answered by the model.
    settings(page, **{"max-tokens": 4})
    ask(page, "<img src=x onerror=\"window.__pwned=8\"> <b>굵게</b>")
    wait_answer_done(page)
    assert msgs.locator("script, img, iframe, svg, style, b").count() == 0
    assert "<b>굵게</b>" in page.locator("[data-role='user'] [data-testid='message-content']").last.inner_text()
    assert page.evaluate("window.__pwned ?? null") is None


def test_stop_button_ends_the_stream_and_the_server_counts_a_cancellation(tab, qwen):
    page = tab.open()
    before = qwen.metrics().get("jikji_requests_cancelled_total", 0)
    settings(page, **{"max-tokens": 600})
    ask(page, "1부터 300까지의 숫자를 쉼표로 구분해서 모두 써 주세요.")
    until(page, """(document.querySelector("[data-role='assistant'] [data-testid='message-content']")?.textContent.length ?? 0) > 10""")
    page.get_by_test_id("stop").click()
    page.get_by_test_id("send").wait_for(state="visible", timeout=5_000)
    last = assistant_messages(page).last
    assert last.locator(".stopped").inner_text() == "중지됨"
    frozen = last.get_by_test_id("message-content").inner_text()
    deadline = time.monotonic() + 15
    while qwen.metrics().get("jikji_requests_cancelled_total", 0) <= before:
        assert time.monotonic() < deadline, "the server did not count a cancellation"
        time.sleep(0.2)
    page.wait_for_timeout(500)
    assert last.get_by_test_id("message-content").inner_text() == frozen
    # Regenerate replaces the stopped answer.
    settings(page, **{"max-tokens": 4})
    last.get_by_test_id("regenerate").click()
    wait_answer_done(page)
    assert assistant_messages(page).count() == 1
    assert assistant_messages(page).last.locator(".stopped").count() == 0


def test_edit_of_the_last_message_replaces_it_and_its_answer(tab):
    page = tab.open()
    settings(page, **{"max-tokens": 4, "temperature": 0})
    ask(page, "첫 질문")
    wait_answer_done(page)
    page.get_by_test_id("edit").click()
    page.get_by_test_id("edit-box").fill("고친 질문")
    page.get_by_test_id("save-edit").click()
    wait_answer_done(page)
    users = page.locator("[data-role='user'] [data-testid='message-content']")
    assert users.count() == 1 and users.inner_text() == "고친 질문"
    assert assistant_messages(page).count() == 1


def test_conversations_can_be_renamed_deleted_exported_and_imported(tab, tmp_path):
    page = tab.open()
    settings(page, **{"max-tokens": 2})
    ask(page, "대화 하나")
    wait_answer_done(page)
    page.get_by_test_id("title").fill("내 대화")
    page.get_by_test_id("title").dispatch_event("change")
    assert page.get_by_test_id("conversation").first.inner_text().startswith("내 대화")
    with page.expect_download() as dl:
        page.get_by_test_id("export").click()
    path = tmp_path / "export.json"
    dl.value.save_as(str(path))
    data = json.loads(path.read_text())
    assert data["format"] == "jikji-conversations"
    assert data["conversations"][0]["title"] == "내 대화"
    assert data["conversations"][0]["messages"][0]["content"] == "대화 하나"
    page.get_by_test_id("delete").click()
    assert page.get_by_test_id("message").count() == 0
    assert "내 대화" not in page.get_by_test_id("conversations").inner_text()
    page.get_by_test_id("import").set_input_files(str(path))
    page.wait_for_selector("[data-role='user']")
    assert page.get_by_test_id("title").input_value() == "내 대화"
    page.reload()
    page.wait_for_selector("body[data-ready='true']")
    assert page.get_by_test_id("title").input_value() == "내 대화"


def test_page_loads_within_a_second_and_under_300_kb(browser, qwen):
    t = Page(browser, qwen, locale="en-US")
    sizes = {}
    t.page.on("response", lambda r: sizes.__setitem__(r.url, len(r.body())))
    start = time.monotonic()
    page = t.open()
    took = time.monotonic() - start
    page.wait_for_load_state("networkidle")
    total = sum(sizes.values())
    print(f"page transfer: {total} bytes in {len(sizes)} responses, ready in {took:.3f} s")
    assert total < 300 * 1024, sizes
    assert took < 1.0, f"ready after {took:.2f} s"
    # English elsewhere.
    assert page.get_by_test_id("send").inner_text() == "Send"
    t.close()


@pytest.fixture(scope="module")
def keyed_server():
    s = Server(SMOL, ["--ctx", "512", "--parallel", "2"], env={"JIKJI_API_KEYS": KEY})
    yield s
    s.stop()


def test_key_is_asked_for_refused_clearly_and_then_used(browser, keyed_server):
    # The refused calls are 401s, which Chromium logs as failed resources.
    t = Page(browser, keyed_server, allow_console=("401",))
    page = t.open()
    dialog = page.get_by_test_id("key-dialog")
    dialog.wait_for(state="visible")
    assert "API 키" in page.get_by_test_id("key-message").inner_text()
    page.get_by_test_id("api-key").fill("sk-wrong")
    page.get_by_test_id("api-key-submit").click()
    until(page, "document.querySelector(\"[data-testid='key-message']\").textContent.includes('401')")
    assert dialog.is_visible()
    page.get_by_test_id("api-key").fill(KEY)
    page.get_by_test_id("api-key-submit").click()
    until(page, "document.getElementById('model-name').textContent === 'smollm2-135m'")
    assert not dialog.is_visible()
    assert page.evaluate("sessionStorage.getItem('jikji.apiKey')") == KEY
    settings(page, **{"max-tokens": 3})
    ask(page, "Hi")
    wait_answer_done(page)
    assert assistant_messages(page).count() == 1
    assert assistant_messages(page).last.locator(".error-text").count() == 0
    # The page itself is public; the API is not.
    assert httpx.get(keyed_server.url("/")).status_code == 200
    assert httpx.get(keyed_server.url("/props")).status_code == 401
    t.close()


def test_no_ui_flag_turns_the_page_off():
    s = Server(SMOL, ["--ctx", "256", "--parallel", "1", "--no-ui"])
    try:
        assert httpx.get(s.url("/")).status_code == 404
        assert httpx.get(s.url("/health")).status_code == 200
    finally:
        s.stop()
