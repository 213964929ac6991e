"""`pvsmt diff`: every configuration whose outcome differs between two specs, in classes.

Both specs are encoded in one Z3 context.  The situation (who executes what,
the guest's trap table and callbacks) is shared; each spec keeps its own copy
of the system knobs (`old.sysenter_cs`, `new.sysenter_cs`).  The target is
"some field both specs specify differs" (guest or hardware outcome).

Classes are found one at a time: a model of the target is replayed through the
concrete evaluator on both sides; the knobs and trap-table entries the two
paths read, at their witness values, form a cube that implies the target.  The
cube is then shrunk (an unsat core, then one literal at a time), its values
widened (enumerations value by value, the vector as a set), and blocked.  When
no model is left, Z3 has proved that the classes cover every difference.
UNCERTAIN rules take the outcome the model states; a class whose witness path
uses one says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import z3

from ..backends.concrete import ConcreteOps, Evaluation, evaluate
from .counterexample import largest
from ..backends.encode import Encoding, _is_py, _z3, disjunction, knob_var, value_of
from ..errors import InputError, ModelDisagreement
from ..model import Rule
from ..model.outcome import differs, leaves_open
from ..progress import Progress
from ..backends.smt import GaveUp, Limits, Sat, Unknown, Unsat, check, new_solver
from .prove import config_from_model
from ..lang.spec import Spec
from .spec_check import check_space
from ..model.vocab import GUEST_FIELDS, HW_FIELDS, KNOB, KNOBS, TABLE, Domain, domain_of

LEVELS = ("guest", "hardware")
SIDES = ("old", "new")

#: Knobs a class description keeps in preference to others (first kept longest).
KEEP = ("insn", "vector", "guest", "guest_mode", "mode", "vendor", "prefix", "of", "bound.in_range",
        "tt[vector].present", "tt[vector].dpl", "cb.syscall", "cb.syscall32", "cb.sysenter", "gate.table",
        "gate.present", "gate.dpl", "gate.rpl", "gate.in_limit", "gate.index", "debugger", "sig_read_fault")

#: Knobs widened only to values whose paths read every other literal of the class: "insn in
#: {ud0, ud1, ud2} and sig_read_fault == 1" is one cause, "insn in {int3, into} and of == 1" is not.
RELEVANT_ONLY = ("insn",)

#: How many excluded values of a wide literal (vector, gate.index) are enumerated before
#: its set falls back to an interval.
MAX_HOLES = 24

#: The fields that say what happens; a side leaving one of these open is reported as
#: "unspecified" (a silent %rip or mask flag alone is not worth a class).
HEADLINE = ("event", "vector", "error_code", "callback")


class Incomplete(Exception):
    """The solver gave up: the enumeration cannot claim completeness."""


@dataclass(frozen=True)
class Literal:
    """`key` takes one of `values`: a knob, a side's system knob, or a trap-table entry."""

    key: str
    values: tuple
    domain: Domain

    def widen(self, value) -> "Literal":
        return Literal(self.key, tuple(sorted({*self.values, value})), self.domain)

    @property
    def total(self) -> bool:
        return len(self.values) == len(self.domain.values())

    def holds(self, old, new) -> bool:
        """Whether concrete configurations (concrete.Config, one per side) satisfy the literal."""
        head, _, rest = self.key.partition(".")
        if head in SIDES:
            return (old if head == "old" else new).get(rest) in self.values
        if self.key.startswith("tt["):
            index, _, fld = self.key[3:].partition("].")
            v = old.get("vector") if index == "vector" else int(index, 0)
            return old.get(f"tt.{v:#04x}.{fld}") in self.values
        return old.get(self.key) in self.values


@dataclass(frozen=True)
class Witness:
    """One side's concrete configuration and evaluation."""

    config: object
    evaluation: Evaluation


@dataclass(frozen=True)
class DiffClass:
    """A set of configurations, all of which differ (or all of which one side leaves open)."""

    literals: tuple[Literal, ...]
    free: tuple[str, ...]      # read on the witness paths, yet any value keeps the class
    old: Witness
    new: Witness

    def contains(self, old, new) -> bool:
        """Whether a configuration (as each side's concrete.Config) lies in the class."""
        return all(l.holds(old, new) for l in self.literals)

    @property
    def uncertain(self) -> tuple[Rule, ...]:
        steps = (*self.old.evaluation.trace, *self.new.evaluation.trace)
        return tuple(dict.fromkeys(s.rule for s in steps if s.rule.uncertain))


