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
from dataclasses import dataclass, field, replace
from enum import Enum

import z3

from ..backends.concrete import ConcreteEnv, Config, Evaluation, evaluate
from .counterexample import Explainer, Role, changed
from ..backends.encode import Encoding, Env, spec_key, value_of
from ..errors import ModelDisagreement, PvsmtError
from ..lang.expr import Compare, Const, Expr, Logic, Var, failing_part
from ..lang.parse import Invariant
from ..model import RULES, Rule
from .provenance import Tracker, corresponding, path_facts
from ..backends.smt import GaveUp, Limits, Sat, Unknown, Unsat, check, new_solver, optimize, possible, why
from ..lang.spec import Fact, Spec
from ..model.vocab import KNOBS, Abi, Insn, domain_of


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
    return worst_code(v.exit_code for v in verdicts)


def worst_code(codes) -> int:
    """The worst of some exit statuses, in SEVERITY's order (2, 1, 3, 4, 0)."""
    present = set(codes)
    return next((v.exit_code for v in SEVERITY if v.exit_code in present), 0)


@dataclass(frozen=True)
class Counterexample:
    """A violating configuration, replayed, with what explains it.

    `roles` says, name by name, whether the violation needs the value shown (and
    which values still violate); `failing` is the smallest part of the property
    that is false; `changed` the names that differ from the spec's defaults;
    `facts` the spec declarations that gave the path's names their values.
    """

    config: Config
    evaluation: Evaluation
    inv_reads: tuple[str, ...] = ()  # names the invariant's expressions read
    roles: tuple[Role, ...] = ()
    failing: Expr | None = None
    changed: tuple[str, ...] = ()
    facts: tuple[Fact, ...] = ()
    defaults: dict = field(default_factory=dict, compare=False)  # the spec's defaults, for `changed`
    unknown: tuple[str, ...] = ()  # where the solver gave up explaining or minimising it (shown in reports)

    @property
    def uncertain(self) -> tuple[Rule, ...]:
        return tuple(dict.fromkeys(s.rule for s in self.evaluation.trace if s.rule.uncertain))


@dataclass(frozen=True)
class Result:
    invariant: Invariant
    spec: Spec
    verdict: Verdict
    seconds: float
    counterexamples: tuple[Counterexample, ...] = ()
    reason: str = ""
    relies_on: tuple[Rule, ...] = ()
    facts: tuple[Fact, ...] = ()        # proved: a minimal set of declarations the proof needs
    facts_unknown: str = ""             # why `facts` could not be determined, if so
    unreachable: tuple[str, ...] = ()   # vacuous: the parts of the invariant's scope nothing reaches
    expectation: object = None          # analysis.expectation.Expectation, for an invariant with `expect`

    @property
    def counterexample(self) -> Counterexample | None:
        return self.counterexamples[0] if self.counterexamples else None

    @property
    def uncertain_facts(self) -> tuple[Fact, ...]:
        return tuple(f for f in self.facts if f.uncertain)


