"""One study over several processes: each rank writes a part store, rank 0 merges them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from store import StoreError
from store.merge import merge_parts, part_path

from compute.config import RunConfig

T = TypeVar("T")


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment; (0, 1) when run alone."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def run_sharded(config: RunConfig, rank: int, world: int, run_share: Callable[[RunConfig, bool, Callable], T], *,
                progress: bool, log: Callable[[str], None], wait_seconds: float = 3600.0) -> T:
    """Run this rank's share with `run_share(config, progress, log)` into its part store; on
    rank 0, wait for every rank's part and merge them into --db."""
    part = part_path(config.db, rank, world)
    part.with_name(part.name + ".done").unlink(missing_ok=True)  # from an earlier attempt
    summary = run_share(replace(config, db=part, shard=(rank, world)), progress and rank == 0,
                        lambda m: log(f"[rank {rank}] {m}"))
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