@dataclass(frozen=True)
class ExpectedStatus:
    """An intended difference (lang.parse.Difference) and whether any configuration it names differs."""

    expected: object
    present: bool


@dataclass
class DiffResult:
    old: Spec
    new: Spec
    level: str
    differences: list[DiffClass] = field(default_factory=list)
    unspecified: list[DiffClass] = field(default_factory=list)
    expected: list[ExpectedStatus] = field(default_factory=list)
    complete: bool = True
    reason: str = ""
    unspecified_reason: str = ""  # why the unspecified list is partial, if it is
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.differences and all(s.present for s in self.expected)

    @property
    def exit_code(self) -> int:
        if not self.clean:
            return 1
        return 0 if self.complete else 3


class Joint:
    """Two specs in one context: shared situation, per-side system knobs, both outcomes."""

    def __init__(self, old: Spec, new: Spec, level: str, limits: Limits = Limits()):
        self.ctx = z3.Context()
        self.level = level
        self.limits = limits
        self.sides = {"old": Encoding(old, ctx=self.ctx, side="old"), "new": Encoding(new, ctx=self.ctx, side="new")}
        for enc in self.sides.values():
            _require_fixed_idt(enc)
            if level == "guest" and not enc.guests:
                raise InputError(enc.spec.path, f"spec {enc.spec.name} has no PV guests (guest = none): "
                                                f"compare it with --level hardware")
        a, b = (self.record(s) for s in SIDES)
        ops = self.sides["old"].ops
        names = GUEST_FIELDS if level == "guest" else HW_FIELDS
        self.differ = _z3(differs(ops, a, b, names), self.ctx)
        self.open = z3.And(z3.Not(self.differ), _z3(leaves_open(ops, a, b, headline(level)), self.ctx))
        self.base = [enc.formula for enc in self.sides.values()]
        self.base += [p for enc in self.sides.values() for p in enc.pins()]
        self.base += [c for enc in self.sides.values() for c in enc.certain()]

    def record(self, side: str):
        enc = self.sides[side]
        return enc.guest if self.level == "guest" else enc.hw

    def solver(self, *extra) -> z3.Solver:
        s = new_solver(self.limits, self.ctx)
        s.add(*self.base, *extra)
        return s

    def term(self, key: str):
        """The Z3 term of a literal key: `vendor`, `new.sysenter_cs`, `tt[vector].dpl`, `tt[0x03].present`."""
        head, _, rest = key.partition(".")
        if head in SIDES:
            return self.sides[head].state.vars[rest]
        if key.startswith("tt["):
            index, _, fld = key[3:].partition("].")
            at = knob_var("vector", self.ctx) if index == "vector" else int(index, 0)
            return self.sides["old"].state.tables[("tt", fld)].free(at)
        return knob_var(key, self.ctx)

    def condition(self, lit: Literal):
        """`term == v1 or term == v2 ...`: the term z3.Or(*[term == _z3(v) for v in values]) builds, by the
        same Z3 calls in the same order (so every new node gets the id it got there), without the Python
        API's coercions."""
        return disjunction(self.term(lit.key), lit.values, self.ctx)

    def witness(self, model: z3.ModelRef) -> tuple[Witness, Witness]:
        out = []
        for side in SIDES:
            enc = self.sides[side]
            config = config_from_model(enc, model)
            out.append(Witness(config, evaluate(config, guests=enc.guests)))
        return out[0], out[1]

    def pinned(self) -> set[str]:
        """Situation knobs that either spec fixes: never reported as free."""
        return {n for enc in self.sides.values() for n in enc.fixed if n in KNOB and not KNOB[n].system}


def _require_fixed_idt(enc: Encoding) -> None:
    free = [f"idt.{v:#04x}.{f}" for (t, f), term in enc.state.tables.items() if t == "idt"
            for v, entry in enumerate(term.entries) if entry is None]
    if free:
        raise InputError(enc.spec.path, f"spec {enc.spec.name} leaves IDT entries free (e.g. {free[0]}): "
                                        f"pvsmt diff compares systems whose IDT is fixed")


