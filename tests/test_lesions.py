"""Boxes and masks from datasets: read at the edge, placed on the model's grid, and scored
by the pointing game and the in-lesion attention ratio on every map of the image."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
from PIL import Image

from compute.cli import main
from compute.data.lesions import Box, boxes_pixels, lesion_pixels, parse_boxes, rle_pixels
from compute.data.manifest import read_manifest
from compute.metrics.lesion import lesion_metrics
from compute.metrics.regions import body_cells, mask_to_grid
from tests.dataset_support import DEMO_MODEL, write_image


def test_a_box_in_original_pixels_lands_on_the_cells_the_model_sees():
    # a 200 x 100 image is resized to a square: a 4 x 4 grid cell is 50 px wide and 25 px high
    pixels = boxes_pixels((Box(0, 0, 50, 25),), width=200, height=100)
    cells = mask_to_grid(pixels, (4, 4))
    expected = np.zeros((4, 4))
    expected[0, 0] = 1.0
    np.testing.assert_array_equal(cells, expected)
    half = mask_to_grid(boxes_pixels((Box(150, 75, 175, 100),), 200, 100), (4, 4))
    assert half[3, 3] == 0.5 and half.sum() == 0.5  # half of the bottom-right cell's columns


def test_boxes_clip_to_the_image_and_cover_pixel_centres():
    pixels = boxes_pixels((Box(8.4, 0, 300, 2.6),), width=10, height=4)
    assert pixels[:3, 8:].all() and not pixels[:, :8].any() and not pixels[3].any()


def test_a_box_past_the_image_is_refused_not_clipped():
    with pytest.raises(ValueError, match="box 2 reaches x 600, y 40 on a 128x128 image"):
        lesion_pixels((Box(0, 0, 128.4, 128), Box(500, 10, 600, 40)), None, 128, 128)


def test_siim_run_length_is_column_major_and_relative():
    # 4 wide, 3 high: pixels 1 and 2 run down column 0; the next run starts 3 after the first ends (pixel 6)
    mask = rle_pixels("1 2 3 1", width=4, height=3)
    expected = np.zeros((3, 4), dtype=bool)
    expected[1, 0] = expected[2, 0] = True
    expected[0, 2] = True
    np.testing.assert_array_equal(mask, expected)
    assert not rle_pixels("-1", 4, 3).any()
    with pytest.raises(ValueError, match="runs past"):
        rle_pixels("10 5", 4, 3)
    with pytest.raises(ValueError, match="pairs"):
        rle_pixels("1 2 3", 4, 3)


def test_lesion_metrics_by_hand():
    grid = np.array([[7.0, 1.0], [1.0, 1.0]])
    lesion = np.array([[1.0, 0.0], [0.0, 0.0]])
    out = lesion_metrics(grid, lesion)
    assert out["lesion_hit"] is True
    assert out["lesion_attention_ratio"] == pytest.approx(0.7 / 0.25)
    body = np.array([[1.0, 1.0], [0.0, 0.0]])  # the lesion is half the body
    assert lesion_metrics(grid, lesion, body)["lesion_attention_ratio"] == pytest.approx(0.7 / 0.5)
    partial = np.array([[0.0, 0.5], [0.0, 0.0]])  # half of the top-right cell: 0.1 * 0.5 mass on 1/8 of the image
    out = lesion_metrics(grid, partial)
    assert out["lesion_hit"] is False and out["lesion_attention_ratio"] == pytest.approx(0.05 / 0.125)
    assert lesion_metrics(grid, None) == {"lesion_hit": None, "lesion_attention_ratio": None}
    assert lesion_metrics(grid, np.zeros((2, 2)))["lesion_hit"] is None


@pytest.mark.parametrize("boxes, problem", [
    ("[{\"x_min\": 1}]", "y_min must be a number"),
    ([{"x_min": 5, "y_min": 0, "x_max": 5, "y_max": 4}], "box 1 is empty"),
    ([{"x_min": "a", "y_min": 0, "x_max": 5, "y_max": 4}], "x_min must be a number"),
    ([{"x_min": -1, "y_min": 0, "x_max": 5, "y_max": 4}], "from 0"),
    ({"x_min": 1}, "must be a list"),
    ("[1, 2", "not JSON"),
    ([[1, 2, 3, 4]], "must be an object"),
])
def test_bad_boxes_are_row_errors(tmp_path, boxes, problem):
    row = {"image": "a.png", "question": "Is there edema?", "answer": "yes", "condition": "edema", "boxes": boxes}
    good = {**row, "boxes": [{"x_min": 1, "y_min": 2, "x_max": 3, "y_max": 4, "label": "Edema", "rad_id": "R2"}]}
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(good) + "\n")
    manifest = read_manifest(tmp_path / "m.jsonl")
    assert [e.row_number for e in manifest.errors] == [1] and problem in manifest.errors[0].message
    assert manifest.items[0].boxes == (Box(1, 2, 3, 4, "Edema", "R2"),)
    assert parse_boxes(json.dumps([b.as_dict() for b in manifest.items[0].boxes])) == manifest.items[0].boxes


def test_mask_paths_stay_inside_the_root(tmp_path):
    rows = [{"image": "a.png", "question": "Is there edema?", "answer": "yes", "condition": "edema", "mask": m}
            for m in ("../outside.png", "masks/a.png", "1 2 3 4")]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = read_manifest(tmp_path / "m.jsonl")
    assert "leaves the data root" in manifest.errors[0].message
    assert manifest.items[0].mask == str((tmp_path / "masks" / "a.png").resolve())
    assert manifest.items[1].mask == "1 2 3 4"  # a run-length string is kept as it is


def test_extra_columns_become_attributes_without_changing_item_ids(tmp_path):
    row = {"image": "a.png", "question": "Is there edema?", "answer": "yes", "condition": "edema"}
    (tmp_path / "plain.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "rich.jsonl").write_text(json.dumps({**row, "view": "PA", "split": "test", "source": "x.csv row 3",
                                                     "content_type": "presence", "subject_id": 10000032}) + "\n")
    plain, rich = read_manifest(tmp_path / "plain.jsonl").items[0], read_manifest(tmp_path / "rich.jsonl").items[0]
    assert plain.item_id == rich.item_id
    assert (rich.view, rich.split, rich.source) == ("PA", "test", "x.csv row 3")
    assert dict(rich.attributes) == {"content_type": "presence", "subject_id": 10000032}


@pytest.fixture(scope="module")
def lesion_run(tmp_path_factory, xray_pixels):
    """A run with maps over items with boxes (on a non-square image), a mask image, a
    run-length mask, and none."""
    tmp_path = tmp_path_factory.mktemp("lesions")
    root = tmp_path / "data"
    wide = np.ascontiguousarray(np.concatenate([xray_pixels[0], xray_pixels[1]], axis=1))  # 256 x 128
    write_image(root / "wide.png", wide)
    write_image(root / "square.png", xray_pixels[2])
    mask = np.zeros((128, 128), dtype=np.uint8)
    mask[64:128, 0:64] = 255
    Image.fromarray(mask).save(root / "lesion.png")
    rle = "0 2048"  # the first 16 columns, column-major: 128 rows each
    base = {"answer": "yes", "group_id": None}
    rows = [
        {**base, "image": "wide.png", "image_id": "wide", "question": "Is there pleural effusion?",
         "condition": "pleural_effusion", "boxes": [{"x_min": 128, "y_min": 64, "x_max": 256, "y_max": 128}]},
        {**base, "image": "square.png", "image_id": "square", "question": "Is there edema?", "condition": "edema",
         "mask": "lesion.png"},
        {**base, "image": "square.png", "image_id": "square", "question": "Is there pneumothorax?",
         "condition": "pneumothorax", "mask": rle},
        {**base, "image": "square.png", "image_id": "square", "question": "Is there atelectasis?",
         "condition": "atelectasis"},
    ]
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = tmp_path / "r.duckdb"
    assert main(["run", "--model", str(DEMO_MODEL), "--manifest", str(root / "manifest.jsonl"), "--db", str(db),
                 "--run", "lesions", "--quiet", "--layers", "last:1"]) == 0
    return db, mask, rle


@pytest.mark.integration
def test_a_study_scores_every_map_against_the_items_lesion(lesion_run, xray_pixels):
    """The stored lesion metrics equal lesion_metrics on the stored map and the lesion placed by hand."""
    db, mask, rle = lesion_run
    wide = np.ascontiguousarray(np.concatenate([xray_pixels[0], xray_pixels[1]], axis=1))
    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute("SELECT q.condition, m.grid_rows, m.grid_cols, m.grid, m.lesion_hit, "
                             "m.lesion_attention_ratio, q.boxes, q.mask FROM attention_maps m "
                             "JOIN questions q USING (item_id) WHERE m.run_id = 'lesions'").fetchall()
    by_condition = {r[0]: r for r in stored}
    assert by_condition["atelectasis"][4] is None and by_condition["atelectasis"][5] is None
    placed = {
        "pleural_effusion": (wide, boxes_pixels((Box(128, 64, 256, 128),), 256, 128)),
        "edema": (xray_pixels[2], mask > 0),
        "pneumothorax": (xray_pixels[2], lesion_pixels((), rle, 128, 128)),
    }
    assert placed["pneumothorax"][1][:, :16].all() and not placed["pneumothorax"][1][:, 16:].any()
    for condition, (image, lesion) in placed.items():
        _, rows_, cols, grid, hit, ratio, _, _ = by_condition[condition]
        grid = np.array(grid).reshape(rows_, cols)
        body, _ = body_cells(Image.fromarray(image), (rows_, cols))
        expected = lesion_metrics(grid, mask_to_grid(lesion, (rows_, cols)), body)
        assert hit == expected["lesion_hit"], condition
        assert ratio == pytest.approx(expected["lesion_attention_ratio"], rel=1e-5), condition
    assert json.loads(by_condition["pleural_effusion"][6]) == [{"x_min": 128.0, "y_min": 64.0, "x_max": 256.0,
                                                                 "y_max": 128.0}]
    assert by_condition["pneumothorax"][7] == rle


def test_outline_draws_the_lesion_edge_at_the_shown_size():
    from dashboard.overlay import OUTLINE_COLOUR, outline

    shown = Image.new("RGB", (64, 64))  # a 32 x 16 original shown square at 64 px
    lesion = np.zeros((16, 32), dtype=bool)
    lesion[8:16, 16:32] = True  # the bottom-right quarter
    pixels = np.asarray(outline(shown, lesion, width=1))
    cyan = np.all(pixels == OUTLINE_COLOUR, axis=-1)
    assert cyan[32, 32:].all() and cyan[32:, 32].all()  # its top and left edges
    assert not cyan[:31].any() and not cyan[:, :31].any() and not cyan[40:60, 40:60].any()


@pytest.mark.integration
def test_attention_page_shows_lesion_metrics_and_outline(lesion_run, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.dataset_support import APP
    db, _, _ = lesion_run
    with duckdb.connect(str(db), read_only=True) as con:
        item = con.execute("SELECT item_id FROM questions WHERE condition = 'pleural_effusion'").fetchone()[0]
    monkeypatch.setenv("MGV_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["run"] = "lesions"
    at.query_params["item"] = item
    at.run()
    at.switch_page("views/attention.py").run()
    assert not at.exception
    metrics = at.dataframe[0].value.set_index("metric")["value"]
    assert "lesion_hit" in metrics.index and "lesion_attention_ratio" in metrics.index


def test_columns_that_may_identify_a_patient_are_never_attributes(tmp_path):
    from compute.data.manifest import identifying_column
    row = {"image": "a.png", "question": "Is there edema?", "answer": "yes", "condition": "edema",
           "PatientName": "Zebulon^Quartermaine", "patient_age": 71, "DOB": "19430217", "mrn": 12345,
           "InstitutionName": "St Ignatius", "content_type": "presence", "subject_id": 10000032}
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    manifest = read_manifest(tmp_path / "m.jsonl")
    assert dict(manifest.items[0].attributes) == {"content_type": "presence", "subject_id": 10000032}
    assert manifest.withheld == ("DOB", "InstitutionName", "PatientName", "mrn", "patient_age")
    assert not any(identifying_column(c) for c in ("view", "split", "content_type", "semantic_type", "template",
                                                    "study_id", "subject_id", "modality", "qid"))
