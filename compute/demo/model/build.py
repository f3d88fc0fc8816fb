"""Build the demo model folder: random weights, processor, generation config, model card.

The folder loads exactly as MedGemma's does:
    AutoProcessor.from_pretrained(out_dir)
    AutoModelForImageTextToText.from_pretrained(out_dir)
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import Gemma3ForConditionalGeneration, PreTrainedTokenizerBase

from compute.demo.model.architecture import gemma3_config, generation_config
from compute.demo.model.config import DemoModelConfig
from compute.demo.model.corpus import question_corpus
from compute.demo.model.model_card import model_card
from compute.demo.model.processor import build_processor
from compute.demo.model.tokenizer import train_tokenizer


def random_model(cfg: DemoModelConfig, tokenizer: PreTrainedTokenizerBase) -> Gemma3ForConditionalGeneration:
    """A Gemma-3 model with seeded random weights."""
    torch.manual_seed(cfg.seed)
    model = Gemma3ForConditionalGeneration(gemma3_config(cfg, tokenizer))
    if cfg.projector_init_std > 0:
        projection = model.model.multi_modal_projector.mm_input_projection_weight  # (vision_hidden, text_hidden)
        with torch.no_grad():
            nn.init.normal_(projection, mean=0.0, std=cfg.projector_init_std)
    model.generation_config = generation_config(tokenizer)
    return model.eval()


def build_demo_model(out_dir: Path, config: DemoModelConfig = DemoModelConfig()) -> Path:
    """Write a random-weight demo Gemma-3 model and its processor to `out_dir`; return `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(question_corpus(), config.max_vocab_size)
    processor = build_processor(config, tokenizer)
    model = random_model(config, tokenizer)
    model.save_pretrained(out_dir)  # safetensors
    processor.save_pretrained(out_dir)
    (out_dir / "README.md").write_text(model_card(config, model), encoding="utf-8")
    return out_dir
