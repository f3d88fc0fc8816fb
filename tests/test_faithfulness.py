"""Deletion test, model randomisation and pointing game on the trained demo model."""

import numpy as np
import pytest
from PIL import Image

from compute.maps import MapSpec
from compute.maps.faithfulness import (blur_cells, cells_to_pixels, deletion_test, lesion_hit, random_cells,
                                            randomisation_check, top_cells)
from compute.demo.synth import render_case
from compute.maps import map_batch
from compute.answering import ask


@pytest.fixture(scope="module")
def session(demo_session):
    return demo_session  # the shared one (conftest.py); randomisation_check swaps its model and restores it


def test_cell_selection_by_hand():
    grid = np.array([[0.1, 0.4], [0.3, 0.2]])
    assert top_cells(grid, 0.25).tolist() == [[False, True], [False, False]]
    assert top_cells(grid, 0.5).tolist() == [[False, True], [True, False]]
    assert random_cells((4, 4), 5, np.random.default_rng(0)).sum() == 5
    pixels = cells_to_pixels(np.array([[True, False], [False, False]]), (5, 4))
    assert pixels[:3, :2].all() and pixels.sum() == 6  # 5 rows split 3+2, 4 columns 2+2
    with pytest.raises(ValueError, match="fraction"):
        top_cells(grid, 0)


def test_blur_only_touches_chosen_cells():
    rng = np.random.default_rng(1)
    pixels = rng.random((32, 32, 3)) * 255  # (H, W, channels), as the image is
    cells = np.zeros((4, 4), dtype=bool)
    cells[1, 2] = True
    out = blur_cells(pixels, cells)
    changed = (out != pixels).any(-1)
    assert changed[8:16, 16:24].all() and not changed[cells_to_pixels(~cells, (32, 32))].any()


def test_pointing_game():
    lesion = np.zeros((4, 4))
    lesion[2, 3] = 0.3
    grid = np.full((4, 4), 0.05)
    grid[2, 3] = 0.25
    assert lesion_hit(grid, lesion)
    grid[0, 0] = 0.5
    assert not lesion_hit(grid, lesion)


def test_deletion_of_attended_cells_beats_random_on_a_lesion(session):
    """On effusion cases the demo model answers yes because of the effusion, so blurring the
    Grad-CAM's top cells must move the answer's log-odds more, on average, than random cells."""
    rng = np.random.default_rng(5)
    ratios = []
    for _ in range(4):
        case = render_case(rng, 224, ["pleural_effusion"])
        image = Image.fromarray((np.clip(case.image, 0, 1) * 255).astype(np.uint8))
        (gradcam,) = map_batch(session, [image], ["Is there pleural effusion?"], MapSpec(method="gradcam"))
        result = deletion_test(session, image, "Is there pleural effusion?", gradcam.mean, fraction=0.1, seed=0)
        assert result.log_odds > 0  # the model answers yes
        ratios.append(result.faithfulness_ratio)
    assert np.median(ratios) > 1.0, ratios


def test_randomised_model_gives_different_maps(session):
    case = render_case(np.random.default_rng(2), 224, ["cardiomegaly"])
    image = Image.fromarray((np.clip(case.image, 0, 1) * 255).astype(np.uint8))
    same = ask(session, image, "Is there cardiomegaly?", layers="all").map.mean
    again = ask(session, image, "Is there cardiomegaly?", layers="all").map.mean
    np.testing.assert_array_equal(same, again)
    check = randomisation_check(session, image, "Is there cardiomegaly?")
    # Adebayo et al. judge by correlation: a map that survives randomisation explains nothing.
    assert check["pearson"] < 0.5 and check["js_divergence"] > 1e-3, check
    assert ask(session, image, "Is there cardiomegaly?", layers="all").map.mean.tolist() == same.tolist()  # restored


@pytest.mark.slow
@pytest.mark.integration
def test_demo_faithfulness_command_prints_every_condition(capsys, tmp_path):
    """Per method and condition, then the summary; the JSON holds the same rows."""
    import json

    from compute.cli import main
    from compute.data.conditions import CONDITION_KEYS
    out_file = tmp_path / "f.json"
    assert main(["demo-faithfulness", "--n", "1", "--methods", "attention,knockout", "--json", str(out_file),
                 "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in out[1:1 + 2 * len(CONDITION_KEYS)]]
    assert [(r[0], r[1]) for r in rows] == [(m, k) for m in ("attention", "knockout") for k in CONDITION_KEYS]
    for r in rows:  # method condition n deletion hit lesion rand.r s/item fb
        assert int(r[2]) + int(r[8]) == 1 and -1 <= float(r[6]) <= 1
    saved = json.loads(out_file.read_text())
    assert [s["method"] for s in saved["summary"]] == ["attention", "knockout"]
    assert len(saved["rows"]) == 2 * len(CONDITION_KEYS)
    assert main(["demo-faithfulness", "--n", "1", "--methods", "attention,nonsense", "--quiet"]) == 2