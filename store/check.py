"""`python -m store check --db DB`: the store's own consistency check.

Reports orphans (rows that point at rows that do not exist), duplicates (an item answered
twice in one run, or a map stored twice), runs marked running whose process is gone, and
image files that are missing or no longer hold the bytes the model was shown (their
sha256 differs from the recorded one). Exits 1 when it finds a problem, 2 when the file is
not a store it can check, 0 otherwise. Read-only."""

from __future__ import annotations

import argparse
import hashlib
import stat
import sys
from pathlib import Path

from store.connection import StoreError, connect
from store.owner import live_owner, process_alive, this_host
from store.schema import usable_version

ORPHANS = {
    "predictions without a question": "SELECT count(*) FROM predictions p LEFT JOIN questions q USING (item_id) "
                                      "WHERE q.item_id IS NULL",
    "predictions without a run": "SELECT count(*) FROM predictions p LEFT JOIN runs r USING (run_id) "
                                 "WHERE r.run_id IS NULL",
    "maps without a prediction": "SELECT count(*) FROM attention_maps m LEFT JOIN predictions p "
                                 "USING (run_id, item_id) WHERE p.item_id IS NULL",
    "attention changes without a prediction": "SELECT count(*) FROM attention_changes c LEFT JOIN predictions p "
                                              "USING (run_id, item_id) WHERE p.item_id IS NULL",
    "head maps without their map": "SELECT count(*) FROM head_maps h LEFT JOIN attention_maps m "
                                   "USING (run_id, item_id, method, layer) WHERE m.item_id IS NULL",
    "predictions without their image record": "SELECT count(*) FROM predictions p LEFT JOIN image_files f "
                                              "USING (image_key) WHERE p.image_key IS NOT NULL AND f.image_key IS NULL",
}
# The primary keys forbid these today; the check is for stores written by other tools or
# older code, which is what a consistency check is for.
DUPLICATES = {
    "items answered twice in a run": "SELECT count(*) - count(DISTINCT (run_id, item_id)) FROM predictions",
    "maps stored twice": "SELECT count(*) - count(DISTINCT (run_id, item_id, method, layer)) FROM attention_maps",
}
_MIN_VERSION = {"attention_maps": 2, "attention_changes": 3, "image_files": 4, "head_maps": 6}  # tables newer than schema 1
SHOWN = 5  # image problems listed one by one; the rest are counted


class NotAStoreError(StoreError):
    """The file is a DuckDB database without a store's schema."""


def check(db: str | Path, *, images: bool = True) -> list[str]:
    """Problems found, in words; empty when the store is consistent. `images`: also hash every
    recorded image file and compare it with the sha256 the run recorded."""
    problems = []
    with connect(db, read_only=True) as con:
        version = usable_version(con, db)
        if version == 0:
            raise NotAStoreError(f"{db}: an empty DuckDB database, not a MedGemma Visualizer store (no tables); "
                                 "a store is written by `python -m compute run`")
        for name, sql in {**ORPHANS, **DUPLICATES}.items():
            if any(table in sql and version < needed for table, needed in _MIN_VERSION.items()):
                continue
            count = con.execute(sql).fetchone()[0]
            if count:
                problems.append(f"{count} {name}")
        running = con.execute("SELECT run_id, host, pid, heartbeat_at FROM runs WHERE status = 'running'").fetchall() \
            if version >= 4 else con.execute("SELECT run_id, host, pid, NULL FROM runs WHERE status = 'running'"
                                              ).fetchall() if version >= 3 else []
        files = con.execute("SELECT path, sha256 FROM image_files ORDER BY path").fetchall() \
            if images and version >= 4 else []
    problems += _dead_runs(running)
    if files:
        problems += _image_problems(files)
    return problems


def _dead_runs(running: list[tuple]) -> list[str]:
    here, out = this_host(), []
    for run_id, host, pid, heartbeat in running:
        if host == here and pid is not None and not process_alive(pid):
            out.append(f"run {run_id!r} is marked running but its process ({pid}) is gone; rerun it to resume")
        elif host != here and heartbeat is not None and live_owner(host, pid, heartbeat) is None:
            out.append(f"run {run_id!r} is marked running on {host} but has not written since "
                       f"{heartbeat:%Y-%m-%d %H:%M} UTC; rerun it to resume")
        elif host != here:
            out.append(f"run {run_id!r} is marked running on {host}; check that it is alive there")
    return out


def _image_problems(files: list[tuple[str, str]]) -> list[str]:
    missing, changed = [], []
    for path, recorded in files:
        try:
            digest = _sha256(Path(path))
        except (OSError, ValueError) as exc:
            missing.append(f"{path} ({getattr(exc, 'strerror', None) or exc})")
            continue
        if digest != recorded:
            changed.append(f"{path} (recorded sha256 {recorded[:12]}…, now {digest[:12]}…)")
    out = []
    for what, found in (("image files missing or unreadable", missing),
                        ("image files changed since a run read them", changed)):
        if found:
            more = f"; and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
            out.append(f"{len(found)} {what}: {'; '.join(found[:SHOWN])}{more}")
    return out


def _sha256(path: Path) -> str:
    """The file's sha256; OSError for anything but a regular file (a FIFO or /dev/zero in a
    hostile store would block or never end)."""
    if not stat.S_ISREG(path.stat().st_mode):
        raise OSError("not a regular file")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m store check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, type=Path, help="the DuckDB store")
    parser.add_argument("--skip-images", action="store_true",
                        help="do not re-hash the image files (the check reads every one of them)")
    args = parser.parse_args(argv)
    try:
        problems = check(args.db, images=not args.skip_images)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    print(f"{args.db}: {'consistent' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0