class Probe:
    """Asks whether a cube of literals implies the target: base, cube and not-target unsat."""

    def __init__(self, joint: Joint, target):
        self.joint = joint
        self.solver = joint.solver(z3.Not(target))
        self._indicators: dict[int, z3.BoolRef] = {}
        #: Within a scope, each literal's condition, built once: every one is asserted under its
        #: indicator, so the solver holds it until the pop, and building it again would only find
        #: the same nodes (None outside a scope: nothing is kept).
        self._conditions: dict[tuple, z3.BoolRef] | None = None

    def __enter__(self):
        self.solver.push()
        self._conditions = {}
        return self

    def __exit__(self, *exc):
        self._conditions = None  # before the pop, which then frees the nodes as it did without the cache
        self.solver.pop()
        self._indicators.clear()

    def condition(self, lit: Literal):
        if self._conditions is None:
            return self.joint.condition(lit)
        key = (lit.key, lit.values)
        cond = self._conditions.get(key)
        if cond is None:
            cond = self._conditions[key] = self.joint.condition(lit)
        return cond

    def _indicator(self, cond) -> z3.BoolRef:
        key = cond.get_id()
        if key not in self._indicators:
            flag = z3.Bool(f"probe!{len(self._indicators)}", self.joint.ctx)
            self.solver.add(z3.Implies(flag, cond))
            self._indicators[key] = flag
        return self._indicators[key]

    def check(self, conds):
        """The answer for a cube; an Unknown raises Incomplete (a class is never widened, shrunk or
        confirmed on a question the solver did not answer)."""
        answer = check(self.solver, *[self._indicator(c) for c in conds])
        if isinstance(answer, Unknown):
            raise Incomplete(f"the solver gave up ({answer.reason}) while generalising a class")
        return answer

    def example(self, lits):
        """A model of the cube (under the probe's base), or None."""
        return self.counterexample(lits)

    def implies(self, lits) -> bool:
        return isinstance(self.check([self.condition(l) for l in lits]), Unsat)

    def core(self, lits) -> list[Literal] | None:
        conds = [self.condition(l) for l in lits]
        answer = self.check(conds)
        if not isinstance(answer, Unsat):
            return None
        core = {c.get_id() for c in answer.core}
        return [l for l, c in zip(lits, conds) if self._indicator(c).get_id() in core]

    def counterexample(self, lits, *extra):
        """A model of the cube where the target fails, or None."""
        answer = self.check([self.condition(l) for l in lits] + list(extra))
        return answer.model if isinstance(answer, Sat) else None


