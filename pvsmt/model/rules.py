"""Rules, cases and the backend interface the model is written against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class Rule:
    """One step of the semantics, with the source that states it.

    `says` is a sentence for the trace; `{name}` fields are filled with the
    values passed to the Case.  `uncertain` is set where the reference marks
    the fact UNCERTAIN: a verdict that depends on the rule says so.
    """

    name: str
    says: str
    cite: str
    uncertain: str = ""

    @property
    def layer(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class Case:
    """`when` holds: apply `rule`, and the result is `then()`.

    For an UNCERTAIN rule, `alternatives()` lists the other outcomes the sources
    allow; without it, any outcome is possible.
    """

    when: Any
    rule: Rule
    then: Callable[[], Any]
    facts: dict = field(default_factory=dict)
    alternatives: Callable[[], list] | None = None


def case(when, rule: Rule, then: Callable[[], Any], alternatives=None, **facts) -> Case:
    return Case(when, rule, then, facts, alternatives)


class Ops(Protocol):
    """Operations a backend provides; comparisons use Python operators."""

    def all(self, *xs): ...
    def any(self, *xs): ...
    def not_(self, x): ...
    def div(self, a, n: int): ...
    def mod(self, a, n: int): ...
    def ite(self, c, a, b): ...
    """A value chosen by a condition, without a trace step."""
    def decide(self, *cases: Case): ...
    """First case whose `when` holds (the last case must be `True`)."""


class State(Protocol):
    """A configuration as a backend sees it: one attribute per knob (vocab.Knob.attr)."""

    ops: Ops

    def idt(self, field: str, vector): ...
    def tt(self, field: str, vector): ...


class ValueOps:
    """The Ops over Python values, less `decide` (the concrete backend adds it, with its trace).

    Conditions of spec facts are evaluated with these when a spec is loaded (pvsmt.lang.spec).
    """

    def all(self, *xs):
        return all(xs)

    def any(self, *xs):
        return any(xs)

    def not_(self, x):
        return not x

    def div(self, a, n):
        return a // n

    def mod(self, a, n):
        return a % n

    def ite(self, c, a, b):
        return a if c else b


def member(ops: Ops, x, values) -> Any:
    return ops.any(*(x == v for v in values))
