"""The dashboard on hostile input, rendered by Streamlit's AppTest on a real store.

A real phrasing run of the demo model, under a hostile run name, dataset and instruction,
then every user-text column of the store overwritten with Markdown, HTML, links, images,
Streamlit directives, LaTeX, table and heading syntax, newlines and spreadsheet formulas,
each value marked by its own sentinel. Every page must show these values as text: in a
plain element (text, code, json, dataframe, selectbox/multiselect options), or escaped in
one that Streamlit renders as Markdown. `shown_text` walks the whole element tree, so a new
page is covered by adding it to PAGES. Also: CSV downloads, broken database files, hostile
query parameters, an unknown ?run=, and the live page's model and upload errors.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from google.protobuf.descriptor import FieldDescriptor
from streamlit.testing.v1 import AppTest

from test_dashboard import _app

from dashboard.downloads import FORMULA_START, csv_text, file_name, neutralise_formulas
from dashboard.safe_text import WORD_JOINER, escape_markdown, shorten

PAGES = ["views/overview.py", "views/condition_accuracy.py", "views/phrasing.py", "views/calibration.py",
         "views/browse.py", "views/attention.py", "views/attention_changes.py", "views/live.py"]


def hostile(sentinel: str) -> str:
    """A value that is harmful as Markdown, HTML or a spreadsheet cell, marked by `sentinel`."""
    return (f'=HYPERLINK("http://evil.example/{sentinel}") {sentinel} ![img{sentinel}](http://127.0.0.1:9/pixel.png) '
            f"[click{sentinel}](http://evil.example) **bold{sentinel}** _it{sentinel}_ `tick{sentinel}` "
            f"<script>alert(1)</script> <img src=x onerror=alert(1)> :red[red{sentinel}] :material/home: :smile: "
            f"${sentinel}^2$ ~~del{sentinel}~~ http://evil.example/bare www.evil.example user@evil.example "
            f"&amp; [^1] \\*\n# heading{sentinel}\n---\n| a | b |\n| - | - |\n    indented{sentinel}\n")


# Printable, as the CLI demands of a run name; Markdown all the same.
RUN = ("ZQXrun **boldZQR** `tickZQR` [clickZQR](http://evil.example) ![imgZQR](http://127.0.0.1:9/pixel.png) "
       ":red[redZQR] :material/home: $ZQR^2$ <b>ZQR</b> | a | b | www.evil.example")
DATASET = "ZQXdataset **boldZQD** `tickZQD` [clickZQD](http://evil.example) $ZQD^2$"
INSTRUCTION = "ZQXinstruction `tickZQI` **boldZQI** $ZQI^2$ Answer yes or no."
DB_FOLDER = "ZQXdb **boldZQB** `tickZQB` [clickZQB](x) $ZQB^2$ :red[redZQB]"

# Each column, in every table that has it, gets hostile(sentinel) in front of its value; a
# column's prefix is the same in every table, so keys and joins still match.
COLUMNS = {
    "model_id": "ZQXmodel", "instruction": "ZQXinstruction", "system_prompt": "ZQXsystem",
    "manifest_path": "ZQXmanifest", "device": "ZQXdevice", "dataset": "ZQXdataset",
    "question": "ZQXquestion", "baseline_question": "ZQXbaseline", "strategy": "ZQXstrategy",
    "strategy_category": "ZQXcategory", "condition": "ZQXcondition", "group_id": "ZQXgroup",
    "image_id": "ZQXimage", "item_id": "ZQXitem", "baseline_item_id": "ZQXitem", "location": "ZQXlocation",
    "transformation": "ZQXtransform", "error": "ZQXerror", "generated_text": "ZQXreply",
    "fallback_reason": "ZQXfallback", "term": "ZQXterm",
}
VALUES = {**{s: hostile(s) for s in COLUMNS.values()}, "ZQXrun": RUN, "ZQXdb": DB_FOLDER}
SENTINEL = re.compile(r"ZQX[a-z]+")

# Syntax that must never reach an element Streamlit renders as Markdown unescaped.
RAW = ["](http", "**bold", "_it", "`tick", "<script", "<img", "<b>", ":red[", ":material/", ":smile:", "$ZQ",
       "~~del", "# heading", "| a |", "[^1]", "&amp;", "\n"]
_RAW = re.compile("|".join(r"(?<!\\)" + re.escape(r) for r in RAW))
_UNESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_AUTOLINK = re.compile(r"(?i)https?:|www\.|\w@\w")  # what GFM links in the text that Markdown leaves


def build_hostile_store(base: Path) -> Path:
    """The demo model's phrasing run under hostile names, then every user-text column made hostile."""
    from compute.cli import main
    from compute.demo.synth import SynthConfig, generate_dataset
    manifest = generate_dataset(SynthConfig(n=2, seed=4, size=128), base / "synth", progress=False)
    db = base / DB_FOLDER / "hostile.duckdb"
    assert main(["run", "--model", "models/demo", "--manifest", str(manifest), "--db", str(db), "--run", RUN,
                 "--dataset", DATASET, "--instruction", INSTRUCTION, "--study", "phrasing", "--variants", "3",
                 "--quiet"]) == 0
    con = duckdb.connect(str(db))
    try:
        for column, sentinel in COLUMNS.items():
            tables = con.execute(
                "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t"
                " USING (table_schema, table_name) WHERE t.table_type = 'BASE TABLE' AND c.column_name = ?",
                [column]).fetchall()
            for (table,) in tables:
                con.execute(f'UPDATE "{table}" SET "{column}" = ? || coalesce("{column}", \'\')',
                            [hostile(sentinel)])
    finally:
        con.close()
    return db


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory) -> Path:
    return build_hostile_store(tmp_path_factory.mktemp("hostile"))


