"""map_rows scores all maps of one image on one grid in one batch: the rows equal those scored map by
map, and a map that cannot be scored fails only its own item."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from compute.config import MapConfig
from compute.data.manifest import ManifestItem
from compute.maps import MapSpec, map_batch
from compute.studies.maps import BodyCells, ItemMaps, make_maps, map_rows, records_for
from compute.metrics.regions import body_cells


def _items(n: int) -> list[ManifestItem]:
    questions = ["Is there pleural effusion?", "Is there cardiomegaly?", "Is there edema?", "Is the heart enlarged?"]
    return [ManifestItem(item_id=f"i{k}", row_number=k + 1, image_path=Path(f"/x/{k % 2}.png"), image_id=str(k % 2),
                         question=questions[k % len(questions)], answer="yes", condition="edema") for k in range(n)]


@pytest.fixture(scope="module")
def made(demo_session, xray):
    items = _items(6)
    images = {i.item_id: xray if i.image_id == "0" else xray.rotate(90) for i in items}
    results = map_batch(demo_session, [images[i.item_id] for i in items], [i.question for i in items],
                        MapSpec(method="attention", layers="all"))
    return make_maps(demo_session, MapConfig(gradcam=True), items, images, results,
                     {i.item_id: f"sha-{i.image_id}" for i in items})


def test_batched_rows_equal_rows_scored_one_map_at_a_time(made):
    rows, problems = map_rows("r", "m", made)
    assert problems == {} and len(rows) == sum(len(_layers(r)) for one in made for r in one.results)
    one_by_one = []
    for one in made:
        for result, deletion in zip(one.results, one.deletions):
            body, note = body_cells(one.image, result.grid_shape)
            one_by_one += records_for("r", one.item.item_id, "m", result, body, note, deletion)
    assert len(rows) == len(one_by_one)
    for got, want in zip(rows, one_by_one):
        assert (got.item_id, got.method, got.layer) == (want.item_id, want.method, want.layer)
        for name in ("inside_body_ratio", "attention_entropy", "peak_to_average", "basal_fraction", "sparsity"):
            assert getattr(got, name) == pytest.approx(getattr(want, name), abs=1e-12)


def _layers(result):
    return list(result.maps) + ([-1] if len(result.maps) > 1 else [])


def test_a_map_that_cannot_be_scored_fails_only_its_item(made):
    broken = made[2].results[0]
    bad = replace(broken, maps={k: -v for k, v in broken.maps.items()}, unstripped=None)
    spoiled = list(made)
    spoiled[2] = ItemMaps(made[2].item, made[2].image, made[2].content, (bad, *made[2].results[1:]), made[2].deletions)
    rows, problems = map_rows("r", "m", spoiled, BodyCells())
    assert list(problems) == ["i2"] and "negative or non-finite" in problems["i2"]
    assert {r.item_id for r in rows} == {"i0", "i1", "i3", "i4", "i5"}
    assert np.isfinite([r.attention_entropy for r in rows]).all()


def test_an_item_whose_maps_cannot_be_scored_keeps_its_image(made, tmp_path):
    from store import PredictionRecord, StoreWriter

    from compute.studies.scoring import score
    broken = made[0].results[0]
    bad = replace(broken, maps={k: -v for k, v in broken.maps.items()}, unstripped=None)
    spoiled = [ItemMaps(made[0].item, made[0].image, made[0].content, (bad,), (None,))]
    prediction = PredictionRecord("r", "i0", 1, "ok", answer="yes", p_yes=0.9, image_key="KEY")
    pending = score(StoreWriter(tmp_path / "s.duckdb"), BodyCells(), "r", "m", [prediction], spoiled, ([], []))
    (failed,) = pending.predictions
    assert failed.status == "failed" and "could not be scored" in failed.error and failed.image_key == "KEY"
