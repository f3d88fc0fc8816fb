"""A tiny InternVL (`internvl`, the `-hf` layout): an InternViT tower (CLS token + patches) run on
square tiles, pixel shuffle (downsample_ratio 0.5: 2 x 2 patches become one token), an MLP projector
and a Qwen2 decoder. With `crop_to_patches` the image is resized to the cols x rows canvas of tiles
whose aspect ratio is closest to it (1 <= cols x rows <= max_patches) and cut row-major, then a
thumbnail (the whole image resized to one tile) follows when there is more than one tile. Each
`<IMG_CONTEXT>` in the prompt becomes `<img>` + image_seq_length x tiles x `<IMG_CONTEXT>` + `</img>`.

Real InternVL3-1B-hf: tiles of 448 px, patch 14 (32 x 32), image_seq_length 256 (16 x 16),
max_patches 12, InternViT-300M (24 layers, hidden 1024). Tiny: tiles of 56 px, patch 14 (4 x 4),
image_seq_length 4 (2 x 2), max_patches 4, 2 vision layers of hidden 32.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (InternVLConfig, InternVLForConditionalGeneration, InternVLVisionConfig, QianfanOCRProcessor,
                          Qwen2Config)
from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

from compute.demo.tiny.common import family_tokenizer, greedy_generation, save, seeded

TILE, PATCH, DOWNSAMPLE, MAX_PATCHES = 56, 14, 0.5, 4
IMAGE_SEQ_LEN = int((TILE // PATCH) ** 2 * DOWNSAMPLE**2)
NAMED = {"context_image_token": "<IMG_CONTEXT>", "start_image_token": "<img>", "end_image_token": "</img>",
         "video_token": "<video>"}

# OpenGVLab/InternVL3-*-hf's template (no default system turn).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}{% elif content['type'] == 'text' %}"
    "{{ content['text'] }}{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def build(out_dir: Path, seed: int = 0) -> Path:
    tokenizer = family_tokenizer(NAMED, ("<|endoftext|>", "<|im_start|>", "<|im_end|>"))
    tokenizer.add_bos_token = False  # Qwen2's tokenizer adds no bos
    image_processor = GotOcr2ImageProcessorPil(size={"height": TILE, "width": TILE}, crop_to_patches=True,
                                               min_patches=1, max_patches=MAX_PATCHES)
    # InternVLProcessor requires a video processor, and every video processor needs torchvision (without it the
    # processor cannot even be built). QianfanOCRProcessor is InternVL's image path without one: each
    # <IMG_CONTEXT> becomes <img> + image_seq_length x tiles x <IMG_CONTEXT> + </img>, crop_to_patches on.
    processor = QianfanOCRProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                    image_seq_length=IMAGE_SEQ_LEN, chat_template=CHAT_TEMPLATE,
                                    image_placeholder_token="<IMG_CONTEXT>")
    config = InternVLConfig(
        vision_config=InternVLVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=2, image_size=TILE, patch_size=PATCH),
        text_config=Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=1024,
                                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id),
        image_token_id=tokenizer.context_image_token_id, image_seq_length=IMAGE_SEQ_LEN, downsample_ratio=DOWNSAMPLE)
    model = seeded(lambda: InternVLForConditionalGeneration(config), seed)
    model.generation_config = greedy_generation(tokenizer, stop=("<|im_end|>", "<|endoftext|>"))
    return save(out_dir, model, processor, "internvl", seed)
