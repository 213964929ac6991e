"""Formatting `pvsmt diff` results: classes in the --expect syntax, and JSON.

A class prints as a `difference NAME { when ... }` block whose comment lines give
the two outcomes and a witness, so a reviewer can paste it into an --expect file.
Pure functions; nothing here runs Z3.
"""

from __future__ import annotations

from ..backends.concrete import ConcreteOps
from ..analysis.diff import DiffClass, DiffResult, Literal
from ..model.outcome import differs, open_fields
from .wording import (runs, guest_detail, hw_text, insn_text, outcome_json, shown_path, trace_lines, version_line,
                     versions, who_text)
from ..model.vocab import GUEST_FIELDS, HW_FIELDS

# ---- conditions ---------------------------------------------------------------------

def _value(lit: Literal, value) -> str:
    if lit.domain.boolean:
        return "1" if value else "0"
    return lit.domain.format(value)


def _ranges(values) -> list[str]:
    return [f"{lo:#04x}" if lo == hi else f"{lo:#04x}..{hi:#04x}" for lo, hi in runs(values)]


def _name(lit: Literal, vector: int | None) -> str:
    if lit.key.startswith("tt[vector]") and vector is not None:
        return lit.key.replace("[vector]", f"[{vector:#04x}]")
    return lit.key


def literal_text(lit: Literal, vector: int | None = None) -> str:
    """One literal in the expression language of .inv and --expect files."""
    name = _name(lit, vector)
    if len(lit.domain.values()) > 16:  # the vector, a selector index: sets of numbers
        holes = sorted(set(lit.domain.values()) - set(lit.values))
        if len(lit.values) == 1:
            return f"{name} == {lit.values[0]:#04x}"
        if len(holes) <= 8:
            return f"{name} not in {{{', '.join(f'{h:#04x}' for h in holes)}}}"
        return f"{name} in {{{', '.join(_ranges(lit.values))}}}"
    if len(lit.values) == 1:
        return f"{name} == {_value(lit, lit.values[0])}"
    others = [v for v in lit.domain.values() if v not in lit.values]
    if len(others) == 1:
        return f"{name} != {_value(lit, others[0])}"
    return f"{name} in {{{', '.join(_value(lit, v) for v in lit.values)}}}"


def _vector(cls: DiffClass) -> int | None:
    """The class's one vector, if it has one: `tt[vector]` then prints as `tt[0x80]`."""
    return next((l.values[0] for l in cls.literals if l.key == "vector" and len(l.values) == 1), None)


def condition_text(cls: DiffClass) -> str:
    return " and ".join(literal_text(l, _vector(cls)) for l in cls.literals) or "true"


def free_names(cls: DiffClass) -> list[str]:
    v = _vector(cls)
    return [k.replace("[vector]", f"[{v:#04x}]") if v is not None else k for k in cls.free]


# ---- outcomes -----------------------------------------------------------------------

def outcome_text(cls_side, level: str) -> str:
    ev = cls_side.evaluation
    return hw_text(ev.hw) if level == "hardware" else guest_detail(ev.guest)


def differing_fields(cls: DiffClass, level: str) -> list[str]:
    ops = ConcreteOps([])
    names = GUEST_FIELDS if level == "guest" else HW_FIELDS
    pick = (lambda w: w.evaluation.guest) if level == "guest" else (lambda w: w.evaluation.hw)
    a, b = pick(cls.old), pick(cls.new)
    return [n for n in names if differs(ops, a, b, (n,))]


def class_block(cls: DiffClass, name: str, result: DiffResult, verbose: bool = False) -> list[str]:
    level = result.level
    width = max(len(result.old.name), len(result.new.name)) + 1
    config = cls.old.config
    guests = cls.old.evaluation.guest is not None
    lines = [f"difference {name} {{", f"    when {condition_text(cls)}"]
    if cls.free:
        lines.append(f"    # any: {', '.join(free_names(cls))}")
    lines.append(f"    # {result.old.name + ':':<{width}} {outcome_text(cls.old, level)}")
    lines.append(f"    # {result.new.name + ':':<{width}} {outcome_text(cls.new, level)}")
    fields_ = differing_fields(cls, level)
    if fields_:
        lines.append(f"    # differs in: {', '.join(fields_)}")
    lines.append(f"    # witness: {insn_text(config)} [{who_text(config, guests)}]")
    for rule in cls.uncertain:
        lines.append(f"    # UNCERTAIN ({rule.name}): {rule.uncertain}")
    if verbose:
        for side, w in (("old", cls.old), ("new", cls.new)):
            lines.append(f"    # path in {getattr(result, side).name}:")
            lines.extend(f"    #   {line}" for line in trace_lines(w.evaluation))
    lines.append("}")
    return lines


