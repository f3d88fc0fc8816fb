"""A loaded model plus its processor: ask yes/no questions about images."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .answers import Answer, extract_answer
from .attention import MapResult, MapSpec, Prompts, make_maps
from .attention.positions import expanded_prompt
from .config import DecodeConfig, ModelSpec, PromptConfig
from .images import load_image
from .prompts import build_messages
from .yes_no import yes_no_log_odds, yes_no_probabilities, yes_no_token_ids


class PromptError(ValueError):
    """A question cannot be asked as it is: it holds one of the model's special tokens, or the
    prompt and the reply would not fit the model's context."""


_PLACEHOLDER = Image.new("RGB", (1, 1))  # stands for the image where only the prompt's text is needed


@dataclass(frozen=True)
class AskResult:
    text: str  # greedy reply, special tokens removed
    answer: Answer  # extract_answer(text)
    p_yes: float  # yes / (yes + no) mass at the answer position
    yes_no_mass: float  # yes + no mass at the answer position
    latency_s: float  # wall time of the batch divided by its size
    map: MapResult | None = None  # where the model looked, when maps were asked for

    @property
    def maps(self) -> dict[int, np.ndarray] | None:
        """Layer index -> (rows, columns) grid summing to 1 (see MapResult)."""
        return self.map.maps if self.map else None

    @property
    def grid_shape(self) -> tuple[int, int] | None:
        return self.map.grid_shape if self.map else None


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
        tokenizer = processor.tokenizer
        self._special_ids = {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
        self._special_ids |= set(tokenizer.all_special_ids)

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
        rendered = self.processor.apply_chat_template([build_messages(_PLACEHOLDER, q, prompt) for q in questions],
                                                      add_generation_prompt=True, tokenize=False)
        prompts = tokenizer([expanded_prompt(self.processor, t) for t in rendered], add_special_tokens=False)
        alone = tokenizer(list(questions), add_special_tokens=False)
        reply = max_new_tokens or self.decode.max_new_tokens
        context = self.context_length
        out: list[str | None] = []
        for ids, own in zip(prompts["input_ids"], alone["input_ids"]):
            special = self._special_names(own)
            if special:
                out.append(f"the question contains the model's special token {special[0]!r}, which would be read "
                           "as prompt structure, not as text; remove it")
            elif context is not None and len(ids) + reply > context:
                out.append(f"the prompt is {len(ids):,} tokens (the question alone {len(own):,}) and the reply may "
                           f"add {reply}: more than the model's context of {context:,} tokens")
            else:
                out.append(None)
        return out

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

    def ask(self, image: str | Path | Image.Image, question: str, *, instruction: str | None = None,
            system_prompt: str | None = None, max_new_tokens: int | None = None, method: str | None = None,
            layers: str | Sequence[int] | None = None, query: str = "answer", heads: str = "mean",
            term: str | None = None, strip_border: int = 0) -> AskResult:
        """Answer one question about one image (a path to PNG/JPEG/DICOM, or a PIL image).

        With `method` ("attention", "token" with `term=`, "gradcam" or "activation") or
        `layers` ("2,7,12", "all", "last:4", "full"), the result also carries `maps`: a dict
        from layer index to a (rows, columns) numpy grid summing to 1, and `grid_shape`."""
        prompt = self.prompt
        if instruction is not None:
            prompt = replace(prompt, instruction=instruction)
        if system_prompt is not None:
            prompt = replace(prompt, system_prompt=system_prompt)
        spec = None
        if method is not None or layers is not None:
            spec = MapSpec(method=method or "attention", layers=layers if layers is not None else "all", query=query,
                           heads=heads, term=term, strip_border=strip_border)
        return self.ask_batch([image], [question], prompt=prompt, max_new_tokens=max_new_tokens, maps=spec)[0]

    def encode(self, images: Sequence[str | Path | Image.Image], questions: Sequence[str], *,
               prompt: PromptConfig | None = None):
        """Model inputs for a batch, exactly as ask_batch builds them (left-padded)."""
        prompt = prompt or self.prompt
        return self._tokenize([build_messages(load_image(img), q, prompt) for img, q in zip(images, questions)])

    def _tokenize(self, conversations, offsets: bool = False):
        inputs = self.processor.apply_chat_template(
            conversations, add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors="pt", processor_kwargs={"padding": True, "return_offsets_mapping": offsets},
        ).to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return inputs

    @torch.no_grad()
    def map_batch(self, images: Sequence[str | Path | Image.Image], questions: Sequence[str], spec: MapSpec, *,
                  prompt: PromptConfig | None = None) -> list[MapResult]:
        """Maps only: one forward pass (no generation) plus what the method needs."""
        prompt = prompt or self.prompt
        conversations = [build_messages(load_image(img), q, prompt) for img, q in zip(images, questions)]
        inputs = self._tokenize(conversations, offsets=True)
        prompts = self._map_prompts(conversations, inputs, questions)
        return make_maps(self, prompts, spec, lambda: self.model(**prompts.inputs))[1]

    def _map_prompts(self, conversations, inputs, questions: Sequence[str]) -> Prompts:
        """Take the offsets out of `inputs` (the model does not accept them) and pair them
        with the prompt texts they index into."""
        offsets = inputs.pop("offset_mapping")
        rendered = self.processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=False)
        return Prompts(dict(inputs), offsets.cpu(), [expanded_prompt(self.processor, t) for t in rendered],
                       list(questions))

    @torch.no_grad()
    def yes_log_odds(self, inputs) -> torch.Tensor:
        """log(P(yes) / P(no)) at the answer position for already-encoded inputs, from one
        forward pass: unlike P(yes), it does not saturate for a confident model. (batch,)"""
        return yes_no_log_odds(self.model(**inputs, logits_to_keep=1).logits[:, -1], self.yes_ids, self.no_ids)

    @torch.no_grad()  # not inference_mode: Grad-CAM re-enables autograd on these inputs
    def ask_batch(self, images: Sequence[str | Path | Image.Image], questions: Sequence[str], *,
                  prompt: PromptConfig | None = None, max_new_tokens: int | None = None,
                  maps: MapSpec | None = None, checked: bool = False) -> list[AskResult]:
        """Greedy replies and P(yes) for a batch, from one `generate` call: the first
        step's logits are the answer-position distribution. With `maps`, attention rows
        are read from that same call's prompt pass (see compute.attention). PromptError
        for a question that cannot be asked, unless the caller has `checked` them."""
        if len(images) != len(questions):
            raise ValueError(f"images and questions differ in number: {len(images)} vs {len(questions)}")
        prompt = prompt or self.prompt
        if not checked:
            self.check_prompts(questions, prompt=prompt, max_new_tokens=max_new_tokens)
        start = time.perf_counter()
        conversations = [build_messages(load_image(img), q, prompt) for img, q in zip(images, questions)]
        inputs = self._tokenize(conversations, offsets=maps is not None)
        prompts = self._map_prompts(conversations, inputs, questions) if maps is not None else None

        def generate():
            return self.model.generate(
                **inputs, max_new_tokens=max_new_tokens or self.decode.max_new_tokens, do_sample=False,
                output_logits=True, return_dict_in_generate=True,
            )

        if maps is None:
            out, results = generate(), [None] * len(questions)
        else:
            out, results = make_maps(self, prompts, maps, generate)
        p_yes, mass = yes_no_probabilities(out.logits[0], self.yes_ids, self.no_ids)  # (batch,) each
        prompt_len = inputs["input_ids"].shape[1]
        texts = self.processor.batch_decode(out.sequences[:, prompt_len:], skip_special_tokens=True)
        latency = (time.perf_counter() - start) / len(questions)
        return [AskResult(text=t.strip(), answer=extract_answer(t), p_yes=float(p), yes_no_mass=float(m),
                          latency_s=latency, map=r)
                for t, p, m, r in zip(texts, p_yes.tolist(), mass.tolist(), results)]
