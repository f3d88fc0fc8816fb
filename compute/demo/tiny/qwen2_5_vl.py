"""A tiny Qwen2.5-VL (`qwen2_5_vl`): a windowed-attention ViT with 14-px patches over 2 frames
(`temporal_patch_size` 2, a still image is repeated), a 2 x 2 patch merger, a Qwen2 decoder with
mRoPE, and the ChatML prompt with `<|vision_start|>` + `<|image_pad|>` x (h/2)(w/2) + `<|vision_end|>`.

Real 7B: vision depth 32, hidden 1280, window 112 px, full attention in blocks 7/15/23/31,
`min_pixels` 56², `max_pixels` 28²·1280. Tiny: depth 2 (block 1 full, so `visual.blocks[-1]` is
full attention as in the real model), hidden 32, window 56 px (2 x 2 merged tokens a window),
`min_pixels` 28², `max_pixels` 112², so a 56 x 56 image gives 2 x 2 tokens and 112 x 112 gives 4 x 4.
The processor resizes (`smart_resize`, sides to multiples of 28) without cropping.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (PaddleOCRVLProcessor, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
                          Qwen2_5_VLTextConfig, Qwen2_5_VLVisionConfig)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from compute.demo.tiny.common import family_tokenizer, greedy_generation, save, seeded, token_id

PATCH, MERGE, TEMPORAL = 14, 2, 2
MIN_PIXELS, MAX_PIXELS = 28 * 28, 112 * 112
TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>")

# The real template, images and text only: a default system turn when the conversation has none.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if loop.first and m['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}<|im_end|>\n"
    "{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in c %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def build(out_dir: Path, seed: int = 0) -> Path:
    tokenizer = family_tokenizer({"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"}, TOKENS)
    tokenizer.add_bos_token = False  # Qwen's tokenizer adds no bos
    image_processor = Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, patch_size=PATCH,
                                               merge_size=MERGE, temporal_patch_size=TEMPORAL)
    # Qwen2_5_VLProcessor requires a video processor, and every video processor needs torchvision (without it
    # the processor cannot even be built). PaddleOCRVLProcessor is the same image path without one: each
    # <|image_pad|> becomes grid_thw.prod() / merge² copies, and it returns mm_token_type_ids.
    processor = PaddleOCRVLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                     chat_template=CHAT_TEMPLATE)
    config = Qwen2_5_VLConfig(
        vision_config=Qwen2_5_VLVisionConfig(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                                             patch_size=PATCH, spatial_merge_size=MERGE,
                                             temporal_patch_size=TEMPORAL, window_size=56, out_hidden_size=64,
                                             fullatt_block_indexes=[1]),
        text_config=Qwen2_5_VLTextConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tokenizer),
                                         max_position_embeddings=1024,
                                         rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                                          "mrope_section": [2, 3, 3]},  # head_dim 16: 8 pairs
                                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id),
        image_token_id=tokenizer.image_token_id, video_token_id=tokenizer.video_token_id,
        vision_start_token_id=token_id(tokenizer, "<|vision_start|>"),
        vision_end_token_id=token_id(tokenizer, "<|vision_end|>"))
    model = seeded(lambda: Qwen2_5_VLForConditionalGeneration(config), seed)
    model.generation_config = greedy_generation(tokenizer, stop=("<|im_end|>", "<|endoftext|>"))
    return save(out_dir, model, processor, "qwen2_5_vl", seed)
