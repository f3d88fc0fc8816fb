"""The one study loop: manifest items answered in batches, each batch one store transaction.

One bad item never stops the run: an invalid row, an unreadable image, a question the model
cannot take (a special token, longer than its context), a model error or a value the store
refuses on one item is stored as a failed prediction with its reason, and the run goes on. A
rerun of the same --run resumes after the last batch that landed. Options are checked
against the model's configuration before its weights load.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from store import PredictionRecord, RunRecord, StoreWriter, check_writable, queries
from store.background import BackgroundWrites
from store.connection import held

from compute.answering import make_answerer
from compute.config import RunConfig
from compute.data.conditions import CONDITION_KEYS
from compute.data.manifest import Manifest, ManifestItem, RowError, read_manifest
from compute.model.loading import dtype_name, load_model, load_model_config, resolve_device, resolve_dtype
from compute.model.provenance import package_versions, weights_fingerprint
from compute.model.session import Session
from compute.studies import records
from compute.studies.answer_items import answer_batch, image_runs, unique_files
from compute.studies.failures import report_failures, stop_if_failing
from compute.studies.kinds import STUDY_KINDS
from compute.studies.maps import BodyCells, attention_spec
from compute.studies.options import OptionError, check_options
from compute.studies.sharding import distributed_rank, run_sharded
from compute.studies.scoring import score, write
from compute.studies.writing import write_or_fail_items


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    done: int  # answered in this invocation
    failed: int  # failed in this invocation (invalid rows included)
    skipped: int  # already answered by an earlier invocation of the same run
    seconds: float
    agreement: dict[str, int] | None = None  # store.queries.answer_agreement over the whole run

    def __str__(self) -> str:
        line = (f"run {self.run_id}: {self.done} done, {self.failed} failed, {self.skipped} skipped "
                f"(already done) in {self.seconds:.1f} s")
        return line if self.agreement is None else f"{line}\n{agreement_line(self.agreement)}"


def agreement_line(agreement: dict[str, int]) -> str:
    """"extracted answer agrees with P(yes) on 97.0% (291/300); uncertain 2.3%" from
    store.queries.answer_agreement's counts."""
    agree, compared, uncertain, ok = (agreement[k] for k in ("n_agree", "n_compared", "n_uncertain", "n_ok"))
    share = f"{agree / compared:.1%}" if compared else "n/a"
    return (f"extracted answer agrees with P(yes) on {share} ({agree}/{compared}); "
            f"uncertain {f'{uncertain / ok:.1%}' if ok else 'n/a'}")


