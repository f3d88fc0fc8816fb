"""Who owns a running run: the host and process id that started it, and its last write.

A run has one writer at a time. A second process that starts the same run while the first
is alive is refused; after a crash the owner is gone, and the run can be resumed."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

# A run on another host counts as abandoned this long after its last write (no process
# check reaches there): longer than any batch between two writes, Grad-CAM and deletion
# tests on a CPU included. On the same host the process itself is checked.
STALE_AFTER = timedelta(hours=2)


def utc_now() -> datetime:
    """Heartbeats are naive UTC, so hosts in other time zones compare them rightly."""
    return datetime.now(UTC).replace(tzinfo=None)


def this_host() -> str:
    return socket.gethostname()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except (OverflowError, ValueError):  # not a pid this system can have
        return False
    return True


def live_owner(host: str | None, pid: int | None, heartbeat: datetime | None,
               now: datetime | None = None) -> str | None:
    """A description of the process that still owns a running run ("process 123 on host-a,
    last write 12:00:01"), or None when the run has no live owner but this process."""
    if pid is None or host is None:
        return None
    here = this_host()
    if host == here:
        if pid == os.getpid() or not process_alive(pid):
            return None
    elif heartbeat is None or (now or utc_now()) - heartbeat > STALE_AFTER:
        return None
    last = f", last write {heartbeat:%Y-%m-%d %H:%M:%S} UTC" if heartbeat else ""
    return f"process {pid} on {host}{last}"
