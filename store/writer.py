"""Transactional, idempotent writes.

Every method opens a short-lived connection and commits one transaction, so a killed
process loses at most the batch in flight, and rerunning a run resumes where it stopped:
rows are keyed, and a rewrite of the same key replaces it instead of duplicating it.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from store import aggregates
from store.connection import StoreError, connect, transaction
from store.owner import STALE_AFTER, live_owner, this_host, utc_now
from store.records import (AttentionChangeRecord, HeadMapRecord, ImageRecord, MapRecord, PredictionRecord,
                           QuestionRecord, RunRecord)
from store.schema import ensure_schema


@dataclass(frozen=True)
class PreparedBatch:
    """A batch's rows as Arrow tables (StoreWriter.prepare_batch), and the runs it writes to."""

    tables: tuple[tuple[type, pa.Table], ...]
    run_ids: frozenset[str]


class RunConfigMismatch(ValueError):
    """A run with this name exists with a different configuration."""


class RunInUseError(StoreError):
    """Another live process is writing this run."""


class RecordError(StoreError):
    """A value in a batch cannot be stored (out of range for its column, not valid UTF-8, ...);
    nothing of the batch was written."""


_DATA_ERRORS = (duckdb.DataError, duckdb.IntegrityError, duckdb.InvalidInputException, UnicodeEncodeError)


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection, db_path: Path) -> Iterator[None]:
    """One transaction, its errors in the store's terms: a value the store refuses is RecordError; a file that cannot be
    written (a full disk, say) is StoreError."""
    try:
        with transaction(con):
            yield
    except BaseException as exc:
        if isinstance(exc, _DATA_ERRORS):
            raise RecordError(f"{db_path}: a value could not be stored ({_first_line(exc)})") from exc
        if isinstance(exc, (duckdb.IOException, duckdb.OperationalError)):
            raise StoreError(f"{db_path}: cannot write the database ({_first_line(exc)})") from exc
        raise


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


_TABLES: dict[type, tuple[str, tuple[str, ...]]] = {  # record type -> (table, primary key)
    ImageRecord: ("image_files", ("image_key",)),
    QuestionRecord: ("questions", ("item_id",)),
    PredictionRecord: ("predictions", ("run_id", "item_id")),
    MapRecord: ("attention_maps", ("run_id", "item_id", "method", "layer")),
    HeadMapRecord: ("head_maps", ("run_id", "item_id", "method", "layer", "head")),
    AttentionChangeRecord: ("attention_changes", ("run_id", "item_id", "method")),
}
_GRID_COLUMNS = frozenset({"grid", "difference"})  # FLOAT[] in the store: passed as float32, not element by element


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _grid_array(values: list) -> pa.ListArray:
    """The grids as float32 lists. ValueError (a RecordError for the caller) for a missing grid or cell,
    or a finite value float32 cannot hold, which the cast would turn into infinity unseen."""
    if any(v is None or (isinstance(v, (list, tuple)) and any(c is None for c in v)) for v in values):
        raise ValueError("a map has no grid, or a cell of it has no value")
    wide = [np.asarray(v, dtype=np.float64).ravel() for v in values]
    if any((np.abs(g[np.isfinite(g)]) > _FLOAT32_MAX).any() for g in wide):
        raise ValueError(f"a map cell is beyond what a FLOAT holds (±{_FLOAT32_MAX:.3g})")
    flat = [g.astype(np.float32) for g in wide]
    offsets = np.zeros(len(flat) + 1, dtype=np.int64)
    np.cumsum([len(f) for f in flat], out=offsets[1:])
    cells = np.concatenate(flat) if flat else np.empty(0, dtype=np.float32)
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(cells, type=pa.float32()))


def _arrow_table(records: list, record_type: type, db_path: Path) -> pa.Table:
    """The records as one Arrow table, a column per field; the last record of a key wins, as
    row-by-row replacing would have it. RecordError for a value Arrow cannot hold."""
    key = _TABLES[record_type][1]
    records = list({tuple(getattr(r, k) for k in key): r for r in records}.values())
    try:
        return pa.table({f.name: _grid_array([getattr(r, f.name) for r in records]) if f.name in _GRID_COLUMNS
                         else pa.array([getattr(r, f.name) for r in records]) for f in fields(record_type)})
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError, TypeError, ValueError) as exc:
        raise RecordError(f"{db_path}: a value could not be stored ({_first_line(exc)})") from exc


class _StoredAlready(Exception):
    """A plain INSERT met a key already stored: the batch is written again, replacing."""


_SHARED = (ImageRecord, QuestionRecord)  # rows other runs of the same files and manifest share: often stored


