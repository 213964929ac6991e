"""`pvsmt validate --xen`: the Xen plan, its coverage, the release specs and real runs.

Real runs boot Debian's Xen 4.17.7 (PV64) and Xen master built from ../shared (PV64 and
PV32) under QEMU 10 (tests/xen_builds.py), on an Intel-like and an AMD-like CPU (`-cpu
max` with either vendor's CPUID); they skip when those are absent unless
PVSMT_REQUIRE_XEN=1.  Each real run (Xen, guest kind, vendor) happens once per test
process, and the checks of a planted model error re-compare its recorded observations
without booting.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from pvsmt.cli.main import main
from pvsmt.errors import InputError
from pvsmt.lang.parse import SpecLoader
from pvsmt.model import xen_idt
from pvsmt.xen.releases import spec_for
from pvsmt.validate import known
from pvsmt.validate.xencases import XenCase
from pvsmt.validate.xenplan import NOT_VALIDATED, Predictor, as_observed, coverage, plan
from pvsmt.validate.xenrun import run_xen_cases
from pvsmt.validate.xenvalidate import compare, emulator_divergences, report, validate_all

from xen_builds import xen_binary

ROOT = Path(__file__).resolve().parents[1]
DIVERGENCES = known.load(ROOT / "emulators" / "known-divergences.toml")


@functools.cache
def spec(name: str):
    return SpecLoader().load(ROOT / "specs" / f"{name}.spec")


# ---- the plan, without Xen -------------------------------------------------------------

def test_the_plan_takes_every_xen_rule_a_run_can_take():
    runs = [(plan(g), Predictor(spec(s), v)) for g in ("pv64", "pv32") for s in ("xen", "xen-4.17")
            for v in ("intel", "amd")]
    assert coverage(runs) == []


def test_syscall_from_compatibility_mode_needs_an_amd_run():
    def missed(vendor):
        return coverage([([c for c in plan(g) if c.insn == "syscall"], Predictor(spec("xen"), vendor))
                         for g in ("pv64", "pv32")])
    assert {"xen.cstar.pv64", "xen.cstar.pv32"} <= set(missed("intel"))
    assert not {"xen.cstar.pv64", "xen.cstar.pv32"} & set(missed("amd"))


def test_the_amd_prediction_takes_qemus_amd_divergences():
    # QEMU's AMD models run SYSENTER in compatibility mode (Xen leaves SYSENTER_CS null on AMD:
    # #GP(0)) where an AMD CPU raises #UD; the Intel prediction takes no AMD entry
    info = {"emulator_version": "QEMU emulator version 10.0.2"}
    amd = {d.id for d in emulator_divergences(DIVERGENCES, info, "amd")}
    intel = {d.id for d in emulator_divergences(DIVERGENCES, info, "intel")}
    assert {"qemu-amd-compat-sysenter", "qemu-amd-compat-sysenter-null-cs"} <= amd
    assert not {d for d in intel if d.startswith("qemu-amd-")}
    case = next(c for c in plan("pv64") if c.insn == "sysenter" and c.mode == "compat" and c.guest_mode == "user")
    on_amd = Predictor(spec("xen"), "amd", emulator_divergences(DIVERGENCES, info, "amd")).predict(case)
    assert on_amd.divergence == "qemu-amd-compat-sysenter-null-cs"
    assert as_observed(case, on_amd.guest) == ("exception", 13, 0, "insn", False)
    assert as_observed(case, Predictor(spec("xen"), "amd").predict(case).guest)[:2] == ("exception", 6)


def test_a_release_or_guest_kind_alone_misses_its_rules():
    # the INT $N emulation of master is not taken under 4.17's spec, nor PV32's int82 by PV64
    assert "xen.emul_swint.ok" in coverage([(plan("pv64"), Predictor(spec("xen-4.17")))])
    assert "xen.swint.plus2" in coverage([(plan("pv64"), Predictor(spec("xen")))])
    assert "xen.int82.hypercall" in coverage([(plan("pv64"), Predictor(spec("xen")))])
    assert "xen.emul_gate.ok" in coverage([(plan("pv64"), Predictor(spec("xen")))])  # PV32 emulates gates


def test_the_plan_takes_the_call_gate_rules_with_the_guests_own_gates():
    gate_rules = {"xen.np", "xen.idt.np", "xen.gp.pass", "xen.gp.gate", "xen.emul_gate.ok", "xen.emul_gate.dpl",
                  "xen.emul_gate.limit", "xen.emul_gate.not_present", "xen.emul_gate.not_present_dpl0"}
    assert not gate_rules & set(NOT_VALIDATED)
    gates = [(c, Predictor(spec("xen")).predict(c)) for g in ("pv64", "pv32") for c in plan(g)
             if c.insn == "callgate"]
    taken = {s.rule.name for _, p in gates for s in p.evaluation.trace}
    assert gate_rules <= taken
    tables = {(c.guest, c.gate_selector & 4, c.gate_present) for c, _ in gates if c.gate_selector & ~3}
    assert tables == {(g, t, p) for g in ("pv64", "pv32") for t in (0, 4) for p in (True, False)}


def test_a_case_names_the_gate_the_guest_writes():
    from pvsmt.validate.xenplan import situation
    from pvsmt.model.vocab import GateTable
    case = XenCase(1, "pv64", "user", insn="callgate", gate_selector=0x1006, gate_present=False, gate_dpl=2,
                   gate_in_limit=False)
    got = {k: v for k, v in situation(case).items() if k.startswith("gate.")}
    assert got == {"gate.table": GateTable.LDT, "gate.index": 0x200, "gate.rpl": 2, "gate.in_limit": False,
                   "gate.present": False, "gate.dpl": 2}
    np_ = XenCase(2, "pv64", "user", insn="callgate", gate_selector=0x1003, gate_present=False)
    assert as_observed(np_, Predictor(spec("xen")).predict(np_).guest) == ("exception", 11, 0x1000, "insn", False)


def test_every_rule_left_out_says_why_and_exists():
    from pvsmt.model import RULES
    assert set(NOT_VALIDATED) <= set(RULES)
    assert all(why.strip() for why in NOT_VALIDATED.values())


@pytest.mark.parametrize("guest", ["pv64", "pv32"])
def test_at_least_a_thousand_cases_per_guest_kind(guest):
    cases = plan(guest)
    assert len(cases) >= 1000
    assert len({c.id for c in cases}) == len(cases)
    sweep = {(c.vector, c.guest_mode, c.prefix, c.tt[0][2]) for c in cases if c.insn == "int_n" and c.tt
             and c.tt[0][0] == c.vector}
    prefixes = ("none", "rex") if guest == "pv64" else ("none",)
    assert all((v, m, p, d) in sweep for v in range(256) for m in ("kernel", "user") for p in prefixes
               for d in (0, 3))


def test_domain_crashes_run_last():
    predictor = Predictor(spec("xen"))
    for guest in ("pv64", "pv32"):
        events = [as_observed(c, predictor.predict(c).guest)[0] for c in plan(guest)]
        first_crash = events.index("domain_crash")
        assert set(events[first_crash:]) == {"domain_crash"}


@pytest.mark.parametrize("version, name", [
    ("4.17.0", "xen-4.17.0"), ("4.17.2", "xen-4.17.0"), ("4.17.7", "xen-4.17"), ("4.18.5", "xen-4.17"),
    ("4.19.4", "xen-4.20"), ("4.19.5", "xen"), ("4.20.0", "xen-4.20"), ("4.20.2", "xen-4.20"), ("4.20.3", "xen"),
    ("4.21.0", "xen-4.20"), ("4.21.0-rc2", "xen-4.20"), ("4.21.1", "xen"), ("4.22.0", "xen"),
    ("4.23-unstable", "xen"),
])
def test_each_release_has_its_spec(version, name):
    assert spec_for(version) == name
    assert (ROOT / "specs" / f"{name}.spec").is_file()


@pytest.mark.parametrize("version", ["4.16.2", "banana", "4"])
def test_a_release_without_a_model_is_an_error(version):
    with pytest.raises(InputError):
        spec_for(version)


# ---- real runs -------------------------------------------------------------------------

@functools.cache
def observed(xen_name: str, guest: str, vendor: str = "intel"):
    """The plan's observations on a real Xen (booted once per process and vendor)."""
    xen = xen_binary(xen_name)
    cases = plan(guest)
    observations, info = run_xen_cases(xen, guest, cases, vendor=vendor)
    return cases, observations, info


