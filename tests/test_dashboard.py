"""Every dashboard page rendered by Streamlit's AppTest, on a real store."""

from pathlib import Path

import pytest
from conftest import phrasing_store
from streamlit.testing.v1 import AppTest

from store import StoreWriter

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGES = ["views/overview.py", "views/condition_accuracy.py", "views/calibration.py", "views/browse.py",
         "views/attention.py",
         "views/phrasing.py",
         "views/attention_changes.py", "views/compare.py", "views/methods.py"]  # pages over a run; not live


def _app(db: Path, monkeypatch, **params) -> AppTest:
    monkeypatch.setenv("MGV_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    return at


def _param(at: AppTest, name: str) -> list[str]:
    value = at.query_params.get(name, [])
    return [value] if isinstance(value, str) else list(value)


@pytest.fixture(scope="module")
def populated_db(tiny_store) -> Path:
    """Two baseline runs over the same four items (ground truth yes, no, no, yes; edema twice,
    then pneumothorax twice), written straight through StoreWriter (conftest.py)."""
    return tiny_store({"older": ["no", "no", "no", "no"], "newer": ["yes", "no", "yes", "yes"]})


@pytest.mark.integration
@pytest.mark.parametrize("page", PAGES)
def test_pages_without_database_say_how_to_make_one(tmp_path, monkeypatch, page):
    at = _app(tmp_path / "missing.duckdb", monkeypatch)
    at.run()
    at.switch_page(page).run()
    assert not at.exception
    assert any("No database" in i.value for i in at.info)
    assert any("python -m compute run" in m.value for m in at.markdown)
    assert not (tmp_path / "missing.duckdb").exists()  # the dashboard never creates it


@pytest.mark.integration
def test_pages_with_empty_database(tmp_path, monkeypatch):
    StoreWriter(tmp_path / "empty.duckdb")
    at = _app(tmp_path / "empty.duckdb", monkeypatch)
    at.run()
    assert not at.exception
    assert any("holds no runs" in i.value for i in at.info)


@pytest.mark.integration
def test_overview_shows_newest_run_and_headline(populated_db, monkeypatch):
    at = _app(populated_db, monkeypatch)
    at.run()
    assert not at.exception
    assert at.sidebar.selectbox[0].value == "newer"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Accuracy"] == "75.0%"
    assert metrics["Questions answered"] == "4"
    assert _param(at, "run") == ["newer"]


@pytest.mark.integration
def test_run_from_url_is_selected(populated_db, monkeypatch):
    at = _app(populated_db, monkeypatch, run="older")
    at.run()
    assert at.sidebar.selectbox[0].value == "older"
    assert {m.label: m.value for m in at.metric}["Accuracy"] == "50.0%"


@pytest.mark.integration
def test_condition_accuracy_page_table_and_filter(populated_db, monkeypatch):
    at = _app(populated_db, monkeypatch, run="newer")
    at.run()
    at.switch_page("views/condition_accuracy.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    edema = table[table.condition == "edema"].set_index("ground_truth")
    assert edema.loc["all", "n"] == 2 and edema.loc["all", "accuracy"] == 1.0
    pneumothorax = table[table.condition == "pneumothorax"].set_index("ground_truth")
    assert pneumothorax.loc["no", "accuracy"] == 0.0
    at.multiselect[0].set_value(["pneumothorax"]).run()
    assert not at.exception
    assert set(at.dataframe[0].value.condition) == {"pneumothorax"}
    assert _param(at, "condition") == ["pneumothorax"]


@pytest.mark.integration
def test_hostile_filter_values_from_url_leave_store_intact(populated_db, monkeypatch):
    hostile = "'; DROP TABLE runs; --"
    at = _app(populated_db, monkeypatch, run=hostile, condition=hostile)
    at.run()
    at.switch_page("views/condition_accuracy.py").run()
    assert not at.exception
    from store import queries
    assert set(queries.list_runs(populated_db).run_id) == {"older", "newer"}


@pytest.fixture(scope="module")
def study_db(tmp_path_factory) -> Path:
    """A real baseline run of the committed demo model, with maps, Grad-CAM and deletion tests."""
    from compute.cli import main
    from compute.demo.synth import SynthConfig, generate_dataset
    base = tmp_path_factory.mktemp("attention_page")
    manifest = generate_dataset(SynthConfig(n=2, seed=4, size=128, dicom_fraction=0.5), base / "synth", progress=False)
    db = base / "study.duckdb"
    for run, extra in (("maps", ["--gradcam"]), ("no-maps", ["--no-maps"])):
        assert main(["run", "--model", "models/demo", "--manifest", str(manifest), "--db", str(db), "--run", run,
                     "--quiet", *extra]) == 0
    return db


@pytest.mark.slow
@pytest.mark.integration
def test_attention_page_shows_overlay_metrics_and_provenance(study_db, monkeypatch):
    at = _app(study_db, monkeypatch, run="maps")
    at.run()
    at.switch_page("views/attention.py").run()
    assert not at.exception
    assert len(at.get("image")) == 1
    metrics = at.dataframe[0].value.set_index("metric")["value"]
    pickers = {s.label: s for s in at.selectbox}
    from store import queries
    stored = queries.item_maps(study_db, "maps", pickers["Prediction"].value).set_index(["method", "layer"])
    assert metrics["inside_body_ratio"] == pytest.approx(stored.loc[("attention", -1), "inside_body_ratio"])
    assert metrics["attention_entropy"] == pytest.approx(stored.loc[("attention", -1), "attention_entropy"])
    assert pickers["Method"].options[0] == "attention"
    assert pickers["Layer"].value == -1  # the mean over layers comes first
    pickers["Layer"].set_value(2).run()
    assert not at.exception and _param(at, "layer") == ["2"]
    assert at.expander[0].label == "Provenance"
    vision = [m for m in {s.label: s for s in at.selectbox}["Method"].options if m != "attention"]
    assert vision and set(vision) <= {"gradcam", "activation"}  # Grad-CAM, or its recorded fallback
    {s.label: s for s in at.selectbox}["Method"].set_value(vision[0]).run()
    assert not at.exception and _param(at, "method") == [vision[0]]
    assert {s.label: s for s in at.selectbox}["Layer"].options == ["layer 1"]  # the last vision layer
    if vision[0] == "activation":
        assert any("fell back to activation" in w.value for w in at.warning)


@pytest.mark.slow
@pytest.mark.integration
def test_attention_page_link_reproduces_the_view(study_db, monkeypatch):
    from store import queries
    items = queries.mapped_items(study_db, "maps")
    second = items.item_id.iloc[1]
    at = _app(study_db, monkeypatch, run="maps", item=second, method="attention", layer="3")
    at.run()
    at.switch_page("views/attention.py").run()
    assert not at.exception
    pickers = {s.label: s for s in at.selectbox}
    assert pickers["Prediction"].value == second and pickers["Layer"].value == 3


@pytest.mark.slow
@pytest.mark.integration
def test_attention_page_for_a_run_without_maps(study_db, monkeypatch):
    at = _app(study_db, monkeypatch, run="no-maps")
    at.run()
    at.switch_page("views/attention.py").run()
    assert not at.exception
    assert any("stored no maps" in i.value for i in at.info)


def test_overlay_leaves_unattended_pixels_clear_and_hides_below_threshold():
    import numpy as np
    from PIL import Image

    from dashboard.overlay import overlay
    image = Image.new("L", (32, 32), 128)
    grid = np.zeros((4, 4))
    grid[0, 0] = 1.0
    out = np.asarray(overlay(image, grid, opacity=0.8, size=32)).astype(int)
    assert (out[-8:, -8:] == 128).all()  # no attention: the image shows through unchanged
    assert (out[:2, :2] != 128).any()  # the peak is coloured
    hidden = np.asarray(overlay(image, grid, opacity=0.8, threshold=1.01, size=32))
    assert (hidden == 128).all()


@pytest.fixture(scope="module")
def phrasing_db(tmp_path_factory) -> Path:
    """A real phrasing run of the committed demo model: 2 images x 2 questions x (baseline + 4 rewrites)."""
    return phrasing_store(tmp_path_factory.mktemp("phrasing_pages"), "ph", variants=4)


@pytest.mark.integration
def test_phrasing_page_table_heatmap_and_group(phrasing_db, monkeypatch):
    at = _app(phrasing_db, monkeypatch, run="ph")
    at.run()
    at.switch_page("views/phrasing.py").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Groups"] == "4"
    from compute.reports import phrasing_report
    from store import queries
    report = phrasing_report(queries.phrasing_rows(phrasing_db, "ph"), queries.attention_changes(phrasing_db, "ph"),
                             "ph")  # what `python -m compute report` prints
    assert {m.label: m.value for m in at.metric} == {
        "Groups": str(report["groups"]), "Baseline accuracy": f"{report['baseline_accuracy']:.1%}",
        "Mean group consistency": f"{report['consistency_mean']:.3f}",
        "Mean flip rate": f"{report['flip_rate_mean']:.1%}"}
    strategies = at.dataframe[0].value
    assert "baseline" in set(strategies.strategy) and {"accuracy", "ci_low", "ci_high", "n"} <= set(strategies)
    group = at.dataframe[1].value
    assert group.variant_index.tolist() == [0, 1, 2, 3, 4]
    at.multiselect[0].set_value(["baseline"]).run()
    assert not at.exception and set(at.dataframe[0].value.strategy) == {"baseline"}
    assert _param(at, "category") == ["baseline"]


@pytest.mark.integration
def test_attention_changes_page_distribution_and_gallery(phrasing_db, monkeypatch, change_counts):
    at = _app(phrasing_db, monkeypatch, run="ph")
    at.run()
    at.switch_page("views/attention_changes.py").run()
    assert not at.exception
    summary = at.dataframe[0].value.set_index("change")
    expected = change_counts(phrasing_db, "ph")
    assert sum(expected[k] for k in ("unchanged", "yes→no", "no→yes", "other")) == 16  # 2 images x 2 questions x 4
    assert summary["n"].to_dict() == {k: expected[k] for k in ("yes→no", "no→yes", "correct→wrong", "wrong→correct",
                                                               "unchanged")}
    assert len(at.get("image")) == 3 * 6  # six variants: baseline, variant and difference each
    assert any("Mann–Whitney U, changed vs unchanged" in m.value for m in at.markdown)
    at.multiselect[3].set_value(["wrong"]).run()
    assert not at.exception and _param(at, "correctness") == ["wrong"]


@pytest.mark.integration
def test_live_page_works_without_a_database(tmp_path, monkeypatch):
    at = _app(tmp_path / "missing.duckdb", monkeypatch)
    at.run()
    at.switch_page("views/live.py").run()
    assert not at.exception and at.text_input[0].value == "Is there pleural effusion?"
    at.radio[0].set_value("From the selected run").run()
    assert not at.exception and any("no images to pick from" in i.value for i in at.info)
    assert not (tmp_path / "missing.duckdb").exists()


@pytest.mark.slow
@pytest.mark.integration
def test_live_page_answers_a_question_about_a_run_image(study_db, monkeypatch, demo_session):
    at = _app(study_db, monkeypatch, run="maps")
    at.run()
    at.switch_page("views/live.py").run()
    assert not at.exception
    at.radio[0].set_value("From the selected run").run()
    at.text_input[0].set_value("Is there cardiomegaly?").run()
    at.button[0].click().run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    from compute.answering import ask
    from compute.metrics import attention_metrics
    from compute.metrics.regions import body_cells
    from compute.data.images import load_image
    from store import queries
    item_id = {s.label: s for s in at.selectbox}["Image of the run"].value
    image = load_image(queries.image_file(study_db, "maps", item_id).path)
    reference = ask(demo_session, image, "Is there cardiomegaly?", layers="all")  # the page's defaults
    assert (metrics["Answer"], metrics["P(yes)"]) == (reference.answer, f"{reference.p_yes:.3f}")
    assert len(at.get("image")) == 1
    table = at.dataframe[0].value.set_index("metric")["value"]
    body, _ = body_cells(image, reference.grid_shape)
    expected = attention_metrics(reference.map.mean, body)["inside_body_ratio"]
    assert table["inside_body_ratio"] == pytest.approx(expected, abs=1e-6)



@pytest.mark.integration
def test_run_images_are_found_from_any_working_directory(monkeypatch, tmp_path):
    """make demo passes a relative --manifest; the dashboard may start from another folder."""
    from compute.cli import main
    from compute.demo.synth import SynthConfig, generate_dataset
    from store import queries
    generate_dataset(SynthConfig(n=1, seed=3, size=128, dicom_fraction=0.0), tmp_path / "project" / "synth",
                     progress=False)
    model = Path("models/demo").resolve()
    monkeypatch.chdir(tmp_path / "project")
    assert main(["run", "--model", str(model), "--manifest", "synth/manifest.jsonl", "--db", "r.duckdb",
                 "--run", "rel", "--no-maps", "--quiet"]) == 0
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "project" / "r.duckdb"
    item_id = queries.predictions(db, "rel").item_id.iloc[0]
    path = queries.image_file(db, "rel", item_id).path
    assert path.is_absolute() and path.is_file()


@pytest.fixture
def one_image_run(tmp_path) -> tuple[Path, Path]:
    """(store, image file) of a baseline run with maps on one synthetic image."""
    from compute.cli import main
    from compute.demo.synth import SynthConfig, generate_dataset
    manifest = generate_dataset(SynthConfig(n=1, seed=6, size=128, dicom_fraction=0.0), tmp_path / "synth",
                                progress=False)
    db = tmp_path / "one.duckdb"
    assert main(["run", "--model", "models/demo", "--manifest", str(manifest), "--db", str(db), "--run", "one",
                 "--quiet"]) == 0
    return db, tmp_path / "synth" / "images" / "cxr_0000.png"


@pytest.mark.integration
def test_an_image_replaced_since_the_run_is_not_shown_as_the_one_the_model_saw(one_image_run, monkeypatch):
    from PIL import Image
    db, image = one_image_run
    at = _app(db, monkeypatch, run="one")
    at.run()
    at.switch_page("views/attention.py").run()
    assert not at.exception and len(at.get("image")) == 1
    Image.new("L", (128, 128), 30).save(image)  # other pixels at the same path
    at = _app(db, monkeypatch, run="one")
    at.run()
    at.switch_page("views/attention.py").run()
    assert not at.exception and len(at.get("image")) == 0
    assert any("has changed since the run read it" in w.value for w in at.warning)


@pytest.mark.integration
def test_runs_stored_before_schema_4_say_their_image_may_not_be_the_models(one_image_run, monkeypatch):
    """Old runs found their image by (dataset, image_id), which other runs could overwrite."""
    import hashlib

    import duckdb
    db, image = one_image_run
    con = duckdb.connect(str(db))
    con.execute("UPDATE predictions SET image_key = NULL")
    con.execute("INSERT INTO images SELECT dataset, image_id, ?, ?, 128, 128, 'png' FROM questions LIMIT 1",
                ["images/cxr_0000.png", hashlib.sha256(image.read_bytes()).hexdigest()])
    con.close()
    at = _app(db, monkeypatch, run="one")
    at.run()
    at.switch_page("views/attention.py").run()
    assert not at.exception and len(at.get("image")) == 1
    assert any("stored before schema 4" in w.value for w in at.warning)


@pytest.mark.integration
def test_overview_of_an_imported_run(tmp_path, monkeypatch):
    """Imported runs record no yes/no mass: the Overview says so instead of failing."""
    import json

    from compute.cli import main
    results = tmp_path / "r.jsonl"
    results.write_text(json.dumps({"study_id": "s1", "baseline_question": "Is there edema?", "ground_truth": "yes",
                                   "variant_index": 0, "question": "Is there edema?", "extracted_answer": "yes"}) + "\n")
    assert main(["import-results", str(results), "--db", str(tmp_path / "i.duckdb"), "--run", "imp"]) == 0
    at = _app(tmp_path / "i.duckdb", monkeypatch)
    at.run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Accuracy"] == "100.0%"
    assert any("probability mass: n/a (not recorded)" in c.value for c in at.caption)


@pytest.mark.integration
def test_a_failed_run_shows_its_reason(populated_db, monkeypatch, tmp_path):
    import shutil
    db = shutil.copy(populated_db, tmp_path / "failed.duckdb")
    w = StoreWriter(db)
    w.finish_run("newer", "failed", error="OSError: [Errno 28] No space left on device")
    at = _app(db, monkeypatch, run="newer")
    at.run()
    assert any("The run failed: OSError" in e.value for e in at.error)


@pytest.mark.slow
@pytest.mark.integration
def test_a_link_to_a_prediction_the_run_lacks_says_what_is_shown_instead(study_db, monkeypatch):
    at = _app(study_db, monkeypatch, run="maps", item="not-an-item", layer="7")
    at.run()
    at.switch_page("views/attention.py").run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Prediction: the link names \\'not\\-an\\-item\\'") for w in warnings), warnings
    assert any(w.startswith("Layer: the link names \\'7\\'") and "showing mean over layers" in w
               for w in warnings), warnings


@pytest.mark.integration
def test_the_attention_page_says_why_body_metrics_are_missing(tmp_path, monkeypatch):
    from PIL import Image

    from compute.cli import main
    (tmp_path / "img").mkdir()
    Image.new("L", (20, 20), 90).save(tmp_path / "img" / "small.png")
    (tmp_path / "m.jsonl").write_text('{"image": "img/small.png", "question": "Is there edema?", "answer": "no", '
                                      '"condition": "edema"}\n')
    db = tmp_path / "s.duckdb"
    assert main(["run", "--model", "models/demo", "--manifest", str(tmp_path / "m.jsonl"), "--db", str(db),
                 "--run", "small", "--quiet"]) == 0
    at = _app(db, monkeypatch, run="small")
    at.run()
    at.switch_page("views/attention.py").run()
    assert not at.exception
    metrics = set(at.dataframe[0].value.metric)
    assert "attention_entropy" in metrics and "inside_body_ratio" not in metrics
    assert any("no body\\-based metrics\\: the image is 20x20 px" in c.value for c in at.caption), \
        [c.value for c in at.caption]


def test_cached_reads_show_results_written_since(tmp_path, tiny_store, monkeypatch):
    """dashboard.data caches each query on the store file's state: a rerun over an unchanged
    store reads nothing, a read after new results land shows them."""
    from dashboard import data
    from store import queries
    db = tmp_path / "growing.duckdb"
    assert data.has_runs(db) is False and not db.exists()  # no file yet: no runs, and none created
    tiny_store({"first": ["yes", "no"]}, db=db)
    assert data.has_runs(db)
    assert data.list_runs(db).run_id.tolist() == ["first"]
    assert data.condition_counts(db, "first", None).set_index(["condition", "ground_truth"]).loc[("edema", "all"), "n"] == 2
    real, calls = queries.list_runs, []
    monkeypatch.setattr(queries, "list_runs", lambda path: calls.append(path) or real(path))
    assert data.list_runs(db).run_id.tolist() == ["first"] and not calls  # unchanged: from the cache
    tiny_store({"second": ["yes", "no", "yes"]}, db=db)
    assert data.list_runs(db).run_id.tolist() == ["second", "first"] and len(calls) == 1
    assert data.overview(db, "second")["n_done"] == 3
    assert data.condition_counts(db, "second", ["pneumothorax"]).set_index("ground_truth").loc["all", "n"] == 1


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("method", ["knockout", "logit_lens"])
def test_live_page_makes_the_new_maps(study_db, monkeypatch, method):
    at = _app(study_db, monkeypatch, run="maps")
    at.run()
    at.switch_page("views/live.py").run()
    at.radio[0].set_value("From the selected run").run()
    {s.label: s for s in at.selectbox}["Map"].set_value(method).run()
    if method == "logit_lens":  # the term defaults to the question's words for its condition
        assert {t.label: t for t in at.text_input}["Term"].value == "pleural effusion"
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.get("image")) == 1 and method in at.get("image")[0].proto.imgs[0].caption.replace("\\", "")
