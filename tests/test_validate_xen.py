"""`pvsmt validate --xen`: the Xen plan, its coverage, the release specs and real runs.

Real runs boot Debian's Xen 4.17.7 (PV64) and Xen master built from ../shared (PV64 and
PV32) under QEMU 10 (tests/xen_builds.py); they skip when those are absent unless
PVSMT_REQUIRE_XEN=1.  Each real run happens once per test process (a fixture), and the
checks of a planted model error re-compare its recorded observations without booting.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from pvsmt.cli import main
from pvsmt.errors import InputError
from pvsmt.lang.parse import SpecLoader
from pvsmt.model import xen_idt
from pvsmt.releases import spec_for
from pvsmt.validate import known
from pvsmt.validate.xenplan import NOT_VALIDATED, Predictor, as_observed, coverage, plan
from pvsmt.validate.xenrun import run_xen_cases
from pvsmt.validate.xenvalidate import compare, emulator_divergences

from xen_builds import xen_binary

ROOT = Path(__file__).resolve().parents[1]
DIVERGENCES = known.load(ROOT / "emulators" / "known-divergences.toml")


@functools.cache
def spec(name: str):
    return SpecLoader().load(ROOT / "specs" / f"{name}.spec")


# ---- the plan, without Xen -------------------------------------------------------------

def test_the_plan_takes_every_xen_rule_a_run_can_take():
    runs = [(plan(g), Predictor(spec(s))) for g in ("pv64", "pv32") for s in ("xen", "xen-4.17")]
    assert coverage(runs) == []


def test_a_release_or_guest_kind_alone_misses_its_rules():
    # the INT $N emulation of master is not taken under 4.17's spec, nor PV32's int82 by PV64
    assert "xen.emul_swint.ok" in coverage([(plan("pv64"), Predictor(spec("xen-4.17")))])
    assert "xen.swint.plus2" in coverage([(plan("pv64"), Predictor(spec("xen")))])
    assert "xen.int82.hypercall" in coverage([(plan("pv64"), Predictor(spec("xen")))])


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
    for guest in ("pv64", "pv32"):
        events = [as_observed(c, Predictor(spec("xen")).predict(c).guest)[0] for c in plan(guest)]
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
def observed(xen_name: str, guest: str):
    """The plan's observations on a real Xen (booted once per process)."""
    xen = xen_binary(xen_name)
    cases = plan(guest)
    observations, info = run_xen_cases(xen, guest, cases)
    return cases, observations, info


def run_with(xen_name: str, guest: str, spec_name: str, divergences=DIVERGENCES):
    cases, observations, info = observed(xen_name, guest)
    predictor = Predictor(spec(spec_name), "intel", emulator_divergences(divergences, info))
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


@pytest.mark.parametrize("xen_name, guest, spec_name", [
    ("debian-4.17", "pv64", "xen-4.17"), ("master", "pv64", "xen"), ("master", "pv32", "xen")])
def test_the_release_spec_predicts_real_xen(xen_name, guest, spec_name):
    run = run_with(xen_name, guest, spec_name)
    assert run.info["xen_version"] and spec_for(run.info["xen_version"]) == spec_name
    assert run.unexplained == [] and run.failed == [] and run.uncertain == []
    assert run.agree == run.cases >= 1000


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
    assert re.search(r"Xen 4\.17\.\d+\s+pv64\s+xen-4\.17\s", out)
    assert re.search(r"\d+ cases: \d+ agree with the model, 0 known divergences, 0 on UNCERTAIN paths, 0 unexplained, "
                          r"0 not run", out)
