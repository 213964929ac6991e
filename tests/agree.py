"""Shared helper: does the Z3 encoding agree with the concrete evaluator on one configuration?

For a configuration the concrete evaluator has run, assert the encoding's constraints
and `term == value` for the chosen names (knobs and table entries), then ask Z3
(a) whether that is satisfiable and (b) whether any outcome field can differ from
the concrete outcome.  (b) unsat means every outcome field is forced, and forced
to the concrete value.  Names left out stay free, so (b) also shows the outcome
does not depend on them.
"""

from __future__ import annotations

from pathlib import Path

import z3

from pvsmt.backends.concrete import Evaluation
from pvsmt.backends.encode import Encoding
from pvsmt.lang.parse import SpecLoader
from pvsmt.lang.spec import is_system
from pvsmt.model.vocab import GUEST_FIELDS, HW_FIELDS

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
LOADER = SpecLoader()


def spec(name: str):
    return LOADER.load(SPECS / f"{name}.spec")


def z3_value(value, ctx: z3.Context):
    """A concrete value (bool, int or IntEnum) as a Z3 constant."""
    if isinstance(value, bool):
        return z3.BoolVal(value, ctx)
    return z3.IntVal(int(value), ctx)


def same(term, value, ctx: z3.Context):
    """`term == value` as a Z3 Bool; `term` may be a Python constant the encoding folded."""
    if isinstance(term, (bool, int)):
        ok = (isinstance(term, bool) == isinstance(value, bool)) and int(term) == int(value)
        return z3.BoolVal(ok, ctx)
    return term == z3_value(value, ctx)


def same_term(term, ctx: z3.Context):
    """An outcome term as a Z3 term (folded Python constants included)."""
    return z3_value(term, ctx) if isinstance(term, (bool, int)) else term


def show(value) -> str:
    return getattr(value, "label", None) or str(value)


class Checker:
    """One encoding and one incremental solver; each check runs in its own push/pop scope.

    Equalities are built once per (name, value) and the "some field differs"
    disjunction once per outcome: building Z3 terms from Python costs far more
    than the solver's work on these small problems.
    """

    def __init__(self, spec_obj, overrides: dict | None = None):
        self.enc = Encoding(spec_obj, overrides)
        self.ctx = self.enc.ctx
        self.solver = z3.SolverFor("QF_UFLIA", ctx=self.ctx)
        self.solver.set("random_seed", 0)
        self.solver.add(*self.enc.constraints(), *self.enc.certain())  # uncertain rules as modelled
        self.fields = [(f"hw.{f}", getattr(self.enc.hw, f)) for f in HW_FIELDS]
        if self.enc.guests:
            self.fields += [(f"guest.{f}", getattr(self.enc.guest, f)) for f in GUEST_FIELDS]
            self.fields.append(("guest.unspecified", self.enc.guest.unspecified))  # the document's silences
        self._eq: dict = {}
        self._differs: dict = {}

    def fixed(self, name: str, value):
        """The constraint `name == value` (a knob or a table entry)."""
        key = (name, isinstance(value, bool), int(value))
        if key not in self._eq:
            self._eq[key] = same(self.enc.term(name), value, self.ctx)
        return self._eq[key]

    def outcome(self, evaluation: Evaluation) -> list:
        values = [getattr(evaluation.hw, f) for f in HW_FIELDS]
        if self.enc.guests:
            assert evaluation.guest is not None
            values += [getattr(evaluation.guest, f) for f in GUEST_FIELDS]
            values.append(evaluation.guest.unspecified)
        return values

    def differs(self, values: list):
        """Some outcome field differs from `values`."""
        key = tuple((isinstance(v, bool), int(v)) for v in values)
        if key not in self._differs:
            self._differs[key] = z3.Or([z3.Not(same(t, v, self.ctx)) for (_, t), v in zip(self.fields, values)])
        return self._differs[key]

    def disagreement(self, config, evaluation: Evaluation, names) -> str | None:
        """None when Z3 agrees; otherwise a sentence saying how it does not."""
        s = self.solver
        s.push()
        try:
            s.add(*[self.fixed(n, config.get(n)) for n in names])
            answer = s.check()
            if answer != z3.sat:
                return f"Z3 says the configuration is impossible ({answer}); fixed: {sorted(names)}"
            values = self.outcome(evaluation)
            s.add(self.differs(values))
            answer = s.check()
            if answer == z3.unsat:
                return None
            if answer != z3.sat:
                return f"Z3 answered {answer}"
            model = s.model()
            wrong = [f"{n}: concrete {show(v)}, z3 {model.eval(same_term(t, self.ctx), model_completion=True)}"
                     for (n, t), v in zip(self.fields, values)
                     if z3.is_false(model.eval(same(t, v, self.ctx), model_completion=True))]
            return "outcome differs: " + "; ".join(wrong)
        finally:
            s.pop()


def overrides_for(settings: dict) -> dict:
    """The settings that replace spec facts in an Encoding (system knobs and IDT entries)."""
    return {n: v for n, v in settings.items() if is_system(n)}


__all__ = ["Checker", "LOADER", "ROOT", "overrides_for", "spec"]
