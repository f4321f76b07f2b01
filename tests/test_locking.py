"""jaxseg.locking: one holder per directory, refused at once, released however the holder ends."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import REPO, subprocess_env

from jaxseg import locking


def test_second_holder_is_refused_and_the_lock_is_released_after_the_block(tmp_path):
    holder = re.escape(f"{os.getpid()}@{socket.gethostname()}")  # the machine, on a shared disk
    busy = pytest.raises(locking.BusyError, match=rf"study X is in use .*\(pid {holder}, ")
    with locking.hold(str(tmp_path)), busy, locking.hold(str(tmp_path), "study X"):
        pass
    with locking.hold(str(tmp_path)):  # free again
        pass


def test_a_killed_holder_leaves_no_stuck_lock(tmp_path):
    code = (
        "import sys, time; from jaxseg import locking\n"
        "with locking.hold(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(locking.BusyError, match=f"pid {proc.pid}"), locking.hold(str(tmp_path)):
        pass
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while True:  # the kernel releases the lock with the process
        try:
            with locking.hold(str(tmp_path)):
                break
        except locking.BusyError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_wait_retries_until_the_holder_lets_go(tmp_path):
    held, release = threading.Event(), threading.Event()

    def holder():
        with locking.hold(str(tmp_path)):
            held.set()
            release.wait()

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait()
    with pytest.raises(locking.BusyError), locking.hold(str(tmp_path)):
        pass
    threading.Timer(0.3, release.set).start()
    with locking.hold(str(tmp_path), wait=30):
        assert not thread.is_alive() or release.is_set()
    thread.join()
