"""One concrete configuration from a spec and `--set NAME=VALUE` settings.

Every name gets a value: from --set, else from a spec fact, else from the spec's
defaults (the last default whose `when` holds).  The result says where each value
came from, and settings that contradict the spec or each other are errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .concrete import Config, ConcreteEnv, broken_axioms
from ..errors import InputError
from ..lang.spec import Fact, Spec, is_system
from ..model.vocab import KNOB, KNOBS, TABLE, TABLES, Domain, SysenterCS, domain_of
from ..lang.expr import suggest

_TABLE_NAME = re.compile(r"^(idt|tt)(?:\.|\[)(0x[0-9a-fA-F]+|[0-9]+)\]?\.([a-z_]+)$")


def all_names(spec: Spec) -> list[str]:
    """Every knob and table entry name a configuration of `spec` has."""
    names = [k.name for k in KNOBS if spec.has_guests or not k.guest_layer]
    for t in TABLES:
        if spec.has_guests or not t.guest_layer:
            names += [t.knob_name(v, f) for v in range(256) for f in t.fields]
    return names


def parse_setting(arg: str) -> tuple[str, object]:
    """`NAME=VALUE` as a canonical name and a value; errors name the argument."""
    where = f"--set {arg}"
    if "=" not in arg:
        raise InputError(where, "expected NAME=VALUE")
    name, text = (p.strip() for p in arg.split("=", 1))
    name, domain = canonical(name, where)
    if name == "sysenter_cs" and text == "0":
        return name, SysenterCS.NULL
    try:
        return name, domain.parse(text)
    except ValueError as exc:
        raise InputError(where, f"bad value '{text}' for {name}: {exc}") from None


def canonical(name: str, where: str) -> tuple[str, Domain]:
    if name in KNOB:
        return name, KNOB[name].domain
    m = _TABLE_NAME.match(name)
    if m:
        table, vector, field = TABLE[m[1]], int(m[2], 0), m[3]
        if vector > 255:
            raise InputError(where, f"vector {m[2]} is over 255")
        if field not in table.fields:
            raise InputError(where, f"{table.name}.N has no field '{field}'; it has {', '.join(table.fields)}")
        return table.knob_name(vector, field), table.fields[field]
    hint = suggest(name, list(KNOB) + ["tt.N.present", "tt.N.dpl", "idt.N.dpl", "idt.N.present"])
    raise InputError(where, f"unknown name '{name}'{hint}")


@dataclass(frozen=True)
class Resolved:
    config: Config
    source: dict[str, str]  # name -> "set" | "spec" | "default"

    def defaulted(self) -> list[str]:
        return [n for n, s in self.source.items() if s == "default"]


def resolve(spec: Spec, settings: dict[str, object]) -> Resolved:
    """Give every name of `spec` a value, or say which setting is at fault."""
    _check_applicable(spec, settings)
    values = dict(settings)
    source = {n: "set" for n in settings}
    names = all_names(spec)
    known = set(names)
    pending = [n for n in names if n not in values]
    while pending:
        left = [n for n in pending if not _settle(spec, n, values, source, known)]
        if len(left) == len(pending):
            raise InputError(spec.path, f"no value for {left[0]}: give --set {left[0]}=...")
        pending = left
    config = Config(values)
    _check_facts(spec, config, settings)
    _check_axioms(spec, config, source)
    return Resolved(config, source)


def _check_applicable(spec: Spec, settings: dict[str, object]) -> None:
    if spec.has_guests:
        return
    for name in settings:
        head = name.split(".", 1)[0]
        guest_layer = KNOB[name].guest_layer if name in KNOB else TABLE[head].guest_layer
        if guest_layer:
            raise InputError(f"--set {name}", f"spec {spec.name} has no PV guests (guest = none): "
                                              f"'{name}' does not apply")


def _applicable(facts: list[Fact], known: set[str]) -> list[Fact]:
    """Facts whose condition reads only names the spec has (others can never hold)."""
    return [f for f in facts if f.when is None or f.when.names() <= known]


def _ready(facts: list[Fact], values: dict) -> bool:
    return all(f.when is None or f.when.names() <= values.keys() for f in facts)


def _holds(fact: Fact, values: dict) -> bool:
    return fact.when is None or bool(fact.when.eval(ConcreteEnv(Config(values))))


def _settle(spec: Spec, name: str, values: dict, source: dict, known: set[str]) -> bool:
    """Try to give `name` its spec or default value; False if its conditions must wait.

    The spec's facts mean what spec.Spec.allowed says (the Z3 encoding asserts the same): a
    name whose holding facts allow one value takes it; otherwise its default, which must
    be one of the allowed values."""
    facts = _applicable(spec.facts.get(name, []), known)
    if not _ready(facts, values):
        return False
    live = {id(f) for f in facts}
    allowed = spec.allowed(name, lambda f: id(f) in live and _holds(f, values))
    if allowed is not None and len(allowed) == 1:
        values[name], source[name] = allowed[0], "spec"
        return True
    defaults = _applicable(spec.defaults.get(name, []), known)
    if not _ready(defaults, values):
        return False
    chosen = [f for f in defaults if _holds(f, values)]
    if not chosen:
        raise InputError(spec.path, f"spec {spec.name} has no default for {name} here: add "
                                    f"`default {name} = ...` to the spec, or give --set {name}=...")
    default = chosen[-1]
    if allowed is not None and default.values[0] not in allowed:
        shown = ", ".join(_format(name, v) for v in allowed) or "none"
        raise InputError(default.where, f"default {name} = {_format(name, default.values[0])} is not a value "
                                        f"spec {spec.name} allows here ({shown}): give a default within its facts")
    values[name], source[name] = default.values[0], "default"
    return True


def _format(name: str, value) -> str:
    return domain_of(name).format(value)


def _check_facts(spec: Spec, config: Config, settings: dict) -> None:
    """A --set of a situation knob must respect the spec (system knobs override it)."""
    for name, value in settings.items():
        if is_system(name):
            continue
        for fact in spec.facts.get(name, []):  # the holding facts conjoin (spec.Spec.allowed): each must allow it
            if _holds(fact, config.values) and value not in fact.values:
                allowed = ", ".join(KNOB[name].domain.format(v) for v in fact.values) or "none"
                raise InputError(f"--set {name}={KNOB[name].domain.format(value)}",
                                 f"spec {spec.name} allows {name} = {allowed} only ({fact.where})")


def _check_axioms(spec: Spec, config: Config, source: dict) -> None:
    broken = broken_axioms(config, guests=spec.has_guests)
    if not broken:
        return
    axiom = broken[0]
    parts = []
    for name in axiom.knobs:
        value = KNOB[name].domain.format(config.get(name))
        parts.append(f"{name}={value}" + ("" if source.get(name) == "set" else f" ({source.get(name)})"))
    raise InputError("--set", f"contradictory settings {', '.join(parts)}: {axiom.says} [{axiom.cite}]")
