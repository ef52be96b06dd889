"""Threads that run model work at a lower CPU priority than the event loop, so that the server keeps
answering (``/health``, files, other tenants' requests) while a model computes on every core.

Linux gives each thread a nice value of its own, and a new thread starts with its creator's.
``lower_priority`` raises the calling thread's by ``NICENESS``; in a pool that runs it first
(``ThreadPoolExecutor(initializer=lower_priority)``) all the pool's work runs niced, and so does every
thread that work creates: llama.cpp's server loop and its compute threads, onnxruntime's intra-op
threads, the tokenizer's. Elsewhere (on macOS the call would name a process, not a thread) it does
nothing.
"""

from __future__ import annotations

import os
import sys
import threading

NICENESS = 10  # at nice 10 a thread weighs about a tenth of one at 0 when they compete for a core
MAX_NICE = 19


def lower_priority() -> None:
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    nice = os.getpriority(os.PRIO_PROCESS, thread)
    os.setpriority(os.PRIO_PROCESS, thread, min(MAX_NICE, nice + NICENESS))
