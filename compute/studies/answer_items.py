"""Answering one batch of manifest items: their questions checked, their images read once
each, the answerer called once per batch, maps made; a question, image or model error fails
only its item."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from PIL import Image

from store import PredictionRecord

from compute.answering import Answerer, AskResult, Group
from compute.config import MapConfig
from compute.data.image_bytes import ImageLoadError, describe_exception
from compute.data.images import ImageFile, read_image
from compute.data.limits import ImageLimits
from compute.data.manifest import ManifestItem
from compute.model.session import Session
from compute.studies import records
from compute.studies.maps import ItemMaps, make_maps


def answer_batch(session: Session, batch: Sequence[ManifestItem], run_id: str, maps: MapConfig,
                  limits: ImageLimits, answerer: Answerer
                  ) -> tuple[dict[str, ImageFile], list[PredictionRecord], list[ItemMaps]]:
    """Check the batch's questions, load its images and answer it in one pass, with the model's
    share of the maps (compute.studies.maps.map_rows scores them). A question the model cannot
    take, or an image that cannot be read, fails only its item."""
    predictions: dict[str, PredictionRecord] = {}
    for item, problem in zip(batch, _prompt_problems(session, batch)):
        if problem:
            predictions[item.item_id] = records.failed(run_id, item.item_id, item.row_number,
                                                       f"row {item.row_number}: {problem}")
    files: dict[str, ImageFile] = {}
    read: dict[Path, ImageFile | str] = {}  # a phrasing group asks about one image many times
    for item in batch:
        if item.item_id in predictions:
            continue
        if item.image_path not in read:
            read[item.image_path] = _read(item.image_path, limits)
        loaded = read[item.image_path]
        if isinstance(loaded, str):
            predictions[item.item_id] = records.failed(run_id, item.item_id, item.row_number,
                                                       f"row {item.row_number}: {loaded}")
        else:
            files[item.item_id] = loaded
    ready = [item for item in batch if item.item_id in files]
    made: list[ItemMaps] = []
    if ready:
        images = {item_id: f.image for item_id, f in files.items()}
        contents = {item_id: f.sha256 for item_id, f in files.items()}
        answered, made = _answer(session, ready, images, run_id, maps, answerer, contents)
        predictions.update({k: replace(p, image_key=records.image_key_of(files[k])) for k, p in answered.items()})
    return files, [predictions[item.item_id] for item in batch], made


def _prompt_problems(session: Session, batch: Sequence[ManifestItem]) -> list[str | None]:
    """Session.prompt_problems for the batch; if building the prompts fails, each question is
    tried alone, so that only the one that breaks the chat template fails."""
    try:
        return session.prompt_problems([i.question for i in batch])
    except Exception:  # noqa: BLE001
        pass
    out: list[str | None] = []
    for item in batch:
        try:
            out += session.prompt_problems([item.question])
        except Exception as exc:  # noqa: BLE001
            out.append(f"the prompt could not be built ({describe_exception(exc)})")
    return out


def _read(path: Path, limits: ImageLimits) -> ImageFile | str:
    """The image file, or why it cannot be read: a reader error, or any other exception (a
    reader bug must cost its item, not the run)."""
    try:
        return read_image(path, limits)
    except ImageLoadError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001
        return f"{path}: cannot read this image ({describe_exception(exc)})"


def ask_items(answerer: Answerer, items: Sequence[ManifestItem], images: dict[str, Image.Image]) -> list[AskResult]:
    """The items' answers, in order, asked as one group per image file (by file, not by
    image_id: ids are the user's names), so a strategy can share each image's work."""
    by_image: dict[Path, list[int]] = {}
    for k, item in enumerate(items):
        by_image.setdefault(item.image_path, []).append(k)
    groups = [Group(images[items[positions[0]].item_id], [items[k].question for k in positions])
              for positions in by_image.values()]
    results: list[AskResult | None] = [None] * len(items)
    for positions, answered in zip(by_image.values(), answerer.ask_groups(groups)):
        for k, result in zip(positions, answered):
            results[k] = result
    return results


def _answer(session: Session, items: Sequence[ManifestItem], images: dict[str, Image.Image], run_id: str,
            maps: MapConfig, answerer: Answerer, contents: dict[str, str]
            ) -> tuple[dict[str, PredictionRecord], list[ItemMaps]]:
    """Answer `items` together, with their maps; if the batch fails, retry one by one so
    only the culprit fails."""
    try:
        results = ask_items(answerer, items, images)
        made = make_maps(session, maps, items, images, [r.map for r in results], contents)
    except Exception as exc:  # noqa: BLE001 - one failure must not end the run
        if len(items) > 1:
            answered, made = {}, []
            for item in items:
                one, one_made = _answer(session, [item], images, run_id, maps, answerer, contents)
                answered.update(one)
                made += one_made
            return answered, made
        item = items[0]
        reason = f"row {item.row_number}: model error: {type(exc).__name__}: {exc}"
        return {item.item_id: records.failed(run_id, item.item_id, item.row_number, reason)}, []
    return {item.item_id: records.prediction_record(run_id, item, r) for item, r in zip(items, results)}, made


def unique_files(batch: Sequence[ManifestItem], files: dict[str, ImageFile]) -> Iterator[ImageFile]:
    seen: set[Path] = set()
    for item in batch:
        file = files.get(item.item_id)
        if file is not None and file.path not in seen:
            seen.add(file.path)
            yield file


def image_runs(items: Sequence[ManifestItem], cap: int, max_images: int | None = None
               ) -> Iterator[Sequence[ManifestItem]]:
    """Consecutive items packed into chunks of at most `cap` items and `max_images` runs of one
    image, split only where the image changes unless one image alone has more than `cap`: each
    engine call shares each image's prefix, and several images share a pass."""
    chunk: list[ManifestItem] = []
    runs = 0
    for run in _same_image_runs(items, cap):
        if chunk and (len(chunk) + len(run) > cap or runs == max_images):
            yield chunk
            chunk, runs = [], 0
        chunk += run
        runs += 1
    if chunk:
        yield chunk


def _same_image_runs(items: Sequence[ManifestItem], cap: int) -> Iterator[list[ManifestItem]]:
    """Consecutive items on the same image (a phrasing group and its image's other groups),
    at most `cap` at a time."""
    run: list[ManifestItem] = []
    for item in items:
        if run and (item.image_path != run[-1].image_path or len(run) == cap):
            yield run
            run = []
        run.append(item)
    if run:
        yield run