def _page(db: Path, monkeypatch, page: str, **params) -> AppTest:
    """`page` as a link with these query parameters opens it (AppTest starts on the default page)."""
    at = _app(db, monkeypatch, **params)
    at.run()
    for k, v in params.items():
        at.query_params[k] = v  # the first page wrote its own choices back
    return at.switch_page(page).run()


# ---- the element-tree walker ---------------------------------------------------------------

# What Streamlit 1.67's frontend shows as plain text (checked in Chromium, see
# tests/test_dashboard_browser.py); every other string of every element is taken to be
# Markdown, so an element added later is checked strictly until it is listed here.
PLAIN_TYPES = {"text", "code", "json", "dataframe", "vega_lite_chart", "arrow_vega_lite_chart"}
PLAIN_FIELDS = {("selectbox", ".options"), ("selectbox", ".raw_value"), ("multiselect", ".options"),
                ("multiselect", ".raw_values"), ("text_input", ".value"), ("text_input", ".default"),
                ("page_link", ".query_string")}  # a link's URL-encoded query (?run=…&item=…), never shown
NOT_SHOWN = {"id", "form_id", "tag", "url", "language", "format", "theme", "mime_type"}


def _strings(message, path: str = "") -> Iterator[tuple[str, str]]:
    for field, value in message.ListFields():
        for item in (value if field.is_repeated else [value]):
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                yield from _strings(item, f"{path}.{field.name}")
            elif field.type == FieldDescriptor.TYPE_STRING and field.name not in NOT_SHOWN:
                yield f"{path}.{field.name}", item


def shown_text(at: AppTest) -> Iterator[tuple[str, str, bool]]:
    """(where, text, rendered as Markdown?) for every string of every element and block."""
    def walk(node):
        kind = str(getattr(node, "type", type(node).__name__))
        if kind == "dataframe":
            frame = node.value
            for cell in [*map(str, frame.columns), *map(str, frame.to_numpy().ravel())]:
                yield "dataframe", cell, False
        elif getattr(node, "proto", None) is not None:
            for path, text in _strings(node.proto):
                yield f"{kind}{path}", text, kind not in PLAIN_TYPES and (kind, path) not in PLAIN_FIELDS
        for child in getattr(node, "children", {}).values():
            yield from walk(child)
    yield from walk(at._tree)


def assert_shown_as_text(at: AppTest, expect: set[str] = frozenset()) -> None:
    """No exception; each hostile value in a Markdown element only escaped; `expect`'s sentinels shown."""
    assert not at.exception, [e.value for e in at.exception]
    seen: set[str] = set()
    for where, text, markdown in shown_text(at):
        sentinels = set(SENTINEL.findall(text))
        seen |= sentinels
        if not markdown:
            continue
        raw = _RAW.findall(text)
        assert not raw, f"{where} renders {raw} as Markdown: {text!r}"
        linked = _AUTOLINK.search(_UNESCAPE.sub(r"\1", text))
        assert not linked, f"{where} would link {linked.group(0)!r}: {text!r}"
        for s in sentinels & set(VALUES):
            assert _escaped_in(VALUES[s], text), f"{where} shows {s} other than escaped: {text!r}"
    assert expect <= seen, f"not shown: {expect - seen}"