# ---- the whole result -------------------------------------------------------------------

def diff_text(result: DiffResult, verbose: bool = False) -> str:
    old, new = result.old, result.new
    out = [f"pvsmt diff, {result.level} level: OLD {old.name} ({shown_path(old.path)}), "
           f"NEW {new.name} ({shown_path(new.path)}); {version_line()}"]
    out += [f"note: {n}" for n in result.notes]
    for s in result.expected:
        state = "present" if s.present else "NOT PRESENT: no configuration it names differs"
        out.append(f"expected difference {s.expected.name}: {state}")
    out.append("")
    for i, cls in enumerate(result.differences, 1):
        out += class_block(cls, f"class-{i}", result, verbose) + [""]
    if result.unspecified:
        out.append(f"Left unspecified by a side (not differences): {len(result.unspecified)} class(es)"
                   + (f" (partial: {result.unspecified_reason})" if result.unspecified_reason else ""))
        for i, cls in enumerate(result.unspecified, 1):
            out += [("    " + line) for line in class_block(cls, f"unspecified-{i}", result, verbose)] + [""]
    out.append(summary(result))
    return "\n".join(out)


def summary(result: DiffResult) -> str:
    unexpected = "unexpected " if result.expected else ""
    missing = [s.expected.name for s in result.expected if not s.present]
    if not result.complete:
        head = f"incomplete: {result.reason}; {len(result.differences)} {unexpected}class(es) found so far"
    elif not result.differences:
        head = "no unexpected differences" if result.expected else "no differences (proved by Z3)"
    else:
        head = f"{len(result.differences)} {unexpected}class(es) of differing configurations (complete: proved by Z3)"
    if result.expected:
        head += f"; {len(result.expected) - len(missing)} of {len(result.expected)} expected difference(s) present"
    if missing:
        head += f" (missing: {', '.join(missing)})"
    return head


def class_json(cls: DiffClass, name: str, result: DiffResult) -> dict:
    level = result.level
    def side(w):
        ev = w.evaluation
        record = ev.guest if level == "guest" else ev.hw
        fields_ = GUEST_FIELDS if level == "guest" else HW_FIELDS
        data = {"outcome": outcome_json(record, fields_), "text": outcome_text(w, level),
                "path": [{"rule": s.rule.name, "says": s.text, "source": s.rule.cite} for s in ev.trace]}
        if level == "guest":
            data["unspecified"] = open_fields(record)
        return data
    return {
        "name": name, "when": condition_text(cls),
        "literals": [{"name": l.key, "values": [_value(l, v) for v in l.values]} for l in cls.literals],
        "any": free_names(cls), "differs_in": differing_fields(cls, level),
        "witness": {k: _plain(v) for k, v in sorted(cls.old.config.values.items())},
        "uncertain": [r.name for r in cls.uncertain],
        "old": side(cls.old), "new": side(cls.new),
    }


def _plain(value):
    label = getattr(value, "label", None)
    return label if label is not None else value


def diff_json(result: DiffResult) -> dict:
    return {
        **versions(),
        "old": {"name": result.old.name, "path": shown_path(result.old.path)},
        "new": {"name": result.new.name, "path": shown_path(result.new.path)},
        "level": result.level, "complete": result.complete, "reason": result.reason, "notes": result.notes,
        "unspecified_complete": not result.unspecified_reason,
        "differences": [class_json(c, f"class-{i}", result) for i, c in enumerate(result.differences, 1)],
        "unspecified": [class_json(c, f"unspecified-{i}", result) for i, c in enumerate(result.unspecified, 1)],
        "expected": [{"name": s.expected.name, "present": s.present} for s in result.expected],
        "exit_code": result.exit_code,
    }
