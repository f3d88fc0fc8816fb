import json

import pytest

from compute.data.manifest import ManifestError, read_manifest


def _jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


GOOD = {"image": "images/a.png", "question": "Is there edema?", "answer": "Yes", "condition": "edema"}


def test_jsonl_rows_validated_and_bad_rows_named(tmp_path):
    m = read_manifest(_jsonl(tmp_path / "m.jsonl", [
        GOOD,
        {**GOOD, "answer": "maybe"},
        {k: v for k, v in GOOD.items() if k != "question"},
        "{not json",
        {**GOOD, "variant_index": "two"},
        {**GOOD, "image_id": "A", "group_id": "g1", "variant_index": 3, "location": "left base"},
    ]))
    assert [i.row_number for i in m.items] == [1, 6]
    first = m.items[0]
    assert (first.answer, first.image_id, first.image_path) == ("yes", "images/a.png", tmp_path / "images/a.png")
    assert (m.items[1].image_id, m.items[1].group_id, m.items[1].variant_index) == ("A", "g1", 3)
    errors = {e.row_number: str(e) for e in m.errors}
    assert errors[2] == "row 2: answer must be yes or no, got 'maybe'"
    assert errors[3] == "row 3: missing question"
    assert errors[4].startswith("row 4: invalid JSON")
    assert "variant_index must be a whole number" in errors[5]
    assert m.n_rows == 6


def test_item_ids_are_stable_and_repeated_rows_kept(tmp_path):
    rows = [GOOD, GOOD, {**GOOD, "question": "Is there oedema?"}]
    a = read_manifest(_jsonl(tmp_path / "a.jsonl", rows))
    b = read_manifest(_jsonl(tmp_path / "b.jsonl", [rows[2], rows[0], rows[1]]))
    assert len({i.item_id for i in a.items}) == 3  # the repeated row counts twice, with its own id
    assert {i.item_id for i in a.items} == {i.item_id for i in b.items}  # order does not change ids


def test_csv_manifest_and_missing_column(tmp_path):
    good = tmp_path / "m.csv"
    good.write_text("image,question,answer,condition,strategy\nimages/a.png,Is there edema?,no,edema,\n"
                    "images/b.png,,yes,edema,voice\n")
    m = read_manifest(good)
    assert [(i.answer, i.strategy) for i in m.items] == [("no", None)]
    assert str(m.errors[0]) == "row 2: missing question"
    bad = tmp_path / "bad.csv"
    bad.write_text("image,question,condition\nimages/a.png,Is there edema?,edema\n")
    with pytest.raises(ManifestError, match="bad.csv: missing required column.*answer"):
        read_manifest(bad)


def test_missing_manifest_and_unknown_format(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.jsonl")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ManifestError, match="unknown manifest format"):
        read_manifest(tmp_path / "m.txt")


def test_byte_order_marks_are_accepted(tmp_path):
    csv_path = tmp_path / "bom.csv"
    csv_path.write_bytes("\ufeffimage,question,answer,condition\na.png,Is there edema?,yes,edema\n".encode("utf-8"))
    jsonl_path = tmp_path / "bom.jsonl"
    jsonl_path.write_bytes(("\ufeff" + json.dumps(GOOD) + "\n").encode("utf-8"))
    assert len(read_manifest(csv_path).items) == 1
    assert len(read_manifest(jsonl_path).items) == 1


def test_non_utf8_and_empty_manifests_are_named(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("image,question,answer,condition\na.png,Is there \u0153dema?,yes,edema\n".encode("cp1252"))
    with pytest.raises(ManifestError, match=r"latin.csv: not UTF-8 text \(line 2, byte \d+ of the file"):
        read_manifest(latin)
    header_only = tmp_path / "h.csv"
    header_only.write_text("image,question,answer,condition\n")
    with pytest.raises(ManifestError, match="h.csv: no data rows"):
        read_manifest(header_only)
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n")
    with pytest.raises(ManifestError, match="no data rows"):
        read_manifest(blank)


def test_values_of_the_wrong_type_are_row_errors(tmp_path):
    m = read_manifest(_jsonl(tmp_path / "m.jsonl", [
        {**GOOD, "question": ["Is there edema?"]},
        {**GOOD, "condition": {"name": "edema"}},
        {**GOOD, "variant_index": 1.7},
        {**GOOD, "variant_index": 2.0},
        {**GOOD, "variant_index": "3"},
    ]))
    errors = {e.row_number: e.message for e in m.errors}
    assert errors == {1: "question must be text, got list ['Is there edema?']",
                      2: "condition must be text, got dict {'name': 'edema'}",
                      3: "variant_index must be a whole number, got 1.7"}
    assert [i.variant_index for i in m.items] == [2, 3]


def test_jsonl_rows_are_numbered_by_line(tmp_path):
    m = read_manifest(_jsonl(tmp_path / "m.jsonl", [GOOD, "", "", {**GOOD, "answer": "maybe"}]))
    assert m.errors[0].row_number == 4


def test_same_row_in_two_datasets_gets_two_ids(tmp_path):
    path = _jsonl(tmp_path / "m.jsonl", [GOOD])
    a = read_manifest(path, dataset="mimic").items[0].item_id
    b = read_manifest(path, dataset="vqa-rad").items[0].item_id
    c = read_manifest(_jsonl(tmp_path / "n.jsonl", [{**GOOD, "strategy": "passive"}]), dataset="mimic").items[0].item_id
    assert len({a, b, c}) == 3


def test_image_paths_cannot_leave_the_data_root(tmp_path):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"x")
    (root / "images" / "link.png").symlink_to(outside)
    rows = [{"image": "images/ok.png", "question": "Is there edema?", "answer": "no", "condition": "edema"},
            {"image": "../secret.png", "question": "Is there edema?", "answer": "no", "condition": "edema"},
            {"image": str(outside), "question": "Is there edema?", "answer": "no", "condition": "edema"},
            {"image": "images/link.png", "question": "Is there edema?", "answer": "no", "condition": "edema"}]
    path = root / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = read_manifest(path)
    assert [i.row_number for i in m.items] == [1]
    assert [e.row_number for e in m.errors] == [2, 3, 4]
    assert all("leaves the data root" in e.message and "--allow-outside-root" in e.message for e in m.errors)
    assert len(read_manifest(path, allow_outside_root=True).items) == 4