def run_with(xen_name: str, guest: str, spec_name: str, divergences=DIVERGENCES, vendor: str = "intel"):
    cases, observations, info = observed(xen_name, guest, vendor)
    predictor = Predictor(spec(spec_name), vendor, emulator_divergences(divergences, info, vendor))
    return compare(xen_name, guest, spec(spec_name), info, cases, observations, predictor, divergences)


XEN_ENTRIES = """
[[divergence]]
id = "int-n-legacy-plus2"
emulator = "xen"
versions = ["4.17."]
vendors = ["intel"]
when = "insn == int_n and prefix == legacy and guest.type == sw_int"
observed = { rip = "plus2" }
emulator_does = "resumes a permitted, legacy-prefixed INT $N at its start + 2"
manuals_say = "master resumes it after the instruction"
cite = ["RELEASE-4.17.0 traps.c L1703-1713"]

[[divergence]]
id = "int-n-rex-delivered"
emulator = "xen"
versions = ["4.17."]
vendors = ["intel"]
when = "insn == int_n and prefix == rex and guest.vector == 13 and guest.error_code == vector * 8 + 2"
observed = { vector = "vector", error_code = "none", rip = "plus2" }
emulator_does = "delivers a permitted, REX-prefixed INT $N at its start + 2"
manuals_say = "master re-injects #GP(N*8+2)"
cite = ["RELEASE-4.17.0 traps.c L1703-1713"]
"""


