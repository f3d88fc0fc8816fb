"""When a run stops for failing items, and how their reasons are shown."""

from __future__ import annotations

from collections.abc import Callable


class TooManyFailuresError(RuntimeError):
    """More items failed than the run allows; the results so far are kept."""


MIN_ITEMS_BEFORE_STOPPING = 20  # judge the failure share only once this many items were tried


def stop_if_failing(failures: list[str], done: int, share: float, manifest_name: str) -> None:
    """Stop once more than `share` of the items tried in this invocation (at least 20) failed.
    Manifest rows that could not be read are not items tried: they are known before the run
    starts and say nothing about the model or the images."""
    tried = len(failures) + done
    if tried >= MIN_ITEMS_BEFORE_STOPPING and len(failures) / tried > share:
        raise TooManyFailuresError(
            f"{len(failures)} of {tried} items failed ({len(failures) / tried:.0%}, more than --max-failure-share "
            f"{share:.0%}); stopping. The first: {manifest_name} {failures[0]}. Results so far are stored; fix the "
            "cause and rerun the same --run to resume")


def report_failures(failures: list[str], manifest_name: str, log: Callable[[str], None], shown: int = 5) -> None:
    for reason in failures[:shown]:
        log(f"failed: {manifest_name} {reason}")
    if len(failures) > shown:
        log(f"... and {len(failures) - shown} more failed items (stored with their reasons)")
