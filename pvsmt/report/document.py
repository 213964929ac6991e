"""The report of a `pvsmt prove` run as one document: typed data, the same in every format.

`prove_document` turns results into a `Report` (dataclasses below); the text, email,
markdown and JUnit renderers (pvsmt.report.formats) read only it, and `Report.json()`
is the JSON format (schema: docs/report-format.md, `SCHEMA` below), so every format
says the same thing.  Nothing here runs Z3, and nothing depends on the clock unless
timings are asked for: the same input gives the same bytes.

A field's JSON key is its name, in declaration order; a field declared `optional()` is
left out of the JSON while it is None (the fields the schema marks as not always there).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from types import UnionType
from typing import Union, get_args, get_origin, get_type_hints

from ..backends.concrete import ConcreteEnv
from .contrast import with_fred
from ..analysis.roles import Role, key_of
from ..lang.expr import Outcome, TableRef, Var, leaves
from .wording import (runs, versions, guest_detail, hardware_json, hw_text, insn_text, one_line, outcome_json,
                      relevant, shown_path, who_text, json_value)
from ..analysis.provenance import path_facts
from ..lang.spec import Fact
from ..model.vocab import GUEST_FIELDS, TABLE, Domain, Kind, domain_of

#: The report's schema: bump the number when a field changes meaning or goes away
#: (adding a field keeps the number).
SCHEMA = "pvsmt-prove/1"

ROLE_ANY, ROLE_ONLY, ROLE_VALUES, ROLE_DETERMINED = "any", "only", "values", "determined"


def optional(default=None):
    """A field the JSON leaves out while it is None."""
    return field(default=default, metadata={"optional": True})


def to_json(value):
    """A document (or a part of one) as JSON-ready data: dataclasses become objects."""
    if is_dataclass(value):
        return {f.name: to_json(getattr(value, f.name)) for f in fields(value)
                if not (f.metadata.get("optional") and getattr(value, f.name) is None)}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def from_json(kind, data):
    """JSON-ready data read back as `kind` (a dataclass, list[...], dict[str, ...], X | None, a plain type)."""
    if data is None:
        return None
    if is_dataclass(kind):
        hints = get_type_hints(kind)
        return kind(**{f.name: from_json(hints[f.name], data[f.name]) for f in fields(kind) if f.name in data})
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, UnionType):
        inner = [a for a in args if a is not type(None)]
        return from_json(inner[0], data) if len(inner) == 1 else data
    if origin is list:
        return [from_json(args[0], v) for v in data]
    if origin is dict:
        return {k: from_json(args[1], v) for k, v in data.items()}
    return data


class Json:
    def json(self) -> dict:
        return to_json(self)

    @classmethod
    def from_json(cls, data: dict):
        """A document read back from its JSON (`pvsmt prove --format json`)."""
        return from_json(cls, data)


@dataclass
class FactRef(Json):
    """A spec declaration (or a --set what-if) a verdict relied on or a path used."""

    name: str
    statement: str
    file: str | None
    line: int | None
    cites: list[str]
    uncertain: str | None


@dataclass
class RuleRef(Json):
    """An UNCERTAIN rule a proof relies on."""

    rule: str
    says: str
    source: str
    uncertain: str | None


@dataclass
class Reliance(Json):
    facts: list[FactRef]
    facts_unknown: str | None
    uncertain_rules: list[RuleRef]
    uncertain_facts: list[FactRef]

    @property
    def uncertain(self) -> bool:
        return bool(self.uncertain_rules or self.uncertain_facts)


@dataclass
class Step(Json):
    """One rule on a counterexample's path."""

    layer: str
    rule: str
    text: str
    source: str
    uncertain: str | None


@dataclass
class Knob(Json):
    """One name of a counterexample: its value and whether the violation needs it."""

    name: str
    label: str
    value: object
    value_text: str
    changed: bool
    default: object
    default_text: str | None
    role: str = "spec"
    violating: list | None = None
    violating_text: str = ""


@dataclass
class Failing(Json):
    """The smallest false part of the property, where it is written, and the values it reads."""

    text: str | None
    file: str
    line: int
    values: dict[str, str]
    whole: bool


@dataclass
class Counterexample(Json):
    summary: str
    situation: str
    instruction: str
    changed: list[str]
    knobs: list[Knob]
    hardware: dict           # the hardware outcome's fields (JSON payload, read by tools only)
    hardware_text: str
    guest: dict | None       # the guest outcome's fields, None without guests
    guest_text: str | None
    failing: Failing | None
    path: list[Step]
    facts: list[FactRef]
    uncertain: list[str]


