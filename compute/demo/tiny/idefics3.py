"""A tiny Idefics3 (`idefics3`): a SigLIP-style vision tower run on square tiles, a pixel-shuffle
connector (scale_factor² patches become one token) and a Llama decoder. An image larger than a tile
is resized (longest edge to `size`, then both sides up to multiples of the tile) and split into
rows x cols tiles, row-major, each `<fake_token_around_image><row_i_col_j>` + image_seq_len x `<image>`,
a `\\n` after each row, then `\\n<fake_token_around_image><global-img>` + image_seq_len x `<image>` +
`<fake_token_around_image>` for the whole image resized to one tile.

Real Idefics3-8B: tiles of 364 px, patch 14 (26 x 26 patches), scale_factor 2, image_seq_len 169
(13 x 13), longest edge 4 x 364. Tiny: tiles of 56 px, patch 14 (4 x 4), scale_factor 2,
image_seq_len 4 (2 x 2), longest edge 112, so an image gives at most 2 x 2 tiles + the global one.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor,
                          Idefics3VisionConfig, LlamaConfig)
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

from compute.demo.tiny.common import family_tokenizer, greedy_generation, save, seeded

TILE, PATCH, SCALE, LONGEST = 56, 14, 2, 112
IMAGE_SEQ_LEN = (TILE // PATCH) ** 2 // SCALE**2
TOKENS = ("<|begin_of_text|>", "<fake_token_around_image>", "<end_of_utterance>", "<global-img>",
          *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)))

# HuggingFaceM4/Idefics3-8B-Llama3's template: capitalised roles, "User:" glued to a leading image.
CHAT_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")


def build(out_dir: Path, seed: int = 0) -> Path:
    tokenizer = family_tokenizer({"image_token": "<image>"}, TOKENS)
    tokenizer.bos_token = "<|begin_of_text|>"  # Llama 3's; the template starts with it, so none is added twice
    tokenizer.add_bos_token = True  # rebuilds the post-processor with the new bos
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": LONGEST}, max_image_size={"longest_edge": TILE},
                                                do_image_splitting=True)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=IMAGE_SEQ_LEN,
                                  chat_template=CHAT_TEMPLATE)
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=2, image_size=TILE, patch_size=PATCH),
        text_config=LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=1024,
                                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id),
        image_token_id=processor.image_token_id, scale_factor=SCALE)
    model = seeded(lambda: Idefics3ForConditionalGeneration(config), seed)
    model.generation_config = greedy_generation(tokenizer, stop=("<end_of_utterance>",))
    return save(out_dir, model, processor, "idefics3", seed)
