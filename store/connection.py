"""Short-lived DuckDB connections.

DuckDB lets one process write, or many processes read read-only, but not both at once.
Every reader and writer here therefore opens a connection for one unit of work and closes
it, and retries briefly while another process holds the file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

LOCK_RETRY_SECONDS = 30.0  # how long to wait for another process to release the file
_RETRY_SLEEP = 0.05
_held: dict[Path, duckdb.DuckDBPyConnection] = {}  # stores this process keeps open for a block of work (held)
_held_lock = threading.Lock()


class StoreError(RuntimeError):
    """The database file cannot be opened (not a DuckDB file, a folder, no permission)."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    pass


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text or "already open" in text


def check_writable(db_path: str | Path) -> None:
    """StoreError unless `db_path` can be written or created: checked before any model loads,
    so that a bad --db costs nothing. Creates the missing parent folders."""
    db_path = Path(db_path)
    if db_path.is_dir():
        raise StoreError(f"{db_path}: is a folder, not a database file; name a .duckdb file")
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{db_path}: cannot create its folder ({exc.strerror or exc}); choose another --db") from None
    target = db_path if db_path.exists() else db_path.parent
    if not os.access(target, os.W_OK):
        what = "the file" if target == db_path else "its folder"
        raise StoreError(f"{db_path}: {what} is not writable (read-only file system or no permission); "
                         "choose another --db")


@contextmanager
def connect(db_path: str | Path, *, read_only: bool,
            retry_seconds: float = LOCK_RETRY_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open `db_path` for one unit of work. Read-only opens never create the file."""
    db_path = Path(db_path)
    if read_only and not db_path.exists():
        raise StoreNotFoundError(f"{db_path}: no such database")
    if db_path.is_dir():
        raise StoreError(f"{db_path}: is a folder, not a database file; name a .duckdb file")
    if not read_only:
        check_writable(db_path)
    with _held_lock:
        anchor = _held.get(db_path.resolve())
    if anchor is not None:
        cursor = anchor.cursor()  # another connection to the open database: no second open of the file
        try:
            yield cursor
        finally:
            cursor.close()
        return
    deadline = time.monotonic() + retry_seconds
    while True:
        try:
            con = duckdb.connect(str(db_path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if _is_lock_error(exc) and time.monotonic() < deadline:
                time.sleep(_RETRY_SLEEP)
                continue
            raise StoreError(f"{db_path}: cannot open the database ({str(exc).splitlines()[0]})") from exc
        except duckdb.Error as exc:
            raise StoreError(f"{db_path}: cannot open the database ({str(exc).splitlines()[0]})") from exc
    try:
        yield con
    finally:
        con.close()


@contextmanager
def held(db_path: str | Path) -> Iterator[None]:
    """Keep the store open, read-write, for a block of short operations: each `connect` inside it
    (from any thread) shares this process's open database instead of opening the file again, which
    costs about 20 ms a time. Other processes wait for the block to end, as they wait for any
    write; so hold it for quick sequences (a run's start and its end), not for a whole run."""
    key = Path(db_path).resolve()
    with _held_lock:
        nested = key in _held
    if nested:
        yield
        return
    with connect(db_path, read_only=False) as con:
        with _held_lock:
            _held[key] = con
        try:
            yield
        finally:
            with _held_lock:
                del _held[key]


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN; COMMIT when the block ends, ROLLBACK (and re-raise) when it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:  # a failed COMMIT has already rolled back
            pass
        raise
