"""Provenance: which spec declarations a verdict rests on.

A spec declaration (`idt 0x03 dpl=3`, `set efer.sce = 1`) is a named fact with
its citations: its name is where it is written (`xen.spec:32`).  For a proof,
the facts it relies on are a minimal unsat core over one literal per
declaration, taken in a second, *tracked* encoding of the spec where no
declaration is folded into a constant (encode.Encoding(tracked=True)).  For a
counterexample, the facts are those that gave a value to a name its path read.
"""

from __future__ import annotations

from dataclasses import dataclass

import z3

from ..backends.concrete import Config, ConcreteEnv
from ..backends.encode import UNTRACKED, Encoding, Env
from ..errors import ModelDisagreement
from ..backends.smt import Sat, Unknown, Unsat, check
from ..lang.parse import Invariant
from ..lang.spec import Fact, Spec, is_system
from ..model.vocab import domain_of


@dataclass(frozen=True)
class Core:
    """The declarations a proof needs (minimal: none can be dropped), or why it is not known."""

    facts: tuple[Fact, ...] = ()
    unknown: str = ""


class Tracker:
    """Unsat cores over a spec's declarations; one tracked encoding and solver per spec."""

    def __init__(self, new_solver, overrides: dict[str, object], ctx: z3.Context):
        self.new_solver = new_solver   # (ctx) -> a solver with the run's limits
        self.overrides = overrides
        self.ctx = ctx
        self._specs: dict[str, tuple[Encoding, z3.Solver]] = {}

    def _encoding(self, spec: Spec) -> tuple[Encoding, z3.Solver]:
        if spec.path not in self._specs:
            enc = Encoding(spec, self.overrides, self.ctx, tracked=True)
            solver = self.new_solver(self.ctx)
            solver.add(enc.formula)
            self._specs[spec.path] = (enc, solver)
        return self._specs[spec.path]

    def core(self, inv: Invariant, spec: Spec, rules_free: tuple[str, ...] = ()) -> Core:
        """The declarations without which `inv` would not be proved against `spec`.

        `rules_free` names UNCERTAIN rules whose outcome the proof leaves free (it
        holds whatever they do); the others take their modelled outcome.
        """
        enc, solver = self._encoding(spec)
        env = Env(enc)
        solver.push()
        try:
            solver.add(*(enc.boolean(a.eval(env)) for a in inv.assumes))
            solver.add(z3.Not(enc.boolean(inv.prove.eval(env))))
            base = enc.certain(*rules_free)
            lits = enc.facts_assumed()
            answer = check(solver, *base, *lits)
            if isinstance(answer, Unknown):
                return Core(unknown=answer.reason)
            if isinstance(answer, Sat):
                raise ModelDisagreement(f"{inv.name} against {spec.name}: proved on the folded encoding, but the "
                                        f"tracked encoding (every declaration assumed) has a counterexample")
            in_core = {c.get_id() for c in answer.core}
            kept = [lit for lit in lits if lit.get_id() in in_core]
            for lit in list(kept):  # deletion: a minimal core, the same on every run
                rest = [k for k in kept if not k.eq(lit)]
                answer = check(solver, *base, *rest)
                if isinstance(answer, Unknown):
                    return Core(unknown=answer.reason)
                if isinstance(answer, Unsat):
                    kept = rest
        finally:
            solver.pop()
        by_lit = {lit.get_id(): fact for lit, fact in enc.tracked.values()}
        return Core(tuple(sorted((by_lit[lit.get_id()] for lit in kept), key=_order)))


def declarations(spec: Spec) -> list[Fact]:
    """One Fact per declaration of the spec (the first row of each), in file order.

    Left out: what chooses the model rather than states a fact about the system
    (`abi`, encode.UNTRACKED) and `set guest = none` (no guest layer at all).
    """
    seen: dict[str, Fact] = {}
    for facts in spec.facts.values():
        for fact in facts:
            if fact.name in UNTRACKED or (fact.name == "guest" and not fact.values):
                continue
            seen.setdefault(fact.ref, fact)
    return sorted(seen.values(), key=_order)


def _order(fact: Fact) -> tuple:
    return (fact.where.path, fact.where.line) if fact.where is not None else ("", 0)


def path_facts(spec: Spec, config: Config, reads, overrides: dict | None = None) -> tuple[Fact, ...]:
    """The declarations that gave a value to a name the path read (their `when` holding).
    A --set of a system fact replaces the spec's facts for that name: it is listed as a
    fact of its own (`--set idt.0x04.dpl=0`), after the spec's."""
    env = ConcreteEnv(config)
    out: dict[str, Fact] = {}
    overrides = overrides or {}
    set_facts = [override_fact(n, overrides[n]) for n in dict.fromkeys(reads) if n in overrides]
    for name in reads:
        if name in overrides and is_system(name):
            continue
        for fact in spec.facts.get(name, ()):
            if fact.where is not None and (fact.when is None or fact.when.eval(env)):
                out.setdefault(fact.ref, fact)
    return tuple(sorted(out.values(), key=_order)) + tuple(set_facts)


def override_fact(name: str, value) -> Fact:
    """A --set NAME=VALUE as a fact of its own (no file: its ref is `--set`)."""
    return Fact(name, (value,), where=None, statement=f"--set {name}={domain_of(name).format(value)}")


def unused(spec: Spec, used_refs: set[str]) -> list[Fact]:
    """The spec's declarations that no verdict relied on."""
    return [f for f in declarations(spec) if f.ref not in used_refs]
