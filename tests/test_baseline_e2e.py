"""The demo model on a few synthetic X-rays, through the CLI, into a temporary DuckDB."""

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch

from compute.cli import main
from compute.demo.model import build_demo_model
from compute.model.loading import load_model
from compute.demo.synth import SynthConfig, generate_dataset
from compute.model.yes_no import yes_no_probabilities
from compute.answering import ask

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    model = build_demo_model(base / "model")
    manifest = generate_dataset(SynthConfig(n=4, seed=3, size=128, dicom_fraction=0.5), base / "synth",
                                progress=False)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    (base / "synth" / "images" / "not_an_image.png").write_text("hello")
    rows += [
        {**rows[0], "image": "images/absent.png", "image_id": "absent"},
        {**rows[0], "answer": "maybe"},
        {**rows[0], "image": "images/not_an_image.png", "image_id": "text"},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"model": model, "manifest": manifest, "rows": rows, "db": base / "results.duckdb"}


def _cli(assets, run="e2e", *extra, db=None):
    return main(["run", "--model", str(assets["model"]), "--manifest", str(assets["manifest"]),
                 "--db", str(db or assets["db"]), "--run", run, "--batch-size", "3", "--quiet", *extra])


@pytest.fixture(scope="module")
def e2e_db(assets):
    """The store holding the completed run 'e2e' over the whole manifest, for the tests that
    read it (so that each of them also passes alone). Tests that change it work on a copy."""
    assert _cli(assets) == 0
    return assets["db"]


def _copy_store(db, folder):
    import shutil
    copy = folder / db.name
    shutil.copy(db, copy)
    if db.with_name(db.name + ".wal").exists():
        shutil.copy(db.with_name(db.name + ".wal"), copy.with_name(copy.name + ".wal"))
    return copy


def _query(db, sql, params=()):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


@pytest.mark.integration
def test_run_records_every_row_and_its_outcome(assets):
    assert _cli(assets) == 0
    db, rows = assets["db"], assets["rows"]
    (status, model_id, fingerprint, instruction, versions, n_items), = _query(
        db, "SELECT status, model_id, weights_fingerprint, instruction, package_versions, n_items FROM runs")
    assert (status, model_id, instruction, n_items) == ("completed", str(assets["model"]), "Answer yes or no.", len(rows))
    assert len(fingerprint) == 64 and json.loads(versions)["torch"] == torch.__version__

    ok = _query(db, "SELECT answer, p_yes, yes_no_mass, correct, ground_truth, generated_text, latency_s "
                    "FROM prediction_details WHERE status = 'ok'")
    assert len(ok) == len(rows) - 3
    for answer, p_yes, mass, correct, truth, text, latency in ok:
        assert answer in ("yes", "no", "uncertain") and text is not None
        assert 0 <= p_yes <= 1 and 0 < mass <= 1 and latency > 0
        assert correct == (answer == truth)

    errors = dict(_query(db, "SELECT row_number, error FROM prediction_details WHERE status = 'failed'"))
    n = len(rows)
    assert errors[n - 1] == f"row {n - 1}: answer must be yes or no, got 'maybe'"
    assert "absent.png: file not found" in errors[n - 2] and errors[n - 2].startswith(f"row {n - 2}:")
    assert "not_an_image.png: not a PNG, JPEG or DICOM file" in errors[n]
    formats = {f for (f,) in _query(db, "SELECT format FROM image_files")}
    assert formats == {"png", "dicom"}


@pytest.mark.integration
def test_stored_p_yes_is_the_models_next_token_distribution(assets, e2e_db):
    """Reference: one plain forward pass, softmax at the last prompt position."""
    session = load_model(str(assets["model"]))
    row = assets["rows"][0]
    image = assets["manifest"].parent / row["image"]
    result = ask(session, image, row["question"])
    from compute.model.prompts import build_messages
    from compute.data.images import load_image
    inputs = session.processor.apply_chat_template(
        [build_messages(load_image(image), row["question"], session.prompt)], add_generation_prompt=True,
        tokenize=True, return_dict=True, return_tensors="pt")
    with torch.no_grad():
        logits = session.model(**inputs).logits[:, -1]  # (1, vocab)
    probs = torch.softmax(logits, -1)[0]
    yes, no = probs[session.yes_ids].sum(), probs[session.no_ids].sum()
    assert result.p_yes == pytest.approx(float(yes / (yes + no)), abs=1e-5)
    assert result.yes_no_mass == pytest.approx(float(yes + no), abs=1e-5)
    stored = _query(e2e_db, "SELECT p_yes FROM prediction_details WHERE run_id = 'e2e' AND row_number = 1")
    assert stored[0][0] == pytest.approx(result.p_yes, abs=1e-4)  # batched with padding vs alone


