"""A loaded model plus its processor: ask yes/no questions about images."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from PIL import Image

from .answers import Answer, extract_answer
from .config import DecodeConfig, ModelSpec, PromptConfig
from .images import load_image
from .prompts import build_messages
from .yes_no import yes_no_probabilities, yes_no_token_ids


@dataclass(frozen=True)
class AskResult:
    text: str  # greedy reply, special tokens removed
    answer: Answer  # extract_answer(text)
    p_yes: float  # yes / (yes + no) mass at the answer position
    yes_no_mass: float  # yes + no mass at the answer position
    latency_s: float  # wall time of the batch divided by its size


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
        self.processor.tokenizer.padding_side = "left"  # generation continues from the right edge
        self.yes_ids, self.no_ids = yes_no_token_ids(processor.tokenizer)

    @property
    def model_id(self) -> str:
        return self.spec.name_or_path

    def ask(self, image: str | Path | Image.Image, question: str, *, instruction: str | None = None,
            system_prompt: str | None = None, max_new_tokens: int | None = None) -> AskResult:
        """Answer one question about one image (a path to PNG/JPEG/DICOM, or a PIL image)."""
        prompt = self.prompt
        if instruction is not None:
            prompt = replace(prompt, instruction=instruction)
        if system_prompt is not None:
            prompt = replace(prompt, system_prompt=system_prompt)
        return self.ask_batch([image], [question], prompt=prompt, max_new_tokens=max_new_tokens)[0]

    @torch.inference_mode()
    def ask_batch(self, images: Sequence[str | Path | Image.Image], questions: Sequence[str], *,
                  prompt: PromptConfig | None = None, max_new_tokens: int | None = None) -> list[AskResult]:
        """Greedy replies and P(yes) for a batch, from one `generate` call: the first
        step's logits are the answer-position distribution."""
        if len(images) != len(questions):
            raise ValueError(f"images and questions differ in number: {len(images)} vs {len(questions)}")
        prompt = prompt or self.prompt
        start = time.perf_counter()
        conversations = [build_messages(load_image(img), q, prompt) for img, q in zip(images, questions)]
        inputs = self.processor.apply_chat_template(
            conversations, add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors="pt", processor_kwargs={"padding": True},
        ).to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        out = self.model.generate(
            **inputs, max_new_tokens=max_new_tokens or self.decode.max_new_tokens, do_sample=False,
            output_logits=True, return_dict_in_generate=True,
        )
        p_yes, mass = yes_no_probabilities(out.logits[0], self.yes_ids, self.no_ids)  # (batch,) each
        prompt_len = inputs["input_ids"].shape[1]
        texts = self.processor.batch_decode(out.sequences[:, prompt_len:], skip_special_tokens=True)
        latency = (time.perf_counter() - start) / len(questions)
        return [AskResult(text=t.strip(), answer=extract_answer(t), p_yes=float(p), yes_no_mass=float(m),
                          latency_s=latency)
                for t, p, m in zip(texts, p_yes.tolist(), mass.tolist())]
