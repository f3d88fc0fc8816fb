"""The dashboard in a real browser, on the hostile store of test_dashboard_hostile.

Only Streamlit's frontend decides what becomes Markdown, so this serves the app with
`streamlit run`, loads every page in headless Chromium (driven over the DevTools protocol
with the `websockets` package Streamlit already needs) and reads the DOM: no link or image
points at a hostile URL, no bold, italics, code, KaTeX, coloured text, icon or heading was
made from user text, and the user's text is there, literally. Skipped without Chromium
(`apt-get install chromium`; .ci/run installs it when it can).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest
from conftest import free_port, stop_process
from test_dashboard_hostile import RUN, build_hostile_store

from dashboard.safe_text import WORD_JOINER

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and os.access(p, os.X_OK)), None)
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium) to see what "
                                                          "Streamlit's frontend renders"),
              pytest.mark.slow, pytest.mark.integration]  # a study run, `streamlit run` and Chromium
websockets_sync = pytest.importorskip("websockets.sync.client")
HOSTILE_HOSTS = ("127.0.0.1:9", "evil.example")



def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Browser:
    """Headless Chromium, one tab, driven over the Chrome DevTools Protocol."""

    def __init__(self, profile: Path):
        self.stack = ExitStack()
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1400,2400", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.stack.callback(stop_process, self.process)
        try:
            port_file = profile / "DevToolsActivePort"
            port = _wait(lambda: port_file.is_file() and port_file.read_text().split("\n")[0], 20, "Chromium")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                tab = next(t for t in json.load(r) if t["type"] == "page")
            self.ws = self.stack.enter_context(
                websockets_sync.connect(tab["webSocketDebuggerUrl"], max_size=2**26, open_timeout=10))
            self.ids = itertools.count(1)
            self.requests: list[str] = []
            self.call("Network.enable")
            self.call("Page.enable")
        except BaseException:
            self.stack.close()
            raise

    def call(self, method: str, **params):
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("method") == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
            if message.get("id") == i:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        x, y = self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                       " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        self.stack.close()



@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = build_hostile_store(tmp_path_factory.mktemp("browser"))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--", "--db", str(db)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def healthy():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return process.poll() is not None and pytest.fail("streamlit run exited")
    try:
        _wait(healthy, 60, "streamlit run")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium"))
    yield b
    b.close()


# The DOM, read in the page: elements that Markdown makes, and whether user text made them.
# User text is marked by "ZQ" (the sentinels and the run name's markers); st.code and
# st.json blocks show text in <code> legitimately.
REPORT = r"""(() => {
  const made = 'strong, em, del, code, pre, a, img, li, blockquote, .katex, .stMarkdownColoredText';
  const plain = '[data-testid=stCode], [data-testid=stJson]';
  const describe = e => e.outerHTML.slice(0, 200);
  const fromUser = [...document.querySelectorAll(made)].filter(e => !e.closest(plain))
      .filter(e => /ZQ/.test(e.textContent + ' ' + (e.getAttribute('alt') || ''))).map(describe);
  const urls = [...document.querySelectorAll('[src], [href]')]
      .filter(e => /127\.0\.0\.1:9|evil\.example/.test((e.getAttribute('src') || '') + (e.getAttribute('href') || '')))
      .map(describe);
  const md = '[data-testid=stMarkdownContainer], [data-testid=stCaptionContainer]';
  const blocks = [...document.querySelectorAll(`:is(${md}) :is(table, hr, ul, ol)`)].map(describe);
  const headings = [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')]
      .filter(e => /headingZQ/.test(e.textContent)).map(describe);
  const icons = [...document.querySelectorAll('[aria-label="home icon"]')].map(describe);
  const handlers = [...document.querySelectorAll('[onerror], script')]
      .filter(e => e.hasAttribute('onerror') || /alert\(1\)/.test(e.textContent)).map(describe);
  const inputs = [...document.querySelectorAll('input')].map(e => e.value).join('\n');
  return {fromUser, urls, blocks, headings, icons, handlers, text: document.body.textContent + '\n' + inputs};
})()"""


def _open(browser: Browser, url: str, title: str, literal: list[str] = ()) -> dict:
    """The DOM report of `url` once it has rendered, and its `literal` text is there (or 5 s have passed)."""
    browser.call("Page.navigate", url=url)
    state = "document.querySelector('[data-testid=stApp]')?.getAttribute('data-test-script-state')"
    _wait(lambda: browser.js(f"{state} === 'notRunning' && !document.querySelector('[data-testid=stSkeleton]')"
                             f" && document.querySelector('h1')?.textContent === {json.dumps(title)}"),
          30, f"{url} to render")
    deadline = time.monotonic() + 5  # data grids and lazily loaded Markdown plugins (KaTeX, emoji) come last
    while True:
        page = browser.js(REPORT)
        page["text"] = " ".join(page["text"].replace(WORD_JOINER, "").split())
        if time.monotonic() > deadline or all(piece in page["text"] for piece in literal):
            return page
        time.sleep(0.2)


def _literal(sentinel: str) -> list[str]:
    """Pieces of hostile(sentinel) that must be on the page as typed."""
    return [f"**bold{sentinel}**", f"`tick{sentinel}`", f"![img{sentinel}](http://127.0.0.1:9/pixel.png)",
            f"[click{sentinel}](http://evil.example)", f":red[red{sentinel}]", f"${sentinel}^2$",
            "<script>alert(1)</script>", ":material/home:"]


RUN_LITERAL = ["**boldZQR**", "`tickZQR`", "[clickZQR](http://evil.example)", "$ZQR^2$", "<b>ZQR</b>"]
PAGES = [  # url path, title, what must be there literally (Markdown-escaped or plain)
    ("", "Overview", RUN_LITERAL + _literal("ZQXdataset") + _literal("ZQXmodel") + _literal("ZQXdevice")),
    ("condition-accuracy", "Condition accuracy", _literal("ZQXcondition")),
    ("phrasing", "Phrasing strategies", _literal("ZQXstrategy") + _literal("ZQXgroup")),
    ("attention", "Attention", _literal("ZQXquestion") + _literal("ZQXfallback")),
    ("attention-changes", "Attention changes",
     _literal("ZQXquestion") + _literal("ZQXbaseline") + _literal("ZQXstrategy") + _literal("ZQXcondition")),
    ("live", "Live inference", RUN_LITERAL[:4]),  # ?model=RUN, in the caption
]


def test_pages_show_hostile_text_literally_in_a_browser(server, browser):
    problems = {}
    for path, title, literal in PAGES:
        query = f"?run={quote(RUN, safe='')}"
        if path == "live":
            query += f"&model={quote(RUN, safe='')}"
        page = _open(browser, f"{server}/{path}{query}", title, literal)
        found = {p: page[p] for p in ("fromUser", "urls", "blocks", "headings", "icons", "handlers") if page[p]}
        if missing := [piece for piece in literal if piece not in page["text"]]:
            found["not shown as typed"] = missing
        if "😄" in page["text"]:
            found["emoji"] = "a shortcode became an emoji"
        if found:
            problems[path or "overview"] = found
    summary = {page: {kind: f"{len(v)}x, e.g. {v[0][:150]}" if isinstance(v, list) else v for kind, v in found.items()}
               for page, found in problems.items()}
    assert not problems, json.dumps(summary, indent=1, ensure_ascii=False)
    hits = [u for u in browser.requests if any(h in urlparse(u).netloc for h in HOSTILE_HOSTS)]
    assert not hits, f"the browser fetched {hits}"


def test_selectbox_options_are_plain_text_in_a_browser(server, browser):
    """Options are left unescaped on the pages; this fails if Streamlit starts rendering them as Markdown."""
    _open(browser, f"{server}/?run={quote(RUN, safe='')}", "Overview")
    browser.click("[data-testid=stSidebar] [data-testid=stSelectbox] button[aria-label=Open]")
    options = _wait(lambda: browser.js("[...document.querySelectorAll('[role=option]')]"
                                       ".map(o => [o.textContent, o.querySelectorAll('strong, code, a, img').length])"),
                    10, "the run picker to open")
    assert [text.replace(WORD_JOINER, "") for text, _ in options] == [RUN]
    assert all(made == 0 for _, made in options)