class Generalizer:
    """Turns one witness of the target into a class: a small cube of wide literals."""

    def __init__(self, joint: Joint, target, concrete_target):
        self.joint = joint
        self.target = target
        self.concrete_target = concrete_target  # (old Evaluation, new Evaluation) -> bool
        self.probe = Probe(joint, target)
        self.space = Probe(joint, z3.BoolVal(False, joint.ctx))  # base alone: examples of a cube

    def __call__(self, model: z3.ModelRef) -> DiffClass:
        old, new = self.joint.witness(model)
        if not self.concrete_target(old.evaluation, new.evaluation):
            raise ModelDisagreement(
                f"diff {self.joint.sides['old'].spec.name} {self.joint.sides['new'].spec.name}: Z3 found a "
                f"configuration the concrete evaluator does not reproduce: {sorted(old.config.values.items())}")
        keys = self._keys(old, new)
        lits = [Literal(k, (value_of(self.joint.term(k), self._domain(k), model),), self._domain(k)) for k in keys]
        with self.probe, self.space:
            lits = self._shrink(lits)
            lits = self._widen(lits)
        lits = [l for l in lits if not l.total]
        free = self._free(keys, lits)
        return DiffClass(tuple(sorted(lits, key=_rank)), free, old, new)

    def _keys(self, old: Witness, new: Witness) -> list[str]:
        keys: list[str] = []
        vector = old.config.get("vector")
        for side, w in zip(SIDES, (old, new)):
            reads = w.evaluation.reads
            for name in reads:
                key = self._key(side, name, "vector" in reads and vector)
                if key and key not in keys:
                    keys.append(key)
        return keys

    def _key(self, side: str, name: str, vector) -> str | None:
        enc = self.joint.sides[side]
        if name in KNOB:
            if not KNOB[name].system:
                return name
            return None if _is_py(enc.state.vars[name]) else f"{side}.{name}"
        table, index, fld = name.split(".")
        if table != "tt":
            return None  # the IDT is fixed on both sides
        v = int(index, 0)
        return f"tt[vector].{fld}" if vector is not False and v == vector else f"tt[{v:#04x}].{fld}"

    @staticmethod
    def _domain(key: str) -> Domain:
        head, _, rest = key.partition(".")
        if head in SIDES:
            return KNOB[rest].domain
        if key.startswith("tt["):
            return TABLE["tt"].fields[key.rsplit(".", 1)[1]]
        return domain_of(key)

    def _shrink(self, lits: list[Literal]) -> list[Literal]:
        core = self.probe.core(lits)
        if core is None:
            raise Incomplete("could not confirm that a class's cube implies the difference")
        kept = sorted(core, key=_rank)
        for lit in reversed(list(kept)):  # least wanted first
            rest = [l for l in kept if l is not lit]
            if self.probe.implies(rest):
                kept = rest
        return kept

    def _widen(self, lits: list[Literal]) -> list[Literal]:
        out = list(lits)
        for i, lit in enumerate(out):
            if lit.domain.boolean:
                continue
            if len(lit.domain.values()) > 16:
                out[i] = self._by_holes(out, i)
                continue
            for value in lit.domain.values():
                if value in lit.values:
                    continue
                alone = out[:i] + [Literal(lit.key, (value,), lit.domain)] + out[i + 1:]
                example = self.space.example(alone)
                if example is None:
                    continue  # no configuration has it: widening would only blur the description
                if lit.key in RELEVANT_ONLY and not self._relevant(example, alone, lit.key):
                    continue
                wider = out[i].widen(value)
                if self.probe.implies(out[:i] + [wider] + out[i + 1:]):
                    out[i] = wider
        return out

    def _relevant(self, model: z3.ModelRef, lits: list[Literal], key: str) -> bool:
        """Whether `model`, a configuration of the cube, reads every literal but `key` on one side or the other."""
        old, new = self.joint.witness(model)
        read = set(self._keys(old, new))
        return all(l.key in read for l in lits if l.key != key)

    def _by_holes(self, lits: list[Literal], i: int) -> Literal:
        """A wide integer literal (the vector, a selector index) widened to every value the rest of
        the cube keeps in the class: all values but the holes found, else an interval."""
        lit, rest = lits[i], lits[:i] + lits[i + 1:]
        var = self.joint.term(lit.key)
        holes: list[int] = []
        excluded = []  # var != h for each hole h, each built once (the probe's solver holds them)
        while len(holes) <= MAX_HOLES:
            if holes:
                excluded.append(var != holes[-1])
            model = self.probe.counterexample(rest, *excluded)
            if model is None:
                return Literal(lit.key, tuple(v for v in lit.domain.values() if v not in holes), lit.domain)
            holes.append(model.eval(var, model_completion=True).as_long())
        return self._interval(rest, lit)

    def _interval(self, rest: list[Literal], lit: Literal) -> Literal:
        v, top = lit.values[0], lit.domain.hi
        def ok(lo, hi):
            return self.probe.implies(rest + [Literal(lit.key, tuple(range(lo, hi + 1)), lit.domain)])
        hi = largest(v, top, lambda h: ok(v, h))
        lo = top - largest(top - v, top, lambda x: ok(top - x, hi))
        return Literal(lit.key, tuple(range(lo, hi + 1)), lit.domain)

    def _free(self, keys: list[str], lits: list[Literal]) -> tuple[str, ...]:
        kept = {l.key for l in lits}
        pinned = self.joint.pinned()
        if self.joint.level == "guest":
            pinned.add("cpl")  # follows from the guest kind and mode (model/axioms.py)
        return tuple(k for k in sorted(keys, key=_rank_key) if k not in kept and k not in pinned
                     and k.partition(".")[0] not in SIDES)


def headline(level: str) -> tuple[str, ...]:
    return HEADLINE if level == "guest" else ()


