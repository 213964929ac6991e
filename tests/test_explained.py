"""Counterexamples: minimal, explained (roles, smallest false part), several; provenance of
proofs (minimal unsat cores over spec declarations); vacuity per named instruction."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from pvsmt.backends.concrete import Config, ConcreteEnv, broken_axioms, evaluate
from pvsmt.lang.discover import invariant_files, pairs
from pvsmt.lang.parse import SpecLoader, load_invariants
from pvsmt.analysis.provenance import declarations
from pvsmt.analysis.prove import Limits, Prover, Verdict, default_values

ROOT = Path(__file__).resolve().parent.parent
LOADER = SpecLoader()
XEN = LOADER.load(ROOT / "specs" / "xen.spec")
FALSE = pairs(invariant_files([str(ROOT / "tests" / "fixtures" / "false")]), None, LOADER)


@pytest.fixture(scope="module")
def refuted():
    """Every false fixture, refuted with up to three counterexamples."""
    prover = Prover(Limits(max_counterexamples=3))
    return [prover.check(inv, spec) for inv, spec in FALSE]


def write_inv(tmp_path, assume: str, prove: str):
    path = tmp_path / "t.inv"
    path.write_text(f'invariant t {{\n  cite "test"\n  assume {assume}\n  prove {prove}\n}}\n')
    return load_invariants(path)[0]


def variant(cex, key: str, value) -> Config:
    """The counterexample's configuration with one name (a role key) changed."""
    values = dict(cex.config.values)
    if key.startswith("tt[vector]."):
        values[f"tt.{cex.config.get('vector'):#04x}.{key.rsplit('.', 1)[1]}"] = value
    else:
        values[key] = value
    if key == "vector":  # the entries at the vector move with it
        for fld in ("present", "dpl"):
            values[f"tt.{value:#04x}.{fld}"] = cex.config.get(f"tt.{cex.config.get('vector'):#04x}.{fld}")
    return Config(values, fill=cex.config.fill)


def allowed(spec, inv, config) -> bool:
    """Whether the spec's facts, the axioms and the invariant's assumptions all hold."""
    env = ConcreteEnv(config)
    for name, facts in spec.facts.items():
        if name == "guest" and not spec.has_guests:
            continue
        for fact in facts:
            if (fact.when is None or fact.when.eval(env)) and config.get(name) not in fact.values:
                return False
    if broken_axioms(config, guests=spec.has_guests):
        return False
    env = ConcreteEnv(config, evaluate(config, guests=spec.has_guests))
    return all(a.eval(env) for a in inv.assumes)


def violates(spec, inv, config) -> bool:
    env = ConcreteEnv(config, evaluate(config, guests=spec.has_guests))
    return not inv.prove.eval(env)


def test_every_false_fixture_is_refuted_with_explained_counterexamples(refuted):
    assert refuted and all(r.verdict is Verdict.REFUTED for r in refuted)
    for r in refuted:
        for cex in r.counterexamples:
            assert cex.roles, r.invariant.name
            assert cex.failing is not None and cex.failing.text


