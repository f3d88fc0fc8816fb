"""The batched-generate strategy: one `generate` call per batch of questions. The first step's
logits are the answer-position distribution (P(yes)); maps are read from that same call's
prompt pass (see compute.maps). It answers anything the model can be asked, maps of every
method and query included, and generates the replies the prefix-shared engine needs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import torch

from compute.answering.answerer import AskResult, Group, ImageSource
from compute.config import PromptConfig
from compute.maps import MapSpec, make_maps
from compute.maps.extract import map_prompts
from compute.model.answers import extract_answer
from compute.model.session import Session
from compute.model.yes_no import yes_no_probabilities


class BatchedGenerate:
    def __init__(self, session: Session, maps: MapSpec | None = None, max_batch: int = 8):
        self.session = session
        self.maps = maps
        self.max_batch = max_batch  # questions per generate call
        self.batch_items = max_batch
        self.batch_images = None

    def ask_groups(self, groups: Sequence[Group]) -> list[list[AskResult]]:
        flat = [(g.image, q) for g in groups for q in g.questions]
        answers: list[AskResult] = []
        for lo in range(0, len(flat), self.max_batch):
            chunk = flat[lo:lo + self.max_batch]
            answers += self.ask_batch([i for i, _ in chunk], [q for _, q in chunk], maps=self.maps, checked=True)
        out, lo = [], 0
        for g in groups:
            out.append(answers[lo:lo + len(g.questions)])
            lo += len(g.questions)
        return out

    def texts(self, images: Sequence[ImageSource], questions: Sequence[str]) -> list[str]:
        """Greedy replies only: what the prefix-shared engine is given to generate text."""
        return [r.text for r in self.ask_batch(images, questions, checked=True)]

    @torch.no_grad()  # not inference_mode: Grad-CAM re-enables autograd on these inputs
    def ask_batch(self, images: Sequence[ImageSource], questions: Sequence[str], *,
                  prompt: PromptConfig | None = None, max_new_tokens: int | None = None,
                  maps: MapSpec | None = None, checked: bool = False) -> list[AskResult]:
        """Greedy replies and P(yes) for a batch, from one `generate` call, with `maps` read
        from its prompt pass. PromptError for a question that cannot be asked, unless the
        caller has `checked` them."""
        s = self.session
        prompt = prompt or s.prompt
        with s.lock:  # the tokenizer too: a fast tokenizer refuses to be used by two threads at once
            return self._ask_batch(images, questions, prompt, max_new_tokens, maps, checked)

    def _ask_batch(self, images, questions, prompt: PromptConfig, max_new_tokens: int | None, maps: MapSpec | None,
                   checked: bool) -> list[AskResult]:
        s = self.session
        if not checked:
            s.check_prompts(questions, prompt=prompt, max_new_tokens=max_new_tokens)
        start = time.perf_counter()
        conversations = s.conversations(images, questions, prompt)
        inputs = s.tokenize(conversations, offsets=maps is not None)
        prompts = map_prompts(s, conversations, inputs, questions) if maps is not None else None

        def generate():
            return s.model.generate(
                **inputs, max_new_tokens=max_new_tokens or s.decode.max_new_tokens, do_sample=False,
                output_logits=True, return_dict_in_generate=True,
            )

        if maps is None:
            out, results = generate(), [None] * len(questions)
        else:
            out, results = make_maps(s, prompts, maps, generate)
        p_yes, mass = yes_no_probabilities(out.logits[0], s.yes_ids, s.no_ids)  # (batch,) each
        prompt_len = inputs["input_ids"].shape[1]
        texts = s.processor.batch_decode(out.sequences[:, prompt_len:], skip_special_tokens=True)
        latency = (time.perf_counter() - start) / len(questions)
        return [AskResult(text=t.strip(), answer=extract_answer(t), p_yes=float(p), yes_no_mass=float(m),
                          latency_s=latency, map=r)
                for t, p, m, r in zip(texts, p_yes.tolist(), mass.tolist(), results)]

def ask(session: Session, image: ImageSource, question: str, *, instruction: str | None = None,
        system_prompt: str | None = None, max_new_tokens: int | None = None, method: str | None = None,
        layers: str | Sequence[int] | None = None, query: str = "answer", heads: str = "mean",
        term: str | None = None, strip_border: int = 0) -> AskResult:
    """Answer one question about one image (a path to PNG/JPEG/DICOM, or a PIL image).

    With `method` ("attention", "token" with `term=`, "gradcam" or "activation") or `layers`
    ("2,7,12", "all", "last:4", "full"), the result also carries `maps`: a dict from layer index
    to a (rows, columns) numpy grid summing to 1, and `grid_shape`."""
    prompt = session.prompt
    if instruction is not None:
        prompt = replace(prompt, instruction=instruction)
    if system_prompt is not None:
        prompt = replace(prompt, system_prompt=system_prompt)
    spec = None
    if method is not None or layers is not None:
        spec = MapSpec(method=method or "attention", layers=layers if layers is not None else "all", query=query,
                       heads=heads, term=term, strip_border=strip_border)
    return BatchedGenerate(session).ask_batch([image], [question], prompt=prompt, max_new_tokens=max_new_tokens,
                                              maps=spec)[0]
