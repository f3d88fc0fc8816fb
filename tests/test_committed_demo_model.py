"""The committed demo model reproduces the held-out accuracy its model card reports."""

import json
from pathlib import Path

import pytest

from compute.demo.model.evaluate import HELD_OUT_SEED, SMALL_SET, evaluate

MODEL = Path(__file__).resolve().parents[1] / "models" / "demo"
# Same code, seed and weights give the same images and answers; the tolerance (2 of 80
# questions) absorbs a borderline answer flipping under another CPU's float rounding.
TOLERANCE = 2 / (2 * SMALL_SET)


@pytest.fixture(scope="module")
def reported():
    return json.loads((MODEL / "evaluation.json").read_text())


def test_card_quotes_the_evaluation(reported):
    card = (MODEL / "README.md").read_text()
    assert "not a medical model" in card
    assert f"{reported['accuracy']:6.1%}" in card and f"{reported['small_set_accuracy']:.1%}" in card


def test_small_held_out_set_reproduces_reported_accuracy(reported, demo_session):
    report = evaluate(demo_session, SMALL_SET, HELD_OUT_SEED, progress=False)
    assert report.accuracy == pytest.approx(reported["small_set_accuracy"], abs=TOLERANCE)
    assert report.well_formed >= 0.95
