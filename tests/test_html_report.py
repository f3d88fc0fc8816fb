"""`python -m compute report --format html`: one self-contained page with the headline tables and
figures, user text escaped; the same file from the dashboard's Overview."""

import html
import json
import re
from pathlib import Path

import pytest
from conftest import write_imported_run
from streamlit.testing.v1 import AppTest
from test_dashboard_hostile import RUN, build_hostile_store

from compute.cli import main
from compute.stored_report import gather

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory) -> Path:
    return build_hostile_store(tmp_path_factory.mktemp("html_report"))


def test_the_report_page_holds_every_section_and_escapes_user_text(hostile_db, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", "--db", str(hostile_db), "--run", RUN, "--format", "html", "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    for heading in ("Accuracy by condition", "Calibration and ROC", "Phrasing sensitivity", "Accuracy by strategy",
                    "Attention change against the baseline map"):
        assert f">{heading}<" in page
    assert page.count("<svg") >= 3  # accuracy, reliability, ROC
    outside_svg = re.sub(r"<svg.*?</svg>", "", page, flags=re.S)
    assert "<script" not in outside_svg.lower() and "<img" not in outside_svg.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the hostile questions' text, shown as text
    assert "<a " not in page and "http-equiv=\"Content-Security-Policy\"" in page
    assert html.escape(RUN) in page  # the run's name, escaped, in the title and heading


def test_the_report_figures_match_the_json_report(hostile_db, tmp_path):
    study = gather(hostile_db, RUN)
    calibration = study.report["calibration"]
    assert calibration["overall"]["n"] == len(study.probabilities) > 0
    assert sum(r["n"] for r in calibration["by_condition"].values()) == calibration["overall"]["n"]
    out = tmp_path / "r.json"
    assert main(["report", "--db", str(hostile_db), "--run", RUN, "--format", "json", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["calibration"] == json.loads(json.dumps(calibration))


def test_an_imported_run_reports_calibration_as_not_available(tmp_path, capsys):
    write_imported_run(tmp_path / "i.duckdb")
    assert main(["report", "--db", str(tmp_path / "i.duckdb"), "--run", "imp", "--format", "html"]) == 0
    assert "Not available: the run stored no P(yes)" in capsys.readouterr().out
    assert main(["report", "--db", str(tmp_path / "i.duckdb"), "--run", "imp"]) == 0
    assert "Not available: no P(yes) was stored." in capsys.readouterr().out


def test_the_overview_offers_the_same_file(hostile_db, monkeypatch):
    monkeypatch.setenv("MGV_DB", str(hostile_db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download the study report (HTML)" in labels
    # The button's file is facade.study_report_html's: the CLI's page, but for the minute it was written.
    from compute.facade import study_report_html
    out = hostile_db.with_name("cli.html")
    assert main(["report", "--db", str(hostile_db), "--run", RUN, "--format", "html", "--out", str(out)]) == 0
    written = re.compile(r"Written by MedGemma Visualizer on [^<]*")
    assert written.sub("", study_report_html(hostile_db, RUN)) == written.sub("", out.read_text(encoding="utf-8"))
