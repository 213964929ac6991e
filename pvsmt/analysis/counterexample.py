"""Explaining a counterexample: which of its knobs matter, and which values still violate.

A counterexample fixes every name its path and the invariant read.  For each
such name in turn, the others are held at the counterexample's values and the
solver is asked whether some value the spec allows for it makes the property
hold.  If none does, the name does not matter: any value still violates.  If
some do, the name matters, and its values that still violate are listed.  A
trap-table entry read at the vector (`tt[vector].dpl`) moves with the vector.

The questions are asked in the Prover's solver scope, where the spec, the
invariant's assumptions and `violated` (the negated property) are posed.
"""

from __future__ import annotations

import z3

from ..backends.concrete import Config
from ..backends.encode import Encoding, _is_py, _z3
from .roles import Role, key_domain, key_of
from ..backends.smt import GaveUp, Sat, Unknown, Unsat, check, holds, possible

#: Beyond this many values a name's violating set is not enumerated value by value:
#: it is the widest interval around the counterexample's value that still violates.
MAX_ENUMERATED = 300


class Explainer:
    """Asks the questions of one counterexample in a posed solver scope."""

    def __init__(self, enc: Encoding, solver: z3.Solver, violated, base: tuple):
        self.enc = enc
        self.solver = solver
        self.violated = violated
        self.base = tuple(base)  # the assumptions every query makes (uncertain rules' switches)
        self.unknown: list[str] = []  # the names whose role a query left unknown (reset by roles())

    def term(self, key: str):
        if key.startswith("tt[vector]."):
            fld = key.rsplit(".", 1)[1]
            return self.enc.state.tables[("tt", fld)](self.enc.term("vector"))
        return self.enc.term(key)

    def keys(self, config: Config, names) -> list[str]:
        """The names worth explaining: not constants of the spec, not derived (`cpl` with guests)."""
        vector = config.get("vector") if "vector" in names else None
        out: list[str] = []
        for name in names:
            key = key_of(name, vector)
            if key in out or (key == "cpl" and self.enc.guests) or _is_py(self.term(key)):
                continue
            out.append(key)
        return out

    def pin(self, key: str, value):
        return self.term(key) == _z3(value, self.enc.ctx)

    def roles(self, config: Config, names) -> tuple[tuple[Role, ...], list[str]]:
        """Each name's role, and the names for which the solver gave up (their roles are then
        marked inexact, never read as "any" or as an exact set)."""
        self.unknown = []
        keys = self.keys(config, names)
        values = {k: self._value(config, k) for k in keys}
        pins = {k: self.pin(k, values[k]) for k in keys}
        roles = tuple(self._role(k, values[k], [p for j, p in pins.items() if j != k]) for k in keys)
        return roles, list(dict.fromkeys(self.unknown))

    @staticmethod
    def _value(config: Config, key: str):
        if key.startswith("tt[vector]."):
            return config.get(f"tt.{config.get('vector'):#04x}.{key.rsplit('.', 1)[1]}")
        return config.get(key)

    def _check(self, *conds):
        return check(self.solver, *self.base, *conds)

    def _role(self, key: str, value, others: list) -> Role:
        domain = key_domain(key)
        term = self.term(key)
        answer = self._check(*others, z3.Not(self.violated))
        if isinstance(answer, Unsat):
            alone = self._check(*others, z3.Not(self.pin(key, value)))
            if isinstance(alone, Unknown):
                self.unknown.append(key)  # "any" stands (nothing else holds); "determined" is not known
            return Role(key, value, domain, determined=isinstance(alone, Unsat))
        if isinstance(answer, Unknown):
            self.unknown.append(key)
            return Role(key, value, domain, (value,), exact=False)
        if len(domain.values()) <= 16:
            return self._by_value(key, value, domain, term, others)
        return self._by_blocking(key, value, domain, term, others)

    def _violates(self, others, cond) -> bool | None:
        """Does every configuration with `cond` (and the others as shown) violate, and is there one?
        None when the solver gives up on either question."""
        try:
            return possible(self._check(*others, cond)) and holds(self._check(*others, cond, z3.Not(self.violated)))
        except GaveUp:
            return None

    def _by_value(self, key, value, domain, term, others) -> Role:
        violating, exact = [], True
        for v in domain.values():
            ok = self._violates(others, term == _z3(v, self.enc.ctx))
            exact &= ok is not None
            if ok or v == value:
                violating.append(v)
        if not exact:
            self.unknown.append(key)
        return Role(key, value, domain, tuple(violating), exact)

    def _by_blocking(self, key, value, domain, term, others) -> Role:
        """Wide names (the vector, a selector index): the values some configuration has, less
        those where the property can hold, each found by blocking the ones found before."""
        possible = self._enumerate(key, term, others)
        holding = self._enumerate(key, term, [*others, z3.Not(self.violated)]) if possible is not None else None
        if possible is None or holding is None:
            return self._interval(key, value, domain, term, others)  # inexact: shown "(at least)"
        return Role(key, value, domain, tuple(sorted((possible - holding) | {value})))

    def _enumerate(self, key, term, conds) -> set[int] | None:
        found: set[int] = set()
        self.solver.push()
        try:
            while len(found) <= MAX_ENUMERATED:
                answer = self._check(*conds)
                if isinstance(answer, Unknown):
                    self.unknown.append(key)
                if not isinstance(answer, Sat):
                    return found if isinstance(answer, Unsat) else None
                value = answer.model.eval(term, model_completion=True).as_long()
                found.add(value)
                self.solver.add(term != value)
            return None
        finally:
            self.solver.pop()

    def _interval(self, key, value, domain, term, others) -> Role:
        def still(lo, hi):
            answer = self._check(*others, term >= lo, term <= hi, z3.Not(self.violated))
            if isinstance(answer, Unknown):
                self.unknown.append(key)  # the interval stays narrower than it may be: "(at least)"
            return isinstance(answer, Unsat)
        hi = largest(value, domain.hi, lambda h: still(value, h))
        lo = domain.hi - largest(domain.hi - value, domain.hi, lambda x: still(domain.hi - x, hi))
        return Role(key, value, domain, tuple(range(lo, hi + 1)), exact=False)

    def block(self, roles: tuple[Role, ...]):
        """The condition that a configuration lies in the counterexample's explained class."""
        parts = [z3.Or(*[self.term(r.name) == _z3(v, self.enc.ctx) for v in r.violating])
                 for r in roles if r.matters]
        return z3.And(*parts) if parts else z3.BoolVal(True, self.enc.ctx)


def largest(lo: int, hi: int, ok) -> int:
    """The largest x in lo..hi with ok(x), given ok(lo) and ok monotone decreasing."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def changed(config: Config, defaults: dict[str, object], names) -> tuple[str, ...]:
    """The names whose value differs from the spec's default (what the counterexample changed)."""
    return tuple(n for n in names if n in defaults and config.get(n) != defaults[n])


__all__ = ["Explainer", "Role", "changed", "largest"]
