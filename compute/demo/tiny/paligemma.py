"""A tiny PaliGemma 2 (`paligemma`): a SigLIP vision tower (no pooling head) whose every patch is one
image token, a linear projector and a Gemma-2 decoder. There is no chat template: the prompt is
the prefix-LM layout `<image>` x N + `<bos>` + prefix + `\\n`, built by PaliGemmaProcessor from
`processor(images=..., text="<image>" + prefix)`; image and prefix attend to each other both ways
(token_type_ids 0), the answer causally. The processor resizes to a square without cropping.

Real PaliGemma 2 3B at 224: SigLIP So400m/14 (27 layers, hidden 1152), N = 16 x 16 = 256, Gemma-2 2B.
Tiny: 56 / 14 = 4 x 4 = 16 image tokens, SigLIP 2 layers hidden 32, Gemma-2 2 layers hidden 64.
PaliGemmaProcessor adds its 1024 `<locNNNN>` and 128 `<segNNN>` tokens to the tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (Gemma2Config, PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor,
                          SiglipVisionConfig)
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

from compute.demo.tiny.common import family_tokenizer, greedy_generation, save, seeded

IMAGE_SIZE, PATCH = 56, 14
NUM_IMAGE_TOKENS = (IMAGE_SIZE // PATCH) ** 2


def build(out_dir: Path, seed: int = 0) -> Path:
    tokenizer = family_tokenizer({"image_token": "<image>"})
    tokenizer.chat_template = None  # the demo tokenizer's Gemma-3 template; PaliGemma has none
    image_processor = SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                                              image_seq_length=NUM_IMAGE_TOKENS)
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)  # adds <loc>/<seg>
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, image_size=IMAGE_SIZE, patch_size=PATCH,
                                         vision_use_head=False),
        text_config=Gemma2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, head_dim=16, vocab_size=len(tokenizer),
                                 max_position_embeddings=1024, sliding_window=512,
                                 pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                 eos_token_id=tokenizer.eos_token_id),
        image_token_index=tokenizer.image_token_id, vocab_size=len(tokenizer), projection_dim=64, hidden_size=64)
    model = seeded(lambda: PaliGemmaForConditionalGeneration(config), seed)
    model.generation_config = greedy_generation(tokenizer)
    return save(out_dir, model, processor, "paligemma", seed)
