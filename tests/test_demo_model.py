"""The demo model folder loads and runs through MedGemma's code path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor, Gemma3ForConditionalGeneration, Gemma3Processor

from compute.demo.model import DemoModelConfig, build_demo_model, question_corpus
from compute.data.questions import DEFAULT_INSTRUCTION

QUESTION = f"Is there pleural effusion? {DEFAULT_INSTRUCTION}"
SYSTEM = "You are an expert radiologist."


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_demo_model(tmp_path_factory.mktemp("demo") / "model")


@pytest.fixture(scope="module")
def processor(model_dir):
    return AutoProcessor.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def model(model_dir):
    return AutoModelForImageTextToText.from_pretrained(model_dir).eval()


@pytest.fixture(scope="module")
def image() -> Image.Image:
    # Not square and not the model's size, so the resize is exercised; a gradient, not a flat colour.
    ramp = torch.linspace(0, 255, 300).to(torch.uint8)  # (width,)
    gray = ramp.expand(260, 300).contiguous()  # (height, width)
    return Image.fromarray(gray.numpy(), mode="L")


def conversation(image: Image.Image, question: str = QUESTION, system: str | None = None) -> list[dict]:
    messages = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
    user = {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}
    return [*messages, user]


def encode(processor, conversations, **kwargs):
    return processor.apply_chat_template(
        conversations, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt", **kwargs
    )


def ids_of(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


# Loading


def test_reloads_through_the_auto_classes_without_torchvision(processor, model):
    assert isinstance(processor, Gemma3Processor)
    assert isinstance(model, Gemma3ForConditionalGeneration)
    assert type(processor.image_processor).__name__ == "Gemma3ImageProcessorPil"
    assert "torchvision" not in sys.modules


def test_model_card_is_written(model_dir):
    card = (model_dir / "README.md").read_text()
    assert "random" in card and "AutoModelForImageTextToText" in card


# Prompt layout


def test_image_expands_to_boi_256_soft_tokens_eoi(processor, image):
    tok = processor.tokenizer
    inputs = encode(processor, conversation(image))
    ids = inputs["input_ids"][0]  # (seq,)
    soft = (ids == tok.image_token_id).nonzero().flatten()  # (256,)

    assert len(soft) == 256
    assert soft[-1] - soft[0] == 255, "soft tokens are one contiguous block"
    first, last = int(soft[0]), int(soft[-1])
    assert ids[first - 1] == tok.boi_token_id and ids[last + 1] == tok.eoi_token_id
    assert (ids == tok.boi_token_id).sum() == 1 and (ids == tok.eoi_token_id).sum() == 1

    expected = (
        f"<bos><start_of_turn>user\n\n\n<start_of_image>{'<image_soft_token>' * 256}<end_of_image>\n\n"
        f"{QUESTION}<end_of_turn>\n<start_of_turn>model\n"
    )
    assert tok.decode(ids) == expected
    assert inputs["pixel_values"].shape == (1, 3, 224, 224)


def test_token_type_ids_mark_exactly_the_soft_tokens(processor, image):
    inputs = encode(processor, conversation(image))
    ids, types = inputs["input_ids"][0], inputs["token_type_ids"][0]
    assert torch.equal(types.bool(), ids == processor.tokenizer.image_token_id)


def test_one_bos_and_the_generation_prompt_at_the_end(processor, image):
    tok = processor.tokenizer
    ids = encode(processor, conversation(image))["input_ids"][0].tolist()
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    generation_prompt = ids_of(tok, "<start_of_turn>model\n")
    assert ids[-len(generation_prompt) :] == generation_prompt
    assert tok.convert_ids_to_tokens(generation_prompt) == ["<start_of_turn>", "model", "\n"]


def test_system_prompt_is_folded_into_the_first_user_turn(processor, image):
    text = processor.apply_chat_template(conversation(image, system=SYSTEM), add_generation_prompt=True, tokenize=False)
    assert text == (
        f"<bos><start_of_turn>user\n{SYSTEM}\n\n<start_of_image>{QUESTION}<end_of_turn>\n<start_of_turn>model\n"
    )
    assert "<start_of_turn>system" not in text


def test_assistant_turn_is_rendered_as_model(processor):
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "  Is there edema?  "}]},
        {"role": "assistant", "content": [{"type": "text", "text": "No"}]},
    ]
    text = processor.apply_chat_template(messages, tokenize=False)
    assert text == "<bos><start_of_turn>user\nIs there edema?<end_of_turn>\n<start_of_turn>model\nNo<end_of_turn>\n"


def test_calling_the_processor_on_rendered_text_needs_add_special_tokens_false(processor, image):
    # As with MedGemma: the template writes <bos> and the tokenizer adds one too.
    tok = processor.tokenizer
    text = processor.apply_chat_template(conversation(image), add_generation_prompt=True, tokenize=False)
    doubled = processor(text=text, images=image, return_tensors="pt")["input_ids"][0].tolist()
    single = processor(text=text, images=image, return_tensors="pt", add_special_tokens=False)["input_ids"][0].tolist()
    assert doubled[:2] == [tok.bos_token_id, tok.bos_token_id]
    assert single == encode(processor, conversation(image))["input_ids"][0].tolist()


# Tokenizer


def test_special_tokens_are_named_like_medgemmas(processor):
    tok = processor.tokenizer
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    named = (tok.boi_token, tok.eoi_token, tok.image_token)
    assert named == ("<start_of_image>", "<end_of_image>", "<image_soft_token>")
    for token in ("<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"):
        assert ids_of(tok, token) == [tok.convert_tokens_to_ids(token)], token
    assert tok.boi_token_id == tok.convert_tokens_to_ids("<start_of_image>")


def test_no_text_maps_to_unk(processor):
    tok = processor.tokenizer
    made_up = "Is there florbigated quixotism in the zwölf Ωmega lobe? 😀 ∆x=3.5cm\ttab"
    for text in [*question_corpus(), made_up]:
        ids = ids_of(tok, text)
        assert tok.unk_token_id not in ids, text
        assert tok.decode(ids) == text


@pytest.mark.parametrize("word", ["yes", "Yes", "no", "No", " yes", " Yes", " no", " No"])
def test_answer_words_are_single_tokens(processor, word):
    assert len(ids_of(processor.tokenizer, word)) == 1


def test_punctuation_stays_off_the_answer_word(processor):
    tok = processor.tokenizer
    assert ids_of(tok, "Yes.")[0] == ids_of(tok, "Yes")[0]
    assert ids_of(tok, "model\nNo")[-1] == ids_of(tok, "No")[0]


def test_vocabulary_is_small(processor, model):
    assert len(processor.tokenizer) <= DemoModelConfig().max_vocab_size
    assert model.config.text_config.vocab_size == len(processor.tokenizer)


# Config


def test_config_mixes_attention_kinds_and_gives_a_16x16_grid(model):
    config = model.config
    assert {"sliding_attention", "full_attention"} == set(config.text_config.layer_types)
    assert config.text_config.num_key_value_heads < config.text_config.num_attention_heads
    assert config.mm_tokens_per_image == 256
    projector = model.model.multi_modal_projector
    patches = config.vision_config.image_size // config.vision_config.patch_size
    side = int(config.mm_tokens_per_image**0.5)
    assert (patches // projector.kernel_size, side) == (16, 16)
    assert projector.avg_pool.kernel_size == DemoModelConfig().pooling_kernel


def test_token_ids_in_the_model_config_match_the_tokenizer(processor, model):
    tok = processor.tokenizer
    assert model.config.image_token_id == tok.image_token_id
    assert model.config.boi_token_id == tok.boi_token_id
    assert model.config.eoi_token_id == tok.eoi_token_id


def test_generation_stops_at_end_of_turn(processor, model):
    tok = processor.tokenizer
    eos = model.generation_config.eos_token_id
    assert tok.convert_tokens_to_ids("<end_of_turn>") in eos and tok.eos_token_id in eos
    assert model.generation_config.pad_token_id == tok.pad_token_id
    assert model.generation_config.do_sample is False


def test_parameter_count_is_small(model):
    assert sum(p.numel() for p in model.parameters()) < 3_000_000


def test_config_rejects_a_grid_that_does_not_tile_the_patches():
    with pytest.raises(ValueError, match="mm_tokens_per_image"):
        DemoModelConfig(mm_tokens_per_image=100)
    with pytest.raises(ValueError, match="layer_types"):
        DemoModelConfig(layer_types=("sliding_attention",) * 4)


# Running


def test_forward_gives_logits_over_the_vocabulary(processor, model, image):
    inputs = encode(processor, conversation(image))
    with torch.no_grad():
        logits = model(**inputs).logits  # (batch, seq, vocab)
    assert logits.shape == (1, inputs["input_ids"].shape[1], model.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()


def test_the_image_changes_the_logits(processor, model, image):
    black = Image.new("L", image.size, 0)
    with torch.no_grad():
        a = model(**encode(processor, conversation(image))).logits[0, -1]  # (vocab,)
        b = model(**encode(processor, conversation(black))).logits[0, -1]  # (vocab,)
    assert not torch.allclose(a, b)


def test_generate_runs_greedily(processor, model, image):
    inputs = encode(processor, conversation(image))
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)  # (batch, seq + new)
    prompt_len = inputs["input_ids"].shape[1]
    assert out.shape[0] == 1 and prompt_len < out.shape[1] <= prompt_len + 5
    assert torch.equal(out[0, :prompt_len], inputs["input_ids"][0])


def test_eager_attention_covers_every_layer_and_the_image_block_is_bidirectional(model_dir, processor, image):
    eager = AutoModelForImageTextToText.from_pretrained(model_dir, attn_implementation="eager").eval()
    inputs = encode(processor, conversation(image))
    seq = inputs["input_ids"].shape[1]
    with torch.no_grad():
        attentions = eager(**inputs, output_attentions=True).attentions
    assert len(attentions) == eager.config.text_config.num_hidden_layers
    heads = eager.config.text_config.num_attention_heads
    soft = (inputs["input_ids"][0] == processor.tokenizer.image_token_id).nonzero().flatten()  # (256,)
    first, last = int(soft[0]), int(soft[-1])
    for layer in attentions:  # (batch, heads, q, kv)
        assert layer.shape == (1, heads, seq, seq)
        torch.testing.assert_close(layer.sum(-1), torch.ones(1, heads, seq))
        assert (layer[0, :, first, last] > 0).all(), "first soft token sees the last one"
        assert (layer[0, :, first - 1, first:] == 0).all(), "<start_of_image> is causal"


def test_left_padded_batch_matches_single_prompts(processor, model, image):
    tok = processor.tokenizer
    tok.padding_side = "left"
    questions = ["Is there edema?", "Does this chest X-ray demonstrate a pleural effusion in the left lower lobe?"]
    # transformers 5.x wants processor arguments in `processor_kwargs` (it warns about loose **kwargs).
    batch = encode(processor, [conversation(image, q) for q in questions], processor_kwargs={"padding": True})
    mask = batch["attention_mask"]  # (2, seq)
    assert batch["input_ids"].shape[0] == 2 and (mask[0] == 0).any() and (mask[1] == 1).all()
    n_pad = int((mask[0] == 0).sum())
    assert (batch["input_ids"][0, :n_pad] == tok.pad_token_id).all() and batch["input_ids"][0, n_pad] == tok.bos_token_id
    assert (batch["token_type_ids"].sum(-1) == 256).all()
    with torch.no_grad():
        # No position_ids needed: RoPE sees only relative positions, so a left shift changes nothing.
        batched = model(**batch).logits[:, -1]  # (2, vocab)
        for row, question in enumerate(questions):
            single = model(**encode(processor, conversation(image, question))).logits[0, -1]  # (vocab,)
            torch.testing.assert_close(batched[row], single, atol=1e-4, rtol=1e-4)


# Reproducibility


def test_same_seed_gives_identical_files(model_dir, tmp_path):
    again = build_demo_model(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (model_dir / name).read_bytes(), name


def test_another_seed_gives_other_weights(model_dir, tmp_path):
    other = load_file(build_demo_model(tmp_path / "other", DemoModelConfig(seed=1)) / "model.safetensors")
    base = load_file(model_dir / "model.safetensors")
    assert base.keys() == other.keys()
    # Keys on disk follow the hub checkpoint layout ("language_model.model.layers…"), not the module paths.
    q_proj = next(k for k in base if k.endswith("language_model.model.layers.0.self_attn.q_proj.weight"))
    assert not torch.equal(base[q_proj], other[q_proj])