class Prover:
    """Checks invariants against specs; encodings are built once per spec."""

    def __init__(self, limits: Limits = Limits(), overrides: dict[str, object] | None = None):
        self.limits = limits
        self.overrides = dict(overrides or {})
        self._encodings: dict[str, Encoding] = {}
        self._solvers: dict[str, z3.Solver] = {}
        self._defaults: dict[str, dict[str, object]] = {}
        self._tracker: Tracker | None = None
        self._proofs: dict[tuple, tuple] = {}
        self._keys: dict[str, tuple] = {}
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
        proof = self._tracked_proof(inv, spec)
        if proof is not None:
            return Verdict.PROVED, dict(relies_on=proof.relies_on, facts=proof.facts, facts_unknown="")
        enc = self.encoding(spec)
        with self._posed(enc, inv) as (solver, violated, posed):
            return self._decide(enc, inv, solver, violated, posed)

    def _tracked_proof(self, inv: Invariant, spec: Spec):
        """A proof and its facts from the tracked encoding alone (provenance.Tracker.proof), or None:
        the verdict is then decided below, on the folded encoding.  A spec encoded like one the
        invariant was proved against before (encode.spec_key: the release specs that differ only
        in where their facts are written) has that proof, with its own facts in place."""
        key = (id(inv), self._key(spec))
        if key in self._proofs:
            proof, old, _ = self._proofs[key]
            return replace(proof, facts=corresponding(proof.facts, old, spec))
        names = tuple(r.name for r in RULES.values() if r.uncertain)
        proof = self._tracker_of().proof(inv, spec, [int(i) for i in scope(inv)], names)
        if proof is not None:
            self._proofs[key] = (proof, spec, inv)  # (inv kept: its id stays its own)
        return proof

    def _key(self, spec: Spec) -> tuple:
        if spec.path not in self._keys:
            self._keys[spec.path] = spec_key(spec)
        return self._keys[spec.path]

    def _tracker_of(self) -> Tracker:
        if self._tracker is None:
            self._tracker = Tracker(lambda ctx: new_solver(self.limits, ctx), self.overrides, self.ctx)
        return self._tracker

    def _decide(self, enc: Encoding, inv: Invariant, solver: z3.Solver, violated, posed: list):
        answer = check(solver, *enc.certain())
        if isinstance(answer, Unsat):
            return Verdict.VACUOUS, dict(reason=f"the assumptions cannot hold in spec {enc.spec.name}")
        if isinstance(answer, Unknown):
            return Verdict.UNKNOWN, dict(reason=f"checking the assumptions: {self._why(answer)}")
        try:
            unreachable = self._unreachable(enc, inv, solver)
        except GaveUp as exc:
            return Verdict.UNKNOWN, dict(reason=f"checking the scope: {self._why(exc)}")
        if unreachable:
            return Verdict.VACUOUS, dict(unreachable=tuple(unreachable), reason=(
                f"the assumptions never hold for {' or '.join(unreachable)} in spec {enc.spec.name}"))
        rules = uncertain_rules(enc)
        if isinstance(check(solver, *enc.certain(*(r.name for r in rules)), violated), Unsat):
            # it holds whatever the uncertain rules do
            return self._proved(dict(relies_on=()), self._provenance(inv, enc.spec, free=True))
        answer = check(solver, *enc.certain(), violated)
        if isinstance(answer, Unknown):
            return Verdict.UNKNOWN, dict(reason=self._why(answer))
        if isinstance(answer, Sat):
            cexes, unknown = self._counterexamples(enc, inv, solver, violated, posed, answer)
            extra = dict(counterexamples=cexes)
            if unknown:
                extra["reason"] = "refuted (the counterexample is certain: it replays), but the solver gave up " \
                                  "on part of its explanation: " + "; ".join(unknown)
            return Verdict.REFUTED, extra
        verdict, extra = self._relies(enc, solver, violated, rules)
        if verdict is Verdict.PROVED:
            return self._proved(extra, self._provenance(inv, enc.spec, free=False))
        return verdict, extra

    @staticmethod
    def _proved(extra: dict, provenance: dict):
        """A proof whose facts could not be determined is `unknown`: its report would be incomplete."""
        extra = {**extra, **provenance}
        if provenance["facts_unknown"]:
            return Verdict.UNKNOWN, dict(extra, reason=f"proved, but the spec facts it relies on could not be "
                                                       f"determined: {provenance['facts_unknown']}")
        return Verdict.PROVED, extra

    def _unreachable(self, enc: Encoding, inv: Invariant, solver: z3.Solver) -> list[str] | None:
        """The instructions the assumptions name (`insn == X`, `insn in {...}`) that no configuration
        satisfying them executes; GaveUp if the solver gives up."""
        out = []
        for insn in scope(inv):
            if not possible(check(solver, *enc.certain(), enc.term("insn") == int(insn))):
                out.append(f"insn == {insn.label}")
        return out

    def _provenance(self, inv: Invariant, spec: Spec, free: bool) -> dict:
        """The declarations the proof needs: a minimal core in the spec's tracked encoding, with every
        UNCERTAIN rule left free when the proof held that way."""
        names = tuple(r.name for r in RULES.values() if r.uncertain) if free else ()
        core = self._tracker_of().core(inv, spec, names)
        return dict(facts=core.facts, facts_unknown=core.unknown)

    def _counterexamples(self, enc: Encoding, inv: Invariant, solver: z3.Solver, violated, posed: list, first: Sat):
        """Up to max_counterexamples, each closest to the defaults among those outside the classes of
        the ones before: every one differs from the others in a name that matters.  Also returns
        where the solver gave up (shown in the report, never read as an answer)."""
        out: list[Counterexample] = []
        unknown: list[str] = []
        explainer = Explainer(enc, solver, violated, enc.certain())
        blocks: list = []
        while len(out) < max(1, self.limits.max_counterexamples):
            answer = check(solver, *enc.certain(), violated) if out else first
            if isinstance(answer, Unknown):
                unknown.append(f"looking for counterexample {len(out) + 1}: {self._why(answer)}")
            if not isinstance(answer, Sat):
                break
            closest = self._closest(enc, posed + blocks)
            cex = self._replay(enc, inv, closest.model if isinstance(closest, Sat) else answer.model)
            cex = self._explain(enc, inv, explainer, cex)
            if isinstance(closest, Unknown):
                cex = replace(cex, unknown=(f"not minimised: the optimiser gave up ({self._why(closest)})",
                                            *cex.unknown))
            unknown += [f"counterexample {len(out) + 1}: {u}" for u in cex.unknown]
            out.append(cex)
            block = z3.Not(explainer.block(cex.roles))
            blocks.append(block)
            solver.add(block)  # inside the posed scope: popped with it
        return tuple(out), unknown

    def _explain(self, enc: Encoding, inv: Invariant, explainer: Explainer, cex: Counterexample) -> Counterexample:
        names = list(dict.fromkeys([*cex.evaluation.reads, *cex.inv_reads]))
        env = ConcreteEnv(cex.config, cex.evaluation)
        defaults = self._defaults_of(enc.spec)
        roles, unknown = explainer.roles(cex.config, names)
        return replace(cex, roles=roles, failing=failing_part(inv.prove, env),
                       changed=changed(cex.config, defaults, names), defaults=defaults,
                       facts=path_facts(enc.spec, cex.config, names),
                       unknown=tuple(f"the role of {u}" for u in unknown))

    def _defaults_of(self, spec: Spec) -> dict[str, object]:
        if spec.path not in self._defaults:
            self._defaults[spec.path] = default_values(spec)
        return self._defaults[spec.path]

    def _closest(self, enc: Encoding, posed: list):
        """A counterexample changing as few knobs from the spec's defaults as possible (MaxSMT).

        `posed` is what `_posed` asserted for the invariant, with `violated` assumed.
        The spec's defaults cover every name (spec.check_defaults at load time).  An
        Unknown answer is shown with the counterexample, which is then not minimal.
        """
        defaults = self._defaults_of(enc.spec)
        soft = []
        for name, value in defaults.items():
            term = enc.term(name)
            if not isinstance(term, (bool, int)):  # a spec fact made it a constant: nothing to prefer
                soft.append(term == (enc.boolean(value) if isinstance(value, bool) else int(value)))
        return optimize(enc.ctx, self.limits, [enc.formula, *posed, *enc.certain()], soft)

    def _why(self, answer) -> str:
        """Z3's reason for an Unknown answer (or a GaveUp), naming the limits behind a cancellation."""
        return why(answer.reason, self.limits)

    def violations_satisfy(self, inv: Invariant, spec: Spec, witness) -> bool | None:
        """Does every counterexample satisfy `witness`?  None when the solver cannot tell."""
        enc = self.encoding(spec)
        with self._posed(enc, inv) as (solver, violated, _):
            solver.add(z3.Not(enc.boolean(witness.eval(Env(enc)))))
            answer = check(solver, *enc.certain(), violated)
        return None if isinstance(answer, Unknown) else isinstance(answer, Unsat)

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
            answer = check(solver, *enc.certain(rule.name), violated)
            if isinstance(answer, Sat):
                relies.append(rule)
            elif isinstance(answer, Unknown):
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


def scope(inv: Invariant) -> list[Insn]:
    """The instructions an invariant's assumptions name positively: `insn == X` or `insn in {...}`,
    under `and`/`or` only (not under `not`, `!=` or `not in`)."""
    found: list[Insn] = []

    def walk(e):
        if isinstance(e, Logic) and e.op in ("and", "or"):
            for arg in e.args:
                walk(arg)
        elif isinstance(e, Compare) and e.op == "==":
            pair = (e.left, e.right) if isinstance(e.left, Var) else (e.right, e.left)
            if isinstance(pair[0], Var) and pair[0].name == "insn" and isinstance(pair[1], Const):
                found.append(Insn(pair[1].value))
    for a in inv.assumes:
        walk(a)
    return list(dict.fromkeys(found))


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
    from ..backends.configure import resolve
    try:
        resolved = resolve(spec, {})
    except PvsmtError:
        return {}
    return {name: value for name, value in resolved.config.values.items()
            if resolved.source.get(name) == "default"}
