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

from pvsmt.concrete import Evaluation
from pvsmt.encode import Encoding
from pvsmt.lang.parse import SpecLoader
from pvsmt.spec import is_system
from pvsmt.vocab import GUEST_FIELDS, HW_FIELDS, KNOB, KNOBS

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
    """One encoding and one incremental solver; each check runs in its own push/pop scope."""

    def __init__(self, spec_obj, overrides: dict | None = None):
        self.enc = Encoding(spec_obj, overrides)
        self.ctx = self.enc.ctx
        self.solver = z3.Solver(ctx=self.ctx)
        self.solver.set("random_seed", 0)
        self.solver.add(*self.enc.constraints())

    def outcome_terms(self, evaluation: Evaluation):
        pairs = [(f"hw.{f}", getattr(self.enc.hw, f), getattr(evaluation.hw, f)) for f in HW_FIELDS]
        if self.enc.guests:
            assert evaluation.guest is not None
            pairs += [(f"guest.{f}", getattr(self.enc.guest, f), getattr(evaluation.guest, f))
                      for f in GUEST_FIELDS]
        return pairs

    def disagreement(self, config, evaluation: Evaluation, names) -> str | None:
        """None when Z3 agrees; otherwise a sentence saying how it does not."""
        s = self.solver
        s.push()
        try:
            for name in names:
                s.add(same(self.enc.term(name), config.get(name), self.ctx))
            answer = s.check()
            if answer != z3.sat:
                return f"Z3 says the configuration is impossible ({answer}); fixed: {sorted(names)}"
            pairs = self.outcome_terms(evaluation)
            s.add(z3.Or([z3.Not(same(t, v, self.ctx)) for _, t, v in pairs] + [z3.BoolVal(False, self.ctx)]))
            answer = s.check()
            if answer == z3.unsat:
                return None
            if answer != z3.sat:
                return f"Z3 answered {answer}"
            model = s.model()
            wrong = [f"{n}: concrete {show(v)}, z3 {model.eval(same_term(t, self.ctx), model_completion=True)}"
                     for n, t, v in pairs
                     if z3.is_false(model.eval(same(t, v, self.ctx), model_completion=True))]
            return "outcome differs: " + "; ".join(wrong)
        finally:
            s.pop()


def overrides_for(settings: dict) -> dict:
    """The settings that replace spec facts in an Encoding (system knobs and IDT entries)."""
    return {n: v for n, v in settings.items() if is_system(n)}


def knob_names() -> list[str]:
    return [k.name for k in KNOBS]


__all__ = ["Checker", "KNOB", "LOADER", "ROOT", "overrides_for", "spec"]
