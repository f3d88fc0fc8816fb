"""Every dashboard page in a real browser (Playwright driving Debian's Chromium), on a small demo store.

The store is made the way `make demo-run` makes the demo's: the demo model's phrasing run (with
attention maps and their comparisons), then a baseline run with Grad-CAM and deletion tests, over
a synthetic manifest whose first question ends in ``<script>alert(1)</script><b>bold</b>``. The app
is served with `streamlit run`; the pages are read from dashboard/app.py's `st.Page(...)` entries,
so a page added there is tested here without an edit.

For each page: it renders without an exception box or an st.error box, every chart has a size,
every picture has loaded, the time to its first complete render is printed (target: 2 s on this
store; printed, not asserted), and a full-page screenshot is saved (into $MGV_SCREENSHOTS as
<url_path or 'overview'>.png when that is set: `MGV_SCREENSHOTS=docs/screenshots`). Also: the
Condition accuracy page's Conditions filter and the Attention page's Prediction picker change
the URL and the page, and the copied URL opens the same view in a fresh browser; the hostile
question shows as literal text, with no element made from it and no alert.

"Rendered" (RENDERED below) is: the app's `data-test-script-state` attribute reads `notRunning`,
no status widget (it shows while a script runs), no skeleton (a page not yet drawn) and no stale
element (one left from the previous run, cleared when the run ends), the main block holds an
element, and every visible chart, data grid and picture has been drawn with a size. Each wait
follows a full page load or a URL change that the script run itself makes, so a `notRunning`
left from before the run cannot pass for its end.

Uses no Playwright browser download: needs Chromium (apt-get install chromium; .ci/run installs it).
"""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import free_port, stop_process
from PIL import Image

from compute.data.uploads import MAX_UPLOAD_BYTES

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - requirements.txt pins it
    sync_playwright = None

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and os.access(p, os.X_OK)), None)
NEEDS_CHROMIUM = ("needs Chromium: apt-get install chromium (Debian's package; Playwright's browser download "
                  "is not used)")
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason=NEEDS_CHROMIUM),
              pytest.mark.skipif(sync_playwright is None, reason=f"needs the playwright package (requirements.txt); "
                                                                 f"also {NEEDS_CHROMIUM}"),
              pytest.mark.slow, pytest.mark.integration]  # two study runs, `streamlit run` and Chromium

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
MAX_SHOT_HEIGHT = 12000  # pixels: a longer page is cut there
HOSTILE = "<script>alert(1)</script><b>bold</b>"
BASELINE, PHRASING = "pages-baseline", "pages-phrasing"
EXPECTED_ERRORS: dict[str, list[str]] = {}  # url path -> st.error texts a page shows on purpose (none on this store)
RENDER_TARGET_S = 2.0


@dataclass(frozen=True)
class Page:
    script: str
    title: str
    url_path: str  # "" for the default page

    @property
    def name(self) -> str:
        return self.url_path or "overview"