@pytest.mark.integration
def test_rerun_resumes_without_duplicates(assets, e2e_db, tmp_path, capsys):
    db = _copy_store(e2e_db, tmp_path)  # the module's store stays completed and whole for the other tests
    before = _query(db, "SELECT item_id, p_yes FROM predictions WHERE status = 'ok' ORDER BY item_id")
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM predictions WHERE item_id IN (SELECT item_id FROM predictions "
                "WHERE status = 'ok' ORDER BY item_id LIMIT 2)")
    con.execute("UPDATE runs SET status = 'interrupted'")
    con.close()
    capsys.readouterr()
    assert _cli(assets, db=db) == 0
    n_ok = len(before)
    assert f"2 done, 3 failed, {n_ok - 2} skipped" in capsys.readouterr().out  # only the gap was answered
    after = _query(db, "SELECT item_id, p_yes FROM predictions WHERE status = 'ok' ORDER BY item_id")
    assert [i for i, _ in after] == [i for i, _ in before]
    assert [p for _, p in after] == pytest.approx([p for _, p in before], abs=1e-6, nan_ok=True)
    assert _query(db, "SELECT status FROM runs") == [("completed",)]


@pytest.mark.integration
def test_same_run_name_with_other_prompt_is_refused(assets, e2e_db, capsys):
    assert _cli(assets, "e2e", "--instruction", "Reply with one word.") == 2
    assert "different configuration" in capsys.readouterr().err


@pytest.mark.integration
def test_completed_run_is_not_skipped_when_weights_change(assets, tmp_path, capsys):
    """The nothing-to-do shortcut must not hide that the model folder now holds other weights."""
    import shutil
    from compute.demo.model import DemoModelConfig
    model = shutil.copytree(assets["model"], tmp_path / "model")
    manifest = tmp_path / "good.jsonl"
    manifest.write_text("".join(json.dumps({**r, "image": str(assets["manifest"].parent / r["image"])}) + "\n"
                                for r in assets["rows"][:2]))
    args = ["run", "--model", str(model), "--manifest", str(manifest), "--db", str(tmp_path / "w.duckdb"),
            "--run", "w", "--quiet", "--allow-outside-root"]  # absolute image paths
    assert main(args) == 0
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().err
    build_demo_model(model, DemoModelConfig(seed=1))
    assert main(args) == 2
    assert "different model weights" in capsys.readouterr().err


def test_yes_no_probabilities_hand_computed():
    logits = torch.log(torch.tensor([[0.1, 0.3, 0.2, 0.4], [0.0, 0.0, 0.0, 1.0]]))  # ids: 0 yes, 1 Yes, 2 no
    p_yes, mass = yes_no_probabilities(logits, [0, 1], [2])
    assert p_yes[0].item() == pytest.approx(0.4 / 0.6) and mass[0].item() == pytest.approx(0.6)
    assert torch.isnan(p_yes[1]) and mass[1].item() == 0  # nothing to split: unknown, not "sure no"


def test_yes_no_token_ids_are_single_token_spellings(assets):
    from transformers import AutoTokenizer
    from compute.model.yes_no import yes_no_token_ids
    tokenizer = AutoTokenizer.from_pretrained(assets["model"])
    yes_ids, no_ids = yes_no_token_ids(tokenizer)
    assert {tokenizer.decode([i]).strip() for i in yes_ids} == {"yes", "Yes", "YES"}
    assert {tokenizer.decode([i]).strip() for i in no_ids} == {"no", "No", "NO"}
    assert not set(yes_ids) & set(no_ids)


