"""Baseline study: every manifest question asked once, answers and P(yes) stored.

One bad item never stops the run: an invalid row, an unreadable image, a question the
model cannot take (a special token, longer than its context), a model error or a value the
store refuses on one item is stored as a failed prediction with its reason, and the run
goes on. Each batch is one store transaction, so a rerun of the same --run resumes after
the last batch that landed. Options are checked against the model's configuration before
its weights load.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from store import MapRecord, PredictionRecord, RunRecord, StoreError, StoreWriter, check_writable
from store.merge import merge_parts, part_path

from ..attention import grid_shape, parse_layers
from ..conditions import CONDITION_KEYS
from ..config import MapConfig, RunConfig
from ..images import ImageFile, ImageLoadError, describe_exception, read_image
from ..limits import ImageLimits
from ..loading import dtype_name, load_model, load_model_config, resolve_device, resolve_dtype
from ..manifest import ManifestItem, read_manifest
from ..provenance import package_versions, weights_fingerprint
from ..engine import Engine, Group
from ..session import AskResult, Session
from . import records
from .maps import attention_spec, map_records
from .attention_change import run_attention_change
from .phrasing import expand_items
from .writing import write_or_fail_items


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    done: int  # answered in this invocation
    failed: int  # failed in this invocation (invalid rows included)
    skipped: int  # already answered by an earlier invocation of the same run
    seconds: float

    def __str__(self) -> str:
        return (f"run {self.run_id}: {self.done} done, {self.failed} failed, {self.skipped} skipped "
                f"(already done) in {self.seconds:.1f} s")


def run_baseline(config: RunConfig, session: Session | None = None, *, progress: bool = True,
                 log: Callable[[str], None] = print) -> RunSummary:
    """Run a study. Under a multi-process launcher (`accelerate launch` or `torchrun`, which
    set RANK and WORLD_SIZE), each rank takes every WORLD_SIZE-th manifest row into a part
    store of its own, and rank 0 merges the parts into --db once all have finished."""
    rank, world = distributed_rank()
    if world > 1 and config.shard is None:
        return _run_sharded(config, rank, world, session, progress=progress, log=log)
    start = time.perf_counter()
    manifest = read_manifest(config.manifest, config.image_root, dataset=config.dataset_name,
                             allow_outside_root=config.allow_outside_root)
    items, errors = manifest.items, manifest.errors
    if config.limit is not None:
        items = [i for i in items if i.row_number <= config.limit]
        errors = [e for e in errors if e.row_number <= config.limit]
    if config.shard is not None:
        rank, world = config.shard
        items = [i for k, i in enumerate(items) if k % world == rank]
        errors = errors if rank == 0 else []
    _note_unknown_conditions(items, log)
    if config.study == "phrasing":
        items, notes = expand_items(items, config.variants)
        for note in notes[:5]:
            log(note)
    if not errors and _already_complete(config, items):
        log(f"run {config.run_name} is already complete in {config.db}; nothing to do")
        return RunSummary(config.run_name, 0, 0, len(items), time.perf_counter() - start)
    check_writable(config.db)  # a bad --db fails before the model loads, and so does a run in use
    writer = StoreWriter(config.db) if config.db.exists() else None
    if writer is not None:
        writer.check_owner(config.run_name)
    if session is None:
        check_options(config, load_model_config(config.model.name_or_path, config.model.trust_remote_code))
        session = load_model(config.model.name_or_path, config.model.device, config.model.dtype,
                             prompt=config.prompt, decode=config.decode,
                             trust_remote_code=config.model.trust_remote_code)
    check_options(config, session.model.config)
    problem = session.instruction_problem(config.prompt)
    if problem:
        raise OptionError(problem)
    writer = writer or StoreWriter(config.db)

    torch.manual_seed(config.seed)  # greedy decoding needs none; kept for sampling studies to come
    dataset = config.dataset_name
    done_before = writer.start_run(_run_record(config, session, n_items=len(items) + len(errors)))
    run_id = config.run_name
    dropped = writer.drop_other_items(run_id, {i.item_id for i in items} | {e.item_id for e in errors})
    if dropped:
        log(f"note: {dropped} stored predictions belong to rows this version reads differently (now row errors, "
            "stored with their reasons); they were removed from the run")
    failures: list[str] = []
    try:
        if errors:
            rows = [records.invalid_row_records(e, dataset, run_id) for e in errors]
            write_or_fail_items(writer, [], [q for q, _ in rows], [p for _, p in rows], [], dataset)
            failures += [p.error for _, p in rows]
        pending = [i for i in items if i.item_id not in done_before]
        first_tried = len(failures)  # failures from here on are of items tried: what the failure share judges
        bar = tqdm(total=len(pending), desc=f"{config.study} {run_id}", unit="q", disable=not progress)
        done = 0
        answer = _batched_answerer(session, config.maps)
        chunks = _chunks(pending, config.batch_size)
        engine = _engine_answerer(session, config) if config.study == "phrasing" else None
        if engine is not None:  # one image's items per call, so they share its prefix
            answer, chunks = engine, _image_runs(pending, config.batch_size * 8)
        if session.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(session.device)
        answering = time.perf_counter()
        for batch in chunks:
            files, predictions, maps = _answer_batch(session, batch, run_id, config.maps, config.image_limits, answer)
            predictions = write_or_fail_items(
                writer, [records.image_record(f) for f in _unique_files(batch, files)],
                [records.question_record(item, dataset) for item in batch], predictions, maps, dataset)
            failures += [p.error for p in predictions if p.status == "failed"]
            done += sum(p.status == "ok" for p in predictions)
            bar.update(len(batch))
            _stop_if_failing(failures[first_tried:], done, config.max_failure_share, manifest.path.name)
        bar.close()
        rate = len(pending) / (time.perf_counter() - answering) if pending else None
        peak = torch.cuda.max_memory_allocated(session.device) / 2**30 if session.device.type == "cuda" else None
        if config.study == "phrasing" and config.maps.enabled:
            compared = run_attention_change(config.db, run_id)
            log(f"attention change: {compared} variant maps compared with their baseline's")
    except KeyboardInterrupt:
        writer.finish_run(run_id, "interrupted")
        raise
    except BaseException as exc:
        writer.finish_run(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    _report_failures(failures, manifest.path.name, log)
    writer.finish_run(run_id, "completed", rate, peak)
    return RunSummary(run_id, done, len(failures), len(items) - len(pending), time.perf_counter() - start)


class TooManyFailuresError(RuntimeError):
    """More items failed than the run allows; the results so far are kept."""


class OptionError(ValueError):
    """An option does not fit the model (checked from its configuration before the weights load)."""


def check_options(config: RunConfig, model_config) -> None:
    """OptionError (or LayerSpecError) for options the model cannot take: layers it does not
    have, more border rings than its image grid has, a reply longer than its context.
    `model_config` None (not available without loading): nothing to check yet."""
    if model_config is None:
        return
    text_config = model_config.get_text_config()
    if config.maps.enabled:
        parse_layers(config.maps.layers, text_config.layer_types)
        tokens = getattr(model_config, "mm_tokens_per_image", None)
        if tokens and config.maps.strip_border:
            rows, cols = grid_shape(int(tokens))
            if 2 * config.maps.strip_border >= min(rows, cols):
                raise OptionError(f"--strip-border {config.maps.strip_border}: the model's image-token grid is "
                                  f"{rows}x{cols}, so at most {(min(rows, cols) - 1) // 2} rings can be stripped")
    context = getattr(text_config, "max_position_embeddings", None)
    if context and config.decode.max_new_tokens >= context:
        raise OptionError(f"--max-new-tokens {config.decode.max_new_tokens}: the model's context is {context:,} "
                          "tokens, prompt included; ask for fewer")


def _note_unknown_conditions(items: Sequence[ManifestItem], log: Callable[[str], None]) -> None:
    unknown = Counter(i.condition for i in items if i.condition not in CONDITION_KEYS)
    if unknown:
        shown = ", ".join(f"{c!r} ({n})" for c, n in unknown.most_common(5))
        log(f"note: {sum(unknown.values())} rows name conditions outside the study's nine ({shown}"
            f"{', ...' if len(unknown) > 5 else ''}); they are answered and reported under those names. "
            f"Known: {', '.join(CONDITION_KEYS)}")


MIN_ITEMS_BEFORE_STOPPING = 20  # judge the failure share only once this many items were tried


def _stop_if_failing(failures: list[str], done: int, share: float, manifest_name: str) -> None:
    """Stop once more than `share` of the items tried in this invocation (at least 20) failed.
    Manifest rows that could not be read are not items tried: they are known before the run
    starts and say nothing about the model or the images."""
    tried = len(failures) + done
    if tried >= MIN_ITEMS_BEFORE_STOPPING and len(failures) / tried > share:
        raise TooManyFailuresError(
            f"{len(failures)} of {tried} items failed ({len(failures) / tried:.0%}, more than --max-failure-share "
            f"{share:.0%}); stopping. The first: {manifest_name} {failures[0]}. Results so far are stored; fix the "
            "cause and rerun the same --run to resume")


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment; (0, 1) when run alone."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _run_sharded(config: RunConfig, rank: int, world: int, session: Session | None, *, progress: bool,
                 log: Callable[[str], None], wait_seconds: float = 3600.0) -> RunSummary:
    part = part_path(config.db, rank, world)
    part.with_name(part.name + ".done").unlink(missing_ok=True)  # from an earlier attempt
    summary = run_baseline(replace(config, db=part, shard=(rank, world)), session,
                           progress=progress and rank == 0, log=lambda m: log(f"[rank {rank}] {m}"))
    part.with_name(part.name + ".done").touch()
    if rank != 0:
        return summary
    parts = [part_path(config.db, r, world) for r in range(world)]
    deadline = time.monotonic() + wait_seconds
    while not all(p.with_name(p.name + ".done").exists() for p in parts):
        if time.monotonic() > deadline:
            raise StoreError(f"ranks did not all finish within {wait_seconds:.0f} s; when they have, merge with "
                             f"`python -m compute merge --db {config.db} --run {config.run_name} --world {world}`")
        time.sleep(0.5)
    merged = merge_parts(config.db, parts, config.run_name)
    for p in parts:
        p.unlink()
        p.with_name(p.name + ".done").unlink()
        p.with_name(p.name + ".wal").unlink(missing_ok=True)
    log(f"merged {world} parts into {config.db}: {merged} predictions in run {config.run_name}")
    return summary


def _report_failures(failures: list[str], manifest_name: str, log: Callable[[str], None], shown: int = 5) -> None:
    for reason in failures[:shown]:
        log(f"failed: {manifest_name} {reason}")
    if len(failures) > shown:
        log(f"... and {len(failures) - shown} more failed items (stored with their reasons)")


def _already_complete(config: RunConfig, items: Sequence[ManifestItem]) -> bool:
    """Whether the store holds this exact run, completed, with every item answered, so
    a rerun can return without loading the model."""
    if not config.db.exists():
        return False
    local_model = Path(config.model.name_or_path).expanduser()
    fingerprint = weights_fingerprint(local_model) if local_model.is_dir() else None
    dtype = dtype_name(resolve_dtype(config.model.dtype, resolve_device(config.model.device)))
    finished = StoreWriter(config.db).completed_run_items(config.run_name, config.identity(), fingerprint, dtype)
    return finished is not None and all(item.item_id in finished for item in items)


Answerer = Callable[[Sequence[ManifestItem], dict[str, Image.Image]], list[AskResult]]


def _batched_answerer(session: Session, maps: MapConfig) -> Answerer:
    """The items as one ask_batch call: one generate, maps read from its prompt pass."""
    return lambda items, images: session.ask_batch([images[i.item_id] for i in items], [i.question for i in items],
                                                   maps=attention_spec(maps), checked=True)


def _engine_answerer(session: Session, config: RunConfig) -> Answerer | None:
    """Items grouped by image through the prefix-sharing engine (None where the maps asked
    for need another path: the engine reads answer-position attention only)."""
    spec = attention_spec(config.maps)
    if spec is not None and spec.query != "answer":
        return None
    engine = Engine(session, spec, generate_text=config.full_replies, max_batch=max(config.batch_size * 8, 8))

    def answer(items: Sequence[ManifestItem], images: dict[str, Image.Image]) -> list[AskResult]:
        by_image: dict[Path, list[int]] = {}  # by file, not by image_id: ids are the user's names
        for k, item in enumerate(items):
            by_image.setdefault(item.image_path, []).append(k)
        results: list[AskResult | None] = [None] * len(items)
        groups = [Group(images[items[positions[0]].item_id], [items[k].question for k in positions])
                  for positions in by_image.values()]
        for positions, answered in zip(by_image.values(), engine.ask_groups(groups)):
            for k, result in zip(positions, answered):
                results[k] = result
        return results

    return answer


def _answer_batch(session: Session, batch: Sequence[ManifestItem], run_id: str, maps: MapConfig,
                  limits: ImageLimits, answer: Answerer
                  ) -> tuple[dict[str, ImageFile], list[PredictionRecord], list[MapRecord]]:
    """Check the batch's questions, load its images and answer it in one pass. A question the
    model cannot take, or an image that cannot be read, fails only its item."""
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
    map_rows: list[MapRecord] = []
    if ready:
        images = {item_id: f.image for item_id, f in files.items()}
        answered, map_rows = _answer(session, ready, images, run_id, maps, answer)
        predictions.update({k: replace(p, image_key=records.image_key_of(files[k])) for k, p in answered.items()})
    return files, [predictions[item.item_id] for item in batch], map_rows


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


def _answer(session: Session, items: Sequence[ManifestItem], images: dict[str, Image.Image], run_id: str,
            maps: MapConfig, answer: Answerer) -> tuple[dict[str, PredictionRecord], list[MapRecord]]:
    """Answer `items` together, with their maps; if the batch fails, retry one by one so
    only the culprit fails."""
    try:
        results = answer(items, images)
        map_rows = map_records(session, maps, run_id, items, images, [r.map for r in results])
    except Exception as exc:  # noqa: BLE001 - one failure must not end the run
        if len(items) > 1:
            answered, rows = {}, []
            for item in items:
                one, one_rows = _answer(session, [item], images, run_id, maps, answer)
                answered.update(one)
                rows += one_rows
            return answered, rows
        item = items[0]
        reason = f"row {item.row_number}: model error: {type(exc).__name__}: {exc}"
        return {item.item_id: records.failed(run_id, item.item_id, item.row_number, reason)}, []
    return {item.item_id: records.prediction_record(run_id, item, r) for item, r in zip(items, results)}, map_rows


def _unique_files(batch: Sequence[ManifestItem], files: dict[str, ImageFile]) -> Iterator[ImageFile]:
    seen: set[Path] = set()
    for item in batch:
        file = files.get(item.item_id)
        if file is not None and file.path not in seen:
            seen.add(file.path)
            yield file


def _image_runs(items: Sequence[ManifestItem], cap: int) -> Iterator[Sequence[ManifestItem]]:
    """Consecutive items packed into chunks of at most `cap`, split only where the image
    changes unless one image alone has more: each engine call shares each image's prefix, and
    several images share a pass."""
    chunk: list[ManifestItem] = []
    for run in _same_image_runs(items, cap):
        if chunk and len(chunk) + len(run) > cap:
            yield chunk
            chunk = []
        chunk += run
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


def _chunks(items: Sequence[ManifestItem], size: int) -> Iterator[Sequence[ManifestItem]]:
    for i in range(0, len(items), max(1, size)):
        yield items[i:i + size]


def _run_record(config: RunConfig, session: Session, n_items: int) -> RunRecord:
    return RunRecord(
        run_id=config.run_name, study=config.study, dataset=config.dataset_name,
        model_id=session.model_id, config=config.identity(), package_versions=package_versions(),
        manifest_path=str(config.manifest), model_revision=session.revision,
        weights_fingerprint=session.fingerprint, device=str(session.device),
        dtype=dtype_name(session.dtype), seed=config.seed,
        instruction=config.prompt.instruction, system_prompt=config.prompt.system_prompt, n_items=n_items,
        image_root=str((config.image_root or config.manifest.parent).resolve()),
    )
