"""Progress on a terminal: what is being checked, n of m, for runs longer than about DELAY seconds.

Only on stderr, only when stderr is a terminal (never in a report, a pipe or a file, so
what a run prints is the same bytes with or without it), and erased when the work is
done.  Safe to call from several threads.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time

DELAY = 2.0  # seconds before the first line: short runs stay silent


class Progress:
    def __init__(self, what: str, total: int | None = None, stream=None, delay: float = DELAY):
        stream = stream if stream is not None else sys.stderr
        self.stream = getattr(stream, "passthrough", stream)  # past prove_cache.Tee: never recorded
        self.what, self.total, self.done, self.label = what, total, 0, ""
        self.on = _terminal(self.stream)
        self.start, self.delay, self.shown = time.monotonic(), delay, False
        self.lock = threading.Lock()

    def now(self, label: str) -> None:
        """Say what is being worked on (without counting it)."""
        with self.lock:
            self.label = label
            self._show()

    def step(self, label: str | None = None) -> None:
        """One more of the total done."""
        with self.lock:
            self.done += 1
            if label is not None:
                self.label = label
            self._show()

    def _show(self) -> None:
        if not self.on or time.monotonic() - self.start < self.delay:
            return
        count = f"{self.done} of {self.total}" if self.total is not None else f"{self.done}" if self.done else ""
        line = f"{self.what}: " + ", ".join(part for part in (count, self.label) if part)
        width = shutil.get_terminal_size((80, 24)).columns - 1
        try:
            self.stream.write("\r" + line[:width] + "\x1b[K")
            self.stream.flush()
        except (OSError, ValueError):
            self.on = False
            return
        self.shown = True

    def clear(self) -> None:
        """Erase the line for now (another stage shows its own); the next `now` shows it again."""
        with self.lock:
            self._erase()

    def close(self) -> None:
        with self.lock:
            self._erase()
            self.on = False

    def _erase(self) -> None:
        if self.shown:
            try:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass
        self.shown = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _terminal(stream) -> bool:
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
