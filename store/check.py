"""`python -m store check --db DB`: the store's own consistency check.

Reports orphans (rows that point at rows that do not exist), duplicates (an item answered
twice in one run, or a map stored twice), and runs marked running whose process is gone.
Exits 1 when it finds a problem, 0 otherwise. Read-only."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from .connection import StoreError, connect
from .schema import current_version

ORPHANS = {
    "predictions without a question": "SELECT count(*) FROM predictions p LEFT JOIN questions q USING (item_id) "
                                      "WHERE q.item_id IS NULL",
    "predictions without a run": "SELECT count(*) FROM predictions p LEFT JOIN runs r USING (run_id) "
                                 "WHERE r.run_id IS NULL",
    "maps without a prediction": "SELECT count(*) FROM attention_maps m LEFT JOIN predictions p "
                                 "USING (run_id, item_id) WHERE p.item_id IS NULL",
    "attention changes without a prediction": "SELECT count(*) FROM attention_changes c LEFT JOIN predictions p "
                                              "USING (run_id, item_id) WHERE p.item_id IS NULL",
}
# The primary keys forbid these today; the check is for stores written by other tools or
# older code, which is what a consistency check is for.
DUPLICATES = {
    "items answered twice in a run": "SELECT count(*) - count(DISTINCT (run_id, item_id)) FROM predictions",
    "maps stored twice": "SELECT count(*) - count(DISTINCT (run_id, item_id, method, layer)) FROM attention_maps",
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check(db: str | Path) -> list[str]:
    """Problems found, in words; empty when the store is consistent."""
    problems = []
    with connect(db, read_only=True) as con:
        version = current_version(con)
        for name, sql in {**ORPHANS, **DUPLICATES}.items():
            if version < 3 and "changes" in sql or version < 2 and "attention_maps" in sql:
                continue
            count = con.execute(sql).fetchone()[0]
            if count:
                problems.append(f"{count} {name}")
        running = con.execute("SELECT run_id, host, pid FROM runs WHERE status = 'running'").fetchall() \
            if version >= 3 else []
    here = socket.gethostname()
    for run_id, host, pid in running:
        if host == here and pid is not None and not _alive(pid):
            problems.append(f"run {run_id!r} is marked running but its process ({pid}) is gone; rerun it to resume")
        elif host != here:
            problems.append(f"run {run_id!r} is marked running on {host}; check that it is alive there")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m store check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, type=Path, help="the DuckDB store")
    args = parser.parse_args(argv)
    try:
        problems = check(args.db)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    print(f"{args.db}: {'consistent' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0
