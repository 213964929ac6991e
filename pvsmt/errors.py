"""pvsmt's exceptions: one root, each subclass says when it is raised."""

from __future__ import annotations

from dataclasses import dataclass


class PvsmtError(Exception):
    """Root of every error pvsmt raises on purpose."""


@dataclass(frozen=True)
class Location:
    """A place in an input file (1-based line and column; column 0 = whole line)."""

    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.path
        return f"{self.path}:{self.line}" + (f":{self.column}" if self.column else "")


class InputError(PvsmtError):
    """Bad input: a spec, invariant or argument that cannot be read or makes no sense.

    Shown as `file:line: error: message` and exit status 2.  Fix the input at the
    location given; the message says what was expected.
    """

    def __init__(self, where: Location | str, message: str):
        super().__init__(message)
        self.where = where
        self.message = message

    def __reduce__(self):  # pickled as constructed (a worker process sends it to the parent)
        return type(self), (self.where, self.message)

    def __str__(self) -> str:
        return f"{self.where}: error: {self.message}"


class ModelDisagreement(PvsmtError):
    """The Z3 encoding and the concrete evaluator disagree on a configuration.

    This is a bug in pvsmt, never in the input: the counterexample Z3 found does
    not replay.  Please report it with the invariant and spec.
    """
