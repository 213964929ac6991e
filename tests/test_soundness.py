"""Issue 13, items 1-3: one meaning of a spec fact, one SMT seam, defaults in one place.

Each of the issue's three experiments (a contradictory spec, an empty spec, a
solver `unknown` read as an answer) gives a located error or a visible unknown.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pvsmt.backends import smt
from pvsmt.analysis.diff import Differ
from pvsmt.errors import InputError
from pvsmt.lang.parse import SpecLoader, parse_condition
from pvsmt.analysis.prove import Limits, Prover, Verdict
from pvsmt.analysis.spec_check import check_defaults, check_space

from pvsmt.lang.parse import load_invariants

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
XEN = SpecLoader().load(SPECS / "xen.spec")
FRED = SpecLoader().load(SPECS / "xen-fred.spec")
_COUNT = iter(range(10**6))


def inv(assume: str, prove: str):
    """An invariant from an `assume` and a `prove` expression, read from a file."""
    import tempfile
    path = Path(tempfile.mkdtemp()) / f"t{next(_COUNT)}.inv"
    path.write_text(f'invariant t {{\n  cite "test"\n  assume {assume}\n  prove {prove}\n}}\n')
    (result,) = load_invariants(path)
    return result


def pvsmt(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pvsmt", *args], capture_output=True, text=True, cwd=cwd)


def spec_dir(tmp_path: Path, **specs: str) -> Path:
    d = tmp_path / "specs"
    d.mkdir()
    for name in ("xen", "pv-guest-defaults", "xen-fred"):
        (d / f"{name}.spec").write_text((SPECS / f"{name}.spec").read_text())
    for name, text in specs.items():
        (d / f"{name.replace('_', '-')}.spec").write_text(text)
    return d


# ---- 1. one meaning of a spec fact ------------------------------------------------------

def test_a_conditional_fact_contradicting_an_inherited_one_is_a_located_error(tmp_path):
    """The issue's first experiment: prove said every SYSENTER runs on Intel."""
    d = spec_dir(tmp_path, amd_nonnull='spec amd-nonnull "t"\nextends xen\n'
                                       'set sysenter_cs = nonnull when vendor == amd\n    cite "x"\n')
    with pytest.raises(InputError) as err:
        SpecLoader().load(d / "amd-nonnull.spec")
    assert str(err.value).startswith(f"{d / 'amd-nonnull.spec'}:3")
    assert "contradicts `set sysenter_cs = null when vendor == amd` (xen.spec:" in str(err.value)
    (tmp_path / "t.inv").write_text('invariant sysenter-intel {\n  specs amd-nonnull\n  cite "x"\n'
                                    '  assume insn == sysenter\n  prove vendor == intel\n}\n')
    p = pvsmt("prove", "t.inv", cwd=tmp_path)
    assert p.returncode == 2 and "amd-nonnull.spec:3" in p.stderr and "proved" not in p.stdout


def test_a_child_changes_a_conditional_fact_by_restating_the_knob(tmp_path):
    d = spec_dir(tmp_path, amd_nonnull='spec amd-nonnull "t"\nextends xen\nset sysenter_cs = null, nonnull\n'
                                       'set sysenter_cs = nonnull when vendor == amd\n')
    spec = SpecLoader().load(d / "amd-nonnull.spec")
    r = Prover().check(inv("insn == sysenter and guest_mode == kernel", "vendor == intel"), spec)
    assert r.verdict is Verdict.REFUTED


def test_overlapping_facts_with_a_common_value_conjoin(tmp_path):
    d = spec_dir(tmp_path, narrow='spec narrow "t"\nextends xen\nset insn = int3, into\n'
                                  'set insn = int3, int_n when vendor == amd\n')
    spec = SpecLoader().load(d / "narrow.spec")
    r = Prover().check(inv("vendor == amd", "insn == int3"), spec)
    assert r.verdict is Verdict.PROVED


def test_an_empty_spec_is_an_error_in_every_command(tmp_path):
    """The issue's second experiment: diff said "no differences (proved by Z3)", table printed nothing."""
    empty = 'spec empty "t"\nextends xen\nset guest = pv32\nset mode = long64\n'
    d = spec_dir(tmp_path, empty=empty)
    with pytest.raises(InputError) as err:
        check_space(SpecLoader().load(d / "empty.spec"))
    assert "allows no configuration" in str(err.value) and "empty.spec:3" in str(err.value)
    for args in (["diff", "xen", "empty"], ["table", "--spec", "empty"]):
        p = pvsmt(*args, cwd=tmp_path)
        assert p.returncode == 2 and "allows no configuration" in p.stderr, (args, p.stdout, p.stderr)
    (tmp_path / "t.inv").write_text('invariant i {\n  specs empty\n  cite "x"\n  prove insn == int3\n}\n')
    p = pvsmt("prove", "t.inv", cwd=tmp_path)
    assert p.returncode == 2 and "allows no configuration" in p.stderr


