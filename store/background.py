"""Writes on a background thread, so that a study computes its next batch while the last one
is written.

Jobs run one at a time, in the order given, each in its own transaction (the job is a
StoreWriter call). At most `depth` jobs wait or run at once: a caller that gets ahead blocks,
so memory stays bounded, and a killed process loses at most those `depth` batches, which a
rerun of the same run answers again. A job's error is raised in the caller's thread, at the
next submit or at drain.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

DEFAULT_DEPTH = 2


class BackgroundWrites:
    def __init__(self, depth: int = DEFAULT_DEPTH):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.depth = depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._pending: deque[Future] = deque()

    def submit(self, job: Callable[..., Any], *args: Any) -> list[Any]:
        """Queue `job(*args)`, first waiting while `depth` jobs are pending. Returns the results of
        the jobs that finished meanwhile, in order; raises the first error of one of them."""
        finished = self._collect(keep=self.depth - 1)
        self._pending.append(self._pool.submit(job, *args))
        return finished

    def drain(self) -> list[Any]:
        """Wait for every pending job; their results in order (raises the first error)."""
        return self._collect(keep=0)

    def settle(self) -> None:
        """Wait for every pending job, ignoring their errors: for a run that is stopping anyway
        (interrupted, or failed elsewhere), whose batches already answered should still land
        before it marks itself in the store."""
        interrupted = None
        while self._pending:
            try:
                self._pending[0].exception()
            except KeyboardInterrupt as again:  # a second Ctrl-C: the batch in flight still lands first
                interrupted = again
                continue
            self._pending.popleft()
        self.close()
        if interrupted is not None:
            raise interrupted

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _collect(self, keep: int) -> list[Any]:
        """Results of the finished jobs at the head of the queue, waiting until at most `keep` remain."""
        out = []
        while self._pending and (len(self._pending) > keep or self._pending[0].done()):
            future = self._pending.popleft()
            out.append(future.result())
        return out

    def __enter__(self) -> BackgroundWrites:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.drain()
            self.close()
        else:
            self.settle()
