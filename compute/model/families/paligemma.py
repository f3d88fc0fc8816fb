"""PaliGemma 2 (`paligemma`): N x `<image>` then `<bos>` + prefix + `\\n`, N = (size / 14)²
(16x16 at 224 px, 32x32 at 448, 64x64 at 896). No chat template: the prompt is a prefix-LM
prefix, and image and prefix attend to each other both ways. The image's cache therefore
depends on the question, so the prefix-sharing engine does not apply; the batched generate answers."""

from __future__ import annotations

from compute.model.families.base import Family


class PaliGemma(Family):
    name = "paligemma"
    model_types = ("paligemma",)
    bidirectional_image = True
    image_sees_question = True

    def prefix(self, conversation: list[dict]) -> str:
        """The prefix text: the system prompt and the user's text, in order, on one line."""
        texts = [item["text"] for message in conversation if isinstance(message["content"], list)
                 for item in message["content"] if item.get("type") == "text"]
        return " ".join(t.strip() for t in texts if t.strip())

    def render(self, processor, conversations: list[list[dict]]) -> list[str]:
        # what PaliGemmaProcessor turns "<image>" + prefix into before expanding the image token
        return [f"{processor.image_token}{processor.tokenizer.bos_token}{self.prefix(c)}\n" for c in conversations]

    def tokenize(self, processor, conversations: list[list[dict]], *, offsets: bool = False):
        from compute.model.prompts import conversation_images

        inputs = processor(images=[conversation_images(c) for c in conversations],
                           text=[processor.image_token + self.prefix(c) for c in conversations],
                           padding=True, return_tensors="pt", return_offsets_mapping=offsets)
        inputs.pop("labels", None)  # training labels, which the processor adds for backward compatibility
        return inputs


FAMILY = PaliGemma()