def test_specs_sharing_no_configuration_are_an_error_in_diff(tmp_path):
    d = spec_dir(tmp_path, only_pv32='spec only-pv32 "t"\nextends xen\nset guest = pv32\n')
    with pytest.raises(InputError) as err:
        Differ(SpecLoader().load(d / "xen-fred.spec"), SpecLoader().load(d / "only-pv32.spec")).run()
    assert "share no configuration" in str(err.value)


def test_a_set_contradicting_the_spec_is_an_error_in_prove():
    p = pvsmt("prove", "proofs/sysenter.inv", "--spec", "specs/xen-fred.spec", "--set", "guest=pv32", cwd=ROOT)
    assert p.returncode == 2 and "--set guest=pv32: error: spec xen-fred allows guest = pv64 only" in p.stderr
    p = pvsmt("prove", "proofs/sysenter.inv", "--set", "guest=pv32", "--set", "mode=long64", cwd=ROOT)
    assert p.returncode == 2 and "contradictory settings guest=pv32, mode=long64" in p.stderr


def test_a_conditional_fact_that_rules_out_a_value_is_noted(tmp_path):
    d = spec_dir(tmp_path, no_amd='spec no-amd "t"\nextends xen\nset vendor = intel when guest == pv64\n'
                                  'set vendor = intel when guest == pv32\n')
    assert check_space(SpecLoader().load(d / "no-amd.spec")) == [
        "spec no-amd rules out vendor = amd (its conditional facts allow no value there)"]


@pytest.mark.parametrize("text, message", [
    ("vector == 999", "999 is out of range for vector (0..255)"),
    ("tt[300].present", "tt[0x12c]: a vector is 0..255"),
    ("cpl != 4", "4 is out of range for cpl"),
])
def test_constants_out_of_range_in_invariants_are_located_errors(text, message):
    with pytest.raises(InputError) as err:
        parse_condition(text, "t.inv")
    assert str(err.value).startswith("t.inv:1:") and message in str(err.value)


def test_the_resolver_and_the_encoding_read_facts_alike(tmp_path):
    """A multi-valued fact narrowed by a conditional one: explain takes the one allowed value, and a
    default outside the facts is an error at the default's line, not a silent impossible configuration."""
    from pvsmt.backends.configure import resolve
    d = spec_dir(tmp_path, narrow='spec narrow "t"\nextends xen\nset insn = into, int1\n'
                                  'set insn = into when vendor == intel\n')
    spec = SpecLoader().load(d / "narrow.spec")
    assert resolve(spec, {}).config.get("insn").label == "into"
    with pytest.raises(InputError) as err:
        resolve(spec, {"vendor": 1})
    assert "default insn = int3 is not a value spec narrow allows here (into, int1)" in str(err.value)
    assert "pv-guest-defaults.spec:" in str(err.value)


# ---- 3. defaults ---------------------------------------------------------------------------

def test_the_root_specs_share_one_set_of_defaults():
    doc = SpecLoader().load(SPECS / "pv-traps-doc.spec")
    for spec in (XEN, doc):
        assert "pv-guest-defaults" in spec.parents
        assert {f.where.path for fs in spec.defaults.values() for f in fs} == {str(SPECS / "pv-guest-defaults.spec")}
    for name in ("xen", "pv-traps-doc"):
        assert "\ndefault " not in (SPECS / f"{name}.spec").read_text()


def test_a_name_without_a_default_is_an_error(tmp_path):
    d = spec_dir(tmp_path)
    text = (d / "pv-guest-defaults.spec").read_text().replace("default cb.sysenter = 1\n", "")
    (d / "pv-guest-defaults.spec").write_text(text)
    with pytest.raises(InputError) as err:
        check_defaults(SpecLoader().load(d / "xen.spec"))
    assert "gives no default for cb.sysenter" in str(err.value)
    text = text.replace("default mode = long64\n", "")
    (d / "pv-guest-defaults.spec").write_text(text + "default cb.sysenter = 1\n")
    with pytest.raises(InputError) as err:
        check_defaults(SpecLoader().load(d / "xen.spec"))
    assert "gives no default for mode (where guest == pv64)" in str(err.value)