@dataclass
class Check(Json):
    """One (invariant, spec) pair.  check-xen may change `verdict` and `reason` and sets the
    fields after `seconds`."""

    invariant: str
    file: str
    line: int
    spec: str
    spec_file: str
    description: str | None
    cites: list[str]
    verdict: str
    reason: str | None
    relies_on: Reliance
    unreachable: list[str]
    counterexamples: list[Counterexample]
    overrides: list[str]
    expected: str | None = optional()         # the invariant's `expect`
    as_expected: bool | None = optional()     # with `expected`: met (None: the witness could not be checked)
    seconds: float | None = optional()
    rests_on: list[str] | None = optional()   # check-xen: the Xen functions the verdict rests on
    boot: str | None = optional()             # check-xen --boot: "confirmed"


@dataclass
class Limits(Json):
    rlimit: int
    timeout_s: float
    seed: int
    max_counterexamples: int


@dataclass
class Report(Json):
    """The whole run."""

    schema: str
    pvsmt: str
    z3: str | None
    command: str
    limits: Limits
    overrides: list[str]
    summary: dict[str, int]   # "checks", then a count per verdict label, in the order first seen
    exit_code: int
    checks: list[Check]
    unused_facts: dict[str, list[FactRef]] | None = optional()
    seconds: float | None = optional()

    def recount(self) -> None:
        """`summary` again, after a verdict changed (check-xen)."""
        counts: dict[str, int] = {}
        for c in self.checks:
            counts[c.verdict] = counts.get(c.verdict, 0) + 1
        self.summary = {"checks": len(self.checks), **counts}


def prove_document(results, limits, exit_code: int, seconds: float | None = None,
                   unused: dict[str, list[Fact]] | None = None, overrides: dict | None = None) -> Report:
    """The whole run.  `seconds` (total and per check) only when timings were asked for;
    `overrides`, the --set settings (a what-if), in the header and on every path."""
    overrides = overrides or {}
    report = Report(
        schema=SCHEMA, **versions(), command="prove",
        limits=Limits(limits.rlimit, limits.timeout_ms / 1000, limits.seed, limits.max_counterexamples),
        overrides=settings_text(overrides), summary={}, exit_code=exit_code,
        checks=[check_document(r, timed=seconds is not None, overrides=overrides) for r in results],
        unused_facts=None if unused is None else {name: [fact_document(f) for f in facts]
                                                  for name, facts in unused.items()},
        seconds=round(seconds, 3) if seconds is not None else None)
    report.recount()
    return report


def settings_text(overrides: dict) -> list[str]:
    """`--set` settings as written back: `idt.0x04.dpl=0`."""
    return [f"{name}={domain_of(name).format(value)}" for name, value in overrides.items()]


def check_document(r, timed: bool = False, overrides: dict | None = None) -> Check:
    inv = r.invariant
    return Check(
        invariant=inv.name, file=shown_path(inv.where.path), line=inv.where.line, spec=r.spec.name,
        spec_file=shown_path(r.spec.path), description=inv.description or None, cites=list(inv.cites),
        verdict=r.verdict.label, reason=_reason(r),
        relies_on=Reliance(facts=[fact_document(f) for f in r.facts] if not r.counterexamples else [],
                           facts_unknown=r.facts_unknown or None,
                           uncertain_rules=[rule_document(x) for x in r.relies_on],
                           uncertain_facts=[fact_document(f) for f in r.uncertain_facts]),
        unreachable=list(r.unreachable),
        counterexamples=[counterexample_document(c, inv, r.spec, overrides or {}) for c in r.counterexamples],
        overrides=settings_text(overrides or {}),
        expected=r.expectation.verdict if r.expectation else None,
        as_expected=r.expectation.met if r.expectation else None,
        seconds=round(r.seconds, 3) if timed else None)


def _reason(r) -> str | None:
    """The verdict's reason, and why an expectation was not met."""
    parts = [r.reason, r.expectation.why if r.expectation else ""]
    return "; ".join(p for p in parts if p) or None


def fact_document(f: Fact) -> FactRef:
    if f.where is None:  # a --set: a what-if, not the spec's
        name = f.statement or f"--set {f.name}={domain_of(f.name).format(f.values[0])}"
        return FactRef(name, "what-if: overrides the spec", None, None, [], None)
    return FactRef(f.ref, f.statement, shown_path(f.where.path), f.where.line, list(f.cite), f.uncertain or None)


def rule_document(rule) -> RuleRef:
    return RuleRef(rule.name, rule.says, rule.cite, rule.uncertain or None)


