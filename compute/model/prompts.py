"""Chat messages for one question about one image. The processor's own chat template
turns them into the model's prompt, so MedGemma and the demo model format identically."""

from __future__ import annotations

from typing import Any

from PIL import Image

from compute.config import PromptConfig


def build_messages(image: Image.Image, question: str, prompt: PromptConfig) -> list[dict[str, Any]]:
    text = f"{question.strip()} {prompt.instruction.strip()}".strip()
    messages: list[dict[str, Any]] = []
    if prompt.system_prompt:
        messages.append({"role": "system", "content": [{"type": "text", "text": prompt.system_prompt}]})
    messages.append({"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]})
    return messages


def conversation_images(conversation: list[dict[str, Any]]) -> list[Image.Image]:
    return [item["image"] for message in conversation if isinstance(message["content"], list)
            for item in message["content"] if item.get("type") == "image"]


def image_replacements(processor, images: list[Image.Image], **kwargs) -> list[str]:
    """The token text each image's placeholder is expanded to, as the processor expands it (its
    length depends on the image on dynamic-resolution and tiling families). `kwargs`: what the
    family's image processor is called with (Session.image_kwargs)."""
    if not images:
        return []
    processed = processor.image_processor(images, return_tensors="pt", **kwargs)
    return [processor.replace_image_token(processed, image_idx=i) for i in range(len(images))]


def expanded_prompts(processor, rendered: list[str], images: list[list[Image.Image]],
                     replacements: list[list[str]] | None = None, image_kwargs: dict | None = None) -> list[str]:
    """The prompt texts the tokenizer actually sees: the processor replaces each image
    placeholder with that image's full token sequence before tokenizing, and offsets refer to
    it. `replacements`, per prompt, when already known (the engine computes them once per image)."""
    if replacements is None:
        replacements = [image_replacements(processor, imgs, **(image_kwargs or {})) for imgs in images]
    flat = [r for per_prompt in replacements for r in per_prompt]
    texts, _ = processor.get_text_with_replacements(list(rendered), flat)
    return texts