def _rank_key(key: str) -> tuple:
    if key in KEEP:
        return (0, KEEP.index(key), key)
    if key.startswith("tt["):
        return (1, 0, key)
    if key.partition(".")[0] in SIDES:
        return (3, 0, key)
    order = [k.name for k in KNOBS]
    return (2, order.index(key) if key in order else 0, key)


def _rank(lit: Literal) -> tuple:
    return _rank_key(lit.key)


class Differ:
    """Computes the classes of a diff between two specs."""

    def __init__(self, old: Spec, new: Spec, level: str = "guest", limits: Limits = Limits(),
                 max_classes: int = 200):
        if level not in LEVELS:
            raise InputError("--level", f"expected one of {', '.join(LEVELS)}")
        self.joint = Joint(old, new, level, limits)
        self.max_classes = max_classes
        fields_ = GUEST_FIELDS if level == "guest" else HW_FIELDS
        ops = ConcreteOps([])
        pick = (lambda ev: ev.guest) if level == "guest" else (lambda ev: ev.hw)
        self._differs = lambda a, b: bool(differs(ops, pick(a), pick(b), fields_))
        self._open = lambda a, b: (not self._differs(a, b)) and bool(leaves_open(ops, pick(a), pick(b), headline(level)))

    def run(self, expected=()) -> DiffResult:
        """Classes of the differences outside `expected` (lang.parse.Difference), and which of those appear."""
        j = self.joint
        result = DiffResult(j.sides["old"].spec, j.sides["new"].spec, j.level)
        result.notes = situation_notes(result.old, result.new)
        for enc in j.sides.values():  # each spec allows some configuration (else an error, exit 2)
            try:
                result.notes += check_space(enc.spec, limits=j.limits)
            except GaveUp as exc:
                result.complete, result.reason = False, str(exc)
                return result
        try:
            return self._run(result, expected)
        finally:
            self._shared(result)

    def _shared(self, result: DiffResult) -> None:
        """The two specs share some configuration, else nothing was compared: an error.  Asked last,
        in the joint context, so that it cannot change what the enumeration's queries answer."""
        shared = check(self.joint.solver())
        if isinstance(shared, Unknown):
            result.complete = False
            result.reason = result.reason or f"the solver gave up on the shared space ({shared.reason})"
        elif isinstance(shared, Unsat):
            raise InputError(f"{result.old.path} {result.new.path}",
                             f"specs {result.old.name} and {result.new.name} share no configuration: there is "
                             f"nothing to compare ({'; '.join(result.notes) or 'their facts exclude each other'})")

    def _run(self, result: DiffResult, expected) -> DiffResult:
        j = self.joint
        env = DiffEnv(j)
        named = [_z3(e.when.eval(env), j.ctx) for e in expected]
        unexpected = z3.And(j.differ, z3.Not(z3.Or(*named))) if named else j.differ
        present = self._clean(named, unexpected) if named and not any(self._has_open(s) for s in SIDES) else None
        if present is not None:  # no class, nothing left open: what the enumeration would find, proved
            result.expected = [ExpectedStatus(e, p) for e, p in zip(expected, present)]
            return result
        try:
            result.expected = [self._status(e, c) for e, c in zip(expected, named)]
            self.classes(unexpected, self._differs, into=result.differences)
        except Incomplete as exc:
            result.complete, result.reason = False, str(exc)
            return result
        if any(self._has_open(s) for s in SIDES):
            try:
                self.classes(j.open, self._open, into=result.unspecified)
            except Incomplete as exc:  # the differences stand; only the list of silences is partial
                result.unspecified_reason = str(exc)
        return result

    def _clean(self, named: list, unexpected) -> list[bool] | None:
        """Whether each expected difference appears, when Z3 proves that no other configuration differs
        (else None).  The usual case of an --expect file, asked first in a context of its own, as
        incremental questions to one solver: `_status` and `classes` each start a solver that
        preprocesses both encodings again, most of such a run.  The joint context is only read (its
        terms translated), so when something unexpected differs, or the solver gives up here, the
        classes are found exactly as they would be without this (Z3's answers there depend on the
        terms made in that context before)."""
        j = self.joint
        terms = z3.AstVector(ctx=j.ctx)
        for t in (*j.base, j.differ, unexpected, *named):
            terms.push(t)
        ctx = z3.Context()
        base, (differ, unexpected, *named) = _split(terms.translate(ctx), len(j.base))
        solver = new_solver(j.limits, ctx)
        solver.add(*base)
        if not isinstance(check(solver, unexpected), Unsat):
            return None
        present = []
        for cond in named:
            answer = check(solver, cond, differ)
            if isinstance(answer, Unknown):
                return None
            present.append(isinstance(answer, Sat))
        return present

    def _has_open(self, side: str) -> bool:
        record = self.joint.record(side)
        mask = getattr(record, "unspecified", 0)
        return not (_is_py(mask) and mask == 0)

    def _status(self, e, cond) -> ExpectedStatus:
        present = _decide(self.joint.solver(cond, self.joint.differ))
        if present is None:
            raise Incomplete(f"could not decide whether expected difference {e.name} appears")
        return ExpectedStatus(e, present)

    def classes(self, target, concrete_target, into: list[DiffClass]) -> None:
        """Every class of the target, into `into`, until Z3 proves none is left (else Incomplete,
        with the classes found so far in `into`)."""
        solver = self.joint.solver(target)
        general = Generalizer(self.joint, target, concrete_target)
        found = into
        sides = self.joint.sides
        what = "differences" if concrete_target == self._differs else "silences"
        with Progress(f"pvsmt diff {sides['old'].spec.name} {sides['new'].spec.name}") as progress:
            while not self._next_class(solver, general, found):
                progress.step(f"{what}: {len(found)} class(es) so far")

    def _next_class(self, solver, general, found: list[DiffClass]) -> bool:
        """One more class into `found`; True when Z3 proves none is left."""
        answer = check(solver)
        if isinstance(answer, Unsat):
            found[:] = _drop_subsumed(found)
            return True
        if isinstance(answer, Unknown):
            raise Incomplete(f"the solver gave up ({answer.reason}) after {len(found)} class(es)")
        if len(found) >= self.max_classes:
            raise Incomplete(f"more than {self.max_classes} classes")
        cls = general(answer.model)
        found.append(cls)
        solver.add(z3.Not(z3.And(*[self.joint.condition(l) for l in cls.literals])))
        return False


