"""Short-lived DuckDB connections.

DuckDB lets one process write, or many processes read read-only, but not both at once.
Every reader and writer here therefore opens a connection for one unit of work and closes
it, and retries briefly while another process holds the file.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

LOCK_RETRY_SECONDS = 30.0  # how long to wait for another process to release the file
_RETRY_SLEEP = 0.05
_held: dict[Path, _Held] = {}  # stores this process keeps open for a block of work (held)
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
    """Open `db_path` for one unit of work. Read-only opens never create the file. Inside `held` the
    connection is a cursor of the held one (which is writable, whatever `read_only` says)."""
    db_path = Path(db_path)
    _check_path(db_path, read_only)
    with _held_lock:
        entry = _held.get(db_path.resolve())
        cursor = entry.con.cursor() if entry is not None else None  # no second open of the file
    con = cursor if cursor is not None else _open(db_path, read_only, retry_seconds)
    try:
        yield con
    finally:
        con.close()


def _check_path(db_path: Path, read_only: bool) -> None:
    if read_only and not db_path.exists():
        raise StoreNotFoundError(f"{db_path}: no such database")
    if db_path.is_dir():
        raise StoreError(f"{db_path}: is a folder, not a database file; name a .duckdb file")
    if not read_only:
        check_writable(db_path)


def _open(db_path: Path, read_only: bool, retry_seconds: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + retry_seconds
    while True:
        try:
            return duckdb.connect(str(db_path), read_only=read_only)
        except duckdb.IOException as exc:
            if _is_lock_error(exc) and time.monotonic() < deadline:
                time.sleep(_RETRY_SLEEP)
                continue
            raise StoreError(f"{db_path}: cannot open the database ({str(exc).splitlines()[0]})") from exc
        except duckdb.Error as exc:
            raise StoreError(f"{db_path}: cannot open the database ({str(exc).splitlines()[0]})") from exc


@dataclass
class _Held:
    con: duckdb.DuckDBPyConnection
    users: int = 0


@contextmanager
def held(db_path: str | Path) -> Iterator[None]:
    """Keep the store open, read-write, for a block of short operations: each `connect` inside it
    (from any thread) shares this process's open database instead of opening the file again, which
    costs about 20 ms a time. Other processes wait for the block to end, as they wait for any
    write; so hold it for quick sequences (a run's start and its end), not for a whole run. Blocks
    may nest and overlap across threads: the last one out closes the file."""
    db_path = Path(db_path)
    _check_path(db_path, read_only=False)
    key = db_path.resolve()
    with _held_lock:
        entry = _held.get(key)
        if entry is None:
            entry = _held[key] = _Held(_open(db_path, False, LOCK_RETRY_SECONDS))
        entry.users += 1
    try:
        yield
    finally:
        with _held_lock:
            entry.users -= 1
            if entry.users == 0:
                del _held[key]
                entry.con.close()


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