def run_study(config: RunConfig, session: Session | None = None, *, progress: bool = True,
              log: Callable[[str], None] = print) -> RunSummary:
    """Run `config.study`. Under a multi-process launcher (`accelerate launch` or `torchrun`,
    which set RANK and WORLD_SIZE), each rank takes every WORLD_SIZE-th manifest row into a
    part store of its own, and rank 0 merges the parts into --db once all have finished."""
    rank, world = distributed_rank()
    if world > 1 and config.shard is None:
        return run_sharded(config, rank, world, lambda c, p, lg: run_study(c, session, progress=p, log=lg),
                           progress=progress, log=log)
    start = time.perf_counter()
    manifest, items, errors = _items(config, log)
    if not errors and _already_complete(config, items):
        log(f"run {config.run_name} is already complete in {config.db}; nothing to do")
        return RunSummary(config.run_name, 0, 0, len(items), time.perf_counter() - start,
                          queries.answer_agreement(config.db, config.run_name))
    check_writable(config.db)  # a bad --db fails before the model loads, and so does a run in use
    writer = StoreWriter(config.db) if config.db.exists() else None
    if writer is not None:
        writer.check_owner(config.run_name)
    session = session or _load(config)
    check_options(config, session.model.config)
    problem = session.instruction_problem(config.prompt)
    if problem:
        raise OptionError(problem)
    torch.manual_seed(config.seed)  # greedy decoding needs none; kept for sampling studies to come
    with held(config.db):  # the run's first few statements share one open of the file
        writer = writer or StoreWriter(config.db)
        done_before = writer.start_run(_run_record(config, session, n_items=len(items) + len(errors)))
        dropped = writer.drop_other_items(config.run_name, {i.item_id for i in items} | {e.item_id for e in errors})
    if dropped:
        log(f"note: {dropped} stored predictions belong to rows this version reads differently (now row errors, "
            "stored with their reasons); they were removed from the run")
    pending = [i for i in items if i.item_id not in done_before]
    try:
        failures, done, rate, peak = _answer_all(config, session, writer, manifest, errors, pending, progress)
        after = STUDY_KINDS[config.study].after
        if after is not None:
            with held(config.db):  # and so do its last
                after(config.db, config.run_name, config, log)
    except KeyboardInterrupt:
        writer.finish_run(config.run_name, "interrupted")
        raise
    except BaseException as exc:
        writer.finish_run(config.run_name, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    report_failures(failures, manifest.path.name, log)
    with held(config.db):
        writer.finish_run(config.run_name, "completed", rate, peak)
        agreement = queries.answer_agreement(config.db, config.run_name)
    return RunSummary(config.run_name, done, len(failures), len(items) - len(pending), time.perf_counter() - start,
                      agreement)


def _items(config: RunConfig, log: Callable[[str], None]) -> tuple[Manifest, list[ManifestItem], list[RowError]]:
    """The manifest, this process's share of its items as the study asks them, and its row errors."""
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
    if manifest.withheld:
        log(f"note: not stored, because their names say they may identify a patient: columns "
            f"{', '.join(manifest.withheld)} (rename a column to keep it for slicing)")
    items, notes = STUDY_KINDS[config.study].items(items, config)
    for note in notes[:5]:
        log(note)
    return manifest, items, errors


def _load(config: RunConfig) -> Session:
    check_options(config, load_model_config(config.model.name_or_path, config.model.trust_remote_code))
    return load_model(config.model.name_or_path, config.model.device, config.model.dtype, prompt=config.prompt,
                      decode=config.decode, trust_remote_code=config.model.trust_remote_code,
                      device_map=config.model.device_map)


def _answer_all(config: RunConfig, session: Session, writer: StoreWriter, manifest: Manifest,
                errors: Sequence[RowError], pending: Sequence[ManifestItem], progress: bool
                ) -> tuple[list[str], int, float | None, float | None]:
    """Store the row errors, then answer the pending items batch by batch. Returns (failure
    reasons, items answered, items per second, peak GPU memory in GiB)."""
    run_id, dataset = config.run_name, config.dataset_name
    failures: list[str] = []
    if errors:
        rows = [records.invalid_row_records(e, dataset, run_id) for e in errors]
        write_or_fail_items(writer, [], [q for q, _ in rows], [p for _, p in rows], [], dataset)
        failures += [p.error for _, p in rows]
    first_tried = len(failures)  # failures from here on are of items tried: what the failure share judges
    answerer = make_answerer(session, config.answering, attention_spec(config.maps))
    bar = tqdm(total=len(pending), desc=f"{config.study} {run_id}", unit="q", disable=not progress)
    if session.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(session.device)
    answering, done = time.perf_counter(), 0

    bodies = BodyCells()  # each image's body mask once, also where its questions span batches
    failed_before_writing: set[str] = set()

    def answered(predictions: list[PredictionRecord]) -> None:  # judged at once, not when the write lands
        nonlocal done
        for p in predictions:
            if p.status == "failed":
                failures.append(p.error)
                failed_before_writing.add(p.item_id)
            else:
                done += 1
        stop_if_failing(failures[first_tried:], done, config.max_failure_share, manifest.path.name)

    def stored(batches: list[list[PredictionRecord]]) -> None:  # items whose maps or values the store refused
        nonlocal done
        for predictions in batches:
            for p in predictions:
                if p.status == "failed" and p.item_id not in failed_before_writing:
                    failures.append(p.error)
                    done -= 1
        stop_if_failing(failures[first_tried:], done, config.max_failure_share, manifest.path.name)

    with BackgroundWrites() as writes:  # each batch's transaction runs while the next one is answered
        # one image's items together, to share its work
        for batch in image_runs(pending, answerer.batch_items, answerer.batch_images):
            files, predictions, made = answer_batch(session, batch, run_id, config.maps, config.image_limits,
                                                    answerer)
            scored = score(writer, bodies, run_id, session.model_id, predictions, made,
                           ([records.image_record(f) for f in unique_files(batch, files)],
                            [records.question_record(item, dataset) for item in batch]))
            landed = writes.submit(write, writer, scored, dataset)
            bar.update(len(batch))
            answered(scored.predictions)
            stored(landed)
        stored(writes.drain())
    bar.close()
    rate = len(pending) / (time.perf_counter() - answering) if pending else None
    peak = torch.cuda.max_memory_allocated(session.device) / 2**30 if session.device.type == "cuda" else None
    return failures, done, rate, peak


def _note_unknown_conditions(items: Sequence[ManifestItem], log: Callable[[str], None]) -> None:
    unknown = Counter(i.condition for i in items if i.condition not in CONDITION_KEYS)
    if unknown:
        shown = ", ".join(f"{c!r} ({n})" for c, n in unknown.most_common(5))
        log(f"note: {sum(unknown.values())} rows name conditions outside the study's nine ({shown}"
            f"{', ...' if len(unknown) > 5 else ''}); they are answered and reported under those names. "
            f"Known: {', '.join(CONDITION_KEYS)}")


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
