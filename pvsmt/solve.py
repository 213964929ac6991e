"""Verdicts: proving an invariant against a spec with Z3, and replaying counterexamples.

For each (invariant, spec) pair a fresh solver with a fixed seed answers two
questions: can the assumptions hold at all (else: vacuous), and can they hold
with the property false (else: proved).  A model is turned into a concrete
configuration and replayed through the concrete evaluator before it is shown;
a proof is re-checked with each reachable UNCERTAIN rule's outcome left free,
to say which uncertain facts it relies on.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

import z3

from .concrete import ConcreteEnv, Config, Evaluation, evaluate
from .encode import Encoding, Env, value_of
from .errors import ModelDisagreement, PvsmtError
from .lang.parse import Invariant
from .model import RULES, Rule
from .spec import Spec
from .vocab import KNOBS, Abi, domain_of


class Verdict(Enum):
    """The closed set of answers, with their exit status; only PROVED is success."""

    PROVED = ("proved", 0)
    REFUTED = ("refuted", 1)
    ERROR = ("error", 2)
    UNKNOWN = ("unknown", 3)
    VACUOUS = ("vacuous", 4)

    @property
    def label(self) -> str:
        return self.value[0]

    @property
    def exit_code(self) -> int:
        return self.value[1]


#: Worst first: the exit status of a run is that of its worst verdict.
SEVERITY = (Verdict.ERROR, Verdict.REFUTED, Verdict.UNKNOWN, Verdict.VACUOUS, Verdict.PROVED)


def exit_code(verdicts) -> int:
    present = set(verdicts)
    return next((v.exit_code for v in SEVERITY if v in present), 0)


@dataclass(frozen=True)
class Counterexample:
    config: Config
    evaluation: Evaluation
    inv_reads: tuple[str, ...] = ()  # names the invariant's expressions read

    @property
    def uncertain(self) -> tuple[Rule, ...]:
        return tuple(dict.fromkeys(s.rule for s in self.evaluation.trace if s.rule.uncertain))


@dataclass(frozen=True)
class Result:
    invariant: Invariant
    spec: Spec
    verdict: Verdict
    seconds: float
    counterexample: Counterexample | None = None
    reason: str = ""
    relies_on: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Limits:
    """Solver budget: rlimit is deterministic work, timeout is wall-clock (ms)."""

    rlimit: int = 50_000_000
    timeout_ms: int = 60_000
    seed: int = 0


def new_solver(limits: Limits, ctx: z3.Context) -> z3.Solver:
    s = z3.SolverFor("QF_UFLIA", ctx=ctx)
    s.set("random_seed", limits.seed)
    if limits.rlimit:
        s.set("rlimit", limits.rlimit)
    if limits.timeout_ms:
        s.set("timeout", limits.timeout_ms)
    return s


class Prover:
    """Checks invariants against specs; encodings are built once per spec."""

    def __init__(self, limits: Limits = Limits(), overrides: dict[str, object] | None = None):
        self.limits = limits
        self.overrides = dict(overrides or {})
        self._encodings: dict[str, Encoding] = {}
        self._solvers: dict[str, z3.Solver] = {}
        self._defaults: dict[str, dict[str, object]] = {}
        self.ctx = z3.Context()  # one per prover: a run does not depend on earlier runs

    def encoding(self, spec: Spec) -> Encoding:
        if spec.path not in self._encodings:
            self._encodings[spec.path] = Encoding(spec, self.overrides, self.ctx)
        return self._encodings[spec.path]

    def check(self, inv: Invariant, spec: Spec) -> Result:
        start = time.perf_counter()
        verdict, extra = self._check(inv, spec)
        return Result(inv, spec, verdict, time.perf_counter() - start, **extra)

    def _check(self, inv: Invariant, spec: Spec):
        """Vacuity, then refutation, then reliance on uncertain rules, in one solver scope."""
        if inv.guest_level and not spec.has_guests:
            return Verdict.VACUOUS, dict(reason=f"spec {spec.name} has no PV guests (guest = none); "
                                                f"the invariant is about the guest layer")
        if inv.guest_level and spec.fixed("abi") == Abi.DOC:
            return Verdict.UNKNOWN, dict(reason=f"spec {spec.name} states the documented ABI, which leaves guest "
                                                f"fields unspecified where the document is silent: compare it "
                                                f"with `pvsmt diff` instead")
        enc = self.encoding(spec)
        with self._posed(enc, inv) as (solver, violated, posed):
            return self._decide(enc, inv, solver, violated, posed)

    def _decide(self, enc: Encoding, inv: Invariant, solver: z3.Solver, violated, posed: list):
        answer = solver.check(*enc.certain())
        if answer == z3.unsat:
            return Verdict.VACUOUS, dict(reason=f"the assumptions cannot hold in spec {enc.spec.name}")
        if answer == z3.unknown:
            return Verdict.UNKNOWN, dict(reason=f"checking the assumptions: {self._why(solver)}")
        rules = uncertain_rules(enc)
        if solver.check(*enc.certain(*(r.name for r in rules)), violated) == z3.unsat:
            return Verdict.PROVED, dict(relies_on=())  # holds whatever the uncertain rules do
        answer = solver.check(*enc.certain(), violated)
        if answer == z3.unknown:
            return Verdict.UNKNOWN, dict(reason=self._why(solver))
        if answer == z3.sat:
            model = self._closest(enc, posed) or solver.model()
            return Verdict.REFUTED, dict(counterexample=self._replay(enc, inv, model))
        return self._relies(enc, solver, violated, rules)

    def _closest(self, enc: Encoding, posed: list) -> z3.ModelRef | None:
        """A counterexample changing as few knobs from the spec's defaults as possible (MaxSMT).

        `posed` is what `_posed` asserted for the invariant, with `violated` assumed.
        None when the spec has no complete defaults or the optimiser gives up; the
        caller then keeps the solver's first model.
        """
        if enc.spec.path not in self._defaults:
            self._defaults[enc.spec.path] = default_values(enc.spec)
        defaults = self._defaults[enc.spec.path]
        if not defaults:
            return None
        opt = z3.Optimize(ctx=enc.ctx)
        opt.set("timeout", self.limits.timeout_ms or 60_000)
        opt.add(enc.formula, *posed, *enc.certain())
        for name, value in defaults.items():
            term = enc.term(name)
            if not isinstance(term, (bool, int)):  # a spec fact made it a constant: nothing to prefer
                opt.add_soft(term == (enc.boolean(value) if isinstance(value, bool) else int(value)))
        return opt.model() if opt.check() == z3.sat else None

    def _why(self, solver: z3.Solver) -> str:
        """Z3's reason for `unknown`, naming the limits behind a cancellation."""
        reason = solver.reason_unknown()
        if reason in ("canceled", "timeout") or "limit" in reason:
            reason += (f" (the resource limit --rlimit {self.limits.rlimit} or the timeout "
                       f"--timeout {self.limits.timeout_ms / 1000:g}s was reached)")
        return reason

    def violations_satisfy(self, inv: Invariant, spec: Spec, witness) -> bool | None:
        """Does every counterexample satisfy `witness`?  None when the solver cannot tell."""
        enc = self.encoding(spec)
        with self._posed(enc, inv) as (solver, violated, _):
            solver.add(z3.Not(enc.boolean(witness.eval(Env(enc)))))
            answer = solver.check(*enc.certain(), violated)
        return None if answer == z3.unknown else answer == z3.unsat

    @contextmanager
    def _posed(self, enc: Encoding, inv: Invariant):
        """The spec's solver with the invariant's assumptions in a scope of their own;
        `violated`, assumed, negates the property; `posed` lists what was asserted (with
        `violated` itself).  The spec is asserted once per spec; verdicts do not depend
        on what earlier scopes did."""
        env = Env(enc)
        violated = z3.Bool("violated!", enc.ctx)
        asserted = [enc.boolean(a.eval(env)) for a in inv.assumes]
        asserted.append(violated == z3.Not(enc.boolean(inv.prove.eval(env))))
        solver = self._solver(enc)
        solver.push()
        try:
            solver.add(*asserted)
            yield solver, violated, asserted + [violated]
        finally:
            solver.pop()

    def _solver(self, enc: Encoding) -> z3.Solver:
        if enc.spec.path not in self._solvers:
            solver = new_solver(self.limits, enc.ctx)
            solver.add(enc.formula)
            self._solvers[enc.spec.path] = solver
        return self._solvers[enc.spec.path]

    def _relies(self, enc: Encoding, solver: z3.Solver, violated, rules):
        """A proof relies on an uncertain rule if one of that rule's alternatives breaks it."""
        relies, unknown = [], []
        for rule in rules:
            answer = solver.check(*enc.certain(rule.name), violated)
            if answer == z3.sat:
                relies.append(rule)
            elif answer == z3.unknown:
                unknown.append(rule)
        if unknown:
            names = ", ".join(r.name for r in unknown)
            return Verdict.UNKNOWN, dict(reason=f"proved, but could not decide whether it relies on "
                                                f"uncertain rule(s) {names}")
        return Verdict.PROVED, dict(relies_on=tuple(relies))

    def _replay(self, enc: Encoding, inv: Invariant, model: z3.ModelRef) -> Counterexample:
        config = config_from_model(enc, model)
        evaluation = evaluate(config, guests=enc.guests)
        env = ConcreteEnv(config, evaluation)
        holds = all(a.eval(env) for a in inv.assumes)
        violated = not inv.prove.eval(env)
        if not (holds and violated):
            raise ModelDisagreement(
                f"{inv.name} against {enc.spec.name}: Z3 found a counterexample the concrete evaluator "
                f"does not reproduce (assumptions hold: {holds}, property violated: {violated}); "
                f"configuration: {sorted((k, v) for k, v in config.values.items())}")
        return Counterexample(config, evaluation, tuple(env.reads))


def uncertain_rules(enc: Encoding) -> list[Rule]:
    """The UNCERTAIN rules that appear in this encoding."""
    return [r for r in RULES.values() if r.uncertain and r.name in enc.ops.used]


def config_from_model(enc: Encoding, model: z3.ModelRef) -> Config:
    """The model as a concrete configuration; table entries are read on demand."""
    values = {k.name: value_of(enc.state.vars[k.name], k.domain, model) for k in KNOBS}
    return Config(values, fill=lambda name: value_of(enc.term(name), domain_of(name), model))


def default_values(spec: Spec) -> dict[str, object]:
    """The spec's default for every name it leaves to defaults, knobs and table entries
    (empty if it has no complete defaults)."""
    from .configure import resolve
    try:
        resolved = resolve(spec, {})
    except PvsmtError:
        return {}
    return {name: value for name, value in resolved.config.values.items()
            if resolved.source.get(name) == "default"}
