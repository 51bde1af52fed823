"""Child processes that must not outlive their parent."""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGKILL, *, parent: int | None = None) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux). A process
    left behind by a SIGKILLed parent would go on training or serving unseen. ``parent``: the
    pid it was started by, when the call comes late (the parent may already be gone); by
    default the current parent, as in a ``preexec_fn``."""
    expected = os.getppid() if parent is None else parent
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    if os.getppid() != expected:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)
