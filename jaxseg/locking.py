"""One writer per directory: an exclusive ``flock`` on a lock file inside it.

The kernel drops the lock when its process ends, however it ends (kill -9 included), so a crash
never leaves a directory locked; a second process asking for a held lock is refused at once with
one line naming the directory and the holder's pid. Locks are advisory: they guard jaxseg against
itself (two commands started on one workdir), not against other programs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

LOCK = ".lock"


class BusyError(ValueError):
    """Another process holds the directory's lock."""


@contextlib.contextmanager
def hold(directory: str, what: str = "") -> Iterator[None]:
    """Hold ``<directory>/.lock`` exclusively for the block (the directory is created); raise
    ``BusyError`` when another process holds it. ``what`` names the directory in the message."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise BusyError(
                f"{what or directory} is in use by another jaxseg process (pid {holder}, lock "
                f"{path}); wait for it to finish, or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race a new holder)
