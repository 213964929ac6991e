"""The concrete evaluator: one fully concrete configuration, plain Python, no Z3.

It runs the same model functions as the Z3 encoding (pvsmt.model) with Python
values, and records the path: every rule taken, with its citation.  It is how
`pvsmt explain` answers, and how every counterexample Z3 finds is replayed.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Callable

from ..model import AXIOMS, GUEST_AXIOMS, GuestOutcome, HwOutcome, cpu_event, xen_event
from ..model.axioms import Axiom
from ..model.rules import Case, Rule, ValueOps
from ..model.vocab import KNOBS, NONE, TABLE, Label


class _Formatter(string.Formatter):
    """Formats trace facts: `none` for absent values, 0/1 for booleans."""

    def format_field(self, value, spec):
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, int) and not isinstance(value, Label) and value == NONE:
            return "none"
        return super().format_field(value, spec)


_FORMAT = _Formatter()


@dataclass(frozen=True)
class Step:
    """One rule on the path, with its sentence filled in."""

    rule: Rule
    text: str


class ConcreteOps(ValueOps):
    """The Ops of pvsmt.model.rules over Python values; `decide` records the trace."""

    def __init__(self, trace: list[Step]):
        self.trace = trace

    def decide(self, *cases: Case):
        for c in cases:
            if c.when:
                self.trace.append(Step(c.rule, _FORMAT.format(c.rule.says, **c.facts)))
                return c.then()
        raise AssertionError(f"no case holds after {cases[-1].rule.name}")


@dataclass
class Config:
    """One concrete configuration: knob and table-entry names to values.

    `fill` supplies a table entry (`idt.0x21.dpl`) the first time it is read,
    for configurations read lazily out of a Z3 model.
    """

    values: dict[str, object]
    fill: Callable[[str], object] | None = None

    def get(self, name: str):
        if name not in self.values:
            if self.fill is None:
                raise KeyError(name)
            self.values[name] = self.fill(name)
        return self.values[name]


_ATTR = {k.attr: k.name for k in KNOBS}


class ConcreteState:
    """A Config seen as a model State; remembers which names were read."""

    def __init__(self, config: Config, ops: ConcreteOps):
        self.ops = ops
        self._config = config
        self.reads: list[str] = []

    def _read(self, name: str):
        if name not in self.reads:
            self.reads.append(name)
        return self._config.get(name)

    def __getattr__(self, attr: str):
        try:
            return self._read(_ATTR[attr])
        except KeyError:
            raise AttributeError(attr) from None

    def idt(self, field: str, vector: int):
        return self._read(TABLE["idt"].knob_name(vector, field))

    def tt(self, field: str, vector: int):
        return self._read(TABLE["tt"].knob_name(vector, field))


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one configuration at both layers, and the path to it."""

    hw: HwOutcome
    guest: GuestOutcome | None
    trace: tuple[Step, ...]
    reads: tuple[str, ...] = field(default=())


def evaluate(config: Config, guests: bool = True) -> Evaluation:
    """Run the CPU and, where the spec has PV guests, Xen on one configuration."""
    trace: list[Step] = []
    state = ConcreteState(config, ConcreteOps(trace))
    hw = cpu_event(state)
    guest = xen_event(state, hw) if guests else None
    return Evaluation(hw, guest, tuple(trace), tuple(state.reads))


def broken_axioms(config: Config, guests: bool = True) -> list[Axiom]:
    """The axioms this configuration breaks (an empty list when it is well formed)."""
    axioms = AXIOMS + (GUEST_AXIOMS if guests else ())
    state = ConcreteState(config, ConcreteOps([]))
    return [a for a in axioms if not a.holds(state)]


class ConcreteEnv:
    """What an expression (lang.expr) reads, over one configuration and its evaluation."""

    def __init__(self, config: Config, evaluation: Evaluation | None = None):
        self.ops = ConcreteOps([])
        self.config = config
        self.evaluation = evaluation
        self.reads: list[str] = []  # knobs and table entries the expressions read

    def _read(self, name: str):
        if name not in self.reads:
            self.reads.append(name)
        return self.config.get(name)

    def knob(self, name: str):
        return self._read(name)

    def table(self, table: str, field: str, index: int):
        if not 0 <= index <= 255:
            return TABLE[table].fields[field].values()[0]  # outside the table: any value will do
        return self._read(TABLE[table].knob_name(index, field))

    def outcome(self, layer: str, field: str):
        record = self.evaluation.hw if layer == "hw" else self.evaluation.guest
        return getattr(record, field)
