"""Specs: what a system (Xen build and boot options, or the bare CPU) fixes.

A spec is a set of facts, each a restriction of one knob or table entry to a
set of values, optionally under a `when` condition, with its citation.  What a
spec leaves unset is free.  Defaults give `pvsmt explain` a value for every
knob the user does not set.  Specs are read from `.spec` files (lang/parse.py).

The meaning of facts, defined here once (`Spec.add`, `Spec.allowed`) and used by the
Z3 encoding (backends/encode.py), the concrete resolver (backends/configure.py) and `explain`:

- A name's facts conjoin: in a configuration, the name takes a value that every
  fact whose `when` holds allows (the intersection of their values).
- An unconditional fact (`set` without `when`, a table line, a `--set` of a system
  name) first discards every earlier fact for the name, the parent spec's included:
  that is how a spec changes an inherited fact.
- Two facts for one name that can hold together and allow no common value
  contradict each other: an error at load time, at the later one's line.  (A child
  changes a conditional fact by restating the name: an unconditional `set` first,
  then its conditional facts.)
- Defaults follow the same rule among themselves (the last whose `when` holds
  wins), must lie within what the facts allow, and must give every name the facts
  leave open a value (spec_check.check_defaults).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from ..errors import InputError, Location
from ..model.rules import ValueOps
from ..model.vocab import KNOB, Delivery, Guest


@dataclass(frozen=True)
class Fact:
    """`name` takes one of `values` (whenever `when` holds)."""

    name: str                    # knob (`efer.sce`) or table entry (`idt.0x03.dpl`)
    values: tuple
    where: Location
    when: object = None          # an expression (lang.expr.Expr) over knobs, or None
    cite: tuple[str, ...] = ()
    uncertain: str = ""
    statement: str = ""          # the declaration as written (`idt 0x03 dpl=3`), naming the fact

    @property
    def ref(self) -> str:
        """The declaration's name in reports: `xen.spec:36`; one declaration may give many Facts."""
        if self.where is None:
            return "--set"
        return f"{self.where.path.rsplit('/', 1)[-1]}:{self.where.line}"


@dataclass
class Spec:
    name: str
    title: str
    path: str
    facts: dict[str, list[Fact]] = field(default_factory=dict)
    defaults: dict[str, list[Fact]] = field(default_factory=dict)
    parents: tuple[str, ...] = ()

    @property
    def guests(self) -> tuple[Guest, ...]:
        """The PV guest kinds this system runs (none: no Xen guest layer)."""
        facts = self.facts.get("guest")
        if not facts:
            return tuple(Guest)
        return tuple(v for v in Guest if all(v in f.values for f in facts if f.when is None))

    @property
    def delivery(self) -> Delivery:
        return self.fixed("delivery") or Delivery.IDT

    @property
    def has_guests(self) -> bool:
        return bool(self.guests)

    def fixed(self, name: str):
        """The value an unconditional single-valued fact gives `name`, else None."""
        for f in self.facts.get(name, ()):
            if f.when is None and len(f.values) == 1:
                return f.values[0]
        return None

    def add(self, fact: Fact, *, default: bool = False) -> None:
        """Add a fact; an unconditional one replaces every earlier fact for its name, and one that
        contradicts an earlier fact where both hold is an error at its own line."""
        book = self.defaults if default else self.facts
        if fact.when is None:
            book[fact.name] = [fact]
            return
        if not default:
            for earlier in book.get(fact.name, ()):
                both = overlap(earlier, fact)
                if both is not None and not set(earlier.values) & set(fact.values):
                    raise InputError(fact.where, f"`{fact.statement or fact.name}` contradicts "
                                                 f"`{earlier.statement or earlier.name}` ({earlier.ref}) where both "
                                                 f"hold ({both}): no value of {fact.name} satisfies both.  To change "
                                                 f"an inherited fact, restate {fact.name} with an unconditional "
                                                 f"`set`, which replaces every earlier fact for it")
        book.setdefault(fact.name, []).append(fact)

    def allowed(self, name: str, holds) -> tuple | None:
        """The values `name` may take where `holds(fact)` says which conditions hold: the
        intersection of the holding facts' values (None when no fact holds: any value)."""
        out = None
        for f in self.facts.get(name, ()):
            if holds(f):
                out = tuple(v for v in f.values if out is None or v in out)
        return out


#: Beyond this many assignments to the names two conditions read, they are assumed to overlap.
MAX_OVERLAP_CHECK = 1 << 16


class _KnobValues:
    """What a condition over knobs reads, from a dict of their values (no tables, no outcomes)."""

    ops = ValueOps()

    def __init__(self, values: dict):
        self.values = values

    def knob(self, name: str):
        return self.values[name]


def overlap(a: Fact, b: Fact) -> str | None:
    """An assignment (as text) under which both facts' conditions hold, or None if none does.

    Checked by enumerating the names the conditions read (knobs only; a condition
    reading a table is assumed to overlap).  Axioms are not consulted: conditions
    that could only meet in an impossible configuration still count as overlapping.
    """
    conds = [f.when for f in (a, b) if f.when is not None]
    names = sorted(set().union(*(c.names() for c in conds))) if conds else []
    if not names:
        return "always"
    if any(n not in KNOB for n in names):
        return "possibly"
    domains = [KNOB[n].domain.values() for n in names]
    size = 1
    for d in domains:
        size *= len(d)
    if size > MAX_OVERLAP_CHECK:
        return "possibly"
    for combo in itertools.product(*domains):
        values = dict(zip(names, combo))
        if all(bool(c.eval(_KnobValues(values))) for c in conds):
            return " and ".join(f"{n} == {KNOB[n].domain.format(v)}" for n, v in values.items())
    return None


def is_system(name: str) -> bool:
    """System facts (IDT, MSRs, Xen's audit) may be overridden with --set."""
    if name in KNOB:
        return KNOB[name].system
    return name.split(".", 1)[0] == "idt"
