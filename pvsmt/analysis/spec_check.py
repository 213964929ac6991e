"""Checks every command makes of a spec before using it (lang/spec.py defines what facts mean).

- `check_space`: the spec (with the run's `--set` overrides) allows some
  configuration.  An empty spec is an error (exit 2), never "proved", "no
  differences" or an empty table; a `--set` that contradicts the spec or the other
  settings is reported as `explain` reports it.  Also returns the situation values
  the spec rules out beyond what its unconditional facts say outright (a
  conditional fact that, with the axioms, forbids a value everywhere): the
  commands print them as notes.
- `check_defaults`: the spec's defaults (with the facts that fix a name) give
  every name a value in every configuration, so `explain`, `table` and the
  closest-counterexample step of `prove` never run without one.
"""

from __future__ import annotations

import itertools

from ..backends.configure import all_names, resolve
from ..errors import InputError
from ..lang.spec import Fact, Spec, is_system
from ..backends.smt import GaveUp, Limits, Sat, Unknown, Unsat, check, new_solver
from ..model.vocab import KNOB, KNOBS, domain_of

#: Situation knobs with more values than this are not probed value by value for notes.
MAX_PROBED = 16


def check_space(spec: Spec, overrides: dict | None = None, limits: Limits = Limits()) -> list[str]:
    """Raise InputError if `spec` (with `overrides`) allows no configuration; else the notes on the
    situation values it rules out.  An unknown answer raises smt.GaveUp: the caller reports it
    (prove's checks then answer `unknown` themselves; a diff is incomplete)."""
    from ..backends.encode import Encoding  # the solver side, imported when a command runs
    overrides = dict(overrides or {})
    enc = Encoding(spec, overrides, outcomes=False)  # which configurations exist: no outcome is read
    solver = new_solver(limits, enc.ctx)
    solver.add(enc.space)
    answer = check(solver)
    if isinstance(answer, Unknown):
        raise GaveUp(answer.reason, f"could not decide whether spec {spec.name} allows any configuration")
    if isinstance(answer, Unsat):
        if overrides:
            resolve(spec, overrides)  # the explain-style message, when the settings are at fault
            settings = " ".join(f"--set {n}={domain_of(n).format(v)}" for n, v in overrides.items())
            raise InputError(settings, f"no configuration of spec {spec.name} allows these settings together "
                                       f"({_culprits(spec, overrides, limits)})")
        raise InputError(spec.path, f"spec {spec.name} allows no configuration: its facts contradict each "
                                    f"other or the model's axioms ({_culprits(spec, {}, limits)})")
    return _ruled_out(spec, overrides, enc, solver, limits)


def _culprits(spec: Spec, overrides: dict, limits: Limits) -> str:
    """The declarations (and settings) of an unsat core of the tracked encoding, as text."""
    from ..backends.encode import Encoding
    enc = Encoding(spec, overrides, tracked=True)
    solver = new_solver(limits, enc.ctx)
    solver.add(enc.formula)
    lits = enc.facts_assumed()
    answer = check(solver, *lits)
    if not isinstance(answer, Unsat):
        return "the axioms of the model alone, with the settings"
    core = {c.get_id() for c in answer.core}
    facts = [f for lit, f in enc.tracked.values() if lit.get_id() in core]
    if not facts:
        return "the model's axioms alone rule out the settings" if overrides else "the model's axioms"
    return "with the model's axioms: " + "; ".join(f"{f.ref} `{f.statement}`" for f in facts)


def _explicit(spec: Spec) -> Spec:
    """The spec with only its unconditional facts on situation knobs (what it restricts outright)."""
    facts = {n: fs for n, fs in spec.facts.items()
             if n in KNOB and not is_system(n) and len(fs) == 1 and fs[0].when is None}
    return Spec(spec.name, spec.title, spec.path, facts, {}, spec.parents)


def _ruled_out(spec: Spec, overrides: dict, enc, solver, limits: Limits) -> list[str]:
    """Notes: values of small situation knobs impossible in the spec yet possible with only its
    unconditional situation facts (and the same overrides)."""
    from ..backends.encode import Encoding
    notes = []
    plain = None
    for knob in KNOBS:
        if knob.system or knob.name in overrides or (knob.guest_layer and not spec.has_guests):
            continue
        if len(knob.domain.values()) > MAX_PROBED or isinstance(enc.term(knob.name), (bool, int)):
            continue
        gone = []
        for v in knob.domain.values():
            term = enc.term(knob.name)
            if isinstance(check(solver, term == enc.boolean(v) if knob.domain.boolean else term == int(v)), Unsat):
                gone.append(v)
        if not gone:
            continue
        if plain is None:
            base = Encoding(_explicit(spec), {n: v for n, v in overrides.items() if not is_system(n)},
                            outcomes=False)
            plain = (base, new_solver(limits, base.ctx))
            plain[1].add(base.space)
        base, psolver = plain
        implicit = []
        for v in gone:
            term = base.term(knob.name)
            if isinstance(term, (bool, int)):
                continue
            if isinstance(check(psolver, term == base.boolean(v) if knob.domain.boolean else term == int(v)), Sat):
                implicit.append(v)
        if implicit:
            shown = ", ".join(knob.domain.format(v) for v in implicit)
            notes.append(f"spec {spec.name} rules out {knob.name} = {shown} (its conditional facts allow no "
                         f"value there)")
    return notes


def check_defaults(spec: Spec) -> None:
    """Raise InputError, at the spec, for a name that some configuration leaves without a value:
    no single value from the facts and no default whose `when` holds."""
    known = set(all_names(spec))
    for name in all_names(spec):
        facts = [f for f in spec.facts.get(name, ()) if f.when is None or f.when.names() <= known]
        defaults = [f for f in spec.defaults.get(name, ()) if f.when is None or f.when.names() <= known]
        gap = _gap(facts, defaults)
        if gap is not None:
            where = f" (where {gap})" if gap else ""
            raise InputError(spec.path, f"spec {spec.name} gives no default for {name}{where}: add "
                                        f"`default {name} = ...` (every name needs one, for explain, table "
                                        f"and prove's closest counterexample)")


def _gap(facts: list[Fact], defaults: list[Fact]) -> str | None:
    """An assignment of the names the conditions read under which neither a single value from the
    facts nor a default applies ("" if no condition is involved), or None if there is none."""
    if any(f.when is None for f in defaults):
        return None
    single = [f for f in facts if len(f.values) == 1]
    if any(f.when is None for f in single):
        return None
    conds = [f.when for f in single + defaults]
    if not conds:
        return ""
    names = sorted(set().union(*(c.names() for c in conds)))
    if any(n not in KNOB for n in names):
        return None  # a condition over a table: not checked statically (resolve reports it if hit)
    from ..backends.concrete import ConcreteEnv, Config
    domains = [KNOB[n].domain.values() for n in names]
    for combo in itertools.islice(itertools.product(*domains), 1 << 16):
        env = ConcreteEnv(Config(dict(zip(names, combo))))
        if not any(bool(c.eval(env)) for c in conds):
            return " and ".join(f"{n} == {KNOB[n].domain.format(v)}" for n, v in zip(names, combo))
    return None


__all__ = ["check_defaults", "check_space"]
