"""Verdicts: proved, refuted (with a counterexample that replays), vacuous, unknown;
reliance on UNCERTAIN rules; what-if overrides; determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvsmt.backends.concrete import ConcreteEnv, evaluate
from pvsmt.lang.parse import SpecLoader, load_invariants
from pvsmt.analysis.prove import Limits, Prover, Verdict, exit_code
from pvsmt.model.vocab import Callback, CodeMode, GuestEvent, SysenterCS, Vendor

ROOT = Path(__file__).resolve().parent.parent
LOADER = SpecLoader()
XEN = LOADER.load(ROOT / "specs" / "xen.spec")
BARE = LOADER.load(ROOT / "specs" / "bare-x86.spec")
PV_N = LOADER.load(ROOT / "specs" / "xen-pv-n.spec")


@pytest.fixture
def inv(tmp_path):
    """An invariant from an `assume` and a `prove` expression, read from a file."""
    count = iter(range(1000))

    def make(assume: str, prove: str):
        path = tmp_path / f"t{next(count)}.inv"
        path.write_text(f'invariant t {{\n  cite "test"\n  assume {assume}\n  prove {prove}\n}}\n')
        (result,) = load_invariants(path)
        return result
    return make


@pytest.fixture(scope="module")
def prover():
    return Prover()


def replays(result) -> bool:
    """The counterexample, evaluated afresh, satisfies the assumptions and violates the property."""
    cex = result.counterexample
    evaluation = evaluate(cex.config, guests=result.spec.has_guests)
    assert evaluation == cex.evaluation
    env = ConcreteEnv(cex.config, evaluation)
    return all(a.eval(env) for a in result.invariant.assumes) and not result.invariant.prove.eval(env)


# ---- proved ------------------------------------------------------------------------------------

def test_proved_guest_level(prover, inv):
    # reference 6 rows 1 and 3: INT3 / INT $3 reach TT[3] as a #BP trap whatever its vDPL.
    r = prover.check(inv("(insn == int3 or (insn == int_n and vector == 3)) and not debugger and tt[3].present",
                         "guest.event == exception and guest.vector == 3 and guest.kind == trap "
                         "and guest.error_code == none"), XEN)
    assert r.verdict is Verdict.PROVED, r.reason
    assert r.counterexample is None and r.relies_on == ()


def test_proved_hardware_level_on_bare_x86(prover, inv):
    # SDM: INT n through a gate whose DPL is below CPL is #GP(IDT-format ec) when #GP's gate is present.
    r = prover.check(inv("insn == int_n and idt[vector].dpl < cpl and idt[13].present",
                         "hw.event == idt and hw.vector == 13 and hw.error_code == vector * 8 + 2 "
                         "and hw.kind == fault"), BARE)
    assert r.verdict is Verdict.PROVED, r.reason


def test_proved_missing_callback_faults(prover, inv):
    # reference 7 item 4: PV64 SYSCALL gives #UD, PV32 SYSCALL #GP(0), SYSENTER #GP(0).
    r = prover.check(inv("insn == syscall and guest == pv32 and vendor == amd and not cb.syscall32 and tt[13].present",
                         "guest.vector == 13 and guest.error_code == 0"), XEN)
    assert r.verdict is Verdict.PROVED, r.reason


# ---- refuted -----------------------------------------------------------------------------------

def test_refuted_counterexample_replays_and_is_the_fast_path(prover, inv):
    # The false belief that INT $0x80 honours the vDPL (reference 1.1 item 1).
    r = prover.check(inv("insn == int_n and vector == 0x80 and guest_mode == user and tt[0x80].dpl < 3 "
                         "and tt[0x80].present and tt[13].present", "guest.vector == 13"), XEN)
    assert r.verdict is Verdict.REFUTED
    assert replays(r)
    cex = r.counterexample
    assert cex.evaluation.guest.vector == 0x80
    assert "xen.int80.fast" in [s.rule.name for s in cex.evaluation.trace]


def test_refuted_compat_syscall_needs_an_amd_part(prover, inv):
    # reference 6 rows 23-26: only AMD-like parts deliver SYSCALL from 32-bit code.
    r = prover.check(inv("insn == syscall and mode == compat", "guest.event != callback"), XEN)
    assert r.verdict is Verdict.REFUTED and replays(r)
    config, guest = r.counterexample.config, r.counterexample.evaluation.guest
    assert config.get("vendor") == Vendor.AMD and config.get("cb.syscall32") is True
    assert (guest.event, guest.callback) == (GuestEvent.CALLBACK, Callback.SYSCALL32)


def test_refuted_hardware_counterexample_replays(prover, inv):
    r = prover.check(inv("insn == sysenter", "hw.event == sysenter"), BARE)
    assert r.verdict is Verdict.REFUTED and replays(r)
    config = r.counterexample.config
    assert config.get("vendor") == Vendor.AMD or config.get("sysenter_cs") == SysenterCS.NULL


def test_witness_holds_of_every_counterexample(prover, inv, tmp_path):
    path = tmp_path / "w.inv"
    path.write_text('invariant w {\n  cite "t"\n  assume insn == syscall and mode == compat\n'
                    '  prove guest.event != callback\n  expect refuted\n  witness vendor == amd\n}\n')
    (w,) = load_invariants(path)
    assert prover.violations_satisfy(w, XEN, w.witness) is True
    path.write_text('invariant w {\n  cite "t"\n  assume insn == syscall and mode == compat\n'
                    '  prove guest.event != callback\n  expect refuted\n  witness guest == pv32\n}\n')
    (w,) = load_invariants(path)
    assert prover.violations_satisfy(w, XEN, w.witness) is False  # PV64 compat user code does it too


# ---- vacuous -----------------------------------------------------------------------------------

@pytest.mark.parametrize("assume", [
    "guest == pv32 and mode == long64",          # axiom: PV32 runs only 32-bit code
    "guest == pv64 and cpl == 0",                # axiom: PV64 runs at CPL3
    "vendor == amd and sysenter_cs == nonnull",  # xen.spec: SEP cleared on AMD
    "cpl == 1 and cpl == 2",                     # the assumptions themselves
    "prefix == rex and insn == int3",            # axiom: the prefix form is for INT $N only
])
def test_vacuous_assumptions(prover, inv, assume):
    r = prover.check(inv(assume, "hw.vector == 3"), XEN)
    assert r.verdict is Verdict.VACUOUS and "cannot hold" in r.reason
    assert r.counterexample is None


def test_vacuous_against_a_spec_fact(prover, inv):
    # xen-pv-n: EFER.SCE is off without CONFIG_PV.
    assert prover.check(inv("efer.sce", "hw.event == syscall"), PV_N).verdict is Verdict.VACUOUS
    assert prover.check(inv("efer.sce", "hw.event == syscall"), BARE).verdict is Verdict.REFUTED


@pytest.mark.parametrize("assume,prove", [
    ("insn == int3", "guest.vector == 3"),
    ("insn == syscall and cb.syscall", "hw.event == syscall"),
    ("tt[3].dpl == 3", "hw.vector == 3"),
])
def test_guest_level_invariant_is_vacuous_without_guests(prover, inv, assume, prove):
    r = prover.check(inv(assume, prove), BARE)
    assert r.verdict is Verdict.VACUOUS and "no PV guests" in r.reason


# ---- uncertain rules -------------------------------------------------------------------------------

def test_proof_through_uncertain_pv64_kernel_sysenter_says_so(prover, inv):
    r = prover.check(inv("insn == sysenter and guest == pv64 and guest_mode == kernel and vendor == intel",
                         "guest.event == domain_crash"), XEN)
    assert r.verdict is Verdict.PROVED
    assert [rule.name for rule in r.relies_on] == ["xen.sysenter.pv64_kernel"]
    assert r.relies_on[0].uncertain


def test_proof_near_but_independent_of_an_uncertain_rule(prover, inv):
    r = prover.check(inv("insn == sysenter and guest == pv64 and guest_mode == user and vendor == intel "
                         "and cb.sysenter", "guest.event == callback and guest.callback == sysenter"), XEN)
    assert r.verdict is Verdict.PROVED and r.relies_on == ()


def test_hardware_proof_through_uncertain_bound_rule(prover, inv):
    # reference 3.10 / row 43: 0x62 in 64-bit code is #UD unless it forms an EVEX instruction (UNCERTAIN).
    r = prover.check(inv("insn == bound and mode == long64 and idt[6].present", "hw.vector == 6"), BARE)
    assert r.verdict is Verdict.PROVED
    assert [rule.name for rule in r.relies_on] == ["hw.bound.long64"]
    r = prover.check(inv("insn == bound and mode == compat and not bound.in_range and idt[5].present",
                         "hw.vector == 5"), BARE)
    assert r.verdict is Verdict.PROVED and r.relies_on == ()


def test_counterexample_lists_the_uncertain_rules_on_its_path(prover, inv):
    r = prover.check(inv("insn == sysenter and guest == pv64 and guest_mode == kernel and vendor == intel",
                         "guest.event == callback"), XEN)
    assert r.verdict is Verdict.REFUTED and replays(r)
    assert [rule.name for rule in r.counterexample.uncertain] == ["xen.sysenter.pv64_kernel"]
    r = prover.check(inv("insn == sysenter and vendor == amd", "guest.event == callback"), XEN)
    assert r.verdict is Verdict.REFUTED and r.counterexample.uncertain == ()


# ---- what-if overrides, unknown, exit codes --------------------------------------------------------

def test_override_of_a_system_fact(inv):
    # The transient staging bug of reference 2.1: entry_int80 generated at DPL0 gives #GP(0x402).
    i = inv("insn == int_n and vector == 0x80 and guest == pv64", "hw.vector == 13 and hw.error_code == 0x402")
    assert Prover().check(i, XEN).verdict is Verdict.REFUTED
    assert Prover(overrides={"idt.0x80.dpl": 0}).check(i, XEN).verdict is Verdict.PROVED


def test_unknown_when_the_solver_budget_is_exhausted(inv):
    r = Prover(Limits(rlimit=1)).check(inv("insn == int3", "guest.vector == 3"), XEN)
    assert r.verdict is Verdict.UNKNOWN and r.reason


def test_exit_code_is_that_of_the_worst_verdict():
    assert exit_code([]) == 0
    assert exit_code([Verdict.PROVED, Verdict.PROVED]) == 0
    assert exit_code([Verdict.PROVED, Verdict.VACUOUS]) == 4
    assert exit_code([Verdict.VACUOUS, Verdict.UNKNOWN]) == 3
    assert exit_code([Verdict.UNKNOWN, Verdict.REFUTED, Verdict.PROVED]) == 1
    assert exit_code([Verdict.REFUTED, Verdict.ERROR]) == 2


# ---- determinism -------------------------------------------------------------------------------

def test_two_fresh_provers_give_the_same_counterexample(inv):
    i = inv("insn in {int_n, syscall, sysenter, callgate}", "guest.event == exception and guest.vector == 13")
    a, b = Prover().check(i, XEN), Prover().check(i, XEN)
    assert a.verdict is b.verdict is Verdict.REFUTED
    assert a.counterexample.config.values == b.counterexample.config.values
    assert a.counterexample.evaluation == b.counterexample.evaluation


def test_the_same_prover_answers_the_same_twice(prover, inv):
    i = inv("insn == int_n and mode == compat", "hw.vector == 13")
    a, b = prover.check(i, XEN), prover.check(i, XEN)
    assert a.verdict is b.verdict is Verdict.REFUTED
    assert a.counterexample.config.values == b.counterexample.config.values
    assert a.counterexample.config.get("mode") == CodeMode.COMPAT
