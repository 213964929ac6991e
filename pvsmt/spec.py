"""Specs: what a system (Xen build and boot options, or the bare CPU) fixes.

A spec is a set of facts, each a restriction of one knob or table entry to a
set of values, optionally under a `when` condition, with its citation.  What a
spec leaves unset is free.  Defaults give `pvsmt explain` a value for every
knob the user does not set.  Specs are read from `.spec` files (lang/parse.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Location
from .vocab import KNOB, Delivery, Guest


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
        """Add a fact; an unconditional one replaces every earlier fact for its name."""
        book = self.defaults if default else self.facts
        if fact.when is None:
            book[fact.name] = [fact]
        else:
            book.setdefault(fact.name, []).append(fact)


def is_system(name: str) -> bool:
    """System facts (IDT, MSRs, Xen's audit) may be overridden with --set."""
    if name in KNOB:
        return KNOB[name].system
    return name.split(".", 1)[0] == "idt"
