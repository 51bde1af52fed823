"""die_with_parent: a process whose parent is gone, or goes, does not stay behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.servers import running

CHILD = """
import os, signal, subprocess, sys, time
from allcare.core.processes import die_with_parent
if sys.argv[1] == "parent":
    child = subprocess.Popen([sys.executable, "-c", sys.argv[2], "child", str(os.getpid())])
    print(child.pid, flush=True)
    time.sleep(60)
else:
    die_with_parent(signal.SIGTERM, parent=int(sys.argv[2]))
    time.sleep(60)
"""


def test_a_child_dies_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", CHILD, "parent", CHILD], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(1.5)  # the child has asked for the signal
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(child)


def test_a_child_whose_parent_already_died_stops_at_once() -> None:
    """The parent named is not this process's parent any more: it died before the call."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "child", "999999999"], timeout=30, capture_output=True
    )
    assert done.returncode == -signal.SIGTERM
