"""`pvsmt diff`: completeness, exactness of classes, --expect, exit codes, bad input.

The strongest checks do not trust the diff's own output: random concrete
configurations are evaluated under both specs by the concrete evaluator; every
one whose outcomes differ must lie in a reported class, and every class member
must differ.
"""

from __future__ import annotations

import json
import random
import shutil
from functools import lru_cache
from pathlib import Path

import pytest

from pvsmt.cli.main import main
from pvsmt.backends.concrete import ConcreteOps, evaluate
from pvsmt.backends.configure import resolve
from pvsmt.analysis.diff import Differ
from pvsmt.backends import smt
from pvsmt.backends.smt import Unknown
from pvsmt.errors import InputError
from pvsmt.lang.parse import SpecLoader, load_expected
from pvsmt.model.outcome import differs
from pvsmt.model.vocab import GUEST_FIELDS, HW_FIELDS, CodeMode, GuestMode, Insn, Prefix, Vendor

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def spec(name: str, where: Path = SPECS):
    return SpecLoader().load(where / f"{name}.spec")


@lru_cache(maxsize=None)
def diff(old: str, new: str, level: str = "guest"):
    return Differ(spec(old), spec(new), level).run()


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---- a spec against itself ------------------------------------------------------------

@pytest.mark.parametrize("name,level", [("xen", "guest"), ("xen-fred", "guest"), ("xen-pv-n", "hardware"),
                                        ("xen", "hardware")])
def test_a_spec_against_itself_differs_nowhere(name, level):
    result = diff(name, name, level)
    assert result.complete and result.differences == [] and result.exit_code == 0


def test_cli_self_diff_says_proved_and_exits_0(capsys):
    code, out, _ = run(capsys, "diff", SPECS / "xen.spec", SPECS / "xen.spec")
    assert code == 0
    assert "no differences (proved by Z3)" in out


# ---- IDT vs FRED ---------------------------------------------------------------------------

def random_settings(rng: random.Random) -> dict:
    """A random PV64 situation: the knobs and the trap-table entries the paths read."""
    insn = rng.choice(list(Insn))
    vector = rng.choice([1, 2, 3, 4, 6, 8, 0x0d, 0x21, 0x80, 0x82, rng.randrange(256)])
    s = {"guest_mode": rng.choice(list(GuestMode)), "mode": rng.choice(list(CodeMode)),
         "vendor": rng.choice(list(Vendor)), "insn": insn, "vector": vector, "of": rng.random() < 0.5,
         "cb.syscall": rng.random() < 0.5, "cb.syscall32": rng.random() < 0.5,
         "cb.sysenter": rng.random() < 0.5, "debugger": rng.random() < 0.2,
         "sig_read_fault": rng.random() < 0.2, "bound.in_range": rng.random() < 0.5}
    prefixes = [Prefix.NONE, Prefix.LEGACY] + ([Prefix.REX] if s["mode"] == CodeMode.LONG64 else [])
    s["prefix"] = rng.choice(prefixes) if insn in (Insn.INT_N, Insn.SYSCALL) else Prefix.NONE
    for v in {vector, 1, 3, 4, 5, 6, 0x0d, 0x0e, 0x80}:
        s[f"tt.{v:#04x}.present"] = rng.random() < 0.8
        s[f"tt.{v:#04x}.dpl"] = rng.randrange(4)
    return s


def concrete_differs(a, b, level: str) -> bool:
    pick = (lambda e: e.guest) if level == "guest" else (lambda e: e.hw)
    return bool(differs(ConcreteOps([]), pick(a), pick(b), GUEST_FIELDS if level == "guest" else HW_FIELDS))


def sampled(old: str, new: str, n: int, seed: int):
    rng = random.Random(seed)
    a, b = spec(old), spec(new)
    out = []
    while len(out) < n:
        settings = random_settings(rng)
        try:
            ca, cb = resolve(a, settings).config, resolve(b, settings).config
        except InputError:
            continue  # breaks an axiom (e.g. REX outside 64-bit code)
        out.append((ca, cb, evaluate(ca), evaluate(cb)))
    return out


def test_idt_vs_fred_classes_are_exact_and_complete_on_random_configurations():
    result = diff("xen", "xen-fred")
    assert result.complete and result.differences
    seen_differing = 0
    for ca, cb, ea, eb in sampled("xen", "xen-fred", 600, seed=7):
        members = [c for c in result.differences if c.contains(ca, cb)]
        if concrete_differs(ea, eb, "guest"):
            seen_differing += 1
            assert members, f"a differing configuration lies in no class: {ca.values}"
        else:
            assert not members, f"class {members[0].literals} holds a configuration that does not differ"
    assert seen_differing > 20  # the sample exercised the differences


