"""The prefix-sharing engine: every variant of a question shares its image and the prompt up
to the end of the image block, so that part runs once per image.

Per image: one prefix pass (the longest common prefix of its prompts' token ids: vision
tower, projector and the decoder over the image block) fills a KV cache; all of the
image's question suffixes then run as one right-padded batch against copies of it, with
positions continuing after the prefix. P(yes) comes from each row's last position, and
attention rows are captured in that same pass for the requested layers only. Text is
generated only for rows whose first token is not a yes/no word, or when asked.

A test shows the results equal Session.ask_batch's on the same inputs (fp32).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from .answers import extract_answer
from .attention import MapResult, MapSpec, parse_layers
from .attention.capture import IMPLEMENTATION, capture_rows
from .attention.extract import attention_grids, map_result
from .attention.positions import expanded_prompt
from .images import load_image
from .prompts import build_messages
from .session import AskResult, Session
from .yes_no import yes_no_probabilities


@dataclass(frozen=True)
class Group:
    """One image and the questions asked about it."""

    image: object  # path or PIL image
    questions: Sequence[str]


class Engine:
    def __init__(self, session: Session, maps: MapSpec | None = None, generate_text: bool = False,
                 max_batch: int = 64):
        if maps is not None and (maps.method != "attention" or maps.query != "answer"):
            raise ValueError("the engine reads answer-position attention; use Session.ask_batch for other maps")
        self.session = session
        self.maps = maps
        self.generate_text = generate_text
        self.max_batch = max_batch
        self.generated_rows = 0  # rows whose reply had to be generated (first token not yes/no, or asked)
        self.backoffs = 0  # times an out-of-memory error halved max_batch
        text_config = session.model.config.get_text_config()
        self.layers = parse_layers(maps.layers, text_config.layer_types) if maps else ()
        if session.device.type == "cuda":  # start from what fits in half the free memory; back off on OOM
            free, _ = torch.cuda.mem_get_info(session.device)
            self.max_batch = max(1, min(max_batch, rows_that_fit(free // 2, text_config, 512, session.dtype.itemsize)))

    @torch.no_grad()
    def ask_group(self, group: Group) -> list[AskResult]:
        """Answers (and maps) for every question of one image, from one prefix pass."""
        s = self.session
        start = time.perf_counter()
        image = load_image(group.image)
        ids = self._token_ids(image, group.questions)
        n = min(_common_prefix(ids), min(len(i) for i in ids) - 1)  # every row keeps a token to score
        image_token = s.model.config.image_token_id
        if (ids[0][n:] == image_token).any():
            raise ValueError("the prompts differ before the end of the image block; the prefix cannot be shared")
        pixels = s.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]  # once per image
        prefix_ids = ids[0][:n][None].to(s.device)
        prefix = s.model(input_ids=prefix_ids, attention_mask=torch.ones_like(prefix_ids),
                         token_type_ids=(prefix_ids == image_token).long(),
                         pixel_values=pixels.to(s.device, s.dtype), use_cache=True, logits_to_keep=1)
        results: list[AskResult] = []
        lo = 0
        while lo < len(ids):
            hi = lo + self.max_batch
            try:
                results += self._suffixes(prefix.cache, ids[lo:hi], group.questions[lo:hi], n,
                                          ids[0][:n] == image_token, image)
            except torch.OutOfMemoryError:
                if self.max_batch == 1:
                    raise
                out_of_memory = True  # handled below, once the failed batch's tensors are released
            else:
                out_of_memory = False
                lo = hi
            if out_of_memory:  # back off and retry this chunk; nothing is lost
                self.max_batch //= 2
                self.backoffs += 1
                if s.device.type == "cuda":
                    torch.cuda.empty_cache()
        latency = (time.perf_counter() - start) / len(ids)
        return [AskResult(r.text, r.answer, r.p_yes, r.yes_no_mass, latency, r.map) for r in results]

    def _token_ids(self, image: Image.Image, questions: Sequence[str]) -> list[torch.Tensor]:
        """Each prompt's token ids, as the processor makes them, without processing the image
        once per question: the chat template's text with the image placeholder expanded."""
        s = self.session
        texts = s.processor.apply_chat_template([build_messages(image, q, s.prompt) for q in questions],
                                                add_generation_prompt=True, tokenize=False)
        expanded = [expanded_prompt(s.processor, t) for t in texts]
        return [torch.tensor(i) for i in s.processor.tokenizer(expanded, add_special_tokens=False)["input_ids"]]

    def _suffixes(self, prefix_cache, ids: list[torch.Tensor], questions: Sequence[str], n: int,
                  image_in_prefix: torch.Tensor, image: Image.Image) -> list[AskResult]:
        s = self.session
        rows = len(ids)
        lengths = torch.tensor([len(i) - n for i in ids])  # (rows,)
        width = int(lengths.max())
        pad = s.processor.tokenizer.pad_token_id
        suffix = torch.full((rows, width), pad)
        for r, i in enumerate(ids):
            suffix[r, : len(i) - n] = i[n:]
        suffix_mask = (torch.arange(width)[None] < lengths[:, None]).long()
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(rows)
        inputs = dict(input_ids=suffix.to(s.device),
                      attention_mask=torch.cat([torch.ones(rows, n, dtype=torch.long), suffix_mask], 1).to(s.device),
                      position_ids=(n + torch.arange(width))[None].expand(rows, -1).to(s.device),
                      cache_position=(n + torch.arange(width)).to(s.device), cache=cache)
        # No token_type_ids: the image block is all in the cache, and suffix tokens see it causally
        # anyway; without them transformers builds a plain causal mask instead of a vmapped one.
        last = lengths - 1  # each row's answer position, in suffix coordinates
        inputs["logits_to_keep"] = last[:, None].to(s.device)  # the vocabulary projection for that row only
        if self.maps:
            with capture_rows(s.model, self.layers, last[:, None], width) as capture:
                out = s.model(**inputs)
        else:
            out = s.model(**inputs)
        logits = out.logits[:, 0]  # (rows, vocab)
        p_yes, mass = yes_no_probabilities(logits, s.yes_ids, s.no_ids)
        first = logits.argmax(-1).tolist()
        texts = [s.processor.tokenizer.decode([t], skip_special_tokens=True).strip() for t in first]
        needs_text = [r for r, t in enumerate(first)
                      if self.generate_text or (t not in s.yes_ids and t not in s.no_ids)]
        if needs_text:  # through the ordinary batched generate
            replies = s.ask_batch([image] * len(needs_text), [questions[r] for r in needs_text])
            for r, reply in zip(needs_text, replies):
                texts[r] = reply.text
            self.generated_rows += len(needs_text)
        maps = self._maps(capture.weights, n + last, width, image_in_prefix) if self.maps else [None] * rows
        return [AskResult(text=t, answer=extract_answer(t), p_yes=float(p), yes_no_mass=float(m), latency_s=0.0,
                          map=mp)
                for t, p, m, mp in zip(texts, p_yes.tolist(), mass.tolist(), maps)]

    def _maps(self, weights: dict[int, torch.Tensor], positions: torch.Tensor, width: int,
              image_in_prefix: torch.Tensor) -> list[MapResult]:
        rows = len(positions)
        image_positions = torch.cat([image_in_prefix, torch.zeros(width, dtype=torch.bool)])[None].expand(rows, -1)
        grids = attention_grids(weights, torch.ones(rows, 1, dtype=torch.bool), image_positions, self.maps.heads, "mean")
        return [map_result(self.session, self.maps, "attention", grids, b, self.layers, [int(positions[b])], [],
                           implementation=f"{IMPLEMENTATION}+prefix_cache") for b in range(rows)]


def rows_that_fit(free_bytes: int, text_config, sequence: int, dtype_bytes: int) -> int:
    """Suffix rows whose KV cache copy (keys and values, every layer, `sequence` positions)
    and answer-position logits fit in `free_bytes`; `sequence` is an upper bound on prompt
    length (MedGemma's prompts are about 300 tokens)."""
    kv = 2 * text_config.num_hidden_layers * text_config.num_key_value_heads * text_config.head_dim * sequence
    per_row = (kv + text_config.vocab_size) * dtype_bytes
    return int(free_bytes // per_row)


def _common_prefix(ids: list[torch.Tensor]) -> int:
    """Length of the longest common prefix of the token id sequences, found from the ids."""
    n = min(len(i) for i in ids)
    for other in ids[1:]:
        differ = (ids[0][:n] != other[:n]).nonzero()
        if len(differ):
            n = int(differ[0])
    return n
