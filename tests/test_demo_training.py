"""Training the demo model: a few steps lower the loss; prompts match the studies'."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from compute.config import PromptConfig
from compute.demo.model import build_demo_model
from compute.demo.model.train import TrainConfig, _language_batch, cache_vision_states, language_loss, train_vision
from compute.demo.model.training_data import PromptBank, cell_fractions, render_pool, training_question
from compute.model.prompts import build_messages


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    folder = build_demo_model(tmp_path_factory.mktemp("train"))
    return AutoModelForImageTextToText.from_pretrained(folder), AutoProcessor.from_pretrained(folder)


@pytest.fixture(scope="module")
def pool():
    return render_pool(48, seed=1, size=224, grid=16, finding_rate=0.4, progress=False)


def test_cell_fractions_hand_computed():
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, :2] = True  # half of the top-left 2x2 cell
    mask[2:, 2:] = True  # all of the bottom-right cell
    assert cell_fractions(mask, 2).tolist() == [[0.5, 0.0], [0.0, 1.0]]


def test_pool_targets_follow_the_findings(pool):
    assert pool.pixels.shape == (48, 3, 224, 224) and pool.pixels.min() >= -1 and pool.pixels.max() <= 1
    with_lesion = pool.lesion_grid.flatten(2).amax(-1) > 0  # (cases, conditions)
    assert torch.equal(with_lesion, pool.present)


def test_training_prompts_are_the_studies_prompts(fresh):
    _, processor = fresh
    bank = PromptBank(processor)
    ids, types = bank.encode("Is there edema?", True)
    studies = processor.apply_chat_template(
        [build_messages(_blank(), "Is there edema?",
                        PromptConfig())], add_generation_prompt=True, tokenize=True, return_dict=True,
        return_tensors="pt")
    n = studies["input_ids"].shape[1]
    assert torch.equal(ids[:n], studies["input_ids"][0]) and torch.equal(types[:n], studies["token_type_ids"][0])
    assert processor.tokenizer.decode(ids[n:]) == "Yes<end_of_turn>"


def _blank():
    from PIL import Image
    return Image.new("RGB", (8, 8))


def test_location_names_say_nothing_about_the_answer():
    rng = np.random.default_rng(0)
    named = {True: 0, False: 0}
    for _ in range(400):
        for answer in (True, False):
            named[answer] += " in the " in training_question(rng, "consolidation", answer, "left lower lobe", 0.3)
    assert abs(named[True] - named[False]) < 60 and named[False] > 60


@pytest.mark.slow
def test_a_few_steps_lower_both_losses(fresh, pool):
    model, processor = fresh
    cfg = TrainConfig(vision_steps=12, vision_batch=16, language_steps=12, language_images=4, questions_per_image=2,
                      warmup_steps=2, log_every=1, vision_lr=3e-3, language_lr=3e-3)
    rng = np.random.default_rng(0)
    curve = train_vision(model, pool, cfg, rng, log=lambda m: None, progress=False)
    assert np.mean([loss for _, loss, _ in curve[-3:]]) < np.mean([loss for _, loss, _ in curve[:3]])

    states = cache_vision_states(model, pool)
    bank = PromptBank(processor)
    fixed = _language_batch(pool, bank, cfg, np.random.default_rng(5))
    with torch.no_grad():
        before, _ = language_loss(model, bank, states, fixed)
    from compute.demo.model.train import train_language
    train_language(model, pool, states, bank, cfg, rng, log=lambda m: None, progress=False)
    with torch.no_grad():
        after, _ = language_loss(model, bank, states, fixed)
    assert after < 0.7 * before
    assert not any(p.requires_grad is False for p in model.model.vision_tower.parameters())  # unfrozen again


@pytest.mark.slow
@pytest.mark.integration
def test_train_evaluate_and_document_end_to_end(tmp_path):
    """The --train pipeline at toy size: weights change, and the curve, the held-out
    evaluation and a model card quoting it are written next to them."""
    import json

    from safetensors.torch import load_file

    from compute.demo.model.pipeline import train_and_document

    folder = build_demo_model(tmp_path / "m")
    before = load_file(folder / "model.safetensors")
    cfg = TrainConfig(pool_size=24, vision_steps=3, vision_batch=8, language_steps=3, language_images=2,
                      questions_per_image=2, warmup_steps=1, log_every=1)
    report = train_and_document(folder, cfg, eval_images=4, progress=False)
    after = load_file(folder / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert report.n_images == 4 and report.n_questions == 8
    assert sum(row["n"] for row in report.per_condition.values()) == 8
    assert np.isfinite(report.attention_ratio_mean) and report.attention_ratio_mean > 0
    logged = json.loads((folder / "training_log.json").read_text())
    assert len(logged["vision"]) == 3 and len(logged["language"]) == 3 and logged["config"]["pool_size"] == 24
    assert json.loads((folder / "evaluation.json").read_text())["n_questions"] == 8
    card = (folder / "README.md").read_text()
    assert "not a medical model" in card and report.table() in card


def test_shared_prefix_loss_equals_full_sequence_loss(fresh, pool):
    """Training runs the image block once per image; it must give the full-sequence loss."""
    from compute.demo.model.train import _shared_prefix_batch, shared_prefix_language_loss
    model, processor = fresh
    model.eval()
    bank = PromptBank(processor)
    states = cache_vision_states(model, pool)
    cfg = TrainConfig(language_images=3, questions_per_image=4)
    full = _language_batch(pool, bank, cfg, np.random.default_rng(11))
    shared = _shared_prefix_batch(pool, bank, cfg, np.random.default_rng(11))
    with torch.no_grad():
        loss_full, correct_full = language_loss(model, bank, states, full)
        loss_shared, correct_shared = shared_prefix_language_loss(model, bank, states, shared, 4)
    assert loss_shared.item() == pytest.approx(loss_full.item(), abs=1e-5)
    assert torch.equal(correct_full, correct_shared)
    assert processor.tokenizer.decode(bank.split("Is there edema?", True)[0][-3:]).endswith("<end_of_image>\n\n")


def test_every_image_gets_exactly_its_questions_even_when_crowded(fresh):
    """A case with 8 of 9 conditions still yields questions_per_image rows (the shared-
    prefix batch repeats each image's cache exactly that many times)."""
    from compute.demo.model.training_data import CasePool
    present = torch.zeros((2, 9), dtype=torch.bool)
    present[0, :8] = True  # crowded: one absent condition only
    crowded_pool = CasePool(pixels=torch.zeros(2, 3, 4, 4), present=present, lesion_grid=torch.zeros(2, 9, 2, 2),
                            locations=[{}, {}])
    cfg = TrainConfig(language_images=2, questions_per_image=4)
    *_, image_index, answers = _language_batch(crowded_pool, PromptBank(fresh[1]), cfg, np.random.default_rng(0))
    assert image_index.tolist().count(0) == 4 and image_index.tolist().count(1) == 4
    assert answers[image_index == 0].sum().item() == 3  # one "no" available, so three "yes"
    assert answers[image_index == 1].sum().item() == 0  # nothing present: four "no"