def test_known_xen_divergences_explain_a_release_the_spec_does_not_model(tmp_path):
    path = tmp_path / "known.toml"
    path.write_text(XEN_ENTRIES)
    run = run_with("debian-4.17", "pv64", "xen", DIVERGENCES + known.load(path))
    assert run.ok and run.unexplained == []
    assert run.known["int-n-legacy-plus2"] > 0 and run.known["int-n-rex-delivered"] > 0


def test_a_known_xen_divergence_that_explains_nothing_fails_the_run(tmp_path):
    path = tmp_path / "known.toml"
    path.write_text(XEN_ENTRIES.replace('["4.17."]', '["4.23"]'))
    run = run_with("master", "pv64", "xen", DIVERGENCES + known.load(path))
    assert not run.ok
    assert {d.id for d in run.stale} == {"int-n-legacy-plus2", "int-n-rex-delivered"}


@pytest.mark.parametrize("vendor", ["intel", "amd"])
@pytest.mark.parametrize("xen_name, guest, spec_name", [
    ("debian-4.17", "pv64", "xen-4.17"), ("master", "pv64", "xen"), ("master", "pv32", "xen")])
def test_the_release_spec_predicts_real_xen(xen_name, guest, spec_name, vendor):
    run = run_with(xen_name, guest, spec_name, vendor=vendor)
    assert run.info["xen_version"] and spec_for(run.info["xen_version"]) == spec_name
    assert run.vendor == vendor and run.info["cpu"].startswith("max,vendor=")
    assert run.unexplained == [] and run.failed == [] and run.uncertain == []
    assert run.agree == run.cases >= 1000
    if vendor == "amd":  # QEMU's AMD SYSENTER in compatibility mode shaped some predictions
        assert run.via_emulator.get("qemu-amd-compat-sysenter-null-cs", 0) > 0


@pytest.mark.parametrize("xen_name, guest", [("debian-4.17", "pv64"), ("master", "pv64"), ("master", "pv32")])
def test_syscall_from_compatibility_mode_on_amd_reaches_xens_cstar_path(xen_name, guest):
    cases, observations, _ = observed(xen_name, guest, "amd")
    compat = [(c, o) for c, o in zip(cases, observations) if c.insn == "syscall" and c.mode == "compat"]
    assert {c.guest_mode for c, _ in compat} == {"kernel", "user"}
    for c, o in compat:
        if c.cb_syscall32:
            # PV64: switch_to_kernel masks per the 64-bit syscall flag; PV32: compat_syscall per syscall32's
            flag = c.cb_syscall_mask if guest == "pv64" else c.cb_syscall32_mask
            assert (o.event, o.callback, o.rip, o.masked) == ("callback", "syscall32", "next", flag)
        elif guest == "pv64":
            assert (o.event, o.vector, o.error_code, o.rip) == ("exception", 6, -1, "insn")
        else:  # compat_syscall with a null selector: #GP(0), %eip rewound by 2
            assert (o.event, o.vector, o.error_code, o.rip) == ("exception", 13, 0, "insn")
    cases, observations, _ = observed(xen_name, guest, "intel")
    assert all(o.vector == 6 for c, o in zip(cases, observations) if c.insn == "syscall" and c.mode == "compat")