def app_pages() -> list[Page]:
    """The `st.Page(...)` entries of dashboard/app.py, read from its source (nothing is imported)."""
    pages = []
    for node in ast.walk(ast.parse(APP.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "Page":
            script = ast.literal_eval(node.args[0])
            kw = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
            url_path = "" if kw.get("default") else kw.get("url_path") or Path(script).stem
            pages.append(Page(script, kw.get("title") or Path(script).stem, url_path))
    return pages


PAGES = app_pages()


# ---- the store, the server, the browser -------------------------------------------------------------------

@dataclass(frozen=True)
class Store:
    db: Path
    questions: dict[str, str]  # the baseline run's item id -> question


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """A demo-like store: a phrasing run (3 rewrites per question), then a baseline run with Grad-CAM and
    deletion tests on the first 4 questions (the slow part; newest, so the dashboard opens on it)."""
    import duckdb

    from compute.cli import main
    from compute.demo.synth import SynthConfig, generate_dataset
    base = tmp_path_factory.mktemp("pages")
    # For the README's screenshots (MGV_SCREENSHOTS set), a fuller store: 12 images, every question mapped.
    screenshots = bool(os.environ.get("MGV_SCREENSHOTS"))
    manifest = generate_dataset(SynthConfig(n=12 if screenshots else 4, seed=3, size=128), base / "synth",
                                progress=False)
    lines = manifest.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["question"] = f"{first['question']} {HOSTILE}"
    manifest.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n", encoding="utf-8")
    db = base / "pages.duckdb"
    common = ["--model", "models/demo", "--manifest", str(manifest), "--db", str(db), "--quiet"]
    assert main(["run", *common, "--run", PHRASING, "--study", "phrasing", "--variants", "3"]) == 0
    limit = [] if screenshots else ["--limit", "4"]
    assert main(["run", *common, "--run", BASELINE, "--gradcam", "--deletion", *limit]) == 0
    con = duckdb.connect(str(db), read_only=True)
    try:
        questions = dict(con.execute("SELECT item_id, question FROM prediction_details WHERE run_id = ?",
                                     [BASELINE]).fetchall())
    finally:
        con.close()
    assert any(HOSTILE in q for q in questions.values()), questions
    return Store(db, questions)




@pytest.fixture(scope="module")
def server(store, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", "--", "--db", str(store.db)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None:
                pytest.fail(f"streamlit run exited:\n{log.read_text(errors='replace')[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit run not healthy after 60 s:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def browser():
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> list[Path]:
    """Where each page's screenshot goes: a temporary folder always, and $MGV_SCREENSHOTS when set."""
    folders = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("MGV_SCREENSHOTS"):
        folders.append(Path(os.environ["MGV_SCREENSHOTS"]))
        folders[-1].mkdir(parents=True, exist_ok=True)
    return folders


class Tab:
    """A page in a browser context of its own (a fresh Streamlit session), recording any dialog."""

    def __init__(self, browser):
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.page.on("dialog", self._dialog)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser):
    opened: list[Tab] = []

    def new() -> Tab:
        opened.append(Tab(browser))
        return opened[-1]
    yield new
    for t in opened:
        dialogs = t.dialogs
        t.close()
        assert not dialogs, f"a dialog opened: {dialogs}"


# ---- reading a page ----------------------------------------------------------------------------------------

RENDERED = r"""() => {
  const app = document.querySelector('[data-testid=stApp]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelector('[data-testid=stStatusWidget], [data-testid=stSkeleton], [data-stale="true"]'))
    return false;
  const main = document.querySelector('[data-testid=stMainBlockContainer]');
  if (!main || !main.querySelector('[data-testid=stElementContainer]')) return false;
  const shown = e => !e.closest('details:not([open])') && e.getClientRects().length > 0;
  const sized = e => { const r = e && e.getBoundingClientRect(); return !!r && r.width > 0 && r.height > 0; };
  for (const c of main.querySelectorAll('[data-testid=stVegaLiteChart]'))
    if (shown(c) && !sized(c.querySelector('svg, canvas'))) return false;
  for (const d of main.querySelectorAll('[data-testid=stDataFrame]'))  // canvas drawn, its DOM copy made
    if (shown(d) && !(sized(d.querySelector('canvas')) && d.querySelector('[role=columnheader]'))) return false;
  for (const i of main.querySelectorAll('img'))
    if (shown(i) && !(i.complete && i.naturalWidth > 0)) return false;
  return true;
}"""

REPORT = r"""() => {
  const main = document.querySelector('[data-testid=stMainBlockContainer]');
  const texts = s => [...main.querySelectorAll(s)].map(e => e.innerText.trim().slice(0, 1000));
  const box = e => { const r = e ? e.getBoundingClientRect() : {width: 0, height: 0};
                     return {tag: e ? e.tagName.toLowerCase() : null, width: r.width, height: r.height}; };
  return {
    heading: main.querySelector('h1')?.innerText.trim() ?? null,
    exceptions: texts('[data-testid=stException]'),
    errors: texts('[data-testid=stAlertContentError]'),
    warnings: texts('[data-testid=stAlertContentWarning]'),
    infos: texts('[data-testid=stAlertContentInfo]'),
    frames: main.querySelectorAll('[data-testid=stDataFrame]').length,
    height: document.querySelector('[data-testid=stMain]')?.scrollHeight ?? 0,
    charts: [...main.querySelectorAll('[data-testid=stVegaLiteChart]')]
      .map(c => ({...box(c.querySelector('svg, canvas')), hidden: !!c.closest('details:not([open])')})),
    images: [...main.querySelectorAll('img')].map(i => ({src: i.src.slice(-60), ok: i.complete && i.naturalWidth > 0,
                                                         hidden: !!i.closest('details:not([open])')})),
    scripts: [...document.querySelectorAll('script')].filter(s => /alert\(1\)/.test(s.textContent)).length,
    bolds: [...document.querySelectorAll('b')].filter(b => b.textContent === 'bold').length,
    text: document.body.innerText,
  };
}"""

SVG_TEXT = "() => [...document.querySelectorAll('[data-testid=stVegaLiteChart] svg text')].map(t => t.textContent)"
GRID_TEXT = ("() => [...document.querySelectorAll('[data-testid=stMainBlockContainer] [data-testid=stDataFrame] "
             "[role=gridcell], [data-testid=stMainBlockContainer] [data-testid=stDataFrame] [role=columnheader]')]"
             ".map(c => c.textContent)")


def wait_rendered(page, timeout_s: float = 30) -> None:
    page.wait_for_function(RENDERED, timeout=timeout_s * 1000, polling=100)


def open_page(tab: Tab, url: str) -> float:
    """Load `url` and wait until it has rendered; the seconds that took."""
    start = time.monotonic()
    tab.page.goto(url)
    wait_rendered(tab.page)
    return time.monotonic() - start


def wait_for_param(page, name: str, old: str | None) -> None:
    """Wait until the URL's ?name= is no longer `old` (None: missing), which the script run a widget started
    writes, then until that run has rendered."""
    page.wait_for_function("([name, old]) => new URLSearchParams(location.search).get(name) !== old",
                           arg=[name, old], timeout=15000, polling=100)
    wait_rendered(page)


def eventually(read, check, what: str, timeout_s: float = 10):
    """read() until check(value) holds (data grids copy their cells into the DOM a moment after a rerun)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout_s:.0f} s, {what}: {value!r}")
        time.sleep(0.1)


def _words(text: str) -> str:
    return " ".join(text.split())


def href(page) -> str:
    """The address bar's URL (Streamlit rewrites it with history.replaceState as widgets change)."""
    return page.evaluate("() => location.href")


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query)


def _out(capsys, line: str) -> None:
    with capsys.disabled():  # shows in `pytest -q` output too
        print(line, flush=True)


def screenshot(page, folders: list[Path], name: str) -> None:
    """A full-page PNG in every folder: Streamlit scrolls its main area, not the document, so the viewport
    is first made as tall as that area's content."""
    height = page.evaluate("() => Math.max(...['[data-testid=stMain]', '[data-testid=stAppViewContainer]',"
                           " '[data-testid=stSidebarContent]'].map(s => document.querySelector(s)?.scrollHeight || 0),"
                           " document.documentElement.scrollHeight)")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(VIEWPORT["height"], int(height)),
                                                                        MAX_SHOT_HEIGHT)})
    wait_rendered(page)
    page.wait_for_timeout(300)  # charts re-lay themselves out after the resize
    picture = page.screenshot(full_page=True, animations="disabled")
    for folder in folders:
        # 256 colours: a third of the bytes for the copies kept in the repository, and alike to the eye
        Image.open(io.BytesIO(picture)).convert("RGB").quantize(256).save(folder / f"{name}.png", optimize=True)


