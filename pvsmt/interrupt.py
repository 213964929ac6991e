"""Ctrl-C that stops the solver at once.

Z3 would take SIGINT itself while it solves (cancelling the query, which then looks
like a solver that gave up: `unknown`), and Python only raises KeyboardInterrupt
once a call into Z3 returns.  So: Z3 leaves SIGINT alone (`ctrl_c=false`), Python's
C-level handler writes the signal to a pipe (signal.set_wakeup_fd), and a watcher
thread interrupts every Z3 context; the interrupted call returns, and the main thread
raises KeyboardInterrupt, which cli.main turns into one line and exit status 130.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import weakref

_contexts: "weakref.WeakSet" = weakref.WeakSet()
_installed = False


def install() -> None:
    """Arm it (from the main thread; once per process)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return  # SIGINT is ignored or someone else handles it
    import z3
    z3.set_param("ctrl_c", False)
    original = z3.Context.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        _contexts.add(self)

    z3.Context.__init__ = init
    read, write = os.pipe()
    os.set_blocking(write, False)
    try:
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except ValueError:  # pragma: no cover - not the main thread of the main interpreter
        return
    threading.Thread(target=_watch, args=(read, z3), daemon=True, name="pvsmt-ctrl-c").start()
    _installed = True


def _watch(read: int, z3) -> None:
    while True:
        data = os.read(read, 64)
        if not data:
            return
        if signal.SIGINT in data:
            _keep_interrupting(z3)


#: How long, and how often, the watcher goes on interrupting after a Ctrl-C.
PERSIST_S, EVERY_S = 10.0, 0.02


def _keep_interrupting(z3) -> None:
    """Interrupt every context, again and again: a query the main thread starts between the
    signal and its KeyboardInterrupt (Python raises it only once the current call into Z3
    returns) would otherwise run to its end, since Z3 clears a cancellation when a query
    starts.  The process ends with the KeyboardInterrupt, well inside PERSIST_S."""
    deadline = time.monotonic() + PERSIST_S
    while time.monotonic() < deadline:
        for ctx in [*list(_contexts), z3.main_ctx()]:
            ctx.interrupt()
        time.sleep(EVERY_S)
