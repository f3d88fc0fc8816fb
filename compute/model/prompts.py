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


def expanded_prompt(processor, rendered: str) -> str:
    """The prompt text the tokenizer actually saw: the processor replaces each image
    placeholder with the full image-token sequence before tokenizing, and offsets refer to it."""
    boi = processor.tokenizer.boi_token
    return rendered.replace(boi, processor.full_image_sequence) if hasattr(processor, "full_image_sequence") else rendered