# ---- the tests ---------------------------------------------------------------------------------------------

def test_app_lists_pages():
    assert len(PAGES) >= 2 and sum(p.url_path == "" for p in PAGES) == 1, PAGES
    assert {"condition-accuracy", "attention"} <= {p.url_path for p in PAGES}, PAGES


@pytest.fixture(scope="module")
def cold_render(server, browser) -> float:
    """One load of the default page first, so that the figures below leave out the server's one-time start
    (the first script run imports the toolkit); the seconds that first load took."""
    t = Tab(browser)
    try:
        return open_page(t, server)
    finally:
        t.close()


def _check(report: dict, where: str, url_path: str) -> None:
    assert not report["exceptions"], f"{where}: exception box(es): {report['exceptions']}"
    unexpected = [e for e in report["errors"] if not any(x in e for x in EXPECTED_ERRORS.get(url_path, []))]
    assert not unexpected, f"{where}: st.error box(es): {unexpected}"
    assert report["heading"], f"{where}: no title heading"
    flat = [c for c in report["charts"] if not c["hidden"] and not (c["width"] > 0 and c["height"] > 0)]
    assert not flat, f"{where}: chart(s) not drawn: {report['charts']}"
    broken = [i for i in report["images"] if not i["hidden"] and not i["ok"]]
    assert not broken, f"{where}: picture(s) not loaded: {broken}"
    assert report["scripts"] == 0 and report["bolds"] == 0, f"{where}: an element was made from the question"


