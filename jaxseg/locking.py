"""One writer per directory: an exclusive ``flock`` on a lock file inside it.

The kernel drops the lock when its process ends, however it ends (kill -9 included), so a crash
never leaves a directory locked; a second process asking for a held lock is refused (at once, or
after ``wait`` seconds of retrying) with one line naming the directory and the holder as
``pid@host``. Locks are advisory: they guard jaxseg against itself (two commands started on one
workdir, shard workers claiming runs), not against other programs.

On a shared filesystem ``flock`` works on NFSv4 (a dead client's locks are released after the
server's lease time, about 90 s) and on Lustre when mounted with the ``flock`` option (without it,
or with ``localflock``, locks are not seen across machines).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator

LOCK = ".lock"


class BusyError(ValueError):
    """Another process holds the directory's lock."""


@contextlib.contextmanager
def hold(directory: str, what: str = "", wait: float = 0.0) -> Iterator[None]:
    """Hold ``<directory>/.lock`` exclusively for the block (the directory is created); raise
    ``BusyError`` when another process still holds it after ``wait`` seconds of retrying (for
    holders that only write a file). ``what`` names the directory in the message."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "?"
                raise BusyError(
                    f"{what or directory} is in use by another jaxseg process (pid {holder}, lock "
                    f"{path}); wait for it to finish, or stop it"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}@{socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race a new holder)
