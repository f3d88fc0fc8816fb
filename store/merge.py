"""Merge the part stores that the ranks of a multi-process run wrote into the main store.

DuckDB allows one writing process per file, so each rank writes `<db>.part<rank>-of-<world>`
and the parts are merged afterwards. Rows are keyed, so merging twice, or merging a part
whose rows are already in the store, replaces rather than duplicates.
"""

from __future__ import annotations

from pathlib import Path

from store import aggregates
from store.connection import StoreError, connect, transaction
from store.schema import ensure_schema

TABLES = ("images", "image_files", "questions", "predictions", "attention_maps", "head_maps", "attention_changes")


def part_path(db: str | Path, rank: int, world: int) -> Path:
    db = Path(db)
    return db.with_name(f"{db.name}.part{rank}-of-{world}")


def merge_parts(db: str | Path, parts: list[Path], run_id: str) -> int:
    """Merge `parts` into `db` in one transaction; returns the predictions merged. The run is
    completed when every part's run is, and its item count is their sum."""
    missing = [str(p) for p in parts if not p.exists()]
    if missing:
        raise StoreError(f"cannot merge run {run_id!r}: part stores missing: {', '.join(missing)}")
    with connect(db, read_only=False) as con:
        ensure_schema(con, db)
        for k, part in enumerate(parts):
            con.execute(f"ATTACH ? AS part{k} (READ_ONLY)", [str(part)])
        with transaction(con):
            first = "part0"
            statuses = [_run_row(con, f"part{k}", run_id) for k in range(len(parts))]
            if any(s is None for s in statuses):
                raise StoreError(f"cannot merge run {run_id!r}: a part store does not hold it")
            status = "completed" if all(s["status"] == "completed" for s in statuses) else "interrupted"
            errors = "; ".join(f"rank {k}: {s['error']}" for k, s in enumerate(statuses) if s.get("error")) or None
            con.execute(f"INSERT OR REPLACE INTO runs BY NAME SELECT * FROM {first}.runs WHERE run_id = ?", [run_id])
            con.execute("UPDATE runs SET status = ?, n_items = ?, error = ?, items_per_second = NULL WHERE run_id = ?",
                        [status, sum(s["n_items"] or 0 for s in statuses), errors, run_id])
            for k in range(len(parts)):
                present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                                     "WHERE table_catalog = ?", [f"part{k}"]).fetchall()}
                for table in (t for t in TABLES if t in present):  # a part of an older schema lacks some
                    where = "" if table in ("images", "image_files", "questions") else " WHERE run_id = ?"
                    params = [] if not where else [run_id]
                    # by name: a part written by code of another schema version lines up column for column
                    con.execute(f"INSERT OR REPLACE INTO {table} BY NAME SELECT * FROM part{k}.{table}{where}",
                                params)
            aggregates.refresh(con)  # the merged run's summary tables, in the same transaction
        merged = con.execute("SELECT count(*) FROM predictions WHERE run_id = ?", [run_id]).fetchone()[0]
    return merged


def _run_row(con, alias: str, run_id: str) -> dict | None:
    """The part's row of the run, by column name (a part of an older schema has fewer columns)."""
    cursor = con.execute(f"SELECT * FROM {alias}.runs WHERE run_id = ?", [run_id])
    row = cursor.fetchone()
    return None if row is None else dict(zip((d[0] for d in cursor.description), row))