def _split(terms: z3.AstVector, n: int) -> tuple[list, list]:
    items = [terms[i] for i in range(len(terms))]
    return items[:n], items[n:]


def _decide(solver: z3.Solver) -> bool | None:
    answer = check(solver)
    return None if isinstance(answer, Unknown) else isinstance(answer, Sat)


def _drop_subsumed(classes: list[DiffClass]) -> list[DiffClass]:
    """Leave out a class that a later, wider one contains (syntactically)."""
    def within(a: DiffClass, b: DiffClass) -> bool:
        mine = {l.key: set(l.values) for l in a.literals}
        return all(l.key in mine and mine[l.key] <= set(l.values) for l in b.literals)
    return [c for i, c in enumerate(classes) if not any(within(c, d) for d in classes[i + 1:])]


def situation_notes(old: Spec, new: Spec) -> list[str]:
    """Situation knobs the two specs restrict differently: compared only where both allow them."""
    notes = []
    for knob in KNOBS:
        if knob.system:
            continue
        a, b = _allowed(old, knob.name), _allowed(new, knob.name)
        if a != b:
            fmt = lambda vs: "any" if vs is None else ", ".join(knob.domain.format(v) for v in vs) or "none"  # noqa: E731
            notes.append(f"{knob.name}: OLD allows {fmt(a)}, NEW allows {fmt(b)}; "
                         f"only configurations both allow are compared")
    return notes


def _allowed(spec: Spec, name: str) -> tuple | None:
    """The values an unconditional fact allows `name` (None: no such fact)."""
    facts = [f for f in spec.facts.get(name, ()) if f.when is None]
    return tuple(sorted(facts[0].values)) if facts else None


class DiffEnv:
    """What an --expect condition reads, over the joint encoding."""

    def __init__(self, joint: Joint):
        self.joint = joint
        self.ops = joint.sides["old"].ops

    def knob(self, name: str):
        return self.joint.term(name)

    def table(self, table: str, fld: str, index):
        return self.joint.sides["old"].state.tables[(table, fld)].free(index)

    def outcome(self, layer: str, fld: str):  # pragma: no cover - rejected when the file is read
        raise AssertionError("outcomes are not configurations")
