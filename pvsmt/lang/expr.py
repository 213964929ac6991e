"""Typed expressions of invariants and spec conditions, evaluable under either backend.

An expression is type-checked when it is read (lang/parse.py builds it): names
are resolved against pvsmt.model.vocab, enumeration constants against the type of the
other side of a comparison.  `eval(env)` works with any Env: the Z3 encoding's
or the concrete evaluator's.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import Protocol

from ..errors import InputError, Location
from ..model.vocab import BOOL, GUEST_FIELDS, HW_FIELDS, KNOB, NONE, TABLE, TABLES, Domain, GateTable

INT = Domain(lo=-(2**31), hi=2**31)


class Env(Protocol):
    """What an expression reads: knobs, table entries and outcome fields."""

    ops: object

    def knob(self, name: str): ...
    def table(self, table: str, field: str, index): ...
    def outcome(self, layer: str, field: str): ...


@dataclass(frozen=True)
class Expr:
    where: Location

    domain: Domain = INT
    text: str = field(default="", compare=False, kw_only=True)  # the source text, where read from a file

    def eval(self, env: Env):  # pragma: no cover - abstract
        raise NotImplementedError

    def names(self) -> set[str]:
        """Knob names, `tt`/`idt` and `hw.`/`guest.` fields this expression reads."""
        return set()

    @property
    def is_bool(self) -> bool:
        return self.domain.boolean

    def spelled(self, text: str) -> "Expr":
        """The same expression, remembering how its source spelled it."""
        return replace(self, text=" ".join(text.split())) if text else self


@dataclass(frozen=True)
class Const(Expr):
    value: object = None

    def eval(self, env):
        return self.value


@dataclass(frozen=True)
class Sym(Expr):
    """A bare word: an enumeration constant, resolved by a comparison."""

    word: str = ""

    def eval(self, env):  # pragma: no cover - never survives type checking
        raise AssertionError(self.word)


@dataclass(frozen=True)
class NoneLit(Expr):
    def eval(self, env):
        return NONE


@dataclass(frozen=True)
class Var(Expr):
    name: str = ""

    def eval(self, env):
        return env.knob(self.name)

    def names(self):
        return {self.name}


@dataclass(frozen=True)
class TableRef(Expr):
    table: str = ""
    field: str = ""
    index: Expr = None

    def eval(self, env):
        return env.table(self.table, self.field, self.index.eval(env))

    def names(self):
        return {self.table} | self.index.names()


@dataclass(frozen=True)
class Outcome(Expr):
    layer: str = ""
    field: str = ""

    def eval(self, env):
        return env.outcome(self.layer, self.field)

    def names(self):
        return {f"{self.layer}.{self.field}"}


@dataclass(frozen=True)
class Compare(Expr):
    op: str = "=="
    left: Expr = None
    right: Expr = None

    def eval(self, env):
        a, b = self.left.eval(env), self.right.eval(env)
        ops = env.ops
        if self.op == "==":
            return a == b
        if self.op == "!=":
            return ops.not_(a == b)
        result = {"<": lambda: a < b, "<=": lambda: a <= b, ">": lambda: a > b, ">=": lambda: a >= b}[self.op]()
        guards = [x != NONE for x, e in ((a, self.left), (b, self.right)) if e.domain.optional]
        return ops.all(*guards, result)

    def names(self):
        return self.left.names() | self.right.names()


@dataclass(frozen=True)
class Logic(Expr):
    op: str = "and"  # and | or | not | =>
    args: tuple = ()

    def eval(self, env):
        ops = env.ops
        vals = [a.eval(env) for a in self.args]
        if self.op == "and":
            return ops.all(*vals)
        if self.op == "or":
            return ops.any(*vals)
        if self.op == "not":
            return ops.not_(vals[0])
        return ops.any(ops.not_(vals[0]), vals[1])

    def names(self):
        return set().union(*(a.names() for a in self.args))


@dataclass(frozen=True)
class Arith(Expr):
    op: str = "+"
    left: Expr = None
    right: Expr = None

    def eval(self, env):
        a, b = self.left.eval(env), self.right.eval(env)
        if self.op == "+":
            return a + b
        if self.op == "-":
            return a - b
        if self.op == "*":
            return a * b
        if self.op == "%":
            return env.ops.mod(a, b)  # by a positive constant (checked when built)
        return a * (2 ** b)  # `<<` by a constant (checked when built)

    def names(self):
        return self.left.names() | self.right.names()


@dataclass(frozen=True)
class Ite(Expr):
    cond: Expr = None
    then: Expr = None
    other: Expr = None

    def eval(self, env):
        return env.ops.ite(self.cond.eval(env), self.then.eval(env), self.other.eval(env))

    def names(self):
        return self.cond.names() | self.then.names() | self.other.names()


# ---- reading a false condition ---------------------------------------------------

def failing_part(e: Expr, env: Env) -> Expr:
    """The smallest part of a condition that is false in `env` (a concrete one) and makes it false:
    the first false conjunct of an `and`, the consequent of an `=>` whose premise holds, recursively."""
    if isinstance(e, Logic) and e.op == "and":
        for arg in e.args:
            if not arg.eval(env):
                return failing_part(arg, env)
    if isinstance(e, Logic) and e.op == "=>" and e.args[0].eval(env):
        return failing_part(e.args[1], env)
    return e


def leaves(e: Expr) -> list[Expr]:
    """The names an expression reads (knobs, table entries, outcome fields), each once, in order."""
    if isinstance(e, (Var, Outcome, TableRef)):
        return [e]
    kids = [getattr(e, f) for f in ("left", "right", "cond", "then", "other") if isinstance(getattr(e, f, None), Expr)]
    kids += list(getattr(e, "args", ()))
    out: list[Expr] = []
    for kid in kids:
        out += [leaf for leaf in leaves(kid) if leaf not in out]
    return out


# ---- building typed expressions -------------------------------------------------

def fail(where: Location, message: str):
    raise InputError(where, message)


def suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def all_names() -> list[str]:
    return (list(KNOB) + [f"hw.{f}" for f in HW_FIELDS] + [f"guest.{f}" for f in GUEST_FIELDS]
            + ["gate.sel", "gate.ec"])


def name(where: Location, parts: list[str], outcomes: bool = True, sides: bool = False) -> Expr:
    """Resolve a (dotted) name: a knob, an outcome field, a derived name or a bare word.

    With `sides` (pvsmt diff), `old.NAME` and `new.NAME` name one side's system knob.
    """
    dotted = ".".join(parts)
    if dotted in KNOB:
        return Var(where, KNOB[dotted].domain, dotted)
    if sides and parts[0] in ("old", "new") and len(parts) > 1:
        rest = ".".join(parts[1:])
        if rest not in KNOB or not KNOB[rest].system:
            system = [k.name for k in KNOB.values() if k.system]
            fail(where, f"'{dotted}': old./new. name a system knob ({', '.join(system)})")
        return Var(where, KNOB[rest].domain, dotted)
    if parts[0] in ("hw", "guest") and len(parts) == 2:
        fields = HW_FIELDS if parts[0] == "hw" else GUEST_FIELDS
        if not outcomes:
            fail(where, f"'{dotted}' is an outcome; only knobs may be used here")
        if parts[1] not in fields:
            fail(where, f"unknown field '{dotted}'{suggest(dotted, all_names())}; "
                        f"{parts[0]} has {', '.join(fields)}")
        return Outcome(where, fields[parts[1]], parts[0], parts[1])
    if dotted in ("gate.sel", "gate.ec"):
        return _selector(where, with_rpl=dotted == "gate.sel")
    if len(parts) == 1:
        return Sym(where, INT, dotted)
    fail(where, f"unknown name '{dotted}'{suggest(dotted, all_names())}")


def _selector(where: Location, with_rpl: bool) -> Expr:
    index = Var(where, KNOB["gate.index"].domain, "gate.index")
    table = Var(where, KNOB["gate.table"].domain, "gate.table")
    is_ldt = Compare(where, BOOL, "==", table, Const(where, INT, GateTable.LDT))
    ti = Ite(where, INT, is_ldt, Const(where, INT, 4), Const(where, INT, 0))
    ec = Arith(where, INT, "+", Arith(where, INT, "*", index, Const(where, INT, 8)), ti)
    return Arith(where, INT, "+", ec, Var(where, KNOB["gate.rpl"].domain, "gate.rpl")) if with_rpl else ec


def table_ref(where: Location, table: str, index: Expr, field: str) -> Expr:
    t = TABLE[table]
    if field not in t.fields:
        fail(where, f"{table}[...] has no field '{field}'; it has {', '.join(t.fields)}")
    require_int(index)
    if isinstance(index, Const) and not 0 <= index.value <= 255:
        fail(index.where, f"{table}[{index.value:#x}]: a vector is 0..255")
    return TableRef(where, t.fields[field], table, field, index)


def number(where: Location, text: str) -> Expr:
    return Const(where, INT, int(text, 0))


def require_bool(e: Expr) -> Expr:
    if isinstance(e, Sym):
        fail(e.where, f"'{e.word}' is not a condition{suggest(e.word, all_names())}")
    if not e.is_bool:
        fail(e.where, f"expected a condition (true/false), found {describe(e)}")
    return e


def require_int(e: Expr) -> Expr:
    if isinstance(e, Sym):
        fail(e.where, f"unknown name '{e.word}'{suggest(e.word, all_names())}")
    if e.domain.boolean or e.domain.enum is not None or isinstance(e, NoneLit):
        fail(e.where, f"expected a number, found {describe(e)}")
    return e


def describe(e: Expr) -> str:
    if isinstance(e, NoneLit):
        return "'none'"
    if e.domain.boolean:
        return "a condition"
    if e.domain.enum is not None:
        name = e.domain.enum.__name__
        return f"{'an' if name[0] in 'AEIOU' else 'a'} {name} ({e.domain.spelling()})"
    return "a number"


def logic(where: Location, op: str, args: list[Expr]) -> Expr:
    return Logic(where, BOOL, op, tuple(require_bool(a) for a in args))


def arith(where: Location, op: str, left: Expr, right: Expr) -> Expr:
    require_int(left)
    require_int(right)
    if op == "<<" and not isinstance(right, Const):
        fail(right.where, "'<<' needs a constant shift")
    if op == "%" and not (isinstance(right, Const) and right.value > 0):
        fail(right.where, "'%' needs a positive constant divisor")
    return Arith(where, INT, op, left, right)


def call(where: Location, fn: str, arg: Expr) -> Expr:
    if fn != "idt_ec":
        fail(where, f"unknown function '{fn}'; the only function is idt_ec(vector)")
    require_int(arg)
    eight = Const(where, INT, 8)
    return Arith(where, INT, "+", Arith(where, INT, "*", arg, eight), Const(where, INT, 2))


def _constant(sym: Expr, other: Expr) -> Expr:
    """Give a bare word or 0/1 the type of the other side of a comparison."""
    d = other.domain
    if isinstance(sym, Sym):
        if d.enum is None:
            fail(sym.where, f"unknown name '{sym.word}'{suggest(sym.word, all_names())}")
        try:
            return Const(sym.where, d, d.enum.parse(sym.word))
        except ValueError:
            fail(sym.where, f"'{sym.word}' is not a value of {describe(other)}")
    if isinstance(sym, NoneLit):
        if d.optional:
            return sym
        if d.enum is not None and "NONE" in d.enum.__members__:
            return Const(sym.where, d, d.enum["NONE"])
        fail(sym.where, f"'none' cannot be compared with {describe(other)}")
    if d.boolean and isinstance(sym, Const) and not sym.domain.boolean:
        if sym.value not in (0, 1):
            fail(sym.where, f"{sym.value} is not 0 or 1")
        return Const(sym.where, BOOL, bool(sym.value))
    return sym


def compare(where: Location, op: str, left: Expr, right: Expr) -> Expr:
    left, right = _constant(left, right), _constant(right, left)
    if isinstance(left, (Sym, NoneLit)) and isinstance(right, (Sym, NoneLit)):
        fail(where, "a comparison needs a name on one side")
    for side in (left, right):
        if isinstance(side, Sym):
            fail(side.where, f"unknown name '{side.word}'{suggest(side.word, all_names())}")
    lk, rk = _sort(left), _sort(right)
    if lk != rk:
        fail(where, f"cannot compare {describe(left)} with {describe(right)}")
    if op not in ("==", "!=") and lk != "int":
        fail(where, f"'{op}' needs numbers, found {describe(left)}")
    if op in ("==", "!="):
        for const, other in ((left, right), (right, left)):
            _in_range(const, other)
    return Compare(where, BOOL, op, left, right)


def _in_range(const: Expr, other: Expr) -> None:
    """`vector == 999` can never hold: a located error, not a vacuous proof."""
    d = other.domain
    if not isinstance(const, Const) or d is INT or d.boolean or d.enum is not None or const.domain.boolean:
        return
    if not d.lo <= const.value <= d.hi:
        fail(const.where, f"{const.value} is out of range for {describe_name(other)} ({d.spelling()})")


def describe_name(e: Expr) -> str:
    return e.text or (e.name if isinstance(e, Var) else f"{e.layer}.{e.field}" if isinstance(e, Outcome)
                      else describe(e))


def _sort(e: Expr) -> str:
    if isinstance(e, NoneLit):
        return "int"
    if e.domain.boolean:
        return "bool"
    if e.domain.enum is not None:
        return e.domain.enum.__name__
    return "int"


def member(where: Location, x: Expr, items: list, negate: bool) -> Expr:
    """`x in {a, b, lo..hi}` as a disjunction."""
    tests = []
    for item in items:
        if isinstance(item, tuple):
            lo, hi = item
            tests.append(logic(where, "and", [compare(where, ">=", x, lo), compare(where, "<=", x, hi)]))
        else:
            tests.append(compare(item.where, "==", x, item))
    test = tests[0] if len(tests) == 1 else logic(where, "or", tests)
    return logic(where, "not", [test]) if negate else test


def is_guest_level(e: Expr) -> bool:
    """Does the expression read anything that exists only where PV guests exist?"""
    guest_tables = {t.name for t in TABLES if t.guest_layer}
    for n in e.names():
        if n.startswith("guest.") or n in guest_tables or (n in KNOB and KNOB[n].guest_layer):
            return True
    return False
