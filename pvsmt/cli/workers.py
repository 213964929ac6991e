"""Jobs in forked worker processes, their messages relayed to the parent as they come.

Z3 does not scale across threads of one process (two threads solving in two contexts
take as long as one thread doing both: measured in issue 14), but it does across
processes.  A job is a function of one argument, the worker's `Channel`; it runs in a
child forked from this process (so it sees everything parsed so far without pickling it),
sends messages while it works (progress, stderr text, partial news), and its return value
comes back pickled.  Where fork is not available, or there is one job, the jobs run here,
one after another, with a channel that delivers each message at once: the same messages
in the same order per job, so the caller cannot tell the difference but for time.

On Ctrl-C (the parent's KeyboardInterrupt) or when a job's exception is re-raised, every
worker still running is killed: no orphan goes on solving.
"""

from __future__ import annotations

import io
import os
import pickle
import selectors
import signal
import struct
import sys
import traceback
from typing import Callable

from ..errors import PvsmtError

_HEADER = struct.Struct("<Q")


class WorkerError(PvsmtError):
    """A worker process failed in a way its job did not report (a crash, a signal)."""


class Channel:
    """A worker's side: `send(kind, payload)` reaches the parent's `on_message` in order."""

    def __init__(self, deliver: Callable[[str, object], None]):
        self._deliver = deliver

    def send(self, kind: str, payload: object = None) -> None:
        self._deliver(kind, payload)


class _Stderr(io.TextIOBase):
    """A worker's sys.stderr: what it writes is relayed as ("stderr", text) messages."""

    def __init__(self, channel: Channel):
        self.channel = channel

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            self.channel.send("stderr", text)
        return len(text)

    def isatty(self) -> bool:
        return False


def forking() -> bool:
    """Can jobs run in forked processes here (POSIX fork)?"""
    return hasattr(os, "fork") and sys.platform != "darwin"  # macOS: fork after threads is unsafe


def run(jobs: list[Callable[[Channel], object]], on_message: Callable[[int, str, object], None]) -> list:
    """Every job's return value, in order; `on_message(k, kind, payload)` for each message job k sends.

    A job's exception is re-raised here (the first job's first, in job order); a message
    handler that raises stops the run (the workers are killed) and its exception propagates."""
    if len(jobs) < 2 or not forking():
        return [_here(k, job, on_message) for k, job in enumerate(jobs)]
    return _forked(jobs, on_message)


def _here(k: int, job, on_message):
    return job(Channel(lambda kind, payload: on_message(k, kind, payload)))


def _forked(jobs, on_message) -> list:
    sys.stdout.flush()
    sys.stderr.flush()
    children: dict[int, tuple[int, int]] = {}  # k -> (pid, read fd)
    try:
        for k, job in enumerate(jobs):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child (its coverage is not collected)
                os.close(read)
                _child(job, write)
            os.close(write)
            children[k] = (pid, read)
        return _collect(children, on_message)
    finally:
        _reap(children)


def _child(job, fd: int) -> None:  # pragma: no cover - runs in the child
    """Run `job`, send its messages and its outcome on `fd`, and leave without cleanup (no atexit,
    no flushing of the parent's buffers: the parent owns them)."""
    code = 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent takes Ctrl-C and kills the workers
    try:
        channel = Channel(lambda kind, payload: _write(fd, (kind, payload)))
        sys.stderr = _Stderr(channel)
        try:
            value = job(channel)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
            _write(fd, ("raise", _portable(exc)))
        else:
            _write(fd, ("return", value))
    except BaseException:  # noqa: BLE001 - the pipe is gone (the parent died or was interrupted)
        code = 1
    os._exit(code)


def _portable(exc: BaseException) -> BaseException:
    """`exc` as it can be pickled and read back, else a WorkerError with its traceback."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - anything pickle may raise
        text = "".join(traceback.format_exception(exc))
        return WorkerError(f"a worker process failed:\n{text}")


def _write(fd: int, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _collect(children: dict[int, tuple[int, int]], on_message) -> list:
    """Read every worker's messages until each has returned or raised."""
    outcomes: dict[int, tuple[str, object]] = {}
    buffers = {k: bytearray() for k in children}
    with selectors.DefaultSelector() as sel:
        for k, (_, fd) in children.items():
            sel.register(fd, selectors.EVENT_READ, k)
        while len(outcomes) < len(children):
            for key, _ in sel.select():
                k = key.data
                data = os.read(key.fd, 1 << 16)
                if not data:
                    sel.unregister(key.fd)
                    if k not in outcomes:
                        outcomes[k] = ("raise", _died(children[k][0]))
                        children[k] = (0, key.fd)  # reaped
                    continue
                buffers[k] += data
                for kind, payload in _messages(buffers[k]):
                    if kind in ("return", "raise"):
                        outcomes[k] = (kind, payload)
                    else:
                        on_message(k, kind, payload)
    for k in sorted(outcomes):
        kind, payload = outcomes[k]
        if kind == "raise":
            raise payload
    return [outcomes[k][1] for k in sorted(outcomes)]


def _messages(buffer: bytearray):
    """The whole messages at the start of `buffer`, removed from it."""
    while len(buffer) >= _HEADER.size:
        (size,) = _HEADER.unpack_from(buffer)
        if len(buffer) < _HEADER.size + size:
            return
        data = bytes(buffer[_HEADER.size:_HEADER.size + size])
        del buffer[:_HEADER.size + size]
        yield pickle.loads(data)


def _died(pid: int) -> WorkerError:
    _, status = os.waitpid(pid, 0)
    how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit status {os.WEXITSTATUS(status)}"
    return WorkerError(f"a worker process ended without an answer ({how})")


def _reap(children: dict[int, tuple[int, int]]) -> None:
    """Kill and wait for every worker still there; close the pipes."""
    for pid, fd in children.values():
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        try:
            os.close(fd)
        except OSError:
            pass
