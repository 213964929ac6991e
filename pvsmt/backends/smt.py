"""The SMT seam: every solver call pvsmt makes goes through here.

A question to Z3 has three answers, as small dataclasses: `Sat(model)`,
`Unsat(core)` and `Unknown(reason)`.  Nothing outside this module compares
with `z3.sat`/`z3.unsat`: callers match on the answer's type, and an
`Unknown` is never read as a yes or a no.  Where a caller needs a plain
yes/no, `holds`/`possible` raise `GaveUp` on an unknown, so the caller must
say what an unknown means for its report (an `unknown` verdict, an incomplete
diff, a counterexample marked as not fully explained).

The solvers have a fixed seed and a deterministic work budget (`Limits`).
"""

from __future__ import annotations

from dataclasses import dataclass

import z3

from ..errors import PvsmtError


@dataclass(frozen=True)
class Limits:
    """Solver budget: rlimit is deterministic work, timeout is wall-clock (ms)."""

    rlimit: int = 50_000_000
    timeout_ms: int = 60_000
    seed: int = 0
    max_counterexamples: int = 1


class Sat:
    """Some assignment satisfies the constraints: `model` is one.

    The model is fetched from the solver when first read (building one has a cost, and
    changes nothing the caller asked for); read it before asking the solver again.
    """

    def __init__(self, model=None, solver=None):
        self._model, self._solver = model, solver

    @property
    def model(self):
        if self._model is None and self._solver is not None:
            self._model = self._solver.model()
        return self._model

    def __repr__(self) -> str:
        return "Sat()"


class Unsat:
    """No assignment does; `core` is a subset of the assumptions that is already contradictory
    (fetched from the solver when first read: read it before asking the solver again)."""

    def __init__(self, core: tuple = (), solver=None):
        self._core, self._solver = tuple(core), solver

    @property
    def core(self) -> tuple:
        if self._solver is not None:
            self._core, self._solver = tuple(self._solver.unsat_core()), None
        return self._core

    def __repr__(self) -> str:
        return "Unsat()"


@dataclass(frozen=True)
class Unknown:
    """The solver gave up: `reason` says why (a resource limit, a timeout, ...)."""

    reason: str


Answer = Sat | Unsat | Unknown


class GaveUp(PvsmtError):
    """A question that needed a yes or a no got `unknown`; `reason` is the solver's."""

    def __init__(self, reason: str, what: str = ""):
        super().__init__(f"{what}: {reason}" if what else reason)
        self.reason = reason
        self.what = what

    def __reduce__(self):  # pickled as constructed (a worker process sends it to the parent)
        return type(self), (self.reason, self.what)


def new_solver(limits: Limits, ctx: z3.Context) -> z3.Solver:
    s = z3.SolverFor("QF_UFLIA", ctx=ctx)
    s.set("random_seed", limits.seed)
    if limits.rlimit:
        s.set("rlimit", limits.rlimit)
    if limits.timeout_ms:
        s.set("timeout", limits.timeout_ms)
    return s


def check(solver, *assumptions) -> Answer:
    """Ask `solver` (a z3.Solver or z3.Optimize) under `assumptions`; the one place that reads z3's answer."""
    answer = _check_boolean(solver, assumptions) if assumptions else solver.check()
    if answer == z3.sat:
        return Sat(solver=solver)
    if answer == z3.unsat:
        return Unsat(solver=solver if assumptions and isinstance(solver, z3.Solver) else None)
    return Unknown(solver.reason_unknown() or "unknown")


def _check_boolean(solver, assumptions: tuple):
    """solver.check(*assumptions), without the Python API's conversion of every assumption (a
    dozen calls into Z3 each: about a tenth of a query's time in a cold prove, profiled): pvsmt's assumptions are Boolean terms of
    the solver's own context already.  Anything else goes through the API as usual."""
    ctx = solver.ctx
    if not isinstance(solver, z3.Solver) or not all(type(a) is z3.BoolRef and a.ctx is ctx for a in assumptions):
        return solver.check(*assumptions)
    array = (z3.Ast * len(assumptions))(*(a.ast for a in assumptions))
    return z3.CheckSatResult(z3.Z3_solver_check_assumptions(ctx.ref(), solver.solver, len(assumptions), array))


def optimize(ctx: z3.Context, limits: Limits, hard, soft) -> Answer:
    """A model of `hard` satisfying as many of the `soft` constraints as possible (MaxSMT)."""
    opt = z3.Optimize(ctx=ctx)
    opt.set("timeout", limits.timeout_ms or 60_000)
    if limits.rlimit:
        opt.set("rlimit", limits.rlimit)  # deterministic work: the same model on every run
    opt.add(*hard)
    for s in soft:
        opt.add_soft(s)
    return check(opt)


def possible(answer: Answer, what: str = "") -> bool:
    """Sat: True, Unsat: False, Unknown: GaveUp."""
    if isinstance(answer, Unknown):
        raise GaveUp(answer.reason, what)
    return isinstance(answer, Sat)


def holds(answer: Answer, what: str = "") -> bool:
    """Read a check of a negation: Unsat (nothing contradicts it) is True, Sat False, Unknown GaveUp."""
    return not possible(answer, what)


def why(reason: str, limits: Limits) -> str:
    """Z3's reason for `unknown`, naming the limits behind a cancellation."""
    if reason in ("canceled", "timeout") or "limit" in reason:
        reason += (f" (the resource limit --rlimit {limits.rlimit} or the timeout "
                   f"--timeout {limits.timeout_ms / 1000:g}s was reached)")
    return reason


__all__ = ["Answer", "GaveUp", "Limits", "Sat", "Unknown", "Unsat", "check", "holds", "new_solver", "optimize",
           "possible", "why"]
