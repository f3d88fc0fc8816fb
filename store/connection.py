"""Short-lived DuckDB connections.

DuckDB lets one process write, or many processes read read-only, but not both at once.
Every reader and writer here therefore opens a connection for one unit of work and closes
it, and retries briefly while another process holds the file.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

LOCK_RETRY_SECONDS = 30.0  # how long to wait for another process to release the file
_RETRY_SLEEP = 0.05


class StoreError(RuntimeError):
    """The database file cannot be opened (not a DuckDB file, a folder, no permission)."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    pass


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text or "already open" in text


@contextmanager
def connect(db_path: str | Path, *, read_only: bool,
            retry_seconds: float = LOCK_RETRY_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open `db_path` for one unit of work. Read-only opens never create the file."""
    db_path = Path(db_path)
    if read_only and not db_path.exists():
        raise StoreNotFoundError(f"{db_path}: no such database")
    if not read_only:
        db_path.parent.mkdir(parents=True, exist_ok=True)
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
