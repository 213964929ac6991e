"""`expect` and `witness` in an invariant mean something to `pvsmt prove` (analysis/expectation.py).

A documented false claim stays refuted: exit 0 while it is; exit 1 once it proves or its
counterexamples leave the witness; 3 when the witness cannot be checked.  The verdict
itself is never changed, and error/unknown verdicts keep their status.
"""

from __future__ import annotations

import json
import os

import pytest

from pvsmt.analysis import expectation
from pvsmt.analysis.prove import Prover
from pvsmt.cli.main import main

INV = """invariant t {{
  specs xen
  assume insn == syscall and guest == pv64 and guest_mode == user
  prove {prove}
  cite "tests/test_expectation.py"
  expect {expect}{witness}
}}
"""
#: false on xen: SYSCALL from PV64 user mode reaches the syscall callback (when registered)
FALSE = "guest.event != callback"
#: true on xen: the hardware event of SYSCALL from 64-bit code is never an IDT delivery with vector 3
TRUE = "not (hw.event == idt and hw.vector == 3)"


def run(tmp_path, capsys, prove, expect="refuted", witness="", fmt="json"):
    path = tmp_path / "t.inv"
    path.write_text(INV.format(prove=prove, expect=expect, witness=f"\n  witness {witness}" if witness else ""))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = main(["prove", str(path), "--format", fmt])
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    return code, (json.loads(out)["checks"][0] if fmt == "json" else out)


def test_an_expected_refutation_is_exit_0_and_says_so(tmp_path, capsys):
    code, check = run(tmp_path, capsys, FALSE)
    assert code == 0 and check["verdict"] == "refuted"
    assert check["expected"] == "refuted" and check["as_expected"] is True and check["counterexamples"]
    code, text = run(tmp_path, capsys, FALSE, fmt="text")
    assert code == 0 and "t.inv:1: t [xen]: refuted (expected)" in text and "1 refuted, 1 as expected" in text


def test_an_expected_refutation_passes_in_junit(tmp_path, capsys):
    code, xml = run(tmp_path, capsys, FALSE, fmt="junit")
    assert code == 0 and 'failures="0"' in xml and "<failure" not in xml


def test_an_expected_refutation_that_now_proves_is_exit_1(tmp_path, capsys):
    code, check = run(tmp_path, capsys, TRUE)
    assert code == 1 and check["verdict"] == "proved" and check["as_expected"] is False
    assert "expected refuted, but proved" in check["reason"] and "drop the `expect`" in check["reason"]
    code, text = run(tmp_path, capsys, TRUE, fmt="text")
    assert "t [xen]: proved (expected refuted)" in text  # its own block, not folded into the proofs' line


def test_a_counterexample_outside_the_witness_is_exit_1(tmp_path, capsys):
    code, check = run(tmp_path, capsys, FALSE, witness="vendor == amd")  # Intel CPUs do it too
    assert code == 1 and check["verdict"] == "refuted" and check["as_expected"] is False
    assert "outside the witness `vendor == amd` (line 7)" in check["reason"]


def test_a_witness_every_counterexample_satisfies_is_exit_0(tmp_path, capsys):
    code, check = run(tmp_path, capsys, FALSE, witness="guest.event == callback")
    assert code == 0 and check["as_expected"] is True


def test_a_witness_the_solver_cannot_check_is_exit_3(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Prover, "violations_satisfy", lambda self, inv, spec, witness: None)
    code, check = run(tmp_path, capsys, FALSE, witness="guest.event == callback")
    assert code == 3 and check["verdict"] == "refuted" and "as_expected" not in check
    assert "is unknown" in check["reason"]


def test_expect_proved_is_met_by_a_proof(tmp_path, capsys):
    code, check = run(tmp_path, capsys, TRUE, expect="proved")
    assert code == 0 and check["as_expected"] is True
    code, check = run(tmp_path, capsys, FALSE, expect="proved")
    assert code == 1 and check["as_expected"] is False


@pytest.mark.parametrize("verdict_code, expected, met, want", [
    (0, False, None, 0), (1, False, None, 1),      # no expectation: the verdict's own status
    (1, True, True, 0), (1, True, False, 1), (1, True, None, 3),
    (0, True, False, 1),                           # proved, expected refuted
    (4, True, False, 4),                           # vacuous, expected refuted: still vacuous
    (2, True, True, 2), (3, True, True, 3),        # error and unknown (or unverified) never hidden
])
def test_status(verdict_code, expected, met, want):
    assert expectation.status(verdict_code, expected, met) == want
