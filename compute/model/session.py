"""A loaded model plus its processor: the prompts it is asked, checked and tokenized, and
the yes/no log-odds of one forward pass. Answering is compute.answering's job."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from compute.config import DecodeConfig, ModelSpec, PromptConfig
from compute.data.images import load_image
from compute.model.families import family_for
from compute.model.prompts import build_messages, conversation_images, expanded_prompts, image_replacements
from compute.model.yes_no import yes_no_log_odds, yes_no_token_ids


class PromptError(ValueError):
    """A question cannot be asked as it is: it holds one of the model's special tokens, or the
    prompt and the reply would not fit the model's context."""


# Stands for the image where only the prompt's text is needed (on dynamic-resolution families the
# real image's token count may differ from this one's).
JOIN_SLACK = 16  # tokens a text may gain or lose where it joins the prompt's words (a merge at each edge)
_PLACEHOLDER = Image.new("RGB", (224, 224), (128, 128, 128))


class Session:
    def __init__(self, *, model, processor, spec: ModelSpec, device: torch.device, dtype: torch.dtype,
                 prompt: PromptConfig, decode: DecodeConfig, revision: str | None = None,
                 fingerprint: str | None = None):
        self.model = model
        self.processor = processor
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self.prompt = prompt
        self.decode = decode
        self.revision = revision
        self.fingerprint = fingerprint
        # Held by whatever runs the model: attention capture and Grad-CAM switch the shared model's
        # attention implementation and hooks, so two threads (the Live page's users) take turns.
        self.lock = threading.RLock()
        self.family = family_for(model.config)  # what this model does differently: image tokens, prompt, vision layer
        self.image_kwargs = self.family.image_kwargs(processor)  # as the processor calls its image processor
        self.processor.tokenizer.padding_side = "left"  # generation continues from the right edge
        self.yes_ids, self.no_ids = yes_no_token_ids(processor.tokenizer)
        tokenizer = processor.tokenizer
        self._special_ids = {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
        self._special_ids |= set(tokenizer.all_special_ids)
        self._placeholder: str | None = None  # the stand-in image's token text (prompt_problems)

    @property
    def context_length(self) -> int | None:
        """Tokens the decoder can attend over: prompt (image tokens included) plus reply; None
        when the configuration does not say."""
        length = getattr(self.model.config.get_text_config(), "max_position_embeddings", None)
        return int(length) if length else None

    def special_tokens_in(self, text: str) -> list[str]:
        """The model's special tokens ("<end_of_turn>", "<start_of_image>", ...) that `text`
        would be read as: typed into a question they would forge prompt structure."""
        return self._special_names(self.processor.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _special_names(self, ids: Sequence[int]) -> list[str]:
        return [self.processor.tokenizer.convert_ids_to_tokens(i) for i in dict.fromkeys(ids) if i in self._special_ids]

    def prompt_problems(self, questions: Sequence[str], *, prompt: PromptConfig | None = None,
                        max_new_tokens: int | None = None) -> list[str | None]:
        """Per question, None if it can be asked, else why not: a special token in it, or a
        prompt that with the reply would not fit the model's context. Text only: no model pass."""
        prompt = prompt or self.prompt
        tokenizer = self.processor.tokenizer
        alone = tokenizer(list(questions), add_special_tokens=False)
        specials = [self._special_names(own) for own in alone["input_ids"]]
        reply = max_new_tokens or self.decode.max_new_tokens
        context = self.context_length
        frame = self._prompt_lengths([""], prompt)[0] if context is not None else 0  # the prompt around no question
        # Only a question that could come near the context is rendered and counted: set in its prompt, a
        # text gains at most JOIN_SLACK tokens where it meets the words around it.
        near = [k for k, (own, special) in enumerate(zip(alone["input_ids"], specials))
                if not special and context is not None and frame + len(own) + JOIN_SLACK + reply > context]
        lengths = dict(zip(near, self._prompt_lengths([questions[k] for k in near], prompt)))
        out: list[str | None] = []
        for k, (own, special) in enumerate(zip(alone["input_ids"], specials)):
            if special:
                out.append(f"the question contains the model's special token {special[0]!r}, which would be read "
                           "as prompt structure, not as text; remove it")
            elif k in lengths and lengths[k] + reply > context:
                out.append(f"the prompt is {lengths[k]:,} tokens (the question alone {len(own):,}) and the reply may "
                           f"add {reply}: more than the model's context of {context:,} tokens")
            else:
                out.append(None)
        return out

    def _prompt_lengths(self, questions: Sequence[str], prompt: PromptConfig) -> list[int]:
        """Each question's whole prompt in tokens, image tokens included (those of a stand-in image)."""
        if not questions:
            return []
        conversations = [build_messages(_PLACEHOLDER, q, prompt) for q in questions]
        placeholder = self._placeholder_replacement()  # one image-processor call, not one a question
        rendered = expanded_prompts(self.processor, self.family.render(self.processor, conversations),
                                    [conversation_images(c) for c in conversations],
                                    replacements=[[placeholder] for _ in conversations])
        return [len(ids) for ids in self.processor.tokenizer(rendered, add_special_tokens=False)["input_ids"]]

    def _placeholder_replacement(self) -> str:
        if self._placeholder is None:
            self._placeholder = image_replacements(self.processor, [_PLACEHOLDER], **self.image_kwargs)[0]
        return self._placeholder

    def instruction_problem(self, prompt: PromptConfig | None = None) -> str | None:
        """Why the instruction or system prompt cannot be used (a special token in it), or None."""
        prompt = prompt or self.prompt
        for name, text in (("instruction", prompt.instruction), ("system prompt", prompt.system_prompt)):
            special = self.special_tokens_in(text) if text else []
            if special:
                return (f"the {name} contains the model's special token {special[0]!r}, which would be read as "
                        "prompt structure, not as text; remove it")
        return None

    def check_prompts(self, questions: Sequence[str], *, prompt: PromptConfig | None = None,
                      max_new_tokens: int | None = None) -> None:
        """PromptError for the first question that cannot be asked (see prompt_problems)."""
        problem = self.instruction_problem(prompt)
        if problem:
            raise PromptError(problem)
        for k, problem in enumerate(self.prompt_problems(questions, prompt=prompt, max_new_tokens=max_new_tokens)):
            if problem:
                raise PromptError(problem if len(questions) == 1 else f"question {k + 1} of {len(questions)}: {problem}")

    @property
    def model_id(self) -> str:
        return self.spec.name_or_path

    def conversations(self, images: Sequence[str | Path | Image.Image], questions: Sequence[str],
                      prompt: PromptConfig | None = None) -> list[list[dict]]:
        """One chat (system prompt, image, question and instruction) per question."""
        if len(images) != len(questions):
            raise ValueError(f"images and questions differ in number: {len(images)} vs {len(questions)}")
        prompt = prompt or self.prompt
        return [build_messages(load_image(img), q, prompt) for img, q in zip(images, questions)]

    def rendered_prompts(self, conversations) -> list[str]:
        """Each prompt's text as the tokenizer sees it: the chat template's output with the
        image placeholder expanded to the full image-token sequence."""
        rendered = self.family.render(self.processor, conversations)
        return expanded_prompts(self.processor, rendered, [conversation_images(c) for c in conversations],
                                image_kwargs=self.image_kwargs)

    def encode(self, images: Sequence[str | Path | Image.Image], questions: Sequence[str], *,
               prompt: PromptConfig | None = None):
        """Model inputs for a batch, left-padded, exactly as the batched generate builds them."""
        return self.tokenize(self.conversations(images, questions, prompt))

    def tokenize(self, conversations, offsets: bool = False):
        """Model inputs for these chats (left-padded; with `offsets`, an `offset_mapping` too)."""
        inputs = self.family.tokenize(self.processor, conversations, offsets=offsets).to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return inputs

    @torch.no_grad()
    def yes_log_odds(self, inputs) -> torch.Tensor:
        """log(P(yes) / P(no)) at the answer position for already-encoded inputs, from one
        forward pass: unlike P(yes), it does not saturate for a confident model. (batch,)"""
        return yes_no_log_odds(self.model(**inputs, logits_to_keep=1).logits[:, -1], self.yes_ids, self.no_ids)