def _insert(con: duckdb.DuckDBPyConnection, table: pa.Table, record_type: type, replace: bool) -> None:
    """Insert the whole table in one statement: INSERT OR REPLACE, or (about twice as fast) a plain
    INSERT, which raises _StoredAlready if one of its keys is stored."""
    name = _TABLES[record_type][0]
    columns = ", ".join(table.column_names)
    verb = "INSERT OR REPLACE" if replace or record_type in _SHARED else "INSERT"
    con.register("_batch", table)
    try:
        con.execute(f"{verb} INTO {name} ({columns}) SELECT {columns} FROM _batch")
    except duckdb.ConstraintException as exc:
        if verb == "INSERT" and "duplicate key" in str(exc).lower():
            raise _StoredAlready from exc
        raise
    con.unregister("_batch")  # not after a failed statement: the aborted transaction refuses it


def _difference(config: dict, fingerprint: str | None, dtype: str | None, run: RunRecord) -> str | None:
    """What makes `run` a different run from the stored one, in words; None if nothing."""
    changed = sorted(k for k in config.keys() | run.config.keys() if config.get(k) != run.config.get(k))
    if changed:
        return f"configuration ({', '.join(changed)} changed)"
    if fingerprint != run.weights_fingerprint:
        return "model weights"
    if dtype != run.dtype:
        return f"dtype ({dtype} before, {run.dtype} now; pass --dtype to match)"
    return None