def test_every_witness_lies_in_its_class_and_differs():
    for cls in diff("xen", "xen-fred").differences:
        assert cls.contains(cls.old.config, cls.new.config)
        assert concrete_differs(cls.old.evaluation, cls.new.evaluation, "guest")


def test_no_class_is_reported_twice():
    conditions = [tuple(sorted((l.key, l.values) for l in c.literals)) for c in diff("xen", "xen-fred").differences]
    assert len(conditions) == len(set(conditions))


@pytest.mark.parametrize("settings,fields", [
    # reference 1.1 item 1: TT[0x80] at vDPL 0 delivers under IDT, #GP(0x402) under FRED
    ({"insn": Insn.INT_N, "vector": 0x80, "tt.0x80.present": True, "tt.0x80.dpl": 0, "tt.0x0d.present": True},
     {"vector", "type", "kind"}),
    # reference 1.1 item 6: a PV64 kernel's compat SYSCALL (AMD): syscall32 callback vs hypercall
    ({"insn": Insn.SYSCALL, "vendor": Vendor.AMD, "guest_mode": GuestMode.KERNEL, "mode": CodeMode.COMPAT,
      "cb.syscall32": True}, {"event"}),
    # reference 1.1 item 6: the syscall32 mask flag
    ({"insn": Insn.SYSCALL, "vendor": Vendor.AMD, "guest_mode": GuestMode.USER, "mode": CodeMode.COMPAT,
      "cb.syscall32": True}, {"masked_by"}),
    # reference 7 item 3: rewinding by 2 vs by the whole instruction
    ({"insn": Insn.SYSCALL, "prefix": Prefix.LEGACY, "mode": CodeMode.LONG64, "guest_mode": GuestMode.USER,
      "cb.syscall": False, "tt.0x06.present": True}, {"rip"}),
    ({"insn": Insn.INT_N, "vector": 0x80, "prefix": Prefix.LEGACY, "tt.0x80.present": False,
      "tt.0x80.dpl": 0, "tt.0x0d.present": True}, {"rip"}),
    # reference 8.1: a REX-prefixed INT $N the vDPL permits
    ({"insn": Insn.INT_N, "vector": 0x21, "prefix": Prefix.REX, "mode": CodeMode.LONG64,
      "tt.0x21.present": True, "tt.0x21.dpl": 3, "tt.0x0d.present": True}, {"vector", "type", "kind"}),
])
def test_idt_vs_fred_lists_each_difference_the_reference_describes(settings, fields):
    a, b = spec("xen"), spec("xen-fred")
    ca, cb = resolve(a, settings).config, resolve(b, settings).config
    members = [c for c in diff("xen", "xen-fred").differences if c.contains(ca, cb)]
    assert members
    ea, eb = evaluate(ca), evaluate(cb)
    changed = {f for f in GUEST_FIELDS if getattr(ea.guest, f) != getattr(eb.guest, f)}
    assert fields <= changed


def test_shipped_idt_fred_expectations_are_exactly_the_differences(capsys):
    code, out, _ = run(capsys, "diff", "--expect", ROOT / "diffs" / "xen--xen-fred.expect",
                       SPECS / "xen.spec", SPECS / "xen-fred.spec")
    assert code == 0, out
    assert "no unexpected differences" in out
    assert "NOT PRESENT" not in out


# ---- a proposed change -------------------------------------------------------------------

@pytest.fixture
def proposal(tmp_path):
    shutil.copy(SPECS / "xen.spec", tmp_path / "xen.spec")
    (tmp_path / "xen-int21.spec").write_text(
        'spec xen-int21 "one vector changed"\nextends xen\nidt 0x21 dpl=3\n    cite "a proposed change"\n')
    return tmp_path


def test_a_one_vector_idt_change_diffs_to_exactly_its_consequences(proposal):
    result = Differ(spec("xen", proposal), spec("xen-int21", proposal), "guest").run()
    assert result.complete and result.differences
    for cls in result.differences:
        lits = {l.key: l.values for l in cls.literals}
        assert lits["insn"] == (Insn.INT_N,)
        assert lits["vector"] == (0x21,)
    hw = Differ(spec("xen", proposal), spec("xen-int21", proposal), "hardware").run()
    assert [{l.key: l.values for l in c.literals} for c in hw.differences] == [
        {"insn": (Insn.INT_N,), "vector": (0x21,)}]