def test_values_said_to_violate_do_violate_when_replayed(refuted):
    """A role's violating values (and every value of an `any` role), put into the counterexample
    one at a time and replayed without Z3, violate the property whenever the spec allows them."""
    checked = 0
    for r in refuted:
        for cex in r.counterexamples:
            for role in cex.roles:
                values = role.domain.values() if role.violating is None else role.violating
                if len(values) > 16:
                    values = [v for v in values][:: max(1, len(values) // 16)]
                for v in values:
                    config = variant(cex, role.name, v)
                    if allowed(r.spec, r.invariant, config):
                        assert violates(r.spec, r.invariant, config), (r.invariant.name, role.name, v)
                        checked += 1
    assert checked > 100


def test_a_value_left_out_of_a_role_can_satisfy_the_property(refuted):
    """For a name that matters with a small domain, some left-out allowed value lets the property
    hold in the replayed configuration (or the solver found a completion where it does)."""
    seen = 0
    for r in refuted:
        cex = r.counterexample
        for role in cex.roles:
            if role.violating is None or len(role.domain.values()) > 16 or not role.exact:
                continue
            outside = [v for v in role.domain.values() if v not in role.violating]
            configs = [variant(cex, role.name, v) for v in outside]
            ok = [c for c in configs if allowed(r.spec, r.invariant, c)]
            if ok and all(c.get("vector") == cex.config.get("vector") for c in ok):
                seen += 1
                assert any(not violates(r.spec, r.invariant, c) for c in ok) or len(ok) < len(configs)
    assert seen >= 5


def test_smallest_false_part_is_false_and_inside_the_property(refuted):
    for r in refuted:
        cex = r.counterexample
        env = ConcreteEnv(cex.config, cex.evaluation)
        assert cex.failing.eval(env) is False or cex.failing.eval(env) == 0
        assert cex.failing.text in " ".join(r.invariant.prove.text.split())


def test_smallest_false_part_picks_the_false_conjunct(tmp_path):
    inv = write_inv(tmp_path, "insn == int_n and vector == 0x80 and tt[0x80].present",
                    "hw.event == idt and guest.event == exception and guest.vector == 13")
    r = Prover().check(inv, XEN)
    assert r.verdict is Verdict.REFUTED
    assert r.counterexample.failing.text == "guest.vector == 13"


def test_counterexample_changes_fewest_names_from_the_defaults(refuted):
    for r in refuted:
        defaults = default_values(r.spec)
        cex = r.counterexample
        assert set(cex.changed) == {n for n in cex.changed if cex.config.get(n) != defaults[n]}


def test_several_counterexamples_differ_in_a_name_that_matters(refuted):
    several = [r for r in refuted if len(r.counterexamples) > 1]
    assert several, "some false fixture should have more than one class of counterexample"
    for r in several:
        for i, later in enumerate(r.counterexamples):
            for earlier in r.counterexamples[:i]:
                outside = [role for role in earlier.roles if role.matters
                           and later_value(later, role.name) not in role.violating]
                assert outside, (r.invariant.name, i)


def later_value(cex, key):
    if key.startswith("tt[vector]."):
        return cex.config.get(f"tt.{cex.config.get('vector'):#04x}.{key.rsplit('.', 1)[1]}")
    return cex.config.get(key)


def test_any_marks_names_that_do_not_matter(tmp_path):
    # INT $0x21 with TT[0x21] permitting is a SW_INT trap whatever the vendor or mode.
    inv = write_inv(tmp_path, "insn == int_n and vector == 0x21 and tt[0x21].present and tt[0x21].dpl == 3",
                    "guest.event == exception and guest.vector == 13")
    r = Prover().check(inv, XEN)
    roles = {role.name: role for role in r.counterexample.roles}
    assert roles["vendor"].free if "vendor" in roles else True
    assert roles["vector"].determined and not roles["vector"].free
    assert roles["guest_mode"].violating is None


def test_a_wide_name_lists_exactly_its_violating_values(tmp_path):
    # From CPL3 only the DPL3 gates (3, 4, 0x80) deliver INT $N as itself; every other N faults
    # with #GP, which is vector 13, so INT $13 also arrives at IDT vector 13.
    inv = write_inv(tmp_path, "insn == int_n and guest == pv64", "hw.event == idt and hw.vector == vector")
    r = Prover().check(inv, XEN)
    roles = {role.name: role for role in r.counterexample.roles}
    assert set(roles["vector"].violating) == set(range(256)) - {3, 4, 13, 0x80}


# ---- provenance --------------------------------------------------------------------

PROOFS = pairs(invariant_files([str(ROOT / "proofs")]), None, LOADER)


def only(spec, refs: set[str]):
    """The spec with only the declarations named (and those that are not facts: abi, guest = none)."""
    keep = refs | {f.ref for fs in spec.facts.values() for f in fs} - {f.ref for f in declarations(spec)}
    other = copy.copy(spec)
    other.facts = {name: [f for f in fs if f.ref in keep] for name, fs in spec.facts.items()}
    other.path = spec.path + "#only-" + ",".join(sorted(refs))
    return other


def holds_as_before(r, again) -> bool:
    """Proved, and (if the original held whatever the UNCERTAIN rules do) still without relying on one."""
    return again.verdict is Verdict.PROVED and (bool(r.relies_on) or not again.relies_on)


def test_the_facts_a_proof_relies_on_are_a_minimal_sufficient_set():
    """The core alone proves the invariant; the core less any one of its facts does not (another
    minimal set may exist in the full spec, so this is checked against the core alone)."""
    prover = Prover()
    checked = 0
    for inv, spec in PROOFS[::8]:
        r = prover.check(inv, spec)
        assert r.verdict is Verdict.PROVED and not r.facts_unknown
        refs = {f.ref for f in r.facts}
        assert holds_as_before(r, Prover().check(inv, only(spec, refs))), (inv.name, spec.name)
        for ref in refs:
            assert not holds_as_before(r, Prover().check(inv, only(spec, refs - {ref}))), (inv.name, ref)
            checked += 1
    assert checked >= 6


def test_a_proof_names_the_facts_it_relies_on(tmp_path):
    # IDT and FRED both deliver SYSCALL from 64-bit code: only EFER.SCE matters.
    inv = write_inv(tmp_path, "insn == syscall and guest == pv64 and guest_mode == user and mode == long64",
                    "hw.event == syscall")
    r = Prover().check(inv, XEN)
    assert r.verdict is Verdict.PROVED
    assert [f.statement for f in r.facts] == ["set efer.sce = 1"]
    # From compatibility mode SYSCALL is #UD on Intel: the vendor facts come in.
    inv = write_inv(tmp_path, "insn == syscall and vendor == intel and mode == compat", "hw.vector == 6")
    r = Prover().check(inv, XEN)
    assert r.verdict is Verdict.PROVED
    assert [f.statement for f in r.facts] == ["delivery idt", "idt 0x00..0x1f present=1 dpl=0 type=interrupt "
                                              "entry=exception"]


def test_a_proof_relying_on_an_uncertain_fact_says_so(tmp_path):
    spec_file = tmp_path / "u.spec"
    spec_file.write_text((ROOT / "specs" / "xen.spec").read_text().replace("spec xen ", "spec u ").replace(
        'set efer.sce = 1\n', 'set efer.sce = 1\n    uncertain "not checked on every boot path"\n'))
    spec = SpecLoader().load(spec_file)
    inv = write_inv(tmp_path, "insn == syscall and guest == pv64 and mode == long64", "hw.event == syscall")
    r = Prover().check(inv, spec)
    assert r.verdict is Verdict.PROVED
    assert [f.statement for f in r.uncertain_facts] == ["set efer.sce = 1"]


def test_a_counterexample_names_the_facts_its_path_used(refuted):
    r = next(r for r in refuted if r.invariant.name == "int82-hypercall-for-every-guest")
    statements = {f.statement for f in r.counterexample.facts}
    assert "idt 0x82 dpl=1 entry=int82" in statements


def test_declarations_leave_out_the_model_choice():
    names = {f.name for f in declarations(XEN)}
    assert "abi" not in names and "efer.sce" in names


# ---- vacuity -------------------------------------------------------------------------------

def test_an_unreachable_instruction_in_scope_makes_the_verdict_vacuous(tmp_path):
    inv = write_inv(tmp_path, "insn in {syscall, sysenter} and hw.event == syscall", "hw.msr != none")
    r = Prover().check(inv, XEN)
    assert r.verdict is Verdict.VACUOUS
    assert r.unreachable == ("insn == sysenter",)
    assert "insn == sysenter" in r.reason


def test_a_negated_instruction_is_not_in_scope(tmp_path):
    inv = write_inv(tmp_path, "insn != sysenter and insn == syscall", "hw.event != call_gate")
    assert Prover().check(inv, XEN).verdict is Verdict.PROVED


def test_the_shipped_proofs_are_not_vacuous():
    prover = Prover()
    assert all(prover.check(inv, spec).verdict is Verdict.PROVED for inv, spec in PROOFS)


def test_every_false_fixture_renders_in_every_format(refuted):
    from pvsmt.report.document import prove_document
    from pvsmt.report.formats import FORMATS, render
    doc = prove_document(refuted, Limits(max_counterexamples=3), 1)
    for fmt in FORMATS:
        text = render(doc, fmt)
        for r in refuted:
            assert r.invariant.name in text, (fmt, r.invariant.name)
        if fmt in ("text", "email", "markdown"):
            assert text.count("fails: ") >= len(refuted) and "still violates" in text.replace(": any", "still violates")