def test_validate_all_runs_each_vendor_and_names_it():
    def runner(xen, guest, cases, vendor):
        if guest == "pv32":
            raise RuntimeError("(XEN) Xen built without CONFIG_PV32")
        return observed("debian-4.17", guest, vendor)[1:]
    runs = validate_all(Path("xen.gz"), None, None, DIVERGENCES, spec, runner, vendors=["amd"])
    assert [(r.guest, r.vendor) for r in runs] == [("pv64", "amd"), ("pv32", "amd")]
    assert runs[0].ok and runs[0].agree == runs[0].cases
    text = report(runs[0], DIVERGENCES)
    assert re.search(r"Xen 4\.17\.\d+\s+pv64\s+amd\s+xen-4\.17\s", text)
    assert "max,vendor=AuthenticAMD" in text and "qemu-amd-compat-sysenter-null-cs" in text
    assert report(runs[1], DIVERGENCES).startswith("pv32 (amd): not run")


def test_validate_all_shows_progress_on_a_terminal_only(monkeypatch, capsys):
    """Issue 14: validate --xen runs for minutes; on a terminal's stderr it says which run it is in."""
    import io
    import sys
    from pvsmt.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    def runner(xen, guest, cases, vendor):
        return observed("debian-4.17", guest, vendor)[1:]
    monkeypatch.setattr(Progress.__init__, "__defaults__", (None, None, 0))  # no delay
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    validate_all(Path("xen.gz"), ["pv64"], None, DIVERGENCES, spec, runner, vendors=["amd"])
    assert "pvsmt validate --xen: 0 of 1, amd pv64: Xen and the guest under QEMU" in term.getvalue()
    assert term.getvalue().endswith("\r\x1b[K")
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: nothing
    validate_all(Path("xen.gz"), ["pv64"], None, DIVERGENCES, spec, runner, vendors=["amd"])
    assert sys.stderr.getvalue() == ""


def test_xen_417_resumes_a_prefixed_int_inside_it_and_delivers_rex():
    cases, observations, _ = observed("debian-4.17", "pv64")
    seen = {(c.prefix, o.event, o.vector == c.vector, o.rip) for c, o in zip(cases, observations)
            if c.insn == "int_n" and c.tt and c.tt[0][2] == 3 and c.vector not in (3, 4, 0x80)}
    assert ("legacy", "exception", True, "plus2") in seen
    assert ("rex", "exception", True, "plus2") in seen


def test_master_refuses_a_permitted_rex_int():
    cases, observations, _ = observed("master", "pv64")
    rex = [(c, o) for c, o in zip(cases, observations) if c.insn == "int_n" and c.prefix == "rex"
           and c.tt and c.tt[0][2] == 3 and c.vector not in (3, 4, 0x80)]
    assert rex and all(o.vector == 13 and o.error_code == c.vector * 8 + 2 and o.rip == "insn" for c, o in rex)


def test_masters_model_is_wrong_for_417_exactly_on_prefixed_int_n():
    run = run_with("debian-4.17", "pv64", "xen")
    assert run.unexplained
    assert {(d.case.insn, d.case.prefix != "none") for d in run.unexplained} == {("int_n", True)}


def test_a_planted_wrong_xen_rule_fails_the_run(monkeypatch):
    monkeypatch.setattr(xen_idt, "permitted", lambda s, vdpl: True)  # drop the vDPL check
    run = run_with("master", "pv64", "xen")
    assert not run.ok
    assert all(d.case.insn == "int_n" for d in run.unexplained)
    assert len(run.unexplained) >= 256


def test_the_command_on_debians_417(capsys):
    code = main(["validate", "--xen", str(xen_binary("debian-4.17")), "--guest", "pv64"])
    out = capsys.readouterr().out
    assert code == 0, out
    for vendor in ("intel", "amd"):  # both by default
        assert re.search(rf"Xen 4\.17\.\d+\s+pv64\s+{vendor}\s+xen-4\.17\s", out)
        assert re.search(rf"\d+ cases \(pv64, {vendor}\): \d+ agree with the model, 0 known divergences, "
                         r"0 on UNCERTAIN paths, 0 unexplained, 0 not run", out)


def test_the_command_on_one_vendor(capsys):
    code = main(["validate", "--xen", str(xen_binary("master")), "--guest", "pv32", "--vendor", "amd"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(r"Xen 4\.23-unstable\s+pv32\s+amd\s+xen\s", out) and "intel" not in out.split("\n\n")[0]
