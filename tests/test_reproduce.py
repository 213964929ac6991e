"""`pvsmt reproduce`: each IDT-mode finding of docs/findings.md, shown on the Xen it names.

Every real test runs the command docs/findings.md gives (one boot, 1-3 s) and checks
the guest's observation itself, not the printed text.  Xen master and Debian's 4.17
come from tests/xen_builds.py (skipped without them unless PVSMT_REQUIRE_XEN=1).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pvsmt.validate import reproduce as rp
from pvsmt.cli.main import main

from xen_builds import xen_binary

ROOT = Path(__file__).resolve().parents[1]


def reproduce(monkeypatch, capsys, xen: str, *argv: str):
    """Run `pvsmt reproduce --xen XEN ARGV...`; its exit code, output and Reproduction."""
    got = []
    real = rp.run

    def spy(*a, **kw):
        got.append(real(*a, **kw))
        return got[-1]
    monkeypatch.setattr(rp, "run", spy)
    code = main(["reproduce", "--xen", str(xen_binary(xen)), *argv])
    out = capsys.readouterr()
    assert len(got) == 1, out.err
    assert got[0].info["boots"] == 1
    return code, out.out, got[0]


def sets(*pairs: str) -> list[str]:
    return [a for p in pairs for a in ("--set", p)]


# ---- findings on the real hypervisor ---------------------------------------------------------

def test_finding1_int80_delivers_with_vdpl0_on_master(monkeypatch, capsys):
    code, _, r = reproduce(monkeypatch, capsys, "master",
                           *sets("insn=int_n", "vector=0x80", "tt.0x80.present=1", "tt.0x80.dpl=0"))
    o = r.observation
    assert (code, o.event, o.vector, o.error_code, o.rip) == (0, "exception", 0x80, -1, "next")


def test_finding2_rex_int_n_gp_on_master(monkeypatch, capsys):
    code, _, r = reproduce(monkeypatch, capsys, "master",
                           *sets("insn=int_n", "vector=0x21", "prefix=rex", "tt.0x21.present=1", "tt.0x21.dpl=3"))
    o = r.observation
    assert (code, o.event, o.vector, o.error_code, o.rip) == (0, "exception", 13, (0x21 << 3) | 2, "insn")


def test_finding12_prefixed_int_n_resumes_inside_on_417_email(monkeypatch, capsys):
    code, out, r = reproduce(monkeypatch, capsys, "debian-4.17", "--format", "email",
                             *sets("insn=int_n", "vector=0x21", "prefix=legacy", "tt.0x21.present=1",
                                   "tt.0x21.dpl=3"))
    o = r.observation
    assert (code, o.event, o.vector, o.error_code, o.rip) == (0, "exception", 0x21, -1, "plus2")
    assert r.info["xen_version"].startswith("4.17.") and r.spec.name == "xen-4.17"
    assert all(len(line) <= 72 for line in out.splitlines())
    for needed in ("a934a600c4", "260740e1aa", "45d18b05c0", "805e2b8ada", "pvsmt reproduce --xen", "4.17.7"):
        assert needed in out
    master = dict((rel.spec, outcome) for rel, outcome in r.releases)["xen"]
    assert master[3] == "next"  # the model's master resumes after the instruction


def test_finding12_rex_int_n_delivered_on_417(monkeypatch, capsys):
    code, _, r = reproduce(monkeypatch, capsys, "debian-4.17",
                           *sets("insn=int_n", "vector=0x21", "prefix=rex", "tt.0x21.present=1", "tt.0x21.dpl=3"))
    o = r.observation
    assert (code, o.event, o.vector, o.rip) == (0, "exception", 0x21, "plus2")


def test_finding3_pv64_syscall_without_callback_ud(monkeypatch, capsys):
    code, _, r = reproduce(monkeypatch, capsys, "master", *sets("insn=syscall", "cb.syscall=0"))
    assert (code, r.observation.vector, r.observation.rip) == (0, 6, "insn")


def test_finding3_4_sysenter_without_callback_gp0_rip_zero(monkeypatch, capsys):
    code, _, r = reproduce(monkeypatch, capsys, "master", *sets("insn=sysenter", "cb.sysenter=0"))
    o = r.observation
    assert (code, o.vector, o.error_code, o.rip) == (0, 13, 0, "zero")


def test_finding7_pv64_kernel_compat_syscall_to_syscall32_on_amd(monkeypatch, capsys):
    code, _, r = reproduce(monkeypatch, capsys, "debian-4.17",
                           *sets("vendor=amd", "guest_mode=kernel", "mode=compat", "insn=syscall"))
    assert r.info["vendor"] == "amd"
    assert (code, r.observation.event, r.observation.callback) == (0, "callback", "syscall32")


def test_finding8_int2_is_a_software_interrupt_with_vdpl3(monkeypatch, capsys):
    code, _, r = reproduce(monkeypatch, capsys, "master", *sets("insn=int_n", "vector=2", "tt.2.dpl=3"))
    o = r.observation
    assert (code, o.event, o.vector, o.error_code, o.rip) == (0, "exception", 2, -1, "next")


def test_finding9_pv64_kernel_sysenter_crashes_the_domain(monkeypatch, capsys):
    code, _, r = reproduce(monkeypatch, capsys, "master", *sets("insn=sysenter", "guest_mode=kernel"))
    assert (code, r.observation.event) == (0, "domain_crash")


def test_finding3_pv32_syscall_without_callback_gp0_on_amd(monkeypatch, capsys):
    # compat_syscall: a null syscall32 selector is "no callback": #GP(0), %eip rewound by 2
    code, _, r = reproduce(monkeypatch, capsys, "master",
                           *sets("guest=pv32", "vendor=amd", "insn=syscall", "cb.syscall32=0"))
    o = r.observation
    assert r.info["vendor"] == "amd" and not r.plan.case.cb_syscall32
    assert (code, o.event, o.vector, o.error_code, o.rip) == (0, "exception", 13, 0, "insn")


def test_finding10_syscall32_bounce_masks_per_the_syscall_flag(monkeypatch, capsys):
    code, _, r = reproduce(monkeypatch, capsys, "master",
                           *sets("vendor=amd", "guest_mode=user", "mode=compat", "insn=syscall", "cb.syscall32=1"))
    case, o = r.plan.case, r.observation
    assert case.cb_syscall_mask != case.cb_syscall32_mask  # the flags differ, so the mask tells which one
    assert (code, o.callback, o.masked) == (0, "syscall32", case.cb_syscall_mask)


@pytest.mark.parametrize("vendor", ["intel", "amd"])
@pytest.mark.parametrize("table", ["ldt", "gdt"])
def test_finding5_pv32_call_gate_is_emulated_on_master(monkeypatch, capsys, table, vendor):
    # the guest's present DPL3 gate: the CPU sees DPL0 (audited), #GP(sel), pv_emulate_gate_op calls
    # the target: the guest arrives at cb_gate from user mode, the return address after the 9A
    code, out, r = reproduce(monkeypatch, capsys, "master",
                             *sets("guest=pv32", "insn=callgate", f"gate.table={table}", f"vendor={vendor}"))
    o, case = r.observation, r.plan.case
    assert case.gate_selector == 0x1003 | (4 if table == "ldt" else 0) and case.gate_present
    assert (code, o.event, o.rip, r.info["vendor"]) == (0, "call_gate", "target", vendor)
    assert o.detail == "ret=+7 (next) cs=e02b" and "far CALL emulated by Xen" in out


@pytest.mark.parametrize("vendor", ["intel", "amd"])
@pytest.mark.parametrize("xen", ["master", "debian-4.17"])
def test_finding11_pv64_not_present_gdt_gate_raises_np(monkeypatch, capsys, xen, vendor):
    code, _, r = reproduce(monkeypatch, capsys, xen,
                           *sets("insn=callgate", "gate.table=gdt", "gate.present=0", "gate.dpl=3",
                                 "tt.0x0b.present=1", f"vendor={vendor}"))
    o = r.observation
    assert r.plan.case.gate_selector == 0x1003 and not r.plan.case.gate_present
    assert (code, o.event, o.vector, o.error_code, o.rip) == (0, "exception", 11, 0x1000, "insn")


def test_finding11_the_ldt_gate_too_on_417(monkeypatch, capsys):
    code, _, r = reproduce(monkeypatch, capsys, "debian-4.17",
                           *sets("insn=callgate", "gate.table=ldt", "gate.present=0", "gate.dpl=3"))
    assert (code, r.observation.vector, r.observation.error_code) == (0, 11, 0x1004)


def test_a_gate_configuration_is_the_gate_the_guest_writes():
    from pvsmt.lang.parse import SpecLoader
    plan = rp.plan_case(SpecLoader().load(ROOT / "specs" / "xen.spec"), {
        "insn": rp.parse_setting("insn=callgate")[1], "gate.table": rp.parse_setting("gate.table=ldt")[1],
        "gate.index": 0x1ffe, "gate.rpl": 1, "gate.present": False, "gate.dpl": 2})
    c = plan.case
    assert (c.gate_selector, c.gate_present, c.gate_dpl, c.gate_in_limit) == (0xfff5, False, 2, True)
    int3 = rp.plan_case(SpecLoader().load(ROOT / "specs" / "xen.spec"), {"insn": rp.parse_setting("insn=int3")[1]})
    assert int3.case.gate_selector == 0  # no gate for an instruction that reads none


# ---- --from a real report --------------------------------------------------------------------

def test_from_a_prove_json_refutation(monkeypatch, capsys, tmp_path):
    inv = tmp_path / "rex.inv"
    text = (ROOT / "tests" / "fixtures" / "false" / "int-n.inv").read_text()
    start = text.index("invariant rex-int-n-emulated-like-unprefixed")
    inv.write_text(text[start:text.index("\n}\n", start) + 3])
    report = tmp_path / "report.json"
    assert main(["prove", str(inv), "--spec", "xen", "--format", "json", "-o", str(report)]) == 0  # refuted, as expected
    capsys.readouterr()
    cex = json.loads(report.read_text())["checks"][0]["counterexamples"][0]
    knobs = {k["name"]: k["value"] for k in cex["knobs"]}
    code, _, r = reproduce(monkeypatch, capsys, "master", "--from", str(report))
    o = r.observation
    assert code == 0 and r.plan.case.vector == knobs["vector"] and r.plan.case.prefix == "rex"
    assert (o.vector, o.error_code) == (13, (knobs["vector"] << 3) | 2)


# ---- bad input: exit 2, no boot ----------------------------------------------------------------

BAD = [
    (sets("insn=callgate", "gate.table=gdt", "gate.in_limit=0"), "GDTR limit covers"),
    (sets("insn=callgate", "gate.table=ldt", "gate.index=8191"), "the largest LDT"),
    (sets("insn=int3", "debugger=1"), "debugger"),
    (sets("insn=int_n", "vector=0x80", "tt.0x80.present=0", "tt.0x80.dpl=3"), "null entry with a vDPL"),
    (sets("insn=int_n", "idt.0x21.dpl=3"), "what-if"),
    (sets("insn=int_n") + ["--spec", "xen-fred"], "FRED hardware"),
    (sets("insn=int_n") + ["--spec", "pv-traps-doc"], "documented ABI"),
    (sets("nonsense=1"), "unknown name"),
    (sets("insn=int_n") + ["--index", "2"], "--from only"),
]


@pytest.mark.parametrize("argv,why", BAD, ids=[w.split()[0] for _, w in BAD])
def test_bad_input_exits_2_without_booting(monkeypatch, capsys, argv, why):
    import pvsmt.validate.xenrun as xenrun
    monkeypatch.setattr(xenrun, "run_xen_cases", lambda *a, **k: pytest.fail("booted"))
    assert main(["reproduce", "--xen", "/boot/xen-4.17-amd64.gz" if Path("/boot/xen-4.17-amd64.gz").is_file()
                 else __file__, *argv]) == 2
    assert why in capsys.readouterr().err


def test_bad_reports_exit_2(capsys, tmp_path):
    xen = str(tmp_path / "xen")
    Path(xen).write_bytes(b"x")
    (tmp_path / "a.json").write_text("{not json")
    (tmp_path / "b.json").write_text(json.dumps({"schema": "other"}))
    (tmp_path / "c.json").write_text(json.dumps({"checks": [{"counterexamples": []}]}))
    for name, why in (("a.json", "not JSON"), ("b.json", "not a pvsmt JSON report"),
                      ("c.json", "no counterexample"), ("missing.json", "cannot read")):
        assert main(["reproduce", "--xen", xen, "--from", str(tmp_path / name)]) == 2
        assert why in capsys.readouterr().err
    assert main(["reproduce", "--xen", str(tmp_path / "nope"), "--set", "insn=int3"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_pv32_on_a_xen_without_config_pv32_exits_2(capsys):
    assert main(["reproduce", "--xen", str(xen_binary("debian-4.17")), "--set", "guest=pv32",
                 "--set", "insn=int3"]) == 2
    assert "CONFIG_PV32" in capsys.readouterr().err
