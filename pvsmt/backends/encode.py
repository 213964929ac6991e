"""The Z3 encoding: the model over symbolic state, and a spec's facts as constraints.

This module and pvsmt.analysis.prove are the only ones that import z3.  The model
functions (pvsmt.model) run here with Z3 terms: every `decide` folds into
nested If terms, so one formula covers every vector, mode, vendor, guest kind,
trap table and callback registration at once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace

import z3
from z3.z3core import (Z3_dec_ref, Z3_inc_ref, Z3_mk_eq, Z3_mk_false, Z3_mk_int_sort, Z3_mk_ite, Z3_mk_numeral,
                       Z3_mk_or, Z3_mk_true)
from z3.z3types import Ast

from ..model import AXIOMS, GUEST_AXIOMS, HwOutcome, cpu_event, xen_event
from ..model.rules import Case
from ..lang.spec import Fact, Spec, is_system
from ..model.vocab import GUEST_FIELDS, HW_FIELDS, KNOB, KNOBS, TABLES, Domain


def _is_py(x) -> bool:
    return isinstance(x, (bool, int))


def _z3(x, ctx: z3.Context):
    """A Python value as a Z3 term (ints through int(), never through a Label's name)."""
    if isinstance(x, bool):
        return z3.BoolVal(x, ctx)
    if isinstance(x, int):
        return z3.IntVal(int(x), ctx)
    return x


def _same(a, b) -> bool:
    """Syntactic equality of two values, each a Python constant or a Z3 term."""
    if _is_py(a) and _is_py(b):
        return isinstance(a, bool) == isinstance(b, bool) and int(a) == int(b)
    if _is_py(a) or _is_py(b):
        return False
    return a.ast.value == b.ast.value  # Z3 shares equal terms: equal iff one node (as a.eq(b) compares)


def _ite(c, a, b, ctx: z3.Context):
    """z3.If(c, a, b): the same term, built without the Python API's coercions when `a` and `b` are
    terms of one kind (Z3 itself rejects two sorts); otherwise through z3.If."""
    if isinstance(c, z3.BoolRef):
        if isinstance(a, z3.BoolRef) and isinstance(b, z3.BoolRef):
            return z3.BoolRef(Z3_mk_ite(ctx.ref(), c.as_ast(), a.as_ast(), b.as_ast()), ctx)
        if isinstance(a, z3.ArithRef) and isinstance(b, z3.ArithRef):
            return z3.ArithRef(Z3_mk_ite(ctx.ref(), c.as_ast(), a.as_ast(), b.as_ast()), ctx)
    return z3.If(c, a, b)


def disjunction(term, values, ctx: z3.Context) -> z3.BoolRef:
    """z3.Or(*[term == _z3(v, ctx) for v in values]) for an Int or Bool term: the same term, made by
    the same Z3 calls in the same order (so a node it creates gets the id it would get there, and what
    Z3 answers later is unchanged), without the Python API's coercions (most of its cost).  Note the
    order of an Int equality's sides: `term == IntVal(v)` is `(= v term)`, as Python asks the right
    operand first when its class (IntNumRef) derives from the left one's (ArithRef)."""
    boolean = type(term) is z3.BoolRef
    if not (boolean or type(term) is z3.ArithRef) \
            or not all(isinstance(v, bool) == boolean and isinstance(v, int) for v in values):
        return z3.Or(*[term == _z3(v, ctx) for v in values])
    ref, t, n = ctx.ref(), term.as_ast(), len(values)
    eqs = (Ast * n)()
    for i, v in enumerate(values):
        if boolean:
            eqs[i] = Z3_mk_eq(ref, t, Z3_mk_true(ref) if v else Z3_mk_false(ref))
        else:
            eqs[i] = Z3_mk_eq(ref, Z3_mk_numeral(ref, str(int(v)), Z3_mk_int_sort(ref)), t)
        Z3_inc_ref(ref, eqs[i])
    try:
        return z3.BoolRef(Z3_mk_or(ref, n, eqs), ctx)
    finally:
        for eq in eqs:
            Z3_dec_ref(ref, eq)


def in_domain(term, domain: Domain):
    """The constraint that an Int term lies in `domain` (booleans need none)."""
    if domain.boolean:
        return True
    if domain.enum is not None:
        return z3.And(term >= 0, term < len(domain.enum))
    lo = -1 if domain.optional else domain.lo
    return z3.And(term >= lo, term <= domain.hi)


class Z3Ops:
    """The Ops of pvsmt.model.rules over Z3 terms.

    Python constants fold away.  The outcome of every UNCERTAIN rule is guarded by
    a switch: with `switches[rule]` false it is the rule's outcome, with it true a
    fresh, well-typed, otherwise unconstrained one (to ask whether a verdict
    depends on the rule).
    """

    def __init__(self, ctx: z3.Context, tag: str = ""):
        self.ctx = ctx
        self.tag = f"{tag}!" if tag else ""  # keeps two encodings' variables apart in one context
        self.side: list = []       # domain constraints on the fresh variables
        self.used: set[str] = set()  # rules whose case is reachable syntactically
        self.switches: dict[str, z3.BoolRef] = {}
        self._fresh = 0

    def all(self, *xs):
        if any(x is False for x in xs):
            return False
        rest = [x for x in xs if x is not True]
        return True if not rest else rest[0] if len(rest) == 1 else z3.And(*rest)

    def any(self, *xs):
        if any(x is True for x in xs):
            return True
        rest = [x for x in xs if x is not False]
        return False if not rest else rest[0] if len(rest) == 1 else z3.Or(*rest)

    def not_(self, x):
        return (not x) if isinstance(x, bool) else z3.Not(x)

    def div(self, a, n):
        return a // n if _is_py(a) else a / n

    def mod(self, a, n):
        return a % n  # Python's and Z3's agree for a non-negative divisor

    def ite(self, c, a, b):
        if isinstance(c, bool):
            return a if c else b
        if _same(a, b):
            return a
        return _ite(c, _z3(a, self.ctx), _z3(b, self.ctx), self.ctx)

    def decide(self, *cases: Case):
        live: list[Case] = []
        for c in cases:
            if c.when is False:
                continue
            live.append(c)
            if c.when is True:
                break
        assert live and live[-1].when is True, "the last case of a decision must be True"
        result = self._result(live[-1])
        for c in reversed(live[:-1]):
            result = self.merge(c.when, self._result(c), result)
        return result

    def _result(self, c: Case):
        self.used.add(c.rule.name)
        value = c.then()
        if not c.rule.uncertain:
            return value
        switch = self.switches.setdefault(c.rule.name, z3.Bool(f"{self.tag}uncertain!{c.rule.name}", self.ctx))
        return self.merge(switch, self.other(c, value), value)

    def other(self, c: Case, value):
        """What an uncertain rule might give instead: one of its alternatives, or anything."""
        if c.alternatives is None:
            return self.fresh(value, c.rule.name)
        *rest, last = c.alternatives()
        if not rest:
            return last
        self._fresh += 1
        pick = z3.Int(f"{self.tag}alternative!{self._fresh}!{c.rule.name}", self.ctx)
        self.side.append(z3.And(pick >= 0, pick <= len(rest)))
        for i, alt in reversed(list(enumerate(rest))):
            last = self.merge(pick == i, alt, last)
        return last

    def merge(self, cond, a, b):
        """Field-wise If over two outcome records."""
        changes = {}
        for f in fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            changes[f.name] = x if _same(x, y) else _ite(cond, _z3(x, self.ctx), _z3(y, self.ctx), self.ctx)
        return replace(a, **changes)

    def fresh(self, record, why: str):
        """A record of fresh variables, each within its field's domain."""
        self._fresh += 1
        domains = HW_FIELDS if isinstance(record, HwOutcome) else GUEST_FIELDS
        values = {}
        for name, domain in domains.items():
            var = z3.Int(f"{self.tag}havoc!{self._fresh}!{why}!{name}", self.ctx)
            self.side.append(in_domain(var, domain))
            values[name] = var
        return type(record)(**values)


@dataclass(frozen=True)
class Tracked:
    """A table entry a spec declaration fixes, in a tracked encoding: `value` while `lit` is assumed."""

    lit: object
    value: object


class TableTerm:
    """One field of a per-vector table (`idt.dpl`) as a function of a vector term.

    Entries the spec fixes become constants.  A free entry reads uninterpreted
    functions from vectors to bits (a DPL is 2*b1(v) + b0(v)), so every value is
    in the field's domain by construction: no side constraint, whatever reads it.
    """

    def __init__(self, table: str, field: str, domain: Domain, entries: list, ctx: z3.Context, side: str = ""):
        self.name = f"{side}.{table}.{field}" if side else f"{table}.{field}"
        self.domain = domain
        self.ctx = ctx
        self.entries = entries
        self.segments = _runs(entries)
        size = 2 if domain.boolean else len(domain.values())
        nbits = max(1, (size - 1).bit_length())
        assert domain.boolean or (domain.lo == 0 and size == 2 ** nbits), f"{self.name}: not a power of two"
        self.bits = [z3.Function(f"{self.name}!{i}", z3.IntSort(ctx), z3.BoolSort(ctx)) for i in range(nbits)]
        self._cache: dict[int, object] = {}

    def free(self, v):
        """The entry for vector v as the functions give it, whether or not the spec fixes it."""
        index = _z3(v, self.ctx)
        if self.domain.boolean:
            return self.bits[0](index)
        return z3.Sum([_ite(b(index), _z3(2 ** i, self.ctx), _z3(0, self.ctx), self.ctx)
                       for i, b in enumerate(self.bits)])

    def __call__(self, v):
        if _is_py(v):
            entry = self.entries[v] if 0 <= v < len(self.entries) else None
            return self._piece(entry, v)
        key = v.get_id()
        if key not in self._cache:
            self._cache[key] = self._closed_form(v)
        return self._cache[key]

    def _closed_form(self, v):
        (lo, hi, value), *rest = self.segments[::-1]
        term = _z3(self._piece(value, v), self.ctx)
        for lo, hi, value in rest:
            term = _ite(v <= hi, _z3(self._piece(value, v), self.ctx), _z3(term, self.ctx), self.ctx)
        return term

    def _piece(self, entry, v):
        """An entry's term at vector v: the spec's value, the free functions, or (tracked) either."""
        if entry is None:
            return self.free(v)
        if isinstance(entry, Tracked):
            return _ite(entry.lit, _z3(entry.value, self.ctx), self.free(v), self.ctx)
        return entry


def _runs(entries: list) -> list[tuple[int, int, object]]:
    runs: list[tuple[int, int, object]] = []
    for i, value in enumerate(entries):
        if runs and _same_entry(runs[-1][2], value):
            runs[-1] = (runs[-1][0], i, value)
        else:
            runs.append((i, i, value))
    return runs


def _same_entry(a, b) -> bool:
    if isinstance(a, Tracked) or isinstance(b, Tracked):
        return isinstance(a, Tracked) and isinstance(b, Tracked) and _same(a.lit, b.lit) and _same(a.value, b.value)
    return a is None and b is None or (a is not None and b is not None and _same(a, b))


def knob_var(name: str, ctx: z3.Context, side: str = ""):
    """The Z3 constant of a knob; `side` names a system knob's copy (`new.sysenter_cs`)."""
    label = f"{side}.{name}" if side and KNOB[name].system else name
    return z3.Bool(label, ctx) if KNOB[name].domain.boolean else z3.Int(label, ctx)


class SymbolicState:
    """A configuration as Z3 constants: one per knob, one table term per table field.

    A knob the spec fixes outright is a Python constant, so every decision on it
    folds away while the terms are built.  With a `side`, system knobs and the
    IDT get names of their own, so that two specs can share one context (and
    their situation knobs) in `pvsmt diff`.
    """

    def __init__(self, ops: Z3Ops, fixed: dict[str, object], side: str = ""):
        self.ops = ops
        ctx = ops.ctx
        self.vars: dict[str, object] = {}
        for knob in KNOBS:
            var = fixed[knob.name] if knob.name in fixed else knob_var(knob.name, ctx, side)
            self.vars[knob.name] = var
            setattr(self, knob.attr, var)
        self.tables = {
            (t.name, f): TableTerm(t.name, f, d, [fixed.get(t.knob_name(v, f)) for v in range(256)], ctx,
                                   side if t.system else "")
            for t in TABLES for f, d in t.fields.items()
        }

    def idt(self, field: str, vector):
        return self.tables[("idt", field)](vector)

    def tt(self, field: str, vector):
        return self.tables[("tt", field)](vector)


def spec_key(spec: Spec) -> tuple:
    """What an encoding of `spec` is built from: its facts in order, each without where it is
    written and what it cites (a declaration by its position among them).  Two specs with one key
    have the same encodings but for the names of their tracked literals, which correspond
    declaration by declaration (provenance.corresponding)."""
    refs: dict[str, int] = {}
    return tuple((name, tuple((f.values, _shape(f.when), f.where is None, refs.setdefault(f.ref, len(refs)))
                              for f in fs))
                 for name, fs in spec.facts.items())


def _shape(x):
    """An expression (lang.expr) as nested tuples, without the places it was read from."""
    if hasattr(x, "__dataclass_fields__"):
        return (type(x).__name__, *(_shape(getattr(x, f.name)) for f in fields(x) if f.name not in ("where", "text")))
    if isinstance(x, (tuple, list)):
        return tuple(_shape(v) for v in x)
    return x


#: Spec knobs kept as constants even in a tracked encoding: `abi` chooses whose account of Xen
#: is modelled, it is not a fact about the system a proof could rely on or not.
UNTRACKED = ("abi",)


class Encoding:
    """A spec (plus --set overrides) as Z3 terms: constraints and both outcomes."""

    def __init__(self, spec: Spec, overrides: dict[str, object] | None = None, ctx: z3.Context | None = None,
                 side: str = "", tracked: bool = False, outcomes: bool = True):
        self.spec = spec
        self.overrides = dict(overrides or {})
        self.ctx = ctx or z3.Context()
        self.side = side
        self.ops = Z3Ops(self.ctx, side)
        facts = self._facts()
        self.fixed = fixed = {name: fs[0].values[0] for name, fs in facts.items()
                              if len(fs) == 1 and fs[0].when is None and len(fs[0].values) == 1
                              and (not tracked or fs[0].where is None or name in UNTRACKED)}
        #: With `tracked`, each spec declaration is a literal to assume (for unsat cores), not a constant.
        self.tracked: dict[str, tuple[z3.BoolRef, Fact]] = {}
        entries = self._tracked_entries(facts) if tracked else {}
        self.state = SymbolicState(self.ops, {**fixed, **entries}, side)
        fixed = {**fixed, **entries}  # encoded in the table terms: no constraint of their own
        self.guests = spec.has_guests
        self.base = self._domains() + self._axioms() + self._fact_constraints(facts, fixed, tracked)
        #: Without `outcomes` (the space checks: which configurations the spec allows) neither outcome
        #: is built, nor the fresh variables and switches of the uncertain rules they would read.
        self.hw = cpu_event(self.state) if outcomes else None
        self.guest = xen_event(self.state, self.hw) if self.guests and outcomes else None

    def _facts(self) -> dict[str, list[Fact]]:
        """The spec's facts, with --set replacing system facts and adding to the others."""
        facts = {name: list(fs) for name, fs in self.spec.facts.items()}
        for name, value in self.overrides.items():
            fact = Fact(name, (value,), where=None)
            if is_system(name):
                facts[name] = [fact]
            else:
                facts.setdefault(name, []).append(fact)
        return facts

    def _domains(self) -> list:
        return [in_domain(self.state.vars[k.name], k.domain) for k in KNOBS
                if not k.domain.boolean and not _is_py(self.state.vars[k.name])]

    def _axioms(self) -> list:
        axioms = AXIOMS + (GUEST_AXIOMS if self.guests else ())
        return [_z3(a.holds(self.state), self.ctx) for a in axioms]

    def _fact_constraints(self, facts: dict[str, list[Fact]], fixed: dict[str, object], tracked: bool) -> list:
        out = []
        env = Env(self)
        for name, fs in facts.items():
            if name in fixed or (name == "guest" and not self.guests):
                continue  # fixed entries are constants; without guests the guest knobs mean nothing
            term = self.term(name)
            for f in fs:
                allowed = self.ops.any(*(term == _z3(v, self.ctx) for v in f.values))
                cond = f.when.eval(env) if f.when is not None else True
                constraint = _z3(self.ops.any(self.ops.not_(cond), allowed), self.ctx)
                out.append(z3.Implies(self._track(f), constraint) if tracked and f.where is not None
                           else constraint)
        return out

    def _tracked_entries(self, facts: dict[str, list[Fact]]) -> dict[str, "Tracked"]:
        """Table entries a single declaration fixes, as values guarded by its literal: the table
        terms keep their few segments (one per declaration) instead of 256 free entries."""
        out = {}
        for name, fs in facts.items():
            if name not in KNOB and len(fs) == 1 and fs[0].when is None and len(fs[0].values) == 1 \
                    and fs[0].where is not None:
                out[name] = Tracked(self._track(fs[0]), fs[0].values[0])
        return out

    def _track(self, fact: Fact) -> z3.BoolRef:
        """The literal standing for `fact`'s declaration (one per declaration, shared by its rows)."""
        if fact.ref not in self.tracked:
            self.tracked[fact.ref] = (z3.Bool(f"fact!{fact.ref}", self.ctx), fact)
        return self.tracked[fact.ref][0]

    def facts_assumed(self) -> list:
        """Every tracked declaration's literal, in the spec's order (the assumptions of a core query)."""
        return [lit for lit, _ in self.tracked.values()]

    def term(self, name: str):
        """The Z3 term of a knob or table entry name (`vendor`, `tt.0x80.dpl`)."""
        if name in self.state.vars:
            return self.state.vars[name]
        table, vector, field = name.split(".")
        return self.state.tables[(table, field)](int(vector, 0))

    def pins(self) -> list:
        """Situation knobs and trap-table entries this spec fixes, as constraints on the shared
        variables (folded to constants here, they would otherwise float free in a joint encoding)."""
        out = []
        for name, value in self.fixed.items():
            if name in KNOB and not KNOB[name].system:
                out.append(knob_var(name, self.ctx) == _z3(value, self.ctx))
            elif name not in KNOB and name.split(".")[0] == "tt":
                table, vector, field = name.split(".")
                out.append(self.state.tables[(table, field)].free(int(vector, 0)) == _z3(value, self.ctx))
        return out

    def constraints(self) -> list:
        """Every constraint: domains, axioms, spec facts, the fresh variables' domains."""
        return self.base + list(self.ops.side)

    @functools.cached_property
    def formula(self) -> z3.BoolRef:
        """The constraints as one term, built once (asserting one term is cheaper than many)."""
        return z3.And(*(_z3(c, self.ctx) for c in self.constraints()))

    @functools.cached_property
    def space(self) -> z3.BoolRef:
        """The configurations the spec allows: domains, axioms and facts, without the outcomes' fresh
        variables (whose domain constraints hold of some value whatever the configuration, so
        `space` and `formula` allow the same configurations)."""
        return z3.And(*(_z3(c, self.ctx) for c in self.base))

    @functools.lru_cache(maxsize=None)
    def certain(self, *except_rules: str) -> tuple:
        """Assumptions that give every uncertain rule its modelled outcome (but those named)."""
        return tuple(z3.Not(v) if name not in except_rules else v for name, v in self.ops.switches.items())

    def boolean(self, x):
        """An expression's value as a Z3 Bool of this encoding's context."""
        return _z3(x, self.ctx)


class Env:
    """What an expression reads, over the Z3 encoding (see lang.expr.Env)."""

    def __init__(self, enc: Encoding):
        self.enc = enc
        self.ops = enc.ops

    def knob(self, name: str):
        return self.enc.state.vars[name]

    def table(self, table: str, field: str, index):
        return self.enc.state.tables[(table, field)](index)

    def outcome(self, layer: str, field: str):
        record = self.enc.hw if layer == "hw" else self.enc.guest
        return getattr(record, field)


def value_of(term, domain: Domain, model: z3.ModelRef):
    """A term's value in a model, as the Python value the concrete evaluator uses."""
    if _is_py(term):
        return term
    value = model.eval(term, model_completion=True)
    if domain.boolean:
        return z3.is_true(value)
    number = value.as_long()
    return domain.enum(number) if domain.enum is not None else number


__all__ = ["Encoding", "Env", "Z3Ops", "value_of"]