def test_expect_file_makes_an_intended_change_pass_and_a_missing_one_fail(proposal, capsys):
    ok = proposal / "ok.expect"
    ok.write_text('difference int21 {\n  cite "proposal"\n  when insn == int_n and vector == 0x21\n}\n')
    code, out, _ = run(capsys, "diff", "--expect", ok, proposal / "xen.spec", proposal / "xen-int21.spec")
    assert code == 0, out
    missing = proposal / "missing.expect"
    missing.write_text(ok.read_text() + 'difference int22 {\n  when insn == int_n and vector == 0x22\n}\n')
    code, out, _ = run(capsys, "diff", "--expect", missing, proposal / "xen.spec", proposal / "xen-int21.spec")
    assert code == 1
    assert "expected difference int22: NOT PRESENT" in out


def test_unexpected_differences_exit_1_and_print_pasteable_blocks(proposal, capsys, tmp_path):
    code, out, _ = run(capsys, "diff", proposal / "xen.spec", proposal / "xen-int21.spec")
    assert code == 1
    blocks = out[out.index("difference class-1"):out.rindex("}") + 1]
    pasted = tmp_path / "pasted.expect"
    pasted.write_text(blocks)
    assert len(load_expected(pasted)) >= 1
    code, out, _ = run(capsys, "diff", "--expect", pasted, proposal / "xen.spec", proposal / "xen-int21.spec")
    assert code == 0, out


@pytest.mark.parametrize("expect", [
    'difference int21 {\n  when insn == int_n and vector == 0x21\n}\n',                 # clean
    'difference int21 {\n  when insn == int_n and vector == 0x21\n}\n'
    'difference int22 {\n  when insn == int_n and vector == 0x22\n}\n',                 # clean, one missing
    'difference int22 {\n  when insn == int_n and vector == 0x22\n}\n',                 # all unexpected
])
def test_an_expect_run_answers_as_the_enumeration_does(proposal, tmp_path, monkeypatch, expect):
    """diff --expect first asks, in a context of its own, whether anything unexpected differs; its
    answers are the enumeration's, and when it gives up the enumeration answers."""
    import pvsmt.analysis.diff as d
    f = tmp_path / "e.expect"
    f.write_text(expect)
    def summary(result):
        return ([(s.expected.name, s.present) for s in result.expected], result.complete,
                [c.literals for c in result.differences])
    def run_():
        return summary(Differ(spec("xen", proposal), spec("xen-int21", proposal)).run(load_expected(f)))
    fast = run_()
    with monkeypatch.context() as m:
        m.setattr(Differ, "_clean", lambda self, named, unexpected: None)
        enumerated = run_()
    asked = []
    def first_gives_up(solver, *assumptions):  # the first question, in the context of its own
        asked.append(solver)
        return Unknown("a test") if len(asked) == 1 else smt.check(solver, *assumptions)
    with monkeypatch.context() as m:
        m.setattr(d, "check", first_gives_up)
        after_unknown = run_()
    assert fast == enumerated == after_unknown
    assert fast[1] and (fast[2] == []) == ("int21" in expect)


def test_a_literal_condition_is_the_term_the_python_api_builds():
    """Joint.condition builds through Z3's C API the very term z3.Or(*[t == v ...]) builds (an Int
    equality as (= v t), as the Python API orients it), so the queries Z3 answers do not change."""
    import z3
    from pvsmt.backends.encode import _z3, disjunction
    ctx = z3.Context()
    x, b = z3.Int("x", ctx), z3.Bool("b", ctx)
    f = z3.Function("f", z3.IntSort(ctx), z3.BoolSort(ctx))
    for term, values in ((x, (3,)), (x, (0, 1, 255)), (x, (Insn.INT_N, Insn.INT3)), (b, (True,)), (b, (False, True)),
                         (f(x), (True,)), (x + 1, (2, 4)), (z3.IntVal(3, ctx), (3,))):
        built = disjunction(term, values, ctx)
        assert built.eq(z3.Or(*[term == _z3(v, ctx) for v in values])), (term, values)


