"""The roles of a counterexample's names: plain data, shared by the solver side and the reports."""

from __future__ import annotations

from dataclasses import dataclass

from ..model.vocab import TABLE, Domain, domain_of


@dataclass(frozen=True)
class Role:
    """One name of a counterexample: its value, and the values that still violate.

    `violating` is None when every value the spec allows (with the other names as
    shown) still violates: the name does not matter ("any"), unless it is
    `determined` (it can take no other value).  `exact` is False when the set was
    narrowed to an interval or a solver query gave up.
    """

    name: str          # `vector`, `tt[vector].dpl`, `tt.0x0d.present`
    value: object
    domain: Domain
    violating: tuple | None = None
    exact: bool = True
    determined: bool = False   # no other value is possible: the assumptions or the rest fix it

    @property
    def matters(self) -> bool:
        return self.violating is not None

    @property
    def free(self) -> bool:
        """Any value still violates, and there is more than one."""
        return self.violating is None and not self.determined


def key_of(name: str, vector) -> str:
    """A counterexample name as an analysis key: the trap-table entry at the vector moves with it."""
    head, _, rest = name.partition(".")
    if head == "tt" and vector is not None:
        index, _, fld = rest.partition(".")
        if int(index, 0) == vector:
            return f"tt[vector].{fld}"
    return name


def key_domain(key: str) -> Domain:
    if key.startswith("tt[vector]."):
        return TABLE["tt"].fields[key.rsplit(".", 1)[1]]
    return domain_of(key)
