"""A tiny LLaVA-1.5 (`llava`): CLIP vision tower, features from layer -2 without CLS, a Llama
decoder and the `USER: <image>\\n... ASSISTANT:` prompt. The processor resizes without
cropping, so the token grid covers the whole image."""

from __future__ import annotations

from pathlib import Path

from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

from compute.demo.tiny.common import family_tokenizer, greedy_generation, save, seeded

IMAGE_SIZE, PATCH = 56, 14  # a 4 x 4 token grid (LLaVA-1.5: 336 / 14 = 24 x 24)

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'][0]['text'] }}\n"
    "{% elif m['role'] == 'user' %}USER: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT: {{ m['content'][0]['text'] }}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def build(out_dir: Path, seed: int = 0) -> Path:
    tokenizer = family_tokenizer({"image_token": "<image>"})
    image_processor = LlavaImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, do_center_crop=False)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH,
                               num_additional_image_tokens=1, vision_feature_select_strategy="default",
                               chat_template=CHAT_TEMPLATE)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                       image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=32),
        text_config=LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=1024,
                                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id),
        image_token_id=tokenizer.image_token_id, vision_feature_layer=-2, vision_feature_select_strategy="default")
    model = seeded(lambda: LlavaForConditionalGeneration(config), seed)
    model.generation_config = greedy_generation(tokenizer)
    return save(out_dir, model, processor, "llava", seed)
