"""UNCERTAIN rules: a proof relies on one only if an outcome the sources allow breaks it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvsmt.lang.parse import SpecLoader, load_invariants
from pvsmt.analysis.prove import Prover, Verdict

XEN = SpecLoader().load(Path(__file__).resolve().parent.parent / "specs" / "xen.spec")


def check(tmp_path: Path, assume: str, prove: str):
    f = tmp_path / "u.inv"
    f.write_text(f'invariant u {{\n  cite "t"\n  assume {assume}\n  prove {prove}\n}}\n')
    (inv,) = load_invariants(f)
    return Prover().check(inv, XEN)


def relied(result) -> set[str]:
    assert result.verdict is Verdict.PROVED, (result.verdict, result.reason)
    return {r.name for r in result.relies_on}


def test_gate_alternative_is_np_not_anything(tmp_path):
    # A DPL0 not-present PV32 gate gives #GP or #NP: never a hypercall, whatever the RPL.
    r = check(tmp_path, "insn == callgate and guest == pv32", "guest.event != hypercall")
    assert relied(r) == set()


def test_gate_alternative_matters_when_the_property_names_gp(tmp_path):
    r = check(tmp_path, "insn == callgate and guest == pv32 and not gate.present and gate.dpl == 0 "
                        "and gate.in_limit and tt[11].present and tt[13].present",
              "guest.vector == 13")
    assert relied(r) == {"xen.emul_gate.not_present_dpl0"}


def test_evex_alternative_is_no_event(tmp_path):
    r = check(tmp_path, "insn == bound and mode == long64", "hw.event == idt and hw.vector == 6")
    assert relied(r) == {"hw.bound.long64"}
    r = check(tmp_path, "insn == bound and mode == long64", "guest.event in {exception, none, domain_crash}")
    assert relied(r) == set()


def test_pv64_kernel_sysenter_alternative_is_the_user_path(tmp_path):
    scope = "insn == sysenter and guest == pv64 and guest_mode == kernel and vendor == intel"
    assert relied(check(tmp_path, scope, "guest.event == domain_crash")) == {"xen.sysenter.pv64_kernel"}
    assert relied(check(tmp_path, scope, "guest.event != hypercall")) == set()


@pytest.mark.parametrize("prove", ["guest.event != xen_crash", "guest.event != unmodelled"])
def test_whole_abi_safety_does_not_rely_on_uncertain_facts(tmp_path, prove):
    assert relied(check(tmp_path, "insn in {int3, int_n, into, int1, callgate, syscall, sysenter, ud0, "
                                  "ud1, ud2, bound}", prove)) == set()
