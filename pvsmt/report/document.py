"""The report of a `pvsmt prove` run as one document: plain data, the same in every format.

`prove_document` turns results into a JSON-ready dict (schema: docs/report-format.md,
`SCHEMA` below); the text, email, markdown and JUnit renderers (pvsmt.report.formats)
read only this dict, so every format says the same thing.  Nothing here runs Z3,
and nothing depends on the clock unless timings are asked for: the same input
gives the same bytes.
"""

from __future__ import annotations

from ..backends.concrete import ConcreteEnv
from .contrast import with_fred
from ..analysis.roles import Role, key_of
from ..lang.expr import Outcome, TableRef, Var, leaves
from .wording import (versions, guest_detail, hardware_json, hw_text, insn_text, one_line, outcome_json, relevant, shown_path,
                     trace_json, who_text, json_value)
from ..analysis.provenance import path_facts
from ..lang.spec import Fact
from ..model.vocab import GUEST_FIELDS, TABLE, Domain, Kind, domain_of

#: The report's schema: bump the number when a field changes meaning or goes away
#: (adding a field keeps the number).
SCHEMA = "pvsmt-prove/1"

ROLE_ANY, ROLE_ONLY, ROLE_VALUES, ROLE_DETERMINED = "any", "only", "values", "determined"


def prove_document(results, limits, exit_code: int, seconds: float | None = None,
                   unused: dict[str, list[Fact]] | None = None, overrides: dict | None = None) -> dict:
    """The whole run.  `seconds` (total and per check) only when timings were asked for;
    `overrides`, the --set settings (a what-if), in the header and on every path."""
    overrides = overrides or {}
    counts: dict[str, int] = {}
    for r in results:
        counts[r.verdict.label] = counts.get(r.verdict.label, 0) + 1
    doc = {
        "schema": SCHEMA,
        **versions(),
        "command": "prove",
        "limits": {"rlimit": limits.rlimit, "timeout_s": limits.timeout_ms / 1000, "seed": limits.seed,
                   "max_counterexamples": limits.max_counterexamples},
        "overrides": settings_text(overrides),
        "summary": {"checks": len(results), **counts},
        "exit_code": exit_code,
        "checks": [check_document(r, timed=seconds is not None, overrides=overrides) for r in results],
    }
    if unused is not None:
        doc["unused_facts"] = {name: [fact_document(f) for f in facts] for name, facts in unused.items()}
    if seconds is not None:
        doc["seconds"] = round(seconds, 3)
    return doc


def settings_text(overrides: dict) -> list[str]:
    """`--set` settings as written back: `idt.0x04.dpl=0`."""
    return [f"{name}={domain_of(name).format(value)}" for name, value in overrides.items()]


def check_document(r, timed: bool = False, overrides: dict | None = None) -> dict:
    inv = r.invariant
    out = {
        "invariant": inv.name,
        "file": shown_path(inv.where.path),
        "line": inv.where.line,
        "spec": r.spec.name,
        "spec_file": shown_path(r.spec.path),
        "description": inv.description or None,
        "cites": list(inv.cites),
        "verdict": r.verdict.label,
        "reason": r.reason or None,
        "relies_on": {
            "facts": [fact_document(f) for f in r.facts] if not r.counterexamples else [],
            "facts_unknown": r.facts_unknown or None,
            "uncertain_rules": [rule_document(x) for x in r.relies_on],
            "uncertain_facts": [fact_document(f) for f in r.uncertain_facts],
        },
        "unreachable": list(r.unreachable),
        "counterexamples": [counterexample_document(c, inv, r.spec, overrides or {}) for c in r.counterexamples],
        "overrides": settings_text(overrides or {}),
    }
    if timed:
        out["seconds"] = round(r.seconds, 3)
    return out


def fact_document(f: Fact) -> dict:
    if f.where is None:  # a --set: a what-if, not the spec's
        name = f.statement or f"--set {f.name}={domain_of(f.name).format(f.values[0])}"
        return {"name": name, "statement": "what-if: overrides the spec", "file": None, "line": None,
                "cites": [], "uncertain": None}
    return {"name": f.ref, "statement": f.statement, "file": shown_path(f.where.path) if f.where else None,
            "line": f.where.line if f.where else None, "cites": list(f.cite), "uncertain": f.uncertain or None}


def rule_document(rule) -> dict:
    return {"rule": rule.name, "says": rule.says, "source": rule.cite, "uncertain": rule.uncertain or None}


def counterexample_document(cex, inv, spec, overrides: dict | None = None) -> dict:
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
    return {
        "summary": one_line(config, ev, guests),
        "situation": who_text(config, guests),
        "instruction": insn_text(config),
        "changed": [label(key_of(n, vector)) for n in cex.changed],
        "knobs": [knob_document(config, n, roles, vector, cex.changed, cex.defaults, overrides or {})
                  for n in names],
        "hardware": hardware_json(ev.hw),
        "hardware_text": hw_text(ev.hw),
        "guest": guest,
        "guest_text": guest_detail(ev.guest) if guests else None,
        "failing": failing_document(cex, inv),
        "path": trace_json(ev),
        "facts": [fact_document(f) for f in facts],
        "uncertain": [s.rule.uncertain for s in ev.trace if s.rule.uncertain],
    }


def knob_document(config, name: str, roles: dict[str, Role], vector, changed, defaults: dict,
                  overrides: dict | None = None) -> dict:
    """One name of a counterexample: its value and whether the violation needs it."""
    key = key_of(name, vector)
    role = roles.get(key)
    domain = domain_of(name)
    value = config.get(name)
    out = {"name": name, "label": label(key), "value": json_value(domain, value),
           "value_text": domain.format(value), "changed": name in changed,
           "default": json_value(domain, defaults[name]) if name in defaults else None,
           "default_text": domain.format(defaults[name]) if name in defaults else None}
    if role is None and name in (overrides or {}):
        out.update(role="spec", violating=None, violating_text="set by --set (what-if)")
    elif role is None:
        out.update(role="spec", violating=None, violating_text="set by the spec")
    elif role.violating is None:
        kind = ROLE_DETERMINED if role.determined else ROLE_ANY
        out.update(role=kind, violating=None, violating_text="the only possible value" if role.determined else "any")
    else:
        kind = ROLE_ONLY if tuple(role.violating) == (value,) else ROLE_VALUES
        text = "only this value" if kind == ROLE_ONLY else "any of " + values_text(role.domain, role.violating)
        out.update(role=kind, violating=[json_value(role.domain, v) for v in role.violating],
                   violating_text=text + ("" if role.exact else " (at least)"))
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
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(domain.format(a) if a == b else f"{domain.format(a)}-{domain.format(b)}" for a, b in runs)


def failing_document(cex, inv) -> dict | None:
    """The smallest false part of the property, where it is written, and the values it reads."""
    part = cex.failing
    if part is None:
        return None
    env = ConcreteEnv(cex.config, cex.evaluation)
    values = {}
    for leaf in leaves(part):
        values[leaf_name(leaf, env)] = leaf.domain.format(leaf.eval(env))
    return {"text": part.text or None, "file": shown_path(part.where.path), "line": part.where.line,
            "values": values, "whole": part is inv.prove}


def leaf_name(leaf, env) -> str:
    if isinstance(leaf, Var):
        return leaf.name
    if isinstance(leaf, Outcome):
        return f"{leaf.layer}.{leaf.field}"
    if isinstance(leaf, TableRef):
        return f"{leaf.table}[{leaf.index.eval(env):#04x}].{leaf.field}"
    return leaf.text  # pragma: no cover


__all__ = ["SCHEMA", "prove_document", "values_text", "label"]