def test_jans_proposal_changes_only_int3_into_and_int_3_4_from_cpl_above_0(capsys):
    result = diff("xen-pv-n", "xen-pv-n-bp-of-dpl0", "hardware")
    assert result.complete
    insns = {l.values for c in result.differences for l in c.literals if l.key == "insn"}
    assert insns == {(Insn.INT3,), (Insn.INTO,), (Insn.INT_N,)}
    for c in result.differences:
        assert any(l.key == "cpl" and 0 not in l.values for l in c.literals)


# ---- output and input --------------------------------------------------------------------

def test_json_output_has_the_documented_fields(capsys):
    code, out, _ = run(capsys, "diff", "--json", SPECS / "xen.spec", SPECS / "xen-fred.spec")
    data = json.loads(out)
    assert code == 1 and data["exit_code"] == 1 and data["complete"] is True
    first = data["differences"][0]
    assert {"name", "when", "literals", "any", "differs_in", "witness", "uncertain", "old", "new"} <= first.keys()
    assert {"outcome", "text", "path"} <= first["old"].keys()


def test_spec_names_resolve_under_specs(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, _ = run(capsys, "diff", "xen", "xen")
    assert code == 0


@pytest.mark.parametrize("text,message", [
    ("difference a {\n  when insn == int_n\n  when vector == 3\n}\n", "two 'when' clauses"),
    ("difference a {\n  cite \"x\"\n}\n", "no 'when' clause"),
    ("difference a {\n  when guest.event == hypercall\n}\n", "is an outcome"),
    ("difference a {\n  when idt[3].dpl == 3\n}\n", "the IDT belongs to each spec"),
    ("difference a {\n  when old.vendor == intel\n}\n", "old./new. name a system knob"),
    ("difference a {\n  when insn == int_n\n}\ndifference a {\n  when insn == int3\n}\n", "already defined"),
    ("difference a {\n  when insn = int_n\n}\n", "unexpected"),
])
def test_bad_expect_files_are_located_errors(tmp_path, capsys, text, message):
    f = tmp_path / "bad.expect"
    f.write_text(text)
    code, _, err = run(capsys, "diff", "--expect", f, SPECS / "xen.spec", SPECS / "xen.spec")
    assert code == 2
    assert err.startswith(f"{f}:") and message in err
    assert "Traceback" not in err


def test_system_knobs_of_each_side_can_be_named(tmp_path, capsys):
    f = tmp_path / "sides.expect"
    f.write_text("difference a {\n  when new.sysenter_cs == null and insn == sysenter\n}\n")
    code, out, _ = run(capsys, "diff", "--expect", f, SPECS / "xen.spec", SPECS / "xen-fred.spec")
    assert code == 1  # parsed and evaluated; the IDT/FRED differences are not all expected here
    assert "expected difference a:" in out


@pytest.mark.parametrize("argv,message", [
    (["diff", SPECS / "xen-pv-n.spec", SPECS / "xen.spec"], "has no PV guests"),
    (["diff", SPECS / "bare-x86.spec", SPECS / "xen.spec", "--level", "hardware"], "leaves IDT entries free"),
    (["diff", SPECS / "nonexistent.spec", SPECS / "xen.spec"], "no such file"),
    (["diff", "--max-classes", "0", SPECS / "xen.spec", SPECS / "xen.spec"], "positive"),
])
def test_bad_diff_arguments_exit_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_too_many_classes_is_incomplete_not_clean(capsys):
    code, out, _ = run(capsys, "diff", "--max-classes", "2", SPECS / "xen.spec", SPECS / "xen-fred.spec")
    assert code == 1  # differences were found: that decides before completeness
    assert "incomplete" in out


# ---- the shipped answers -------------------------------------------------------------------

@pytest.mark.parametrize("old,new,expect,level", [
    ("xen", "xen-fred", "xen--xen-fred.expect", "guest"),
    ("pv-traps-doc", "xen", "pv-traps-doc--xen.expect", "guest"),
    ("pv-traps-doc-fred", "xen-fred", "pv-traps-doc-fred--xen-fred.expect", "guest"),
    ("pv-traps-doc", "xen-pv-n", "pv-traps-doc--xen-pv-n.hardware.expect", "hardware"),
    ("xen-4.17", "xen", "xen-4.17--xen.expect", "guest"),
    ("xen-4.20", "xen", "xen-4.17--xen.expect", "guest"),
])
def test_every_shipped_expectation_file_explains_its_diff_exactly(old, new, expect, level):
    expected = load_expected(ROOT / "diffs" / expect)
    assert all(e.cites for e in expected), "every expected difference cites its source"
    result = Differ(spec(old), spec(new), level).run(expected)
    assert result.complete
    assert result.differences == [], [c.literals for c in result.differences]
    assert all(s.present for s in result.expected)


@pytest.mark.parametrize("old,new", [("xen-4.17", "xen-4.20"), ("xen-4.17.0", "xen-4.17")])
def test_release_specs_that_model_the_same_behaviour_do_not_differ(old, new):
    result = Differ(spec(old), spec(new), "guest").run([])
    assert result.complete and result.differences == []


def test_417_0s_trap_gates_show_at_hardware_level_only():
    result = Differ(spec("xen-4.17.0"), spec("xen-4.17"), "hardware").run([])
    assert result.complete and result.differences
    assert all(("vector", (0x80,)) in {(l.key, l.values) for l in c.literals}
               or ("vector", (0x82,)) in {(l.key, l.values) for l in c.literals} for c in result.differences)


@lru_cache(maxsize=None)
def doc_diff():
    return diff("pv-traps-doc", "xen")


@pytest.mark.parametrize("settings,what", [
    # reference 1.1 item 1: TT[0x80] whose vDPL refuses the caller: the document does not say
    ({"insn": Insn.INT_N, "vector": 0x80, "guest": "pv64", "tt.0x80.present": True, "tt.0x80.dpl": 0},
     "int80 vdpl"),
    # reference 1.1 item 3: which fault a missing SYSCALL callback gives is not stated
    ({"insn": Insn.SYSCALL, "guest": "pv64", "guest_mode": GuestMode.USER, "mode": CodeMode.LONG64,
      "cb.syscall": False, "tt.0x06.present": True, "tt.0x0d.present": True}, "fault type"),
    # reference 1.1 item 4: call gates in the LDT
    ({"insn": Insn.CALLGATE, "guest": "pv32", "mode": CodeMode.COMPAT, "gate.table": "ldt"}, "ldt gate"),
])
def test_document_silences_are_reported_as_unspecified_not_as_differences(settings, what):
    from pvsmt.model.vocab import Guest, GateTable
    fixed = dict(settings)
    if "guest" in fixed:
        fixed["guest"] = Guest.parse(fixed["guest"])
    if "gate.table" in fixed:
        fixed["gate.table"] = GateTable.parse(fixed["gate.table"])
    a, b = spec("pv-traps-doc"), spec("xen")
    ca, cb = resolve(a, fixed).config, resolve(b, fixed).config
    result = doc_diff()
    assert not any(c.contains(ca, cb) for c in result.differences), what
    assert any(c.contains(ca, cb) for c in result.unspecified), what


def test_the_document_disagrees_with_the_code_on_sysenter_rip():
    """reference 1.1 item 2: the code gives rip=0, the document a rewound %rip."""
    settings = {"insn": Insn.SYSENTER, "vendor": Vendor.INTEL, "guest_mode": GuestMode.USER,
                "mode": CodeMode.LONG64, "cb.sysenter": False, "tt.0x06.present": True, "tt.0x0d.present": True}
    a, b = spec("pv-traps-doc"), spec("xen")
    ca, cb = resolve(a, settings).config, resolve(b, settings).config
    members = [c for c in doc_diff().differences if c.contains(ca, cb)]
    assert members and "rip" in {f for f in GUEST_FIELDS if getattr(evaluate(ca).guest, f) != getattr(evaluate(cb).guest, f)}


def test_prove_never_claims_a_guest_level_invariant_against_the_documented_abi(capsys):
    code, out, _ = run(capsys, "prove", ROOT / "proofs" / "int-n.inv", "--spec", SPECS / "pv-traps-doc.spec")
    assert code == 3
    assert "proved" not in out.split("checks:")[-1] and "compare it with `pvsmt diff`" in out


def test_two_runs_print_identical_bytes():
    import subprocess
    import sys
    argv = [sys.executable, "-m", "pvsmt", "diff", "specs/xen.spec", "specs/xen-fred.spec"]
    runs = [subprocess.run(argv, cwd=ROOT, capture_output=True, text=True) for _ in range(2)]
    assert runs[0].returncode == runs[1].returncode == 1
    assert runs[0].stdout == runs[1].stdout
    assert "(specs/xen.spec)" in runs[0].stdout  # paths relative to the working directory