class StoreWriter:
    def __init__(self, db_path: str | Path):
        self.db_path = Path(db_path)
        with connect(self.db_path, read_only=False) as con:
            ensure_schema(con, self.db_path)

    def completed_run_items(self, run_id: str, config: dict, weights_fingerprint: str | None,
                            dtype: str) -> set[str] | None:
        """The done item ids of a *completed* run with this exact config, weights and
        dtype, else None. Lets a rerun with nothing left to do skip loading a model."""
        with connect(self.db_path, read_only=False) as con:
            row = con.execute("SELECT config, status, weights_fingerprint, dtype FROM runs WHERE run_id = ?",
                              [run_id]).fetchone()
            if (row is None or row[1] != "completed" or json.loads(row[0]) != config
                    or weights_fingerprint is None or row[2] != weights_fingerprint or row[3] != dtype):
                return None
            done = con.execute("SELECT item_id FROM predictions WHERE run_id = ? AND status = 'ok'",
                               [run_id]).fetchall()
        return {r[0] for r in done}

    def start_run(self, run: RunRecord) -> set[str]:
        """Create the run, or reopen it to resume. Returns the item ids already done
        (status ok), which the caller skips. A different config under the same name is
        refused rather than silently mixed, and so is a run another live process is writing."""
        config_json = json.dumps(run.config, sort_keys=True)
        with connect(self.db_path, read_only=False) as con, _transaction(con, self.db_path):
            existing = con.execute("SELECT config, weights_fingerprint, dtype FROM runs WHERE run_id = ?",
                                   [run.run_id]).fetchone()
            if existing is not None:
                difference = _difference(json.loads(existing[0]), existing[1], existing[2], run)
                if difference:
                    raise RunConfigMismatch(
                        f"run {run.run_id!r} already exists in {self.db_path} with a different {difference}; "
                        "pick a new --run name (or delete the old run) to run this one")
                self._refuse_if_owned(run.run_id, con)
            now = datetime.now()
            if existing is None:
                con.execute(
                    "INSERT INTO runs (run_id, study, dataset, manifest_path, model_id, model_revision,"
                    " weights_fingerprint, device, dtype, seed, instruction, system_prompt, config,"
                    " package_versions, started_at, status, n_items, image_root, host, pid, heartbeat_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                    [run.run_id, run.study, run.dataset, run.manifest_path, run.model_id, run.model_revision,
                     run.weights_fingerprint, run.device, run.dtype, run.seed, run.instruction,
                     run.system_prompt, config_json, json.dumps(run.package_versions, sort_keys=True),
                     now, run.n_items, run.image_root, this_host(), os.getpid(), utc_now()])
            else:
                con.execute("UPDATE runs SET status = 'running', finished_at = NULL, error = NULL, n_items = ?,"
                            " device = ?, dtype = ?, package_versions = ?, image_root = ?, host = ?, pid = ?,"
                            " heartbeat_at = ? WHERE run_id = ?",
                            [run.n_items, run.device, run.dtype, json.dumps(run.package_versions, sort_keys=True),
                             run.image_root, this_host(), os.getpid(), utc_now(), run.run_id])
            done = con.execute("SELECT item_id FROM predictions WHERE run_id = ? AND status = 'ok'",
                               [run.run_id]).fetchall()
        return {row[0] for row in done}

    def drop_other_items(self, run_id: str, keep: set[str]) -> int:
        """Delete the run's predictions (and their maps and comparisons) whose item is not in
        `keep`: on resume, rows the manifest reader now refuses (their row errors are stored
        under other ids) must not also count under their old ids. Returns how many."""
        with connect(self.db_path, read_only=False) as con, _transaction(con, self.db_path):
            con.register("keep_items", pd.DataFrame({"item_id": sorted(keep)}, dtype=object))
            stale = "run_id = ? AND item_id NOT IN (SELECT item_id FROM keep_items)"
            dropped = con.execute(f"SELECT count(*) FROM predictions WHERE {stale}", [run_id]).fetchone()[0]
            if dropped:
                for table in ("attention_changes", "head_maps", "attention_maps", "predictions"):
                    con.execute(f"DELETE FROM {table} WHERE {stale}", [run_id])
        return dropped

    def check_owner(self, run_id: str) -> None:
        """RunInUseError if another live process is writing `run_id` (start_run checks again,
        atomically; this lets a caller refuse before it loads a model)."""
        with connect(self.db_path, read_only=False) as con:
            self._refuse_if_owned(run_id, con)

    def _refuse_if_owned(self, run_id: str, con: duckdb.DuckDBPyConnection) -> None:
        """RunInUseError if another live process owns the running run: checked on start, on
        every write and on finishing, so a process whose run was taken over stops writing."""
        row = con.execute("SELECT status, host, pid, heartbeat_at FROM runs WHERE run_id = ?", [run_id]).fetchone()
        owner = live_owner(*row[1:]) if row is not None and row[0] == "running" else None
        if owner:
            raise RunInUseError(
                f"run {run_id!r} in {self.db_path} is being written by {owner}; wait for it to finish or stop it, "
                f"then rerun to resume (a run on another host counts as stopped {STALE_AFTER.total_seconds() / 3600:g} "
                "hours after its last write)")

    def write_batch(self, images: list[ImageRecord], questions: list[QuestionRecord],
                    predictions: list[PredictionRecord], maps: list[MapRecord | HeadMapRecord] = ()) -> None:
        """Write one batch in one transaction: all of it lands, or none of it (RecordError
        when a value cannot be stored). Marks the batch's runs as alive. `maps` may hold head maps."""
        self.write_prepared(self.prepare_batch(images, questions, predictions, maps))

    def prepare_batch(self, images: list[ImageRecord], questions: list[QuestionRecord],
                      predictions: list[PredictionRecord], maps: list[MapRecord | HeadMapRecord] = ()
                      ) -> PreparedBatch:
        """The batch as Arrow tables, ready for write_prepared (RecordError for a value Arrow cannot
        hold). Building them is Python work; writing them is DuckDB's, which a background thread can
        do without holding the interpreter from the model's thread."""
        heads = [m for m in maps if isinstance(m, HeadMapRecord)]
        batch = ((ImageRecord, images), (QuestionRecord, questions), (PredictionRecord, predictions),
                 (MapRecord, [m for m in maps if not isinstance(m, HeadMapRecord)]), (HeadMapRecord, heads))
        return PreparedBatch(tuple((t, _arrow_table(list(records), t, self.db_path)) for t, records in batch
                                   if records), frozenset(p.run_id for p in predictions))

    def write_prepared(self, batch: PreparedBatch) -> None:
        """write_batch of a prepared batch."""
        try:
            self._write_tables(batch.tables, batch.run_ids, replace=False)
        except _StoredAlready:  # a resumed run's retried items, say: nothing was written, so replace
            self._write_tables(batch.tables, batch.run_ids, replace=True)

    def _write_tables(self, tables: Sequence[tuple[type, pa.Table]], run_ids: frozenset[str], replace: bool) -> None:
        with connect(self.db_path, read_only=False) as con, _transaction(con, self.db_path):
            for run_id in sorted(run_ids):
                self._refuse_if_owned(run_id, con)
                con.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ? AND status = 'running'",
                            [utc_now(), run_id])
            for record_type, table in tables:
                _insert(con, table, record_type, replace)

    def write_attention_changes(self, changes: list[AttentionChangeRecord]) -> None:
        """One transaction; rows are keyed, so recomputing replaces them."""
        if not changes:
            return
        table = _arrow_table(changes, AttentionChangeRecord, self.db_path)
        with connect(self.db_path, read_only=False) as con, _transaction(con, self.db_path):
            _insert(con, table, AttentionChangeRecord, replace=True)

    def finish_run(self, run_id: str, status: str, items_per_second: float | None = None,
                   peak_gpu_memory_gb: float | None = None, error: str | None = None) -> None:
        """Mark the run `status` (completed | interrupted | failed); `error` says why it failed. Then
        the pages' pre-aggregated tables are brought up to date (store.aggregates); if that fails,
        the pages read the live tables, which is slower, never wrong, and a warning says so."""
        with connect(self.db_path, read_only=False) as con, _transaction(con, self.db_path):
            self._refuse_if_owned(run_id, con)
            con.execute("UPDATE runs SET status = ?, finished_at = ?, error = ?,"
                        " items_per_second = coalesce(?, items_per_second),"
                        " peak_gpu_memory_gb = coalesce(?, peak_gpu_memory_gb) WHERE run_id = ?",
                        [status, datetime.now(), error, items_per_second, peak_gpu_memory_gb, run_id])
        try:
            aggregates.refresh_store(self.db_path)
        except (StoreError, duckdb.Error) as exc:
            warnings.warn(f"{self.db_path}: the pages' summary tables were not refreshed ({_first_line(exc)}); "
                          "they read the full tables until `python -m store.aggregates --db` succeeds", stacklevel=2)
