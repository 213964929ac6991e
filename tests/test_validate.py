"""`pvsmt validate`: the case plan covers the hardware model, predictions, the known-divergences
file, the comparison, and real runs on QEMU and Bochs (both vendors).

The emulator runs are skipped when an emulator is not installed, unless
PVSMT_REQUIRE_EMULATORS=1 (set by .ci/run, which installs them): then they must run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pvsmt.model import hardware
from pvsmt.validate import run as val
from pvsmt.validate.cases import Case, Observation
from pvsmt.validate.known import load
from pvsmt.validate.plan import as_observed, coverage, int_sweep, plan, predict

ROOT = Path(__file__).resolve().parent.parent
KNOWN = ROOT / "emulators" / "known-divergences.toml"
REQUIRE = os.environ.get("PVSMT_REQUIRE_EMULATORS") == "1"


def pvsmt(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pvsmt", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=1200)


def emulator_or_skip(name: str) -> None:
    from pvsmt.validate.emulator import available
    why = available(name)
    if why and not REQUIRE:
        pytest.skip(f"{name}: {why}")
    assert why is None, f"{name} is required here (PVSMT_REQUIRE_EMULATORS=1): {why}"


# ---- the plan and the predictions (no emulator) -------------------------------------------------

def test_the_plan_takes_every_hardware_rule_a_cpu_can_take():
    assert coverage(plan()) == []


def test_the_plan_has_over_2000_cases_per_emulator():
    cases = plan()
    assert len(cases) * 2 >= 2000  # two vendors per emulator
    assert len({c.id for c in cases}) == len(cases)
    sweep = [c for c in cases if c.insn == "int_n" and c.cpl == 3 and len(c.idt) == 1 and c.prefix == "none"]
    assert {(c.vector, c.mode, c.idt[0][2]) for c in sweep} >= {(v, m, d) for v in range(256)
                                                                   for m in ("long64", "compat") for d in (0, 3)}


@pytest.mark.parametrize("case, vendor, expected", [
    (Case(0, "int_n", 3, "long64", vector=0x21), "intel", ("idt", 13, 0x10a, "fault", "interrupt")),
    (Case(0, "int_n", 3, "compat", vector=0x80, idt=((0x80, True, 3, "trap"),)), "amd",
     ("idt", 0x80, -1, "trap", "trap")),
    (Case(0, "ud2", 0, "long64", idt=((6, False, 0, "interrupt"),)), "intel", ("idt", 11, 0x33, "fault", "interrupt")),
    (Case(0, "syscall", 3, "compat"), "amd", ("syscall", "cstar")),
    (Case(0, "syscall", 3, "compat"), "intel", ("idt", 6, -1, "fault", "interrupt")),
    (Case(0, "sysenter", 3, "long64", sysenter_cs_null=True), "intel", ("idt", 13, 0, "fault", "interrupt")),
    (Case(0, "callgate", 3, "long64", gate_table="ldt", gate_index=5, gate_rpl=3, gate_dpl=3), "intel",
     ("call_gate",)),
    (Case(0, "ud2", 3, "long64", idt=((6, False, 0, "interrupt"), (11, False, 0, "interrupt"),
                                      (8, False, 0, "interrupt"))), "intel", ("shutdown",)),
])
def test_predictions(case, vendor, expected):
    assert as_observed(predict(case, vendor).hw) == expected


# ---- the known-divergences file ---------------------------------------------------------------------

def test_every_known_divergence_cites_a_source_and_says_both_sides():
    entries = load(KNOWN)
    assert entries
    for d in entries:
        assert d.cite and d.emulator_does and d.manuals_say and d.where.line > 0


@pytest.mark.parametrize("text, message", [
    ("[[divergence]\n", "not valid TOML"),
    ('[[divergence]]\nid = "x"\n', "'emulator' must be a non-empty string"),
    ('[[divergence]]\nid = "x"\nemulator = "qemu"\nversions = ["7."]\nvendors = ["intel"]\nwhen = "insn == int1"\n'
     'observed = { event = "idt" }\nemulator_does = "a"\nmanuals_say = "b"\ncite = []\n', "at least one source"),
    ('[[divergence]]\nid = "x"\nemulator = "qemu"\nversions = ["7."]\nvendors = ["intel"]\nwhen = "insn == int9"\n'
     'observed = { event = "idt" }\nemulator_does = "a"\nmanuals_say = "b"\ncite = ["s"]\n', "when:"),
    ('[[divergence]]\nid = "x"\nemulator = "qemu"\nversions = ["7."]\nvendors = ["intel"]\nwhen = "insn == int1"\n'
     'observed = { colour = "idt" }\nemulator_does = "a"\nmanuals_say = "b"\ncite = ["s"]\n', "unknown field 'colour'"),
    ('[[divergence]]\nid = "x"\nemulator = "vmware"\n', "emulator must be one of"),
])
def test_a_bad_known_divergences_file_gives_a_located_error(tmp_path, text, message):
    f = tmp_path / "k.toml"
    f.write_text(text)
    p = pvsmt("validate", "--emulator", "qemu", "--known", str(f))
    assert p.returncode == 2 and message in p.stderr and str(f) in p.stderr and "Traceback" not in p.stderr


# ---- comparing (observations made up here, no emulator) ----------------------------------------------

def observe(case: Case, outcome: tuple) -> Observation:
    if outcome[0] == "idt":
        _, vector, ec, kind, gtype = outcome
        return Observation(case.id, "idt", vector, ec, kind, gate_type=gtype)
    if outcome[0] == "syscall":
        return Observation(case.id, "syscall", msr=outcome[1])
    return Observation(case.id, outcome[0])


def test_compare_sorts_agreement_known_unexplained_and_stale():
    entries = load(KNOWN)
    cases = [Case(0, "int_n", 3, "long64", vector=0x21), Case(1, "syscall", 3, "compat"), Case(2, "int3", 3, "long64")]
    seen = [observe(cases[0], ("idt", 13, 0x212, "fault", "interrupt")),   # QEMU's doubled error code
            observe(cases[1], ("syscall", "cstar")),                         # QEMU's Intel compat SYSCALL
            observe(cases[2], ("idt", 3, -1, "trap", "interrupt"))]          # wrong: the gate is DPL0
    r = val.compare("qemu", "intel", {"emulator_version": "QEMU emulator version 7.2.22"}, cases, seen, entries)
    assert r.agree == 0
    assert r.known["qemu-idt-error-code-doubled"] == 1 and r.known["qemu-intel-compat-syscall"] == 1
    assert [d.case.id for d in r.unexplained] == [2]
    assert "qemu-icebp-undefined" in {d.id for d in r.stale}  # applies, but no INT1 case diverged
    assert not r.ok
    text = val.report([r], entries)
    assert "UNEXPLAINED (qemu intel) case 2: INT3, CPL3, long64" in text
    assert "model:    #GP(0x1a) fault" in text and "emulator: #BP trap" in text
    assert "no longer occurs" in text


def test_an_entry_does_not_apply_to_other_versions():
    entries = load(KNOWN)
    case = Case(0, "int_n", 3, "long64", vector=0x21)
    r = val.compare("qemu", "intel", {"emulator_version": "QEMU emulator version 9.1.0"}, [case],
                    [observe(case, ("idt", 13, 0x212, "fault", "interrupt"))], entries)
    assert len(r.unexplained) == 1 and r.known == {}


# ---- real runs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("emulator", ["qemu", "bochs"])
def test_validate_agrees_with_the_emulator_up_to_the_known_divergences(emulator):
    emulator_or_skip(emulator)
    p = pvsmt("validate", "--emulator", emulator)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr
    last = p.stdout.strip().splitlines()[-1]
    total = int(last.split()[0])
    assert total >= 2000 and last.endswith(" 0 unexplained"), last
    assert "intel" in p.stdout and "amd" in p.stdout


def test_a_wrong_model_rule_makes_validate_fail(monkeypatch):
    """Drop the IDT bit from the model's IDT-format error codes: the sweep disagrees, case by case."""
    emulator_or_skip("bochs")
    monkeypatch.setattr(hardware, "idt_ec", lambda vector, ext=False: vector * 8 + (1 if ext else 0))
    cases = int_sweep(0)
    runs = val.validate("bochs", ["intel"], load(KNOWN), cases)
    r = runs[0]
    assert not r.ok
    # From CPL3 every DPL0 gate faults with #GP(idt_ec(N)): 512 cases, all now disagree.
    assert len(r.unexplained) == 512
    assert all(d.model[1] == 13 and d.emulator[2] == d.model[2] + 2 for d in r.unexplained)
    assert "UNEXPLAINED (bochs intel) case" in val.report(runs, load(KNOWN))