def _escaped_in(value: str, text: str) -> bool:
    """Whether `text` holds `value` escaped, whole or cut short first (safe_text.shorten, as the Browse
    page's cards do)."""
    if escape_markdown(value) in text:
        return True
    return "…" in text and any(escape_markdown(shorten(value, k)) in text for k in range(20, len(value)))


# ---- the helpers ----------------------------------------------------------------------------

def test_escape_markdown_escapes_every_ascii_punctuation_and_flattens_lines():
    punctuation = "".join(chr(c) for c in range(33, 127) if not chr(c).isalnum())
    assert escape_markdown(punctuation) == "".join("\\" + c for c in punctuation)
    assert escape_markdown("a\nb\r\nc\td\x00e\u2028f  g ") == "a b c d e f g"
    assert escape_markdown("  # heading") == "\\# heading"  # no heading, list or indented code at the start
    assert escape_markdown(Path("data/x.duckdb")) == "data\\/x\\.duckdb"
    assert escape_markdown(KeyError("k")) == "\\'k\\'"


def test_escape_markdown_stops_gfm_links_in_plain_text():
    out = escape_markdown("see http://a.example, HTTPS://b.example, www.c.example and d@e.example")
    assert not _AUTOLINK.search(_UNESCAPE.sub(r"\1", out))
    assert _UNESCAPE.sub(r"\1", out).replace(WORD_JOINER, "") == \
        "see http://a.example, HTTPS://b.example, www.c.example and d@e.example"


@pytest.mark.parametrize("sentinel", sorted(set(COLUMNS.values())))
def test_escaped_hostile_values_read_back_as_the_same_text(sentinel):
    value = hostile(sentinel)
    shown = _UNESCAPE.sub(r"\1", escape_markdown(value)).replace(WORD_JOINER, "")
    assert shown == " ".join(value.split())
    assert not _RAW.findall(escape_markdown(value))
    assert _RAW.findall(value)


def test_shorten():
    assert shorten("abc", 5) == "abc" and shorten("abcdefgh", 5) == "abcd…" and len(shorten("x" * 999)) == 120


def test_neutralise_formulas_quotes_text_cells_only():
    frame = pd.DataFrame({
        "text": ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "plain", None, "a=b"],
        "number": [-1.5, 2, 3, 4, 5, 6, 7, 8, 9],
        "flag": [True, False, True, False, True, False, True, False, True],
        "=name": ["x"] * 9})
    out = neutralise_formulas(frame)
    assert out["text"].tolist()[:7] == ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "plain"]
    assert out["text"].isna().tolist()[7] and out["text"].tolist()[8] == "a=b"
    assert out["number"].tolist() == frame["number"].tolist() and out["number"].dtype == frame["number"].dtype
    assert out["flag"].dtype == bool and list(out.columns)[3] == "'=name"
    assert frame["text"][0] == "=1+1"  # a copy; the page's frame is untouched
    rows = list(csv.reader(io.StringIO(csv_text(frame), newline="")))
    assert rows[1][:2] == ["'=1+1", "-1.5"]
    assert not [c for row in rows for c in row if c.startswith(FORMULA_START) and c != "-1.5"]


def test_download_file_names_are_safe():
    assert re.fullmatch(r"ZQXrun_boldZQR_tickZQR_[A-Za-z0-9._-]*_strategies\.csv", file_name(RUN, "strategies"))
    name = file_name("../../etc/=x y", "predictions")
    assert "/" not in name and not name.startswith((".", "=", "-")) and name.endswith("_predictions.csv")
    assert file_name("", "x") == "run_x.csv" and len(file_name("a" * 500, "x")) <= 90


# ---- every page over the hostile store ---------------------------------------------------------