def test_every_shipped_spec_has_complete_defaults_and_some_configuration():
    for path in sorted(SPECS.glob("*.spec")):
        if path.stem == "pv-guest-defaults":
            continue  # defaults only: not a system (no facts)
        spec = SpecLoader().load(path)
        check_defaults(spec)
        assert check_space(spec) == [], path


# ---- 2. one SMT seam: an unknown is never an answer ------------------------------------------

def test_no_module_but_the_seam_reads_z3s_answers():
    import re
    for path in (ROOT / "pvsmt").rglob("*.py"):
        if path.name == "smt.py":
            continue
        text = path.read_text()
        assert not re.search(r"z3\.(sat|unsat|unknown)\b|reason_unknown|unsat_core\(|z3\.Optimize", text), path


class UnknownAfter:
    """A stand-in for smt.check: the real answers for `n` calls (where `when` matches), then Unknown."""

    def __init__(self, real, n, when=lambda solver, assumptions: True):
        self.real, self.n, self.when, self.calls = real, n, when, 0

    def __call__(self, solver, *assumptions):
        if self.when(solver, assumptions):
            self.calls += 1
            if self.calls > self.n:
                return smt.Unknown("canceled")
        return self.real(solver, *assumptions)


def test_an_unknown_role_is_shown_never_read_as_exact(monkeypatch):
    """counterexample._violates returned False on unknown: the role looked exact."""
    import pvsmt.analysis.counterexample as cx
    monkeypatch.setattr(cx, "check", UnknownAfter(smt.check, 0))
    r = Prover().check(inv("insn == int_n and vector == 0x80 and guest_mode == user and tt[0x80].present",
                           "guest.vector == 13"), XEN)
    assert r.verdict is Verdict.REFUTED
    cex = r.counterexample
    assert cex.unknown and "the role of" in cex.unknown[0]
    assert all(not role.exact for role in cex.roles if role.matters)
    assert "gave up" in r.reason


def test_an_unknown_in_the_optimiser_says_the_counterexample_is_not_minimal(monkeypatch):
    import pvsmt.analysis.prove as solve
    monkeypatch.setattr(solve, "optimize", lambda *a, **k: smt.Unknown("canceled"))
    r = Prover().check(inv("insn == int_n and vector == 0x80", "guest.vector == 13"), XEN)
    assert r.verdict is Verdict.REFUTED
    assert r.counterexample.unknown[0].startswith("not minimised: the optimiser gave up (canceled")
    assert "not minimised" in r.reason


def test_an_unknown_core_makes_a_proof_unknown(monkeypatch):
    import pvsmt.analysis.provenance as prov
    monkeypatch.setattr(prov, "check", lambda solver, *a: smt.Unknown("canceled"))
    r = Prover().check(inv("insn == int3 and not debugger and tt[3].present", "guest.vector == 3"), XEN)
    assert r.verdict is Verdict.UNKNOWN and r.verdict.exit_code == 3
    assert "could not be determined: canceled" in r.reason


def test_a_tracked_encoding_that_disagrees_is_an_internal_error(monkeypatch):
    import pvsmt.analysis.provenance as prov
    from pvsmt.errors import ModelDisagreement
    monkeypatch.setattr(prov, "check", lambda solver, *a: smt.Sat())
    with pytest.raises(ModelDisagreement):
        Prover().check(inv("insn == int3 and not debugger and tt[3].present", "guest.vector == 3"), XEN)


@pytest.mark.parametrize("after", [0, 3, 12])
def test_an_unknown_while_generalising_a_diff_class_makes_the_diff_incomplete(monkeypatch, after):
    """diff's probe returned None on unknown and widened the class to values never checked."""
    import pvsmt.analysis.diff as diff
    probe_solvers = []
    real_init = diff.Probe.__init__

    def init(self, joint, target):
        real_init(self, joint, target)
        probe_solvers.append(self.solver)
    monkeypatch.setattr(diff.Probe, "__init__", init)
    monkeypatch.setattr(diff, "check", UnknownAfter(smt.check, after, lambda s, a: s in probe_solvers))
    result = Differ(XEN, FRED).run()
    assert not result.complete and "gave up" in result.reason and result.exit_code in (1, 3)


def test_a_real_resource_limit_gives_unknown_not_an_answer():
    r = Prover(Limits(rlimit=1)).check(inv("insn == int3", "guest.vector == 3"), XEN)
    assert r.verdict is Verdict.UNKNOWN and "rlimit" in r.reason
