"""The prefix-sharing engine: every variant of a question shares its image and the prompt up
to the end of the image block, so that part runs once per image.

Per pass of up to `images_per_pass` images: one prefix pass (the longest common prefix of the
prompts' token ids, which is the same text for every image: vision tower, projector and the
decoder over the image block) fills a KV cache with one row per image; all of the images'
question suffixes then run as right-padded batches against copies of their image's row, with
positions continuing after the prefix. P(yes) comes from each row's last position, and
attention rows are captured in that same pass for the requested layers only. Text is
generated only for rows whose first token is not a yes/no word, or when asked.

Batching several images per pass matters on a GPU, where a 4B model's forward pass over a
few rows costs mostly per-layer launch overhead; images are decoded and resized on worker
threads meanwhile. A test shows the results equal Session.ask_batch's on the same inputs (fp32).
"""

from __future__ import annotations

import copy
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice

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


@dataclass(frozen=True)
class _Pixels:
    """A group's image, decoded, and its pixel values as the processor makes them."""

    image: Image.Image
    pixels: torch.Tensor  # (1, channels, height, width)


@dataclass(frozen=True)
class _Row:
    """One question of one image, as a suffix row."""

    image_index: int  # its image's row in the prefix cache
    image: Image.Image
    question: str
    ids: torch.Tensor