EXPECT = {  # sentinels each page must show (as text)
    "views/overview.py": {"ZQXrun", "ZQXdb", "ZQXdataset", "ZQXmodel", "ZQXinstruction", "ZQXsystem", "ZQXdevice"},
    "views/condition_accuracy.py": {"ZQXrun", "ZQXdb", "ZQXcondition"},
    "views/phrasing.py": {"ZQXrun", "ZQXdb", "ZQXstrategy", "ZQXcategory", "ZQXgroup", "ZQXquestion"},
    "views/attention.py": {"ZQXrun", "ZQXdb", "ZQXquestion", "ZQXcondition", "ZQXfallback", "ZQXterm"},
    "views/attention_changes.py": {"ZQXrun", "ZQXdb", "ZQXquestion", "ZQXbaseline", "ZQXstrategy",
                                   "ZQXcondition", "ZQXcategory"},
    "views/calibration.py": {"ZQXrun", "ZQXdb", "ZQXcondition"},
    "views/browse.py": {"ZQXrun", "ZQXdb", "ZQXquestion", "ZQXcondition", "ZQXstrategy"},
    "views/live.py": {"ZQXrun", "ZQXdb"},
}


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("page", PAGES)
def test_pages_show_hostile_values_as_text(hostile_db, monkeypatch, page):
    at = _page(hostile_db, monkeypatch, page, run=RUN)
    assert at.sidebar.selectbox[0].value == RUN
    assert_shown_as_text(at, EXPECT[page])
    if page == "views/attention_changes.py":
        assert len([m for m in at.markdown if m.value.startswith("**Variant:**")]) == 6  # the gallery is full
    if page == "views/live.py":
        at.radio[0].set_value("From the selected run").run()
        assert_shown_as_text(at, {"ZQXimage"})
        assert len(at.get("image")) == 0 and not at.error


