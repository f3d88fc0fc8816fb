"""Maps and their metrics for a batch of answered items, as store rows."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from store import HeadMapRecord, MapRecord

from compute.maps import MapResult, MapSpec
from compute.maps.faithfulness import Deletion, deletion_test
from compute.config import MapConfig
from compute.data.manifest import ManifestItem
from compute.metrics.attention import attention_metrics_batch, metric_rows, metrics_without_body_batch
from compute.metrics.lesion import lesion_metrics
from compute.metrics.regions import body_cells, mask_to_grid
from compute.data.lesions import lesion_pixels
from compute.data.question_parser import UnparseableQuestionError, parse_question
from vocabulary import MEAN_LAYER, Heads, Method
from compute.maps import map_batch



def attention_spec(config: MapConfig) -> MapSpec | None:
    if not config.enabled:
        return None
    return MapSpec(method=Method.ATTENTION, layers=config.layers, query=config.query, heads=config.heads,
                   strip_border=config.strip_border, sink_factor=config.sink_factor, mask_sinks=config.mask_sinks)


def method_spec(config: MapConfig, method: str, term: str | None = None) -> MapSpec:
    """The spec of one of --methods; logit_lens reads the probability of `term` (the item's condition)."""
    heads = Heads.MEAN if config.heads == Heads.ALL else config.heads  # head maps are stored for attention only
    attention_like = method in (Method.TOKEN, Method.RELATIVE)
    return MapSpec(method=method, layers=config.layers, heads=heads, term=term,
                   strip_border=config.strip_border if attention_like else 0,
                   sink_factor=config.sink_factor if method == Method.TOKEN else 0.0,
                   mask_sinks=config.mask_sinks and method == Method.TOKEN,
                   relative_prompt=config.relative_prompt, knockout_block=config.knockout_blocks,
                   knockout_question=config.knockout_question)


def lens_term(item: ManifestItem) -> str | None:
    """The term whose probability the logit lens maps: the item's condition, in words (None: it has none)."""
    return (item.condition or "").replace("_", " ").strip() or None


def question_term(item: ManifestItem) -> str | None:
    """The words of the question that name its condition (the token map's term), or None."""
    try:
        return parse_question(item.question).term
    except UnparseableQuestionError:
        return None


def _term(method: str, item: ManifestItem) -> str | None:
    if method == Method.LOGIT_LENS:
        return lens_term(item)
    return question_term(item) if method == Method.TOKEN else None


def extra_maps(session, config: MapConfig, items: Sequence[ManifestItem],
               images: dict[str, Image.Image]) -> list[list[MapResult]]:
    """Per item, its maps of the --methods (token and logit_lens in batches of one term; a question
    that names no condition gets no token map)."""
    out: list[list[MapResult]] = [[] for _ in items]
    for method in config.extra_methods:
        groups: dict[str | None, list[int]] = {}
        for k, item in enumerate(items):
            groups.setdefault(_term(method, item), []).append(k)
        for term, members in groups.items():
            if term is None and method in (Method.TOKEN, Method.LOGIT_LENS):
                continue  # the question names no condition: no term to map
            made = map_batch(session, [images[items[k].item_id] for k in members], [items[k].question for k in members],
                             method_spec(config, method, term))
            for k, result in zip(members, made):
                out[k].append(result)
    return out


class BodyCells:
    """Each image's body coverage of a grid (compute.metrics.regions.body_cells), computed once per
    image content and grid shape. A run keeps one, so an image whose questions span batches is not
    masked again; the last `capacity` images are kept."""

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self._cells: OrderedDict[tuple, tuple[np.ndarray | None, str | None]] = OrderedDict()

    def __call__(self, content: str, image: Image.Image,
                 shape: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
        key = (content, image.size, shape)
        if key in self._cells:
            self._cells.move_to_end(key)
        else:
            self._cells[key] = body_cells(image, shape)
            if len(self._cells) > self.capacity:
                self._cells.popitem(last=False)
        return self._cells[key]


@dataclass(frozen=True)
class ItemMaps:
    """One answered item's maps, as the model made them: each method once, with its deletion test
    (None unless asked). What is left to do is pure computation (map_rows)."""

    item: ManifestItem
    image: Image.Image
    content: str  # the image's content key (the sha256 of its bytes)
    results: tuple[MapResult, ...]
    deletions: tuple[Deletion | None, ...]


def make_maps(session, config: MapConfig, items: Sequence[ManifestItem], images: dict[str, Image.Image],
              results: Sequence[MapResult | None], contents: dict[str, str] | None = None) -> list[ItemMaps]:
    """The model's share of the maps: the answer's attention maps in `results`, plus Grad-CAM, the
    --methods and the deletion tests when asked. `contents`: each item's image content key (else
    its path)."""
    gradcams: Sequence[MapResult | None] = [None] * len(items)
    if config.gradcam:
        gradcams = map_batch(session, [images[i.item_id] for i in items], [i.question for i in items],
                             MapSpec(method=Method.GRADCAM))
    extras = extra_maps(session, config, items, images) if config.extra_methods else [[] for _ in items]
    out = []
    for item, attention, gradcam, extra in zip(items, results, gradcams, extras):
        image, kept = images[item.item_id], {}
        for result in (attention, gradcam, *extra):
            if result is not None and result.method not in kept:  # a method that fell back onto one already
                kept[result.method] = result                      # kept for this item must not replace it
        deletions = tuple(deletion_test(session, image, item.question, r.mean, config.deletion_fraction,
                                        config.deletion_random) if config.deletion else None
                          for r in kept.values())
        content = contents[item.item_id] if contents else str(item.image_path)
        out.append(ItemMaps(item, image, content, tuple(kept.values()), deletions))
    return out


def map_rows(run_id: str, model_id: str, made: Sequence[ItemMaps], bodies: BodyCells | None = None
             ) -> tuple[list[MapRecord], dict[str, str]]:
    """The store rows of the maps, with their metrics: (rows, {item id: why its maps could not be
    scored}). An item whose maps fail gets no rows and its reason; the others are not affected.
    The metrics of all maps of one image on one grid are computed in one batch. `bodies`: the
    run's body-mask cache (else one for these items)."""
    bodies = bodies or BodyCells()
    metrics = _image_metrics(made, bodies)
    lesions: dict[tuple, tuple[np.ndarray | None, str | None]] = {}  # (image, lesion, grid) -> lesion_cells
    rows: list[MapRecord] = []
    problems: dict[str, str] = {}
    for i, one in enumerate(made):
        try:
            rows += _item_rows(run_id, model_id, one, bodies, lesions, [metrics.get((i, j)) for j in
                                                                        range(len(one.results))])
        except Exception as exc:  # noqa: BLE001 - one item's maps must not cost the batch
            problems[one.item.item_id] = f"its maps could not be scored ({type(exc).__name__}: {exc})"
    return rows, problems


def _layer_grids(result: MapResult) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """(stored grid, raw grid) per layer, the mean over layers as MEAN_LAYER where there are several."""
    grids, raw = dict(result.maps), dict(result.raw_maps)
    if len(grids) > 1:
        grids[MEAN_LAYER], raw[MEAN_LAYER] = result.mean, result.raw_mean
    return grids, raw


def _image_metrics(made: Sequence[ItemMaps], bodies: BodyCells) -> dict[tuple[int, int], list[dict]]:
    """Per (item, result) position, the metrics of each of its layer rows, one batch per image and
    grid. A batch that fails is left out: its items' metrics are then computed one by one, so the
    error falls on the item that has it."""
    groups: dict[tuple, list[tuple[int, int]]] = {}
    for i, one in enumerate(made):
        for j, result in enumerate(one.results):
            groups.setdefault((one.content, result.grid_shape), []).append((i, j))
    out: dict[tuple[int, int], list[dict]] = {}
    for (content, shape), members in groups.items():
        try:
            body, _ = bodies(content, made[members[0][0]].image, shape)
            per_member = [np.stack(list(_layer_grids(made[i].results[j])[1].values())) for i, j in members]
            stacked = np.concatenate(per_member)
            batch = attention_metrics_batch(stacked, body) if body is not None else metrics_without_body_batch(stacked)
        except Exception:  # noqa: BLE001 - found again, item by item, in records_for
            continue
        rows, start = metric_rows(batch, len(stacked)), 0
        for member, grids in zip(members, per_member):
            out[member] = rows[start:start + len(grids)]
            start += len(grids)
    return out


def _item_rows(run_id: str, model_id: str, one: ItemMaps, bodies: BodyCells, lesions: dict,
               metrics: Sequence[list[dict] | None]) -> list[MapRecord]:
    item, image, rows = one.item, one.image, []
    for result, deletion, metric in zip(one.results, one.deletions, metrics):
        lesion_key = (one.content, item.boxes, item.mask, result.grid_shape)
        if item.has_lesion and lesion_key not in lesions:
            lesions[lesion_key] = lesion_cells(item, image, result.grid_shape)
        lesion, lesion_note = lesions.get(lesion_key, (None, None))
        body, body_note = bodies(one.content, image, result.grid_shape)
        note = "; ".join(n for n in (body_note, lesion_note) if n) or None
        rows += records_for(run_id, item.item_id, model_id, result, body, note, deletion, lesion, metric)
    return rows


def lesion_cells(item: ManifestItem, image: Image.Image, shape: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
    """The item's lesion (boxes and mask, original pixels) as each grid cell's coverage, or
    (None, why) when it cannot be placed on the image."""
    try:
        pixels = lesion_pixels(item.boxes, item.mask, image.width, image.height)
    except ValueError as exc:
        return None, f"no lesion metrics: {exc}"
    if pixels is None or not pixels.any():
        return None, None
    return mask_to_grid(pixels, shape), None


def records_for(run_id: str, item_id: str, model_id: str, result: MapResult, body: np.ndarray | None,
                body_note: str | None = None, deletion: Deletion | None = None,
                lesion: np.ndarray | None = None, metrics: list[dict] | None = None) -> list[MapRecord]:
    """One row per layer plus the mean over layers (layer -1, which carries the deletion test).
    Stored grids are stripped as asked; their metrics describe the map before stripping.
    Without a body (`body` None, `body_note` says why) the body-based metrics are None;
    without a lesion (`lesion`: each cell's coverage) the lesion metrics are. `metrics`: the
    rows' attention metrics when already computed (map_rows batches them by image)."""
    grids, raw = _layer_grids(result)
    if metrics is None:
        stacked = np.stack([raw[layer] for layer in grids])
        metrics = metric_rows(attention_metrics_batch(stacked, body) if body is not None
                              else metrics_without_body_batch(stacked), len(stacked))
    out = []
    for (layer, grid), metric in zip(grids.items(), metrics):
        faith = deletion if deletion is not None and (layer == MEAN_LAYER or len(grids) == 1) else None
        out.append(MapRecord(
            run_id=run_id, item_id=item_id, method=result.method, layer=int(layer),
            requested_method=result.requested_method, fallback_reason=result.fallback_reason,
            layers=list(result.layers), heads=result.heads, query=result.query,
            query_positions=list(result.query_positions), term=result.term, strip_border=result.strip_border,
            attn_implementation=result.attn_implementation, model_id=model_id,
            image_height=result.image_size[0], image_width=result.image_size[1],
            grid_rows=grid.shape[0], grid_cols=grid.shape[1], grid=grid.ravel().astype(np.float32),
            **metric, deletion_delta=faith.deletion_delta if faith else None,
            random_delta=faith.random_delta if faith else None,
            faithfulness_ratio=faith.faithfulness_ratio if faith else None, metrics_note=body_note,
            **lesion_metrics(raw[layer], lesion, body),
            sink_mass=result.details.get("sink_mass"), details=json.dumps(result.details) if result.details else None,
        ))
    for layer, per_head in (result.head_maps or {}).items():
        out += [HeadMapRecord(run_id=run_id, item_id=item_id, method=result.method, layer=int(layer), head=h,
                              grid_rows=g.shape[0], grid_cols=g.shape[1], grid=g.ravel().astype(np.float32))
                for h, g in enumerate(per_head)]
    return out