def _drawn(report: dict) -> int:
    return len(report["charts"]) + len(report["images"]) + report["frames"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_renders(page: Page, server, cold_render, tab, shots, capsys):
    """On the default run; again on the phrasing run (?run=) where the default run leaves the page with
    nothing drawn or with a note (st.info), as it does the phrasing pages."""
    if page.url_path == "":
        _out(capsys, f"\n[render] (the server's first script run, a cold start: {cold_render:.2f} s)")
    visits = []
    for run in (BASELINE, PHRASING):
        t = tab()
        seconds = open_page(t, f"{server}/{page.url_path}" + ("" if run == BASELINE else f"?run={run}"))
        report = t.page.evaluate(REPORT)
        _check(report, f"{page.name} on {run}", page.url_path)
        visits.append((t, run, seconds, report))
        if _drawn(report) and not report["infos"]:
            break
    times = ", ".join(f"{seconds:.2f} s on {run}" for _, run, seconds, _ in visits)
    slow = any(seconds > RENDER_TARGET_S for _, _, seconds, _ in visits)
    _out(capsys, f"\n[render] {page.name:<19} first complete render {times} (target <= {RENDER_TARGET_S:.0f} s)"
                 f"{'  SLOW' if slow else ''}")
    for _, run, _, report in visits:
        notes = [f"{len(report['charts'])} chart(s), {report['frames']} table(s), "
                 f"{len(report['images'])} picture(s)"]
        if report["warnings"] or report["infos"]:
            notes.append(f"notes: {[*report['warnings'], *report['infos']]}"[:300])
        if HOSTILE in report["text"]:
            notes.append("shows the <script> question as text")
        _out(capsys, f"[render]   on {run}: {'; '.join(notes)}")
    # The screenshot: of the visit that shows most (charts, pictures, tables, then height); ties: the default run.
    shown = max(visits, key=lambda v: (_drawn(v[3]), v[3]["height"]))
    screenshot(shown[0].page, shots, page.name)


def _chips(page, label: str) -> list[str]:
    box = page.locator("[data-testid=stMultiSelect]").filter(has=page.get_by_label(label, exact=True))
    return box.locator("[data-tag] [title]").all_inner_texts()


def test_condition_filter_is_in_the_url(server, tab):
    t = tab()
    open_page(t, f"{server}/condition-accuracy")
    page = t.page
    before = _chips(page, "Conditions")
    assert len(before) >= 2, before
    assert "condition" not in query(href(page))  # every condition: no parameter
    dropped, kept = before[0], before[1:]
    assert dropped in page.evaluate(SVG_TEXT) and dropped in page.evaluate(GRID_TEXT)

    page.get_by_role("button", name=f"Remove {dropped}", exact=True).click()
    wait_for_param(page, "condition", None)
    url = href(page)
    assert query(url)["condition"] == kept, url
    assert _chips(page, "Conditions") == kept
    chart = eventually(lambda: page.evaluate(SVG_TEXT), lambda texts: dropped not in texts and set(kept) <= set(texts),
                       f"the chart's axis still shows {dropped}")
    # The grid keeps only the rows in view in the DOM: the first kept condition is there, the dropped one is not.
    grid = eventually(lambda: page.evaluate(GRID_TEXT), lambda texts: dropped not in texts and kept[0] in texts,
                      f"the table still shows {dropped}")

    fresh = tab()  # the copied link, in a browser that never saw the page
    open_page(fresh, url)
    assert _chips(fresh.page, "Conditions") == kept
    assert fresh.page.evaluate(SVG_TEXT) == chart
    eventually(lambda: fresh.page.evaluate(GRID_TEXT), lambda cells: cells == grid, "the table differs")
    assert query(href(fresh.page))["condition"] == kept


def _attention_view(page) -> dict:
    return {"prediction": page.get_by_role("combobox", name="Prediction", exact=True).input_value(),
            "caption": page.locator("[data-testid=stCaptionContainer]", has_text="P(yes)").first.inner_text(),
            "metrics": page.evaluate(GRID_TEXT)}


def _open_picker(page, label: str):
    box = page.locator("[data-testid=stSelectbox]").filter(has=page.get_by_label(label, exact=True))
    box.get_by_role("button", name="Open").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    return options


def test_attention_item_is_in_the_url(server, store, tab):
    t = tab()
    open_page(t, f"{server}/attention")
    page = t.page
    first_item = query(href(page))["item"][0]
    before = _attention_view(page)
    assert store.questions[first_item] in before["prediction"]

    options = _open_picker(page, "Prediction")
    labels = options.all_inner_texts()
    assert len(labels) >= 2, labels
    target = next(i for i, label in enumerate(labels) if _words(label) != _words(before["prediction"]))
    options.nth(target).click()
    wait_for_param(page, "item", first_item)
    url = href(page)
    item = query(url)["item"][0]
    assert item in store.questions, (item, url)
    after = eventually(lambda: _attention_view(page), lambda view: view["metrics"] != before["metrics"],
                       "the map's metrics did not change with the prediction")
    assert _words(after["prediction"]) == _words(labels[target])
    assert store.questions[item] in after["prediction"]

    fresh = tab()
    open_page(fresh, url)
    assert query(href(fresh.page))["item"] == [item]
    eventually(lambda: _attention_view(fresh.page), lambda view: view == after, "the copied link shows another view")


def test_script_question_is_literal_text(server, store, tab):
    hostile_item = next(i for i, q in store.questions.items() if HOSTILE in q)
    t = tab()
    open_page(t, f"{server}/attention?item={hostile_item}")
    page = t.page
    assert HOSTILE in page.get_by_role("combobox", name="Prediction", exact=True).input_value()
    options = _open_picker(page, "Prediction")
    shown = [o for o in options.all_inner_texts() if HOSTILE in o]
    assert len(shown) == 1, options.all_inner_texts()
    assert HOSTILE in page.evaluate("() => document.body.innerText")  # the open list's text: in the DOM as typed
    made = page.evaluate("() => [...document.querySelectorAll('[role=option] script, [role=option] b')].length")
    assert made == 0
    report = page.evaluate(REPORT)
    assert report["scripts"] == 0 and report["bolds"] == 0, report
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)  # long enough for an alert from an injected script to open
    assert not t.dialogs, t.dialogs


def test_live_page_refuses_an_upload_that_is_not_an_image_or_too_large(server, tab, tmp_path):
    t = tab()
    open_page(t, f"{server}/live")
    page = t.page
    uploader = page.locator("[data-testid=stFileUploader] input[type=file]")
    uploader.set_input_files({"name": "scan.png", "mimeType": "image/png", "buffer": b"%PDF-1.7 not an image"})
    errors = eventually(lambda: page.locator("[data-testid=stAlertContentError]").all_inner_texts(), bool,
                        "no error for a file that is not an image")
    assert "scan.png" in errors[0], errors  # the upload named, and the reason given
    assert not page.get_by_role("button", name="Ask").count()  # nothing to ask about
    too_large = tmp_path / "big.dcm"
    with too_large.open("wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)
    uploader.set_input_files(too_large)
    eventually(lambda: page.locator("[data-testid=stFileUploader]").inner_text(),
               lambda text: "big.dcm" in text and "or smaller" in text,
               "the browser did not refuse a file over the upload limit")