@pytest.mark.integration
@pytest.mark.parametrize("option", [["--batch-size", "0"], ["--max-new-tokens", "0"], ["--limit", "-5"]])
def test_nonsense_options_are_refused_before_any_work(assets, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _cli(assets, "opts", *option)
    assert exit_info.value.code == 2 and "must be from 1 to" in capsys.readouterr().err


@pytest.mark.integration
def test_unusable_database_or_model_folder_gives_short_error(assets, tmp_path, capsys):
    args = ["run", "--manifest", str(assets["manifest"]), "--run", "x", "--quiet"]
    assert main([*args, "--model", str(assets["model"]), "--db", str(tmp_path)]) == 2
    assert f"{tmp_path}: is a folder, not a database file" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((assets["model"] / "config.json").read_text())
    assert main([*args, "--model", str(broken), "--db", str(tmp_path / "b.duckdb")]) == 2
    assert f"{broken}: cannot load this model folder" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.integration
def test_offline_hub_model_gives_short_error(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"image": "a.png", "question": "Is there edema?", "answer": "yes", "condition": "edema"}\n')
    proc = subprocess.run([sys.executable, "-m", "compute", "run", "--model", "google/medgemma-4b-it",
                           "--manifest", str(manifest), "--db", str(tmp_path / "x.duckdb"), "--run", "r"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "google/medgemma-4b-it" in proc.stderr and "--model" in proc.stderr and "HF_HUB_OFFLINE" in proc.stderr
    assert not (tmp_path / "x.duckdb").exists()  # nothing is written before the model loads


@pytest.mark.integration
def test_run_where_nothing_is_answered_exits_nonzero(assets, tmp_path, capsys):
    manifest = tmp_path / "missing.jsonl"
    manifest.write_text(json.dumps({**assets["rows"][0], "image": "nowhere.png"}) + "\n")
    assert main(["run", "--model", str(assets["model"]), "--manifest", str(manifest), "--db",
                 str(tmp_path / "m.duckdb"), "--run", "m", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "nowhere.png: file not found" in err and "no item was answered" in err


@pytest.mark.integration
def test_every_answered_prediction_has_its_maps_and_metrics(assets):
    assert _cli(assets) == 0
    db = assets["db"]
    answered = _query(db, "SELECT count(*) FROM predictions WHERE run_id = 'e2e' AND status = 'ok'")[0][0]
    rows = _query(db, "SELECT item_id, method, layer, layers, grid, grid_rows, grid_cols, inside_body_ratio, "
                      "attention_entropy, attn_implementation, query, heads FROM attention_maps WHERE run_id = 'e2e'")
    assert len(rows) == answered * 5  # four decoder layers plus their mean (layer -1)
    for _, method, layer, layers, grid, n_rows, n_cols, inside, h, implementation, query, heads in rows:
        assert (method, layers, n_rows, n_cols, query, heads) == ("attention", [0, 1, 2, 3], 16, 16, "answer", "mean")
        assert layer in (-1, 0, 1, 2, 3) and implementation == "mgv_row_capture+prefix_cache"  # auto: the engine
        assert len(grid) == 256 and abs(sum(grid) - 1) < 1e-4
        assert 0 < inside < 1 and 0 < h <= 5.546
    failed = _query(db, "SELECT count(*) FROM attention_maps m JOIN predictions p USING (run_id, item_id) "
                        "WHERE p.status = 'failed'")[0][0]
    assert failed == 0


@pytest.mark.integration
def test_gradcam_and_deletion_are_opt_in(assets, tmp_path):
    db = tmp_path / "opt_in.duckdb"
    code = main(["run", "--model", str(assets["model"]), "--manifest", str(assets["manifest"]), "--db", str(db),
                 "--run", "opt-in", "--limit", "2", "--layers", "full", "--gradcam", "--deletion", "--quiet"])
    assert code == 0
    rows = _query(db, "SELECT method, layer, faithfulness_ratio, deletion_delta, random_delta FROM attention_maps "
                      "ORDER BY method")
    methods = sorted({r[0] for r in rows})
    assert methods == ["attention", "gradcam"]
    for method, layer, ratio, delta, random in rows:
        assert layer == (2 if method == "attention" else 1)  # the full-attention layer; the last vision layer
        assert delta >= 0 and random >= 0  # |log-odds change|
        assert ratio == (pytest.approx(delta / random) if random > 0 else float("inf"))  # deletion / random cells


@pytest.mark.integration
def test_bad_layer_spec_is_refused_before_any_item(assets, tmp_path, capsys):
    code = main(["run", "--model", str(assets["model"]), "--manifest", str(assets["manifest"]),
                 "--db", str(tmp_path / "x.duckdb"), "--run", "bad-layers", "--layers", "7", "--quiet"])
    assert code == 2
    assert "layers '7': [7] out of range; the decoder has 4 layers (0..3)" in capsys.readouterr().err


@pytest.mark.integration
def test_run_records_its_throughput(assets, tmp_path):
    """items_per_second is the items answered over the time spent answering them. The model is
    loaded and the store created before the clock starts, so answering is most of the measured
    wall time: the rate lies between answered / wall and five times that (seconds per item, or
    a count of other items, falls outside)."""
    import time

    from compute.config import ModelSpec, RunConfig
    from compute.studies import run_study
    from store import StoreWriter
    good = [r for r in assets["rows"] if r["image_id"] not in ("absent", "text") and r["answer"] in ("yes", "no")]
    manifest = assets["manifest"].with_name("answerable.jsonl")
    manifest.write_text("".join(json.dumps(r) + "\n" for r in good))
    db = tmp_path / "rate.duckdb"
    StoreWriter(db)
    config = RunConfig(run_name="rate", manifest=manifest, db=db, model=ModelSpec(str(assets["model"])))
    session = load_model(str(assets["model"]))
    start = time.perf_counter()
    summary = run_study(config, session, progress=False, log=lambda m: None)
    wall = time.perf_counter() - start
    assert (summary.done, summary.failed, summary.skipped) == (len(good), 0, 0)
    ((rate, peak),) = _query(db, "SELECT items_per_second, peak_gpu_memory_gb FROM runs WHERE run_id = 'rate'")
    assert summary.done / wall <= rate <= 5 * summary.done / wall, (rate, summary.done, wall)
    assert (peak is None) == (session.device.type != "cuda")  # only a GPU run has a peak to record


@pytest.mark.integration
def test_run_stops_when_too_many_items_fail(assets, tmp_path, capsys):
    rows = assets["rows"][:4] + [{**assets["rows"][0], "image": f"images/missing_{k}.png", "image_id": f"m{k}"}
                                 for k in range(26)]
    manifest = assets["manifest"].parent / "mostly_missing.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = tmp_path / "f.duckdb"
    code = main(["run", "--model", str(assets["model"]), "--manifest", str(manifest), "--db", str(db),
                 "--run", "failing", "--batch-size", "5", "--answerer", "generate", "--no-maps", "--quiet"])  # 5 per write
    assert code == 2
    err = capsys.readouterr().err
    assert "more than --max-failure-share 50%); stopping" in err and "missing_0.png" in err
    ((status, stored),) = _query(db, "SELECT r.status, count(p.item_id) FROM runs r JOIN predictions p USING (run_id) "
                                     "GROUP BY r.status")
    assert status == "failed" and 20 <= stored < len(rows)  # what was tried is kept
    assert main(["run", "--model", str(assets["model"]), "--manifest", str(manifest), "--db", str(db),
                 "--run", "failing2", "--no-maps", "--quiet", "--max-failure-share", "1"]) == 0


@pytest.mark.integration
def test_stripped_maps_keep_the_metrics_of_the_raw_map(assets, tmp_path):
    db = tmp_path / "strip.duckdb"
    assert main(["run", "--model", str(assets["model"]), "--manifest", str(assets["manifest"]), "--db", str(db),
                 "--run", "strip", "--limit", "2", "--strip-border", "1", "--quiet"]) == 0
    for grid, border, inside in _query(db, "SELECT grid, border_fraction, inside_body_ratio FROM attention_maps"):
        cells = np.asarray(grid).reshape(16, 16)
        assert cells[0].sum() == 0 and cells[:, 0].sum() == 0 and abs(cells.sum() - 1) < 1e-4  # stored stripped
        assert border > 0 and 0 < inside < 1  # measured before stripping: not 0 by construction
