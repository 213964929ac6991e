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
from ..backends.encode import UNTRACKED, Encoding, Env, _is_py
from ..errors import ModelDisagreement
from ..backends.smt import Sat, Unknown, Unsat, check
from ..lang.parse import Invariant
from ..lang.spec import Fact, Spec, is_system
from ..model import RULES, Rule
from ..model.vocab import domain_of


@dataclass(frozen=True)
class Proof:
    """A proof decided on the tracked encoding: the uncertain rules it relies on, its minimal core."""

    relies_on: tuple
    facts: tuple[Fact, ...]


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
            return self._minimal(enc, solver, base, lits, answer.core)
        finally:
            solver.pop()

    def proof(self, inv: Invariant, spec: Spec, named: list, rules_free: tuple[str, ...]) -> Proof | None:
        """`inv` decided on the tracked encoding alone, when it is proved; else None.

        With every declaration's literal assumed the tracked encoding allows exactly what the
        folded one does, so the questions of `prove.Prover` have the same answers here: the
        assumptions can hold (with each instruction of `named`, prove.scope, if any); the property
        holds with the `rules_free` left free, or else with every uncertain rule as modelled
        (then: which rules it relies on).  The query that proves it is the first query of
        `core`, asked the same way, and its core is minimised as there.  None when the answer
        is anything else (vacuous, refuted, or the solver gave up anywhere): the caller then
        decides on the folded encoding, whose answers (and the reasons of an unknown) are the
        report's.
        """
        enc, solver = self._encoding(spec)
        env = Env(enc)
        lits = enc.facts_assumed()
        certain = enc.certain()
        solver.push()
        try:
            solver.add(*(enc.boolean(a.eval(env)) for a in inv.assumes))
            insn = enc.term("insn")
            if _is_py(insn):  # fixed by --set: an instruction named otherwise is never executed
                if any(value != insn for value in named):
                    return None
                named = []
            if not named and not isinstance(check(solver, *certain, *lits), Sat):
                return None
            for value in named:  # each a configuration where the assumptions hold
                if not isinstance(check(solver, *certain, *lits, insn == value), Sat):
                    return None
            solver.push()
            try:
                solver.add(z3.Not(enc.boolean(inv.prove.eval(env))))
                relies: list[Rule] = []
                base = enc.certain(*rules_free)
                answer = check(solver, *base, *lits)
                if isinstance(answer, Sat):
                    base = certain
                    answer = check(solver, *base, *lits)
                    if not isinstance(answer, Unsat):
                        return None
                    core = answer.core  # read before the solver is asked again
                    for rule in RULES.values():
                        if rule.uncertain and rule.name in enc.ops.used:
                            relied = check(solver, *enc.certain(rule.name), *lits)
                            if isinstance(relied, Unknown):
                                return None
                            if isinstance(relied, Sat):
                                relies.append(rule)
                elif isinstance(answer, Unsat):
                    core = answer.core
                else:
                    return None
                found = self._minimal(enc, solver, base, lits, core)
            finally:
                solver.pop()
        finally:
            solver.pop()
        return None if found.unknown else Proof(tuple(relies), found.facts)

    def _minimal(self, enc: Encoding, solver: z3.Solver, base: tuple, lits: list, core) -> Core:
        """Z3's core, minimised by deletion one literal at a time in file order (the same on every run)."""
        in_core = {c.get_id() for c in core}
        kept = [lit for lit in lits if lit.get_id() in in_core]
        for lit in list(kept):
            rest = [k for k in kept if not k.eq(lit)]
            answer = check(solver, *base, *rest)
            if isinstance(answer, Unknown):
                return Core(unknown=answer.reason)
            if isinstance(answer, Unsat):
                kept = rest
        by_lit = {lit.get_id(): fact for lit, fact in enc.tracked.values()}
        return Core(tuple(sorted((by_lit[lit.get_id()] for lit in kept), key=_order)))


def corresponding(facts, old: Spec, new: Spec) -> tuple[Fact, ...]:
    """`facts` of spec `old` as the facts at the same places of `new`, a spec with the same
    encode.spec_key (in `new`'s order)."""
    at = {id(f): i for i, f in enumerate(f for fs in old.facts.values() for f in fs)}
    flat = [f for fs in new.facts.values() for f in fs]
    return tuple(sorted((flat[at[id(f)]] for f in facts), key=_order))


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