class Engine:
    def __init__(self, session: Session, maps: MapSpec | None = None, generate_text: bool = False,
                 max_batch: int = 64, images_per_pass: int = 8, workers: int = 4):
        if maps is not None and (maps.method != "attention" or maps.query != "answer"):
            raise ValueError("the engine reads answer-position attention; use Session.ask_batch for other maps")
        self.session = session
        self.maps = maps
        self.generate_text = generate_text
        self.max_batch = max_batch  # suffix rows per forward pass
        self.images_per_pass = images_per_pass  # images per prefix pass
        self.workers = workers  # threads that decode and resize images
        self.generated_rows = 0  # rows whose reply had to be generated (first token not yes/no, or asked)
        self.backoffs = 0  # times an out-of-memory error halved max_batch or images_per_pass
        text_config = session.model.config.get_text_config()
        self.layers = parse_layers(maps.layers, text_config.layer_types) if maps else ()
        if session.device.type == "cuda":  # start from what fits in half the free memory; back off on OOM
            free, _ = torch.cuda.mem_get_info(session.device)
            self.max_batch = max(1, min(max_batch, rows_that_fit(free // 2, text_config, 512, session.dtype.itemsize)))

    def ask_group(self, group: Group) -> list[AskResult]:
        """Answers (and maps) for every question of one image."""
        return self.ask_groups([group])[0]

    @torch.no_grad()
    def ask_groups(self, groups: Sequence[Group]) -> list[list[AskResult]]:
        """Answers (and maps) for every question of every group, in order."""
        results: list[list[AskResult]] = []
        prepared = self._pixels_ahead(groups)
        done = 0
        while done < len(groups):
            batch = groups[done:done + self.images_per_pass]
            results += self._ask_images(batch, [next(prepared) for _ in batch])
            done += len(batch)
        return results

    def _pixels_ahead(self, groups: Sequence[Group]) -> Iterator[_Pixels]:
        """Each group's decoded image and pixel values, in order, prepared on worker threads
        up to two passes ahead of the model."""
        with ThreadPoolExecutor(self.workers) as pool:
            remaining = iter(groups)
            pending = deque(pool.submit(self._pixels, g) for g in islice(remaining, 2 * self.images_per_pass))
            while pending:
                ready = pending.popleft().result()
                pending.extend(pool.submit(self._pixels, g) for g in islice(remaining, 1))
                yield ready

    def _pixels(self, group: Group) -> _Pixels:
        image = load_image(group.image)
        pixels = self.session.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
        return _Pixels(image, pixels)

    def _ask_images(self, groups: Sequence[Group], prepared: Sequence[_Pixels]) -> list[list[AskResult]]:
        """One prefix pass for these images, then their suffixes; on out-of-memory in the
        prefix pass, the images are split in two and each half is retried."""
        try:
            return self._ask_images_once(groups, prepared)
        except torch.OutOfMemoryError:
            if len(groups) == 1:
                raise
        half = len(groups) // 2  # outside the except block, so the failed pass's tensors are released
        self.images_per_pass = max(1, half)
        self.backoffs += 1
        _release_cached_memory(self.session.device)
        return self._ask_images(groups[:half], prepared[:half]) + self._ask_images(groups[half:], prepared[half:])

    def _ask_images_once(self, groups: Sequence[Group], prepared: Sequence[_Pixels]) -> list[list[AskResult]]:
        s = self.session
        start = time.perf_counter()
        rows = [_Row(k, p.image, q, ids) for k, (g, p) in enumerate(zip(groups, prepared))
                for q, ids in zip(g.questions, self._token_ids(p.image, g.questions))]
        all_ids = [r.ids for r in rows]
        n = min(_common_prefix(all_ids), min(len(i) for i in all_ids) - 1)  # every row keeps a token to score
        image_token = s.model.config.image_token_id
        if any((i[n:] == image_token).any() for i in all_ids):
            raise ValueError("the prompts differ before the end of the image block; the prefix cannot be shared")
        prefix_ids = all_ids[0][:n][None].expand(len(groups), -1).to(s.device)
        pixels = torch.cat([p.pixels for p in prepared]).to(s.device, s.dtype)
        prefix = s.model(input_ids=prefix_ids, attention_mask=torch.ones_like(prefix_ids),
                         token_type_ids=(prefix_ids == image_token).long(), pixel_values=pixels,
                         use_cache=True, logits_to_keep=1)
        image_in_prefix = all_ids[0][:n] == image_token
        answers: list[AskResult] = []
        lo = 0
        while lo < len(rows):
            hi = lo + self.max_batch
            try:
                answers += self._suffixes(prefix.cache, rows[lo:hi], n, image_in_prefix)
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
                _release_cached_memory(s.device)
        latency = (time.perf_counter() - start) / len(rows)
        answers = [AskResult(a.text, a.answer, a.p_yes, a.yes_no_mass, latency, a.map) for a in answers]
        per_group, lo = [], 0
        for g in groups:
            per_group.append(answers[lo:lo + len(g.questions)])
            lo += len(g.questions)
        return per_group

    def _token_ids(self, image: Image.Image, questions: Sequence[str]) -> list[torch.Tensor]:
        """Each prompt's token ids, as the processor makes them, without processing the image
        once per question: the chat template's text with the image placeholder expanded."""
        s = self.session
        texts = s.processor.apply_chat_template([build_messages(image, q, s.prompt) for q in questions],
                                                add_generation_prompt=True, tokenize=False)
        expanded = [expanded_prompt(s.processor, t) for t in texts]
        return [torch.tensor(i) for i in s.processor.tokenizer(expanded, add_special_tokens=False)["input_ids"]]

    def _suffixes(self, prefix_cache, rows: Sequence[_Row], n: int, image_in_prefix: torch.Tensor) -> list[AskResult]:
        s = self.session
        lengths = torch.tensor([len(r.ids) - n for r in rows])  # (rows,)
        width = int(lengths.max())
        suffix = torch.full((len(rows), width), s.processor.tokenizer.pad_token_id)
        for b, r in enumerate(rows):
            suffix[b, : len(r.ids) - n] = r.ids[n:]
        suffix_mask = (torch.arange(width)[None] < lengths[:, None]).long()
        cache = copy.deepcopy(prefix_cache)
        cache.reorder_cache(torch.tensor([r.image_index for r in rows], device=s.device))  # each row's image
        inputs = dict(input_ids=suffix.to(s.device),
                      attention_mask=torch.cat([torch.ones(len(rows), n, dtype=torch.long), suffix_mask], 1).to(s.device),
                      position_ids=(n + torch.arange(width))[None].expand(len(rows), -1).to(s.device),
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
        needs_text = [b for b, t in enumerate(first)
                      if self.generate_text or (t not in s.yes_ids and t not in s.no_ids)]
        if needs_text:  # through the ordinary batched generate
            replies = s.ask_batch([rows[b].image for b in needs_text], [rows[b].question for b in needs_text])
            for b, reply in zip(needs_text, replies):
                texts[b] = reply.text
            self.generated_rows += len(needs_text)
        maps = self._maps(capture.weights, n + last, width, image_in_prefix) if self.maps else [None] * len(rows)
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


def _release_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _common_prefix(ids: list[torch.Tensor]) -> int:
    """Length of the longest common prefix of the token id sequences, found from the ids."""
    n = min(len(i) for i in ids)
    for other in ids[1:]:
        differ = (ids[0][:n] != other[:n]).nonzero()
        if len(differ):
            n = int(differ[0])
    return n