def counterexample_document(cex, inv, spec, overrides: dict | None = None) -> Counterexample:
    ev, config = cex.evaluation, cex.config
    ev = with_fred(config, ev, spec)  # an IDT-mode path says where FRED differs
    facts = cex.facts
    if overrides:  # the path's facts with each --set in place of the spec facts it overrides
        facts = path_facts(spec, config, list(dict.fromkeys([*ev.reads, *cex.inv_reads])), overrides)
    guests = ev.guest is not None
    guest = None
    if guests:
        guest = outcome_json(ev.guest, GUEST_FIELDS)
        if ev.guest.kind == Kind.NONE:
            guest["kind"] = None
    roles = {r.name: r for r in cex.roles}
    names = relevant(ev, cex.inv_reads)
    vector = config.get("vector") if "vector" in names else None
    return Counterexample(
        summary=one_line(config, ev, guests), situation=who_text(config, guests), instruction=insn_text(config),
        changed=[label(key_of(n, vector)) for n in cex.changed],
        knobs=[knob_document(config, n, roles, vector, cex.changed, cex.defaults, overrides or {}) for n in names],
        hardware=hardware_json(ev.hw), hardware_text=hw_text(ev.hw),
        guest=guest, guest_text=guest_detail(ev.guest) if guests else None,
        failing=failing_document(cex, inv),
        path=[Step(s.rule.layer, s.rule.name, s.text, s.rule.cite, s.rule.uncertain or None) for s in ev.trace],
        facts=[fact_document(f) for f in facts],
        uncertain=[s.rule.uncertain for s in ev.trace if s.rule.uncertain])


def knob_document(config, name: str, roles: dict[str, Role], vector, changed, defaults: dict,
                  overrides: dict | None = None) -> Knob:
    """One name of a counterexample: its value and whether the violation needs it."""
    key = key_of(name, vector)
    role = roles.get(key)
    domain = domain_of(name)
    value = config.get(name)
    out = Knob(name=name, label=label(key), value=json_value(domain, value), value_text=domain.format(value),
               changed=name in changed,
               default=json_value(domain, defaults[name]) if name in defaults else None,
               default_text=domain.format(defaults[name]) if name in defaults else None)
    if role is None:
        out.violating_text = "set by --set (what-if)" if name in (overrides or {}) else "set by the spec"
    elif role.violating is None:
        out.role = ROLE_DETERMINED if role.determined else ROLE_ANY
        out.violating_text = "the only possible value" if role.determined else "any"
    else:
        out.role = ROLE_ONLY if tuple(role.violating) == (value,) else ROLE_VALUES
        text = "only this value" if out.role == ROLE_ONLY else "any of " + values_text(role.domain, role.violating)
        out.violating = [json_value(role.domain, v) for v in role.violating]
        out.violating_text = text + ("" if role.exact else " (at least)")
    return out


def label(key: str) -> str:
    """`tt[vector].dpl` -> `TT[vector].dpl`, `idt.0x0d.present` -> `IDT[0x0d].present`."""
    head, _, rest = key.partition(".")
    if key.startswith("tt["):
        return "TT" + key[2:]
    if head in TABLE:
        index, _, fld = rest.partition(".")
        return f"{head.upper()}[{index}].{fld}"
    return key


def values_text(domain: Domain, values) -> str:
    """A set of values, consecutive integers as ranges: `0x20-0x7f, 0x81, 0x83-0xff`."""
    if domain.enum is not None or domain.boolean:
        return ", ".join(domain.format(v) for v in values)
    return ", ".join(domain.format(a) if a == b else f"{domain.format(a)}-{domain.format(b)}" for a, b in runs(values))


def failing_document(cex, inv) -> Failing | None:
    """The smallest false part of the property, where it is written, and the values it reads."""
    part = cex.failing
    if part is None:
        return None
    env = ConcreteEnv(cex.config, cex.evaluation)
    values = {}
    for leaf in leaves(part):
        values[leaf_name(leaf, env)] = leaf.domain.format(leaf.eval(env))
    # `==`, not `is`: a result may come from a worker process, with copies of the invariant's parts
    return Failing(part.text or None, shown_path(part.where.path), part.where.line, values, part == inv.prove)


def leaf_name(leaf, env) -> str:
    if isinstance(leaf, Var):
        return leaf.name
    if isinstance(leaf, Outcome):
        return f"{leaf.layer}.{leaf.field}"
    if isinstance(leaf, TableRef):
        return f"{leaf.table}[{leaf.index.eval(env):#04x}].{leaf.field}"
    return leaf.text  # pragma: no cover


__all__ = ["SCHEMA", "Report", "Check", "Counterexample", "prove_document", "to_json", "values_text", "label"]