@pytest.mark.slow
@pytest.mark.integration
def test_csv_downloads_neutralise_formulas(hostile_db, monkeypatch):
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    downloads: list[tuple[str, bytes]] = []
    real = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        if mimetype == "text/csv":
            downloads.append((filename, path_or_data if isinstance(path_or_data, bytes) else path_or_data.encode()))
        return real(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    for page in ("views/condition_accuracy.py", "views/phrasing.py"):
        assert not _page(hostile_db, monkeypatch, page, run=RUN).exception
    assert len(downloads) == 3
    cells = {}
    for name, payload in downloads:
        assert "/" not in name and name.endswith(".csv") and not name.startswith(("=", "-", "."))
        rows = list(csv.reader(io.StringIO(payload.decode(), newline="")))
        header, body = rows[0], rows[1:]
        for row in body:
            for column, cell in zip(header, row):
                assert not cell.startswith(FORMULA_START) or _is_number(cell), (name, column, cell)
                cells.setdefault(column, []).append(cell)
    for column in ("question", "condition", "strategy", "error", "generated_text", "image_id", "item_id"):
        assert cells[column] and all(c.startswith("'=HYPERLINK(") for c in cells[column]), column
    assert all(_is_number(c) for c in cells["p_yes"] + cells["accuracy"])  # numbers stay numbers


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# ---- databases that are not stores --------------------------------------------------------------

def _text_file(path: Path) -> None:
    path.write_text("not a database\n")


def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


def _folder(path: Path) -> None:
    path.mkdir()


def _other_application(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE runs (x INTEGER)")
    con.close()


def _newer_schema(path: Path) -> None:
    from store import StoreWriter
    StoreWriter(path)
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (999, current_timestamp)")
    con.close()


@pytest.mark.integration
@pytest.mark.parametrize("make", [_text_file, _empty_file, _folder,
                                  _other_application,  # StoreError from store.queries since the store change
                                  _newer_schema])
def test_a_file_that_is_not_a_store_gets_one_error_on_every_page(tmp_path, monkeypatch, make):
    db = tmp_path / DB_FOLDER / "x.duckdb"
    db.parent.mkdir()
    make(db)
    before = sorted(p.name for p in db.parent.iterdir())
    at = _app(db, monkeypatch)
    at.run()
    for page in PAGES:
        at.switch_page(page).run()
        assert_shown_as_text(at, {"ZQXdb"})
        assert len(at.error) == 1, page
        message = at.error[0].value
        assert escape_markdown(db) in message and "python -m compute run" in message and "\n" not in message
        assert not at.title, f"{page} went on after the error"
    assert sorted(p.name for p in db.parent.iterdir()) == before  # nothing written next to it


# ---- hostile query parameters -----------------------------------------------------------------

PARAMS = ["item", "method", "layer", "group", "condition", "category", "change", "correctness", "model"]
PARAM_VALUES = {
    "markdown": hostile("ZQXparam"),
    "sql": "'; DROP TABLE runs; --",
    "html": "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "long": "ZQXlong" + "x" * 20_000,
    "nul": "a\x00b",
    "unicode": "Ω≈ç√∫ 🙂 \u202eRTL\u202c \ufeff e\u0301 𝕏",
    "numbers": "99999999999999999999",
    "abc": "abc",
}


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("value", PARAM_VALUES.values(), ids=PARAM_VALUES.keys())
def test_hostile_query_parameters_never_raise_and_stay_text(hostile_db, monkeypatch, value):
    params = {p: value for p in PARAMS}
    at = _app(hostile_db, monkeypatch, run=RUN, **params)
    at.run()
    for page in PAGES:
        at.query_params.update(params)  # each page writes its own choices back to the URL
        at.switch_page(page).run()
        assert_shown_as_text(at, EXPECT[page])
        if page == "views/attention_changes.py":
            assert len([m for m in at.markdown if m.value.startswith("**Variant:**")]) == 6
    from store import queries
    assert queries.list_runs(hostile_db).run_id.tolist() == [RUN]


@pytest.mark.slow
@pytest.mark.integration
def test_layer_out_of_range_and_unknown_item_fall_back_to_the_first(hostile_db, monkeypatch):
    for layer in ("abc", "99999999999999999999", "-1.0", ""):
        at = _page(hostile_db, monkeypatch, "views/attention.py", run=RUN, item="nope", layer=layer, method="x")
        assert_shown_as_text(at)
        pickers = {s.label: s for s in at.selectbox}
        assert pickers["Layer"].value == -1 and pickers["Method"].value == "attention"


@pytest.mark.slow
@pytest.mark.integration
def test_unknown_run_is_named_in_a_warning(hostile_db, monkeypatch):
    wanted = hostile("ZQXnorun")
    for page in ("views/overview.py", "views/attention.py"):
        at = _page(hostile_db, monkeypatch, page, run=wanted)
        assert_shown_as_text(at, {"ZQXnorun"})
        warnings = [w.value for w in at.warning if "no run named" in w.value]
        assert len(warnings) == 1
        assert escape_markdown(shorten(repr(wanted))) in warnings[0] and escape_markdown(repr(RUN)) in warnings[0]
        assert at.sidebar.selectbox[0].value == RUN


@pytest.mark.slow
@pytest.mark.integration
def test_known_run_gets_no_warning(hostile_db, monkeypatch):
    at = _page(hostile_db, monkeypatch, "views/overview.py", run=RUN)
    assert not at.warning
    at = _page(hostile_db, monkeypatch, "views/overview.py")
    assert not at.warning  # no ?run=: the newest, silently


# ---- the live page ------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("model", ["does/not-exist", hostile("ZQXmodelparam"), "/nonexistent/" + "x" * 5000,
                                   "a\x00b"], ids=["missing", "markdown", "long", "nul"])
def test_live_page_shows_a_model_that_cannot_load_as_an_error(hostile_db, monkeypatch, model):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # fail at once, not after reaching for the hub
    at = _page(hostile_db, monkeypatch, "views/live.py", run=RUN, model=model)
    at.file_uploader[0].upload("cxr.png", _png(), "image/png").run()
    at.button[0].click().run()
    assert_shown_as_text(at)
    assert len(at.error) == 1 and not at.metric
    if model == "does/not-exist":
        assert "does\\/not\\-exist" in at.error[0].value


def _png() -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.integration
def test_live_page_shows_an_unreadable_dicom_upload_as_an_error(tmp_path, monkeypatch):
    from compute.demo.dicom_writer import write_dicom
    path = tmp_path / "bad.dcm"
    write_dicom((np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16), path, window=(100, 0))
    at = _page(tmp_path / "missing.duckdb", monkeypatch, "views/live.py")
    at.file_uploader[0].upload("ZQXupload **boldU** [u](http://evil.example).dcm", path.read_bytes(),
                               "application/dicom").run()
    assert_shown_as_text(at)
    assert len(at.error) == 1 and not at.button  # no image: nothing to ask about
